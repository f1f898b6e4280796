//! NumaAwareAllocator installed as the program's global allocator.
#![cfg(not(miri))]

use std::hint::black_box;

use otlp_numa::{NumaAwareAllocator, Topology, current_node};

#[global_allocator]
static GLOBAL: NumaAwareAllocator = NumaAwareAllocator::new().bind_above(1 << 20);

/// Everything below runs in one test so no other test thread allocates
/// while the counters are compared.
#[test]
fn per_node_totals_match_what_was_allocated() {
    let topo = Topology::detect().unwrap();
    for node in topo.nodes() {
        let cpus = topo.allowed_cpus_of_node(node.id).unwrap();
        if cpus.is_empty() {
            continue;
        }
        let id = node.id;
        std::thread::spawn(move || {
            otlp_numa::pin_current_thread(&cpus).unwrap();
            assert_eq!(current_node().unwrap(), id);
            // Warm the thread's state (slot claim, node lookup) before the
            // baseline.
            drop(black_box(vec![0u8; 8]));
            let before = GLOBAL.node_stats(id);
            let before_total = GLOBAL.total_stats();
            const N: u64 = 1000;
            for i in 0..N {
                let v: Vec<u8> = Vec::with_capacity(black_box(100 + i as usize));
                black_box(&v);
            }
            let after = GLOBAL.node_stats(id);
            let bytes: u64 = (0..N).map(|i| 100 + i).sum();
            assert_eq!(after.allocations - before.allocations, N);
            assert_eq!(after.frees - before.frees, N);
            assert_eq!(after.bytes_allocated - before.bytes_allocated, bytes);
            assert_eq!(after.bytes_freed - before.bytes_freed, bytes);
            // Nothing was charged anywhere else meanwhile (this is the only
            // thread allocating).
            let after_total = GLOBAL.total_stats();
            assert_eq!(after_total.allocations - before_total.allocations, N);

            // A large allocation goes through mmap + mbind to this node, or
            // is counted as a bind failure if the kernel refuses.
            let s0 = GLOBAL.get_allocation_stats();
            let bound0 = GLOBAL.node_stats(id).bound_allocations;
            let big = vec![1u8; 2 << 20];
            black_box(&big);
            let bound = GLOBAL.node_stats(id).bound_allocations - bound0;
            let failed = GLOBAL.get_allocation_stats().bind_failures - s0.bind_failures;
            assert_eq!(bound + failed, 1);
            if bound == 1 {
                // `vec![1; n]` wrote every page, so each has a node.
                match otlp_numa::page_node(big.as_ptr()) {
                    Ok(node) => assert_eq!(node, Some(id)),
                    Err(e) => assert!(
                        matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)),
                        "{e}"
                    ),
                }
            }
            drop(big);
        })
        .join()
        .unwrap();
    }
    let stats = GLOBAL.get_allocation_stats();
    let t = stats.total();
    assert!(t.allocations >= t.frees);
    assert!(stats.nodes.len() <= otlp_numa::MAX_TRACKED_NODES);
    GLOBAL.reset_stats();
    // Only this thread runs now; a reset then one allocation reads exactly 1.
    let v = black_box(vec![0u64; 4]);
    let t = GLOBAL.total_stats();
    assert_eq!(t.allocations, 1, "{t:?}");
    drop(v);
}
