//! BatchProcessor behaviour: triggers, flush/shutdown semantics, overload,
//! failures, and no deadlock from current-thread runtimes or plain threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_async::{
    BatchConfig, BatchProcessor, ExportError, Exporter, ProcessorError, ProcessorStats,
};
use tokio::sync::Semaphore;

/// Records every exported item and batch; optionally waits for a permit
/// before each export, fails, or panics.
#[derive(Default)]
struct Sink {
    items: Mutex<Vec<u64>>,
    batch_sizes: Mutex<Vec<usize>>,
    export_times: Mutex<Vec<tokio::time::Instant>>,
    gate: Option<Arc<Semaphore>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    fail_every: usize,
    panic_on_first: bool,
    calls: AtomicUsize,
    shutdowns: AtomicUsize,
}

impl Exporter<u64> for Sink {
    async fn export(&self, batch: &[u64]) -> Result<(), ExportError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now_running, Ordering::SeqCst);
        struct Dec<'a>(&'a AtomicUsize);
        impl Drop for Dec<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _dec = Dec(&self.running);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        assert!(
            !batch.is_empty(),
            "the processor never exports an empty batch"
        );
        if self.panic_on_first && call == 0 {
            panic!("exporter panic on purpose");
        }
        if self.fail_every != 0 && call.is_multiple_of(self.fail_every) {
            return Err(ExportError::permanent("failing on purpose"));
        }
        self.export_times
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        self.batch_sizes.lock().unwrap().push(batch.len());
        self.items.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn assert_conserved(stats: ProcessorStats, emitted: u64) {
    assert_eq!(stats.emitted, emitted, "{stats:?}");
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt,
        "{stats:?}"
    );
    assert_eq!(stats.queue_depth, 0, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
}

fn sorted(sink: &Sink) -> Vec<u64> {
    let mut v = sink.items.lock().unwrap().clone();
    v.sort_unstable();
    v
}

#[test]
fn exports_everything_exactly_once_from_plain_threads() {
    let p = Arc::new(BatchProcessor::new(BatchConfig::default(), Sink::default()).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for i in 0..500 {
                    p.emit(t * 1000 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 2000 items fit in the 2048 queue, so nothing may be dropped.
    p.force_flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(p.exporter().items.lock().unwrap().len(), 2000);
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    let stats = p.stats();
    assert_conserved(stats, 2000);
    assert_eq!(stats.exported, 2000);
    let expected: Vec<u64> = (0..4u64)
        .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
        .collect();
    assert_eq!(sorted(p.exporter()), expected);
    assert!(
        p.exporter()
            .batch_sizes
            .lock()
            .unwrap()
            .iter()
            .all(|&n| n <= 512)
    );
    assert_eq!(p.exporter().shutdowns.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn timer_exports_a_partial_batch_after_the_delay() {
    let config = BatchConfig::default().with_scheduled_delay(Duration::from_secs(5));
    let p = BatchProcessor::spawn_on(config, Sink::default(), &tokio::runtime::Handle::current())
        .unwrap();
    let start = tokio::time::Instant::now();
    for i in 0..3 {
        p.emit(i);
    }
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert!(
        p.exporter().items.lock().unwrap().is_empty(),
        "exported before the delay"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sorted(p.exporter()), vec![0, 1, 2]);
    let at = p.exporter().export_times.lock().unwrap()[0];
    assert!(at - start >= Duration::from_secs(5));
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_exports_without_waiting_for_the_timer() {
    let config = BatchConfig::default()
        .with_max_export_batch_size(8)
        .with_scheduled_delay(Duration::from_secs(3600));
    let p = BatchProcessor::spawn_on(config, Sink::default(), &tokio::runtime::Handle::current())
        .unwrap();
    let start = tokio::time::Instant::now();
    for i in 0..8 {
        p.emit(i);
    }
    // Give the loop a chance to run; the paused clock advances only when
    // every task is idle, so a timer-triggered export would show an hour.
    while p.exporter().items.lock().unwrap().len() < 8 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at = p.exporter().export_times.lock().unwrap()[0];
    assert!(at - start < Duration::from_secs(1), "waited for the timer");
    assert_eq!(p.exporter().batch_sizes.lock().unwrap().clone(), vec![8]);
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 8);
}

/// Waits (on the paused clock) until the sink holds `n` items.
async fn wait_for_items(sink: &Sink, n: usize) {
    while sink.items.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_slot_exports_the_threshold_without_waiting_for_the_timer() {
    // Default threshold: two thirds of the batch size, rounded up (6).
    let config = BatchConfig::default()
        .with_max_export_batch_size(9)
        .with_scheduled_delay(Duration::from_secs(3600));
    let p = BatchProcessor::spawn_on(config, Sink::default(), &tokio::runtime::Handle::current())
        .unwrap();
    let start = tokio::time::Instant::now();
    for i in 0..6 {
        p.emit(i);
    }
    wait_for_items(p.exporter(), 6).await;
    let at = p.exporter().export_times.lock().unwrap()[0];
    assert!(at - start < Duration::from_secs(1), "waited for the timer");
    // Below the threshold only the timer exports.
    for i in 6..11 {
        p.emit(i);
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(p.exporter().items.lock().unwrap().len(), 6);
    tokio::time::sleep(Duration::from_secs(3001)).await;
    assert_eq!(p.exporter().items.lock().unwrap().len(), 11);
    let at = p.exporter().export_times.lock().unwrap()[1];
    assert!(
        at - start >= Duration::from_secs(3600),
        "exported below the threshold"
    );
    assert_eq!(p.exporter().batch_sizes.lock().unwrap().clone(), vec![6, 5]);
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_threshold_of_a_full_batch_waits_for_one() {
    let config = BatchConfig::default()
        .with_max_export_batch_size(8)
        .with_export_threshold(8)
        .with_scheduled_delay(Duration::from_secs(3600));
    let p = BatchProcessor::spawn_on(config, Sink::default(), &tokio::runtime::Handle::current())
        .unwrap();
    for i in 0..7 {
        p.emit(i);
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(p.exporter().items.lock().unwrap().is_empty());
    p.emit(7);
    wait_for_items(p.exporter(), 8).await;
    assert_eq!(p.exporter().batch_sizes.lock().unwrap().clone(), vec![8]);
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 8);
}

#[tokio::test(start_paused = true)]
async fn batches_grow_while_every_slot_is_busy() {
    let gate = Arc::new(Semaphore::new(0));
    let sink = Sink {
        gate: Some(Arc::clone(&gate)),
        ..Sink::default()
    };
    let config = BatchConfig::default()
        .with_max_export_batch_size(8)
        .with_export_threshold(1)
        .with_max_concurrent_exports(1)
        .with_scheduled_delay(Duration::from_secs(3600));
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    p.emit(0);
    while p.exporter().running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The only slot is busy: what arrives now waits and forms one batch
    // per free slot, full ones first.
    for i in 1..12 {
        p.emit(i);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.exporter().calls.load(Ordering::SeqCst), 1);
    gate.add_permits(100);
    wait_for_items(p.exporter(), 12).await;
    assert_eq!(
        p.exporter().batch_sizes.lock().unwrap().clone(),
        vec![1, 8, 3]
    );
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 12);
    assert_eq!(sorted(p.exporter()), (0..12).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn force_flush_exports_everything_emitted_before_it() {
    let config = BatchConfig::default().with_scheduled_delay(Duration::from_secs(3600));
    let p = BatchProcessor::spawn_on(config, Sink::default(), &tokio::runtime::Handle::current())
        .unwrap();
    for i in 0..1500 {
        p.emit(i);
    }
    p.force_flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(sorted(p.exporter()), (0..1500).collect::<Vec<_>>());
    // Back-to-back batches of at most 512.
    assert_eq!(
        p.exporter().batch_sizes.lock().unwrap().clone(),
        vec![512, 512, 476]
    );
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 1500);
}

#[tokio::test(start_paused = true)]
async fn overload_drops_and_counts() {
    let gate = Arc::new(Semaphore::new(0));
    let sink = Sink {
        gate: Some(Arc::clone(&gate)),
        ..Sink::default()
    };
    let config = BatchConfig::default()
        .with_max_queue_size(16)
        .with_max_export_batch_size(4)
        .with_scheduled_delay(Duration::from_millis(10));
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    for i in 0..100 {
        p.emit(i);
        if i.is_multiple_of(10) {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = p.stats();
    assert!(stats.dropped_queue_full > 0, "{stats:?}");
    gate.add_permits(1000);
    p.shutdown(Duration::from_secs(5)).await.unwrap();
    let stats = p.stats();
    assert_conserved(stats, 100);
    assert_eq!(
        stats.exported as usize,
        p.exporter().items.lock().unwrap().len()
    );
    assert_eq!(stats.dropped, stats.dropped_queue_full);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_idempotent_and_later_emits_are_counted() {
    let p = BatchProcessor::spawn_on(
        BatchConfig::default(),
        Sink::default(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    for i in 0..10 {
        p.emit(i);
    }
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        p.shutdown(Duration::from_secs(1)).await,
        Err(ProcessorError::AlreadyShutdown)
    );
    assert_eq!(
        p.shutdown_blocking(Duration::from_secs(1)),
        Err(ProcessorError::AlreadyShutdown)
    );
    assert_eq!(
        p.force_flush(Duration::from_secs(1)).await,
        Err(ProcessorError::AlreadyShutdown)
    );
    p.emit(99);
    p.emit(100);
    let stats = p.stats();
    assert_conserved(stats, 12);
    assert_eq!(stats.exported, 10);
    assert_eq!(stats.dropped_after_shutdown, 2);
    assert_eq!(p.exporter().shutdowns.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failures_and_panics_are_dropped_and_timeouts_are_in_doubt() {
    let sink = Sink {
        fail_every: 3,
        panic_on_first: true,
        ..Sink::default()
    };
    let config = BatchConfig::default().with_max_export_batch_size(10);
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    for i in 0..100 {
        p.emit(i);
    }
    let flushed = p.force_flush(Duration::from_secs(5)).await;
    assert!(
        matches!(flushed, Err(ProcessorError::ExportFailed { .. })),
        "{flushed:?}"
    );
    p.shutdown(Duration::from_secs(5)).await.unwrap();
    let stats = p.stats();
    assert_conserved(stats, 100);
    assert!(stats.failed_batches >= 2, "{stats:?}");
    assert_eq!(
        stats.exported as usize,
        p.exporter().items.lock().unwrap().len()
    );

    // An export that never finishes is cut off by the export timeout.
    let sink = Sink {
        gate: Some(Arc::new(Semaphore::new(0))),
        ..Sink::default()
    };
    let config = BatchConfig::default().with_export_timeout(Duration::from_secs(2));
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    for i in 0..5 {
        p.emit(i);
    }
    let flushed = p.force_flush(Duration::from_secs(10)).await;
    assert_eq!(flushed, Err(ProcessorError::ExportFailed { batches: 1 }));
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    let stats = p.stats();
    assert_conserved(stats, 5);
    // It may have been delivered: in doubt, not dropped.
    assert_eq!(stats.in_doubt, 5, "{stats:?}");
    assert_eq!(stats.in_doubt_batches, 1, "{stats:?}");
    assert_eq!(stats.dropped_export_failed, 0, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_abandons_a_stuck_export_and_counts_it() {
    let sink = Sink {
        gate: Some(Arc::new(Semaphore::new(0))),
        ..Sink::default()
    };
    let config = BatchConfig::default().with_max_export_batch_size(4);
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    for i in 0..20 {
        p.emit(i);
    }
    let result = p.shutdown(Duration::from_millis(500)).await;
    assert_eq!(
        result,
        Err(ProcessorError::Timeout(Duration::from_millis(500)))
    );
    let stats = p.stats();
    assert_conserved(stats, 20);
    assert_eq!(stats.exported, 0);
    // The running exports were abandoned mid-flight (in doubt); what never
    // left the queue is a known loss.
    assert!(stats.in_doubt > 0, "{stats:?}");
    assert_eq!(stats.in_doubt, 4 * stats.in_doubt_batches, "{stats:?}");
    assert_eq!(
        stats.dropped_after_shutdown + stats.in_doubt,
        20,
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_exports_are_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let sink = Sink {
        gate: Some(Arc::clone(&gate)),
        ..Sink::default()
    };
    let config = BatchConfig::default()
        .with_max_export_batch_size(2)
        .with_max_concurrent_exports(3);
    let p = BatchProcessor::spawn_on(config, sink, &tokio::runtime::Handle::current()).unwrap();
    for i in 0..40 {
        p.emit(i);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.exporter().running.load(Ordering::SeqCst), 3);
    gate.add_permits(100);
    p.force_flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.exporter().max_running.load(Ordering::SeqCst), 3);
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 40);
    assert_eq!(sorted(p.exporter()), (0..40).collect::<Vec<_>>());
}

/// The SDK's most reported bug: flush/shutdown from a current-thread runtime
/// deadlocks. Here the loop has its own thread, so both async and blocking
/// variants return.
#[tokio::test(flavor = "current_thread")]
async fn no_deadlock_on_a_current_thread_runtime() {
    let p = BatchProcessor::new(BatchConfig::default(), Sink::default()).unwrap();
    for i in 0..100 {
        p.emit(i);
    }
    p.force_flush(Duration::from_secs(10)).await.unwrap();
    assert_eq!(p.exporter().items.lock().unwrap().len(), 100);
    for i in 100..200 {
        p.emit(i);
    }
    p.force_flush_blocking(Duration::from_secs(10)).unwrap();
    for i in 200..300 {
        p.emit(i);
    }
    p.shutdown(Duration::from_secs(10)).await.unwrap();
    assert_conserved(p.stats(), 300);
    assert_eq!(sorted(p.exporter()), (0..300).collect::<Vec<_>>());

    let p = BatchProcessor::new(BatchConfig::default(), Sink::default()).unwrap();
    p.emit(1);
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    assert_conserved(p.stats(), 1);
}

#[test]
fn no_deadlock_from_a_plain_thread_and_inside_block_on() {
    let p = BatchProcessor::new(BatchConfig::default(), Sink::default()).unwrap();
    p.emit(7);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p.force_flush(Duration::from_secs(10))).unwrap();
    assert_eq!(sorted(p.exporter()), vec![7]);
    p.emit(8);
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    assert_conserved(p.stats(), 2);
}

#[test]
fn dropping_without_shutdown_still_exports() {
    let sink = Arc::new(Sink::default());
    let p = BatchProcessor::new(BatchConfig::default(), Arc::clone(&sink)).unwrap();
    for i in 0..50 {
        p.emit(i);
    }
    drop(p);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.shutdowns.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.shutdowns.load(Ordering::SeqCst), 1);
    assert_eq!(sorted(&sink), (0..50).collect::<Vec<_>>());
}

/// Fails with a retryable error `fail_first` times per batch content, then
/// succeeds; counts attempts.
struct Flaky {
    attempts: AtomicUsize,
    fail_first: usize,
    permanent: bool,
    delivered: Mutex<Vec<u64>>,
}

impl Exporter<u64> for Flaky {
    async fn export(&self, batch: &[u64]) -> Result<(), ExportError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        if attempt < self.fail_first {
            return Err(if self.permanent {
                ExportError::permanent("bad request")
            } else {
                ExportError::retryable("unavailable")
            });
        }
        self.delivered.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn retry_wrapper_backs_off_and_delivers() {
    use otlp_async::{Retry, RetryPolicy};
    let flaky = Flaky {
        attempts: AtomicUsize::new(0),
        fail_first: 3,
        permanent: false,
        delivered: Mutex::new(Vec::new()),
    };
    // Default policy: waits of ~5 s, ~7.5 s, ~11 s (±50 %) fit in a 60 s
    // export timeout; the paused clock skips them.
    let config = BatchConfig::default().with_export_timeout(Duration::from_secs(60));
    let exporter = Retry::new(flaky, RetryPolicy::default());
    let p = BatchProcessor::spawn_on(config, exporter, &tokio::runtime::Handle::current()).unwrap();
    let start = tokio::time::Instant::now();
    for i in 0..10 {
        p.emit(i);
    }
    p.force_flush(Duration::from_secs(120)).await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(2500 + 3750 + 5625),
        "{waited:?}"
    );
    let flaky = p.exporter().inner();
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 4);
    assert_eq!(
        *flaky.delivered.lock().unwrap(),
        (0..10).collect::<Vec<_>>()
    );
    p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_conserved(p.stats(), 10);
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_on_permanent_errors_and_after_max_elapsed() {
    use otlp_async::{Retry, RetryPolicy};
    let permanent = Retry::new(
        Flaky {
            attempts: AtomicUsize::new(0),
            fail_first: usize::MAX,
            permanent: true,
            delivered: Mutex::new(Vec::new()),
        },
        RetryPolicy::default(),
    );
    assert_eq!(
        permanent.export(&[1]).await,
        Err(ExportError::permanent("bad request"))
    );
    assert_eq!(
        permanent.inner().attempts.load(Ordering::SeqCst),
        1,
        "no retry"
    );

    let policy = RetryPolicy::default()
        .with_initial_interval(Duration::from_secs(1))
        .with_max_interval(Duration::from_secs(4))
        .with_max_elapsed_time(Duration::from_secs(20))
        .with_randomization_factor(0.0);
    let unavailable = Retry::new(
        Flaky {
            attempts: AtomicUsize::new(0),
            fail_first: usize::MAX,
            permanent: false,
            delivered: Mutex::new(Vec::new()),
        },
        policy,
    );
    let start = tokio::time::Instant::now();
    let result = unavailable.export(&[1]).await;
    assert!(result.unwrap_err().is_retryable());
    // Waits 1, 1.5, 2.25, 3.375, 4, 4 = 16.125 s; the next 4 s would pass 20 s.
    assert_eq!(start.elapsed(), Duration::from_millis(16_125));
    assert_eq!(unavailable.inner().attempts.load(Ordering::SeqCst), 7);
}

#[test]
fn a_stats_reader_outlives_the_processor_and_sees_the_final_figures() {
    let p = BatchProcessor::new(BatchConfig::default(), Sink::default()).unwrap();
    let reader = p.stats_reader();
    for i in 0..100 {
        p.emit(i);
    }
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    drop(p);
    let stats = reader.clone().stats();
    assert_conserved(stats, 100);
    assert_eq!(stats.exported, 100);
}
