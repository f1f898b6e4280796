//! [`SpaceWaiters`]: producers blocked on a full queue (the
//! [`OverflowPolicy::Block`](crate::OverflowPolicy::Block) mode) and the one
//! consumer that frees slots.
//!
//! The fast path stays lock-free: the consumer pays one `SeqCst` fence and
//! one load per batch when nobody waits. A producer announces itself in
//! `waiting` before its last try under the lock; the consumer frees slots
//! before it reads `waiting`. The `SeqCst` fences make that a Dekker pair:
//! either the consumer sees the waiter and notifies under the lock, or the
//! waiter's try (after the consumer's fence) sees the freed slots. Modelled
//! in `tests/loom_space.rs`.

use std::time::Instant;

use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering, fence};

/// Producers waiting for free slots, and the consumer's wake-up.
#[derive(Debug)]
pub struct SpaceWaiters {
    waiting: AtomicUsize,
    lock: Mutex<()>,
    space: Condvar,
}

impl Default for SpaceWaiters {
    fn default() -> Self {
        Self::new()
    }
}

impl SpaceWaiters {
    /// No producer waiting.
    pub fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            space: Condvar::new(),
        }
    }

    /// Producer side, after `try_once` has already failed once: calls
    /// `try_once` again until it succeeds, `give_up` says so, or `deadline`
    /// passes (`None`: no deadline). `try_once` gets the item and hands it
    /// back when it could not place it; the item comes back on failure.
    ///
    /// `try_once` and `give_up` run under the waiters' lock: they must not
    /// block or call back into this value.
    pub fn wait<T>(
        &self,
        mut item: T,
        deadline: Option<Instant>,
        mut try_once: impl FnMut(T) -> Result<(), T>,
        give_up: impl Fn() -> bool,
    ) -> Result<(), T> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let mut guard = lock(&self.lock);
        let result = loop {
            match try_once(item) {
                Ok(()) => break Ok(()),
                Err(back) => item = back,
            }
            if give_up() {
                break Err(item);
            }
            match deadline {
                None => guard = self.space.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Err(item);
                    }
                    guard = match self.space.wait_timeout(guard, deadline - now) {
                        Ok((guard, _)) => guard,
                        Err(e) => e.into_inner().0,
                    };
                }
            }
        };
        drop(guard);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Consumer side, after it freed slots (or closed the queue): wakes
    /// every waiting producer. Costs a fence and a load when none waits.
    #[inline]
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        // Taking the lock orders this wake-up after a waiter's last try: a
        // waiter is either before that try (and will see the slots) or
        // inside `wait`, which released the lock atomically.
        drop(lock(&self.lock));
        self.space.notify_all();
    }
}

/// The lock guards no data (`()`), so a panic while it was held cannot have
/// left anything half-updated: poisoning is ignored.
fn lock(m: &Mutex<()>) -> crate::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
