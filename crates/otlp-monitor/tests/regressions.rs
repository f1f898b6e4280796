//! Regression tests for the review defects of issue 14 (items 9 to 12).
#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use otlp_monitor::{ConcurrencyMonitor, Histogram};

/// The value of the one exposition line that starts with `name `.
fn sample(text: &str, name: &str) -> f64 {
    let prefix = format!("{name} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

/// Item 9: `Duration::MAX` plus one second saturates the monitor's sum (as
/// a plain `Histogram`'s does) instead of wrapping to about one second.
#[test]
fn latency_sum_saturates_instead_of_wrapping() {
    let m = ConcurrencyMonitor::new();
    for d in [Duration::MAX, Duration::from_secs(1)] {
        m.record_task_start();
        m.record_task_completion(d);
    }
    assert_eq!(m.latency_histogram().sum(), u64::MAX);
    let s = m.get_stats();
    assert_eq!(s.average_execution_time, Duration::from_nanos(u64::MAX / 2));
    let text = m.to_prometheus("t");
    let sum = sample(&text, "t_task_duration_seconds_sum");
    assert!(sum > 1.8e10, "_sum {sum} wrapped");
    // An interval that contains the saturated sum stays saturated.
    assert_eq!(
        m.interval().average_execution_time,
        s.average_execution_time
    );
    m.record_task_start();
    m.record_task_completion(Duration::from_secs(1));
    let later = m.interval();
    assert_eq!(later.completed_tasks, 1);
    assert_eq!(later.average_execution_time, Duration::from_nanos(u64::MAX));

    // The same for the queue-wait histogram and for the plain histogram.
    m.record_queue_wait(Duration::MAX);
    m.record_queue_wait(Duration::from_secs(1));
    assert_eq!(m.queue_wait_histogram().sum(), u64::MAX);
    let mut h = Histogram::new();
    h.record_duration(Duration::MAX);
    h.record_duration(Duration::from_secs(1));
    assert_eq!(h.sum(), u64::MAX);
}

/// Item 9 on the read-modify-write path: with one owned shard most of
/// these threads record into the shared shards, whose sum must saturate
/// too.
#[test]
fn shared_shard_sum_saturates() {
    let m = Arc::new(ConcurrencyMonitor::builder().shards(1).build().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for d in [Duration::MAX, Duration::from_secs(1), Duration::MAX] {
                    m.record_task_start();
                    m.record_task_completion(d);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let h = m.latency_histogram();
    assert_eq!(h.count(), 12);
    assert_eq!(h.sum(), u64::MAX);
}

/// Item 10: with 7 samples of 1 µs and 93 of 1 s, the 7th percentile is
/// rank 7 (1 µs), not rank 8 from `ceil(0.07 * 100.0) = ceil(7.000000000000001)`.
#[test]
fn quantile_rank_has_no_float_rounding_error() {
    let mut h = Histogram::new();
    h.record_n(1_000, 7);
    h.record_n(1_000_000_000, 93);
    let p7 = h.quantile(0.07);
    assert!((1_000..=1_010).contains(&p7), "p7 = {p7}");
    let p8 = h.quantile(0.08);
    assert!(p8 >= 990_000_000, "p8 = {p8}");
    assert_eq!(h.quantiles([0.07, 0.5]), [p7, h.quantile(0.5)]);

    // Other decimal quantiles whose float products round up.
    for (q, n) in [
        (0.07, 100u64),
        (0.14, 100),
        (0.28, 100),
        (0.57, 100),
        (0.29, 100),
    ] {
        let k = (q * 100.0f64).round() as u64 * n / 100;
        let mut h = Histogram::new();
        h.record_n(5, k);
        h.record_n(1_000_000, n - k);
        assert_eq!(h.quantile(q), 5, "q = {q}: rank {k} holds the small values");
    }

    // And through the monitor's percentiles.
    let m = ConcurrencyMonitor::new();
    for _ in 0..1000 {
        m.record_task_start();
        m.record_task_completion(Duration::from_micros(1));
    }
    for _ in 0..9000 {
        m.record_task_start();
        m.record_task_completion(Duration::from_secs(1));
    }
    // Rank 1000 of 10 000 is the last 1 µs sample.
    assert!(m.latency_histogram().quantile(0.1) < 1_010);
}

/// Item 11: a sample above the tracked range (about 73 minutes) is counted
/// only in `+Inf`, not in a finite bucket above the range.
#[test]
fn samples_past_the_tracked_range_are_only_in_inf() {
    let ten_hours = Duration::from_secs(10 * 3600);
    let one_hour = Duration::from_secs(3600);
    assert!(ten_hours.as_nanos() > u128::from(Histogram::MAX_TRACKED));

    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_completion(ten_hours);
    let buckets = [
        Duration::from_secs(60),
        Duration::from_secs(7200),
        Duration::from_secs(86_400),
        Duration::MAX,
    ];
    let text = m.to_prometheus_with_buckets("t", &buckets).unwrap();
    assert_eq!(
        sample(&text, "t_task_duration_seconds_bucket{le=\"7200\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "t_task_duration_seconds_bucket{le=\"86400\"}"),
        0.0
    );
    let max_le = format!(
        "t_task_duration_seconds_bucket{{le=\"{}\"}}",
        Duration::MAX.as_secs_f64()
    );
    assert_eq!(sample(&text, &max_le), 0.0);
    assert_eq!(
        sample(&text, "t_task_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(sample(&text, "t_task_duration_seconds_count"), 1.0);

    // A tracked sample is still counted in the bucket above it.
    m.record_task_start();
    m.record_task_completion(one_hour);
    let text = m.to_prometheus_with_buckets("t", &buckets).unwrap();
    assert_eq!(
        sample(&text, "t_task_duration_seconds_bucket{le=\"7200\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "t_task_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );

    // The histogram itself: the untracked sample keeps its exact max, is
    // counted only at u64::MAX, and a quantile among such samples is
    // clamped to what is known.
    let mut h = Histogram::new();
    h.record_duration(ten_hours);
    let ns = ten_hours.as_nanos() as u64;
    assert_eq!(h.count_at_or_below(Histogram::MAX_TRACKED), 0);
    assert_eq!(h.count_at_or_below(u64::MAX - 1), 0);
    assert_eq!(h.count_at_or_below(u64::MAX), 1);
    assert_eq!(h.quantile(0.5), ns);
    assert_eq!(h.max(), ns);
    h.record_duration(ten_hours * 2);
    h.record(1);
    let p50 = h.quantile(0.5);
    assert!(p50 > Histogram::MAX_TRACKED && p50 <= 2 * ns, "p50 = {p50}");
    let buckets: Vec<_> = h.buckets().collect();
    assert_eq!(
        buckets.last(),
        Some(&(Histogram::MAX_TRACKED + 1, u64::MAX, 2))
    );
}

/// Item 12: with three recorders that each have at most one task in
/// flight, a racing reader never sees more than three in flight.
#[test]
fn in_flight_never_exceeds_the_running_tasks() {
    const RECORDERS: u64 = 3;
    let reads = if cfg!(miri) { 20 } else { 2_000 };
    let m = Arc::new(ConcurrencyMonitor::new());
    let stop = Arc::new(AtomicBool::new(false));
    // Recorders run for as long as the reader reads, so the two overlap
    // however the threads are scheduled.
    let recorders: Vec<_> = (0..RECORDERS)
        .map(|_| {
            let (m, stop) = (Arc::clone(&m), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut tasks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    m.record_task_start();
                    m.record_task_completion(Duration::from_nanos(10));
                    tasks += 1;
                }
                tasks
            })
        })
        .collect();
    let mut worst = 0;
    for _ in 0..reads {
        let s = m.get_stats();
        assert!(s.completed_tasks <= s.total_tasks);
        worst = worst.max(s.in_flight);
    }
    stop.store(true, Ordering::Relaxed);
    let tasks: u64 = recorders.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(
        worst <= RECORDERS,
        "saw {worst} in flight with {RECORDERS} recorders"
    );
    let s = m.get_stats();
    assert_eq!((s.completed_tasks, s.in_flight), (tasks, 0));
}

/// Item 12: the exposition has counters to take a rate from and no
/// windowed `_per_second` gauge.
#[test]
fn prometheus_has_counters_not_a_rate_gauge() {
    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_completion(Duration::from_millis(1));
    let text = m.to_prometheus("t");
    assert!(!text.contains("per_second"), "{text}");
    assert!(text.contains("# TYPE t_tasks_completed_total counter\n"));
    assert_eq!(sample(&text, "t_tasks_completed_total"), 1.0);
    // The snapshot still has the figure for the table and JSON.
    assert!(m.get_stats().tasks_per_second > 0.0);
}
