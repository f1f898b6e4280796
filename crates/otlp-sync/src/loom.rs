//! The one place that chooses between `std`/`parking_lot` and `loom`.
//!
//! Every atomic, lock and thread operation of the crate's protocols goes
//! through this module, so that `RUSTFLAGS="--cfg loom"` swaps them all for
//! loom's model-checked versions. Nothing else in the crate imports
//! `std::sync::atomic` directly.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};

/// Under loom, memory the model tracks for races: `ConfigCell` keeps a
/// node's fields here so that freeing a node (a write under loom) while a
/// reader is inside it is a race loom reports.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell as TrackedCell;

/// A mutex with parking_lot's API (`lock()` returns the guard directly).
///
/// Outside loom this is `parking_lot::Mutex`; under loom it wraps loom's
/// mutex so the model sees every lock and unlock.
#[cfg(not(loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // Loom's mutex only poisons if a model thread panicked, and then the
        // model has already failed; unwrapping keeps parking_lot's signature.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Thread handle used by blocking waits to park and unpark.
#[cfg(not(loom))]
pub(crate) use std::thread::{Thread, current as current_thread};

#[cfg(loom)]
pub(crate) use loom::thread::{Thread, current as current_thread};

/// Parks the current thread until unparked or until `deadline` (if any).
///
/// Spurious returns are allowed; callers re-check their condition.
#[cfg(not(loom))]
pub(crate) fn park(deadline: Option<std::time::Instant>) {
    match deadline {
        None => std::thread::park(),
        Some(deadline) => {
            let now = std::time::Instant::now();
            if deadline > now {
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// Under loom there is no time: a deadline is never reached, so a timed
/// park is a plain park (loom models only cover the untimed paths).
#[cfg(loom)]
pub(crate) fn park(_deadline: Option<std::time::Instant>) {
    loom::thread::park();
}

/// Whether `deadline` has passed. Never true under loom.
#[cfg(not(loom))]
pub(crate) fn expired(deadline: Option<std::time::Instant>) -> bool {
    deadline.is_some_and(|d| std::time::Instant::now() >= d)
}

#[cfg(loom)]
pub(crate) fn expired(_deadline: Option<std::time::Instant>) -> bool {
    false
}

/// One step of a spin-then-yield wait.
#[cfg(not(loom))]
pub(crate) fn spin_wait(backoff: &crossbeam_utils::Backoff) {
    backoff.snooze();
}

#[cfg(loom)]
pub(crate) fn spin_wait(_backoff: &crossbeam_utils::Backoff) {
    loom::thread::yield_now();
}

/// Statistics counters of the instrumented locks. They wrap parking_lot
/// locks, which loom cannot see anyway, and are never part of a modelled
/// protocol, so they stay `std` atomics under loom too.
pub(crate) use std::sync::atomic::AtomicU64 as StatCounter;

/// Reader-counter stripes of `ConfigCell` (one cache line each).
#[cfg(not(loom))]
pub(crate) const READER_STRIPES: usize = 8;
#[cfg(loom)]
pub(crate) const READER_STRIPES: usize = 2;

/// The calling thread's reader stripe: assigned round-robin on first use,
/// so up to `READER_STRIPES` reading threads never share a counter line.
#[cfg(not(loom))]
#[inline]
pub(crate) fn reader_stripe() -> usize {
    use std::cell::Cell;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE
        .try_with(|stripe| {
            let mut s = stripe.get();
            if s == usize::MAX {
                s = NEXT.fetch_add(1, Ordering::Relaxed) % READER_STRIPES;
                stripe.set(s);
            }
            s
        })
        // During thread-local destruction: any stripe is correct.
        .unwrap_or(0)
}

/// Under loom every reader uses stripe 0 (the drain still visits all).
#[cfg(loom)]
pub(crate) fn reader_stripe() -> usize {
    0
}
