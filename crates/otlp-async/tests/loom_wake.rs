//! Loom model of the emit → export-loop wake-up flag (`WakeFlag`): a
//! producer whose push brings the queue to the threshold, while the loop is
//! re-arming, must either be seen by the loop's re-check or deliver a
//! wake-up. Otherwise a full batch would wait for the timer.
//!
//! Every model starts with a stale request pending (the loop was woken in
//! an earlier round and is now re-arming): with the flag clear the first
//! producer always wakes the loop, and the model could not fail whatever
//! the fences do. With the request pending, a producer that reads the stale
//! flag skips its wake-up, and only the fence pairing (producer: push,
//! fence, read flag; loop: clear flag, fence, read queue) makes the loop's
//! re-check see the push.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use otlp_async::loom_api::WakeFlag;

/// The queue, reduced to its length: a push publishes with `Release`, a
/// length read is an `Acquire` load (the real queue is stronger: `SeqCst`).
struct Model {
    len: AtomicUsize,
    flag: WakeFlag,
    /// Wake-ups delivered (`Notify::notify_one` stores one permit).
    permits: AtomicUsize,
}

fn producer(m: &Model, threshold: usize) {
    m.len.fetch_add(1, Ordering::Release);
    if m.len.load(Ordering::Acquire) >= threshold && m.flag.should_wake() {
        m.permits.fetch_add(1, Ordering::Release);
    }
}

fn run(producers: usize, threshold: usize) {
    loom::model(move || {
        let m = Arc::new(Model {
            len: AtomicUsize::new(0),
            flag: WakeFlag::new(),
            permits: AtomicUsize::new(0),
        });
        // A wake-up from an earlier round is still pending.
        assert!(m.flag.should_wake());
        let handles: Vec<_> = (0..producers)
            .map(|_| {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || producer(&m, threshold))
            })
            .collect();
        // The loop: re-arm, then look at the queue (then it would sleep).
        m.flag.rearm();
        let seen = m.len.load(Ordering::Acquire);
        for h in handles {
            h.join().unwrap();
        }
        let reached = producers >= threshold;
        if reached && seen < threshold {
            // The loop missed the full batch: someone must have woken it.
            assert!(
                m.permits.load(Ordering::Acquire) > 0,
                "lost wake-up: loop saw {seen}, no permit"
            );
        }
    });
}

#[test]
fn one_producer_threshold_one_with_a_stale_request() {
    run(1, 1);
}

#[test]
fn two_producers_threshold_one_with_a_stale_request() {
    run(2, 1);
}

#[test]
fn two_producers_threshold_two_with_a_stale_request() {
    run(2, 2);
}
