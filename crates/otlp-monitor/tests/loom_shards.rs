//! Loom models of the shard protocol: per-shard min/max CAS, the
//! Release/Acquire publication of events to readers, and reset.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p otlp-monitor --release --test loom_shards`
//!
//! Under loom the monitor has 2 owned shards (written with load + store by
//! slot ids 0 and 1 only), 1 shared read-modify-write shard (every slot id
//! from 2) and an 8-bucket histogram. Slot ids are handed out in
//! first-record order, so the shard each thread uses is noted in the
//! models.
#![cfg(loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use otlp_monitor::ConcurrencyMonitor;

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// Two threads on the shared shard (slots 2 and 3) race their min/max CAS
/// loops and `fetch_add`s; min, max and the counts must be exact. The max
/// (4 ns) is the bottom of its bucket (4..=5 under loom), so a max the CAS
/// loop failed to record would show as the bucket's top, 5.
#[test]
fn min_max_cas_on_a_shared_shard() {
    loom::model(|| {
        let m = Arc::new(ConcurrencyMonitor::new());
        m.record_task_start(); // main: slot 0, owned shard 0
        m.record_task_start();
        // Slot 1 goes to a thread that finishes before the race.
        let m1 = Arc::clone(&m);
        thread::spawn(move || m1.record_queue_wait(ns(1)))
            .join()
            .unwrap();
        let racers: Vec<_> = [3u64, 4]
            .into_iter()
            .map(|lat| {
                let m = Arc::clone(&m);
                thread::spawn(move || m.record_task_completion(ns(lat))) // slots 2, 3: shared
            })
            .collect();
        for r in racers {
            r.join().unwrap();
        }
        let s = m.get_stats();
        assert_eq!(s.completed_tasks, 2);
        assert_eq!(s.min_execution_time, ns(3));
        assert_eq!(s.max_execution_time, ns(4));
        assert_eq!(s.in_flight, 0);
        assert_eq!(m.latency_histogram().sum(), 7);
    });
}

/// A recorder on another shard racing a reader: the reader never sees a
/// finished task without its start or its latency (min/max), never sees a
/// latency in a histogram bucket without the exact min/max recorded before
/// it, and the final totals are exact. The latency (7 ns) is the top of
/// its bucket (6..=7 under loom), so a min/max the reader failed to see
/// would show as the bucket's lower bound, 6. (The reader runs on a
/// spawned thread: on the model's main thread loom explored a single
/// execution of this model.)
#[test]
fn reader_never_sees_completion_without_start_or_latency() {
    loom::model(|| {
        let m = Arc::new(ConcurrencyMonitor::new());
        m.record_task_start(); // main: slot 0, owned shard 0
        let writer = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.record_task_start(); // slot 1, owned shard 1
                m.record_task_completion(ns(7));
            })
        };
        let reader = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let s = m.get_stats(); // records nothing: no slot
                assert!(s.completed_tasks + s.failed_tasks <= s.total_tasks);
                assert!(s.in_flight <= 2);
                if s.completed_tasks > 0 {
                    assert_eq!(s.min_execution_time, ns(7));
                    assert_eq!(s.max_execution_time, ns(7));
                }
                let h = m.latency_histogram();
                if h.count() > 0 {
                    assert_eq!((h.min(), h.max()), (7, 7), "bucket seen without min/max");
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        m.record_task_completion(ns(2));
        let s = m.get_stats();
        assert_eq!((s.total_tasks, s.completed_tasks, s.in_flight), (2, 2, 0));
        assert_eq!(s.min_execution_time, ns(2));
        assert_eq!(s.max_execution_time, ns(7));
    });
}

/// A task started on one thread (owned shard 1) and finished on another
/// (the shared shard) after a hand-off: a reader that sees the completion also sees the
/// start, so the in-flight gauge never underflows.
#[test]
fn cross_shard_handoff_keeps_in_flight_consistent() {
    loom::model(|| {
        let m = Arc::new(ConcurrencyMonitor::new());
        let flag = Arc::new(AtomicBool::new(false));
        m.record_queue_wait(ns(1)); // main: slot 0, owned shard 0
        let starter = {
            let m = Arc::clone(&m);
            let flag = Arc::clone(&flag);
            thread::spawn(move || {
                m.record_task_start(); // slot 1, owned shard 1
                flag.store(true, Ordering::Release);
            })
        };
        let finisher = {
            let m = Arc::clone(&m);
            let flag = Arc::clone(&flag);
            thread::spawn(move || {
                if flag.load(Ordering::Acquire) {
                    m.record_task_completion(ns(4)); // slot 2, shared shard
                }
            })
        };
        let s = m.get_stats();
        assert!(s.completed_tasks <= s.total_tasks);
        starter.join().unwrap();
        finisher.join().unwrap();
        let s = m.get_stats();
        assert_eq!(s.total_tasks, 1);
        assert_eq!(s.in_flight, 1 - s.completed_tasks);
        assert_eq!(s.queue_wait_samples, 1);
    });
}

/// Tasks that start and finish while a reader reads are never counted as
/// running: one recorder runs two tasks back to back, so at most one is
/// ever in flight, and the gauge must never read more. (Subtracting the
/// finishes read *before* the starts reads 2 when both tasks run between
/// the two passes.) The reader runs on a spawned thread: with the reader
/// on the model's main thread loom explored a single execution.
#[test]
fn in_flight_never_exceeds_what_runs() {
    loom::model(|| {
        let m = Arc::new(ConcurrencyMonitor::new());
        m.record_queue_wait(ns(1)); // main: slot 0, owned shard 0
        let worker = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for _ in 0..2 {
                    m.record_task_start(); // slot 1, owned shard 1
                    m.record_task_completion(ns(2));
                }
            })
        };
        let reader = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let s = m.get_stats(); // records nothing: no slot
                assert!(s.in_flight <= 1, "in_flight {}", s.in_flight);
                assert!(s.completed_tasks <= s.total_tasks);
            })
        };
        worker.join().unwrap();
        reader.join().unwrap();
        let s = m.get_stats();
        assert_eq!((s.total_tasks, s.completed_tasks, s.in_flight), (2, 2, 0));
    });
}

/// `reset` racing with a record, both on spawned threads (with `reset` on
/// the model's main thread the record could never land before `reset`'s
/// snapshot): the event lands in exactly one window, in-flight stays
/// exact, and the new window's min/max never carry a value from the old
/// window. The old value (9 ns) and the racing one (10 ns) share a
/// histogram bucket (8..=11 under loom), so a min/max tracker that `reset`
/// failed to restart would pass the bucket check and show up as 9.
#[test]
fn reset_racing_a_record() {
    loom::model(|| {
        let m = Arc::new(ConcurrencyMonitor::new());
        m.record_task_start(); // main: slot 0, owned shard 0
        m.record_task_start();
        m.record_task_completion(ns(9)); // the old window
        let recorder = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.record_task_completion(ns(10)); // slot 1, owned shard 1
            })
        };
        let resetter = {
            let m = Arc::clone(&m);
            thread::spawn(move || m.reset())
        };
        recorder.join().unwrap();
        resetter.join().unwrap();
        let after = m.get_stats();
        // The completion is in the old window or the new one; the gauge
        // spans both and is exact.
        assert_eq!(after.in_flight, 0);
        assert!(after.completed_tasks <= 1);
        assert_eq!(after.total_tasks, 0);
        // Exact (10), the bounds of its bucket, or nothing at all when the
        // record's bucket landed before the reset and its count after;
        // never the old window's 9.
        assert_ne!(after.min_execution_time, ns(9), "old min after reset");
        assert_ne!(after.max_execution_time, ns(9), "old max after reset");
        // Once quiet, a new record is exact: the trackers were restarted.
        m.record_task_start();
        m.record_task_completion(ns(10));
        let s = m.get_stats();
        assert_eq!(s.min_execution_time, ns(10), "min after reset and a record");
    });
}
