//! [`Topology`]: NUMA nodes, packages, cores and PUs, and worker placement.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{CpuSet, NumaError};

/// Which backend filled a [`Topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Linux sysfs (`/sys/devices/system/{cpu,node}`).
    Sysfs,
    /// The hwloc library, through the `hwlocality` crate.
    Hwloc,
}

/// A NUMA node: a memory controller and the CPUs closest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The node id (the `N` of `/sys/devices/system/node/nodeN`).
    pub id: usize,
    /// The online CPUs of this node (may be empty: a memory-only node).
    pub cpus: CpuSet,
    /// Total memory of the node in bytes, when the backend reports it.
    pub memory_bytes: Option<u64>,
}

/// A physical package (socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package id (`physical_package_id`).
    pub id: usize,
    /// Its online CPUs.
    pub cpus: CpuSet,
}

/// A physical core: one or more PUs (hardware threads) sharing execution
/// units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// The package holding the core.
    pub package: usize,
    /// The core id within its package (`core_id`). Not unique across
    /// packages, nor across the NUMA nodes of one package on some machines
    /// (sub-NUMA clustering): cores are told apart by their PUs' sibling
    /// lists, not by this id.
    pub core_id: usize,
    /// The NUMA node of the core (all its PUs are on it).
    pub node: usize,
    /// Its PUs (SMT siblings of each other).
    pub pus: CpuSet,
}

/// A processing unit: one logical CPU, as the OS numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pu {
    /// The logical CPU id.
    pub cpu: usize,
    /// Index of its core in [`Topology::cores`].
    pub core: usize,
    /// Its package id.
    pub package: usize,
    /// Its NUMA node id.
    pub node: usize,
    /// The PUs on the same core, itself included.
    pub siblings: CpuSet,
}

/// How [`Topology::plan`] spreads workers over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Fill one node before the next; within a node fill a core (all its
    /// SMT siblings) before the next. Workers share caches; good for
    /// communicating workers.
    Compact,
    /// Spread across nodes first (round-robin), then across cores, and put
    /// a second SMT sibling of a core to work only after every core has one.
    /// Maximises memory bandwidth and per-worker execution resources.
    Scatter,
    /// Every worker gets all the allowed CPUs of this node (the kernel
    /// balances inside the node).
    Node(usize),
}

/// The machine's CPU and memory layout, and the CPUs this process may use.
///
/// Build it with [`Topology::detect`] (the real machine) or
/// [`Topology::from_sysfs_root`] (a sysfs tree, such as the fixtures the
/// tests use). The CPUs that *exist* ([`Topology::cpus`]) are kept apart
/// from the CPUs this process is *allowed* to run on
/// ([`Topology::allowed_cpus`], its affinity mask, which includes any cgroup
/// cpuset); placement only ever uses allowed CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub(crate) nodes: Vec<NumaNode>,
    pub(crate) packages: Vec<Package>,
    pub(crate) cores: Vec<Core>,
    pub(crate) pus: Vec<Pu>,
    pub(crate) distances: Vec<Vec<u32>>,
    pub(crate) cpus: CpuSet,
    pub(crate) allowed: CpuSet,
    pub(crate) backend: Backend,
}

/// One PU as a backend reports it, before the topology is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawPu {
    pub cpu: usize,
    pub package: usize,
    pub core_id: usize,
    pub node: usize,
    /// A number that identifies the PU's physical core machine-wide, when
    /// the backend knows one: the lowest CPU of the sysfs sibling list
    /// (`core_cpus_list`, or `thread_siblings_list` on older kernels), or
    /// hwloc's logical index of the core. `core_id` alone is not enough:
    /// two nodes of one package may reuse the same `core_id` values.
    pub core_key: Option<usize>,
}

/// What makes two PUs the same core: same package and node, and the same
/// machine-wide core key (or, without one, the same `core_id`). The node is
/// part of the key so that a core never spans nodes, whatever the backend
/// reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CoreKey {
    Known {
        package: usize,
        node: usize,
        key: usize,
    },
    ById {
        package: usize,
        node: usize,
        core_id: usize,
    },
}

impl CoreKey {
    fn of(p: &RawPu) -> Self {
        match p.core_key {
            Some(key) => CoreKey::Known {
                package: p.package,
                node: p.node,
                key,
            },
            None => CoreKey::ById {
                package: p.package,
                node: p.node,
                core_id: p.core_id,
            },
        }
    }
}

impl Topology {
    /// Reads the topology of this machine: through hwloc when the `hwloc`
    /// feature is on, otherwise from `/sys`. The allowed CPUs are this
    /// thread's current affinity mask (intersected with the online CPUs).
    ///
    /// # Errors
    /// Unreadable or malformed sysfs files, a failed `sched_getaffinity`, or
    /// an hwloc failure.
    pub fn detect() -> Result<Topology, NumaError> {
        #[cfg(feature = "hwloc")]
        {
            Topology::detect_hwloc()
        }
        #[cfg(not(feature = "hwloc"))]
        {
            Topology::detect_sysfs()
        }
    }

    /// Reads the topology of this machine from `/sys` (whatever the
    /// features), restricting the allowed CPUs to this thread's affinity.
    ///
    /// # Errors
    /// As [`Topology::detect`].
    pub fn detect_sysfs() -> Result<Topology, NumaError> {
        let topo = Topology::from_sysfs_root("/sys")?;
        let affinity = crate::current_affinity()?;
        topo.with_allowed(&affinity)
    }

    /// Reads a sysfs tree rooted at `root` (the directory holding
    /// `devices/system/cpu` and, optionally, `devices/system/node`). Every
    /// online CPU counts as allowed; narrow that with
    /// [`Topology::with_allowed`].
    ///
    /// Without `devices/system/node` (some containers) the result has one
    /// node, 0, holding every online CPU, with unknown memory.
    ///
    /// # Errors
    /// [`NumaError::Io`] naming an unreadable file, [`NumaError::Parse`]
    /// naming malformed content, [`NumaError::NoCpus`] if no CPU is online.
    pub fn from_sysfs_root(root: impl AsRef<Path>) -> Result<Topology, NumaError> {
        crate::sysfs::read(root.as_ref())
    }

    /// Assembles a topology from per-PU records. `nodes` lists every node
    /// (id, memory); `distances` is indexed like `nodes` sorted by id.
    pub(crate) fn assemble(
        mut raw: Vec<RawPu>,
        nodes: Vec<(usize, Option<u64>)>,
        distances: Vec<Vec<u32>>,
        backend: Backend,
    ) -> Topology {
        raw.sort_by_key(|p| p.cpu);
        raw.dedup_by_key(|p| p.cpu);
        let mut node_map: BTreeMap<usize, NumaNode> = nodes
            .into_iter()
            .map(|(id, memory_bytes)| {
                (
                    id,
                    NumaNode {
                        id,
                        cpus: CpuSet::new(),
                        memory_bytes,
                    },
                )
            })
            .collect();
        let mut packages: BTreeMap<usize, CpuSet> = BTreeMap::new();
        // Core identity -> index in `cores`, cores ordered by first PU.
        let mut core_index: BTreeMap<CoreKey, usize> = BTreeMap::new();
        let mut cores: Vec<Core> = Vec::new();
        for p in &raw {
            node_map
                .entry(p.node)
                .or_insert_with(|| NumaNode {
                    id: p.node,
                    cpus: CpuSet::new(),
                    memory_bytes: None,
                })
                .cpus
                .insert(p.cpu);
            packages.entry(p.package).or_default().insert(p.cpu);
            let idx = *core_index.entry(CoreKey::of(p)).or_insert_with(|| {
                cores.push(Core {
                    package: p.package,
                    core_id: p.core_id,
                    node: p.node,
                    pus: CpuSet::new(),
                });
                cores.len() - 1
            });
            cores[idx].pus.insert(p.cpu);
        }
        let pus = raw
            .iter()
            .map(|p| {
                let core = core_index[&CoreKey::of(p)];
                Pu {
                    cpu: p.cpu,
                    core,
                    package: p.package,
                    node: p.node,
                    siblings: cores[core].pus.clone(),
                }
            })
            .collect();
        let cpus: CpuSet = raw.iter().map(|p| p.cpu).collect();
        let nodes: Vec<NumaNode> = node_map.into_values().collect();
        let n = nodes.len();
        let distances = if distances.len() == n && distances.iter().all(|r| r.len() == n) {
            distances
        } else {
            // Unknown distances: the ACPI convention, 10 local, 20 remote.
            (0..n)
                .map(|i| (0..n).map(|j| if i == j { 10 } else { 20 }).collect())
                .collect()
        };
        Topology {
            nodes,
            packages: packages
                .into_iter()
                .map(|(id, cpus)| Package { id, cpus })
                .collect(),
            cores,
            pus,
            distances,
            allowed: cpus.clone(),
            cpus,
            backend,
        }
    }

    /// The same topology with the allowed CPUs narrowed to `allowed` (CPUs
    /// of `allowed` that do not exist are ignored).
    ///
    /// # Errors
    /// [`NumaError::EmptyCpuSet`] if no existing CPU is left allowed.
    pub fn with_allowed(mut self, allowed: &CpuSet) -> Result<Topology, NumaError> {
        let allowed = self.cpus.intersection(allowed);
        if allowed.is_empty() {
            return Err(NumaError::EmptyCpuSet);
        }
        self.allowed = allowed;
        Ok(self)
    }

    /// Which backend produced this topology.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The NUMA nodes, by increasing id.
    pub fn nodes(&self) -> &[NumaNode] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: usize) -> Option<&NumaNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The packages (sockets), by increasing id.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// The physical cores, ordered by their first PU.
    pub fn cores(&self) -> &[Core] {
        &self.cores
    }

    /// The PUs (logical CPUs), by increasing CPU id.
    pub fn pus(&self) -> &[Pu] {
        &self.pus
    }

    /// The PU with this CPU id.
    pub fn pu(&self, cpu: usize) -> Option<&Pu> {
        self.pus
            .binary_search_by_key(&cpu, |p| p.cpu)
            .ok()
            .map(|i| &self.pus[i])
    }

    /// The NUMA node of a CPU.
    pub fn node_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.pu(cpu).map(|p| p.node)
    }

    /// Every online CPU of the machine.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }

    /// The CPUs this process may run on (a subset of [`Topology::cpus`]).
    pub fn allowed_cpus(&self) -> &CpuSet {
        &self.allowed
    }

    /// The allowed CPUs of a node.
    ///
    /// # Errors
    /// [`NumaError::NoSuchNode`] for an unknown node id.
    pub fn allowed_cpus_of_node(&self, node: usize) -> Result<CpuSet, NumaError> {
        let n = self.node(node).ok_or_else(|| self.no_such_node(node))?;
        Ok(n.cpus.intersection(&self.allowed))
    }

    /// The node distance matrix (ACPI SLIT units, 10 = local), rows and
    /// columns in the order of [`Topology::nodes`].
    pub fn distances(&self) -> &[Vec<u32>] {
        &self.distances
    }

    /// The distance from node `from` to node `to`, by node id.
    pub fn distance(&self, from: usize, to: usize) -> Option<u32> {
        let i = self.nodes.iter().position(|n| n.id == from)?;
        let j = self.nodes.iter().position(|n| n.id == to)?;
        Some(self.distances[i][j])
    }

    /// Checks that `cpu` exists and is allowed.
    ///
    /// # Errors
    /// [`NumaError::NoSuchCpu`] or [`NumaError::CpuNotAllowed`].
    pub fn check_cpu(&self, cpu: usize) -> Result<(), NumaError> {
        if !self.cpus.contains(cpu) {
            return Err(NumaError::NoSuchCpu {
                cpu,
                existing: self.cpus.to_string(),
            });
        }
        if !self.allowed.contains(cpu) {
            return Err(NumaError::CpuNotAllowed {
                cpu,
                allowed: self.allowed.to_string(),
            });
        }
        Ok(())
    }

    /// Pins the calling thread to one CPU, after checking it exists and is
    /// allowed.
    ///
    /// # Errors
    /// As [`Topology::check_cpu`], or the failed `sched_setaffinity`.
    pub fn pin_current_thread_to_cpu(&self, cpu: usize) -> Result<(), NumaError> {
        self.check_cpu(cpu)?;
        crate::pin_current_thread(&CpuSet::single(cpu))
    }

    /// Pins the calling thread to the allowed CPUs of a node.
    ///
    /// # Errors
    /// [`NumaError::NoSuchNode`], [`NumaError::NodeNotAllowed`] when none of
    /// its CPUs is allowed, or the failed `sched_setaffinity`.
    pub fn pin_current_thread_to_node(&self, node: usize) -> Result<(), NumaError> {
        let cpus = self.allowed_cpus_of_node(node)?;
        if cpus.is_empty() {
            return Err(NumaError::NodeNotAllowed { node });
        }
        crate::pin_current_thread(&cpus)
    }

    pub(crate) fn no_such_node(&self, node: usize) -> NumaError {
        NumaError::NoSuchNode {
            node,
            existing: self
                .nodes
                .iter()
                .map(|n| n.id.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// A placement plan: one CPU set per worker, built from allowed CPUs
    /// only.
    ///
    /// [`Placement::Compact`] and [`Placement::Scatter`] give each worker a
    /// single CPU; with more workers than allowed CPUs the order wraps
    /// around (workers share CPUs). [`Placement::Node`] gives each worker all
    /// the allowed CPUs of the node.
    ///
    /// # Errors
    /// [`NumaError::ZeroWorkers`], [`NumaError::NoSuchNode`], or
    /// [`NumaError::NodeNotAllowed`] when the node has no allowed CPU.
    pub fn plan(&self, workers: usize, placement: Placement) -> Result<Vec<CpuSet>, NumaError> {
        if workers == 0 {
            return Err(NumaError::ZeroWorkers);
        }
        let order = match placement {
            Placement::Node(node) => {
                let cpus = self.allowed_cpus_of_node(node)?;
                if cpus.is_empty() {
                    return Err(NumaError::NodeNotAllowed { node });
                }
                return Ok(vec![cpus; workers]);
            }
            Placement::Compact => self.compact_order(),
            Placement::Scatter => self.scatter_order(),
        };
        if order.is_empty() {
            return Err(NumaError::EmptyCpuSet);
        }
        Ok((0..workers)
            .map(|i| CpuSet::single(order[i % order.len()]))
            .collect())
    }

    /// Allowed PUs of each node's cores, cores in order, for one node.
    fn node_cores(&self, node: usize) -> Vec<Vec<usize>> {
        self.cores
            .iter()
            .filter(|c| c.node == node)
            .map(|c| c.pus.intersection(&self.allowed).iter().collect::<Vec<_>>())
            .filter(|pus| !pus.is_empty())
            .collect()
    }

    fn compact_order(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .flat_map(|n| self.node_cores(n.id).into_iter().flatten())
            .collect()
    }

    fn scatter_order(&self) -> Vec<usize> {
        // Per node: the first PU of every core, then the second PU of every
        // core, and so on (SMT siblings last).
        let per_node: Vec<Vec<usize>> = self
            .nodes
            .iter()
            .map(|n| {
                let cores = self.node_cores(n.id);
                let depth = cores.iter().map(Vec::len).max().unwrap_or(0);
                (0..depth)
                    .flat_map(|k| cores.iter().filter_map(move |c| c.get(k).copied()))
                    .collect()
            })
            .filter(|v: &Vec<usize>| !v.is_empty())
            .collect();
        // Then round-robin across nodes.
        let longest = per_node.iter().map(Vec::len).max().unwrap_or(0);
        (0..longest)
            .flat_map(|k| per_node.iter().filter_map(move |v| v.get(k).copied()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 nodes x 2 cores x 2 SMT threads; siblings are n and n+4, like
    /// Linux numbers them.
    fn small() -> Topology {
        let raw = (0..8)
            .map(|cpu| RawPu {
                cpu,
                package: (cpu % 4) / 2,
                core_id: cpu % 2,
                node: (cpu % 4) / 2,
                core_key: None,
            })
            .collect();
        Topology::assemble(
            raw,
            vec![(0, Some(1 << 30)), (1, Some(1 << 30))],
            vec![vec![10, 21], vec![21, 10]],
            Backend::Sysfs,
        )
    }

    fn flat(plan: &[CpuSet]) -> Vec<usize> {
        plan.iter().map(|s| s.first().unwrap()).collect()
    }

    #[test]
    fn assemble_builds_siblings_and_nodes() {
        let t = small();
        assert_eq!(t.nodes().len(), 2);
        assert_eq!(t.node(0).unwrap().cpus.to_string(), "0-1,4-5");
        assert_eq!(t.packages().len(), 2);
        assert_eq!(t.cores().len(), 4);
        assert_eq!(t.pu(5).unwrap().siblings.to_string(), "1,5");
        assert_eq!(t.distance(0, 1), Some(21));
        assert_eq!(t.distance(0, 7), None);
    }

    #[test]
    fn cores_are_split_by_node_and_sibling_key() {
        // One package, two nodes reusing core_id 0 and 1; siblings n, n+4.
        let raw = |keyed: bool| -> Vec<RawPu> {
            (0..8)
                .map(|cpu| RawPu {
                    cpu,
                    package: 0,
                    core_id: cpu % 2,
                    node: (cpu % 4) / 2,
                    core_key: keyed.then_some(cpu % 4),
                })
                .collect()
        };
        for keyed in [true, false] {
            let t = Topology::assemble(
                raw(keyed),
                vec![(0, None), (1, None)],
                vec![],
                Backend::Sysfs,
            );
            assert_eq!(t.cores().len(), 4, "keyed: {keyed}");
            for core in t.cores() {
                assert!(
                    core.pus
                        .iter()
                        .all(|cpu| t.node_of_cpu(cpu) == Some(core.node))
                );
            }
            assert_eq!(t.pu(6).unwrap().siblings.to_string(), "2,6");
            assert_eq!(
                flat(&t.plan(8, Placement::Compact).unwrap()),
                [0, 4, 1, 5, 2, 6, 3, 7]
            );
        }
    }

    #[test]
    fn compact_fills_cores_then_nodes() {
        let t = small();
        assert_eq!(
            flat(&t.plan(8, Placement::Compact).unwrap()),
            [0, 4, 1, 5, 2, 6, 3, 7]
        );
    }

    #[test]
    fn scatter_spreads_nodes_then_cores_then_siblings() {
        let t = small();
        assert_eq!(
            flat(&t.plan(8, Placement::Scatter).unwrap()),
            [0, 2, 1, 3, 4, 6, 5, 7]
        );
        // Wraps around with more workers than CPUs.
        assert_eq!(flat(&t.plan(10, Placement::Scatter).unwrap())[8..], [0, 2]);
    }

    #[test]
    fn plans_respect_allowed_cpus() {
        let allowed: CpuSet = "1-3".parse().unwrap();
        let t = small().with_allowed(&allowed).unwrap();
        assert_eq!(flat(&t.plan(3, Placement::Compact).unwrap()), [1, 2, 3]);
        assert_eq!(flat(&t.plan(3, Placement::Scatter).unwrap()), [1, 2, 3]);
        let node = t.plan(2, Placement::Node(1)).unwrap();
        assert_eq!(node, vec!["2-3".parse::<CpuSet>().unwrap(); 2]);
        assert!(matches!(
            t.check_cpu(5),
            Err(NumaError::CpuNotAllowed { cpu: 5, .. })
        ));
        assert!(matches!(
            t.check_cpu(50),
            Err(NumaError::NoSuchCpu { cpu: 50, .. })
        ));
    }

    #[test]
    fn plan_errors() {
        let t = small();
        assert!(matches!(
            t.plan(0, Placement::Compact),
            Err(NumaError::ZeroWorkers)
        ));
        let err = t.plan(1, Placement::Node(99)).unwrap_err();
        assert!(matches!(err, NumaError::NoSuchNode { node: 99, .. }));
        assert!(err.to_string().contains("99"));
        let only0 = small().with_allowed(&"0".parse().unwrap()).unwrap();
        assert!(matches!(
            only0.plan(1, Placement::Node(1)),
            Err(NumaError::NodeNotAllowed { node: 1 })
        ));
        assert!(matches!(
            small().with_allowed(&"99".parse().unwrap()),
            Err(NumaError::EmptyCpuSet)
        ));
    }
}
