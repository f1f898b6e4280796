//! The snapshot type returned by `get_stats` and `interval`.

use std::fmt;
use std::time::Duration;

use crate::monitor::Window;

/// A snapshot of a [`ConcurrencyMonitor`](crate::ConcurrencyMonitor):
/// since creation/reset ([`get_stats`](crate::ConcurrencyMonitor::get_stats))
/// or for one interval ([`interval`](crate::ConcurrencyMonitor::interval)).
///
/// Execution-time fields cover completions and timed failures
/// (`record_task_failure_after`, an unfinished `TaskTimer`). Percentiles
/// are within 1% of the exact value (see [`Histogram`](crate::Histogram)).
/// `Display` prints a small table.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ConcurrencyStats {
    /// Tasks started (`record_task_start` / `start_task`) in the window.
    pub total_tasks: u64,
    /// Tasks completed in the window.
    pub completed_tasks: u64,
    /// Tasks failed in the window.
    pub failed_tasks: u64,
    /// Tasks started but not yet completed or failed, now (a gauge, not
    /// windowed). While tasks start and finish during the read it is a
    /// lower estimate: never more than the tasks really running while the
    /// start counters were read (a task that started during the read is not
    /// counted), possibly fewer when one finished during the read.
    pub in_flight: u64,
    /// Tasks that took at least the slow-task threshold, in the window.
    pub slow_tasks: u64,
    /// `completed / (completed + failed)`; 0.0 when no task finished.
    /// (The seed divided by tasks started, which counted running tasks as
    /// failures.)
    pub success_rate: f64,
    /// Mean execution time.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "average_execution_time_ns", serialize_with = "ser_ns")
    )]
    pub average_execution_time: Duration,
    /// Longest execution time.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "max_execution_time_ns", serialize_with = "ser_ns")
    )]
    pub max_execution_time: Duration,
    /// Shortest execution time (zero when none recorded).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "min_execution_time_ns", serialize_with = "ser_ns")
    )]
    pub min_execution_time: Duration,
    /// Completed tasks per second over the window, using fractional
    /// seconds (so it is meaningful in the first second too).
    pub tasks_per_second: f64,
    /// Median execution time.
    #[cfg_attr(feature = "serde", serde(rename = "p50_ns", serialize_with = "ser_ns"))]
    pub p50: Duration,
    /// 90th percentile execution time.
    #[cfg_attr(feature = "serde", serde(rename = "p90_ns", serialize_with = "ser_ns"))]
    pub p90: Duration,
    /// 99th percentile execution time.
    #[cfg_attr(feature = "serde", serde(rename = "p99_ns", serialize_with = "ser_ns"))]
    pub p99: Duration,
    /// 99.9th percentile execution time.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "p999_ns", serialize_with = "ser_ns")
    )]
    pub p999: Duration,
    /// Number of queue-wait samples (`record_queue_wait`) in the window.
    pub queue_wait_samples: u64,
    /// Mean queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_average_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_average: Duration,
    /// Longest queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_max_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_max: Duration,
    /// Median queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_p50_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_p50: Duration,
    /// 90th percentile queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_p90_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_p90: Duration,
    /// 99th percentile queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_p99_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_p99: Duration,
    /// 99.9th percentile queue wait.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "queue_wait_p999_ns", serialize_with = "ser_ns")
    )]
    pub queue_wait_p999: Duration,
    /// Length of the window these numbers cover.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "elapsed_ns", serialize_with = "ser_ns")
    )]
    pub elapsed: Duration,
}

#[cfg(feature = "serde")]
fn ser_ns<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(crate::histogram::duration_to_nanos(*d))
}

impl ConcurrencyStats {
    pub(crate) fn from_window(w: &Window) -> Self {
        let finished = w.completed.saturating_add(w.failed);
        let secs = w.elapsed.as_secs_f64();
        let lat = &w.latency;
        let q = &w.queue_wait;
        let d = Duration::from_nanos;
        const QS: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
        let [p50, p90, p99, p999] = lat.quantiles(QS);
        let [q50, q90, q99, q999] = q.quantiles(QS);
        Self {
            total_tasks: w.started,
            completed_tasks: w.completed,
            failed_tasks: w.failed,
            in_flight: w.in_flight,
            slow_tasks: w.slow,
            success_rate: if finished == 0 {
                0.0
            } else {
                w.completed as f64 / finished as f64
            },
            average_execution_time: d(lat.mean()),
            max_execution_time: d(lat.max()),
            min_execution_time: d(lat.min()),
            tasks_per_second: if secs > 0.0 {
                w.completed as f64 / secs
            } else {
                0.0
            },
            p50: d(p50),
            p90: d(p90),
            p99: d(p99),
            p999: d(p999),
            queue_wait_samples: q.count(),
            queue_wait_average: d(q.mean()),
            queue_wait_max: d(q.max()),
            queue_wait_p50: d(q50),
            queue_wait_p90: d(q90),
            queue_wait_p99: d(q99),
            queue_wait_p999: d(q999),
            elapsed: w.elapsed,
        }
    }

    /// Serialises the snapshot as one JSON object (durations as `*_ns`
    /// integer nanoseconds).
    ///
    /// # Errors
    ///
    /// Whatever `serde_json` reports (it cannot fail for this type in
    /// practice, but the error is handed back rather than unwrapped).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl fmt::Display for ConcurrencyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>12}",
            "tasks", "started", "completed", "failed", "in-flight", "slow", "success", "per-second"
        )?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8.2}% {:>12.1}",
            "",
            self.total_tasks,
            self.completed_tasks,
            self.failed_tasks,
            self.in_flight,
            self.slow_tasks,
            self.success_rate * 100.0,
            self.tasks_per_second
        )?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
        )?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "execution",
            fmt_d(self.min_execution_time),
            fmt_d(self.average_execution_time),
            fmt_d(self.p50),
            fmt_d(self.p90),
            fmt_d(self.p99),
            fmt_d(self.p999),
            fmt_d(self.max_execution_time)
        )?;
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "queue wait",
            format!("n={}", self.queue_wait_samples),
            fmt_d(self.queue_wait_average),
            fmt_d(self.queue_wait_p50),
            fmt_d(self.queue_wait_p90),
            fmt_d(self.queue_wait_p99),
            fmt_d(self.queue_wait_p999),
            fmt_d(self.queue_wait_max)
        )?;
        write!(f, "window {}", fmt_d(self.elapsed))
    }
}

/// Short human form of a duration with three significant digits.
fn fmt_d(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0}ns")
    } else if ns < 1_000_000.0 {
        format!("{:.3}µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.3}ms", ns / 1e6)
    } else {
        format!("{:.3}s", ns / 1e9)
    }
}
