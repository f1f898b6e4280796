//! A weighted, FIFO-fair semaphore for blocking and async code.
//!
//! # Protocol
//!
//! One atomic word holds `available << 2 | WAITERS | CLOSED`. A lock-protected
//! FIFO list holds the waiters. The invariant that makes the fast paths fair is
//!
//! > while the `WAITERS` bit is set, `available` is 0,
//!
//! because every permit released while somebody waits is *assigned* to the
//! head of the queue under the lock (partially, if the head wants more than
//! was released) instead of being put back in the word. So:
//!
//! * `try_acquire` / the first poll of `acquire` is one CAS on the word when
//!   nobody waits; when somebody waits there is nothing in the word to take,
//!   and the request joins the back of the queue. A large request at the head
//!   collects permits as they come back and cannot be overtaken by small ones.
//! * `release` is one CAS when the `WAITERS` bit is clear, and otherwise takes
//!   the lock and hands permits out in queue order; the waiter that clears
//!   the queue puts the remainder back in the word and clears the bit.
//! * A waiter that gives up (a dropped future, a timed-out blocking call)
//!   unlinks itself under the lock and passes the permits it had already been
//!   assigned on to the next waiters, so cancellation loses neither permits
//!   nor wake-ups.
//!
//! The waiter list is a slab of slots linked by index (no allocation per
//! wait once the slab has grown, no `unsafe`).
//!
//! # No user code under the lock
//!
//! Cloning, waking and dropping a [`Waker`] run code of whoever built it, and
//! that code may call back into the semaphore (a waker that owns a permit
//! releases it when dropped, as in tokio's `release_permits_at_drop` test).
//! The waiter lock is not reentrant, so none of that happens while it is
//! held: a waker is cloned before the lock is taken, and every waker the
//! lock's critical section displaces (replaced by a re-poll with another
//! waker, removed by a cancelled waiter, granted, closed) is moved out and
//! woken or dropped after the lock is released.
//!
//! # Requests larger than the semaphore
//!
//! A request for more permits than the semaphore owns right now waits (at
//! the head of the queue, collecting permits) until
//! [`add_permits`](Semaphore::add_permits) makes it possible, as tokio's
//! semaphore does; `Semaphore::new(0)` is a gate opened later. Only a request
//! above [`MAX_PERMITS`], which no semaphore can ever hold, fails with
//! [`AcquireError::TooLarge`]. Code that would rather refuse a request the
//! current budget can never meet compares it with
//! [`total`](Semaphore::total) first.

use std::fmt;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::{AtomicUsize, Mutex, Ordering};
use crate::park::{SpinParker, WakeList};

const CLOSED: usize = 1;
const WAITERS: usize = 2;
const SHIFT: u32 = 2;
const NIL: usize = usize::MAX;

/// The most permits one semaphore can hold (`usize::MAX >> 3`; the low bits
/// of the state word hold flags).
pub const MAX_PERMITS: usize = usize::MAX >> 3;

/// Why a permit could not be acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The semaphore was closed (before or while waiting). Takes precedence
    /// over every other error.
    #[error("semaphore closed")]
    Closed,
    /// The request is larger than [`MAX_PERMITS`], so no semaphore could
    /// ever grant it. Returned immediately rather than hanging. (A request
    /// that is only larger than what the semaphore owns *now* waits for
    /// [`Semaphore::add_permits`] instead; see the
    /// [module documentation](self#requests-larger-than-the-semaphore).)
    #[error("requested {requested} permits, more than any semaphore can hold ({max})")]
    TooLarge {
        /// Permits asked for.
        requested: usize,
        /// [`MAX_PERMITS`].
        max: usize,
    },
    /// `try_acquire`: not enough permits are available right now (or other
    /// waiters are queued ahead, and fairness keeps them first).
    #[error("not enough permits available right now")]
    WouldBlock,
    /// `acquire_timeout`: the deadline passed first. No permits are held.
    #[error("timed out waiting for permits")]
    Timeout,
    /// An async acquire future (`Acquire`, `AcquireOwned`) was polled again
    /// after it had already returned `Ready`. The first result stands (a permit it
    /// returned is still valid); nothing was acquired by this poll, and the
    /// semaphore is not affected.
    #[error("acquire future polled after it completed")]
    PolledAfterCompletion,
}

/// Errors of the semaphore's non-acquiring operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// The semaphore would own more than [`MAX_PERMITS`] permits.
    #[error("semaphore would own {requested} permits, more than the maximum {max}")]
    TooManyPermits {
        /// Permits the semaphore would have owned.
        requested: usize,
        /// [`MAX_PERMITS`].
        max: usize,
    },
    /// `Permit::split` asked for more permits than the permit holds.
    #[error("cannot split {requested} permits off a permit holding {held}")]
    SplitTooLarge {
        /// Permits asked for.
        requested: usize,
        /// Permits held.
        held: usize,
    },
}

/// `Permit::merge` was given a permit of another semaphore; the permit is
/// handed back untouched.
#[derive(thiserror::Error)]
#[error("cannot merge permits of different semaphores")]
pub struct MergeError<P>(
    /// The rejected permit.
    pub P,
);

impl<P> fmt::Debug for MergeError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MergeError(..)")
    }
}

/// A weighted, FIFO-fair counting semaphore usable from async and blocking
/// code.
///
/// See the [module documentation](self) for the protocol. Acquire with
/// [`acquire`](Self::acquire) (async, cancel-safe),
/// [`acquire_blocking`](Self::acquire_blocking),
/// [`acquire_timeout`](Self::acquire_timeout) or
/// [`try_acquire`](Self::try_acquire); the owned variants take
/// `self: &Arc<Self>` and return an [`OwnedPermit`] that can move into
/// another thread or task.
///
/// ```
/// use otlp_sync::Semaphore;
///
/// let sem = Semaphore::new(3).unwrap();
/// let a = sem.try_acquire(2).unwrap();
/// assert_eq!(sem.available(), 1);
/// assert!(sem.try_acquire(2).is_err());
/// drop(a);
/// assert_eq!(sem.available(), 3);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    total: AtomicUsize,
    waiters: Mutex<WaitList>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .field("total", &self.total())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Semaphore {
    /// Creates a semaphore owning `permits` permits (0 is allowed: a gate
    /// opened later with [`add_permits`](Self::add_permits); acquires wait
    /// until then).
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::TooManyPermits`] if `permits > MAX_PERMITS`.
    pub fn new(permits: usize) -> Result<Self, SemaphoreError> {
        if permits > MAX_PERMITS {
            return Err(SemaphoreError::TooManyPermits {
                requested: permits,
                max: MAX_PERMITS,
            });
        }
        Ok(Semaphore {
            state: AtomicUsize::new(permits << SHIFT),
            total: AtomicUsize::new(permits),
            waiters: Mutex::new(WaitList::new()),
        })
    }

    /// Permits available right now (not held, not assigned to a waiter).
    pub fn available(&self) -> usize {
        self.state.load(Ordering::Acquire) >> SHIFT
    }

    /// Permits the semaphore owns: available plus held plus those already
    /// assigned to queued waiters. Grows with
    /// [`add_permits`](Self::add_permits), shrinks with [`Permit::forget`].
    /// A request above it waits for `add_permits`; compare with it first to
    /// refuse such a request instead.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Number of queued waiters (a snapshot; takes the waiter lock).
    pub fn waiters(&self) -> usize {
        self.waiters.lock().len
    }

    /// Closes the semaphore: every queued waiter wakes with
    /// [`AcquireError::Closed`], and every later acquire fails with it.
    /// Permits already held stay valid and are returned on drop as usual.
    pub fn close(&self) {
        let mut wake = WakeList::new();
        {
            let mut list = self.waiters.lock();
            self.state.fetch_or(CLOSED, Ordering::AcqRel);
            let mut returned = 0;
            while list.head != NIL {
                let key = list.head;
                list.unlink(key);
                let slot = &mut list.slots[key];
                returned += slot.requested - slot.needed;
                slot.state = SlotState::Done(Err(AcquireError::Closed));
                wake.push(slot.waker.take());
            }
            self.finish_locked(&list, returned);
        }
        wake.wake_all();
    }

    /// Adds `n` permits (to waiters first, in queue order).
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::TooManyPermits`] if the semaphore would own more
    /// than [`MAX_PERMITS`]; nothing is added then.
    pub fn add_permits(&self, n: usize) -> Result<(), SemaphoreError> {
        let mut total = self.total.load(Ordering::Relaxed);
        loop {
            let new = match total.checked_add(n) {
                Some(new) if new <= MAX_PERMITS => new,
                _ => {
                    return Err(SemaphoreError::TooManyPermits {
                        requested: total.saturating_add(n),
                        max: MAX_PERMITS,
                    });
                }
            };
            match self
                .total
                .compare_exchange_weak(total, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => total = actual,
            }
        }
        self.release(n);
        Ok(())
    }

    /// Takes `n` permits if they are available now and nobody is queued
    /// ahead.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is closed (whatever `n`),
    /// else [`AcquireError::TooLarge`] if `n` exceeds [`MAX_PERMITS`], else
    /// [`AcquireError::WouldBlock`] (also when `n` exceeds
    /// [`total`](Self::total)).
    pub fn try_acquire(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        self.try_take(n).map(|()| Permit::new(self, n))
    }

    /// Like [`try_acquire`](Self::try_acquire), returning an [`OwnedPermit`].
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(self: &Arc<Self>, n: usize) -> Result<OwnedPermit, AcquireError> {
        self.try_take(n)
            .map(|()| OwnedPermit::new(Arc::clone(self), n))
    }

    /// Waits for `n` permits, blocking the thread. FIFO with every other
    /// waiter, async or blocking. A request above [`total`](Self::total)
    /// waits for [`add_permits`](Self::add_permits).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`], or [`AcquireError::TooLarge`] if `n`
    /// exceeds [`MAX_PERMITS`].
    pub fn acquire_blocking(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        self.wait_blocking(n, None).map(|()| Permit::new(self, n))
    }

    /// Waits at most `timeout` for `n` permits, blocking the thread. On
    /// timeout the request leaves the queue and any permits already assigned
    /// to it go to the next waiters.
    ///
    /// A timeout that has already passed when the permits are not free at
    /// once (`Duration::ZERO`) makes this a [`try_acquire`](Self::try_acquire)
    /// that reports [`AcquireError::Timeout`]: it never joins the queue, so
    /// it never takes free permits from the word on the way.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`], [`AcquireError::Closed`] or
    /// [`AcquireError::TooLarge`] (above [`MAX_PERMITS`]).
    pub fn acquire_timeout(&self, n: usize, timeout: Duration) -> Result<Permit<'_>, AcquireError> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_blocking(n, deadline)
            .map(|()| Permit::new(self, n))
    }

    /// Like [`acquire_blocking`](Self::acquire_blocking), returning an
    /// [`OwnedPermit`].
    ///
    /// # Errors
    ///
    /// As [`acquire_blocking`](Self::acquire_blocking).
    pub fn acquire_owned_blocking(self: &Arc<Self>, n: usize) -> Result<OwnedPermit, AcquireError> {
        self.wait_blocking(n, None)
            .map(|()| OwnedPermit::new(Arc::clone(self), n))
    }

    /// Like [`acquire_timeout`](Self::acquire_timeout), returning an
    /// [`OwnedPermit`].
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_owned_timeout(
        self: &Arc<Self>,
        n: usize,
        timeout: Duration,
    ) -> Result<OwnedPermit, AcquireError> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_blocking(n, deadline)
            .map(|()| OwnedPermit::new(Arc::clone(self), n))
    }

    /// Waits for `n` permits asynchronously.
    ///
    /// Cancel-safe: dropping the future before it completes leaves the queue
    /// and hands any permits already assigned to it to the next waiters. The
    /// future is runtime-agnostic; for a timeout wrap it, e.g. in
    /// `tokio::time::timeout`.
    ///
    /// A request above [`total`](Self::total) waits for
    /// [`add_permits`](Self::add_permits). Polling the future again after it
    /// returned `Ready` returns
    /// [`AcquireError::PolledAfterCompletion`] (it neither panics nor
    /// acquires anything a second time).
    ///
    /// # Errors
    ///
    /// The future resolves to [`AcquireError::Closed`] or, if `n` exceeds
    /// [`MAX_PERMITS`], [`AcquireError::TooLarge`].
    #[cfg(feature = "async")]
    pub fn acquire(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            waiter: Waiter::new(n),
        }
    }

    /// Like [`acquire`](Self::acquire), resolving to an [`OwnedPermit`] that
    /// can be moved into another task or thread.
    #[cfg(feature = "async")]
    pub fn acquire_owned(self: &Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: Some(Arc::clone(self)),
            waiter: Waiter::new(n),
        }
    }

    // ---- internals -------------------------------------------------------

    /// Rejects what no semaphore can ever grant. Closed wins over it, so the
    /// caller checks `CLOSED` first.
    fn check_size(n: usize) -> Result<(), AcquireError> {
        if n > MAX_PERMITS {
            Err(AcquireError::TooLarge {
                requested: n,
                max: MAX_PERMITS,
            })
        } else {
            Ok(())
        }
    }

    /// The lock-free fast path. `Ok(true)`: taken; `Ok(false)`: must queue.
    fn take_fast(&self, n: usize) -> Result<bool, AcquireError> {
        // This load only seeds the CAS loop: the successful CAS (AcqRel) is
        // what synchronises with the release that returned the permits, so
        // Relaxed would be correct here (`semaphore-take-fast-load` in
        // xtask's mutation list); the CAS's own orderings are not optional.
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & CLOSED != 0 {
                return Err(AcquireError::Closed);
            }
            if state & WAITERS != 0 || (state >> SHIFT) < n {
                return Ok(false);
            }
            match self.state.compare_exchange_weak(
                state,
                state - (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(true),
                Err(actual) => state = actual,
            }
        }
    }

    fn try_take(&self, n: usize) -> Result<(), AcquireError> {
        if self.is_closed() {
            return Err(AcquireError::Closed);
        }
        Self::check_size(n)?;
        if n == 0 {
            return Ok(());
        }
        match self.take_fast(n)? {
            true => Ok(()),
            false => Err(AcquireError::WouldBlock),
        }
    }

    /// Returns `n` permits: to the word if nobody waits, else to the queue.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut state = self.state.load(Ordering::Acquire);
        while state & WAITERS == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        let mut wake = WakeList::new();
        {
            let mut list = self.waiters.lock();
            self.release_locked(&mut list, n, &mut wake);
        }
        wake.wake_all();
    }

    /// Hands `n` permits to the queue in FIFO order; whatever is left (only
    /// possible once the queue is empty) goes back to the word.
    fn release_locked(&self, list: &mut WaitList, mut n: usize, wake: &mut WakeList) {
        while n > 0 && list.head != NIL {
            let key = list.head;
            let slot = &mut list.slots[key];
            let give = n.min(slot.needed);
            slot.needed -= give;
            n -= give;
            if slot.needed == 0 {
                slot.state = SlotState::Done(Ok(()));
                wake.push(slot.waker.take());
                list.unlink(key);
            }
        }
        self.finish_locked(list, n);
    }

    /// With the lock held: if the queue is empty, clear `WAITERS` and put
    /// `leftover` permits back in the word. (With waiters queued, `leftover`
    /// is always 0: `release_locked` gives everything to the queue.)
    fn finish_locked(&self, list: &WaitList, leftover: usize) {
        if list.head == NIL {
            let mut state = self.state.load(Ordering::Acquire);
            loop {
                let new = (state + (leftover << SHIFT)) & !WAITERS;
                match self.state.compare_exchange_weak(
                    state,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    Err(actual) => state = actual,
                }
            }
        } else {
            debug_assert_eq!(leftover, 0, "permits left over with waiters queued");
        }
    }

    /// `Permit::forget`: the permits leave the semaphore for good. Queued
    /// requests above the new total keep waiting (for `add_permits`), as
    /// any request above the total does, so nothing else changes.
    fn forget_permits(&self, n: usize) {
        if n > 0 {
            self.total.fetch_sub(n, Ordering::AcqRel);
        }
    }

    fn wait_blocking(&self, n: usize, deadline: Option<Instant>) -> Result<(), AcquireError> {
        let mut waiter = Waiter::new(n);
        // Fast path without touching the thread-local waker.
        if let Poll::Ready(result) = waiter.poll_fast(self) {
            return result;
        }
        // A deadline already passed (a zero timeout) makes this a
        // `try_acquire`: joining the queue would take the free permits out of
        // the word and hold up later requests until the cancel.
        if crate::loom::expired(deadline) {
            return Err(AcquireError::Timeout);
        }
        // Spin briefly before parking: a FIFO hand-off usually arrives within
        // the releaser's next few instructions, and a waiter that is still
        // spinning is granted with one atomic swap instead of a futex wake.
        let parker = SpinParker::current();
        let waker = parker.waker();
        loop {
            if let Poll::Ready(result) = waiter.poll(self, &waker) {
                return result;
            }
            if crate::loom::expired(deadline) {
                return match waiter.cancel(self) {
                    Some(result) => result,
                    None => Err(AcquireError::Timeout),
                };
            }
            parker.wait(deadline);
        }
    }
}

// ---- waiter list ----------------------------------------------------------

#[derive(Debug)]
enum SlotState {
    Vacant,
    Queued,
    Done(Result<(), AcquireError>),
}

#[derive(Debug)]
struct Slot {
    state: SlotState,
    requested: usize,
    needed: usize,
    waker: Option<Waker>,
    prev: usize,
    next: usize,
}

/// A FIFO of waiters in a slab, linked by index.
#[derive(Debug)]
struct WaitList {
    slots: Vec<Slot>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    len: usize,
}

impl WaitList {
    fn new() -> Self {
        WaitList {
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    fn push_back(&mut self, requested: usize, needed: usize, waker: Option<Waker>) -> usize {
        let slot = Slot {
            state: SlotState::Queued,
            requested,
            needed,
            waker,
            prev: self.tail,
            next: NIL,
        };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        if self.tail == NIL {
            self.head = key;
        } else {
            self.slots[self.tail].next = key;
        }
        self.tail = key;
        self.len += 1;
        key
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = (self.slots[key].prev, self.slots[key].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
        self.slots[key].prev = NIL;
        self.slots[key].next = NIL;
        self.len -= 1;
    }

    /// Frees `key`'s slot. Returns its waker (if still registered) for the
    /// caller to drop once the lock is released: dropping a waker is user
    /// code.
    #[must_use = "drop the waker after releasing the lock"]
    fn free(&mut self, key: usize) -> Option<Waker> {
        let slot = &mut self.slots[key];
        slot.state = SlotState::Vacant;
        self.free.push(key);
        slot.waker.take()
    }
}

/// One request's progress: not yet queued, queued under `key`, or finished.
#[derive(Debug)]
struct Waiter {
    n: usize,
    key: Option<usize>,
    finished: bool,
}

impl Waiter {
    fn new(n: usize) -> Self {
        Waiter {
            n,
            key: None,
            finished: false,
        }
    }

    /// First attempt without the lock.
    fn poll_fast(&mut self, sem: &Semaphore) -> Poll<Result<(), AcquireError>> {
        let result = match sem.try_take(self.n) {
            Err(AcquireError::WouldBlock) => return Poll::Pending,
            other => other,
        };
        self.finished = true;
        Poll::Ready(result)
    }

    fn poll(&mut self, sem: &Semaphore, waker: &Waker) -> Poll<Result<(), AcquireError>> {
        if self.finished {
            // The result was handed out already; never hand out permits twice.
            return Poll::Ready(Err(AcquireError::PolledAfterCompletion));
        }
        let Some(key) = self.key else {
            if let Poll::Ready(result) = self.poll_fast(sem) {
                return Poll::Ready(result);
            }
            return self.enqueue(sem, waker);
        };
        // Usually the registered waker is still the right one and nothing is
        // cloned. Otherwise the lock is dropped to clone the new waker (user
        // code), and the state is looked at again with the clone in hand.
        let mut fresh: Option<Waker> = None;
        loop {
            let mut list = sem.waiters.lock();
            let slot = &mut list.slots[key];
            let (poll, stale) = match slot.state {
                SlotState::Queued => {
                    if slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        (Poll::Pending, fresh.take())
                    } else if let Some(new) = fresh.take() {
                        (Poll::Pending, slot.waker.replace(new))
                    } else {
                        drop(list);
                        fresh = Some(waker.clone());
                        continue;
                    }
                }
                SlotState::Done(result) => {
                    let stale = list.free(key);
                    self.key = None;
                    self.finished = true;
                    (Poll::Ready(result), stale)
                }
                SlotState::Vacant => {
                    unreachable!("a waiter's slot is freed only by the waiter")
                }
            };
            drop(list);
            // After the unlock: this drop may release permits (and so lock).
            drop(stale);
            drop(fresh);
            return poll;
        }
    }

    fn enqueue(&mut self, sem: &Semaphore, waker: &Waker) -> Poll<Result<(), AcquireError>> {
        let n = self.n;
        // Cloned before the lock and, if not stored, dropped after it.
        let mut waker = Some(waker.clone());
        let poll = {
            let mut list = sem.waiters.lock();
            let mut state = sem.state.load(Ordering::Acquire);
            loop {
                if state & CLOSED != 0 {
                    self.finished = true;
                    break Poll::Ready(Err(AcquireError::Closed));
                }
                let available = state >> SHIFT;
                if state & WAITERS == 0 && available >= n {
                    match sem.state.compare_exchange_weak(
                        state,
                        state - (n << SHIFT),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.finished = true;
                            break Poll::Ready(Ok(()));
                        }
                        Err(actual) => state = actual,
                    }
                    continue;
                }
                // Take what there is (0 if others already wait: see the
                // module invariant) and queue for the rest. `n` may exceed
                // the total: the request then waits for `add_permits`.
                let take = available.min(n);
                match sem.state.compare_exchange_weak(
                    state,
                    (state - (take << SHIFT)) | WAITERS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let key = list.push_back(n, n - take, waker.take());
                        self.key = Some(key);
                        break Poll::Pending;
                    }
                    Err(actual) => state = actual,
                }
            }
        };
        drop(waker);
        poll
    }

    /// Leaves the queue. Returns the result if the request had already
    /// completed (and the caller may keep it), `None` if it was withdrawn.
    fn cancel(&mut self, sem: &Semaphore) -> Option<Result<(), AcquireError>> {
        let key = self.key.take()?;
        let mut wake = WakeList::new();
        let result;
        let stale;
        {
            let mut list = sem.waiters.lock();
            let slot = &list.slots[key];
            match slot.state {
                SlotState::Queued => {
                    let assigned = slot.requested - slot.needed;
                    list.unlink(key);
                    stale = list.free(key);
                    sem.release_locked(&mut list, assigned, &mut wake);
                    result = None;
                }
                SlotState::Done(r) => {
                    stale = list.free(key);
                    result = Some(r);
                }
                SlotState::Vacant => unreachable!("a waiter's slot is freed only by the waiter"),
            }
        }
        // Our own waker may release permits when dropped; the lock is free.
        drop(stale);
        wake.wake_all();
        self.finished = true;
        result
    }

    #[cfg(feature = "async")]
    /// Drop of a future: withdraw, or give back permits granted but never
    /// collected.
    fn abandon(&mut self, sem: &Semaphore) {
        if let Some(Ok(())) = self.cancel(sem) {
            sem.release(self.n);
        }
    }
}

// ---- futures --------------------------------------------------------------

/// Future returned by [`Semaphore::acquire`].
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    waiter: Waiter,
}

#[cfg(feature = "async")]
impl<'a> std::future::Future for Acquire<'a> {
    type Output = Result<Permit<'a>, AcquireError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let this = &mut *self;
        this.waiter
            .poll(this.sem, cx.waker())
            .map(|r| r.map(|()| Permit::new(this.sem, this.waiter.n)))
    }
}

#[cfg(feature = "async")]
impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.waiter.abandon(self.sem);
    }
}

/// Future returned by [`Semaphore::acquire_owned`].
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AcquireOwned {
    sem: Option<Arc<Semaphore>>,
    waiter: Waiter,
}

#[cfg(feature = "async")]
impl std::future::Future for AcquireOwned {
    type Output = Result<OwnedPermit, AcquireError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(sem) = this.sem.as_ref() else {
            // `sem` moved into the permit this future already returned.
            return Poll::Ready(Err(AcquireError::PolledAfterCompletion));
        };
        match this.waiter.poll(sem, cx.waker()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => {
                let sem = this.sem.take().expect("checked above");
                Poll::Ready(Ok(OwnedPermit::new(sem, this.waiter.n)))
            }
        }
    }
}

#[cfg(feature = "async")]
impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let Some(sem) = &self.sem {
            self.waiter.abandon(sem);
        }
    }
}

// ---- permits --------------------------------------------------------------

/// Permits borrowed from a [`Semaphore`]; returned when dropped.
#[must_use = "dropping a permit releases it immediately"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("permits", &self.permits)
            .finish()
    }
}

impl<'a> Permit<'a> {
    fn new(sem: &'a Semaphore, permits: usize) -> Self {
        Permit { sem, permits }
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }

    /// Removes the permits from the semaphore for good (its
    /// [`total`](Semaphore::total) shrinks). Queued requests that are then
    /// above the total keep waiting for
    /// [`add_permits`](Semaphore::add_permits).
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.permits);
        self.sem.forget_permits(n);
    }

    /// Moves `n` of the permits into a new `Permit`.
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::SplitTooLarge`] if `n` exceeds the permits held.
    pub fn split(&mut self, n: usize) -> Result<Permit<'a>, SemaphoreError> {
        if n > self.permits {
            return Err(SemaphoreError::SplitTooLarge {
                requested: n,
                held: self.permits,
            });
        }
        self.permits -= n;
        Ok(Permit::new(self.sem, n))
    }

    /// Absorbs `other`'s permits.
    ///
    /// # Errors
    ///
    /// [`MergeError`] holding `other` if it belongs to another semaphore.
    pub fn merge(&mut self, mut other: Permit<'a>) -> Result<(), MergeError<Permit<'a>>> {
        if !std::ptr::eq(self.sem, other.sem) {
            return Err(MergeError(other));
        }
        self.permits += std::mem::take(&mut other.permits);
        Ok(())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

/// Permits of an `Arc<Semaphore>`; `Send + 'static`, returned when dropped.
#[must_use = "dropping a permit releases it immediately"]
pub struct OwnedPermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("permits", &self.permits)
            .finish()
    }
}

impl OwnedPermit {
    fn new(sem: Arc<Semaphore>, permits: usize) -> Self {
        OwnedPermit { sem, permits }
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// Removes the permits from the semaphore for good; see
    /// [`Permit::forget`].
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.permits);
        self.sem.forget_permits(n);
    }

    /// Moves `n` of the permits into a new `OwnedPermit`.
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::SplitTooLarge`] if `n` exceeds the permits held.
    pub fn split(&mut self, n: usize) -> Result<OwnedPermit, SemaphoreError> {
        if n > self.permits {
            return Err(SemaphoreError::SplitTooLarge {
                requested: n,
                held: self.permits,
            });
        }
        self.permits -= n;
        Ok(OwnedPermit::new(Arc::clone(&self.sem), n))
    }

    /// Absorbs `other`'s permits.
    ///
    /// # Errors
    ///
    /// [`MergeError`] holding `other` if it belongs to another semaphore.
    pub fn merge(&mut self, mut other: OwnedPermit) -> Result<(), MergeError<OwnedPermit>> {
        if !Arc::ptr_eq(&self.sem, &other.sem) {
            return Err(MergeError(other));
        }
        self.permits += std::mem::take(&mut other.permits);
        Ok(())
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}
