//! The sysfs backend against fixture trees of a 2-node and a 4-node machine.
#![cfg_attr(miri, allow(unused))]

use std::path::PathBuf;

use otlp_numa::{Backend, CpuSet, NumaError, Placement, Topology};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn set(text: &str) -> CpuSet {
    text.parse().unwrap()
}

fn firsts(plan: &[CpuSet]) -> Vec<usize> {
    plan.iter()
        .map(|s| {
            assert_eq!(s.len(), 1, "{s}");
            s.first().unwrap()
        })
        .collect()
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads fixture files; file access is isolated under Miri"
)]
fn two_node_tree() {
    let t = Topology::from_sysfs_root(fixture("two_node")).unwrap();
    assert_eq!(t.backend(), Backend::Sysfs);
    assert_eq!(t.cpus(), &set("0-7"));
    assert_eq!(t.allowed_cpus(), &set("0-7"));
    let nodes: Vec<_> = t
        .nodes()
        .iter()
        .map(|n| (n.id, n.cpus.to_string()))
        .collect();
    assert_eq!(
        nodes,
        [(0, "0-1,4-5".to_owned()), (1, "2-3,6-7".to_owned())]
    );
    assert_eq!(t.node(1).unwrap().memory_bytes, Some(8_388_608 * 1024));
    assert_eq!(t.packages().len(), 2);
    assert_eq!(t.packages()[1].cpus, set("2-3,6-7"));
    assert_eq!(t.cores().len(), 4);
    assert_eq!(t.pus().len(), 8);
    assert_eq!(t.pu(6).unwrap().siblings, set("2,6"));
    assert_eq!(t.pu(6).unwrap().node, 1);
    assert_eq!(t.distances(), &[vec![10, 21], vec![21, 10]]);
    assert_eq!(t.distance(1, 0), Some(21));
    assert_eq!(
        firsts(&t.plan(8, Placement::Compact).unwrap()),
        [0, 4, 1, 5, 2, 6, 3, 7]
    );
    assert_eq!(
        firsts(&t.plan(8, Placement::Scatter).unwrap()),
        [0, 2, 1, 3, 4, 6, 5, 7]
    );
    assert_eq!(
        t.plan(3, Placement::Node(1)).unwrap(),
        vec![set("2-3,6-7"); 3]
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads fixture files; file access is isolated under Miri"
)]
fn four_node_tree_with_a_hole() {
    let t = Topology::from_sysfs_root(fixture("four_node")).unwrap();
    assert_eq!(t.cpus(), &set("0-5,8-17"));
    assert!(!t.cpus().contains(6) && t.pu(7).is_none());
    assert_eq!(t.nodes().len(), 4);
    assert_eq!(t.node(3).unwrap().cpus, set("8-9,16-17"));
    assert_eq!(t.node(3).unwrap().memory_bytes, Some(2_097_152 * 1024));
    assert_eq!(t.packages().len(), 2);
    assert_eq!(t.packages()[0].cpus, set("0-3,10-13"));
    assert_eq!(t.cores().len(), 8);
    // Core ids repeat across packages, yet the cores stay distinct.
    assert_eq!(t.pu(0).unwrap().siblings, set("0,10"));
    assert_eq!(t.pu(4).unwrap().siblings, set("4,14"));
    assert_eq!(t.pu(8).unwrap().siblings, set("8,16"));
    assert_eq!(t.distance(0, 1), Some(12));
    assert_eq!(t.distance(1, 2), Some(32));
    assert_eq!(t.distance(3, 2), Some(12));
    for row in t.distances() {
        assert_eq!(row.len(), 4);
    }

    let compact = firsts(&t.plan(16, Placement::Compact).unwrap());
    assert_eq!(
        compact,
        [0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 8, 16, 9, 17]
    );
    let scatter = firsts(&t.plan(16, Placement::Scatter).unwrap());
    // One per node first, then the second core of each node, then siblings.
    assert_eq!(scatter[..4], [0, 2, 4, 8]);
    assert_eq!(scatter[4..8], [1, 3, 5, 9]);
    assert_eq!(scatter[8..12], [10, 12, 14, 16]);
    let mut all = scatter.clone();
    all.sort_unstable();
    assert_eq!(
        all,
        compact
            .iter()
            .copied()
            .collect::<CpuSet>()
            .iter()
            .collect::<Vec<_>>()
    );

    // Restricted affinity (like a cgroup cpuset): node 3 has no allowed CPU.
    let t = t.with_allowed(&set("0-5,10-15")).unwrap();
    assert_eq!(t.cpus().len(), 16);
    assert_eq!(t.allowed_cpus().len(), 12);
    assert!(matches!(
        t.plan(1, Placement::Node(3)),
        Err(NumaError::NodeNotAllowed { node: 3 })
    ));
    assert!(matches!(
        t.pin_current_thread_to_node(3),
        Err(NumaError::NodeNotAllowed { node: 3 })
    ));
    let err = t.check_cpu(8).unwrap_err();
    assert!(
        matches!(err, NumaError::CpuNotAllowed { cpu: 8, .. }),
        "{err}"
    );
    let err = t.check_cpu(6).unwrap_err();
    assert!(matches!(err, NumaError::NoSuchCpu { cpu: 6, .. }), "{err}");
    assert!(err.to_string().contains("CPU 6"), "{err}");
    assert_eq!(firsts(&t.plan(3, Placement::Scatter).unwrap()), [0, 2, 4]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads fixture files; file access is isolated under Miri"
)]
fn missing_node_directory_gives_one_node() {
    let t = Topology::from_sysfs_root(fixture("no_node")).unwrap();
    assert_eq!(t.nodes().len(), 1);
    assert_eq!(t.nodes()[0].cpus, set("0-3"));
    assert_eq!(t.nodes()[0].memory_bytes, None);
    assert_eq!(t.distances(), &[vec![10]]);
    // No topology files: every CPU is its own core in package 0.
    assert_eq!(t.cores().len(), 4);
    assert_eq!(t.packages().len(), 1);
    assert_eq!(t.pu(2).unwrap().siblings, set("2"));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads fixture files; file access is isolated under Miri"
)]
fn unknown_node_is_an_error_naming_it() {
    let t = Topology::from_sysfs_root(fixture("two_node")).unwrap();
    let err = t.plan(1, Placement::Node(99)).unwrap_err();
    assert!(matches!(err, NumaError::NoSuchNode { node: 99, .. }));
    assert_eq!(
        err.to_string(),
        "NUMA node 99 does not exist (existing nodes: 0,1)"
    );
}
