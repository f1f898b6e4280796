//! Loom model of `SpaceWaiters`, the hand-off between an emitter blocked on
//! a full queue (`OverflowPolicy::Block`) and the loop that frees slots: a
//! waiter must never sleep through the freeing of a slot (loom reports the
//! lost wake-up as a deadlock), and the slot goes to exactly one waiter.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use otlp_async::loom_api::SpaceWaiters;

/// The queue, reduced to its free slots.
struct Model {
    free: AtomicUsize,
    pushed: AtomicUsize,
    waiters: SpaceWaiters,
}

fn try_push(m: &Model) -> Result<(), ()> {
    let mut free = m.free.load(Ordering::Acquire);
    loop {
        if free == 0 {
            return Err(());
        }
        match m
            .free
            .compare_exchange(free, free - 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                m.pushed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(now) => free = now,
        }
    }
}

fn emitter(m: &Model) {
    if try_push(m).is_ok() {
        return;
    }
    m.waiters
        .wait((), None, |()| try_push(m), || false)
        .expect("no deadline, never gives up");
}

#[test]
fn a_freed_slot_always_reaches_a_blocked_emitter() {
    loom::model(|| {
        let m = Arc::new(Model {
            free: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
            waiters: SpaceWaiters::new(),
        });
        let e = {
            let m = Arc::clone(&m);
            loom::thread::spawn(move || emitter(&m))
        };
        // The loop pops a batch of one, then tells the waiters.
        m.free.fetch_add(1, Ordering::AcqRel);
        m.waiters.notify();
        e.join().unwrap();
        assert_eq!(m.pushed.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn two_emitters_two_slots_freed_one_at_a_time() {
    loom::model(|| {
        let m = Arc::new(Model {
            free: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
            waiters: SpaceWaiters::new(),
        });
        let emitters: Vec<_> = (0..2)
            .map(|_| {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || emitter(&m))
            })
            .collect();
        for _ in 0..2 {
            m.free.fetch_add(1, Ordering::AcqRel);
            m.waiters.notify();
        }
        for e in emitters {
            e.join().unwrap();
        }
        assert_eq!(m.pushed.load(Ordering::Relaxed), 2);
        assert_eq!(m.free.load(Ordering::Relaxed), 0);
    });
}
