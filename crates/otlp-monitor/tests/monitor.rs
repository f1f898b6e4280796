//! Behaviour of the public API: totals, TaskTimer, windows, exports.
#![cfg(not(loom))]

use std::sync::Arc;
use std::time::Duration;

use otlp_monitor::{ConcurrencyMonitor, Histogram, MonitorError};

#[test]
fn seed_fields_and_percentiles() {
    let m = ConcurrencyMonitor::new();
    for us in 1..=100u64 {
        m.record_task_start();
        m.record_task_completion(Duration::from_micros(us));
    }
    m.record_task_start();
    m.record_task_failure();
    m.record_task_start(); // still running
    let s = m.get_stats();
    assert_eq!(s.total_tasks, 102);
    assert_eq!(s.completed_tasks, 100);
    assert_eq!(s.failed_tasks, 1);
    assert_eq!(s.in_flight, 1);
    assert!((s.success_rate - 100.0 / 101.0).abs() < 1e-12);
    assert_eq!(s.min_execution_time, Duration::from_micros(1));
    assert_eq!(s.max_execution_time, Duration::from_micros(100));
    assert_eq!(s.average_execution_time, Duration::from_nanos(50_500));
    let close = |got: Duration, want_us: u64| {
        let want = want_us as f64 * 1e3;
        (got.as_nanos() as f64 - want).abs() / want <= 0.01
    };
    assert!(close(s.p50, 50), "{:?}", s.p50);
    assert!(close(s.p90, 90), "{:?}", s.p90);
    assert!(close(s.p99, 99), "{:?}", s.p99);
    assert_eq!(s.p999, Duration::from_micros(100));
    // Fractional elapsed seconds: positive within the first second.
    assert!(s.tasks_per_second > 0.0);
    assert!(s.elapsed > Duration::ZERO);
}

#[test]
fn empty_monitor_reports_zeros() {
    let s = ConcurrencyMonitor::default().get_stats();
    assert_eq!(s.total_tasks, 0);
    assert_eq!(s.success_rate, 0.0);
    assert_eq!(s.min_execution_time, Duration::ZERO);
    assert_eq!(s.p99, Duration::ZERO);
    assert_eq!(s.tasks_per_second, 0.0);
    assert!(s.to_string().contains("latency"));
}

#[test]
fn failure_without_start_does_not_underflow_in_flight() {
    let m = ConcurrencyMonitor::new();
    m.record_task_failure();
    m.record_task_completion(Duration::from_nanos(5));
    let s = m.get_stats();
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.failed_tasks, 1);
    assert_eq!(s.completed_tasks, 1);
}

#[test]
fn failure_after_records_latency() {
    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_failure_after(Duration::from_millis(7));
    let s = m.get_stats();
    assert_eq!((s.failed_tasks, s.completed_tasks, s.in_flight), (1, 0, 0));
    assert_eq!(s.max_execution_time, Duration::from_millis(7));
    assert_eq!(m.latency_histogram().count(), 1);
}

#[test]
fn task_timer_finish_fail_and_drop() {
    let m = ConcurrencyMonitor::new();
    let t = m.start_task();
    assert_eq!(m.get_stats().in_flight, 1);
    let took = t.finish();
    assert!(m.get_stats().max_execution_time >= took);
    m.start_task().fail();
    drop(m.start_task());
    let s = m.get_stats();
    assert_eq!(
        (
            s.total_tasks,
            s.completed_tasks,
            s.failed_tasks,
            s.in_flight
        ),
        (3, 1, 2, 0)
    );
    assert_eq!(m.latency_histogram().count(), 3);
}

#[test]
fn task_timer_dropped_during_panic_records_failure() {
    let m = ConcurrencyMonitor::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _timer = m.start_task();
        panic!("user task panicked");
    }));
    assert!(result.is_err());
    let s = m.get_stats();
    assert_eq!(
        (
            s.total_tasks,
            s.completed_tasks,
            s.failed_tasks,
            s.in_flight
        ),
        (1, 0, 1, 0)
    );
}

#[test]
fn owned_timer_in_a_panicking_thread_records_failure() {
    let m = Arc::new(ConcurrencyMonitor::new());
    let timer = m.start_task_owned();
    let joined = std::thread::spawn(move || {
        let _timer = timer;
        panic!("worker task panicked");
    })
    .join();
    assert!(joined.is_err());
    let ok = m.start_task_owned();
    std::thread::spawn(move || ok.finish()).join().unwrap();
    let s = m.get_stats();
    assert_eq!((s.completed_tasks, s.failed_tasks, s.in_flight), (1, 1, 0));
}

#[test]
fn queue_wait_is_separate() {
    let m = ConcurrencyMonitor::new();
    for ms in 1..=10 {
        m.record_queue_wait(Duration::from_millis(ms));
    }
    let s = m.get_stats();
    assert_eq!(s.total_tasks, 0);
    assert_eq!(s.completed_tasks, 0);
    assert_eq!(s.queue_wait_samples, 10);
    assert_eq!(s.queue_wait_max, Duration::from_millis(10));
    assert_eq!(s.queue_wait_average, Duration::from_micros(5_500));
    let p50 = s.queue_wait_p50.as_nanos() as f64;
    assert!((p50 - 5e6).abs() / 5e6 <= 0.01, "{p50}");
}

#[test]
fn intervals_are_deltas_and_sum_to_totals() {
    let m = ConcurrencyMonitor::new();
    let mut completed = 0;
    let mut failed = 0;
    for round in 1..=5u64 {
        for i in 0..round * 10 {
            m.record_task_start();
            if i % 5 == 0 {
                m.record_task_failure();
            } else {
                m.record_task_completion(Duration::from_micros(round * 100));
            }
        }
        let iv = m.interval();
        assert_eq!(iv.total_tasks, round * 10);
        assert_eq!(iv.failed_tasks, round * 2);
        assert_eq!(iv.completed_tasks, round * 8);
        // Latencies of this interval only.
        let want = (round * 100_000) as f64;
        for got in [iv.p50, iv.p99, iv.min_execution_time, iv.max_execution_time] {
            assert!(
                (got.as_nanos() as f64 - want).abs() / want <= 0.01,
                "{got:?}"
            );
        }
        completed += iv.completed_tasks;
        failed += iv.failed_tasks;
    }
    let empty = m.interval();
    assert_eq!(empty.total_tasks, 0);
    assert_eq!(empty.p50, Duration::ZERO);
    let s = m.get_stats();
    assert_eq!((s.completed_tasks, s.failed_tasks), (completed, failed));
}

#[test]
fn reset_starts_a_new_window_and_keeps_in_flight() {
    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_start();
    m.record_task_completion(Duration::from_secs(2));
    m.record_queue_wait(Duration::from_secs(1));
    m.reset();
    let s = m.get_stats();
    assert_eq!((s.total_tasks, s.completed_tasks, s.in_flight), (0, 0, 1));
    assert_eq!(s.max_execution_time, Duration::ZERO);
    assert_eq!(s.queue_wait_samples, 0);
    // The task started before the reset finishes after it.
    m.record_task_completion(Duration::from_micros(3));
    let s = m.get_stats();
    assert_eq!((s.total_tasks, s.completed_tasks, s.in_flight), (0, 1, 0));
    assert_eq!(s.max_execution_time, Duration::from_micros(3));
    assert_eq!(s.min_execution_time, Duration::from_micros(3));
    // The first interval after a reset starts at the reset.
    assert_eq!(m.interval().completed_tasks, 1);
}

#[test]
fn builder_validates_and_configures() {
    assert_eq!(
        ConcurrencyMonitor::builder().shards(0).build().unwrap_err(),
        MonitorError::InvalidShardCount {
            requested: 0,
            max: otlp_monitor::MAX_SHARDS
        }
    );
    assert!(
        ConcurrencyMonitor::builder()
            .shards(1 << 20)
            .build()
            .is_err()
    );
    let m = ConcurrencyMonitor::builder()
        .shards(3)
        .name("exporter")
        .slow_task_threshold(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(m.shard_count(), 3);
    assert_eq!(m.name(), Some("exporter"));
    assert_eq!(m.slow_task_threshold(), Some(Duration::from_millis(10)));
    m.record_task_completion(Duration::from_millis(9));
    m.record_task_completion(Duration::from_millis(10));
    m.record_task_failure_after(Duration::from_secs(1));
    assert_eq!(m.get_stats().slow_tasks, 2);
    assert!(format!("{m:?}").contains("exporter"));
    assert_eq!(ConcurrencyMonitor::new().slow_task_threshold(), None);
    let single = ConcurrencyMonitor::builder().shards(1).build().unwrap();
    single.record_task_start();
    assert_eq!(single.get_stats().in_flight, 1);
}

#[test]
fn prometheus_exposition() {
    let m = ConcurrencyMonitor::new();
    for ms in [1u64, 2, 3, 20, 200] {
        m.record_task_start();
        m.record_task_completion(Duration::from_millis(ms));
    }
    m.record_task_start();
    m.record_task_failure();
    m.record_queue_wait(Duration::from_micros(40));
    let text = m.to_prometheus("otlp_exporter");
    for line in [
        "# TYPE otlp_exporter_tasks_started_total counter\n",
        "otlp_exporter_tasks_started_total 6\n",
        "otlp_exporter_tasks_completed_total 5\n",
        "otlp_exporter_tasks_failed_total 1\n",
        "# TYPE otlp_exporter_tasks_in_flight gauge\n",
        "otlp_exporter_tasks_in_flight 0\n",
        "# TYPE otlp_exporter_task_duration_seconds histogram\n",
        "otlp_exporter_task_duration_seconds_bucket{le=\"0.001\"} 1\n",
        "otlp_exporter_task_duration_seconds_bucket{le=\"0.005\"} 3\n",
        "otlp_exporter_task_duration_seconds_bucket{le=\"0.025\"} 4\n",
        "otlp_exporter_task_duration_seconds_bucket{le=\"0.25\"} 5\n",
        "otlp_exporter_task_duration_seconds_bucket{le=\"+Inf\"} 5\n",
        "otlp_exporter_task_duration_seconds_sum 0.226\n",
        "otlp_exporter_task_duration_seconds_count 5\n",
        "otlp_exporter_queue_wait_seconds_bucket{le=\"0.00005\"} 1\n",
        "otlp_exporter_queue_wait_seconds_count 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Cumulative buckets never decrease.
    let mut last = 0u64;
    for l in text
        .lines()
        .filter(|l| l.starts_with("otlp_exporter_task_duration_seconds_bucket"))
    {
        let v: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v >= last);
        last = v;
    }
    // Invalid prefixes: sanitised by to_prometheus, rejected by try_.
    assert!(
        m.to_prometheus("my-app")
            .contains("my_app_tasks_started_total 6")
    );
    assert!(m.to_prometheus("").contains("\ntasks_started_total 6\n"));
    assert!(matches!(
        m.try_to_prometheus("9lives"),
        Err(MonitorError::InvalidMetricName { .. })
    ));
    let custom = m
        .to_prometheus_with_buckets("x", &[Duration::from_millis(10), Duration::from_secs(1)])
        .unwrap();
    assert!(custom.contains("x_task_duration_seconds_bucket{le=\"0.01\"} 3\n"));
    assert!(custom.contains("x_task_duration_seconds_bucket{le=\"1\"} 5\n"));
    assert!(matches!(
        m.to_prometheus_with_buckets("x", &[]),
        Err(MonitorError::InvalidBuckets { .. })
    ));
}

#[test]
fn display_table_has_every_section() {
    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_completion(Duration::from_micros(1500));
    let text = m.get_stats().to_string();
    for word in [
        "started",
        "completed",
        "in-flight",
        "p99.9",
        "queue wait",
        "1.500ms",
        "100.00%",
    ] {
        assert!(text.contains(word), "missing {word} in\n{text}");
    }
}

#[test]
fn histogram_merge_matches_single_histogram() {
    let mut all = Histogram::new();
    let mut parts = [Histogram::new(), Histogram::new(), Histogram::new()];
    let mut rng = fastrand::Rng::with_seed(3);
    let n = if cfg!(miri) { 3_000u64 } else { 30_000 };
    for i in 0..n {
        let v = rng.u64(1..10_000_000);
        all.record(v);
        parts[(i % 3) as usize].record(v);
    }
    let mut merged = Histogram::default();
    for p in &parts {
        merged.merge(p);
    }
    assert_eq!(merged, all);
    merged.reset();
    assert_eq!(merged, Histogram::new());
}

#[cfg(feature = "serde")]
#[test]
fn json_export() {
    let m = ConcurrencyMonitor::new();
    m.record_task_start();
    m.record_task_completion(Duration::from_micros(5));
    let json = m.to_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["completed_tasks"], 1);
    assert_eq!(v["max_execution_time_ns"], 5000);
    assert_eq!(v["p50_ns"], 5000);
    let h = serde_json::to_value(m.latency_histogram()).unwrap();
    assert_eq!(h["count"], 1);
    assert_eq!(h["buckets"].as_array().unwrap().len(), 1);
}
