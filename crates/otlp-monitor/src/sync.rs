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
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Returns this thread's slot id: a small number, unique among the live
/// threads of the process, reused after a thread exits (smallest free id
/// first).
///
/// Uniqueness is what lets a monitor give thread `id` its own shard that
/// only this thread writes (plain load + store instead of locked
/// read-modify-writes). When a thread exits, its id returns to the free
/// list under a mutex; the next thread to take the id locks the same mutex,
/// so everything the old owner stored happens-before the new owner's first
/// load. A thread whose slot is already torn down (recording from another
/// thread-local's destructor) gets `usize::MAX`, which every monitor treats
/// as "no owned shard" and sends to a shared, read-modify-write shard.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_slot() -> usize {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    struct Registry {
        free: BinaryHeap<Reverse<usize>>,
        next: usize,
    }
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        free: BinaryHeap::new(),
        next: 0,
    });
    fn registry() -> MutexGuard<'static, Registry> {
        REGISTRY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    struct SlotGuard(usize);
    impl SlotGuard {
        fn acquire() -> Self {
            let mut reg = registry();
            match reg.free.pop() {
                Some(Reverse(id)) => Self(id),
                None => {
                    let id = reg.next;
                    reg.next += 1;
                    Self(id)
                }
            }
        }
    }
    impl Drop for SlotGuard {
        fn drop(&mut self) {
            registry().free.push(Reverse(self.0));
        }
    }

    std::thread_local! {
        static SLOT: SlotGuard = SlotGuard::acquire();
    }
    SLOT.try_with(|slot| slot.0).unwrap_or(usize::MAX)
}

/// Loom version: ids come from a loom counter in first-record order (the
/// main thread of a model that records first gets 0, ...), never reused,
/// so they are unique and deterministic within each explored execution.
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

/// Adds `n` to a counter. `exclusive`: the caller is the only thread that
/// ever writes it (its owned shard), so a plain load + store is enough and
/// avoids a locked instruction; otherwise a `fetch_add`.
#[inline(always)]
pub(crate) fn add(counter: &AtomicU64, n: u64, exclusive: bool, order: Ordering) {
    if exclusive {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), order);
    } else {
        counter.fetch_add(n, order);
    }
}
