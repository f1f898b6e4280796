//! The whole pipeline, sender to receiver, in one process: spans created
//! through the OpenTelemetry API on an `SdkTracerProvider`, batched by a
//! processor, encoded and sent over loopback OTLP/gRPC to the embedded
//! receiver (`otlp-receiver`, which decodes every request with
//! opentelemetry-proto's generated code).
//!
//! Implementations (the id's last segment):
//! * `ours`: `otlp_sdk::BatchSpanProcessor` (4 concurrent exports) with
//!   `otlp_sdk::otlp::OtlpSpanExporter`.
//! * `sdk`: opentelemetry_sdk 0.33's own `BatchSpanProcessor` with the same
//!   exporter: the processor alone differs.
//! * `sdk+opentelemetry-otlp`: the SDK's processor with opentelemetry-otlp
//!   0.33's tonic exporter: the stock stack a service runs today.
//!
//! Scenarios (standalone extras, not criterion timings: each is a 2 s run
//! with one producer thread paced so that the queue never overflows, and
//! the run asserts that every span arrived):
//! * `pipeline_otlp/latency_5ms_spans_per_s`: the receiver answers each
//!   request after 5 ms, as a loaded collector would; spans received per
//!   second.
//! * `pipeline_otlp/latency_0ms_spans_per_s`: the receiver answers at once;
//!   spans received per second (CPU-bound: on 2 cores the receiver's
//!   decoding competes with the sender).
//! * `pipeline_otlp/latency_0ms_sender_cpu_ns_per_span`: process CPU time
//!   less the receiver's threads, per received span, span creation
//!   included.
//! * `pipeline_otlp/tls_latency_0ms_spans_per_s` and
//!   `tls_latency_0ms_sender_cpu_ns_per_span`: the same over TLS: the
//!   receiver serves a certificate for 127.0.0.1 signed by a CA made at
//!   start (rcgen), which each exporter trusts (ours through
//!   `TlsConfig::with_ca_certificate_pem`, opentelemetry-otlp through
//!   tonic's `ClientTlsConfig` with its `tls-ring` feature). `ours` and
//!   `sdk+opentelemetry-otlp` only.
//! * `pipeline_otlp/zstd_latency_0ms_…`: the same in plain text with zstd
//!   request compression (opentelemetry-otlp's `zstd-tonic`).
//!
//! Load scenarios, `ours` and `sdk` only (the same exporter behind both
//! processors, so the processors alone differ), 3 s each:
//! * `pipeline_load/paced_{10k,100k}_{p50,p99}_us` and `…_requests`: two
//!   producer threads paced to 10 K or 100 K spans/s in total; end →
//!   received latency (span end timestamp to the receiver's decoding,
//!   the receiver's histogram) and export requests received.
//! * `pipeline_load/overload_{n}p_exported_per_s` and `…_share_pct`: one
//!   producer, then each count of `--threads` (default 2), flat out, so the
//!   queue overflows; spans received per second of production, and the
//!   share of ended spans that arrived.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use otlp_benches::{OURS, extra_selected, process_cpu_time, record_extra};
use otlp_receiver::{Receiver, ReceiverConfig, ReceiverTls};
use otlp_sdk::otlp::{OtlpExporterBuilder, TlsConfig};

const SDK: &str = "sdk";
const STOCK: &str = "sdk+opentelemetry-otlp";
const QUEUE: usize = 8192;
const BATCH: usize = 512;
const RUN: Duration = Duration::from_secs(2);
const GROUP: &str = "pipeline_otlp";

/// Counts the spans handed to the exporter, which is how the producer
/// paces itself, and polls the export inside a Tokio context when the
/// exporter needs one (opentelemetry-otlp's tonic client does; ours does
/// not, and gets no runtime).
#[derive(Debug)]
struct Paced<E> {
    inner: E,
    handed: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Handle>,
}

struct InRuntime<F> {
    handle: Option<tokio::runtime::Handle>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _inside = self.handle.as_ref().map(tokio::runtime::Handle::enter);
        self.future.as_mut().poll(cx)
    }
}

impl<E: SpanExporter> SpanExporter for Paced<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.handed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let _inside = self.runtime.as_ref().map(tokio::runtime::Handle::enter);
        InRuntime {
            handle: self.runtime.clone(),
            future: Box::pin(self.inner.export(batch)),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _inside = self.runtime.as_ref().map(tokio::runtime::Handle::enter);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A CA (PEM) and the receiver's certificate for 127.0.0.1 signed by it.
fn certificates() -> (String, ReceiverTls) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    let tls = ReceiverTls {
        certificate_chain_pem: server.pem().into_bytes(),
        private_key_pem: key.serialize_pem().into_bytes(),
        client_ca_pem: None,
    };
    (ca_pem, tls)
}

/// What goes over the wire besides plain protobuf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Plain,
    Tls,
    Zstd,
}

fn provider(
    imp: &str,
    endpoint: &str,
    ca_pem: Option<&str>,
    zstd: bool,
    handed: &Arc<AtomicU64>,
    io: &tokio::runtime::Runtime,
) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder().with_resource(
        Resource::builder_empty()
            .with_service_name("pipeline-bench")
            .build(),
    );
    let ours_exporter = || {
        let mut builder = OtlpExporterBuilder::new()
            .without_env()
            .with_endpoint(endpoint);
        if let Some(ca) = ca_pem {
            builder = builder.with_tls(TlsConfig::new().with_ca_certificate_pem(ca));
        }
        if zstd {
            builder = builder.with_compression(otlp_sdk::otlp::Compression::Zstd);
        }
        let inner = builder.build_span_exporter().expect("exporter");
        Paced {
            inner,
            handed: Arc::clone(handed),
            runtime: None,
        }
    };
    let sdk_config = || {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(BATCH)
            .with_scheduled_delay(Duration::from_millis(100))
            .build()
    };
    match imp {
        OURS => {
            let config = otlp_sdk::BatchConfig::default()
                .with_max_queue_size(QUEUE)
                .with_max_export_batch_size(BATCH)
                .with_scheduled_delay(Duration::from_millis(100))
                .with_max_concurrent_exports(4);
            // Our exporter only awaits once it has encoded, so it can be
            // polled on the processor's own thread: no hand-off per batch.
            let processor = otlp_sdk::BatchSpanProcessor::builder(ours_exporter())
                .with_batch_config(config)
                .with_export_mode(otlp_sdk::ExportMode::Inline)
                .build()
                .expect("processor");
            builder.with_span_processor(processor).build()
        }
        SDK => {
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(ours_exporter())
                .with_batch_config(sdk_config())
                .build();
            builder.with_span_processor(processor).build()
        }
        _ => {
            let _inside = io.enter();
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint);
            if let Some(ca) = ca_pem {
                exporter = exporter.with_tls_config(
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                );
            }
            if zstd {
                exporter = exporter.with_compression(opentelemetry_otlp::Compression::Zstd);
            }
            let inner = exporter.build().expect("opentelemetry-otlp exporter");
            let exporter = Paced {
                inner,
                handed: Arc::clone(handed),
                runtime: Some(io.handle().clone()),
            };
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(sdk_config())
                .build();
            builder.with_span_processor(processor).build()
        }
    }
}

/// The span every scenario ends: a server span with two attributes.
fn end_one_span(tracer: &SdkTracer) {
    let mut span = tracer
        .span_builder("GET /api/orders")
        .with_kind(SpanKind::Server)
        .start(tracer);
    span.set_attribute(KeyValue::new("http.route", "/api/orders"));
    span.set_attribute(KeyValue::new("http.response.status_code", 200));
    span.end();
}

struct Measured {
    received_per_s: f64,
    sender_cpu_ns_per_span: f64,
}

/// One 2 s run; panics if a span was lost (the pacing should make that
/// impossible, and a figure with drops would compare nothing).
fn run(imp: &str, latency: Duration, wire: Wire) -> Measured {
    let (ca_pem, server_tls) = if wire == Wire::Tls {
        let (ca, server) = certificates();
        (Some(ca), Some(server))
    } else {
        (None, None)
    };
    let receiver = Receiver::start(ReceiverConfig {
        latency,
        tls: server_tls,
        ..ReceiverConfig::default()
    })
    .expect("receiver");
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let handed = Arc::new(AtomicU64::new(0));
    let zstd = wire == Wire::Zstd;
    let provider = provider(
        imp,
        &receiver.endpoint(),
        ca_pem.as_deref(),
        zstd,
        &handed,
        &io,
    );
    let tracer = provider.tracer("pipeline-bench");
    let (cpu0, receiver_cpu0, t0) = (
        process_cpu_time(),
        receiver.cpu_time().unwrap_or_default(),
        Instant::now(),
    );
    let mut ended = 0u64;
    while t0.elapsed() < RUN {
        // Never let the queue hold more than QUEUE - BATCH spans.
        if ended - handed.load(Ordering::Relaxed) < (QUEUE - BATCH) as u64 {
            end_one_span(&tracer);
            ended += 1;
        } else {
            // Sleep rather than spin, so waiting costs no CPU to count.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    provider.shutdown().expect("shutdown");
    let elapsed = t0.elapsed();
    let sender_cpu = process_cpu_time().saturating_sub(cpu0).saturating_sub(
        receiver
            .cpu_time()
            .unwrap_or_default()
            .saturating_sub(receiver_cpu0),
    );
    drop(io);
    let received = receiver.stop().spans;
    assert_eq!(received, ended, "{imp}: every ended span must arrive");
    Measured {
        received_per_s: received as f64 / elapsed.as_secs_f64(),
        sender_cpu_ns_per_span: sender_cpu.as_nanos() as f64 / received as f64,
    }
}

/// What a load run saw at the receiver.
struct Load {
    ended: u64,
    received: u64,
    production: Duration,
    requests: u64,
    p50_us: f64,
    p99_us: f64,
}

/// `producers` threads end spans for `LOAD_RUN`, at `rate` spans/s in
/// total (0: flat out), into `imp`'s processor with our exporter.
fn load(imp: &str, producers: u64, rate: u64) -> Load {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let handed = Arc::new(AtomicU64::new(0));
    let provider = provider(imp, &receiver.endpoint(), None, false, &handed, &io);
    let t0 = Instant::now();
    let ended: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..producers)
            .map(|_| {
                let tracer = provider.tracer("pipeline-bench");
                scope.spawn(move || {
                    let per_thread = rate / producers;
                    let mut ended = 0u64;
                    loop {
                        let elapsed = t0.elapsed();
                        if elapsed >= LOAD_RUN {
                            return ended;
                        }
                        let due = (elapsed.as_secs_f64() * per_thread as f64) as u64;
                        if rate != 0 && ended >= due {
                            std::thread::sleep(Duration::from_micros(100));
                            continue;
                        }
                        end_one_span(&tracer);
                        ended += 1;
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("producer"))
            .sum()
    });
    let production = t0.elapsed();
    provider.shutdown().expect("shutdown");
    drop(io);
    let finished = receiver.finish();
    let us = |q: f64| finished.latency.quantile(q) as f64 / 1e3;
    Load {
        ended,
        received: finished.stats.spans,
        production,
        requests: finished.stats.grpc_requests,
        p50_us: us(0.5),
        p99_us: us(0.99),
    }
}

const LOAD_GROUP: &str = "pipeline_load";
const LOAD_RUN: Duration = Duration::from_secs(3);

fn pipeline_load(_c: &mut Criterion) {
    for imp in [OURS, SDK] {
        for (name, rate) in [("10k", 10_000), ("100k", 100_000)] {
            let ids = ["p50_us", "p99_us", "requests"].map(|m| format!("paced_{name}_{m}"));
            if !ids
                .iter()
                .any(|id| extra_selected(&format!("{LOAD_GROUP}/{id}/{imp}")))
            {
                continue;
            }
            let m = load(imp, 2, rate);
            assert_eq!(m.received, m.ended, "{imp}: paced spans must all arrive");
            eprintln!(
                "{LOAD_GROUP}/paced_{name}/{imp}: p50 {:.0} µs, p99 {:.0} µs, {} requests",
                m.p50_us, m.p99_us, m.requests
            );
            record_extra(LOAD_GROUP, &ids[0], imp, m.p50_us, "µs");
            record_extra(LOAD_GROUP, &ids[1], imp, m.p99_us, "µs");
            record_extra(LOAD_GROUP, &ids[2], imp, m.requests as f64, "requests");
        }
        for producers in otlp_benches::thread_counts_from_one() {
            let rate_id = format!("overload_{producers}p_exported_per_s");
            let share_id = format!("overload_{producers}p_share_pct");
            if !extra_selected(&format!("{LOAD_GROUP}/{rate_id}/{imp}"))
                && !extra_selected(&format!("{LOAD_GROUP}/{share_id}/{imp}"))
            {
                continue;
            }
            let m = load(imp, producers as u64, 0);
            let rate = m.received as f64 / m.production.as_secs_f64();
            let share = 100.0 * m.received as f64 / m.ended as f64;
            eprintln!(
                "{LOAD_GROUP}/overload_{producers}p/{imp}: {rate:.0} exported/s, \
                 {share:.1} % of {} ended",
                m.ended
            );
            record_extra(LOAD_GROUP, &rate_id, imp, rate, "spans/s");
            record_extra(LOAD_GROUP, &share_id, imp, share, "%");
        }
    }
}

fn pipeline(_c: &mut Criterion) {
    for (latency, scenario, wire) in [
        (Duration::from_millis(5), "latency_5ms", Wire::Plain),
        (Duration::ZERO, "latency_0ms", Wire::Plain),
        (Duration::ZERO, "tls_latency_0ms", Wire::Tls),
        (Duration::ZERO, "zstd_latency_0ms", Wire::Zstd),
    ] {
        for imp in [OURS, SDK, STOCK] {
            if wire != Wire::Plain && imp == SDK {
                // Same exporter as `ours` behind another processor: these
                // rows compare the exporters' transports.
                continue;
            }
            let rate_id = format!("{scenario}_spans_per_s");
            let cpu_id = format!("{scenario}_sender_cpu_ns_per_span");
            let wants_rate = extra_selected(&format!("{GROUP}/{rate_id}/{imp}"));
            // CPU per span is only meaningful where the sender is busy.
            let wants_cpu = latency.is_zero() && extra_selected(&format!("{GROUP}/{cpu_id}/{imp}"));
            if !wants_rate && !wants_cpu {
                continue;
            }
            let m = run(imp, latency, wire);
            eprintln!(
                "{GROUP}/{scenario}/{imp}: {:.0} spans/s, {:.0} ns sender CPU per span",
                m.received_per_s, m.sender_cpu_ns_per_span
            );
            if wants_rate {
                record_extra(GROUP, &rate_id, imp, m.received_per_s, "spans/s");
            }
            if wants_cpu {
                record_extra(GROUP, &cpu_id, imp, m.sender_cpu_ns_per_span, "ns");
            }
        }
    }
}

criterion_group!(benches, pipeline, pipeline_load);
criterion_main!(benches);
