//! otlp-agent forwarding, sender to upstream in one process (standalone
//! extras, not criterion timings):
//!
//! * `agent_forward/workers_N_spans_per_cpu_s/ours`: a sender keeps 16
//!   pre-encoded OTLP/gRPC requests of 100 spans in flight for 2 s against
//!   an agent with N receiving threads and one sending thread, which
//!   forwards to an upstream that accepts without decoding; spans exported
//!   per second of CPU time of the agent's own threads (higher is better).
//! * `agent_hop/p50_us_at_100k` and `p99_us_at_100k`: 100 spans every
//!   millisecond (100 K spans/s) for 2 s, each request stamped with its
//!   send time as the spans' end time; the upstream (otlp-receiver,
//!   counting) measures end → arrival. `ours` goes through the agent,
//!   `no-agent` straight to the upstream: the difference is the hop.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_agent::{Agent, AgentConfig};
use otlp_benches::{OURS, extra_selected, record_extra};
use otlp_receiver::{Receiver, ReceiverConfig, Sink, SinkRequest, Verdict, VerdictFuture};
use otlp_sdk::otlp::{OtlpExporterBuilder, OtlpRequestSender, Signal};
use prost::Message;

const RUN: Duration = Duration::from_secs(2);
const SPANS: usize = 100;

/// An upstream that accepts every request without looking at it.
struct Accept(AtomicU64);

impl Sink for Accept {
    fn export(&self, _request: SinkRequest) -> VerdictFuture {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(std::future::ready(Verdict::accepted()))
    }
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

fn agent(upstream: &str, workers: usize) -> Agent {
    Agent::start(AgentConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        listen_http: None,
        upstream: OtlpExporterBuilder::new()
            .with_endpoint(upstream)
            .without_env(),
        worker_threads: workers,
        export_threads: 1,
        ..AgentConfig::default()
    })
    .expect("agent")
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

fn throughput(workers: usize) -> f64 {
    let upstream = Receiver::start_with_sink(
        ReceiverConfig::default(),
        Arc::new(Accept(AtomicU64::new(0))),
    )
    .expect("upstream");
    let agent = agent(&upstream.endpoint(), workers);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = client(&runtime, &agent.endpoint());
    let body = client.prepare(request(now_ns()));
    let cpu_before = agent.cpu_time().unwrap_or_default();
    let exported_before = agent.stats().traces.exported_items;
    let deadline = Instant::now() + RUN;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (client, body) = (Arc::clone(&client), body.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    // A refusal (queue full) is retried at once: the agent's
                    // answer is part of what it costs.
                    let _ = client.send(body.clone()).await;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    let stats = agent.stats().traces;
    while agent.stats().traces.queued_items > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let exported = agent.stats().traces.exported_items - exported_before;
    let cpu = agent.cpu_time().unwrap_or_default() - cpu_before;
    assert_eq!(stats.unaccounted(), 0);
    agent.shutdown();
    exported as f64 / cpu.as_secs_f64().max(1e-9)
}

/// End → arrival p50 and p99 in µs at 100 K spans/s, through the agent or not.
fn hop_latency(through_agent: bool) -> (f64, f64) {
    let upstream = Receiver::start(ReceiverConfig::default()).expect("upstream");
    let agent = through_agent.then(|| agent(&upstream.endpoint(), 1));
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
    for workers in [1, 2] {
        let scenario = format!("workers_{workers}_spans_per_cpu_s");
        if extra_selected(&format!("agent_forward/{scenario}/{OURS}")) {
            let rate = throughput(workers);
            eprintln!("agent_forward/{scenario}/{OURS}: {rate:.0} spans per agent CPU-second");
            record_extra("agent_forward", &scenario, OURS, rate, "spans/s");
        }
    }
    for (imp, through_agent) in [(OURS, true), ("no-agent", false)] {
        let wants = extra_selected(&format!("agent_hop/p99_us_at_100k/{imp}"))
            || extra_selected(&format!("agent_hop/p50_us_at_100k/{imp}"));
        if wants {
            let (p50, p99) = hop_latency(through_agent);
            eprintln!("agent_hop/{imp}: p50 {p50:.0} µs, p99 {p99:.0} µs");
            record_extra("agent_hop", "p50_us_at_100k", imp, p50, "us");
            record_extra("agent_hop", "p99_us_at_100k", imp, p99, "us");
        }
    }
}

criterion_group!(benches, agent_benches);
criterion_main!(benches);
