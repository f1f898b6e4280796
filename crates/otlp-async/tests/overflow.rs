//! The processor's overflow policies and the hand-back API: `Block` loses
//! nothing while the exporter keeps up eventually, a wait that times out is
//! handed back (`try_emit`) or counted (`emit`), shutdown releases blocked
//! emitters, and the environment never makes construction fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_async::{
    BatchConfig, BatchProcessor, EmitError, ExportError, Exporter, OverflowPolicy, Signal,
};

/// Sleeps (blocking its thread is fine: the processor's loop has its own)
/// and records what it got.
struct Slow {
    delay: Duration,
    items: Mutex<Vec<u64>>,
}

impl Exporter<u64> for Slow {
    async fn export(&self, batch: &[u64]) -> Result<(), ExportError> {
        tokio::time::sleep(self.delay).await;
        self.items.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

/// Never finishes an export.
struct Stuck(AtomicUsize);

impl Exporter<u64> for Stuck {
    async fn export(&self, _batch: &[u64]) -> Result<(), ExportError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

fn small(overflow: OverflowPolicy) -> BatchConfig {
    BatchConfig::default()
        .with_max_queue_size(8)
        .with_max_export_batch_size(4)
        .with_scheduled_delay(Duration::from_millis(5))
        .with_overflow(overflow)
}

#[test]
fn block_policy_loses_nothing_under_overload() {
    let config = small(OverflowPolicy::Block {
        timeout: Duration::from_secs(60),
    });
    let exporter = Slow {
        delay: Duration::from_millis(2),
        items: Mutex::new(Vec::new()),
    };
    let p = Arc::new(BatchProcessor::new(config, exporter).unwrap());
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for i in 0..200 {
                    p.emit(t * 1000 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    p.shutdown_blocking(Duration::from_secs(30)).unwrap();
    let stats = p.stats();
    assert_eq!(stats.emitted, 400, "{stats:?}");
    assert_eq!(stats.exported, 400, "nothing dropped: {stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let mut got = p.exporter().items.lock().unwrap().clone();
    got.sort_unstable();
    let mut want: Vec<u64> = (0..2u64)
        .flat_map(|t| (0..200).map(move |i| t * 1000 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn a_wait_that_times_out_hands_the_item_back_or_counts_it() {
    let config = small(OverflowPolicy::Block {
        timeout: Duration::from_millis(20),
    })
    .with_max_concurrent_exports(1);
    let p = BatchProcessor::new(config, Stuck(AtomicUsize::new(0))).unwrap();
    // One batch of 4 goes to the stuck exporter, 8 more fill the queue.
    let mut accepted = 0u64;
    let mut refused = Vec::new();
    for i in 0..40u64 {
        match p.try_emit(i) {
            Ok(()) => accepted += 1,
            Err(EmitError::Full(item)) => refused.push(item),
            Err(EmitError::Closed(_)) => panic!("not shut down"),
        }
    }
    assert!(
        accepted <= 12,
        "queue 8 + one batch of 4 in flight: {accepted}"
    );
    assert_eq!(accepted + refused.len() as u64, 40, "every item accounted");
    assert!(refused.contains(&39), "the last items came back");
    let before = p.stats();
    assert_eq!(
        before.emitted, accepted,
        "handed-back items are not counted"
    );
    p.emit(1000);
    let after = p.stats();
    assert_eq!(after.dropped_queue_full, before.dropped_queue_full + 1);
    assert_eq!(after.emitted, accepted + 1);
}

#[test]
fn shutdown_releases_emitters_blocked_on_a_full_queue() {
    let config = small(OverflowPolicy::Block {
        timeout: Duration::from_secs(3600),
    })
    .with_export_timeout(Duration::from_millis(50));
    let p = Arc::new(BatchProcessor::new(config, Stuck(AtomicUsize::new(0))).unwrap());
    for i in 0..12 {
        let _ = p.try_emit(i);
    }
    let blocked = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || p.try_emit(99))
    };
    // Give the emitter a moment to block; the result is the same if it
    // arrives after the shutdown began.
    std::thread::sleep(Duration::from_millis(20));
    let _ = p.shutdown_blocking(Duration::from_millis(200));
    match blocked.join().unwrap() {
        Err(EmitError::Closed(99)) => {}
        other => panic!("expected the item back as Closed, got {other:?}"),
    }
    let stats = p.stats();
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt,
        "{stats:?}"
    );
}

#[test]
fn zero_or_garbage_in_the_environment_never_fails_construction() {
    for bad in ["0", "-1", "lots"] {
        let config = BatchConfig::from_lookup(Signal::Spans, |_| Some(bad.to_owned()));
        let p = BatchProcessor::new(config, Stuck(AtomicUsize::new(0)))
            .unwrap_or_else(|e| panic!("{bad:?} made construction fail: {e}"));
        assert_eq!(p.config().max_queue_size, 2048);
        assert_eq!(p.config().max_export_batch_size, 512);
    }
    // Bad values set in code still get the typed error.
    assert!(
        BatchProcessor::new(
            BatchConfig::default().with_max_queue_size(0),
            Stuck(AtomicUsize::new(0))
        )
        .is_err()
    );
}
