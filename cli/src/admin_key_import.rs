//! `shardlet admin key import --file FILE [--replace]`: S3 credentials declared in a file
//! (a Helm hook, a config-management run) made present in meta-raft, idempotently.
//!
//! The whole file is read and every entry checked before anything is written, so a bad
//! entry changes nothing. Then each key is one compare-and-set
//! (`Buckets::import_credential`); a crash in the middle leaves the keys before it
//! imported, and running the same file again reports them "unchanged".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use shardlet_gateway::object::catalog::Catalog;
use shardlet_gateway::object::commit::{
    check_access_key, check_owner, check_secret_key, Buckets, ImportError,
};
use shardlet_model::schema::{CredentialRecord, SecretKey};

use crate::connect::KeyArguments;
use crate::output::out;

/// Largest key file read: a few thousand keys fit in far less.
const KEY_FILE_BYTES_MAX: u64 = 1 << 20;
/// Most keys one file may declare.
const KEYS_PER_FILE_MAX: usize = 10_000;

#[derive(clap::Args)]
pub struct KeyImportArguments {
    /// A JSON list of `{"access_key": …, "secret_key": …, "owner": …}`.
    #[arg(long)]
    pub file: PathBuf,
    /// Replace an existing access key whose secret or owner differs from the file's
    /// (without it, such a key is refused and nothing of the file is written).
    #[arg(long)]
    pub replace: bool,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true, env = "SHARDLET_META")]
    pub meta: Vec<String>,
    /// The admin's keys (`meta.admin`), or the cluster secret.
    #[command(flatten)]
    pub keys: KeyArguments,
}

/// One entry of the file. No `Debug`: it holds a secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    access_key: String,
    secret_key: String,
    owner: String,
}

pub async fn import_keys(
    arguments: KeyImportArguments,
    transport: &shardlet_net::Transport,
) -> anyhow::Result<()> {
    let records = read_key_file(&arguments.file)?;
    let catalog = Catalog::new(Arc::new(crate::connect::admin_meta_client(
        &arguments.meta,
        &arguments.keys,
        transport,
    )?));
    if !arguments.replace {
        // Refuse before writing anything when a key differs; the compare-and-set below
        // still refuses one that a concurrent writer changes in between.
        for (index, record) in records.iter().enumerate() {
            if let Some(existing) = catalog.credential(&record.access_key).await? {
                let what = match (
                    existing.secret_key == record.secret_key,
                    existing.owner == record.owner,
                ) {
                    (true, true) => continue,
                    (false, true) => "secret",
                    (true, false) => "owner",
                    (false, false) => "secret and owner",
                };
                anyhow::bail!(
                    "{}: entry {index}: access key {} exists with a different {what}: refused, nothing imported (--replace replaces it)",
                    arguments.file.display(),
                    record.access_key
                );
            }
        }
    }
    let buckets = Buckets::new(catalog);
    for record in &records {
        let done = match buckets.import_credential(record, arguments.replace).await {
            Ok(done) => done,
            Err(ImportError::Differs { access_key, what }) => anyhow::bail!(
                "{}: access key {access_key} exists with a different {what}: refused (--replace replaces it)",
                arguments.file.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot import access key {}", record.access_key)
                })
            }
        };
        out!(
            "{} access key {} (owner {})",
            done.as_str(),
            record.access_key,
            record.owner
        );
    }
    Ok(())
}

/// The credentials `path` declares, every one checked; errors name the file and the
/// entry (its index from 0, and the access key when it has a valid one) or, for JSON
/// that does not parse, the line and column.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<CredentialRecord>> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the key file {shown}"))?
        .len();
    anyhow::ensure!(
        size <= KEY_FILE_BYTES_MAX,
        "{shown}: {size} bytes; a key file holds at most {KEY_FILE_BYTES_MAX}"
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {shown}"))?;
    parse_key_file(&text, &shown.to_string())
}

fn parse_key_file(text: &str, shown: &str) -> anyhow::Result<Vec<CredentialRecord>> {
    // serde_json's message carries "at line L column C".
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|error| {
        anyhow::anyhow!(
            "{shown}: not a JSON list of {{\"access_key\", \"secret_key\", \"owner\"}}: {error}"
        )
    })?;
    anyhow::ensure!(
        entries.len() <= KEYS_PER_FILE_MAX,
        "{shown}: {} keys; a file declares at most {KEYS_PER_FILE_MAX}",
        entries.len()
    );
    let created_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let mut seen = std::collections::HashMap::new();
    let mut records = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let refuse =
            |field: &str, why: String| anyhow::anyhow!("{shown}: entry {index}: {field}: {why}");
        check_access_key(&entry.access_key).map_err(|why| refuse("access_key", why))?;
        let named = format!("access_key {}", entry.access_key);
        check_secret_key(&entry.secret_key).map_err(|why| refuse(&named, why))?;
        check_owner(&entry.owner).map_err(|why| refuse(&named, why))?;
        if let Some(first) = seen.insert(entry.access_key.clone(), index) {
            return Err(refuse(
                &named,
                format!("declared twice (also entry {first})"),
            ));
        }
        records.push(CredentialRecord {
            access_key: entry.access_key,
            secret_key: SecretKey(entry.secret_key),
            owner: entry.owner,
            created_unix_ms,
        });
    }
    Ok(records)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::admin_key_import::parse_key_file;

    const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY01";

    fn error_of(text: &str) -> String {
        format!(
            "{:#}",
            parse_key_file(text, "keys.json").expect_err("refused")
        )
    }

    #[test]
    fn a_valid_file_gives_every_key() {
        let text = format!(
            r#"[{{"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "{SECRET}", "owner": "alice"}},
               {{"access_key": "AKIAIOSFODNN7EXAMPL2", "secret_key": "{SECRET}", "owner": "bob"}}]"#
        );
        let records = parse_key_file(&text, "keys.json").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].owner, "bob");
        assert!(parse_key_file("[]", "keys.json").unwrap().is_empty());
    }

    #[test]
    fn a_file_past_its_limits_is_refused_naming_them() {
        let directory = tempfile::tempdir().unwrap();
        let large = directory.path().join("large.json");
        std::fs::write(
            &large,
            vec![b' '; (crate::admin_key_import::KEY_FILE_BYTES_MAX + 1) as usize],
        )
        .unwrap();
        let error = format!(
            "{:#}",
            crate::admin_key_import::read_key_file(&large).expect_err("too large")
        );
        assert!(
            error.contains("large.json") && error.contains("at most 1048576"),
            "{error}"
        );
        let entry = |index: usize| {
            format!(r#"{{"access_key":"AKIA{index:016}","secret_key":"{SECRET}","owner":"a"}}"#)
        };
        let many: Vec<String> = (0..=crate::admin_key_import::KEYS_PER_FILE_MAX)
            .map(entry)
            .collect();
        let error = error_of(&format!("[{}]", many.join(",")));
        assert!(
            error.contains("10001 keys; a file declares at most 10000"),
            "{error}"
        );
        let missing = directory.path().join("missing.json");
        let error = format!(
            "{:#}",
            crate::admin_key_import::read_key_file(&missing).expect_err("missing")
        );
        assert!(error.contains("missing.json"), "{error}");
    }

    #[test]
    fn bad_json_is_refused_with_its_line_and_column() {
        let error = error_of("[\n  {\"access_key\": \"AKIAIOSFODNN7EXAMPLE\",\n  ]");
        assert!(
            error.contains("keys.json") && error.contains("line 3 column"),
            "{error}"
        );
        let error = error_of(r#"{"access_key": "x"}"#);
        assert!(error.contains("JSON list"), "{error}");
        let error = error_of(
            r#"[{"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "s", "owner": "a", "extra": 1}]"#,
        );
        assert!(error.contains("unknown field `extra`"), "{error}");
        let error = error_of(r#"[{"access_key": "AKIAIOSFODNN7EXAMPLE", "owner": "a"}]"#);
        assert!(error.contains("missing field `secret_key`"), "{error}");
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_index_and_field_and_never_shows_the_secret() {
        let entry = |access: &str, secret: &str, owner: &str| {
            format!(r#"{{"access_key": "{access}", "secret_key": "{secret}", "owner": "{owner}"}}"#)
        };
        let good = entry("AKIAIOSFODNN7EXAMPLE", SECRET, "alice");
        for (bad, field) in [
            (entry("AK/1", SECRET, "alice"), "access_key"),
            (
                entry("AKIAIOSFODNN7EXAMPL2", "too-short-secret", "alice"),
                "AKIAIOSFODNN7EXAMPL2",
            ),
            (
                entry("AKIAIOSFODNN7EXAMPL2", SECRET, "no spaces"),
                "AKIAIOSFODNN7EXAMPL2",
            ),
            (
                entry("AKIAIOSFODNN7EXAMPLE", SECRET, "bob"),
                "declared twice",
            ),
        ] {
            let error = error_of(&format!("[{good}, {bad}]"));
            assert!(
                error.contains("keys.json: entry 1") && error.contains(field),
                "{error}"
            );
            assert!(
                !error.contains(SECRET) && !error.contains("too-short-secret"),
                "{error}"
            );
        }
    }
}
