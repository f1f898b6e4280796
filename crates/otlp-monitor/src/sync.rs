//! The one place that chooses between `std` and `loom` synchronisation.
//!
//! Everything else in the crate imports atomics and locks from here, so a
//! `RUSTFLAGS="--cfg loom"` build model-checks the real recording and merge
//! code instead of a copy of it.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Returns a small per-thread number used to pick a shard.
///
/// Each thread draws a number from a process-wide counter the first time it
/// records; threads that record into any monitor therefore land on distinct
/// shards until there are more recording threads than shards. The number is
/// only a placement hint: two threads sharing a shard stay correct because
/// every shard field is updated with atomic read-modify-writes.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_slot() -> usize {
    use std::cell::Cell;

    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.try_with(|slot| {
        let current = slot.get();
        if current != usize::MAX {
            return current;
        }
        let fresh = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        slot.set(fresh);
        fresh
    })
    // During thread-local destruction the slot is gone; any shard is fine.
    .unwrap_or(0)
}

/// Loom version: the counter and the per-thread cell are loom objects, so
/// the shard a thread lands on is deterministic within each explored
/// execution (the main thread gets 0, the first spawned thread 1, ...).
#[cfg(loom)]
#[inline]
pub(crate) fn thread_slot() -> usize {
    use std::cell::Cell;

    loom::lazy_static! {
        static ref NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    }
    loom::thread_local! {
        static SLOT: Cell<usize> = Cell::new(usize::MAX);
    }
    SLOT.with(|slot| {
        let current = slot.get();
        if current != usize::MAX {
            return current;
        }
        let fresh = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        slot.set(fresh);
        fresh
    })
}
