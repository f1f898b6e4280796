//! The loom facade: std atomics normally, loom's under `cfg(loom)`. Code
//! outside this module never imports `std::sync::atomic` directly.

#[cfg(loom)]
#[allow(unused_imports)] // AtomicUsize is used by the allocator, not built under loom
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, compiler_fence};
