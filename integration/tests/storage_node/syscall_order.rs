//! What kill -9 cannot show: a process crash keeps the page cache, so only the order of
//! the node's system calls proves that an acknowledgement waits for the disk. The node
//! runs under `strace -f`. A fragment larger than a block is a file: its PUT must be
//! answered only after `fdatasync` of its temporary file, the `rename` into
//! `fragments/xx/`, and an `fsync` of that directory that started after the rename; a
//! DELETE only after the `unlink` and such an `fsync`. A small fragment goes to the
//! small-fragment store: PUT and DELETE are answered only after a sync of its write-ahead
//! log that started after the record was written to it.
//!
//! Needs `strace` (installed by `scripts/install-deps.sh test`).

use std::collections::HashMap;
use std::time::Duration;

use shardlet_testkit::{
    pattern_bytes, random_fragment_id, shardlet_binary, wait_until, NodeOptions, NodeProcess,
};

/// One system call: its name, its text (both halves if it was interrupted by another
/// thread's line), and the trace lines where it started and returned.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    text: String,
    start: usize,
    end: usize,
}

fn parse_trace(trace: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut pending: HashMap<&str, (String, String, usize)> = HashMap::new();
    for (index, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            if let Some((name, text, start)) = pending.remove(pid) {
                calls.push(Call {
                    name,
                    text: format!("{text} {resumed}"),
                    start,
                    end: index,
                });
            }
        } else if let Some(paren) = rest.find('(') {
            let name = rest[..paren].to_string();
            if rest.ends_with("<unfinished ...>") {
                pending.insert(pid, (name, rest.to_string(), index));
            } else {
                calls.push(Call {
                    name,
                    text: rest.to_string(),
                    start: index,
                    end: index,
                });
            }
        }
    }
    calls.sort_by_key(|call| call.start);
    calls
}

fn first<'a>(calls: &'a [Call], what: &str, matches: impl Fn(&Call) -> bool) -> &'a Call {
    calls
        .iter()
        .find(|call| matches(call))
        .unwrap_or_else(|| panic!("no {what} in the trace"))
}

fn is_sync(call: &Call) -> bool {
    call.name == "fsync" || call.name == "fdatasync"
}

/// The value a call returned (`= N` at the end of its line).
fn returned(call: &Call) -> Option<i64> {
    call.text
        .rsplit_once("= ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A call on the small-fragment store's write-ahead log (`small/NNNNNN.log`).
fn on_small_log(call: &Call) -> bool {
    call.text.contains("/small/") && call.text.contains(".log>")
}

fn is_socket_write(call: &Call, status_line: &str) -> bool {
    ["write", "writev", "sendto", "sendmsg"].contains(&call.name.as_str())
        && call.text.contains(status_line)
}

/// Starts a node under `strace`, PUTs a fragment of `length` bytes and DELETEs it (201,
/// 204), and returns the fragment's id and the node's system calls until both answers.
async fn traced_put_and_delete(length: usize) -> (String, Vec<Call>) {
    let trace_dir = tempfile::tempdir().unwrap();
    let trace_path = trace_dir.path().join("node.strace");
    let node = NodeProcess::start(
        &shardlet_binary!(),
        NodeOptions {
            trace_syscalls_to: Some(trace_path.clone()),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = node.client();
    let id = random_fragment_id();
    assert_eq!(client.put(&id, &pattern_bytes(length, 1)).await.status, 201);
    assert_eq!(client.delete(&id).await.status, 204);

    let read_trace = || std::fs::read_to_string(&trace_path).unwrap_or_default();
    wait_until(
        Duration::from_secs(30),
        "strace wrote both responses",
        || {
            let trace = read_trace();
            async move { trace.contains("HTTP/1.1 201") && trace.contains("HTTP/1.1 204") }
        },
    )
    .await;
    (id, parse_trace(&read_trace()))
}

/// The first `syscall` (`rename`, `unlink`) on fragment `id` under fragments/, the
/// fsync of the fragment's directory after it, and the `status` response; asserts that
/// the response is sent only after that fsync returned.
fn acknowledged_after_directory_sync<'a>(
    calls: &'a [Call],
    id: &str,
    syscall: &str,
    status: u16,
) -> [&'a Call; 3] {
    let directory = format!("/fragments/{}>", &id[..2]);
    let change = first(calls, &format!("{syscall} of the fragment"), |call| {
        call.name.starts_with(syscall)
            && call.text.contains("/fragments/")
            && call.text.contains(id)
    });
    let directory_sync = first(
        calls,
        &format!("directory fsync after the {syscall}"),
        |call| is_sync(call) && call.text.contains(&directory) && call.start > change.end,
    );
    let response = first(calls, &format!("the {status} response"), |call| {
        is_socket_write(call, &format!("HTTP/1.1 {status}"))
    });
    assert!(
        directory_sync.end < response.start,
        "the {status} is sent after the directory fsync returned: {directory_sync:?} {response:?}"
    );
    [change, directory_sync, response]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_wait_for_fdatasync_rename_and_directory_fsync() {
    let (id, calls) = traced_put_and_delete(100 * 1024).await;

    let data_sync = first(&calls, "fdatasync of the temporary file", |call| {
        is_sync(call) && call.text.contains("/tmp/") && call.text.contains(&id)
    });
    let [rename, put_directory_sync, created] =
        acknowledged_after_directory_sync(&calls, &id, "rename", 201);
    assert!(
        data_sync.end < rename.start,
        "fdatasync returns before the rename: {data_sync:?} {rename:?}"
    );
    let [unlink, delete_directory_sync, deleted] =
        acknowledged_after_directory_sync(&calls, &id, "unlink", 204);
    for call in [
        data_sync,
        rename,
        put_directory_sync,
        created,
        unlink,
        delete_directory_sync,
        deleted,
    ] {
        eprintln!("trace lines {}..={}: {}", call.start, call.end, call.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fragment_acknowledgements_wait_for_the_log_sync() {
    let length = 9000;
    let (id, calls) = traced_put_and_delete(length).await;

    let created = first(&calls, "the 201 response", |call| {
        is_socket_write(call, "HTTP/1.1 201")
    });
    // The record carries the whole fragment: one log write at least as long as it.
    let record = first(&calls, "the fragment's log record", |call| {
        call.name.starts_with("write")
            && on_small_log(call)
            && returned(call).is_some_and(|written| written >= length as i64)
    });
    let record_sync = first(&calls, "a log sync after the record", |call| {
        is_sync(call) && on_small_log(call) && call.start > record.end
    });
    assert!(
        record_sync.end < created.start,
        "the 201 is sent after the log sync returned: {record_sync:?} {created:?}"
    );
    assert!(
        !calls.iter().any(|call| call.name.starts_with("rename")
            && call.text.contains("/fragments/")
            && call.text.contains(&id)),
        "a small fragment is not a file"
    );

    let deleted = first(&calls, "the 204 response", |call| {
        is_socket_write(call, "HTTP/1.1 204")
    });
    let tombstone = first(&calls, "the deletion's log record", |call| {
        call.name.starts_with("write") && on_small_log(call) && call.start > created.end
    });
    let tombstone_sync = first(&calls, "a log sync after the deletion record", |call| {
        is_sync(call) && on_small_log(call) && call.start > tombstone.end
    });
    assert!(
        tombstone_sync.end < deleted.start,
        "the 204 is sent after the log sync returned: {tombstone_sync:?} {deleted:?}"
    );
    for call in [
        record,
        record_sync,
        created,
        tombstone,
        tombstone_sync,
        deleted,
    ] {
        eprintln!("trace lines {}..={}: {}", call.start, call.end, call.text);
    }
}
