//! Stress: many threads emitting / submitting while flushes and shutdowns
//! race them. Conservation is asserted every time: each item is exported
//! once or counted as dropped, each item is dropped (as a value) exactly
//! once, each task is handled once or handed back.
//!
//! Sized for 2 cores; `OTLP_STRESS_SMALL=1` (the TSan run) shrinks it ~10x.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_async::{
    AsyncTaskManager, BatchConfig, BatchProcessor, ExportError, Exporter, SubmitError, handler_fn,
};

fn scale(n: usize) -> usize {
    if cfg!(miri) || std::env::var_os("OTLP_STRESS_SMALL").is_some() {
        (n / 10).max(1)
    } else {
        n
    }
}

/// An item that counts its own drops.
struct Tracked {
    producer: usize,
    seq: usize,
    drops: Arc<AtomicU64>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Marks each exported (producer, seq) and remembers export order.
struct Checker {
    seen: Vec<AtomicBool>,
    per_producer: usize,
    order: Mutex<Vec<(usize, usize)>>,
    duplicates: AtomicUsize,
    fail_every: usize,
    calls: AtomicUsize,
}

impl Exporter<Tracked> for Checker {
    async fn export(&self, batch: &[Tracked]) -> Result<(), ExportError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail_every != 0 && call % self.fail_every == self.fail_every - 1 {
            return Err(ExportError::retryable("injected failure"));
        }
        let mut order = self.order.lock().unwrap();
        for item in batch {
            let idx = item.producer * self.per_producer + item.seq;
            if self.seen[idx].swap(true, Ordering::Relaxed) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            order.push((item.producer, item.seq));
        }
        Ok(())
    }
}

fn run_processor(
    producers: usize,
    per_producer: usize,
    config: BatchConfig,
    fail_every: usize,
    fifo: bool,
) {
    let drops = Arc::new(AtomicU64::new(0));
    let checker = Checker {
        seen: (0..producers * per_producer)
            .map(|_| AtomicBool::new(false))
            .collect(),
        per_producer,
        order: Mutex::new(Vec::new()),
        duplicates: AtomicUsize::new(0),
        fail_every,
        calls: AtomicUsize::new(0),
    };
    let p = Arc::new(BatchProcessor::new(config, checker).unwrap());
    let stop_flushing = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (p, stop) = (Arc::clone(&p), Arc::clone(&stop_flushing));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = p.force_flush_blocking(Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let threads: Vec<_> = (0..producers)
        .map(|producer| {
            let (p, drops) = (Arc::clone(&p), Arc::clone(&drops));
            std::thread::spawn(move || {
                for seq in 0..per_producer {
                    p.emit(Tracked {
                        producer,
                        seq,
                        drops: Arc::clone(&drops),
                    });
                    if seq.is_multiple_of(1024) {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop_flushing.store(true, Ordering::Relaxed);
    flusher.join().unwrap();
    let _ = p.shutdown_blocking(Duration::from_secs(30));
    let stats = p.stats();
    let total = (producers * per_producer) as u64;
    assert_eq!(stats.emitted, total, "{stats:?}");
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt,
        "{stats:?}"
    );
    assert_eq!((stats.queue_depth, stats.in_flight), (0, 0), "{stats:?}");
    let checker = p.exporter();
    assert_eq!(checker.duplicates.load(Ordering::Relaxed), 0);
    let marked = checker
        .seen
        .iter()
        .filter(|b| b.load(Ordering::Relaxed))
        .count() as u64;
    assert_eq!(marked, stats.exported, "{stats:?}");
    assert_eq!(
        drops.load(Ordering::Relaxed),
        total,
        "each item dropped exactly once"
    );
    if fifo {
        let order = checker.order.lock().unwrap();
        let mut last = vec![None::<usize>; producers];
        for &(producer, seq) in order.iter() {
            if let Some(prev) = last[producer] {
                assert!(
                    seq > prev,
                    "producer {producer}: {seq} exported after {prev}"
                );
            }
            last[producer] = Some(seq);
        }
    }
}

#[test]
fn processor_overloaded_with_failures_and_flushes() {
    let config = BatchConfig::default()
        .with_max_queue_size(256)
        .with_max_export_batch_size(64)
        .with_max_concurrent_exports(2)
        .with_scheduled_delay(Duration::from_millis(2));
    run_processor(4, scale(50_000), config, 7, false);
}

#[test]
fn processor_keeps_per_producer_order_with_one_export_at_a_time() {
    let config = BatchConfig::default()
        .with_max_queue_size(1024)
        .with_max_export_batch_size(128)
        .with_scheduled_delay(Duration::from_millis(2));
    run_processor(3, scale(40_000), config, 0, true);
}

#[test]
fn emits_racing_shutdown_are_all_accounted() {
    for _ in 0..scale(20) {
        let drops = Arc::new(AtomicU64::new(0));
        let checker = Checker {
            seen: (0..2 * 5_000).map(|_| AtomicBool::new(false)).collect(),
            per_producer: 5_000,
            order: Mutex::new(Vec::new()),
            duplicates: AtomicUsize::new(0),
            fail_every: 0,
            calls: AtomicUsize::new(0),
        };
        let config = BatchConfig::default()
            .with_max_queue_size(512)
            .with_max_export_batch_size(32);
        let p = Arc::new(BatchProcessor::new(config, checker).unwrap());
        let threads: Vec<_> = (0..2)
            .map(|producer| {
                let (p, drops) = (Arc::clone(&p), Arc::clone(&drops));
                std::thread::spawn(move || {
                    for seq in 0..5_000 {
                        p.emit(Tracked {
                            producer,
                            seq,
                            drops: Arc::clone(&drops),
                        });
                    }
                })
            })
            .collect();
        std::thread::yield_now();
        p.shutdown_blocking(Duration::from_secs(30)).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        let stats = p.stats();
        assert_eq!(stats.emitted, 10_000, "{stats:?}");
        assert_eq!(
            stats.emitted,
            stats.exported + stats.dropped + stats.in_doubt,
            "{stats:?}"
        );
        assert_eq!(p.exporter().duplicates.load(Ordering::Relaxed), 0);
        assert_eq!(drops.load(Ordering::Relaxed), 10_000);
    }
}

#[test]
fn task_manager_submitters_racing_shutdown() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let per_submitter = scale(20_000);
    for round in 0..3 {
        rt.block_on(async {
            let handled: Arc<Vec<AtomicUsize>> = Arc::new(
                (0..4 * per_submitter)
                    .map(|_| AtomicUsize::new(0))
                    .collect(),
            );
            let h = Arc::clone(&handled);
            let manager = Arc::new(
                AsyncTaskManager::builder()
                    .workers(3)
                    .capacity(64)
                    .build(handler_fn(move |task: usize| {
                        let h = Arc::clone(&h);
                        async move {
                            h[task].fetch_add(1, Ordering::Relaxed);
                            if task.is_multiple_of(97) {
                                tokio::task::yield_now().await;
                            }
                            if task.is_multiple_of(13) {
                                Err("unlucky")
                            } else {
                                Ok(())
                            }
                        }
                    }))
                    .unwrap(),
            );
            let submitters: Vec<_> = (0..4)
                .map(|s| {
                    let m = Arc::clone(&manager);
                    tokio::spawn(async move {
                        let mut refused = Vec::new();
                        for i in 0..per_submitter {
                            let task = s * per_submitter + i;
                            let result = if i.is_multiple_of(3) {
                                m.try_submit(task)
                            } else {
                                m.submit(task).await
                            };
                            match result {
                                Ok(()) => {}
                                Err(SubmitError::Full(t))
                                | Err(SubmitError::Closed(t))
                                | Err(SubmitError::Timeout(t)) => {
                                    refused.push(t);
                                }
                            }
                        }
                        refused
                    })
                })
                .collect();
            // Let the submitters get going, then shut down under them (round
            // 2 waits for them first).
            if round < 2 {
                tokio::time::sleep(Duration::from_millis(2 + round * 5)).await;
            } else {
                while manager.stats().submitted < (4 * per_submitter / 2) as u64 {
                    tokio::task::yield_now().await;
                }
            }
            let report = manager.shutdown(Duration::from_secs(30)).await.unwrap();
            let mut refused = Vec::new();
            for s in submitters {
                refused.extend(s.await.unwrap());
            }
            assert_eq!(
                report.submitted,
                report.completed
                    + report.failed
                    + report.aborted
                    + report.still_queued.len() as u64,
                "{report:?}"
            );
            assert_eq!(report.aborted, 0);
            assert!(report.still_queued.is_empty());
            assert_eq!(
                report.submitted + refused.len() as u64,
                (4 * per_submitter) as u64
            );
            for t in &refused {
                assert_eq!(
                    handled[*t].load(Ordering::Relaxed),
                    0,
                    "refused task {t} was handled"
                );
            }
            let handled_once = handled
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) == 1)
                .count() as u64;
            assert!(
                handled.iter().all(|c| c.load(Ordering::Relaxed) <= 1),
                "a task ran twice"
            );
            assert_eq!(handled_once, report.completed + report.failed);
        });
    }
}
