//! Concurrency metrics that cost nanoseconds: task counters, an in-flight
//! gauge, HDR-style latency histograms with percentiles, interval windows,
//! and exports (a `Display` table, Prometheus text, JSON).
//!
//! # Design
//!
//! The seed's monitor kept one set of atomics that every thread updated, so
//! under contention each record bounced the same cache lines between cores,
//! and it had no percentiles. Here:
//!
//! * **Sharded, lock-free recording.** A [`ConcurrencyMonitor`] owns one
//!   shard per thread slot (plus a few shared ones), each on its own cache
//!   lines ([`crossbeam_utils::CachePadded`]) with its own histogram
//!   arrays. Every thread gets a process-wide slot id, unique among live
//!   threads and reused after a thread exits; thread `i` is the only writer
//!   of owned shard `i`, so it records with plain atomic loads and stores —
//!   no locked instruction, no shared cache line. Threads beyond the shard
//!   count fall back to shared shards updated with `fetch_add`. Min/max
//!   change with a CAS only when a value beats them. No lock, no
//!   allocation.
//! * **Merged on read.** [`get_stats`](ConcurrencyMonitor::get_stats) sums
//!   the shards. Event counters are incremented with `Release` after the
//!   histogram and min/max are updated, and read with `Acquire` before the
//!   start counters and histograms, so a snapshot never shows more finished
//!   tasks than started ones and never a completion without its latency.
//!   The in-flight gauge subtracts finishes read once more *after* the
//!   starts, so it never counts a task that started during the read: it is
//!   at most what was really running. The protocol is model-checked with
//!   loom (`tests/loom_shards.rs`).
//! * **Fixed-memory histograms.** [`Histogram`] uses log-linear buckets (128
//!   per power of two), ≤ 0.39% relative error on every quantile from 1 ns
//!   to ~73 min, mergeable and resettable.
//! * **Windows without stopping writers.** Shard counters only grow;
//!   [`reset`](ConcurrencyMonitor::reset) and
//!   [`interval`](ConcurrencyMonitor::interval) remember earlier snapshots
//!   and report differences, so the in-flight gauge survives a reset.
//! * **RAII.** [`TaskTimer`] records a failure if it is dropped unfinished,
//!   including while a panic unwinds, so in-flight counts cannot leak.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use otlp_monitor::ConcurrencyMonitor;
//!
//! let monitor = Arc::new(ConcurrencyMonitor::new());
//! let workers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let monitor = Arc::clone(&monitor);
//!         std::thread::spawn(move || {
//!             for i in 0..1000u64 {
//!                 monitor.record_queue_wait(Duration::from_micros(i % 10));
//!                 let timer = monitor.start_task();
//!                 if i % 100 == 0 {
//!                     drop(timer); // unfinished: counted as a failure
//!                 } else {
//!                     timer.finish();
//!                 }
//!             }
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     w.join().unwrap();
//! }
//! let stats = monitor.get_stats();
//! assert_eq!(stats.total_tasks, 2000);
//! assert_eq!(stats.failed_tasks, 20);
//! assert_eq!(stats.in_flight, 0);
//! assert!((stats.success_rate - 0.99).abs() < 1e-12);
//! assert!(stats.p50 <= stats.p99 && stats.p99 <= stats.max_execution_time);
//! println!("{stats}");
//! let prometheus = monitor.to_prometheus("pipeline");
//! assert!(prometheus.contains("pipeline_tasks_failed_total 20"));
//! ```
//!
//! # Features
//!
//! * `serde`: `Serialize` for [`ConcurrencyStats`] and [`Histogram`], and
//!   `to_json` on both the stats and the monitor.
//! * `tracing`: a `WARN` event (target `otlp_monitor`) for every task at or
//!   above the slow-task threshold
//!   ([`MonitorBuilder::slow_task_threshold`]).

mod error;
mod export;
mod histogram;
mod monitor;
mod stats;
mod sync;

pub use error::MonitorError;
pub use export::DEFAULT_PROMETHEUS_BUCKETS;
pub use histogram::Histogram;
pub use monitor::{ConcurrencyMonitor, MAX_SHARDS, MonitorBuilder, OwnedTaskTimer, TaskTimer};
pub use stats::ConcurrencyStats;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<ConcurrencyMonitor>();
        assert_send_sync::<std::sync::Arc<ConcurrencyMonitor>>();
        assert_send_sync::<Histogram>();
        assert_send_sync::<ConcurrencyStats>();
        assert_send_sync::<OwnedTaskTimer>();
    }
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
