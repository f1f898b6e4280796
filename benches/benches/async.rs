//! otlp-async against the peers a user would otherwise pick, same run:
//!
//! * `async_batching`: 1M items into batches of 512 — `AsyncDataStream` and
//!   `.batched` vs tokio-stream's `chunks_timeout` (over the same channel or
//!   the same iterator stream).
//! * `async_task_manager`: 100k tasks submitted and handled by 2 workers —
//!   `AsyncTaskManager` vs a tokio mpsc channel with a hand-written 2-worker
//!   loop.
//! * `async_emit`: the cost of one `emit` on the hot path, 1 and 2 emitting
//!   threads — `BatchProcessor::emit` vs `std::sync::mpsc::SyncSender::try_send`
//!   into a consumer thread (what the OpenTelemetry SDK's batch processors
//!   do), both with a 2048-item queue drained by their own thread. The
//!   thread counts are 1 and those in `OTLP_BENCH_THREADS` (default 2, see
//!   `otlp_benches::thread_counts`), in the ids (`emit_4t`).

#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures_util::{StreamExt, stream};
use otlp_async::{
    AsyncDataStream, AsyncTaskManager, BatchConfig, BatchProcessor, BatchedExt, ExportError,
    Exporter, handler_fn,
};
use otlp_benches::{OURS, record_extra, thread_counts_from_one};
use tokio_stream::wrappers::ReceiverStream;

const ITEMS: u64 = 1_000_000;
const BATCH: usize = 512;
const TASKS: u64 = 100_000;

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn batching(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_batching");
    g.throughput(Throughput::Elements(ITEMS));
    // Iterations take milliseconds: the same count per sample keeps the run short.
    g.sampling_mode(SamplingMode::Flat);
    let rt = current_thread_rt();
    let delay = Duration::from_secs(1);

    // Source: a plain stream of integers.
    g.bench_function(BenchmarkId::new("iter_1m_512", OURS), |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = stream::iter(0..ITEMS).batched(BATCH, delay);
            let mut n = 0usize;
            while let Some(batch) = s.next().await {
                n += batch.len();
                black_box(&batch);
            }
            assert_eq!(n as u64, ITEMS);
        });
    });
    g.bench_function(BenchmarkId::new("iter_1m_512", "tokio_stream"), |b| {
        b.to_async(&rt).iter(|| async {
            let s = tokio_stream::StreamExt::chunks_timeout(stream::iter(0..ITEMS), BATCH, delay);
            tokio::pin!(s);
            let mut n = 0usize;
            while let Some(batch) = s.next().await {
                n += batch.len();
                black_box(&batch);
            }
            assert_eq!(n as u64, ITEMS);
        });
    });

    // Source: a producer task sending through a bounded channel of 1024.
    g.bench_function(BenchmarkId::new("channel_1m_512", OURS), |b| {
        b.to_async(&rt).iter(|| async {
            let (mut s, tx) = AsyncDataStream::builder()
                .batch_size(BATCH)
                .max_delay(delay)
                .capacity(2 * BATCH)
                .build()
                .expect("stream");
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    if tx.send(i).await.is_err() {
                        break;
                    }
                }
            });
            let mut n = 0usize;
            while let Some(batch) = s.next().await {
                n += batch.len();
                black_box(&batch);
            }
            producer.await.expect("producer");
            assert_eq!(n as u64, ITEMS);
        });
    });
    g.bench_function(BenchmarkId::new("channel_1m_512", "tokio_stream"), |b| {
        b.to_async(&rt).iter(|| async {
            let (tx, rx) = tokio::sync::mpsc::channel(2 * BATCH);
            let s = tokio_stream::StreamExt::chunks_timeout(ReceiverStream::new(rx), BATCH, delay);
            tokio::pin!(s);
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    if tx.send(i).await.is_err() {
                        break;
                    }
                }
            });
            let mut n = 0usize;
            while let Some(batch) = s.next().await {
                n += batch.len();
                black_box(&batch);
            }
            producer.await.expect("producer");
            assert_eq!(n as u64, ITEMS);
        });
    });
    g.finish();
}

fn task_manager(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_task_manager");
    g.throughput(Throughput::Elements(TASKS));
    g.sampling_mode(SamplingMode::Flat);
    let rt = multi_thread_rt();

    // Panic isolation is always on. `submit_100k_2w`: monitoring on, no
    // per-task timeout; `_timeout`: monitoring and a 10 s per-task timeout;
    // `_timeout_unmonitored`: the timeout, monitoring off
    // (`without_monitor`). The peer is the same bare loop in all three.
    let ten_s = Some(Duration::from_secs(10));
    for (scenario, timeout, monitored) in [
        ("submit_100k_2w", None, true),
        ("submit_100k_2w_timeout", ten_s, true),
        ("submit_100k_2w_timeout_unmonitored", ten_s, false),
    ] {
        g.bench_function(BenchmarkId::new(scenario, OURS), |b| {
            b.to_async(&rt).iter(|| async {
                let handled = Arc::new(AtomicU64::new(0));
                let h = Arc::clone(&handled);
                let mut builder = AsyncTaskManager::builder().workers(2).capacity(1024);
                if let Some(limit) = timeout {
                    builder = builder.task_timeout(limit);
                }
                if !monitored {
                    builder = builder.without_monitor();
                }
                let manager = builder
                    .build(handler_fn(move |task: u64| {
                        let h = Arc::clone(&h);
                        async move {
                            black_box(task);
                            h.fetch_add(1, Ordering::Relaxed);
                            Ok::<(), std::convert::Infallible>(())
                        }
                    }))
                    .expect("manager");
                for i in 0..TASKS {
                    manager.submit(i).await.expect("submit");
                }
                let report = manager
                    .shutdown(Duration::from_secs(60))
                    .await
                    .expect("shutdown");
                assert_eq!(report.completed, TASKS);
                assert_eq!(handled.load(Ordering::Relaxed), TASKS);
            });
        });
    }

    for scenario in [
        "submit_100k_2w",
        "submit_100k_2w_timeout",
        "submit_100k_2w_timeout_unmonitored",
    ] {
        g.bench_function(BenchmarkId::new(scenario, "tokio_mpsc"), |b| {
            b.to_async(&rt).iter(|| async {
                let handled = Arc::new(AtomicU64::new(0));
                let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1024);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        let rx = Arc::clone(&rx);
                        let h = Arc::clone(&handled);
                        tokio::spawn(async move {
                            loop {
                                let task = rx.lock().await.recv().await;
                                match task {
                                    Some(task) => {
                                        black_box(task);
                                        h.fetch_add(1, Ordering::Relaxed);
                                    }
                                    None => break,
                                }
                            }
                        })
                    })
                    .collect();
                for i in 0..TASKS {
                    tx.send(i).await.expect("send");
                }
                drop(tx);
                for w in workers {
                    w.await.expect("worker");
                }
                assert_eq!(handled.load(Ordering::Relaxed), TASKS);
            });
        });
    }
    g.finish();
}

/// A telemetry-sized record (a log record's fixed part).
#[derive(Clone, Copy)]
struct Record {
    _timestamp: u64,
    _severity: u64,
    _trace: [u64; 2],
}

fn record(i: u64) -> Record {
    Record {
        _timestamp: i,
        _severity: 9,
        _trace: [i, !i],
    }
}

struct NoopExporter;

impl Exporter<Record> for NoopExporter {
    async fn export(&self, batch: &[Record]) -> Result<(), ExportError> {
        black_box(batch.len());
        Ok(())
    }
}

/// A bounded std `sync_channel` drained by a dedicated thread: the bare
/// `try_send` cost. (The OpenTelemetry SDK's own processors are measured
/// through the SDK's API in `sdk.rs`.)
struct SyncChannel {
    tx: std::sync::mpsc::SyncSender<Record>,
    dropped: AtomicU64,
    received: Arc<AtomicU64>,
    consumer: std::thread::JoinHandle<()>,
}

impl SyncChannel {
    fn new(capacity: usize) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Record>(capacity);
        let r = Arc::clone(&received);
        let consumer = std::thread::spawn(move || {
            while let Ok(m) = rx.recv() {
                black_box(&m);
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self {
            tx,
            dropped: AtomicU64::new(0),
            received,
            consumer,
        }
    }

    #[inline]
    fn emit(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn settled(&self) -> u64 {
        self.received.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }

    /// The share of records dropped, in percent; `None` when nothing was
    /// emitted (the bench did not run).
    fn finish(self) -> Option<f64> {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let received = Arc::clone(&self.received);
        let Self { tx, consumer, .. } = self;
        drop(tx);
        consumer.join().expect("consumer");
        let settled = dropped + received.load(Ordering::Relaxed);
        (settled > 0).then(|| 100.0 * dropped as f64 / settled as f64)
    }
}

/// One way to emit, for the generic drivers below.
trait Emit: Send + Sync + 'static {
    fn emit(&self, r: Record);
    /// Items emitted so far that have been taken by the consumer or dropped.
    fn settled(&self) -> u64;
}

impl Emit for BatchProcessor<Record, NoopExporter> {
    #[inline]
    fn emit(&self, r: Record) {
        BatchProcessor::emit(self, r);
    }

    fn settled(&self) -> u64 {
        let s = self.stats();
        s.emitted - s.queue_depth
    }
}

impl Emit for SyncChannel {
    #[inline]
    fn emit(&self, r: Record) {
        SyncChannel::emit(self, r);
    }

    fn settled(&self) -> u64 {
        SyncChannel::settled(self)
    }
}

/// Hot path without overload: each thread emits chunks of 512 (timed), then
/// waits, untimed, until the consumer has taken everything, so the queue
/// never fills and nothing is dropped. Each chunk is timed on its own and
/// the median chunk's cost per emit stands for the sample: on a shared
/// 2-core machine a chunk during which the OS preempts the emitter (for the
/// consumer thread or another process) measures the scheduler, not `emit`.
/// The same estimator is used for every implementation.
fn emit_chunked<E: Emit>(threads: usize, iters: u64, target: &Arc<E>) -> Duration {
    const CHUNK: u64 = 512;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let emitted = Arc::new(AtomicU64::new(target.settled()));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let target = Arc::clone(target);
            let emitted = Arc::clone(&emitted);
            std::thread::spawn(move || {
                barrier.wait();
                let mut per_emit_ns: Vec<f64> = Vec::with_capacity((iters / CHUNK + 1) as usize);
                let mut done = 0;
                while done < iters {
                    let n = CHUNK.min(iters - done);
                    let start = Instant::now();
                    for i in done..done + n {
                        target.emit(record(black_box(i ^ t as u64)));
                    }
                    per_emit_ns.push(start.elapsed().as_nanos() as f64 / n as f64);
                    done += n;
                    let goal = emitted.fetch_add(n, Ordering::Relaxed) + n;
                    if done < iters {
                        // Untimed: let the consumer catch up.
                        let spin_start = Instant::now();
                        while target.settled() < goal
                            && spin_start.elapsed() < Duration::from_millis(50)
                        {
                            std::hint::spin_loop();
                        }
                    }
                }
                per_emit_ns.sort_by(f64::total_cmp);
                let median = per_emit_ns[per_emit_ns.len() / 2];
                Duration::from_nanos((median * iters as f64) as u64)
            })
        })
        .collect();
    barrier.wait();
    let total: Duration = handles
        .into_iter()
        .map(|h| h.join().expect("emitter"))
        .sum();
    total / threads as u32
}

/// Overload: every thread emits flat out; the queue fills and most items
/// are dropped (the drop path is then what is measured).
fn emit_flat_out<E: Emit>(threads: usize, iters: u64, target: &Arc<E>) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let target = Arc::clone(target);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    target.emit(record(black_box(i ^ t as u64)));
                }
                start.elapsed()
            })
        })
        .collect();
    barrier.wait();
    let total: Duration = handles
        .into_iter()
        .map(|h| h.join().expect("emitter"))
        .sum();
    total / threads as u32
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_emit");
    g.throughput(Throughput::Elements(1));
    for (mode, driver) in [
        (
            "emit",
            emit_chunked::<BatchProcessor<Record, NoopExporter>>
                as fn(usize, u64, &Arc<_>) -> Duration,
        ),
        (
            "overload",
            emit_flat_out::<BatchProcessor<Record, NoopExporter>>,
        ),
    ] {
        for threads in thread_counts_from_one() {
            let scenario = format!("{mode}_{threads}t");
            let processor = Arc::new(
                BatchProcessor::new(BatchConfig::default(), NoopExporter).expect("processor"),
            );
            g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
                b.iter_custom(|iters| driver(threads, iters, &processor));
            });
            processor
                .shutdown_blocking(Duration::from_secs(30))
                .expect("shutdown");
            let stats = processor.stats();
            assert_eq!(stats.emitted, stats.exported + stats.dropped);
            // Nothing emitted: the filter skipped this bench, so there is no
            // drop rate to record (a 0 % would overwrite a measured one).
            if stats.emitted > 0 {
                let pct = 100.0 * stats.dropped as f64 / stats.emitted as f64;
                record_extra(
                    "async_emit",
                    &format!("{scenario}_dropped_pct"),
                    OURS,
                    pct,
                    "%",
                );
            }

            {
                let peer = "sync_channel";
                let chan = Arc::new(SyncChannel::new(2048));
                g.bench_function(BenchmarkId::new(&scenario, peer), |b| {
                    b.iter_custom(|iters| {
                        if mode == "emit" {
                            emit_chunked(threads, iters, &chan)
                        } else {
                            emit_flat_out(threads, iters, &chan)
                        }
                    });
                });
                let chan = Arc::into_inner(chan).expect("sole owner");
                if let Some(pct) = chan.finish() {
                    record_extra(
                        "async_emit",
                        &format!("{scenario}_dropped_pct"),
                        peer,
                        pct,
                        "%",
                    );
                }
            }
        }
    }
    g.finish();
}

criterion_group!(benches, batching, task_manager, emit);
criterion_main!(benches);
