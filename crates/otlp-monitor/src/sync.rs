//! The one place that chooses between `std` and `loom` synchronisation.
//!
//! Everything else in the crate imports atomics and locks from here, so a
//! `RUSTFLAGS="--cfg loom"` build model-checks the real recording and merge
//! code instead of a copy of it.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// thread-local's destructor) gets a huge id, which every monitor treats
/// as "no owned shard" and sends to a shared, read-modify-write shard.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn thread_slot() -> usize {
    use std::cell::Cell;
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

    /// Marks "no slot yet"; `RELEASED` marks "slot returned at thread
    /// exit". Both are far above any shard count, so a monitor sends such
    /// a thread to a shared shard.
    const UNINIT: usize = usize::MAX;
    const RELEASED: usize = usize::MAX - 1;

    struct SlotGuard(usize);
    impl Drop for SlotGuard {
        fn drop(&mut self) {
            // Later records from other thread-local destructors must not
            // use the id any more: another thread may own it next.
            let _ = FAST.try_with(|fast| fast.set(RELEASED));
            registry().free.push(Reverse(self.0));
        }
    }

    std::thread_local! {
        // The hot path reads only this const-initialised cell (no lazy
        // state, no destructor); the guard below exists to give the id
        // back when the thread exits.
        static FAST: Cell<usize> = const { Cell::new(UNINIT) };
        static GUARD: Cell<Option<SlotGuard>> = const { Cell::new(None) };
    }

    #[cold]
    #[inline(never)]
    fn init_slot() -> usize {
        let id = {
            let mut reg = registry();
            match reg.free.pop() {
                Some(Reverse(id)) => id,
                None => {
                    let id = reg.next;
                    reg.next += 1;
                    id
                }
            }
        };
        match GUARD.try_with(|guard| guard.set(Some(SlotGuard(id)))) {
            Ok(()) => {
                let _ = FAST.try_with(|fast| fast.set(id));
                id
            }
            Err(_) => {
                // Thread-locals are being torn down: give the id back.
                registry().free.push(Reverse(id));
                let _ = FAST.try_with(|fast| fast.set(RELEASED));
                RELEASED
            }
        }
    }

    match FAST.try_with(Cell::get) {
        Ok(UNINIT) => init_slot(),
        Ok(id) => id,
        Err(_) => RELEASED,
    }
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
