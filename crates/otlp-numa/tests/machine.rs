//! Tests against the real machine: pinning, getcpu, node-bound memory.
//! System calls do not run under Miri, so the whole file is skipped there.
#![cfg(not(miri))]

use otlp_numa::{
    CpuSet, MemPolicy, NodeMemory, NumaError, Placement, Topology, current_affinity, current_cpu,
    current_cpu_and_node, current_cpu_and_node_syscall, current_node, page_node,
    pin_current_thread, query_pages,
};

/// Runs `f` on a fresh thread so pinning never leaks into other tests.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn detect_matches_affinity() {
    let t = Topology::detect().unwrap();
    let affinity = current_affinity().unwrap();
    assert!(!t.allowed_cpus().is_empty());
    assert!(t.allowed_cpus().is_subset(t.cpus()));
    assert_eq!(t.allowed_cpus(), &affinity.intersection(t.cpus()));
    assert!(!t.nodes().is_empty());
    let sum: usize = t.nodes().iter().map(|n| n.cpus.len()).sum();
    assert_eq!(sum, t.cpus().len(), "every CPU in exactly one node");
    for row in t.distances() {
        assert_eq!(row.len(), t.nodes().len());
    }
}

#[test]
fn pin_to_each_allowed_cpu() {
    on_thread(|| {
        let t = Topology::detect().unwrap();
        for cpu in t.allowed_cpus() {
            t.pin_current_thread_to_cpu(cpu).unwrap();
            assert_eq!(current_affinity().unwrap(), CpuSet::single(cpu));
            assert_eq!(current_cpu().unwrap(), cpu);
            let (c, node) = current_cpu_and_node().unwrap();
            assert_eq!(c, cpu);
            assert_eq!(Some(node), t.node_of_cpu(cpu));
            assert_eq!(current_node().unwrap(), node);
            assert_eq!(current_cpu_and_node_syscall().unwrap(), (cpu, node));
        }
    });
}

#[test]
fn pin_to_each_node_and_follow_a_plan() {
    on_thread(|| {
        let t = Topology::detect().unwrap();
        for node in t.nodes() {
            let allowed = t.allowed_cpus_of_node(node.id).unwrap();
            if allowed.is_empty() {
                assert!(matches!(
                    t.pin_current_thread_to_node(node.id),
                    Err(NumaError::NodeNotAllowed { .. })
                ));
                continue;
            }
            t.pin_current_thread_to_node(node.id).unwrap();
            assert_eq!(current_affinity().unwrap(), allowed);
            assert_eq!(current_node().unwrap(), node.id);
        }
        let plan = t.plan(t.allowed_cpus().len(), Placement::Scatter).unwrap();
        let covered: CpuSet = plan.iter().flat_map(|s| s.iter()).collect();
        assert_eq!(&covered, t.allowed_cpus());
        for cpus in &plan {
            pin_current_thread(cpus).unwrap();
            assert!(cpus.contains(current_cpu().unwrap()));
        }
    });
}

#[test]
fn nonexistent_cpus_and_nodes_are_typed_errors() {
    let t = Topology::detect().unwrap();
    let missing = t.cpus().last().unwrap() + 1;
    let err = t.pin_current_thread_to_cpu(missing).unwrap_err();
    assert!(
        matches!(err, NumaError::NoSuchCpu { cpu, .. } if cpu == missing),
        "{err}"
    );
    let err = t.pin_current_thread_to_node(99).unwrap_err();
    assert!(
        matches!(err, NumaError::NoSuchNode { node: 99, .. }),
        "{err}"
    );
    let err = t.plan(4, Placement::Node(99)).unwrap_err();
    assert!(
        matches!(err, NumaError::NoSuchNode { node: 99, .. }),
        "{err}"
    );
    let err = NodeMemory::bind(4096, 99).unwrap_err();
    assert!(
        matches!(err, NumaError::NoSuchNode { node: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("node 99"), "{err}");
    let err = NodeMemory::bind(4096, 5000).unwrap_err();
    assert!(
        matches!(err, NumaError::NodeOutOfRange { node: 5000, .. }),
        "{err}"
    );
    assert!(matches!(NodeMemory::bind(0, 0), Err(NumaError::ZeroLength)));
    assert!(matches!(
        NodeMemory::interleave(4096, &[]),
        Err(NumaError::EmptyNodeSet)
    ));
    // The kernel itself refuses a CPU outside the machine.
    let err = pin_current_thread(&CpuSet::single(missing)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}

/// A refusal by the kernel must come back as the typed error.
fn assert_refused(err: &NumaError) {
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EPERM | libc::ENOSYS | libc::EACCES)
        ),
        "unexpected error: {err}"
    );
    assert!(matches!(err, NumaError::Syscall { .. }), "{err}");
}

/// Where the region's pages are, or `None` after checking that the kernel
/// refused to say.
fn page_nodes_or_refused(region: &NodeMemory) -> Option<Vec<Option<usize>>> {
    match region.page_nodes() {
        Ok(nodes) => Some(nodes),
        Err(e) => {
            assert_refused(&e);
            None
        }
    }
}

#[test]
fn memory_bound_to_node_zero_lives_there() {
    const LEN: usize = 4 << 20;
    match NodeMemory::bind(LEN, 0) {
        Ok(mut region) => {
            assert!(region.len() >= LEN);
            assert_eq!(region.policy(), &MemPolicy::Bind(vec![0]));
            region.touch();
            region.as_mut_slice()[LEN - 1] = 42;
            assert_eq!(region.as_slice()[LEN - 1], 42);
            let Some(nodes) = page_nodes_or_refused(&region) else {
                return;
            };
            assert_eq!(nodes.len(), region.len() / otlp_numa::page_size());
            assert!(nodes.iter().all(|&n| n == Some(0)), "{nodes:?}");
            // The raw status query agrees.
            let pages: Vec<*const u8> = (0..region.len())
                .step_by(otlp_numa::page_size())
                .map(|off| region.as_ptr().wrapping_add(off))
                .collect();
            let status = query_pages(&pages).unwrap();
            assert!(status.iter().all(|s| *s == Ok(0)), "{status:?}");
        }
        Err(e) => assert_refused(&e),
    }
}

#[test]
fn interleaved_and_preferred_regions() {
    let t = Topology::detect().unwrap();
    let ids: Vec<usize> = t
        .nodes()
        .iter()
        .filter(|n| n.memory_bytes != Some(0))
        .map(|n| n.id)
        .collect();
    match NodeMemory::interleave(64 * otlp_numa::page_size(), &ids) {
        Ok(mut region) => {
            region.touch();
            if let Some(nodes) = page_nodes_or_refused(&region) {
                let nodes: Vec<usize> = nodes.into_iter().map(Option::unwrap).collect();
                assert!(nodes.iter().all(|n| ids.contains(n)), "{nodes:?}");
                // Every node got pages (interleave is page-by-page round robin).
                for id in &ids {
                    assert!(nodes.contains(id), "node {id} got no page: {nodes:?}");
                }
            }
        }
        Err(e) => assert_refused(&e),
    }
    let last = *ids.last().unwrap();
    match NodeMemory::preferred(1 << 20, last) {
        Ok(mut region) => {
            region.touch();
            match page_node(region.as_ptr()) {
                Ok(node) => assert_eq!(node, Some(last)),
                Err(e) => assert_refused(&e),
            }
        }
        Err(e) => assert_refused(&e),
    }
}

#[test]
fn page_node_of_unmapped_address_is_an_error() {
    let err = page_node(std::ptr::null()).unwrap_err();
    if err.raw_os_error() != Some(libc::EFAULT) {
        // move_pages itself refused: nothing more to check here.
        assert_refused(&err);
        return;
    }
    assert!(
        matches!(
            err,
            NumaError::Syscall {
                call: "move_pages" | "get_mempolicy",
                ..
            }
        ),
        "{err}"
    );
}
