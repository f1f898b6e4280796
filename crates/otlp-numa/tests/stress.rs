//! Stress: many threads, short-lived threads (slot recycling), more threads
//! than private slots (shared counters), frees on other threads. The
//! allocator's totals must equal exactly what the threads did.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Arc, Barrier, mpsc};

use otlp_numa::{NumaAwareAllocator, THREAD_SLOTS};

fn small() -> bool {
    cfg!(miri) || std::env::var_os("OTLP_STRESS_SMALL").is_some()
}

/// (ops per thread, waves, threads per wave)
fn sizes() -> (usize, usize, usize) {
    if cfg!(miri) {
        (20, 2, 3)
    } else if small() {
        (500, 3, THREAD_SLOTS + 4)
    } else {
        (5_000, 6, THREAD_SLOTS + 8)
    }
}

/// A block handed to another thread to free.
struct Block(*mut u8, Layout);
// SAFETY: the block is plain memory owned by whoever holds the Block.
unsafe impl Send for Block {}

fn layout(i: usize) -> Layout {
    Layout::from_size_align(1 + (i * 37) % 3000, 8).unwrap()
}

#[test]
fn waves_of_threads_count_exactly() {
    let a = Arc::new(NumaAwareAllocator::new());
    let (ops, waves, threads) = sizes();
    let mut expected_bytes = 0u64;
    for _ in 0..waves {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let a = a.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut live = Vec::new();
                    for i in 0..ops {
                        let l = layout(i + t);
                        // SAFETY: non-zero size; every block is freed below
                        // with its own layout.
                        let p = unsafe { a.alloc(l) };
                        assert!(!p.is_null());
                        // SAFETY: p is valid for l.size() >= 1 bytes.
                        unsafe { p.write(i as u8) };
                        live.push((p, l));
                        if i % 3 == 0 {
                            let (p, l) = live.swap_remove(live.len() / 2);
                            // SAFETY: allocated above with layout l.
                            unsafe { a.dealloc(p, l) };
                        }
                    }
                    for (p, l) in live {
                        // SAFETY: allocated above with layout l.
                        unsafe { a.dealloc(p, l) };
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        expected_bytes += (0..threads)
            .flat_map(|t| (0..ops).map(move |i| layout(i + t).size() as u64))
            .sum::<u64>();
    }
    let t = a.total_stats();
    let n = (ops * waves * threads) as u64;
    assert_eq!(t.allocations, n);
    assert_eq!(t.frees, n);
    assert_eq!(t.bytes_allocated, expected_bytes);
    assert_eq!(t.bytes_freed, expected_bytes);
    let stats = a.get_allocation_stats();
    assert_eq!(stats.total(), t);
}

#[test]
fn frees_on_another_thread_and_resets_while_running() {
    let a = Arc::new(NumaAwareAllocator::new());
    let (ops, _, _) = sizes();
    let (tx, rx) = mpsc::channel::<Block>();
    let producer = {
        let a = a.clone();
        std::thread::spawn(move || {
            for i in 0..ops {
                let l = layout(i);
                // SAFETY: non-zero size; the consumer frees it with `l`.
                let p = unsafe { a.alloc(l) };
                assert!(!p.is_null());
                tx.send(Block(p, l)).unwrap();
            }
        })
    };
    let consumer = {
        let a = a.clone();
        std::thread::spawn(move || {
            for Block(p, l) in rx {
                // SAFETY: allocated by the producer with layout l.
                unsafe { a.dealloc(p, l) };
            }
        })
    };
    // Snapshots taken while the threads run are monotone in allocations;
    // the exact figures are checked once both threads are done.
    let mut last = 0;
    for _ in 0..20 {
        let now = a.total_stats().allocations;
        assert!(now >= last);
        last = now;
        std::thread::yield_now();
    }
    producer.join().unwrap();
    consumer.join().unwrap();
    let t = a.total_stats();
    let bytes: u64 = (0..ops).map(|i| layout(i).size() as u64).sum();
    assert_eq!((t.allocations, t.frees), (ops as u64, ops as u64));
    assert_eq!((t.bytes_allocated, t.bytes_freed), (bytes, bytes));
    a.reset_stats();
    assert_eq!(a.total_stats(), Default::default());
}
