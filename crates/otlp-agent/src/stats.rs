//! What the agent counts, per signal, and its Prometheus text.
//!
//! Every item the agent acknowledged ends in exactly one of `exported`,
//! `rejected_upstream` or one of the `dropped_*` counters, or is still
//! `queued`: [`SignalStats::unaccounted`] is zero whenever no request is
//! being accepted and no export is ending (the counters are separate
//! atomics, so a snapshot taken during either may see an item in two
//! places for that instant).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use otlp_monitor::ConcurrencyMonitor;

use crate::wire::Signal;

/// One signal's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received_requests: AtomicU64,
    pub(crate) accepted_requests: AtomicU64,
    pub(crate) accepted_items: AtomicU64,
    pub(crate) refused_full_requests: AtomicU64,
    pub(crate) refused_full_items: AtomicU64,
    pub(crate) refused_shutdown_requests: AtomicU64,
    pub(crate) refused_shutdown_items: AtomicU64,
    pub(crate) malformed_requests: AtomicU64,
    pub(crate) exported_items: AtomicU64,
    pub(crate) exported_requests: AtomicU64,
    pub(crate) exported_bytes: AtomicU64,
    pub(crate) rejected_upstream_items: AtomicU64,
    pub(crate) dropped_permanent_items: AtomicU64,
    pub(crate) dropped_max_elapsed_items: AtomicU64,
    pub(crate) dropped_shutdown_items: AtomicU64,
    pub(crate) dropped_disk_full_items: AtomicU64,
    pub(crate) dropped_unreadable_items: AtomicU64,
    pub(crate) disk_only_items: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) errors_retryable: AtomicU64,
    pub(crate) errors_permanent: AtomicU64,
    pub(crate) errors_tls: AtomicU64,
    pub(crate) errors_timeout: AtomicU64,
    pub(crate) queued_items: AtomicU64,
    pub(crate) queued_bytes: AtomicU64,
    pub(crate) refused_disk_requests: AtomicU64,
    pub(crate) replayed_requests: AtomicU64,
    pub(crate) replayed_items: AtomicU64,
    pub(crate) left_on_disk_items: AtomicU64,
    pub(crate) corrupt_records: AtomicU64,
    pub(crate) truncated_bytes: AtomicU64,
    pub(crate) disk_writes: AtomicU64,
    /// Per-batch warnings (partial successes, drops, disk failures), at
    /// most one per interval: a failing upstream must not flood the log.
    pub(crate) warnings: otlp_async::LogThrottle,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

/// One signal's figures; see [`AgentStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalStats {
    /// Requests that reached the agent's sink (past the size, framing and
    /// compression checks).
    pub received_requests: u64,
    /// Requests acknowledged.
    pub accepted_requests: u64,
    /// Items acknowledged: each ends counted below, or is still queued.
    pub accepted_items: u64,
    /// Requests refused because the queue was full (retryable answer).
    pub refused_full_requests: u64,
    /// Their items.
    pub refused_full_items: u64,
    /// Requests refused because the agent was shutting down (retryable).
    pub refused_shutdown_requests: u64,
    /// Their items.
    pub refused_shutdown_items: u64,
    /// Requests refused as malformed (not retryable).
    pub malformed_requests: u64,
    /// Items the upstream accepted.
    pub exported_items: u64,
    /// Requests the upstream accepted.
    pub exported_requests: u64,
    /// Bytes of those requests, before compression.
    pub exported_bytes: u64,
    /// Items the upstream accepted the request for but rejected (an OTLP
    /// partial success); not retried.
    pub rejected_upstream_items: u64,
    /// Items dropped because the upstream refused their request for good
    /// (400, INVALID_ARGUMENT, ...).
    pub dropped_permanent_items: u64,
    /// Items dropped after `max_elapsed` of retries.
    pub dropped_max_elapsed_items: u64,
    /// Items still queued when a shutdown's time ran out.
    pub dropped_shutdown_items: u64,
    /// Items the disk queue discarded with its oldest segment to make room
    /// (`--on-full drop-oldest`) before they were loaded for export.
    pub dropped_disk_full_items: u64,
    /// Items of disk queue records that could not be read back (their
    /// bytes changed on disk after they were written).
    pub dropped_unreadable_items: u64,
    /// Upstream attempts, retries included.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Failed attempts by kind: retryable answers or connection failures.
    pub errors_retryable: u64,
    /// Permanent refusals.
    pub errors_permanent: u64,
    /// TLS failures.
    pub errors_tls: u64,
    /// Attempts with no answer within the timeout.
    pub errors_timeout: u64,
    /// Items accepted and not yet exported or dropped.
    pub queued_items: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Of `queued_items`, those held on disk only (the disk queue's backlog
    /// beyond the memory it may use), read back as room frees.
    pub disk_only_items: u64,
    /// Requests refused because the disk queue failed (an I/O error;
    /// retryable answer).
    pub refused_disk_requests: u64,
    /// Requests the disk queue held at start, queued again.
    pub replayed_requests: u64,
    /// Their items: acknowledged in an earlier run, counted here instead of
    /// in `accepted_items`.
    pub replayed_items: u64,
    /// Items a shutdown left in the disk queue for the next start.
    pub left_on_disk_items: u64,
    /// Damaged stretches of the disk queue skipped at start.
    pub corrupt_records: u64,
    /// Bytes of a torn last record cut off at start.
    pub truncated_bytes: u64,
    /// Writes to the disk queue (each holds every append that was waiting).
    pub disk_writes: u64,
    /// Bytes of the signal's disk queue segments.
    pub disk_bytes: u64,
    /// Fsyncs of the signal's disk queue segments.
    pub fsyncs: u64,
    /// Their mean duration, in microseconds.
    pub fsync_mean_micros: u64,
    /// The longest, in microseconds.
    pub fsync_max_micros: u64,
}

impl SignalStats {
    /// Items dropped, all causes.
    pub fn dropped_items(&self) -> u64 {
        self.dropped_permanent_items
            + self.dropped_max_elapsed_items
            + self.dropped_shutdown_items
            + self.dropped_disk_full_items
            + self.dropped_unreadable_items
    }

    /// Accepted (and replayed) items not found in any outcome, in the queue
    /// or left on disk; zero unless the agent loses count.
    pub fn unaccounted(&self) -> i128 {
        i128::from(self.accepted_items) + i128::from(self.replayed_items)
            - i128::from(self.left_on_disk_items)
            - i128::from(self.exported_items)
            - i128::from(self.rejected_upstream_items)
            - i128::from(self.dropped_items())
            - i128::from(self.queued_items)
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SignalStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let queued_items = get(&self.queued_items);
        let queued_bytes = get(&self.queued_bytes);
        SignalStats {
            received_requests: get(&self.received_requests),
            accepted_requests: get(&self.accepted_requests),
            accepted_items: get(&self.accepted_items),
            refused_full_requests: get(&self.refused_full_requests),
            refused_full_items: get(&self.refused_full_items),
            refused_shutdown_requests: get(&self.refused_shutdown_requests),
            refused_shutdown_items: get(&self.refused_shutdown_items),
            malformed_requests: get(&self.malformed_requests),
            exported_items: get(&self.exported_items),
            exported_requests: get(&self.exported_requests),
            exported_bytes: get(&self.exported_bytes),
            rejected_upstream_items: get(&self.rejected_upstream_items),
            dropped_permanent_items: get(&self.dropped_permanent_items),
            dropped_max_elapsed_items: get(&self.dropped_max_elapsed_items),
            dropped_shutdown_items: get(&self.dropped_shutdown_items),
            dropped_disk_full_items: get(&self.dropped_disk_full_items),
            dropped_unreadable_items: get(&self.dropped_unreadable_items),
            disk_only_items: get(&self.disk_only_items),
            attempts: get(&self.attempts),
            retries: get(&self.retries),
            errors_retryable: get(&self.errors_retryable),
            errors_permanent: get(&self.errors_permanent),
            errors_tls: get(&self.errors_tls),
            errors_timeout: get(&self.errors_timeout),
            queued_items,
            queued_bytes,
            refused_disk_requests: get(&self.refused_disk_requests),
            replayed_requests: get(&self.replayed_requests),
            replayed_items: get(&self.replayed_items),
            left_on_disk_items: get(&self.left_on_disk_items),
            corrupt_records: get(&self.corrupt_records),
            truncated_bytes: get(&self.truncated_bytes),
            disk_writes: get(&self.disk_writes),
            disk_bytes: 0,
            fsyncs: 0,
            fsync_mean_micros: 0,
            fsync_max_micros: 0,
        }
    }
}

/// The agent's figures, per signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentStats {
    /// Spans.
    pub traces: SignalStats,
    /// Log records.
    pub logs: SignalStats,
    /// Metric data points.
    pub metrics: SignalStats,
}

impl AgentStats {
    /// The figures of `signal`.
    pub fn signal(&self, signal: Signal) -> &SignalStats {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
        }
    }
}

/// The signal's label value.
pub(crate) fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "traces",
        Signal::Logs => "logs",
        Signal::Metrics => "metrics",
    }
}

/// Reads one figure of a signal's stats.
type Field<'a> = &'a dyn Fn(&SignalStats) -> u64;

/// Prometheus text of `stats`, then each signal's export monitor
/// (attempts as tasks: count, failures, duration histogram).
pub(crate) fn prometheus(stats: &AgentStats, monitors: &[(Signal, &ConcurrencyMonitor)]) -> String {
    let mut out = String::new();
    let signals = [Signal::Traces, Signal::Logs, Signal::Metrics];
    let mut family = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP otlp_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE otlp_agent_{name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "otlp_agent_{name}{{{labels}}} {value}");
        }
    };
    let per_signal = |f: &dyn Fn(&SignalStats) -> u64| -> Vec<(String, u64)> {
        signals
            .iter()
            .map(|s| {
                (
                    format!("signal=\"{}\"", signal_name(*s)),
                    f(stats.signal(*s)),
                )
            })
            .collect()
    };
    let by = |label: &str, parts: &[(&str, Field<'_>)]| -> Vec<(String, u64)> {
        signals
            .iter()
            .flat_map(|s| {
                parts.iter().map(move |(value, f)| {
                    (
                        format!("signal=\"{}\",{label}=\"{value}\"", signal_name(*s)),
                        f(stats.signal(*s)),
                    )
                })
            })
            .collect()
    };
    family(
        "received_requests_total",
        "counter",
        "Requests that passed the size, framing and compression checks.",
        &per_signal(&|s| s.received_requests),
    );
    family(
        "accepted_items_total",
        "counter",
        "Items acknowledged to clients.",
        &per_signal(&|s| s.accepted_items),
    );
    family(
        "refused_requests_total",
        "counter",
        "Requests refused, by reason.",
        &by(
            "reason",
            &[
                ("queue_full", &|s| s.refused_full_requests),
                ("shutting_down", &|s| s.refused_shutdown_requests),
                ("malformed", &|s| s.malformed_requests),
                ("disk_error", &|s| s.refused_disk_requests),
            ],
        ),
    );
    family(
        "exported_items_total",
        "counter",
        "Items the upstream accepted.",
        &per_signal(&|s| s.exported_items),
    );
    family(
        "rejected_upstream_items_total",
        "counter",
        "Items the upstream rejected in a partial success.",
        &per_signal(&|s| s.rejected_upstream_items),
    );
    family(
        "dropped_items_total",
        "counter",
        "Acknowledged items dropped, by cause.",
        &by(
            "cause",
            &[
                ("permanent_error", &|s| s.dropped_permanent_items),
                ("max_elapsed", &|s| s.dropped_max_elapsed_items),
                ("shutdown", &|s| s.dropped_shutdown_items),
                ("disk_full", &|s| s.dropped_disk_full_items),
                ("unreadable", &|s| s.dropped_unreadable_items),
            ],
        ),
    );
    family(
        "retries_total",
        "counter",
        "Upstream attempts that were retries.",
        &per_signal(&|s| s.retries),
    );
    family(
        "upstream_errors_total",
        "counter",
        "Failed upstream attempts, by kind.",
        &by(
            "kind",
            &[
                ("retryable", &|s| s.errors_retryable),
                ("permanent", &|s| s.errors_permanent),
                ("tls", &|s| s.errors_tls),
                ("timeout", &|s| s.errors_timeout),
            ],
        ),
    );
    family(
        "queue_items",
        "gauge",
        "Items accepted and not yet exported or dropped.",
        &per_signal(&|s| s.queued_items),
    );
    family(
        "queue_bytes",
        "gauge",
        "Bytes of those items.",
        &per_signal(&|s| s.queued_bytes),
    );
    family(
        "queue_disk_only_items",
        "gauge",
        "Queued items held on disk only, waiting for memory.",
        &per_signal(&|s| s.disk_only_items),
    );
    family(
        "replayed_items_total",
        "counter",
        "Items the disk queue held at start, queued again.",
        &per_signal(&|s| s.replayed_items),
    );
    family(
        "left_on_disk_items_total",
        "counter",
        "Items a shutdown left in the disk queue for the next start.",
        &per_signal(&|s| s.left_on_disk_items),
    );
    family(
        "disk_corrupt_records_total",
        "counter",
        "Damaged stretches of the disk queue skipped at start.",
        &per_signal(&|s| s.corrupt_records),
    );
    family(
        "disk_writes_total",
        "counter",
        "Group writes to the disk queue.",
        &per_signal(&|s| s.disk_writes),
    );
    family(
        "disk_fsyncs_total",
        "counter",
        "Fsyncs of the disk queue's segments.",
        &per_signal(&|s| s.fsyncs),
    );
    family(
        "disk_fsync_max_microseconds",
        "gauge",
        "The longest fsync of the disk queue's segments so far.",
        &per_signal(&|s| s.fsync_max_micros),
    );
    family(
        "disk_bytes",
        "gauge",
        "Bytes of the disk queue's segments.",
        &per_signal(&|s| s.disk_bytes),
    );
    for (signal, monitor) in monitors {
        out.push_str(
            &monitor.to_prometheus(&format!("otlp_agent_export_{}", signal_name(*signal))),
        );
    }
    out
}
