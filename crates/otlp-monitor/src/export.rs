//! Prometheus text exposition and JSON export.

use std::fmt::Write as _;
use std::time::Duration;

use crate::error::MonitorError;
use crate::histogram::{Histogram, duration_to_nanos};
use crate::monitor::ConcurrencyMonitor;

/// Default Prometheus histogram bucket bounds: 1 µs to 60 s in 1-2.5-5
/// steps.
pub const DEFAULT_PROMETHEUS_BUCKETS: &[Duration] = &[
    Duration::from_micros(1),
    Duration::from_nanos(2_500),
    Duration::from_micros(5),
    Duration::from_micros(10),
    Duration::from_micros(25),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

fn is_valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    match chars.next() {
        None => true,
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }
        Some(_) => false,
    }
}

fn sanitize_prefix(prefix: &str) -> String {
    let mut out: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn check_buckets(buckets: &[Duration]) -> Result<(), MonitorError> {
    if buckets.is_empty() {
        return Err(MonitorError::InvalidBuckets {
            reason: "no bucket bounds given",
        });
    }
    if buckets.iter().any(Duration::is_zero) {
        return Err(MonitorError::InvalidBuckets {
            reason: "a bucket bound is zero",
        });
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(MonitorError::InvalidBuckets {
            reason: "bucket bounds are not strictly increasing",
        });
    }
    Ok(())
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn write_scalar(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

fn write_histogram(out: &mut String, name: &str, help: &str, h: &Histogram, buckets: &[Duration]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for le in buckets {
        // A bound at or past u64::MAX ns would let count_at_or_below claim
        // the untracked samples; only +Inf below may count them.
        let bound = duration_to_nanos(*le).min(u64::MAX - 1);
        let count = h.count_at_or_below(bound);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", le.as_secs_f64());
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", seconds(h.sum()));
    let _ = writeln!(out, "{name}_count {}", h.count());
}

impl ConcurrencyMonitor {
    /// Prometheus text exposition (format 0.0.4) of the window since
    /// creation or the last reset, with [`DEFAULT_PROMETHEUS_BUCKETS`].
    ///
    /// Metrics (each name prefixed with `prefix_` unless `prefix` is
    /// empty): `tasks_started_total`, `tasks_completed_total`,
    /// `tasks_failed_total`, `tasks_slow_total` (counters),
    /// `tasks_in_flight`, `task_success_ratio` (gauges),
    /// `task_duration_seconds` and `queue_wait_seconds` (histograms with
    /// `_bucket`/`_sum`/`_count`). Bucket counts are at histogram
    /// precision: a sample within 0.8% above a bound may be counted in it.
    /// Samples above [`Histogram::MAX_TRACKED`] (about 73 minutes) are
    /// counted only in `le="+Inf"`, never in a finite bucket, whatever its
    /// bound.
    ///
    /// There is no throughput gauge: a `_per_second` gauge averaged over
    /// the window since reset is what the Prometheus naming advice warns
    /// against. Take the rate from the counter in the query instead, e.g.
    /// `rate(prefix_tasks_completed_total[1m])`. (The counters restart at
    /// [`reset`](Self::reset), which `rate` treats as a counter reset.)
    /// [`ConcurrencyStats::tasks_per_second`](crate::ConcurrencyStats::tasks_per_second)
    /// is still there for the `Display` table and JSON.
    ///
    /// Characters not allowed in a metric name are replaced by `_`; use
    /// [`try_to_prometheus`](Self::try_to_prometheus) to reject them instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use otlp_monitor::ConcurrencyMonitor;
    ///
    /// let monitor = ConcurrencyMonitor::new();
    /// monitor.record_task_start();
    /// monitor.record_task_completion(Duration::from_millis(3));
    /// let text = monitor.to_prometheus("exporter");
    /// assert!(text.contains("exporter_tasks_completed_total 1\n"));
    /// assert!(text.contains("exporter_task_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    /// ```
    pub fn to_prometheus(&self, prefix: &str) -> String {
        let prefix = sanitize_prefix(prefix);
        self.render_prometheus(&prefix, DEFAULT_PROMETHEUS_BUCKETS)
    }

    /// Like [`to_prometheus`](Self::to_prometheus), but an invalid prefix is
    /// an error.
    ///
    /// # Errors
    ///
    /// [`MonitorError::InvalidMetricName`] if `prefix` is not a valid
    /// Prometheus metric name.
    pub fn try_to_prometheus(&self, prefix: &str) -> Result<String, MonitorError> {
        self.to_prometheus_with_buckets(prefix, DEFAULT_PROMETHEUS_BUCKETS)
    }

    /// Prometheus exposition with your own histogram bucket bounds.
    ///
    /// # Errors
    ///
    /// [`MonitorError::InvalidMetricName`] for an invalid prefix;
    /// [`MonitorError::InvalidBuckets`] if `buckets` is empty, contains
    /// zero, or is not strictly increasing.
    pub fn to_prometheus_with_buckets(
        &self,
        prefix: &str,
        buckets: &[Duration],
    ) -> Result<String, MonitorError> {
        if !is_valid_prefix(prefix) {
            return Err(MonitorError::InvalidMetricName {
                name: prefix.to_owned(),
            });
        }
        check_buckets(buckets)?;
        Ok(self.render_prometheus(prefix, buckets))
    }

    fn render_prometheus(&self, prefix: &str, buckets: &[Duration]) -> String {
        let window = self.window_since_reset();
        let stats = crate::ConcurrencyStats::from_window(&window);
        let sep = if prefix.is_empty() { "" } else { "_" };
        let n = |name: &str| format!("{prefix}{sep}{name}");
        let mut out = String::with_capacity(4096);
        write_scalar(
            &mut out,
            &n("tasks_started_total"),
            "counter",
            "Tasks started.",
            window.started,
        );
        write_scalar(
            &mut out,
            &n("tasks_completed_total"),
            "counter",
            "Tasks completed.",
            window.completed,
        );
        write_scalar(
            &mut out,
            &n("tasks_failed_total"),
            "counter",
            "Tasks failed.",
            window.failed,
        );
        write_scalar(
            &mut out,
            &n("tasks_slow_total"),
            "counter",
            "Tasks at or above the slow-task threshold.",
            window.slow,
        );
        write_scalar(
            &mut out,
            &n("tasks_in_flight"),
            "gauge",
            "Tasks started and not yet finished.",
            window.in_flight,
        );
        write_scalar(
            &mut out,
            &n("task_success_ratio"),
            "gauge",
            "Completed / (completed + failed).",
            stats.success_rate,
        );
        write_histogram(
            &mut out,
            &n("task_duration_seconds"),
            "Task execution time.",
            &window.latency,
            buckets,
        );
        write_histogram(
            &mut out,
            &n("queue_wait_seconds"),
            "Time tasks waited in a queue before starting.",
            &window.queue_wait,
            buckets,
        );
        out
    }

    /// The current [`get_stats`](Self::get_stats) snapshot as JSON.
    ///
    /// # Errors
    ///
    /// Whatever `serde_json` reports (not expected for this type).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        self.get_stats().to_json()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert!(is_valid_prefix(""));
        assert!(is_valid_prefix("otlp:exporter_1"));
        assert!(!is_valid_prefix("1abc"));
        assert!(!is_valid_prefix("a-b"));
        assert_eq!(sanitize_prefix("1a-b c"), "_1a_b_c");
    }

    #[test]
    fn bucket_rules() {
        assert!(check_buckets(&[]).is_err());
        assert!(check_buckets(&[Duration::ZERO]).is_err());
        assert!(check_buckets(&[Duration::from_secs(2), Duration::from_secs(1)]).is_err());
        assert!(check_buckets(DEFAULT_PROMETHEUS_BUCKETS).is_ok());
    }
}
