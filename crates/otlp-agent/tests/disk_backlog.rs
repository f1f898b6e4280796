//! The disk queue past memory: an upstream outage longer than memory could
//! hold builds a backlog on disk that all arrives (live and after a
//! restart), `--on-full drop-oldest` counts what it drops, and a full
//! filesystem (a real ENOSPC, on a tmpfs mounted for the test) is a
//! retryable refusal with a log line, then recovers.
// Sockets and child processes: Miri runs the crate's unit tests and the
// disk log's model test instead.
#![cfg(not(miri))]

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use otlp_agent::{AgentConfig, DiskQueue, OnFull, QueueMode, SignalKind};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{Protocol, SendError};

const AGENT: &str = env!("CARGO_BIN_EXE_otlp-agent");
/// Spans per request.
const SPANS: usize = 20;

/// A disk queue in `dir` that may hold about `memory_requests` requests
/// like `one` in memory, and `disk_requests` of them on disk.
fn small_disk_queue(
    dir: &Path,
    one: usize,
    memory_requests: usize,
    disk_requests: usize,
    on_full: OnFull,
) -> impl FnOnce(&mut AgentConfig) {
    move |c: &mut AgentConfig| {
        let record = one + 20;
        let mut disk = DiskQueue::new(dir);
        disk.segment_bytes = (record * 4) as u64;
        disk.memory_bytes = one * memory_requests;
        disk.on_full = on_full;
        c.queue = QueueMode::Disk(disk);
        c.queue_max_bytes = record * disk_requests;
        c.batch_max_bytes = one;
        c.max_body_bytes = one;
        c.shutdown_timeout = Duration::from_millis(200);
        c.upstream = c.upstream.clone().with_timeout(Duration::from_millis(300));
    }
}

/// Sends `n` requests tagged `{tag}{i}`; each must be accepted.
fn send_all(endpoint: &str, tag: &str, n: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(&runtime, endpoint, Protocol::Grpc, SignalKind::Traces);
    runtime.block_on(async {
        for i in 0..n {
            let message = request(SignalKind::Traces, &format!("{tag}{i}"), SPANS);
            client.send(client.prepare(message)).await.unwrap();
        }
    });
}

fn one_len() -> usize {
    request(SignalKind::Traces, "b00", SPANS).len()
}

#[test]
fn an_outage_longer_than_memory_builds_a_backlog_on_disk_that_all_arrives() {
    let dir = TempDir::new("backlog");
    let (dead, endpoint) = dead_endpoint();
    // Memory for 3 requests, disk for 100: 40 requests are all accepted.
    let agent = agent(
        &endpoint,
        small_disk_queue(&dir.0, one_len(), 3, 100, OnFull::Backpressure),
    );
    send_all(&agent.endpoint(), "b", 40);
    let t = agent.stats().traces;
    assert_eq!((t.accepted_items, t.queued_items), (800, 800));
    assert!(
        t.disk_only_items >= 700,
        "most of the backlog waits on disk only: {t:?}"
    );
    assert_eq!(t.refused_full_requests, 0);

    let upstream = Receiver::start(ReceiverConfig {
        addr: revive(dead),
        ..ReceiverConfig::default()
    })
    .unwrap();
    upstream.keep_requests(10_000);
    wait_for("the backlog upstream", || upstream.stats().spans >= 800);
    wait_for("an empty queue", || agent.stats().traces.queued_items == 0);
    let t = agent.shutdown().stats.traces;
    assert_eq!((t.exported_items, t.disk_only_items), (800, 0));
    assert_eq!(t.unaccounted(), 0);
    let names: BTreeSet<String> = names(upstream.take_requests()).into_iter().collect();
    assert_eq!(names.len(), 800, "every span once");
    assert_eq!(upstream.stats().spans, 800, "none twice");
}

#[test]
fn a_backlog_larger_than_memory_is_replayed_after_a_restart() {
    let dir = TempDir::new("backlog-restart");
    let (_, dead) = dead_endpoint();
    let queue =
        |c: &mut AgentConfig| small_disk_queue(&dir.0, one_len(), 3, 100, OnFull::Backpressure)(c);
    let first = agent(&dead, queue);
    send_all(&first.endpoint(), "r", 30);
    let report = first.shutdown();
    assert_eq!(report.stats.traces.left_on_disk_items, 600);

    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    upstream.keep_requests(10_000);
    // Memory for 3 requests again: the replay reads the rest back as
    // exports free room.
    let second = agent(&upstream.endpoint(), queue);
    wait_for("the replayed backlog", || upstream.stats().spans >= 600);
    wait_for("an empty queue", || second.stats().traces.queued_items == 0);
    let t = second.shutdown().stats.traces;
    assert_eq!((t.replayed_requests, t.replayed_items), (30, 600));
    assert_eq!((t.exported_items, t.disk_only_items), (600, 0));
    assert_eq!(t.unaccounted(), 0);
    let names: BTreeSet<String> = names(upstream.take_requests()).into_iter().collect();
    assert_eq!(names.len(), 600);
}

#[test]
fn drop_oldest_makes_room_and_counts_what_it_dropped() {
    let dir = TempDir::new("drop-oldest");
    let (dead, endpoint) = dead_endpoint();
    // Memory for 2 requests, disk for 12 (3 segments of 4).
    let agent = agent(
        &endpoint,
        small_disk_queue(&dir.0, one_len(), 2, 12, OnFull::DropOldest),
    );
    send_all(&agent.endpoint(), "o", 40);
    let t = agent.stats().traces;
    assert_eq!(t.refused_full_requests, 0, "drop-oldest never refuses");
    assert_eq!(t.accepted_items, 800);
    assert!(t.dropped_disk_full_items > 0, "{t:?}");
    assert!(t.disk_bytes <= t.queued_bytes + 12 * (one_len() as u64 + 20));

    let upstream = Receiver::start(ReceiverConfig {
        addr: revive(dead),
        ..ReceiverConfig::default()
    })
    .unwrap();
    upstream.keep_requests(10_000);
    wait_for("an empty queue", || agent.stats().traces.queued_items == 0);
    let t = agent.shutdown().stats.traces;
    assert_eq!(t.unaccounted(), 0);
    assert_eq!(
        t.exported_items + t.dropped_disk_full_items,
        800,
        "exported or dropped by drop-oldest: {t:?}"
    );
    let names = names(upstream.take_requests());
    assert_eq!(names.len() as u64, t.exported_items);
    assert!(
        names.iter().any(|n| n.starts_with("o39-")),
        "the newest request is kept"
    );
}

/// Whether this process may mount a tmpfs in a mount namespace of its own.
fn can_mount_tmpfs(dir: &Path) -> bool {
    Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k none \"$1\"",
            "sh",
        ])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_full_filesystem_is_a_retryable_refusal_with_a_log_line_then_recovers() {
    let dir = TempDir::new("enospc");
    if !can_mount_tmpfs(&dir.0) {
        // CI and the development machines run as root; a sandbox without
        // mount namespaces cannot make a real ENOSPC.
        eprintln!("skipped: cannot mount a tmpfs in a mount namespace here");
        return;
    }
    let (dead, endpoint) = dead_endpoint();
    // The agent in a mount namespace of its own, its queue on a 160 KiB
    // tmpfs: the filesystem fills long before the 64 MiB cap.
    let mut child = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg("dir=$1; shift; mount -t tmpfs -o size=160k none \"$dir\" && exec \"$@\"")
        .arg("sh")
        .arg(&dir.0)
        .arg(AGENT)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--listen-http",
            "none",
            "--quiet",
        ])
        .args(["--worker-threads", "1", "--export-threads", "1"])
        .args(["--queue", "disk", "--queue-dir"])
        .arg(&dir.0)
        .args(["--segment-bytes", "16KiB", "--max-body-bytes", "8KiB"])
        .args(["--batch-max-bytes", "8KiB", "--queue-memory-bytes", "64KiB"])
        .args(["--queue-max-bytes", "64MiB", "--timeout", "300ms"])
        .args(["--endpoint", &endpoint])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let agent_endpoint = grpc_endpoint(&mut child);
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(
        &runtime,
        &agent_endpoint,
        Protocol::Grpc,
        SignalKind::Traces,
    );
    let (acked, refused) = runtime.block_on(async {
        let mut acked = 0;
        for i in 0..400 {
            let message = request(SignalKind::Traces, &format!("f{i}"), SPANS);
            match client.send(client.prepare(message)).await {
                Ok(_) => acked += 1,
                Err(e) => return (acked, Some(e)),
            }
        }
        (acked, None)
    });
    assert!(
        matches!(
            refused,
            Some(SendError::Retryable {
                retry_after: Some(_),
                ..
            })
        ),
        "a full filesystem refuses with retry advice after {acked} requests: {refused:?}"
    );
    assert!(acked > 5, "the tmpfs held some requests first: {acked}");
    wait_for("the log line", || {
        log.lock().unwrap().contains("no space left on the device")
    });

    // The upstream comes back: the backlog drains, segments are deleted,
    // the filesystem has room again and requests are accepted.
    let upstream = Receiver::start(ReceiverConfig {
        addr: revive(dead),
        ..ReceiverConfig::default()
    })
    .unwrap();
    upstream.keep_requests(10_000);
    let expected = (acked * SPANS) as u64;
    wait_for("every acknowledged span", || {
        upstream.stats().spans >= expected
    });
    let accepted_again = runtime.block_on(async {
        for attempt in 0..200 {
            let message = request(SignalKind::Traces, &format!("g{attempt}"), SPANS);
            if client.send(client.prepare(message)).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(accepted_again, "space came back");
    wait_for("the new request upstream", || {
        upstream.stats().spans >= expected + SPANS as u64
    });
    stop_agent(&mut child);
    let _ = reader.join();
    let names: BTreeSet<String> = names(upstream.take_requests()).into_iter().collect();
    for i in 0..acked {
        assert!(
            names.contains(&format!("f{i}-0")),
            "acknowledged request f{i} arrived"
        );
    }
}

/// Stops the agent child (SIGKILL; its mount namespace goes with it).
fn stop_agent(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}
