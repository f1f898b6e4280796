//! The hwloc backend: synthetic topologies (through hwloc's builder, so no
//! `HWLOC_SYNTHETIC` environment mutation) and agreement with sysfs here.
#![cfg(all(feature = "hwloc", not(miri)))]

use std::collections::BTreeSet;

use otlp_numa::{Backend, CpuSet, NumaError, Placement, Topology};

fn set(text: &str) -> CpuSet {
    text.parse().unwrap()
}

fn firsts(plan: &[CpuSet]) -> Vec<usize> {
    plan.iter().map(|s| s.first().unwrap()).collect()
}

#[test]
fn synthetic_two_packages_two_nodes() {
    let t = Topology::from_hwloc_synthetic("pack:2 numa:1 core:4 pu:2").unwrap();
    assert_eq!(t.backend(), Backend::Hwloc);
    assert_eq!(t.nodes().len(), 2);
    assert_eq!(t.cores().len(), 8);
    assert_eq!(t.pus().len(), 16);
    assert_eq!(t.packages().len(), 2);
    assert_eq!(t.node(0).unwrap().cpus, set("0-7"));
    assert_eq!(t.node(1).unwrap().cpus, set("8-15"));
    // Synthetic PUs of a core are numbered consecutively.
    assert_eq!(t.pu(5).unwrap().siblings, set("4-5"));
    assert_eq!(t.distances().len(), 2);
    assert_eq!(t.distance(0, 0), Some(10));
    let compact = firsts(&t.plan(16, Placement::Compact).unwrap());
    assert_eq!(compact, (0..16).collect::<Vec<_>>());
    let scatter = firsts(&t.plan(16, Placement::Scatter).unwrap());
    assert_eq!(scatter[..8], [0, 8, 2, 10, 4, 12, 6, 14]);
    assert_eq!(scatter[8..], [1, 9, 3, 11, 5, 13, 7, 15]);
    assert_eq!(t.plan(2, Placement::Node(1)).unwrap(), vec![set("8-15"); 2]);
    assert!(matches!(
        t.plan(1, Placement::Node(99)),
        Err(NumaError::NoSuchNode { node: 99, .. })
    ));
}

#[test]
fn synthetic_four_nodes() {
    let t = Topology::from_hwloc_synthetic("pack:2 numa:2 core:2 pu:2").unwrap();
    assert_eq!(t.nodes().len(), 4);
    assert_eq!(t.packages().len(), 2);
    assert_eq!(t.cores().len(), 8);
    assert_eq!(t.packages()[1].cpus, set("8-15"));
    assert_eq!(t.node(3).unwrap().cpus, set("12-15"));
    let scatter = firsts(&t.plan(4, Placement::Scatter).unwrap());
    assert_eq!(scatter, [0, 4, 8, 12]);
    let allowed = t.with_allowed(&set("0-3")).unwrap();
    assert!(matches!(
        allowed.plan(1, Placement::Node(2)),
        Err(NumaError::NodeNotAllowed { node: 2 })
    ));
}

#[test]
fn bad_synthetic_description_is_an_error() {
    let err = Topology::from_hwloc_synthetic("this is not hwloc").unwrap_err();
    assert!(matches!(err, NumaError::Hwloc(_)), "{err}");
    assert!(err.to_string().contains("this is not hwloc"), "{err}");
}

fn partition(t: &Topology) -> BTreeSet<String> {
    t.cores().iter().map(|c| c.pus.to_string()).collect()
}

#[test]
fn hwloc_and_sysfs_agree_on_this_machine() {
    let h = Topology::detect_hwloc().unwrap();
    let s = Topology::detect_sysfs().unwrap();
    assert_eq!(h.cpus(), s.cpus());
    assert_eq!(h.allowed_cpus(), s.allowed_cpus());
    let nodes = |t: &Topology| {
        t.nodes()
            .iter()
            .map(|n| (n.id, n.cpus.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(nodes(&h), nodes(&s));
    for (a, b) in h.nodes().iter().zip(s.nodes()) {
        // hwloc leaves huge pages out of local memory; both must know it.
        assert_eq!(a.memory_bytes.is_some(), b.memory_bytes.is_some());
        if let (Some(x), Some(y)) = (a.memory_bytes, b.memory_bytes) {
            assert!(x <= y, "hwloc {x} > sysfs {y}");
        }
    }
    let packages = |t: &Topology| {
        t.packages()
            .iter()
            .map(|p| p.cpus.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(packages(&h), packages(&s));
    assert_eq!(partition(&h), partition(&s));
    for (a, b) in h.pus().iter().zip(s.pus()) {
        assert_eq!((a.cpu, a.node, &a.siblings), (b.cpu, b.node, &b.siblings));
    }
    assert_eq!(h.distances(), s.distances());
    for placement in [Placement::Compact, Placement::Scatter, Placement::Node(0)] {
        assert_eq!(
            h.plan(3, placement).unwrap(),
            s.plan(3, placement).unwrap(),
            "{placement:?}"
        );
    }
}
