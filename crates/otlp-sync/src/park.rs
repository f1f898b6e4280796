//! Wakers shared by the blocking and async halves of every primitive.
//!
//! Each primitive keeps one list of [`Waker`]s. An async waiter registers its
//! task's waker; a blocking waiter registers a waker that unparks its thread
//! and then parks. One wake-up path therefore serves both worlds, and a
//! blocking wait with a deadline is "park until woken or until the deadline,
//! then re-check under the lock".
//!
//! Cloning, waking and dropping a [`Waker`] runs its owner's code, which may
//! call back into the primitive (a waker whose drop releases a semaphore
//! permit, stores a config, moves a lifecycle). Our locks are not
//! reentrant, so none of it runs under one: [`WakerSlab`] takes wakers that
//! were cloned before the lock and hands back every waker it displaces, and
//! [`WakeList`] carries woken ones out; callers drop or wake them after
//! unlocking.

use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::loom::{AtomicU8, Ordering, Thread, current_thread};

/// Unparks one thread when woken.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the calling thread.
///
/// Outside loom it is built once per thread and cloned (one reference-count
/// increment) on every later blocking wait.
#[cfg(not(loom))]
pub(crate) fn thread_waker() -> Waker {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(current_thread())));
    }
    // During thread-local destruction the cached waker is gone; build one.
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(ThreadWaker(current_thread()))))
}

#[cfg(loom)]
pub(crate) fn thread_waker() -> Waker {
    Waker::from(Arc::new(ThreadWaker(current_thread())))
}

/// Wakers collected under a lock and woken after it is released, so that a
/// waker that does real work never runs while our lock is held.
#[derive(Default)]
pub(crate) struct WakeList {
    wakers: Vec<Waker>,
}

impl WakeList {
    pub(crate) fn new() -> Self {
        WakeList { wakers: Vec::new() }
    }

    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.wakers.push(waker);
        }
    }

    /// Wakes everything collected. Call after dropping the lock.
    pub(crate) fn wake_all(self) {
        for waker in self.wakers {
            waker.wake();
        }
    }
}

/// A slab of wakers with stable keys: the waiter list of `Lifecycle`,
/// `ConfigCell` and `Barrier`.
///
/// Waking leaves the slot in place, marked notified, so the owner's key stays
/// valid until the owner itself removes it; keys are never reused under an
/// owner's feet.
#[derive(Debug, Default)]
pub(crate) struct WakerSlab {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

#[derive(Debug)]
enum Slot {
    Waiting(Waker),
    Notified,
    Vacant,
}

impl WakerSlab {
    pub(crate) const fn new() -> Self {
        WakerSlab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Registers (or refreshes) `waker`, cloned by the caller before it took
    /// the lock, under `key`. Returns the waker left over (the one replaced,
    /// or `waker` itself if the registered one already wakes the same task)
    /// for the caller to drop after releasing the lock.
    #[must_use = "drop the displaced waker after releasing the lock"]
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: Waker) -> Option<Waker> {
        match *key {
            Some(k) => match &mut self.slots[k] {
                Slot::Waiting(old) if old.will_wake(&waker) => Some(waker),
                slot => match std::mem::replace(slot, Slot::Waiting(waker)) {
                    Slot::Waiting(old) => Some(old),
                    Slot::Notified | Slot::Vacant => None,
                },
            },
            None => {
                let slot = Slot::Waiting(waker);
                let k = match self.free.pop() {
                    Some(k) => {
                        // A free slot is `Vacant`: nothing is dropped here.
                        self.slots[k] = slot;
                        k
                    }
                    None => {
                        self.slots.push(slot);
                        self.slots.len() - 1
                    }
                };
                *key = Some(k);
                None
            }
        }
    }

    /// Removes the waiter under `key`, if any. Returns its waker, if it was
    /// still registered, for the caller to drop after releasing the lock.
    #[must_use = "drop the removed waker after releasing the lock"]
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) -> Option<Waker> {
        let k = key.take()?;
        self.free.push(k);
        match std::mem::replace(&mut self.slots[k], Slot::Vacant) {
            Slot::Waiting(waker) => Some(waker),
            Slot::Notified | Slot::Vacant => None,
        }
    }

    /// Takes every waiting waker into `list`, leaving the slots notified.
    pub(crate) fn drain_into(&mut self, list: &mut WakeList) {
        for slot in &mut self.slots {
            if matches!(slot, Slot::Waiting(_))
                && let Slot::Waiting(waker) = std::mem::replace(slot, Slot::Notified)
            {
                list.push(Some(waker));
            }
        }
    }

    /// Number of registered waiters (waiting or notified).
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// A [`WakerSlab`] behind its own lock: "wake everyone when X changes".
///
/// Lost wake-ups are impossible when the waiter registers, *then* re-checks
/// the condition, and the notifier changes the condition, *then* calls
/// [`WakerSet::notify_all`]: whichever takes the lock second sees the
/// other's work (the lock orders them).
#[derive(Debug, Default)]
pub(crate) struct WakerSet {
    inner: crate::loom::Mutex<WakerSlab>,
}

impl WakerSet {
    pub(crate) fn new() -> Self {
        WakerSet {
            inner: crate::loom::Mutex::new(WakerSlab::new()),
        }
    }

    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) {
        let fresh = waker.clone();
        let stale = self.inner.lock().register(key, fresh);
        // The guard was a temporary of the statement above: unlocked now.
        drop(stale);
    }

    pub(crate) fn remove(&self, key: &mut Option<usize>) {
        if key.is_some() {
            let stale = self.inner.lock().remove(key);
            drop(stale);
        }
    }

    pub(crate) fn notify_all(&self) {
        let mut list = WakeList::new();
        self.inner.lock().drain_into(&mut list);
        list.wake_all();
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len()
    }
}

/// Blocks until `check` returns `Some`, re-checking after every wake-up of
/// `set`, or until `deadline`. `None` means the deadline passed.
pub(crate) fn block_on_condition<T>(
    set: &WakerSet,
    deadline: Option<std::time::Instant>,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    if let Some(value) = check() {
        return Some(value);
    }
    let waker = thread_waker();
    let mut key = None;
    let result = loop {
        set.register(&mut key, &waker);
        if let Some(value) = check() {
            break Some(value);
        }
        if crate::loom::expired(deadline) {
            break None;
        }
        crate::loom::park(deadline);
    };
    set.remove(&mut key);
    result
}

#[cfg(feature = "async")]
/// The state of an async wait on a [`WakerSet`]: its key, removed on drop
/// by the owning future.
#[derive(Debug, Default)]
pub(crate) struct CondWait {
    key: Option<usize>,
}

#[cfg(feature = "async")]
impl CondWait {
    pub(crate) const fn new() -> Self {
        CondWait { key: None }
    }

    /// Polls `check`, registering `waker` before the final check so that a
    /// change between the check and the registration is not missed.
    pub(crate) fn poll<T>(
        &mut self,
        set: &WakerSet,
        waker: &Waker,
        mut check: impl FnMut() -> Option<T>,
    ) -> std::task::Poll<T> {
        if let Some(value) = check() {
            set.remove(&mut self.key);
            return std::task::Poll::Ready(value);
        }
        set.register(&mut self.key, waker);
        match check() {
            Some(value) => {
                set.remove(&mut self.key);
                std::task::Poll::Ready(value)
            }
            None => std::task::Poll::Pending,
        }
    }

    /// Leaves the set (call from the future's `Drop`).
    pub(crate) fn cancel(&mut self, set: &WakerSet) {
        set.remove(&mut self.key);
    }
}

/// [`SpinParker`] states.
const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

/// Spin rounds before parking; round `r` spins `2^r` times with
/// `spin_loop` (parking_lot's `SpinWait` busy phase, about a microsecond in
/// all). There is deliberately no `yield_now` phase: on an oversubscribed
/// machine `sched_yield` hands the core to another process and measured
/// 20-100x slower hand-offs than parking. One round under loom.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 4;
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 1;

/// A thread's wake-up flag that its waiter spins on briefly before parking.
///
/// `wake` swaps the state to `NOTIFIED` and unparks the thread only if it
/// had announced `PARKED`; the waiter announces `PARKED` with a CAS from
/// `EMPTY`, so exactly one of the two sees the other: either the waker sees
/// `PARKED` and unparks, or the waiter's CAS fails on `NOTIFIED` and it does
/// not park. A hand-off to a thread that is still spinning therefore costs
/// one atomic swap instead of a futex wake and a context switch.
struct ParkState {
    thread: Thread,
    state: AtomicU8,
}

impl Wake for ParkState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == PARKED {
            self.thread.unpark();
        }
    }
}

/// The calling thread's spin-then-park wake-up point (the blocking
/// semaphore wait). Its [`waker`](Self::waker) must only be used with
/// [`wait`](Self::wait), never with a bare `park`.
pub(crate) struct SpinParker {
    inner: Arc<ParkState>,
}

impl SpinParker {
    /// The calling thread's parker, built once per thread (a loom
    /// thread-local under loom, so models see a parker reused across waits
    /// with a stale notification left over).
    pub(crate) fn current() -> Self {
        fn build() -> Arc<ParkState> {
            Arc::new(ParkState {
                thread: current_thread(),
                state: AtomicU8::new(EMPTY),
            })
        }
        #[cfg(not(loom))]
        std::thread_local! {
            static PARKER: Arc<ParkState> = build();
        }
        #[cfg(loom)]
        loom::thread_local! {
            static PARKER: Arc<ParkState> = build();
        }
        // During thread-local destruction the cached parker is gone; build one.
        let inner = PARKER.try_with(Arc::clone).unwrap_or_else(|_| build());
        SpinParker { inner }
    }

    /// A waker that notifies this parker.
    pub(crate) fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.inner))
    }

    /// Waits until woken, until `deadline`, or spuriously (a wake-up meant
    /// for an earlier wait); callers re-check their condition.
    pub(crate) fn wait(&self, deadline: Option<std::time::Instant>) {
        let state = &self.inner.state;
        for round in 0..SPIN_ROUNDS {
            // The flag carries no data: every grant is recorded under the
            // wait-list lock before its wake, and the caller re-checks its
            // slot under that lock after we return. So Relaxed would do for
            // this load, the EMPTY stores and the waker's swap (correct
            // weakenings in xtask's mutation list: `parker-spin-check-relaxed`,
            // `parker-wake-swap`); what must hold is that the PARKED/NOTIFIED
            // exchange never loses a wake, which the flag's single
            // modification order guarantees whatever the orderings.
            if state.load(Ordering::Acquire) == NOTIFIED {
                // Overwriting a second, concurrent NOTIFIED is fine: the
                // caller re-checks under the lock after we return, and every
                // grant is recorded there before its wake.
                state.store(EMPTY, Ordering::Relaxed);
                return;
            }
            for _ in 0..(1u32 << round) {
                std::hint::spin_loop();
            }
        }
        if state
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Only a waker moves the state off EMPTY: it is NOTIFIED.
            state.store(EMPTY, Ordering::Relaxed);
            return;
        }
        // PARKED until a waker makes it NOTIFIED (only we reset it).
        while state.load(Ordering::Acquire) != NOTIFIED && !crate::loom::expired(deadline) {
            crate::loom::park(deadline);
        }
        // Consume the notification, or withdraw the PARKED announcement on
        // timeout (a later wake then just leaves NOTIFIED for the next wait).
        state.swap(EMPTY, Ordering::AcqRel);
    }
}
