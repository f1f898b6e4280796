//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Each variant names the CPU, node, file or system call involved, so the
/// message alone says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NumaError {
    /// A file of the sysfs tree could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A sysfs file held something this crate cannot parse.
    #[error("cannot parse {what} {text:?}: {reason}")]
    Parse {
        /// What was being parsed (for example `cpulist`).
        what: &'static str,
        /// The offending text.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The topology lists no CPU at all.
    #[error("the topology at {root} lists no online CPU")]
    NoCpus {
        /// The sysfs root that was read.
        root: PathBuf,
    },
    /// A CPU id that is not part of the machine.
    #[error("CPU {cpu} does not exist (existing CPUs: {existing})")]
    NoSuchCpu {
        /// The CPU that was asked for.
        cpu: usize,
        /// The CPUs that exist, as a cpulist.
        existing: String,
    },
    /// A CPU that exists but that this process may not run on.
    #[error("CPU {cpu} exists but is outside this process's allowed CPUs ({allowed})")]
    CpuNotAllowed {
        /// The CPU that was asked for.
        cpu: usize,
        /// The allowed CPUs, as a cpulist.
        allowed: String,
    },
    /// A CPU id above what the affinity system calls can express.
    #[error("CPU {cpu} is beyond the largest CPU id the affinity calls support ({max})")]
    CpuOutOfRange {
        /// The CPU that was asked for.
        cpu: usize,
        /// The largest supported CPU id.
        max: usize,
    },
    /// A NUMA node id that is not part of the machine.
    #[error("NUMA node {node} does not exist (existing nodes: {existing})")]
    NoSuchNode {
        /// The node that was asked for.
        node: usize,
        /// The nodes that exist, as a list.
        existing: String,
    },
    /// A NUMA node none of whose CPUs this process may run on.
    #[error("NUMA node {node} has no CPU this process may run on")]
    NodeNotAllowed {
        /// The node that was asked for.
        node: usize,
    },
    /// A NUMA node id above what the memory-policy calls can express.
    #[error("NUMA node {node} is beyond the largest node id supported ({max})")]
    NodeOutOfRange {
        /// The node that was asked for.
        node: usize,
        /// The largest supported node id.
        max: usize,
    },
    /// An empty CPU set was given where at least one CPU is needed.
    #[error("the CPU set is empty")]
    EmptyCpuSet,
    /// An empty node list was given where at least one node is needed.
    #[error("the node list is empty")]
    EmptyNodeSet,
    /// A placement plan for zero workers was asked for.
    #[error("a placement plan needs at least one worker")]
    ZeroWorkers,
    /// A memory region of zero bytes was asked for.
    #[error("a memory region needs at least one byte")]
    ZeroLength,
    /// A system call failed; `errno` is kept as the source.
    ///
    /// `EPERM` from `mbind` inside a container and `ENOSYS` on a kernel
    /// without NUMA support arrive here: they are never hidden.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The system call (or libc function) that failed.
        call: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// The hwloc backend failed.
    #[cfg(feature = "hwloc")]
    #[error("hwloc: {0}")]
    Hwloc(String),
}

impl NumaError {
    /// The last OS error, attributed to `call`.
    pub(crate) fn last_os(call: &'static str) -> Self {
        NumaError::Syscall {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// The raw `errno` of a failed system call, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NumaError::Syscall { source, .. } | NumaError::Io { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}
