//! Conservation under concurrency: every recorded event is counted exactly
//! once, totals / success rate / min / max / sums are exact, intervals add
//! up to the totals, and the in-flight gauge never goes negative.
//!
//! Sized for 2 cores; `OTLP_STRESS_SMALL=1` (TSan) or Miri shrinks it.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use otlp_monitor::{ConcurrencyMonitor, ConcurrencyStats};

fn scale(n: u64) -> u64 {
    if cfg!(miri) {
        (n / 1000).max(10)
    } else if std::env::var_os("OTLP_STRESS_SMALL").is_some() {
        (n / 10).max(10)
    } else {
        n
    }
}

/// Deterministic latency for event `i` of thread `t`, 1 ns .. ~1 s.
fn latency_ns(t: u64, i: u64) -> u64 {
    let x = (t << 40 ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let x = x ^ (x >> 32);
    1 + (x % (1u64 << (x % 30)))
}

#[derive(Default, Clone, Copy)]
struct Expected {
    started: u64,
    completed: u64,
    failed: u64,
    timed: u64,
    sum: u64,
    min: u64,
    max: u64,
    queue: u64,
    queue_sum: u64,
}

impl Expected {
    fn merge(&mut self, o: &Expected) {
        self.started += o.started;
        self.completed += o.completed;
        self.failed += o.failed;
        self.timed += o.timed;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.queue += o.queue;
        self.queue_sum += o.queue_sum;
    }
}

fn check_invariants(s: &ConcurrencyStats, prev: Option<&ConcurrencyStats>) {
    assert!(
        s.completed_tasks + s.failed_tasks <= s.total_tasks,
        "finished {} + {} > started {}",
        s.completed_tasks,
        s.failed_tasks,
        s.total_tasks
    );
    // The gauge subtracts finishes read after the starts, so under
    // concurrent recording it may be below the window's started - finished
    // (never above: a task started during the read is not "in flight").
    assert!(
        s.in_flight <= s.total_tasks - s.completed_tasks - s.failed_tasks,
        "in_flight {} > {} - {} - {}",
        s.in_flight,
        s.total_tasks,
        s.completed_tasks,
        s.failed_tasks
    );
    if s.completed_tasks > 0 {
        assert!(s.min_execution_time > Duration::ZERO);
        assert!(s.min_execution_time <= s.p50 && s.p50 <= s.p99);
        assert!(s.p999 <= s.max_execution_time);
    }
    if let Some(p) = prev {
        assert!(s.total_tasks >= p.total_tasks);
        assert!(s.completed_tasks >= p.completed_tasks);
        assert!(s.failed_tasks >= p.failed_tasks);
        assert!(s.queue_wait_samples >= p.queue_wait_samples);
        if p.completed_tasks > 0 {
            assert!(s.max_execution_time >= p.max_execution_time);
            assert!(s.min_execution_time <= p.min_execution_time);
        }
    }
}

fn run_exact(monitor: Arc<ConcurrencyMonitor>, threads: u64, per_thread: u64) {
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let monitor = Arc::clone(&monitor);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut prev: Option<ConcurrencyStats> = None;
            let (mut iv_completed, mut iv_failed, mut iv_started, mut iv_queue) = (0, 0, 0, 0);
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) || reads < 2 {
                let s = monitor.get_stats();
                check_invariants(&s, prev.as_ref());
                let iv = monitor.interval();
                iv_completed += iv.completed_tasks;
                iv_failed += iv.failed_tasks;
                iv_started += iv.total_tasks;
                iv_queue += iv.queue_wait_samples;
                prev = Some(s);
                reads += 1;
                std::thread::yield_now();
            }
            let last = monitor.interval();
            (
                iv_started + last.total_tasks,
                iv_completed + last.completed_tasks,
                iv_failed + last.failed_tasks,
                iv_queue + last.queue_wait_samples,
            )
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let monitor = Arc::clone(&monitor);
            std::thread::spawn(move || {
                let mut e = Expected {
                    min: u64::MAX,
                    ..Expected::default()
                };
                for i in 0..per_thread {
                    let ns = latency_ns(t, i);
                    monitor.record_task_start();
                    e.started += 1;
                    match i % 10 {
                        0 => {
                            monitor.record_task_failure();
                            e.failed += 1;
                        }
                        1 => {
                            monitor.record_task_failure_after(Duration::from_nanos(ns));
                            e.failed += 1;
                            e.timed += 1;
                            e.sum += ns;
                            e.min = e.min.min(ns);
                            e.max = e.max.max(ns);
                        }
                        _ => {
                            monitor.record_task_completion(Duration::from_nanos(ns));
                            e.completed += 1;
                            e.timed += 1;
                            e.sum += ns;
                            e.min = e.min.min(ns);
                            e.max = e.max.max(ns);
                        }
                    }
                    if i % 4 == 0 {
                        monitor.record_queue_wait(Duration::from_nanos(ns / 2));
                        e.queue += 1;
                        e.queue_sum += ns / 2;
                    }
                }
                e
            })
        })
        .collect();
    let mut want = Expected {
        min: u64::MAX,
        ..Expected::default()
    };
    for w in workers {
        want.merge(&w.join().expect("worker panicked"));
    }
    done.store(true, Ordering::Release);
    let (iv_started, iv_completed, iv_failed, iv_queue) = reader.join().expect("reader panicked");

    let s = monitor.get_stats();
    assert_eq!(s.total_tasks, want.started);
    assert_eq!(s.completed_tasks, want.completed);
    assert_eq!(s.failed_tasks, want.failed);
    assert_eq!(s.in_flight, 0);
    assert_eq!(
        s.success_rate,
        want.completed as f64 / (want.completed + want.failed) as f64
    );
    assert_eq!(s.min_execution_time, Duration::from_nanos(want.min));
    assert_eq!(s.max_execution_time, Duration::from_nanos(want.max));
    assert_eq!(
        s.average_execution_time,
        Duration::from_nanos(want.sum / want.timed)
    );
    assert_eq!(s.queue_wait_samples, want.queue);
    let lat = monitor.latency_histogram();
    assert_eq!(lat.count(), want.timed);
    assert_eq!(lat.sum(), want.sum);
    assert_eq!(monitor.queue_wait_histogram().sum(), want.queue_sum);
    // Intervals partition the events: each counted in exactly one.
    assert_eq!(iv_started, want.started);
    assert_eq!(iv_completed, want.completed);
    assert_eq!(iv_failed, want.failed);
    assert_eq!(iv_queue, want.queue);
}

#[test]
fn exact_totals_four_threads() {
    // 4 threads x 500k tasks = 2M tasks, ~4.5M record calls.
    run_exact(Arc::new(ConcurrencyMonitor::new()), 4, scale(500_000));
}

#[test]
fn exact_totals_more_threads_than_shards() {
    let monitor = ConcurrencyMonitor::builder().shards(2).build().unwrap();
    run_exact(Arc::new(monitor), 6, scale(100_000));
}

#[test]
fn exact_totals_single_shared_shard() {
    let monitor = ConcurrencyMonitor::builder().shards(1).build().unwrap();
    run_exact(Arc::new(monitor), 3, scale(150_000));
}

#[test]
fn tasks_finished_on_other_threads() {
    let monitor = Arc::new(ConcurrencyMonitor::new());
    let n = scale(200_000);
    let consumers = 2;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..consumers).map(|_| mpsc::sync_channel(1024)).unzip();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let monitor = Arc::clone(&monitor);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut prev = None;
            while !done.load(Ordering::Acquire) {
                let s = monitor.get_stats();
                check_invariants(&s, prev.as_ref());
                prev = Some(s);
                std::thread::yield_now();
            }
        })
    };
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|rx: mpsc::Receiver<(u64, otlp_monitor::OwnedTaskTimer)>| {
            std::thread::spawn(move || {
                let mut finished = 0u64;
                for (i, timer) in rx {
                    if i % 7 == 0 {
                        drop(timer); // counted as a failure
                    } else {
                        timer.finish();
                        finished += 1;
                    }
                }
                finished
            })
        })
        .collect();
    for i in 0..n {
        let timer = monitor.start_task_owned();
        senders[(i % consumers as u64) as usize]
            .send((i, timer))
            .expect("consumer alive");
    }
    drop(senders);
    let finished: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("consumer"))
        .sum();
    done.store(true, Ordering::Release);
    reader.join().expect("reader panicked");
    let s = monitor.get_stats();
    assert_eq!(s.total_tasks, n);
    assert_eq!(s.completed_tasks, finished);
    assert_eq!(s.failed_tasks, n - finished);
    assert_eq!(s.failed_tasks, n.div_ceil(7));
    assert_eq!(s.in_flight, 0);
    assert_eq!(monitor.latency_histogram().count(), n);
}

#[test]
fn reset_while_recording_keeps_in_flight_sane() {
    let monitor = Arc::new(ConcurrencyMonitor::new());
    let n = scale(200_000);
    let done = Arc::new(AtomicBool::new(false));
    let resetter = {
        let monitor = Arc::clone(&monitor);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut resets = 0u64;
            while !done.load(Ordering::Acquire) {
                monitor.reset();
                let s = monitor.get_stats();
                // Per-window counts can straddle a reset but never exceed
                // what was recorded; finished never exceeds started overall.
                assert!(s.completed_tasks <= 2 * n);
                assert!(s.failed_tasks <= 2 * n);
                assert!(s.in_flight <= 2 * n);
                resets += 1;
                std::thread::yield_now();
            }
            resets
        })
    };
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let monitor = Arc::clone(&monitor);
            std::thread::spawn(move || {
                for i in 0..n {
                    let timer = monitor.start_task();
                    if i % 3 == 0 {
                        timer.fail();
                    } else {
                        monitor.record_queue_wait(Duration::from_nanos(latency_ns(t, i)));
                        timer.finish();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    done.store(true, Ordering::Release);
    assert!(resetter.join().expect("resetter panicked") > 0);
    let before = monitor.get_stats();
    assert_eq!(before.in_flight, 0);
    monitor.reset();
    let s = monitor.get_stats();
    assert_eq!(
        (
            s.total_tasks,
            s.completed_tasks,
            s.failed_tasks,
            s.in_flight
        ),
        (0, 0, 0, 0)
    );
    monitor.record_task_start();
    monitor.record_task_completion(Duration::from_nanos(42));
    let s = monitor.get_stats();
    assert_eq!(s.min_execution_time, Duration::from_nanos(42));
    assert_eq!(s.max_execution_time, Duration::from_nanos(42));
}

#[test]
fn recycled_slot_ids_keep_owned_shard_counts() {
    // Waves of short-lived threads: each exiting thread returns its slot id
    // and the next wave's threads take the same ids, continuing the owned
    // shards' counters with plain load + store. Nothing may be lost.
    let monitor = Arc::new(ConcurrencyMonitor::builder().shards(2).build().unwrap());
    let waves = scale(40).min(40);
    let per_thread = scale(20_000);
    let mut want_sum = 0u64;
    for wave in 0..waves {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let monitor = Arc::clone(&monitor);
                std::thread::spawn(move || {
                    let mut sum = 0;
                    for i in 0..per_thread {
                        let ns = latency_ns(wave * 3 + t, i);
                        monitor.record_task_start();
                        monitor.record_task_completion(Duration::from_nanos(ns));
                        sum += ns;
                    }
                    sum
                })
            })
            .collect();
        for h in handles {
            want_sum += h.join().expect("worker panicked");
        }
    }
    let s = monitor.get_stats();
    assert_eq!(s.total_tasks, waves * 3 * per_thread);
    assert_eq!(s.completed_tasks, waves * 3 * per_thread);
    assert_eq!(s.in_flight, 0);
    assert_eq!(monitor.latency_histogram().sum(), want_sum);
}
