//! The main job: an OTLP-shaped telemetry pipeline on this machine.
//!
//! ```text
//! producers ──emit──► BatchProcessor ──export──► WorkStealingScheduler ──► OTLP/protobuf
//! (threads)           (otlp-async,               (otlp-sched, pinned by     requests
//!                      lock-free queue)           otlp-numa placement)      (--output)
//! ```
//!
//! Run it with `cargo run --release --example pipeline -- --help`.

mod cli;
mod encode;
mod exporter;
mod http;
mod report;
mod span;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otlp_concurrency::async_rt::{BatchConfig, BatchProcessor, Signal};
use otlp_concurrency::monitor::ConcurrencyMonitor;
use otlp_concurrency::numa::{Placement, Topology};
use otlp_concurrency::sched::WorkStealingScheduler;
use otlp_concurrency::sync::{ConcurrentState, Config, Semaphore};

use cli::{Options, Parsed};
use exporter::{EncodeSide, MAX_SPAN_BYTES, PoolExporter};
use report::{FinalReport, Tick};
use span::SpanFactory;

/// Spans a producer emits between clock reads and rate checks.
const CHUNK: u64 = 64;
/// How long shutdown may take to flush what is queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("pipeline: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(report) => {
            if options.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            if report.conserved() {
                ExitCode::SUCCESS
            } else {
                eprintln!("pipeline: emitted != exported + dropped: spans were lost");
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("pipeline: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<FinalReport, String> {
    let topology = Topology::detect().map_err(|e| format!("reading the topology: {e}"))?;
    let allowed = topology.allowed_cpus().len().max(1);
    let workers = options.workers.unwrap_or(allowed);

    // Lifecycle and live-tunable settings through ConcurrentState: the
    // producer count is its counter, `start`/`stop` its lifecycle.
    let state = Arc::new(
        ConcurrentState::new(Config {
            max_connections: options.producers,
            timeout_ms: SHUTDOWN_TIMEOUT.as_millis() as u64,
            retry_count: 0,
        })
        .map_err(|e| format!("pipeline config: {e}"))?,
    );

    let batch_monitor = Arc::new(ConcurrencyMonitor::new());
    let pool_monitor = Arc::new(ConcurrencyMonitor::new());
    let pool = Arc::new(
        WorkStealingScheduler::builder()
            .workers(workers)
            .thread_name(|i| format!("otlp-encode-{i}"))
            .placement(Placement::Scatter)
            .monitor(Arc::clone(&pool_monitor))
            .build()
            .map_err(|e| format!("starting the encoder pool: {e}"))?,
    );

    let output = match &options.output {
        Some(path) => Some(
            std::fs::File::create(path).map_err(|e| format!("--output {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let side = Arc::new(EncodeSide::new(output));
    // Enough in-flight bytes for every worker to encode two full batches.
    let budget = options.batch_size * MAX_SPAN_BYTES * workers * 2;
    let in_flight_bytes =
        Arc::new(Semaphore::new(budget).map_err(|e| format!("in-flight byte budget: {e}"))?);
    let exporter = PoolExporter {
        pool: Arc::clone(&pool),
        side: Arc::clone(&side),
        in_flight_bytes: Arc::clone(&in_flight_bytes),
        batches: Arc::clone(&batch_monitor),
    };
    let config = BatchConfig::for_signal(Signal::Spans)
        .with_max_queue_size(options.queue_size)
        .with_max_export_batch_size(options.batch_size)
        .with_scheduled_delay(Duration::from_millis(200))
        .with_max_concurrent_exports(workers);
    let processor = Arc::new(
        BatchProcessor::new(config, exporter).map_err(|e| format!("batch processor: {e}"))?,
    );

    let metrics_server = match options.metrics_addr {
        Some(addr) => {
            let (processor, batches, pool_monitor) = (
                Arc::clone(&processor),
                Arc::clone(&batch_monitor),
                Arc::clone(&pool_monitor),
            );
            let server = http::MetricsServer::start(addr, move || {
                report::prometheus(&processor.stats(), &batches, &pool_monitor)
            })
            .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
            eprintln!(
                "serving Prometheus metrics on http://{}/metrics",
                server.addr()
            );
            Some(server)
        }
        None => None,
    };

    eprintln!(
        "pipeline: {} producers, {} encoder workers (scatter over {} allowed CPUs, {} NUMA node(s)), \
         batch {} / queue {}, rate {}, for {:.1} s",
        options.producers,
        workers,
        allowed,
        topology.nodes().len(),
        options.batch_size,
        options.queue_size,
        if options.rate == 0 {
            "unbounded".to_owned()
        } else {
            format!("{}/s", options.rate)
        },
        options.duration.as_secs_f64()
    );

    if !state.start() {
        return Err("the pipeline state was not in Created".to_owned());
    }
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..options.producers)
        .map(|id| {
            let (processor, stop, state) = (
                Arc::clone(&processor),
                Arc::clone(&stop),
                Arc::clone(&state),
            );
            let per_producer_rate = options.rate as f64 / options.producers as f64;
            thread::Builder::new()
                .name(format!("producer-{id}"))
                .spawn(move || {
                    state.increment();
                    produce(id as u64, &processor, &stop, per_producer_rate);
                    // The counter only ever goes down after going up here.
                    let _ = state.decrement();
                })
                .map_err(|e| format!("starting producer {id}: {e}"))
        })
        .collect::<Result<_, _>>()?;

    let mut ticks = Vec::new();
    let mut previous = processor.stats();
    let mut second = 1;
    while started.elapsed() < options.duration {
        let next = Duration::from_secs(second).min(options.duration);
        thread::sleep(next.saturating_sub(started.elapsed()));
        let stats = processor.stats();
        let window = batch_monitor.interval();
        let tick = Tick::new(started.elapsed(), &previous, &stats, &window);
        eprintln!("{tick}");
        ticks.push(tick);
        previous = stats;
        second += 1;
    }

    stop.store(true, Ordering::Release);
    for producer in producers {
        producer
            .join()
            .map_err(|_| "a producer thread panicked".to_owned())?;
    }
    let produce_time = started.elapsed();
    let shutdown_started = Instant::now();
    let shutdown = processor.shutdown_blocking(SHUTDOWN_TIMEOUT);
    let shutdown_time = shutdown_started.elapsed();
    pool.shutdown()
        .map_err(|e| format!("encoder pool shutdown: {e}"))?;
    side.flush_output().map_err(|e| format!("--output: {e}"))?;
    state.stop();
    if let Some(server) = metrics_server {
        server.stop();
    }
    if let Err(e) = &shutdown {
        eprintln!("pipeline: batch processor shutdown: {e}");
    }

    Ok(FinalReport::new(
        options,
        workers,
        produce_time,
        shutdown_time,
        processor.stats(),
        batch_monitor.get_stats(),
        pool_monitor.get_stats(),
        &side,
        ticks,
    ))
}

/// One producer: emits spans until `stop`, paced to `rate` spans/s when it
/// is not zero.
fn produce<X>(id: u64, processor: &BatchProcessor<span::Span, X>, stop: &AtomicBool, rate: f64) {
    let mut factory = SpanFactory::new(id);
    let started = Instant::now();
    let mut emitted: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for i in 0..CHUNK {
            processor.emit(factory.next_span(now + i));
        }
        emitted += CHUNK;
        if rate > 0.0 {
            let due = Duration::from_secs_f64(emitted as f64 / rate);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                thread::sleep(ahead.min(Duration::from_millis(100)));
            }
        }
    }
}
