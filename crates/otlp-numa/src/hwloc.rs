//! The `hwloc` backend: the hwloc C library through the `hwlocality` crate,
//! filling the same [`Topology`] as the sysfs backend.

use hwlocality::object::TopologyObject;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::BuildFlags;

use crate::topology::{Backend, RawPu};
use crate::{CpuSet, NumaError, Topology};

fn hwloc_err(what: &str, e: impl std::fmt::Display) -> NumaError {
    NumaError::Hwloc(format!("{what}: {e}"))
}

fn index(obj: &TopologyObject) -> usize {
    obj.os_index().unwrap_or_else(|| obj.logical_index())
}

fn to_cpuset(set: &hwlocality::cpu::cpuset::CpuSet) -> CpuSet {
    set.iter_set().map(usize::from).collect()
}

fn convert(topo: &hwlocality::Topology) -> Result<Topology, NumaError> {
    let numa: Vec<&TopologyObject> = topo.objects_with_type(ObjectType::NUMANode).collect();
    let mut nodes: Vec<(usize, Option<u64>, CpuSet)> = numa
        .iter()
        .map(|n| {
            let memory = match n.attributes() {
                Some(ObjectAttributes::NUMANode(a)) => a.local_memory().map(|m| m.get()),
                _ => None,
            };
            let cpus = n
                .cpuset()
                .map(|c| to_cpuset(&c.clone_target()))
                .unwrap_or_default();
            (index(n), memory, cpus)
        })
        .collect();
    nodes.sort_by_key(|n| n.0);

    let mut raw = Vec::new();
    for pu in topo.objects_with_type(ObjectType::PU) {
        let cpu = index(pu);
        let package = pu
            .first_ancestor_with_type(ObjectType::Package)
            .map_or(0, index);
        let core = pu.first_ancestor_with_type(ObjectType::Core);
        // Cores are numbered within their package by os_index on Linux,
        // like sysfs core_id (and, like it, may repeat across the nodes of
        // a package); synthetic ones have logical ids.
        let core_id = core.map_or(cpu, index);
        // hwloc's logical index is unique among all cores of the machine.
        let core_key = core.map(TopologyObject::logical_index);
        let node = nodes
            .iter()
            .find(|(_, _, cpus)| cpus.contains(cpu))
            .or(nodes.first())
            .map_or(0, |n| n.0);
        raw.push(RawPu {
            cpu,
            package,
            core_id,
            node,
            core_key,
        });
    }
    if raw.is_empty() {
        return Err(NumaError::Hwloc("the hwloc topology has no PU".into()));
    }

    // The NUMA distance matrix, if hwloc has one covering every node.
    let mut distances = Vec::new();
    if let Ok(matrices) = topo.distances_with_type(None, ObjectType::NUMANode) {
        for m in matrices {
            let ids: Vec<Option<usize>> = m.objects().map(|o| o.map(index)).collect();
            let n = ids.len();
            if n != nodes.len() {
                continue;
            }
            let values = m.distances();
            let pos = |id: usize| ids.iter().position(|&x| x == Some(id));
            let mut rows = vec![vec![0u32; n]; n];
            let mut complete = true;
            for (i, a) in nodes.iter().enumerate() {
                for (j, b) in nodes.iter().enumerate() {
                    match (pos(a.0), pos(b.0)) {
                        (Some(x), Some(y)) => {
                            rows[i][j] = u32::try_from(values[x * n + y]).unwrap_or(u32::MAX)
                        }
                        _ => complete = false,
                    }
                }
            }
            if complete {
                distances = rows;
                break;
            }
        }
    }
    if nodes.is_empty() {
        nodes.push((0, None, CpuSet::new()));
    }
    Ok(Topology::assemble(
        raw,
        nodes.into_iter().map(|(id, mem, _)| (id, mem)).collect(),
        distances,
        Backend::Hwloc,
    ))
}

impl Topology {
    /// Reads this machine's topology through hwloc. CPUs hwloc reports as
    /// disallowed (cgroup) are kept in [`Topology::cpus`] but left out of
    /// [`Topology::allowed_cpus`], which is further narrowed to this
    /// thread's affinity.
    ///
    /// # Errors
    /// [`NumaError::Hwloc`] if hwloc fails, or a failed
    /// `sched_getaffinity`.
    pub fn detect_hwloc() -> Result<Topology, NumaError> {
        let topo = hwlocality::Topology::builder()
            .with_flags(BuildFlags::INCLUDE_DISALLOWED)
            .map_err(|e| hwloc_err("set flags", e))?
            .build()
            .map_err(|e| hwloc_err("build topology", e))?;
        let allowed = to_cpuset(&topo.allowed_cpuset().clone_target());
        let ours = convert(&topo)?;
        let affinity = crate::current_affinity()?;
        ours.with_allowed(&allowed.intersection(&affinity))
    }

    /// A topology from an hwloc synthetic description such as
    /// `"pack:2 numa:1 core:4 pu:2"` (no environment variable needed: this
    /// uses hwloc's builder API). Every CPU counts as allowed.
    ///
    /// # Errors
    /// [`NumaError::Hwloc`] naming a description hwloc rejects.
    pub fn from_hwloc_synthetic(description: &str) -> Result<Topology, NumaError> {
        let topo = hwlocality::Topology::builder()
            .from_synthetic(description)
            .map_err(|e| hwloc_err(&format!("synthetic description {description:?}"), e))?
            .build()
            .map_err(|e| hwloc_err("build synthetic topology", e))?;
        convert(&topo)
    }
}
