//! What the pipeline prints: a line per second on stderr, a final table (or
//! JSON), and Prometheus text for `--metrics-addr`.

use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_concurrency::async_rt::ProcessorStats;
use otlp_concurrency::monitor::{ConcurrencyMonitor, ConcurrencyStats};

use super::cli::Options;
use super::exporter::EncodeSide;

fn per_sec(count: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Tick {
    pub at: Duration,
    pub spans_per_sec: f64,
    pub emitted_per_sec: f64,
    pub batches_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub queue_depth: u64,
    pub dropped: u64,
}

impl Tick {
    /// The tick for the window between `before` and `after`, with batch
    /// latencies from that window's monitor interval.
    pub fn new(
        at: Duration,
        before: &ProcessorStats,
        after: &ProcessorStats,
        window: &ConcurrencyStats,
    ) -> Self {
        let over = window.elapsed;
        Tick {
            at,
            spans_per_sec: per_sec(after.exported.saturating_sub(before.exported), over),
            emitted_per_sec: per_sec(after.emitted.saturating_sub(before.emitted), over),
            batches_per_sec: per_sec(after.batches.saturating_sub(before.batches), over),
            p50: window.p50,
            p99: window.p99,
            queue_depth: after.queue_depth,
            dropped: after.dropped,
        }
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>5.1}s] spans/s {:>11.0}  emitted/s {:>11.0}  batches/s {:>7.0}  batch p50 {:>8.1} µs  p99 {:>8.1} µs  queue {:>6}  dropped {}",
            self.at.as_secs_f64(),
            self.spans_per_sec,
            self.emitted_per_sec,
            self.batches_per_sec,
            micros(self.p50),
            micros(self.p99),
            self.queue_depth,
            self.dropped
        )
    }
}

/// The end-of-run summary.
#[derive(Debug, Clone)]
pub struct FinalReport {
    pub producers: usize,
    pub workers: usize,
    pub batch_size: usize,
    pub produce_time: Duration,
    pub shutdown_time: Duration,
    pub processor: ProcessorStats,
    pub batches: ConcurrencyStats,
    pub pool: ConcurrencyStats,
    pub encoded_spans: u64,
    pub requests: u64,
    pub bytes: u64,
    pub buffers_allocated: u64,
    pub span_names: Vec<(&'static str, u64)>,
    pub ticks: Vec<Tick>,
}

impl FinalReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: &Options,
        workers: usize,
        produce_time: Duration,
        shutdown_time: Duration,
        processor: ProcessorStats,
        batches: ConcurrencyStats,
        pool: ConcurrencyStats,
        side: &EncodeSide,
        ticks: Vec<Tick>,
    ) -> Self {
        let mut span_names = side.counts.snapshot();
        span_names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        FinalReport {
            producers: options.producers,
            workers,
            batch_size: options.batch_size,
            produce_time,
            shutdown_time,
            processor,
            batches,
            pool,
            encoded_spans: side.spans.load(Ordering::Relaxed),
            requests: side.requests.load(Ordering::Relaxed),
            bytes: side.bytes.load(Ordering::Relaxed),
            buffers_allocated: side.buffers_allocated.load(Ordering::Relaxed),
            span_names,
            ticks,
        }
    }

    /// The invariant every run must keep: nothing vanished.
    pub fn conserved(&self) -> bool {
        let p = &self.processor;
        p.emitted == p.exported + p.dropped && p.exported == self.encoded_spans
    }

    /// Exported spans per second over the whole run (production plus the
    /// final flush).
    pub fn spans_per_sec(&self) -> f64 {
        per_sec(
            self.processor.exported,
            self.produce_time + self.shutdown_time,
        )
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let p = &self.processor;
        let names: Vec<String> = self
            .span_names
            .iter()
            .map(|(name, n)| format!("{{\"name\":\"{name}\",\"spans\":{n}}}"))
            .collect();
        let ticks: Vec<String> = self
            .ticks
            .iter()
            .map(|t| {
                format!(
                    "{{\"at_s\":{:.3},\"spans_per_sec\":{:.0},\"batches_per_sec\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"queue_depth\":{},\"dropped\":{}}}",
                    t.at.as_secs_f64(), t.spans_per_sec, t.batches_per_sec, micros(t.p50), micros(t.p99), t.queue_depth, t.dropped
                )
            })
            .collect();
        format!(
            "{{\"producers\":{},\"workers\":{},\"batch_size\":{},\"produce_s\":{:.3},\"shutdown_s\":{:.3},\
             \"emitted\":{},\"exported\":{},\"dropped\":{},\"dropped_queue_full\":{},\"dropped_export_failed\":{},\
             \"batches\":{},\"failed_batches\":{},\"requests\":{},\"encoded_bytes\":{},\"spans_per_sec\":{:.0},\
             \"batch_latency_us\":{{\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1}}},\
             \"pool_queue_wait_us\":{{\"p50\":{:.1},\"p99\":{:.1}}},\"buffers_allocated\":{},\"conserved\":{},\
             \"span_names\":[{}],\"ticks\":[{}]}}",
            self.producers,
            self.workers,
            self.batch_size,
            self.produce_time.as_secs_f64(),
            self.shutdown_time.as_secs_f64(),
            p.emitted,
            p.exported,
            p.dropped,
            p.dropped_queue_full,
            p.dropped_export_failed,
            p.batches,
            p.failed_batches,
            self.requests,
            self.bytes,
            self.spans_per_sec(),
            micros(self.batches.p50),
            micros(self.batches.p90),
            micros(self.batches.p99),
            micros(self.batches.p999),
            micros(self.batches.max_execution_time),
            micros(self.pool.queue_wait_p50),
            micros(self.pool.queue_wait_p99),
            self.buffers_allocated,
            self.conserved(),
            names.join(","),
            ticks.join(",")
        )
    }
}

impl fmt::Display for FinalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.processor;
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<32} {v:>16}");
        writeln!(f, "\n== pipeline: final report ==")?;
        row(
            f,
            "producers / encoder workers",
            format!("{} / {}", self.producers, self.workers),
        )?;
        row(
            f,
            "production time",
            format!("{:.2} s", self.produce_time.as_secs_f64()),
        )?;
        row(
            f,
            "final flush time",
            format!("{:.3} s", self.shutdown_time.as_secs_f64()),
        )?;
        row(f, "spans emitted", p.emitted.to_string())?;
        row(f, "spans exported", p.exported.to_string())?;
        row(
            f,
            "spans dropped (queue full)",
            p.dropped_queue_full.to_string(),
        )?;
        row(
            f,
            "spans dropped (after shutdown)",
            p.dropped_after_shutdown.to_string(),
        )?;
        row(
            f,
            "spans dropped (export failed)",
            p.dropped_export_failed.to_string(),
        )?;
        row(
            f,
            "exported spans/s",
            format!("{:.0}", self.spans_per_sec()),
        )?;
        row(
            f,
            "batches (failed)",
            format!("{} ({})", p.batches, p.failed_batches),
        )?;
        row(
            f,
            "OTLP requests / bytes",
            format!("{} / {}", self.requests, self.bytes),
        )?;
        row(
            f,
            "batch latency p50 / p99",
            format!(
                "{:.1} / {:.1} µs",
                micros(self.batches.p50),
                micros(self.batches.p99)
            ),
        )?;
        row(
            f,
            "batch latency p99.9 / max",
            format!(
                "{:.1} / {:.1} µs",
                micros(self.batches.p999),
                micros(self.batches.max_execution_time)
            ),
        )?;
        row(
            f,
            "pool queue wait p50 / p99",
            format!(
                "{:.1} / {:.1} µs",
                micros(self.pool.queue_wait_p50),
                micros(self.pool.queue_wait_p99)
            ),
        )?;
        row(
            f,
            "encode buffers allocated",
            self.buffers_allocated.to_string(),
        )?;
        writeln!(f, "  spans per name:")?;
        for (name, n) in &self.span_names {
            writeln!(f, "    {name:<30} {n:>16}")?;
        }
        let verdict = if self.conserved() {
            "holds"
        } else {
            "VIOLATED"
        };
        write!(
            f,
            "  emitted = exported + dropped: {} = {} + {} ({verdict})",
            p.emitted, p.exported, p.dropped
        )
    }
}

/// Prometheus text for `--metrics-addr`: the processor's counters and both
/// monitors.
pub fn prometheus(
    stats: &ProcessorStats,
    batches: &ConcurrencyMonitor,
    pool: &ConcurrencyMonitor,
) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "otlp_pipeline_spans_emitted_total",
        "counter",
        "Spans passed to emit.",
        stats.emitted,
    );
    metric(
        "otlp_pipeline_spans_exported_total",
        "counter",
        "Spans in batches the exporter accepted.",
        stats.exported,
    );
    metric(
        "otlp_pipeline_spans_dropped_total",
        "counter",
        "Spans dropped for any reason.",
        stats.dropped,
    );
    metric(
        "otlp_pipeline_batches_total",
        "counter",
        "Successful exports.",
        stats.batches,
    );
    metric(
        "otlp_pipeline_queue_depth",
        "gauge",
        "Spans waiting in the processor queue.",
        stats.queue_depth,
    );
    out.push_str(&batches.to_prometheus("otlp_pipeline_batch"));
    out.push_str(&pool.to_prometheus("otlp_pipeline_pool"));
    out
}
