//! Wakers shared by the blocking and async halves of every primitive.
//!
//! Each primitive keeps one list of [`Waker`]s. An async waiter registers its
//! task's waker; a blocking waiter registers a waker that unparks its thread
//! and then parks. One wake-up path therefore serves both worlds, and a
//! blocking wait with a deadline is "park until woken or until the deadline,
//! then re-check under the lock".

use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::loom::{Thread, current_thread};

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

    /// Registers (or refreshes) the waker under `key`.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        match *key {
            Some(k) => match &mut self.slots[k] {
                Slot::Waiting(old) if old.will_wake(waker) => {}
                slot => *slot = Slot::Waiting(waker.clone()),
            },
            None => {
                let slot = Slot::Waiting(waker.clone());
                let k = match self.free.pop() {
                    Some(k) => {
                        self.slots[k] = slot;
                        k
                    }
                    None => {
                        self.slots.push(slot);
                        self.slots.len() - 1
                    }
                };
                *key = Some(k);
            }
        }
    }

    /// Removes the waiter under `key`, if any.
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            self.slots[k] = Slot::Vacant;
            self.free.push(k);
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
        self.inner.lock().register(key, waker);
    }

    pub(crate) fn remove(&self, key: &mut Option<usize>) {
        if key.is_some() {
            self.inner.lock().remove(key);
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
