//! The disk queue: what the agent acknowledged survives SIGKILL (at random
//! points, appends in flight included), damaged and torn records cost only
//! themselves, and one directory serves one agent.
// Sockets and child processes: Miri runs the crate's unit tests and the
// disk log's model test instead.
#![cfg(not(miri))]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use otlp_agent::{AgentConfig, AgentError, DiskQueue, Fsync, QueueMode, SignalKind};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::Protocol;

const AGENT: &str = env!("CARGO_BIN_EXE_otlp-agent");

/// Requests these tests allow: a record must fit in a 1 MiB segment.
const SMALL_BODIES: usize = 512 << 10;

fn disk(dir: &Path) -> QueueMode {
    let mut queue = DiskQueue::new(dir);
    queue.segment_bytes = 1 << 20;
    queue.fsync = Fsync::Always;
    QueueMode::Disk(queue)
}

fn with_disk(dir: &Path) -> impl FnOnce(&mut AgentConfig) {
    let queue = disk(dir);
    move |c: &mut AgentConfig| {
        c.queue = queue;
        c.max_body_bytes = SMALL_BODIES;
        c.shutdown_timeout = Duration::from_millis(200);
        c.upstream = c.upstream.clone().with_timeout(Duration::from_millis(300));
    }
}

/// The agent binary on a disk queue in `dir`, forwarding to `endpoint`;
/// returns the child and its gRPC endpoint.
fn spawn_agent(dir: &Path, endpoint: &str) -> (Child, String) {
    let mut child = Command::new(AGENT)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--listen-http",
            "none",
            "--quiet",
        ])
        .args(["--worker-threads", "1", "--export-threads", "1"])
        .args(["--queue", "disk", "--queue-dir"])
        .arg(dir)
        .args(["--segment-bytes", "64KiB", "--max-body-bytes", "32KiB"])
        .args(["--timeout", "300ms"])
        .args(["--endpoint", endpoint])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = grpc_endpoint(&mut child);
    (child, endpoint)
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: `kill` with a child's pid and a valid signal number has no
    // memory effects in this process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[test]
fn what_was_acknowledged_survives_sigkill_at_random_points() {
    let dir = TempDir::new("sigkill");
    let (_, dead) = dead_endpoint();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    // Each run: a sender keeps requests coming (several in flight, so
    // appends are in progress) and the agent is killed after a random
    // delay; every request answered OK must come out in the end.
    const RUNS: usize = 6;
    for run in 0..RUNS {
        let (mut child, endpoint) = spawn_agent(&dir.0, &dead);
        let client = Arc::new(client(
            &runtime,
            &endpoint,
            Protocol::Grpc,
            SignalKind::Traces,
        ));
        let senders: Vec<_> = (0..4)
            .map(|task| {
                let (client, acknowledged) = (Arc::clone(&client), Arc::clone(&acknowledged));
                runtime.spawn(async move {
                    for i in 0.. {
                        let tag = format!("r{run}-t{task}-{i}");
                        let message = request(SignalKind::Traces, &tag, 2);
                        if client.send(client.prepare(message)).await.is_ok() {
                            acknowledged.lock().unwrap().insert(tag);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(fastrand::u64(20..200)));
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        for sender in senders {
            sender.abort();
        }
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "some requests were acknowledged");
    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    upstream.keep_requests(1_000_000);
    let (child, _) = spawn_agent(&dir.0, &upstream.endpoint());
    let expected = 2 * acknowledged.len() as u64;
    wait_for("every acknowledged span upstream", || {
        upstream.stats().unique_items() >= expected
    });
    signal(&child, libc::SIGTERM);
    let mut child = child;
    assert!(child.wait().unwrap().success());
    let arrived: BTreeSet<String> = names(upstream.take_requests())
        .into_iter()
        .map(|name| name.rsplit_once('-').unwrap().0.to_owned())
        .collect();
    let missing: Vec<_> = acknowledged.difference(&arrived).collect();
    eprintln!(
        "{RUNS} kills, {} requests acknowledged, {} distinct requests arrived",
        acknowledged.len(),
        arrived.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged requests never arrived after {RUNS} kills: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

#[test]
fn a_directory_serves_one_live_agent() {
    let dir = TempDir::new("lock");
    let (_, dead) = dead_endpoint();
    let first = agent(&dead, with_disk(&dir.0));
    let config = AgentConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        listen_http: None,
        queue: disk(&dir.0),
        max_body_bytes: SMALL_BODIES,
        upstream: otlp_sdk::otlp::OtlpExporterBuilder::new()
            .with_endpoint(dead.as_str())
            .without_env(),
        ..AgentConfig::default()
    };
    match otlp_agent::Agent::start(config.clone()) {
        Err(AgentError::Disk(e)) => assert!(
            e.to_string().contains("lock")
                || e.to_string().contains("Lock")
                || e.to_string().contains("another"),
            "{e}"
        ),
        other => panic!("a second agent on the directory must be refused, got {other:?}"),
    }
    first.shutdown();
    otlp_agent::Agent::start(config)
        .expect("free again")
        .shutdown();
}

/// Queues `n` requests of 3 spans tagged `d{i}` in a disk-queue agent
/// whose upstream is down, and shuts it down: they stay on disk.
fn leave_on_disk(dir: &Path, n: usize) {
    let (_, dead) = dead_endpoint();
    let agent = agent(&dead, with_disk(dir));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(
        &runtime,
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Traces,
    );
    runtime.block_on(async {
        for i in 0..n {
            let message = request(SignalKind::Traces, &format!("d{i}"), 3);
            client.send(client.prepare(message)).await.unwrap();
        }
    });
    let report = agent.shutdown();
    assert_eq!(report.stats.traces.left_on_disk_items, 3 * n as u64);
    assert_eq!(report.stats.traces.dropped_items(), 0);
    assert_eq!(report.stats.traces.unaccounted(), 0);
}

/// Starts a disk-queue agent on `dir` in front of a fresh upstream and
/// waits until `expected` spans arrived; returns the agent's figures and
/// the span names.
fn replay(dir: &Path, expected: u64) -> (otlp_agent::SignalStats, Vec<String>) {
    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    upstream.keep_requests(10_000);
    let agent = agent(&upstream.endpoint(), with_disk(dir));
    wait_for("the replayed spans", || upstream.stats().spans >= expected);
    let stats = agent.shutdown().stats.traces;
    (stats, names(upstream.take_requests()))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg") && p.metadata().unwrap().len() > 0)
        .collect();
    out.sort();
    out
}

#[test]
fn a_restart_replays_everything_left_on_disk() {
    let dir = TempDir::new("replay");
    leave_on_disk(&dir.0, 5);
    let (stats, names) = replay(&dir.0, 15);
    assert_eq!((stats.replayed_requests, stats.replayed_items), (5, 15));
    assert_eq!(stats.exported_items, 15);
    assert_eq!(names.len(), 15);
    assert_eq!(stats.unaccounted(), 0);
    // Exported and acknowledged: a third start finds nothing.
    let (stats, _) = replay(&dir.0, 0);
    assert_eq!(stats.replayed_items, 0);
}

#[test]
fn a_damaged_record_is_skipped_and_counted_and_the_rest_delivered() {
    let dir = TempDir::new("flip");
    leave_on_disk(&dir.0, 5);
    let segment = segments(&dir.0).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .windows(3)
        .position(|w| w == b"d2-")
        .expect("request d2 is on disk");
    bytes[at] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let (stats, names) = replay(&dir.0, 12);
    assert_eq!(stats.corrupt_records, 1);
    assert_eq!(stats.replayed_items, 12);
    assert!(!names.iter().any(|n| n.starts_with("d2-")), "{names:?}");
    assert_eq!(names.len(), 12);
}

#[test]
fn a_torn_last_record_is_cut_and_the_rest_delivered() {
    let dir = TempDir::new("torn");
    leave_on_disk(&dir.0, 4);
    let segment = segments(&dir.0).pop().expect("a segment");
    let len = segment.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (stats, names) = replay(&dir.0, 9);
    assert!(stats.truncated_bytes > 0);
    assert_eq!(stats.replayed_items, 9);
    assert_eq!(names.len(), 9);
    assert!(!names.iter().any(|n| n.starts_with("d3-")), "{names:?}");
}

#[test]
fn the_disk_cap_backpressures_then_recovers() {
    let dir = TempDir::new("cap");
    let (dead, endpoint) = dead_endpoint();
    let one = request(SignalKind::Traces, "cap", 20);
    let agent = agent(&endpoint, |c| {
        with_disk(&dir.0)(c);
        // Room for two requests, not three.
        c.queue_max_bytes = one.len() * 5 / 2;
        c.batch_max_bytes = one.len();
        c.max_body_bytes = one.len();
        c.upstream = c.upstream.clone().with_timeout(Duration::from_secs(2));
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let grpc = client(
        &runtime,
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Traces,
    );
    runtime.block_on(async {
        grpc.send(grpc.prepare(one.clone())).await.unwrap();
        grpc.send(grpc.prepare(one.clone())).await.unwrap();
        let refused = grpc.send(grpc.prepare(one.clone())).await;
        assert!(
            matches!(
                refused,
                Err(otlp_sdk::otlp::SendError::Retryable {
                    retry_after: Some(_),
                    ..
                })
            ),
            "a full disk queue refuses with retry advice: {refused:?}"
        );
    });
    let upstream = Receiver::start(ReceiverConfig {
        addr: revive(dead),
        ..ReceiverConfig::default()
    })
    .unwrap();
    wait_for("the queued spans upstream", || upstream.stats().spans == 40);
    wait_for("room again", || agent.stats().traces.queued_items == 0);
    runtime.block_on(async { grpc.send(grpc.prepare(one.clone())).await.unwrap() });
    wait_for("the next spans", || upstream.stats().spans == 60);
    let t = agent.shutdown().stats.traces;
    assert_eq!(
        (t.accepted_items, t.exported_items, t.refused_full_requests),
        (60, 60, 1)
    );
    assert_eq!(t.unaccounted(), 0);
}

#[test]
fn a_queue_directory_that_cannot_be_made_is_an_error_at_start() {
    let file = TempDir::new("notadir");
    let blocker = file.0.join("plain-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let (_, dead) = dead_endpoint();
    let config = AgentConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        listen_http: None,
        queue: disk(&blocker.join("queue")),
        max_body_bytes: SMALL_BODIES,
        upstream: otlp_sdk::otlp::OtlpExporterBuilder::new()
            .with_endpoint(dead.as_str())
            .without_env(),
        ..AgentConfig::default()
    };
    match otlp_agent::Agent::start(config) {
        Err(AgentError::Disk(e)) => {
            assert!(
                e.to_string().contains("plain-file"),
                "the error names the path: {e}"
            )
        }
        other => panic!("expected a disk queue error, got {other:?}"),
    }
}
