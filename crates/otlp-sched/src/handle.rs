//! The result slot of a submitted task: a blocking `join` and a `Future`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::TaskError;
use crate::registry::WorkerThread;
use crate::sync::{Arc, Condvar, Mutex};

enum State<R> {
    Pending(Option<Waker>),
    Done(Result<R, TaskError>),
    Taken,
}

struct Slot<R> {
    state: Mutex<State<R>>,
    cvar: Condvar,
}

impl<R> Slot<R> {
    fn is_done(&self) -> bool {
        !matches!(*self.state.lock(), State::Pending(_))
    }
}

/// The handle of a task queued by
/// [`WorkStealingScheduler::submit`](crate::WorkStealingScheduler::submit).
///
/// Take the result with the blocking [`TaskHandle::join`] or by awaiting
/// the handle (it implements [`Future`], so async code waits for CPU work
/// without blocking its runtime). The result is `Err(TaskError::Panicked)`
/// with the payload if the task panicked, and `Err(TaskError::Cancelled)`
/// if `shutdown_now` dropped it before it ran. Dropping the handle detaches
/// the task: it still runs.
pub struct TaskHandle<R> {
    slot: Arc<Slot<R>>,
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The task's side of the slot. Dropping it without completing (the task
/// was discarded) completes the slot with [`TaskError::Cancelled`].
pub(crate) struct Completer<R> {
    slot: Option<Arc<Slot<R>>>,
}

/// A connected handle and completer.
pub(crate) fn pair<R>() -> (TaskHandle<R>, Completer<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Pending(None)),
        cvar: Condvar::new(),
    });
    (
        TaskHandle {
            slot: Arc::clone(&slot),
        },
        Completer { slot: Some(slot) },
    )
}

impl<R> Completer<R> {
    /// Stores the result and wakes whoever waits.
    pub(crate) fn complete(mut self, result: Result<R, TaskError>) {
        if let Some(slot) = self.slot.take() {
            Self::fill(&slot, result);
        }
    }

    fn fill(slot: &Slot<R>, result: Result<R, TaskError>) {
        let mut state = slot.state.lock();
        let waker = match std::mem::replace(&mut *state, State::Done(result)) {
            State::Pending(waker) => waker,
            // Unreachable: only one completer exists and it fills once.
            other => {
                *state = other;
                None
            }
        };
        drop(state);
        slot.cvar.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<R> Drop for Completer<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            Self::fill(&slot, Err(TaskError::Cancelled));
        }
    }
}

impl<R> TaskHandle<R> {
    /// Whether the task has finished (ran, panicked or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }

    /// Blocks until the task finished and returns its result.
    ///
    /// Called from a worker of a pool, it runs other queued work while it
    /// waits, so waiting on a task from inside the pool does not idle the
    /// worker (or deadlock a one-worker pool).
    pub fn join(self) -> Result<R, TaskError> {
        WorkerThread::with_current(|wt| {
            if let Some(wt) = wt {
                wt.help_while(|| self.slot.is_done());
            }
        });
        let mut state = self.slot.state.lock();
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => return result,
                State::Taken => return Err(TaskError::ResultTaken),
                pending @ State::Pending(_) => {
                    *state = pending;
                    state = self.slot.cvar.wait(state);
                }
            }
        }
    }
}

impl<R> Future for TaskHandle<R> {
    type Output = Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Waker code (clone, drop) is the caller's: it runs outside the
        // slot's lock, so a waker that touches this handle cannot deadlock.
        let new_waker = cx.waker().clone();
        let mut state = self.slot.state.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Done(result) => {
                drop(state);
                drop(new_waker);
                Poll::Ready(result)
            }
            State::Taken => {
                drop(state);
                drop(new_waker);
                Poll::Ready(Err(TaskError::ResultTaken))
            }
            State::Pending(old_waker) => {
                *state = State::Pending(Some(new_waker));
                drop(state);
                drop(old_waker);
                Poll::Pending
            }
        }
    }
}
