//! The one place that chooses between `std` and `loom` primitives.
//!
//! Everything in this crate that takes part in an atomic protocol imports
//! its atomics, cells and spin helpers from here, so `RUSTFLAGS="--cfg loom
//! --cfg crossbeam_loom"` swaps the whole crate onto loom's model checker.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(loom)]
pub(crate) use loom::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `thread_local!` with a `const` initialiser outside loom (no lazy-init
/// check on access, and no destructor for types that need none), and loom's
/// `thread_local!` under loom, which has no `const` form.
macro_rules! const_thread_local {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$attr])* static $name: $ty = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$attr])* static $name: $ty = $init; }
    };
}
pub(crate) use const_thread_local;

/// `UnsafeCell` with loom's closure-based API, so the same code compiles
/// against both `std` and loom.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Spin/yield helper used inside retry loops.
///
/// Outside loom this is crossbeam-utils' [`Backoff`](crossbeam_utils::Backoff).
/// Under loom every retry must be a visible yield point, and crossbeam's
/// `snooze` ends in `std::thread::yield_now` (invisible to loom), so the loom
/// build uses a stand-in that yields to the model checker on every call.
#[cfg(not(loom))]
pub(crate) type Backoff = crossbeam_utils::Backoff;

#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Backoff;

#[cfg(loom)]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff
    }
    pub(crate) fn spin(&self) {
        loom::thread::yield_now();
    }
    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
    #[allow(dead_code)]
    pub(crate) fn is_completed(&self) -> bool {
        true
    }
}
