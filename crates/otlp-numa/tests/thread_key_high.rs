//! Issue 14 item 8: glibc's `pthread_setspecific` `calloc`s a second-level
//! block for keys of index 32 and up, so a thread may only be given a
//! private counter slot (whose release needs that call) when the
//! allocator's key is below 32. This process uses up the first 40 keys
//! before the allocator creates its own, at its first allocation.
//! (Its own test binary: the key is created once per process.)

use std::alloc::{GlobalAlloc, Layout};

use otlp_numa::{__testing, NumaAwareAllocator};

#[test]
fn a_high_pthread_key_gives_no_slots_and_counts_stay_exact() {
    for _ in 0..40 {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is writable; no destructor.
        assert_eq!(unsafe { libc::pthread_key_create(&mut key, None) }, 0);
    }
    let a = Box::new(NumaAwareAllocator::new());
    let layout = Layout::from_size_align(48, 8).unwrap();
    let per = if cfg!(miri) { 20 } else { 1000 };
    let slots: Vec<Option<u32>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..per {
                        // SAFETY: non-zero size, freed with its layout.
                        unsafe { a.dealloc(a.alloc(layout), layout) };
                    }
                    __testing::thread_slot()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    if cfg!(target_env = "gnu") {
        assert_eq!(slots, [None; 3], "a slot was handed out with a key >= 32");
    }
    // The shared counters lose nothing.
    let t = a.total_stats();
    assert_eq!((t.allocations, t.frees), (3 * per, 3 * per));
    assert_eq!(
        (t.bytes_allocated, t.bytes_freed),
        (48 * 3 * per, 48 * 3 * per)
    );
}
