//! Loom model of the allocator's slot hand-off: owners write their slot's
//! counter with a plain load + store; ownership passes through the registry
//! (claim = CAS Acquire, release = fetch_and Release); threads that find no
//! free slot use a shared counter with fetch_add. No update may be lost.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use otlp_numa::__loom::{SlotRegistry, bump_owned};

fn run(threads: usize, capacity: u32) {
    loom::model(move || {
        let registry = Arc::new(SlotRegistry::new(capacity));
        let slots: Arc<Vec<AtomicU64>> =
            Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect());
        let shared = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (registry, slots, shared) = (registry.clone(), slots.clone(), shared.clone());
                thread::spawn(move || match registry.claim() {
                    Some(id) => {
                        bump_owned(&slots[id as usize], 1);
                        bump_owned(&slots[id as usize], 1);
                        registry.release(id);
                    }
                    None => {
                        shared.fetch_add(2, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total: u64 = slots.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>()
            + shared.load(Ordering::Relaxed);
        assert_eq!(total, 2 * threads as u64);
    });
}

#[test]
fn one_slot_handed_between_two_threads() {
    run(2, 1);
}

#[test]
fn one_slot_three_threads() {
    run(3, 1);
}

#[test]
fn two_slots_three_threads() {
    run(3, 2);
}
