//! otlp-sdk's processors beside opentelemetry_sdk 0.33's own
//! `BatchSpanProcessor` / `BatchLogProcessor`, both driven through the real
//! SDK API (`SdkTracerProvider`, `SdkLoggerProvider`) with the same
//! counting exporter, queue 2048 and batch 512.
//!
//! * `sdk_span_end/end_{1,2}t`: `tracer.start(..)` + `span.end()` with the
//!   queue never full (chunks of 512, then an untimed wait for the
//!   exporter), the median chunk's cost per span.
//! * `sdk_log_emit/emit_{1,2}t`: `logger.emit(record)`, the same way.
//! * `sdk_overload/overload_{1,2}t_dropped_pct`: producers flat out into the
//!   fixed 2048 queue; the share of ended spans that was dropped.
//! * `sdk_slow_exporter/export_5ms_spans_per_s`: an exporter that takes 5 ms
//!   per batch (blocking its thread, which the SDK's processor tolerates);
//!   one producer that never lets the queue fill; exported spans per second
//!   with no drops. Ours runs 4 concurrent exports.
//! * `sdk_self_metrics/end_1t/{ours,ours_off}`: `sdk_span_end/end_1t` for
//!   our processor with its self-metrics on (`with_meter_provider`, a
//!   `PeriodicReader` collecting every 100 ms into an exporter that drops
//!   the data) and off, the same processor otherwise: what reporting
//!   costs on the path that ends spans.
//!
//! `{1,2}t` above: 1 and the counts in `OTLP_BENCH_THREADS` (default 2, see
//! `otlp_benches::thread_counts`), so `end_4t` with `OTLP_BENCH_THREADS=4`.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use otlp_benches::{OURS, extra_selected, record_extra, thread_counts_from_one};

const SDK: &str = "sdk";
const QUEUE: usize = 2048;
const BATCH: usize = 512;

/// Counts items when an export starts and when it ends; optionally blocks
/// its thread for a fixed time per batch.
#[derive(Debug, Clone, Default)]
struct Counting {
    started: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
    delay: Option<Duration>,
}

impl Counting {
    fn export_n(&self, n: usize) -> OTelSdkResult {
        self.started.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        self.exported.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.export_n(black_box(batch).len())
    }
}

impl LogExporter for Counting {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.export_n(batch.iter().count())
    }
}

/// A metric exporter that drops what it is given: the self-metrics'
/// collections run, their export costs nothing.
#[derive(Debug)]
struct Discard;

impl PushMetricExporter for Discard {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        black_box(metrics);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn config(concurrent: usize) -> otlp_sdk::BatchConfig {
    otlp_sdk::BatchConfig::default()
        .with_max_queue_size(QUEUE)
        .with_max_export_batch_size(BATCH)
        .with_max_concurrent_exports(concurrent)
}

fn tracer_provider(imp: &str, exporter: Counting, concurrent: usize) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder();
    let builder = if imp == OURS {
        builder.with_span_processor(
            otlp_sdk::BatchSpanProcessor::builder(exporter)
                .with_batch_config(config(concurrent))
                .build()
                .expect("processor"),
        )
    } else {
        let config = opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(BATCH)
            .build();
        builder.with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
        )
    };
    builder.build()
}

fn logger_provider(imp: &str, exporter: Counting) -> SdkLoggerProvider {
    let builder = SdkLoggerProvider::builder();
    let builder = if imp == OURS {
        builder.with_log_processor(
            otlp_sdk::BatchLogProcessor::builder(exporter)
                .with_batch_config(config(1))
                .build()
                .expect("processor"),
        )
    } else {
        let config = opentelemetry_sdk::logs::BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(BATCH)
            .build();
        builder.with_log_processor(
            opentelemetry_sdk::logs::BatchLogProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
        )
    };
    builder.build()
}

/// Runs `emit(i)` in chunks of one batch per thread, timing each chunk and
/// waiting (untimed, bounded) until the exporter has started on everything
/// emitted, so the queue never fills. Returns the median chunk's cost
/// scaled to `iters`, averaged over threads.
fn chunked(
    threads: usize,
    iters: u64,
    started: &Arc<AtomicU64>,
    emit: Arc<dyn Fn(u64) + Send + Sync>,
) -> Duration {
    // At least one item, for more threads than a batch has items.
    let chunk = (BATCH as u64 / threads as u64).max(1);
    let total_goal = Arc::new(AtomicU64::new(started.load(Ordering::Relaxed)));
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (emit, started, goal, barrier) = (
                Arc::clone(&emit),
                Arc::clone(started),
                Arc::clone(&total_goal),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                let mut per_item = Vec::new();
                let mut done = 0;
                barrier.wait();
                while done < iters {
                    let n = chunk.min(iters - done);
                    let t0 = Instant::now();
                    for i in done..done + n {
                        emit(black_box(i));
                    }
                    per_item.push(t0.elapsed().as_nanos() as f64 / n as f64);
                    done += n;
                    let want = goal.fetch_add(n, Ordering::Relaxed) + n;
                    let wait = Instant::now();
                    while started.load(Ordering::Relaxed) < want
                        && wait.elapsed() < Duration::from_millis(50)
                    {
                        std::thread::yield_now();
                    }
                }
                per_item.sort_by(f64::total_cmp);
                Duration::from_nanos((per_item[per_item.len() / 2] * iters as f64) as u64)
            })
        })
        .collect();
    let sum: Duration = handles
        .into_iter()
        .map(|h| h.join().expect("producer"))
        .sum();
    sum / threads as u32
}

fn span_end(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdk_span_end");
    g.throughput(Throughput::Elements(1));
    for threads in thread_counts_from_one() {
        for imp in [OURS, SDK] {
            let exporter = Counting::default();
            let started = Arc::clone(&exporter.started);
            let provider = tracer_provider(imp, exporter, 1);
            let tracer = Arc::new(provider.tracer("bench"));
            let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |_| {
                let mut span = tracer.start("span");
                span.end();
            });
            g.bench_function(BenchmarkId::new(format!("end_{threads}t"), imp), |b| {
                b.iter_custom(|iters| chunked(threads, iters, &started, Arc::clone(&emit)));
            });
            provider.shutdown().expect("shutdown");
        }
    }
    g.finish();
}

/// Our processor with self-metrics on (`ours`) and off (`ours_off`).
fn self_metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdk_self_metrics");
    g.throughput(Throughput::Elements(1));
    for imp in [OURS, "ours_off"] {
        let meters = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(Discard)
                    .with_interval(Duration::from_millis(100))
                    .build(),
            )
            .build();
        let exporter = Counting::default();
        let started = Arc::clone(&exporter.started);
        let builder = otlp_sdk::BatchSpanProcessor::builder(exporter).with_batch_config(config(1));
        let builder = if imp == OURS {
            builder.with_meter_provider(&meters)
        } else {
            builder
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(builder.build().expect("processor"))
            .build();
        let tracer = Arc::new(provider.tracer("bench"));
        let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |_| {
            let mut span = tracer.start("span");
            span.end();
        });
        g.bench_function(BenchmarkId::new("end_1t", imp), |b| {
            b.iter_custom(|iters| chunked(1, iters, &started, Arc::clone(&emit)));
        });
        provider.shutdown().expect("shutdown");
        meters.shutdown().expect("shutdown");
    }
    g.finish();
}

fn log_emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdk_log_emit");
    g.throughput(Throughput::Elements(1));
    for threads in thread_counts_from_one() {
        for imp in [OURS, SDK] {
            let exporter = Counting::default();
            let started = Arc::clone(&exporter.started);
            let provider = logger_provider(imp, exporter);
            let logger = Arc::new(provider.logger("bench"));
            let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |i| {
                let mut record = logger.create_log_record();
                record.set_severity_number(Severity::Info);
                record.set_body("request served".into());
                record.add_attribute("request.id", i as i64);
                logger.emit(record);
            });
            g.bench_function(BenchmarkId::new(format!("emit_{threads}t"), imp), |b| {
                b.iter_custom(|iters| chunked(threads, iters, &started, Arc::clone(&emit)));
            });
            provider.shutdown().expect("shutdown");
        }
    }
    g.finish();
}

/// Not a criterion timing: the share dropped when producers run flat out
/// into the fixed queue, three runs of 200k spans per thread, median.
fn overload(_c: &mut Criterion) {
    const PER_THREAD: u64 = 200_000;
    for threads in thread_counts_from_one() {
        for imp in [OURS, SDK] {
            let scenario = format!("overload_{threads}t_dropped_pct");
            if !extra_selected(&format!("sdk_overload/{scenario}/{imp}")) {
                continue;
            }
            let mut shares = Vec::new();
            for _ in 0..3 {
                let exporter = Counting::default();
                let exported = Arc::clone(&exporter.exported);
                let provider = Arc::new(tracer_provider(imp, exporter, 1));
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let provider = Arc::clone(&provider);
                        std::thread::spawn(move || {
                            let tracer = provider.tracer("bench");
                            for _ in 0..PER_THREAD {
                                let mut span = tracer.start("span");
                                span.end();
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("producer");
                }
                provider.shutdown().expect("shutdown");
                let ended = PER_THREAD * threads as u64;
                let got = exported.load(Ordering::Relaxed);
                shares.push(100.0 * (ended - got) as f64 / ended as f64);
            }
            shares.sort_by(f64::total_cmp);
            record_extra("sdk_overload", &scenario, imp, shares[1], "%");
        }
    }
}

/// Not a criterion timing: exported spans per second through an exporter
/// taking 5 ms per batch, the producer paced so that nothing is dropped.
fn slow_exporter(_c: &mut Criterion) {
    const RUN: Duration = Duration::from_secs(2);
    for imp in [OURS, SDK] {
        if !extra_selected(&format!("sdk_slow_exporter/export_5ms_spans_per_s/{imp}")) {
            continue;
        }
        let exporter = Counting {
            delay: Some(Duration::from_millis(5)),
            ..Counting::default()
        };
        let (started, exported) = (
            Arc::clone(&exporter.started),
            Arc::clone(&exporter.exported),
        );
        let provider = tracer_provider(imp, exporter, 4);
        let tracer = provider.tracer("bench");
        let t0 = Instant::now();
        let mut ended = 0u64;
        let before = exported.load(Ordering::Relaxed);
        while t0.elapsed() < RUN {
            // Never let the queue hold more than three batches.
            if ended - started.load(Ordering::Relaxed) < (QUEUE - BATCH) as u64 {
                let mut span = tracer.start("span");
                span.end();
                ended += 1;
            } else {
                std::thread::yield_now();
            }
        }
        let rate = (exported.load(Ordering::Relaxed) - before) as f64 / t0.elapsed().as_secs_f64();
        provider.shutdown().expect("shutdown");
        let dropped = ended - exported.load(Ordering::Relaxed);
        assert_eq!(dropped, 0, "{imp}: the paced producer must not overflow");
        record_extra(
            "sdk_slow_exporter",
            "export_5ms_spans_per_s",
            imp,
            rate,
            "spans/s",
        );
    }
}

criterion_group!(
    benches,
    span_end,
    self_metrics,
    log_emit,
    overload,
    slow_exporter
);
criterion_main!(benches);
