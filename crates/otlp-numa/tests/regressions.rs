//! Regression tests for issue 14 items 6 to 8: cores of nodes that reuse
//! `core_id` values, page queries that fault pages in, and the allocator's
//! handling of untracked nodes and of threads that only free.
#![cfg_attr(miri, allow(unused))]

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::Mutex;

use otlp_numa::{
    __testing, CpuSet, MAX_TRACKED_NODES, NODE_REFRESH_INTERVAL, NumaAwareAllocator, NumaError,
    Placement, Topology, page_node, query_pages,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn set(text: &str) -> CpuSet {
    text.parse().unwrap()
}

fn firsts(plan: &[CpuSet]) -> Vec<usize> {
    plan.iter().map(|s| s.first().unwrap()).collect()
}

/// The node override is process-wide: tests that use it run one at a time.
static OVERRIDE: Mutex<()> = Mutex::new(());

/// Restores `getcpu` when a test ends, even by a failed assertion.
struct Override<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

impl Override<'_> {
    fn take() -> Self {
        Override(OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn node(&self, node: Option<usize>) {
        __testing::override_node(node);
    }
}

impl Drop for Override<'_> {
    fn drop(&mut self) {
        __testing::override_node(None);
    }
}

/// A kernel refusal (container, no NUMA) is an acceptable answer.
fn refused(err: &NumaError) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM | libc::ENOSYS))
}

/// Item 6: one package whose two nodes reuse `core_id` 0 and 1 (sub-NUMA
/// clustering). Grouping by `(package, core_id)` merged CPUs 0, 2, 4, 6
/// into one "core" of node 0 and left node 1 without cores.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fixture files; file access is isolated under Miri"
)]
fn nodes_reusing_core_ids_keep_their_own_cores() {
    for name in ["snc_shared_core_ids", "snc_shared_core_ids_siblings_only"] {
        let t = Topology::from_sysfs_root(fixture(name)).unwrap();
        assert_eq!(t.packages().len(), 1, "{name}");
        assert_eq!(t.nodes().len(), 2, "{name}");
        assert_eq!(t.cores().len(), 4, "{name}");
        for core in t.cores() {
            assert_eq!(core.pus.len(), 2, "{name}: {core:?}");
            for cpu in &core.pus {
                assert_eq!(t.node_of_cpu(cpu), Some(core.node), "{name}: {core:?}");
            }
        }
        // Both nodes have cores with core_id 0 and 1.
        let ids = |node| {
            t.cores()
                .iter()
                .filter(|c| c.node == node)
                .map(|c| c.core_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), [0, 1], "{name}");
        assert_eq!(ids(1), [0, 1], "{name}");
        assert_eq!(t.pu(2).unwrap().siblings, set("2,6"), "{name}");
        assert_eq!(t.pu(4).unwrap().siblings, set("0,4"), "{name}");
        assert_ne!(t.pu(0).unwrap().core, t.pu(2).unwrap().core, "{name}");
        assert_eq!(
            firsts(&t.plan(8, Placement::Compact).unwrap()),
            [0, 4, 1, 5, 2, 6, 3, 7],
            "{name}"
        );
        assert_eq!(
            firsts(&t.plan(8, Placement::Scatter).unwrap()),
            [0, 2, 1, 3, 4, 6, 5, 7],
            "{name}"
        );
        assert_eq!(
            t.plan(2, Placement::Node(1)).unwrap(),
            vec![set("2-3,6-7"); 2]
        );
    }
}

/// A fresh private anonymous mapping of `pages` pages, unmapped on drop;
/// no `mbind`, so it works where the memory-policy calls are refused.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(pages: usize) -> Self {
        let len = pages * otlp_numa::page_size();
        // SAFETY: a fresh private anonymous mapping; nothing else changes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    fn page(&self, i: usize) -> *mut u8 {
        self.ptr.wrapping_add(i * otlp_numa::page_size())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Item 7: a page never written has no node: `page_node` says `None`
/// instead of faulting in the shared zero page and reporting its node, and
/// asking leaves the page untouched.
#[test]
#[cfg_attr(miri, ignore = "move_pages and get_mempolicy do not run under Miri")]
fn page_queries_do_not_fault_pages_in() {
    let map = Mapping::new(3);
    let (untouched, read, written) = (map.page(0), map.page(1), map.page(2));
    // SAFETY: both pages are inside the mapping, readable and writable.
    unsafe {
        std::ptr::read_volatile(read);
        std::ptr::write_volatile(written, 1);
    }
    let answers = match [untouched, read, written].map(|p| page_node(p.cast_const())) {
        answers if answers.iter().all(Result::is_ok) => answers.map(Result::unwrap),
        answers => {
            for a in answers {
                if let Err(e) = a {
                    assert!(refused(&e), "{e}");
                }
            }
            return;
        }
    };
    assert_eq!(answers[0], None, "an untouched page has no node");
    assert_eq!(
        answers[1], None,
        "a page only read maps the shared zero page"
    );
    assert!(answers[2].is_some(), "a written page has a node");
    // The queries faulted nothing in: the untouched page is still absent
    // (ENOENT) and was not turned into a zero-page mapping (EFAULT).
    let status = query_pages(&[untouched.cast_const()]).unwrap();
    assert_eq!(status, [Err(libc::ENOENT)]);
    // Unmapped memory is still an error, not "no page" (nothing is ever
    // mapped below mmap_min_addr).
    let err = page_node(std::ptr::without_provenance(4096)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
}

/// Item 7 for `NodeMemory::page_nodes`: `None` until written.
#[test]
#[cfg_attr(miri, ignore = "mbind and move_pages do not run under Miri")]
fn page_nodes_report_unplaced_pages_as_none() {
    let mut region = match otlp_numa::NodeMemory::preferred(4 * otlp_numa::page_size(), 0) {
        Ok(region) => region,
        Err(e) => {
            assert!(refused(&e), "{e}");
            return;
        }
    };
    let nodes = match region.page_nodes() {
        Ok(nodes) => nodes,
        Err(e) => {
            assert!(refused(&e), "{e}");
            return;
        }
    };
    assert_eq!(nodes, [None; 4]);
    // Reading maps the zero page: still not placed.
    assert!(region.as_slice().iter().all(|&b| b == 0));
    assert_eq!(region.page_nodes().unwrap(), [None; 4]);
    region.as_mut_slice()[0] = 1;
    let nodes = region.page_nodes().unwrap();
    assert_eq!(nodes[0], Some(0));
    assert_eq!(nodes[1..], [None; 3]);
    region.touch();
    assert_eq!(region.page_nodes().unwrap(), [Some(0); 4]);
}

/// Item 8: a thread on a node past the tracked range is charged to the
/// unattributed bucket, and its bound allocation is bound to that node
/// (here it does not exist, so the kernel refuses and the failure is
/// counted), never to node `MAX_TRACKED_NODES`, the bucket's index.
#[test]
#[cfg_attr(miri, ignore = "mbind does not run under Miri")]
fn untracked_node_is_unattributed_and_never_bound_to_its_bucket_index() {
    let hook = Override::take();
    let a = Box::new(NumaAwareAllocator::new().bind_above(4096));
    let untracked = MAX_TRACKED_NODES + 6;
    let small = Layout::from_size_align(64, 8).unwrap();
    let big = Layout::from_size_align(8192, 8).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            hook.node(Some(untracked));
            // SAFETY: non-zero sizes; each block is freed with its layout.
            unsafe {
                let p = a.alloc(small);
                let q = a.alloc(big);
                assert!(!p.is_null() && !q.is_null());
                q.write_bytes(7, big.size());
                a.dealloc(q, big);
                a.dealloc(p, small);
            }
        });
    });
    let stats = a.get_allocation_stats();
    assert_eq!(stats.nodes, [], "no tracked node was charged");
    assert_eq!(stats.unattributed.allocations, 2);
    assert_eq!(stats.unattributed.frees, 2);
    // Node MAX_TRACKED_NODES + 6 does not exist here: mbind fails.
    assert_eq!(stats.unattributed.bound_allocations, 0);
    assert_eq!(stats.bind_failures, 1);
    assert_eq!(a.node_stats(MAX_TRACKED_NODES), Default::default());
}

/// Item 8: with a node that exists, the bound allocation lands on it.
#[test]
#[cfg_attr(miri, ignore = "mbind does not run under Miri")]
fn bound_allocation_is_bound_to_the_current_node() {
    let hook = Override::take();
    let a = Box::new(NumaAwareAllocator::new().bind_above(4096));
    let big = Layout::from_size_align(3 * 4096, 8).unwrap();
    hook.node(Some(0));
    // SAFETY: non-zero size, freed with its layout; the writes stay inside.
    let node = unsafe {
        let p = a.alloc(big);
        assert!(!p.is_null());
        p.write_bytes(1, big.size());
        let node = page_node(p);
        a.dealloc(p, big);
        node
    };
    let stats = a.get_allocation_stats();
    let bound = stats.nodes.first().map_or(0, |n| n.bound_allocations);
    assert_eq!(bound + stats.bind_failures, 1);
    if bound == 1 {
        match node {
            Ok(node) => assert_eq!(node, Some(0)),
            Err(e) => assert!(refused(&e), "{e}"),
        }
    }
}

/// Item 8: a thread that moves to another node and then only frees is
/// charged to the new node after at most `NODE_REFRESH_INTERVAL` frees,
/// not to its old node for ever.
#[test]
fn frees_refresh_the_cached_node() {
    let hook = Override::take();
    let a = Box::new(NumaAwareAllocator::new());
    let layout = Layout::from_size_align(32, 8).unwrap();
    let n = 4 * NODE_REFRESH_INTERVAL as usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            hook.node(Some(1));
            // SAFETY: non-zero size; every block is freed below.
            let blocks: Vec<*mut u8> = (0..n).map(|_| unsafe { a.alloc(layout) }).collect();
            assert!(blocks.iter().all(|p| !p.is_null()));
            // The thread "migrates" to node 2 and from now on only frees.
            hook.node(Some(2));
            for p in blocks {
                // SAFETY: allocated above with this layout.
                unsafe { a.dealloc(p, layout) };
            }
        });
    });
    let on_1 = a.node_stats(1);
    let on_2 = a.node_stats(2);
    assert_eq!(on_1.allocations, n as u64);
    assert_eq!(on_1.frees + on_2.frees, n as u64);
    assert!(
        on_1.frees <= u64::from(NODE_REFRESH_INTERVAL),
        "{} frees still charged to the old node",
        on_1.frees
    );
    assert!(on_2.frees >= (n - NODE_REFRESH_INTERVAL as usize) as u64);
}

/// Item 8: in this process the allocator's pthread key is one of the first
/// (no test here creates keys before it), so threads get private slots;
/// `tests/thread_key_high.rs` checks the other case.
#[test]
fn threads_get_slots_when_the_key_is_low() {
    let a = Box::new(NumaAwareAllocator::new());
    let layout = Layout::from_size_align(16, 8).unwrap();
    let slot = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: non-zero size, freed with its layout.
            unsafe { a.dealloc(a.alloc(layout), layout) };
            __testing::thread_slot()
        })
        .join()
        .unwrap()
    });
    if cfg!(target_env = "gnu") {
        assert!(slot.is_some());
    }
    assert_eq!(a.total_stats().allocations, 1);
}

/// Issue 15 item 5: the refresh clock is the thread's, counting
/// allocations and frees together, so after a move every kind of operation
/// is charged to the new node within `NODE_REFRESH_INTERVAL` operations.
#[test]
fn mixed_operations_after_a_move_reach_the_new_node_within_the_interval() {
    let hook = Override::take();
    let a = Box::new(NumaAwareAllocator::new());
    let layout = Layout::from_size_align(40, 8).unwrap();
    let pairs = 4 * NODE_REFRESH_INTERVAL as u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            hook.node(Some(1));
            // SAFETY: non-zero size, freed with its layout.
            unsafe { a.dealloc(a.alloc(layout), layout) };
            hook.node(Some(2));
            for _ in 0..pairs {
                // SAFETY: as above.
                unsafe { a.dealloc(a.alloc(layout), layout) };
            }
        });
    });
    let (on_1, on_2) = (a.node_stats(1), a.node_stats(2));
    assert_eq!(on_1.allocations + on_2.allocations, pairs + 1);
    assert_eq!(on_1.frees + on_2.frees, pairs + 1);
    let late = on_1.allocations + on_1.frees - 2;
    assert!(
        late <= u64::from(NODE_REFRESH_INTERVAL),
        "{late} operations after the move charged to the old node"
    );
    assert_eq!(on_2.bytes_allocated, 40 * on_2.allocations);
    assert_eq!(on_2.bytes_freed, 40 * on_2.frees);
}

/// Issue 15 item 5: a thread's cached counter place is shared by every
/// allocator (it is an offset into a layout they all have), so a thread
/// that interleaves two allocators is counted exactly by each, on the node
/// it runs on.
#[test]
fn one_thread_interleaving_two_allocators_is_counted_exactly_by_each() {
    let hook = Override::take();
    let a = Box::new(NumaAwareAllocator::new());
    let b = Box::new(NumaAwareAllocator::new());
    let small = Layout::from_size_align(24, 8).unwrap();
    let large = Layout::from_size_align(200, 8).unwrap();
    let rounds = 3 * NODE_REFRESH_INTERVAL as u64 + 5;
    let slot = std::thread::scope(|s| {
        s.spawn(|| {
            hook.node(Some(3));
            for i in 0..rounds {
                // SAFETY: non-zero sizes; each block is freed with its
                // layout by the allocator that made it.
                unsafe {
                    let p = a.alloc(small);
                    let q = b.alloc(large);
                    if i % 3 == 0 {
                        let r = b.alloc(small);
                        b.dealloc(r, small);
                    }
                    a.dealloc(p, small);
                    b.dealloc(q, large);
                }
            }
            __testing::thread_slot()
        })
        .join()
        .unwrap()
    });
    let extra = rounds.div_ceil(3);
    let (sa, sb) = (a.node_stats(3), b.node_stats(3));
    assert_eq!((sa.allocations, sa.frees), (rounds, rounds));
    assert_eq!(
        (sa.bytes_allocated, sa.bytes_freed),
        (24 * rounds, 24 * rounds)
    );
    assert_eq!((sb.allocations, sb.frees), (rounds + extra, rounds + extra));
    assert_eq!(sb.bytes_allocated, 200 * rounds + 24 * extra);
    assert_eq!(sb.bytes_freed, sb.bytes_allocated);
    assert_eq!(a.total_stats(), sa);
    assert_eq!(b.total_stats(), sb);
    if cfg!(target_env = "gnu") {
        assert!(slot.is_some(), "counted in a private slot");
    }
}
