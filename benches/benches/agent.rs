//! otlp-agent forwarding, sender to upstream in one process (standalone
//! extras, not criterion timings):
//!
//! * `agent_forward/workers_N_spans_per_cpu_s/ours`: a sender keeps 16
//!   pre-encoded OTLP/gRPC requests of 100 spans in flight for 2 s against
//!   an agent with N receiving threads and one sending thread, which
//!   forwards to an upstream that accepts without decoding; spans that
//!   arrived upstream per second of CPU time of the agent's own threads
//!   (higher is better). `rotel`: the same load through Rotel, a Rust OTLP
//!   collector, when `ROTEL_BIN` names its binary (built outside this
//!   repository), its CPU time read from /proc/PID/stat.
//! * `agent_forward/disk_POLICY_spans_per_cpu_s/ours` and
//!   `disk_POLICY_write_amplification/ours`: the same with the disk queue
//!   (`--fsync always`, `interval` 100 ms, `never`); bytes this process
//!   wrote to storage (/proc/self/io) per byte of request acknowledged.
//! * `agent_hop/p50_us_at_100k` and `p99_us_at_100k`: 100 spans every
//!   millisecond (100 K spans/s) for 2 s, each request stamped with its
//!   send time as the spans' end time; the upstream (otlp-receiver,
//!   counting) measures end → arrival. `ours` goes through the agent,
//!   `no-agent` straight to the upstream: the difference is the hop.
//!   `disk_always_…`, `disk_interval_100ms_…`, `disk_never_…`: through the
//!   agent with the disk queue, per fsync policy.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_agent::{Agent, AgentConfig, DiskQueue, Fsync, QueueMode};
use otlp_benches::{OURS, extra_selected, record_extra};
use otlp_receiver::{Receiver, ReceiverConfig, Sink, SinkRequest, Verdict, VerdictFuture};
use otlp_sdk::otlp::{OtlpExporterBuilder, OtlpRequestSender, Signal};
use prost::Message;

const RUN: Duration = Duration::from_secs(2);
const SPANS: usize = 100;

/// An upstream that accepts every request without decoding it, counting
/// its spans with the agent's wire walk.
#[derive(Default)]
struct Accept(AtomicU64);

impl Sink for Accept {
    fn export(&self, request: SinkRequest) -> VerdictFuture {
        let spans = otlp_agent::wire::count_items(request.signal, &request.message)
            .map_or(0, |count| count.items);
        self.0.fetch_add(spans, Ordering::Relaxed);
        Box::pin(std::future::ready(Verdict::accepted()))
    }
}

/// CPU time (user + system) of another process, from /proc/PID/stat.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Keeps 16 requests in flight against `endpoint` for the run; returns
/// the spans of the requests that were acknowledged.
fn load(runtime: &tokio::runtime::Runtime, endpoint: &str) -> u64 {
    let client = client(runtime, endpoint);
    let body = client.prepare(request(now_ns()));
    let deadline = Instant::now() + RUN;
    let acknowledged = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (client, body, acknowledged) =
                (Arc::clone(&client), body.clone(), Arc::clone(&acknowledged));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    // A refusal (queue full) is retried at once: answering
                    // it is part of what forwarding costs.
                    if client.send(body.clone()).await.is_ok() {
                        acknowledged.fetch_add(SPANS as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    acknowledged.load(Ordering::Relaxed)
}

/// Waits until `arrived` reaches `expected` or stops growing for 2 s.
fn settle(arrived: impl Fn() -> u64, expected: u64) -> u64 {
    let (mut last, mut since) = (arrived(), Instant::now());
    while last < expected && since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
        let now = arrived();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// Rotel (a Rust OTLP collector) forwarding the same load, when
/// `ROTEL_BIN` names a built binary: spans arrived upstream per second of
/// Rotel's CPU time. Built outside this repository (docs/agent.md).
fn rotel_throughput(rotel: &str) -> Option<f64> {
    let sink = Arc::new(Accept::default());
    let upstream = Receiver::start_with_sink(ReceiverConfig::default(), sink.clone()).ok()?;
    let (grpc, http) = (free_port(), free_port());
    let mut child = std::process::Command::new(rotel)
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
        ])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .args([
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            &upstream.endpoint(),
        ])
        .args([
            "--otlp-exporter-protocol",
            "grpc",
            "--otlp-exporter-compression",
            "none",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .ok()?;
    let cpu_before = process_cpu(child.id())?;
    let acknowledged = load(&runtime, &endpoint);
    let arrived = settle(|| sink.0.load(Ordering::Relaxed), acknowledged);
    let cpu = process_cpu(child.id())? - cpu_before;
    let _ = child.kill();
    let _ = child.wait();
    Some(arrived as f64 / cpu.as_secs_f64().max(1e-9))
}

fn request(end_ns: u64) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..SPANS)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: "GET /api/orders".to_owned(),
                        start_time_unix_nano: end_ns.saturating_sub(1_000_000),
                        end_time_unix_nano: end_ns,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn agent(upstream: &str, workers: usize, queue: QueueMode) -> Agent {
    Agent::start(AgentConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        listen_http: None,
        upstream: OtlpExporterBuilder::new()
            .with_endpoint(upstream)
            .without_env(),
        worker_threads: workers,
        export_threads: 1,
        queue,
        ..AgentConfig::default()
    })
    .expect("agent")
}

/// A disk queue in a fresh directory under the system's temporary one
/// (removed by the caller through the returned path).
fn disk_queue(fsync: Fsync) -> (QueueMode, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "otlp-agent-bench-{}-{}",
        std::process::id(),
        now_ns()
    ));
    let mut disk = DiskQueue::new(&dir);
    disk.fsync = fsync;
    let queue = QueueMode::Disk(disk);
    (queue, dir)
}

/// Bytes this process has caused to be written to storage so far
/// (`write_bytes` of /proc/self/io); `None` where it cannot be read.
fn storage_writes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))?
        .trim()
        .parse()
        .ok()
}

fn client(runtime: &tokio::runtime::Runtime, endpoint: &str) -> Arc<OtlpRequestSender> {
    let _inside = runtime.enter();
    Arc::new(
        OtlpExporterBuilder::new()
            .with_endpoint(endpoint)
            .without_env()
            .build_request_sender(Signal::Spans)
            .expect("client"),
    )
}

/// Spans arrived upstream per agent CPU-second, and bytes written to
/// storage per byte acknowledged (0 for the memory queue).
fn throughput(workers: usize, queue: QueueMode) -> (f64, f64) {
    let sink = Arc::new(Accept::default());
    let upstream =
        Receiver::start_with_sink(ReceiverConfig::default(), sink.clone()).expect("upstream");
    let agent = agent(&upstream.endpoint(), workers, queue);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu_before = agent.cpu_time().unwrap_or_default();
    let written_before = storage_writes();
    let acknowledged = load(&runtime, &agent.endpoint());
    let arrived = settle(|| sink.0.load(Ordering::Relaxed), acknowledged);
    let cpu = agent.cpu_time().unwrap_or_default() - cpu_before;
    let written = storage_writes()
        .zip(written_before)
        .map_or(0, |(after, before)| after - before);
    let request_bytes = request(0).len() as f64;
    let stats = agent.shutdown().stats.traces;
    assert_eq!(stats.unaccounted(), 0);
    let amplification =
        written as f64 / (acknowledged as f64 / SPANS as f64 * request_bytes).max(1.0);
    (arrived as f64 / cpu.as_secs_f64().max(1e-9), amplification)
}

/// End → arrival p50 and p99 in µs at 100 K spans/s, through the agent or not.
fn hop_latency(through_agent: Option<QueueMode>) -> (f64, f64) {
    let upstream = Receiver::start(ReceiverConfig::default()).expect("upstream");
    let agent = through_agent.map(|queue| agent(&upstream.endpoint(), 1, queue));
    let target = agent
        .as_ref()
        .map_or_else(|| upstream.endpoint(), Agent::endpoint);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = client(&runtime, &target);
    let sent = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let deadline = Instant::now() + RUN;
        let mut sent = 0u64;
        while Instant::now() < deadline {
            tick.tick().await;
            let client = Arc::clone(&client);
            let body = client.prepare(request(now_ns()));
            tokio::spawn(async move { client.send(body).await });
            sent += SPANS as u64;
        }
        sent
    });
    while upstream.stats().spans < sent {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(agent) = agent {
        agent.shutdown();
    }
    let latency = upstream.finish().latency;
    let us = |q: f64| latency.quantile(q) as f64 / 1e3;
    (us(0.5), us(0.99))
}

fn agent_benches(_c: &mut Criterion) {
    let rotel = std::env::var("ROTEL_BIN")
        .ok()
        .filter(|path| !path.is_empty());
    for workers in [1, 2] {
        let scenario = format!("workers_{workers}_spans_per_cpu_s");
        if extra_selected(&format!("agent_forward/{scenario}/{OURS}")) {
            let (rate, _) = throughput(workers, QueueMode::Memory);
            eprintln!("agent_forward/{scenario}/{OURS}: {rate:.0} spans per agent CPU-second");
            record_extra("agent_forward", &scenario, OURS, rate, "spans/s");
        }
        // Rotel has no receiving-thread setting: the same figure beside
        // both rows.
        if let Some(rotel) = &rotel
            && extra_selected(&format!("agent_forward/{scenario}/rotel"))
        {
            match rotel_throughput(rotel) {
                Some(rate) => {
                    eprintln!(
                        "agent_forward/{scenario}/rotel: {rate:.0} spans per Rotel CPU-second"
                    );
                    record_extra("agent_forward", &scenario, "rotel", rate, "spans/s");
                }
                None => eprintln!("agent_forward/{scenario}/rotel: {rotel} did not run"),
            }
        }
    }
    // The disk queue, one receiving thread, per fsync policy.
    for (name, fsync) in [
        ("always", Fsync::Always),
        (
            "interval_100ms",
            Fsync::Interval(Duration::from_millis(100)),
        ),
        ("never", Fsync::Never),
    ] {
        let scenario = format!("disk_{name}_spans_per_cpu_s");
        let amplification_id = format!("disk_{name}_write_amplification");
        if extra_selected(&format!("agent_forward/{scenario}/{OURS}"))
            || extra_selected(&format!("agent_forward/{amplification_id}/{OURS}"))
        {
            let (queue, dir) = disk_queue(fsync);
            let (rate, amplification) = throughput(1, queue);
            let _ = std::fs::remove_dir_all(dir);
            eprintln!(
                "agent_forward/{scenario}/{OURS}: {rate:.0} spans per agent CPU-second, \
                 {amplification:.2} bytes written per byte acknowledged"
            );
            record_extra("agent_forward", &scenario, OURS, rate, "spans/s");
            record_extra("agent_forward", &amplification_id, OURS, amplification, "x");
        }
    }
    let interval = Fsync::Interval(Duration::from_millis(100));
    let hops = [
        (OURS, None, ""),
        ("no-agent", None, ""),
        (OURS, Some(Fsync::Always), "disk_always_"),
        (OURS, Some(interval), "disk_interval_100ms_"),
        (OURS, Some(Fsync::Never), "disk_never_"),
    ];
    for (imp, fsync, prefix) in hops {
        let wants = extra_selected(&format!("agent_hop/{prefix}p99_us_at_100k/{imp}"))
            || extra_selected(&format!("agent_hop/{prefix}p50_us_at_100k/{imp}"));
        if wants {
            let (queue, dir) = match fsync {
                None if imp == OURS => (Some(QueueMode::Memory), None),
                None => (None, None),
                Some(fsync) => {
                    let (queue, dir) = disk_queue(fsync);
                    (Some(queue), Some(dir))
                }
            };
            let (p50, p99) = hop_latency(queue);
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("agent_hop/{prefix}{imp}: p50 {p50:.0} µs, p99 {p99:.0} µs");
            record_extra(
                "agent_hop",
                &format!("{prefix}p50_us_at_100k"),
                imp,
                p50,
                "us",
            );
            record_extra(
                "agent_hop",
                &format!("{prefix}p99_us_at_100k"),
                imp,
                p99,
                "us",
            );
        }
    }
}

criterion_group!(benches, agent_benches);
criterion_main!(benches);
