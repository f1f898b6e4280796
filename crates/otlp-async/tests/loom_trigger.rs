//! Loom model of the batch processor's export trigger (`ExportTrigger`):
//! the loop re-arms the wake-up only while it has a free export slot, so a
//! round with every slot busy leaves the request of an earlier round
//! pending and producers quiet. When the export finishes, the loop's next
//! round re-arms and looks at the queue: a producer whose push brings the
//! queue to the threshold meanwhile must either be seen by that look or
//! wake the loop. Otherwise a batch would wait for the scheduled delay.
//!
//! Two rounds of the real loop, on the model's main thread: round 1 with
//! the only slot busy (no re-arm, and its look at the queue cannot start an
//! export), then the export finishes (in the processor the loop observes
//! that itself, through its `JoinSet`), and round 2 with the slot free.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use otlp_async::loom_api::ExportTrigger;

/// The queue, reduced to its length (push `Release`, read `Acquire`; the
/// real queue is stronger), and the wake-ups delivered (`Notify` keeps
/// one permit).
struct Model {
    len: AtomicUsize,
    trigger: ExportTrigger,
    permits: AtomicUsize,
}

fn producer(m: &Model) {
    m.len.fetch_add(1, Ordering::Release);
    if m.trigger.pushed(m.len.load(Ordering::Acquire)) {
        m.permits.fetch_add(1, Ordering::Release);
    }
}

/// Runs the model; `check` gets the permits delivered while the slot was
/// busy, the permits delivered by the end, and what round 2 saw.
fn run(
    producers: usize,
    threshold: usize,
    check: impl Fn(usize, usize, usize) + Sync + Send + 'static,
) {
    let check = std::sync::Arc::new(check);
    loom::model(move || {
        let m = Arc::new(Model {
            len: AtomicUsize::new(0),
            trigger: ExportTrigger::new(threshold),
            permits: AtomicUsize::new(0),
        });
        // The loop was woken in an earlier round and started the export
        // that now fills its only slot; the request is still pending.
        assert!(m.trigger.full());
        let handles: Vec<_> = (0..producers)
            .map(|_| {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || producer(&m))
            })
            .collect();
        // Round 1: the slot is busy.
        m.trigger.rearm_if_free(false);
        let _ = m.len.load(Ordering::Acquire);
        let permits_while_busy = m.permits.load(Ordering::Acquire);
        // The export finished; round 2: re-arm, then look.
        m.trigger.rearm_if_free(true);
        let seen = m.len.load(Ordering::Acquire);
        let starts = m.trigger.ready(seen, false);
        for h in handles {
            h.join().unwrap();
        }
        let permits = m.permits.load(Ordering::Acquire);
        if producers >= threshold && !starts {
            // The loop missed the batch in round 2: someone must wake it.
            assert!(permits > 0, "lost wake-up: round 2 saw {seen}, no permit");
        }
        check(permits_while_busy, permits, seen);
    });
}

/// While the slot is busy and a request is pending, no push wakes the loop:
/// under overload producers do not pay a wake-up each.
fn quiet_while_busy(permits_while_busy: usize, _: usize, _: usize) {
    assert_eq!(
        permits_while_busy, 0,
        "a producer woke a loop with no free slot"
    );
}

#[test]
fn one_producer_threshold_one() {
    run(1, 1, quiet_while_busy);
}

#[test]
fn two_producers_threshold_one() {
    run(2, 1, quiet_while_busy);
}

#[test]
fn two_producers_threshold_two() {
    run(2, 2, quiet_while_busy);
}

/// With the threshold above what is pushed, nothing wakes the loop and
/// round 2 does not start an export: the timer's job.
#[test]
fn below_the_threshold_nobody_wakes_and_nothing_starts() {
    run(2, 3, |_, permits, seen| {
        assert_eq!(permits, 0);
        assert!(seen <= 2);
    });
}
