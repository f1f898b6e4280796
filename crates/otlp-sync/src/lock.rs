//! Locks: parking_lot's, re-exported, plus instrumented wrappers that record
//! contention (Go's mutex profile, for Rust).
//!
//! # What is measured, and what it costs
//!
//! Every acquisition first tries the lock without waiting. If that fails the
//! acquisition is *contended*: the time until the lock is obtained is
//! measured with [`Instant`] and added to the wait statistics. Uncontended
//! acquisitions never read the clock.
//!
//! Hold times need two clock reads per acquisition, which would cost more
//! than the lock itself (a parking_lot lock/unlock pair is ~5 ns; a clock
//! read is ~20 ns on bare metal and was measured at ~110 ns on the
//! virtual machine the benchmarks ran on), so hold times are *sampled*:
//! every contended acquisition and one uncontended acquisition in
//! `sample_every` (1024 by default) are timed. [`LockStats::hold_samples`] says how many holds the hold figures
//! are based on.
//!
//! For [`InstrumentedMutex`] (and the write side of
//! [`InstrumentedRwLock`]) the counters are only written while the lock is
//! held, so they are plain loads and stores of relaxed atomics, no
//! read-modify-write: the uncontended overhead is one counter bump and one
//! branch. Readers of an `InstrumentedRwLock` share the lock, so the read
//! side counts with atomic `fetch_add`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::loom::{Ordering, StatCounter as AtomicU64};

pub use parking_lot::{
    Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockUpgradableReadGuard, RwLockWriteGuard,
};

/// Default hold-time sampling: one uncontended acquisition in 1024.
pub const DEFAULT_SAMPLE_EVERY: u64 = 1024;

/// A snapshot of one lock's (or one side of an rwlock's) contention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Total time spent waiting in contended acquisitions.
    pub total_wait: Duration,
    /// Longest single wait.
    pub max_wait: Duration,
    /// Holds that were timed (every contended one plus a sample of the
    /// rest; see the module documentation).
    pub hold_samples: u64,
    /// Total time of the timed holds.
    pub total_hold: Duration,
    /// Longest timed hold.
    pub max_hold: Duration,
}

impl LockStats {
    /// `contended / acquisitions` (0 when never acquired).
    pub fn contention_ratio(&self) -> f64 {
        if self.acquisitions == 0 {
            0.0
        } else {
            self.contended as f64 / self.acquisitions as f64
        }
    }

    /// Mean wait of a contended acquisition.
    pub fn mean_wait(&self) -> Duration {
        mean(self.total_wait, self.contended)
    }

    /// Mean of the timed holds.
    pub fn mean_hold(&self) -> Duration {
        mean(self.total_hold, self.hold_samples)
    }
}

fn mean(total: Duration, n: u64) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let nanos = total.as_nanos() / u128::from(n);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The counters behind a [`LockStats`].
#[derive(Debug, Default)]
struct Counters {
    acquisitions: AtomicU64,
    contended: AtomicU64,
    wait_ns: AtomicU64,
    max_wait_ns: AtomicU64,
    hold_samples: AtomicU64,
    hold_ns: AtomicU64,
    max_hold_ns: AtomicU64,
}

/// Adds `v` to a counter only ever written by the exclusive lock holder.
#[inline]
fn bump(counter: &AtomicU64, v: u64) -> u64 {
    let new = counter.load(Ordering::Relaxed).wrapping_add(v);
    counter.store(new, Ordering::Relaxed);
    new
}

#[inline]
fn raise(counter: &AtomicU64, v: u64) {
    if v > counter.load(Ordering::Relaxed) {
        counter.store(v, Ordering::Relaxed);
    }
}

impl Counters {
    fn snapshot(&self) -> LockStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LockStats {
            acquisitions: get(&self.acquisitions),
            contended: get(&self.contended),
            total_wait: Duration::from_nanos(get(&self.wait_ns)),
            max_wait: Duration::from_nanos(get(&self.max_wait_ns)),
            hold_samples: get(&self.hold_samples),
            total_hold: Duration::from_nanos(get(&self.hold_ns)),
            max_hold: Duration::from_nanos(get(&self.max_hold_ns)),
        }
    }

    fn reset(&self) {
        for c in [
            &self.acquisitions,
            &self.contended,
            &self.wait_ns,
            &self.max_wait_ns,
            &self.hold_samples,
            &self.hold_ns,
            &self.max_hold_ns,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Records an exclusive acquisition (caller holds the lock). Returns the
    /// start of the hold if this hold is to be timed.
    #[inline]
    fn exclusive_acquired(&self, waited: Option<Duration>, mask: u64) -> Option<Instant> {
        let n = bump(&self.acquisitions, 1);
        match waited {
            None if n & mask != 0 => None,
            None => Some(Instant::now()),
            Some(wait) => {
                bump(&self.contended, 1);
                bump(&self.wait_ns, nanos(wait));
                raise(&self.max_wait_ns, nanos(wait));
                Some(Instant::now())
            }
        }
    }

    /// Records the end of a timed exclusive hold (caller still holds it).
    fn exclusive_released(&self, since: Instant) {
        let held = nanos(since.elapsed());
        bump(&self.hold_samples, 1);
        bump(&self.hold_ns, held);
        raise(&self.max_hold_ns, held);
    }

    /// Records a shared acquisition (many holders at once: atomic RMW).
    #[inline]
    fn shared_acquired(&self, waited: Option<Duration>, mask: u64) -> Option<Instant> {
        let n = self
            .acquisitions
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        match waited {
            None if n & mask != 0 => None,
            None => Some(Instant::now()),
            Some(wait) => {
                self.contended.fetch_add(1, Ordering::Relaxed);
                self.wait_ns.fetch_add(nanos(wait), Ordering::Relaxed);
                self.max_wait_ns.fetch_max(nanos(wait), Ordering::Relaxed);
                Some(Instant::now())
            }
        }
    }

    fn shared_released(&self, since: Instant) {
        let held = nanos(since.elapsed());
        self.hold_samples.fetch_add(1, Ordering::Relaxed);
        self.hold_ns.fetch_add(held, Ordering::Relaxed);
        self.max_hold_ns.fetch_max(held, Ordering::Relaxed);
    }
}

/// The sparsest hold sampling: the largest power of two a `u64` holds.
/// `with_sampling` clamps larger `every` values (up to `u64::MAX`) to it
/// rather than overflow while rounding up.
const MAX_SAMPLE_EVERY: u64 = 1 << 63;

/// `every`, clamped to `1..=MAX_SAMPLE_EVERY` and rounded up to a power of
/// two, as a mask: acquisition `n` is timed when `n & mask == 0`.
fn sample_mask(every: u64) -> u64 {
    every.clamp(1, MAX_SAMPLE_EVERY).next_power_of_two() - 1
}

/// A `parking_lot::Mutex` that records contention in [`LockStats`].
///
/// As with parking_lot's mutex, `Debug` formats the value only if the lock
/// is free (`try_lock`), and `T`'s `Debug` runs while it is held: it must
/// not lock the same mutex.
///
/// ```
/// use otlp_sync::InstrumentedMutex;
///
/// let m = InstrumentedMutex::new(0_u64);
/// *m.lock() += 1;
/// let stats = m.stats();
/// assert_eq!((stats.acquisitions, stats.contended), (1, 0));
/// ```
pub struct InstrumentedMutex<T: ?Sized> {
    counters: Counters,
    mask: u64,
    inner: Mutex<T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InstrumentedMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedMutex")
            .field("inner", &&self.inner)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Default> Default for InstrumentedMutex<T> {
    fn default() -> Self {
        InstrumentedMutex::new(T::default())
    }
}

impl<T> From<T> for InstrumentedMutex<T> {
    fn from(value: T) -> Self {
        InstrumentedMutex::new(value)
    }
}

impl<T> InstrumentedMutex<T> {
    /// A mutex timing one uncontended hold in [`DEFAULT_SAMPLE_EVERY`].
    pub fn new(value: T) -> Self {
        Self::with_sampling(value, DEFAULT_SAMPLE_EVERY)
    }

    /// A mutex timing one uncontended hold in `every` (rounded up to a
    /// power of two; 1 times every hold, at ~40 ns per acquisition; 0 counts
    /// as 1). Values above 2^63, up to `u64::MAX`, are clamped to 2^63: in
    /// practice only contended holds are timed then.
    pub fn with_sampling(value: T, every: u64) -> Self {
        InstrumentedMutex {
            counters: Counters::default(),
            mask: sample_mask(every),
            inner: Mutex::new(value),
        }
    }

    /// Consumes the mutex, returning the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> InstrumentedMutex<T> {
    /// Locks, blocking until the lock is free.
    #[inline]
    pub fn lock(&self) -> InstrumentedMutexGuard<'_, T> {
        let (guard, waited) = match self.inner.try_lock() {
            Some(guard) => (guard, None),
            None => {
                let start = Instant::now();
                let guard = self.inner.lock();
                (guard, Some(start.elapsed()))
            }
        };
        self.guard(guard, waited)
    }

    /// Locks if free now.
    pub fn try_lock(&self) -> Option<InstrumentedMutexGuard<'_, T>> {
        let guard = self.inner.try_lock()?;
        Some(self.guard(guard, None))
    }

    /// Locks, waiting at most `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<InstrumentedMutexGuard<'_, T>> {
        if let Some(guard) = self.inner.try_lock() {
            return Some(self.guard(guard, None));
        }
        let start = Instant::now();
        let guard = self.inner.try_lock_for(timeout)?;
        Some(self.guard(guard, Some(start.elapsed())))
    }

    #[inline]
    fn guard<'a>(
        &'a self,
        guard: MutexGuard<'a, T>,
        waited: Option<Duration>,
    ) -> InstrumentedMutexGuard<'a, T> {
        let since = self.counters.exclusive_acquired(waited, self.mask);
        InstrumentedMutexGuard {
            counters: &self.counters,
            since,
            guard,
        }
    }

    /// Mutable access without locking (the `&mut` proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> LockStats {
        self.counters.snapshot()
    }

    /// Zeroes the statistics (takes the lock, so no holder is mid-update).
    pub fn reset_stats(&self) {
        let _guard = self.inner.lock();
        self.counters.reset();
    }
}

/// Guard of an [`InstrumentedMutex`].
#[must_use = "if unused the mutex unlocks immediately"]
pub struct InstrumentedMutexGuard<'a, T: ?Sized> {
    counters: &'a Counters,
    since: Option<Instant>,
    // Dropped after `Drop::drop` ran, so the hold is recorded while the lock
    // is still held (the counters are written only by the holder).
    guard: MutexGuard<'a, T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InstrumentedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.guard, f)
    }
}

impl<T: ?Sized> Deref for InstrumentedMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for InstrumentedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for InstrumentedMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(since) = self.since {
            self.counters.exclusive_released(since);
        }
    }
}

/// Read and write statistics of an [`InstrumentedRwLock`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RwLockStats {
    /// Shared (read) acquisitions.
    pub read: LockStats,
    /// Exclusive (write) acquisitions.
    pub write: LockStats,
}

/// A `parking_lot::RwLock` that records contention for readers and writers
/// separately.
///
/// `Debug` formats the value under a `try_read`, as parking_lot's does, so
/// `T`'s `Debug` must not take the write lock of the same rwlock.
///
/// ```
/// use otlp_sync::InstrumentedRwLock;
///
/// let l = InstrumentedRwLock::new(vec![1, 2]);
/// assert_eq!(l.read().len(), 2);
/// l.write().push(3);
/// let stats = l.stats();
/// assert_eq!((stats.read.acquisitions, stats.write.acquisitions), (1, 1));
/// ```
pub struct InstrumentedRwLock<T: ?Sized> {
    read: Counters,
    write: Counters,
    mask: u64,
    inner: RwLock<T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InstrumentedRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedRwLock")
            .field("inner", &&self.inner)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Default> Default for InstrumentedRwLock<T> {
    fn default() -> Self {
        InstrumentedRwLock::new(T::default())
    }
}

impl<T> From<T> for InstrumentedRwLock<T> {
    fn from(value: T) -> Self {
        InstrumentedRwLock::new(value)
    }
}

impl<T> InstrumentedRwLock<T> {
    /// An rwlock timing one uncontended hold in [`DEFAULT_SAMPLE_EVERY`].
    pub fn new(value: T) -> Self {
        Self::with_sampling(value, DEFAULT_SAMPLE_EVERY)
    }

    /// An rwlock timing one uncontended hold in `every`, rounded and clamped
    /// as in [`InstrumentedMutex::with_sampling`].
    pub fn with_sampling(value: T, every: u64) -> Self {
        InstrumentedRwLock {
            read: Counters::default(),
            write: Counters::default(),
            mask: sample_mask(every),
            inner: RwLock::new(value),
        }
    }

    /// Consumes the lock, returning the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> InstrumentedRwLock<T> {
    /// Shared access, blocking while a writer holds the lock.
    pub fn read(&self) -> InstrumentedReadGuard<'_, T> {
        let (guard, waited) = match self.inner.try_read() {
            Some(guard) => (guard, None),
            None => {
                let start = Instant::now();
                let guard = self.inner.read();
                (guard, Some(start.elapsed()))
            }
        };
        let since = self.read.shared_acquired(waited, self.mask);
        InstrumentedReadGuard {
            counters: &self.read,
            since,
            guard,
        }
    }

    /// Shared access if available now.
    pub fn try_read(&self) -> Option<InstrumentedReadGuard<'_, T>> {
        let guard = self.inner.try_read()?;
        let since = self.read.shared_acquired(None, self.mask);
        Some(InstrumentedReadGuard {
            counters: &self.read,
            since,
            guard,
        })
    }

    /// Exclusive access, blocking while anyone holds the lock.
    pub fn write(&self) -> InstrumentedWriteGuard<'_, T> {
        let (guard, waited) = match self.inner.try_write() {
            Some(guard) => (guard, None),
            None => {
                let start = Instant::now();
                let guard = self.inner.write();
                (guard, Some(start.elapsed()))
            }
        };
        let since = self.write.exclusive_acquired(waited, self.mask);
        InstrumentedWriteGuard {
            counters: &self.write,
            since,
            guard,
        }
    }

    /// Exclusive access if available now.
    pub fn try_write(&self) -> Option<InstrumentedWriteGuard<'_, T>> {
        let guard = self.inner.try_write()?;
        let since = self.write.exclusive_acquired(None, self.mask);
        Some(InstrumentedWriteGuard {
            counters: &self.write,
            since,
            guard,
        })
    }

    /// Mutable access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// A snapshot of the read and write statistics.
    pub fn stats(&self) -> RwLockStats {
        RwLockStats {
            read: self.read.snapshot(),
            write: self.write.snapshot(),
        }
    }

    /// Zeroes the statistics (takes the write lock).
    pub fn reset_stats(&self) {
        let _guard = self.inner.write();
        self.read.reset();
        self.write.reset();
    }
}

/// Shared guard of an [`InstrumentedRwLock`].
#[must_use = "if unused the lock is released immediately"]
pub struct InstrumentedReadGuard<'a, T: ?Sized> {
    counters: &'a Counters,
    since: Option<Instant>,
    guard: RwLockReadGuard<'a, T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InstrumentedReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.guard, f)
    }
}

impl<T: ?Sized> Deref for InstrumentedReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> Drop for InstrumentedReadGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            self.counters.shared_released(since);
        }
    }
}

/// Exclusive guard of an [`InstrumentedRwLock`].
#[must_use = "if unused the lock is released immediately"]
pub struct InstrumentedWriteGuard<'a, T: ?Sized> {
    counters: &'a Counters,
    since: Option<Instant>,
    guard: RwLockWriteGuard<'a, T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InstrumentedWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.guard, f)
    }
}

impl<T: ?Sized> Deref for InstrumentedWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for InstrumentedWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for InstrumentedWriteGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            self.counters.exclusive_released(since);
        }
    }
}
