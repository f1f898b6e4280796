//! The one place this crate takes its synchronisation primitives from.
//!
//! Under `--cfg loom` the atomics, `Mutex`, `Condvar`, threads (spawn,
//! park, unpark, thread-locals) and the back-off come from loom, so the
//! whole pool (registry, worker loop, sleep protocol, latches, handles)
//! builds under loom and `tests/loom_*.rs` model-check the code users run;
//! otherwise they are `std` atomics and threads and `parking_lot` locks.
//! The wrappers give both the same small API (`lock()` returns a guard,
//! `Condvar::wait` takes and returns the guard), so the protocol code is
//! written once.
//!
//! `Arc` and `UnsafeCell` stay `std` under loom: the `Arc`s hold the
//! registry and user hooks (`Arc<dyn Fn>`, which loom's `Arc` cannot hold),
//! and the cells are ordered by the latches and handles whose atomics loom
//! does see. crossbeam-deque's own atomics are not modelled (each deque
//! operation is one step to loom); the deques carry their own verification.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

pub(crate) use std::cell::UnsafeCell;
pub(crate) use std::sync::Arc;

/// Threads: `std`'s, or loom's under `cfg(loom)`.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{Builder, JoinHandle, Thread, current, park};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{Builder, JoinHandle, Thread, current, park};
    pub(crate) use std::thread::{Result, available_parallelism};
}

/// A thread-local with a `const` initialiser (loom's take a plain one).
macro_rules! const_thread_local {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$attr])* static $name: $ty = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$attr])* static $name: $ty = $init; }
    };
}
pub(crate) use const_thread_local;

/// A job's trip through a crossbeam deque, as loom sees it. The deques
/// order a job's contents before whoever pops or steals it, but loom does
/// not see their atomics; these two calls stand for that hand-off (a
/// Release when a job reference is made, before it is pushed, and an
/// Acquire when it is executed, after it was taken), so a job's captured
/// state is ordered for loom as it is for the real deques. No-ops outside
/// loom.
#[cfg(loom)]
pub(crate) fn job_published() {
    JOB_HANDOFF.fetch_add(1, Ordering::Release);
}

/// See [`job_published`].
#[cfg(loom)]
pub(crate) fn job_received() {
    JOB_HANDOFF.load(Ordering::Acquire);
}

#[cfg(loom)]
loom::lazy_static! {
    static ref JOB_HANDOFF: AtomicUsize = AtomicUsize::new(0);
}

/// See [`job_published`].
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn job_published() {}

/// See [`job_published`].
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn job_received() {}

/// The workers' back-off: crossbeam's spin-then-yield outside loom; under
/// loom it is spent at once (a worker goes straight to its last look and
/// sleep, keeping models small) and a snooze is a loom yield.
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
    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
    pub(crate) fn is_completed(&self) -> bool {
        true
    }
    pub(crate) fn reset(&self) {}
}

/// A mutual-exclusion lock with the same API under loom and std.
#[derive(Debug)]
pub(crate) struct Mutex<T> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
}

/// The guard [`Mutex::lock`] returns.
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
/// The guard [`Mutex::lock`] returns.
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
        }
    }

    /// Locks the mutex. No user code ever runs while one of this crate's
    /// locks is held, so poisoning cannot happen; it is ignored anyway.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        {
            self.inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
    }
}

/// A condition variable with the same API under loom and std.
#[derive(Debug, Default)]
pub(crate) struct Condvar {
    #[cfg(loom)]
    inner: loom::sync::Condvar,
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Atomically unlocks `guard`'s mutex and sleeps until notified (or a
    /// spurious wake-up); returns with the mutex locked again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(loom)]
        {
            self.inner
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        #[cfg(not(loom))]
        {
            let mut guard = guard;
            self.inner.wait(&mut guard);
            guard
        }
    }

    /// Wakes one waiter, if any.
    pub(crate) fn notify_one(&self) {
        self.inner.notify_one();
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        self.inner.notify_all();
    }
}
