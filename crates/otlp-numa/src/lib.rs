//! NUMA topology, CPU pinning, worker placement plans, node-bound memory and
//! a truthful NUMA-aware allocator.
//!
//! (Crate documentation is being completed; see `docs/numa.md`.)
//!
//! ```
//! use otlp_numa::{Placement, Topology};
//! let topo = Topology::detect().unwrap();
//! let plan = topo.plan(2, Placement::Scatter).unwrap();
//! assert_eq!(plan.len(), 2);
//! ```

mod affinity;
mod alloc;
mod cpuset;
mod error;
#[cfg(feature = "hwloc")]
mod hwloc;
mod memory;
mod sysfs;
mod topology;

pub use affinity::{
    MAX_AFFINITY_CPU, current_affinity, current_cpu, current_cpu_and_node,
    current_cpu_and_node_syscall, current_node, pin_current_thread,
};
pub use alloc::{
    AllocationStats, MAX_TRACKED_NODES, NODE_REFRESH_INTERVAL, NodeAllocStats, NumaAwareAllocator,
    THREAD_SLOTS,
};
pub use cpuset::{CpuSet, Iter as CpuSetIter, MAX_PARSED_CPU};
pub use error::NumaError;
pub use memory::{
    MAX_NODE, MPOL_BIND, MPOL_DEFAULT, MPOL_F_ADDR, MPOL_F_NODE, MPOL_INTERLEAVE, MPOL_MF_MOVE,
    MPOL_MF_STRICT, MPOL_PREFERRED, MemPolicy, NodeMemory, online_nodes, page_node, page_size,
    query_pages,
};
pub use topology::{Backend, Core, NumaNode, Package, Placement, Pu, Topology};
