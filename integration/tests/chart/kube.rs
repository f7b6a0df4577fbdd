//! What Kubernetes itself does to a container before it runs, as pure functions: `$(VAR)`
//! expansion (the kubelet's rules, byte for byte), label selectors, and the test's one
//! departure from Kubernetes, mount paths rewritten to the directories that stand for
//! the volumes.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// `$(NAME)` expanded the way the kubelet expands `command`, `args` and `env` values
/// (`third_party/forked/golang/expansion`): `$$` is one `$`; `$(NAME)` of a variable
/// `lookup` knows is its value; of one it does not, stays as written; a `$` followed by
/// anything else, or a `$(` never closed, stays as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&byte| byte == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]).into_owned();
                        match lookup(&name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => out.extend_from_slice(format!("$({name})").as_bytes()),
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8(out).expect("expansion keeps UTF-8: it only cuts at ASCII bytes")
}

/// Whether `labels` carry every `selector` pair (a Service's selector, a
/// `matchLabels`).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// Rewrites every container path under a mount (`mounts`: mount path → directory) in
/// `text` to the directory: `--data=/data/meta` → `--data=/tmp/…/pvc/data-meta-0/meta`.
/// A mount path counts only as a whole path: not preceded by a path character (so
/// `/var/tmp` is not `/tmp`) and followed by `/`, the end, or a character that cannot
/// continue a path name (so `/tmpfs` is not `/tmp`). The longest mount wins.
pub fn rewrite_paths(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut sorted: Vec<&(String, PathBuf)> = mounts.iter().collect();
    sorted.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
    let continues_name =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'/');
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut position = 0;
    'scan: while position < bytes.len() {
        let boundary_before = position == 0 || !continues_name(bytes[position - 1]);
        if boundary_before && bytes[position] == b'/' {
            for (mount, directory) in &sorted {
                let mount = mount.trim_end_matches('/');
                let end = position + mount.len();
                if text[position..].starts_with(mount)
                    && (end == bytes.len() || bytes[end] == b'/' || !continues_name(bytes[end]))
                {
                    out.push_str(&directory.display().to_string());
                    position = end;
                    continue 'scan;
                }
            }
        }
        let character = text[position..].chars().next().expect("inside the text");
        out.push(character);
        position += character.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(name: &str) -> Option<String> {
        match name {
            "POD_NAME" => Some("meta-0".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let cases = [
            ("--name=$(POD_NAME)", "--name=meta-0"),
            ("$(POD_NAME).svc:7380", "meta-0.svc:7380"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(POD_NAME)", "$(POD_NAME)"),
            ("$$$(POD_NAME)", "$meta-0"),
            ("a$(EMPTY)b", "ab"),
            ("$(POD_NAME", "$(POD_NAME"),
            ("$POD_NAME", "$POD_NAME"),
            ("cost: 5$", "cost: 5$"),
            ("$", "$"),
            ("", ""),
            ("ünïcode $(POD_NAME) ü", "ünïcode meta-0 ü"),
            ("$(POD_NAME)$(POD_NAME)", "meta-0meta-0"),
            ("x$()y", "x$()y"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &variables), expected, "{input:?}");
        }
    }

    #[test]
    fn only_whole_mount_paths_are_rewritten_and_the_longest_wins() {
        let mounts = vec![
            ("/tmp".to_string(), PathBuf::from("/run/pod/tmp")),
            (
                "/var/run/shardlet/keys".to_string(),
                PathBuf::from("/run/pod/keys"),
            ),
            (
                "/var/run/shardlet".to_string(),
                PathBuf::from("/run/pod/shardlet"),
            ),
        ];
        let cases = [
            ("/tmp", "/run/pod/tmp"),
            ("--out=/tmp/x", "--out=/run/pod/tmp/x"),
            ("/var/tmp/x", "/var/tmp/x"),
            ("/tmpfs", "/tmpfs"),
            (
                "--key-file=/var/run/shardlet/keys/a.keys",
                "--key-file=/run/pod/keys/a.keys",
            ),
            ("/var/run/shardlet/other", "/run/pod/shardlet/other"),
            (
                "cp /tmp/a /tmp/b; cmp /tmp/a /tmp/b",
                "cp /run/pod/tmp/a /run/pod/tmp/b; cmp /run/pod/tmp/a /run/pod/tmp/b",
            ),
            ("http://host/tmp/x", "http://host/tmp/x"),
            ("\"/tmp\"", "\"/run/pod/tmp\""),
            ("a,/tmp:b", "a,/run/pod/tmp:b"),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite_paths(input, &mounts), expected, "{input:?}");
        }
    }

    #[test]
    fn a_selector_needs_every_pair() {
        let labels: BTreeMap<String, String> = [("app", "shardlet"), ("component", "meta")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let selector = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selects(&selector(&[("app", "shardlet")]), &labels));
        assert!(!selects(
            &selector(&[("app", "shardlet"), ("component", "node")]),
            &labels
        ));
        assert!(
            !selects(&selector(&[]), &labels),
            "an empty selector selects nothing here"
        );
    }
}
