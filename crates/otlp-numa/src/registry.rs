//! The slot registry behind the allocator's private per-thread counters:
//! a bitmap of slot ids, claimed with a CAS (Acquire) and released with a
//! `fetch_and` (Release).
//!
//! The protocol it protects: a slot's counters are written by their owner
//! only, with a plain load + store. That is sound because ownership passes
//! through this bitmap: the old owner's last store happens-before its
//! release, which happens-before the next owner's successful claim, so the
//! next owner's load sees the final value. `tests/loom_slots.rs` checks
//! exactly this.

use crate::sync::{AtomicU64, Ordering};

/// A set of at most 64 slot ids.
#[derive(Debug)]
pub struct SlotRegistry {
    used: AtomicU64,
    mask: u64,
}

impl SlotRegistry {
    /// A registry of `capacity` (1..=64) slots.
    #[cfg(not(loom))]
    pub const fn new(capacity: u32) -> Self {
        SlotRegistry {
            used: AtomicU64::new(0),
            mask: Self::mask(capacity),
        }
    }

    /// A registry of `capacity` (1..=64) slots.
    #[cfg(loom)]
    pub fn new(capacity: u32) -> Self {
        SlotRegistry {
            used: AtomicU64::new(0),
            mask: Self::mask(capacity),
        }
    }

    const fn mask(capacity: u32) -> u64 {
        if capacity >= 64 {
            u64::MAX
        } else {
            (1 << capacity) - 1
        }
    }

    /// Claims the lowest free slot id; `None` when all are taken. Acquire:
    /// the previous owner's writes to the slot are visible afterwards.
    pub fn claim(&self) -> Option<u32> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let free = !used & self.mask;
            if free == 0 {
                return None;
            }
            let id = free.trailing_zeros();
            match self.used.compare_exchange_weak(
                used,
                used | (1 << id),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(id),
                Err(now) => used = now,
            }
        }
    }

    /// Gives `id` back. Release: every write the owner made to the slot
    /// happens-before the next claim of it.
    pub fn release(&self, id: u32) {
        if id < 64 {
            self.used.fetch_and(!(1 << id), Ordering::Release);
        }
    }
}

/// Adds to a counter that only the calling thread (the slot owner) writes:
/// a plain load + store, no locked read-modify-write.
#[inline(always)]
pub fn bump_owned(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_lowest_free_and_reuses_released() {
        let r = SlotRegistry::new(3);
        assert_eq!(r.claim(), Some(0));
        assert_eq!(r.claim(), Some(1));
        assert_eq!(r.claim(), Some(2));
        assert_eq!(r.claim(), None);
        r.release(1);
        assert_eq!(r.claim(), Some(1));
        r.release(99); // out of range: ignored
        let full = SlotRegistry::new(64);
        for i in 0..64 {
            assert_eq!(full.claim(), Some(i));
        }
        assert_eq!(full.claim(), None);
    }
}
