//! The crate's loom facade: every atomic the crate's own protocols use comes
//! from here, so that `--cfg loom` swaps them for loom's model-checked ones.
//!
//! Only the small wake-up protocols ([`crate::wake`], [`crate::trigger`],
//! [`crate::space`]) and
//! the task manager's submit gate are modelled; the rest of the crate builds on tokio and
//! `otlp-lockfree`, which carry their own verification.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

/// A small per-thread number, handed out round-robin, for picking a counter
/// shard.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_slot() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        let mut v = slot.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed);
            slot.set(v);
        }
        v
    })
}

/// Under loom every thread uses shard 0 (loom statics cannot be `const`).
#[cfg(loom)]
#[inline]
pub(crate) fn thread_slot() -> usize {
    0
}
