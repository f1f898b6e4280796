//! A component's lifecycle as an atomic state machine.
//!
//! ```text
//! Created ──► Starting ──► Running ──► Stopping ──► Stopped
//!    │           │  │         │           │
//!    │           │  └─────────┼──────────►│ (Starting ──► Stopping: abort a start)
//!    │           └──► Failed ◄┴───────────┘
//!    └──────────────────────────────────────────────► Stopped (never started)
//! ```
//!
//! Every transition is one compare-and-swap on a byte, so two threads racing
//! to start (or to stop) a component cannot both win: the loser gets
//! [`InvalidTransition`] naming the state it actually found. `Stopped` and
//! `Failed` are terminal. Waiters (blocking with a timeout, or async) are
//! woken on every transition and give up early with
//! [`WaitStateError::Unreachable`] once their target can no longer happen.

use std::fmt;
use std::time::{Duration, Instant};

use crate::loom::{AtomicU8, Ordering};
#[cfg(feature = "async")]
use crate::park::CondWait;
use crate::park::{WakerSet, block_on_condition};

/// A lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Constructed, not started.
    Created = 0,
    /// `start` in progress.
    Starting = 1,
    /// Started and serving.
    Running = 2,
    /// `stop` in progress (draining).
    Stopping = 3,
    /// Stopped cleanly. Terminal.
    Stopped = 4,
    /// Failed while starting, running or stopping. Terminal.
    Failed = 5,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

const ALL: [State; 6] = [
    State::Created,
    State::Starting,
    State::Running,
    State::Stopping,
    State::Stopped,
    State::Failed,
];

impl State {
    fn from_u8(v: u8) -> State {
        ALL[usize::from(v)]
    }

    /// Whether `self -> to` is an edge of the state machine.
    pub fn can_transition_to(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Created, Starting)
                | (Created, Stopped)
                | (Starting, Running)
                | (Starting, Stopping)
                | (Starting, Failed)
                | (Running, Stopping)
                | (Running, Failed)
                | (Stopping, Stopped)
                | (Stopping, Failed)
        )
    }

    /// Whether `target` is `self` or can still be reached from `self`.
    pub fn can_reach(self, target: State) -> bool {
        let mut seen = [false; 6];
        let mut stack = [State::Created; 6];
        let mut len = 1;
        stack[0] = self;
        seen[self as usize] = true;
        while len > 0 {
            len -= 1;
            let s = stack[len];
            if s == target {
                return true;
            }
            for next in ALL {
                if s.can_transition_to(next) && !seen[next as usize] {
                    seen[next as usize] = true;
                    stack[len] = next;
                    len += 1;
                }
            }
        }
        false
    }

    /// `Stopped` or `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Stopped | State::Failed)
    }
}

/// A transition that the state machine does not allow, or whose expected
/// starting state was not the actual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid lifecycle transition from {from} to {to}")]
pub struct InvalidTransition {
    /// The state the lifecycle was actually in.
    pub from: State,
    /// The state that was asked for.
    pub to: State,
}

/// Why a wait for a lifecycle state ended without reaching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitStateError {
    /// The lifecycle moved past the target (e.g. waiting for `Running` and
    /// it failed): it can never get there.
    #[error("lifecycle is {current}; {target} can no longer be reached")]
    Unreachable {
        /// The state found.
        current: State,
        /// The state waited for.
        target: State,
    },
    /// The timeout passed first.
    #[error("timed out waiting for {target} (still {current})")]
    Timeout {
        /// The state when the wait gave up.
        current: State,
        /// The state waited for.
        target: State,
    },
}

/// An atomic lifecycle state machine with blocking and async waits.
///
/// ```
/// use otlp_sync::{Lifecycle, State};
///
/// let life = Lifecycle::new();
/// life.transition(State::Created, State::Starting).unwrap();
/// let err = life.transition(State::Created, State::Starting).unwrap_err();
/// assert_eq!(err.from, State::Starting); // someone else already started it
/// life.transition(State::Starting, State::Running).unwrap();
/// assert!(life.transition(State::Running, State::Created).is_err());
/// ```
pub struct Lifecycle {
    state: AtomicU8,
    waiters: WakerSet,
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("state", &self.state())
            .finish()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A lifecycle in [`State::Created`].
    pub fn new() -> Self {
        Lifecycle {
            state: AtomicU8::new(State::Created as u8),
            waiters: WakerSet::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// `from -> to`, only if the lifecycle is in `from` now (one CAS).
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] with `from` set to the state actually found, if
    /// the edge is not in the state machine or the state was not `from`.
    pub fn transition(&self, from: State, to: State) -> Result<(), InvalidTransition> {
        if !from.can_transition_to(to) {
            return Err(InvalidTransition { from, to });
        }
        match self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                self.waiters.notify_all();
                Ok(())
            }
            Err(actual) => Err(InvalidTransition {
                from: State::from_u8(actual),
                to,
            }),
        }
    }

    /// Moves to `to` from whatever the current state is, if that edge is
    /// allowed. Returns the previous state.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] naming the current state if `current -> to` is
    /// not an edge.
    pub fn advance(&self, to: State) -> Result<State, InvalidTransition> {
        let mut current = self.state.load(Ordering::SeqCst);
        loop {
            let from = State::from_u8(current);
            if !from.can_transition_to(to) {
                return Err(InvalidTransition { from, to });
            }
            match self
                .state
                .compare_exchange(current, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.waiters.notify_all();
                    return Ok(from);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// `Created -> Starting`.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] if not in `Created`.
    pub fn begin_start(&self) -> Result<(), InvalidTransition> {
        self.transition(State::Created, State::Starting)
    }

    /// `Starting -> Running`.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] if not in `Starting`.
    pub fn mark_running(&self) -> Result<(), InvalidTransition> {
        self.transition(State::Starting, State::Running)
    }

    /// `Starting | Running -> Stopping`. Returns the previous state.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from any other state.
    pub fn begin_stop(&self) -> Result<State, InvalidTransition> {
        self.advance(State::Stopping)
    }

    /// `Stopping -> Stopped`.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] if not in `Stopping`.
    pub fn mark_stopped(&self) -> Result<(), InvalidTransition> {
        self.transition(State::Stopping, State::Stopped)
    }

    /// `Starting | Running | Stopping -> Failed`. Returns the previous state.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from `Created` or a terminal state.
    pub fn fail(&self) -> Result<State, InvalidTransition> {
        self.advance(State::Failed)
    }

    /// Whether the state is `Running`.
    pub fn is_running(&self) -> bool {
        self.state() == State::Running
    }

    fn check(&self, target: State) -> Option<Result<State, WaitStateError>> {
        let current = self.state();
        if current == target {
            Some(Ok(current))
        } else if !current.can_reach(target) {
            Some(Err(WaitStateError::Unreachable { current, target }))
        } else {
            None
        }
    }

    /// Blocks until the state is `target` (returns it), or `target` becomes
    /// unreachable, or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`WaitStateError::Unreachable`] or [`WaitStateError::Timeout`].
    pub fn wait_for(&self, target: State, timeout: Duration) -> Result<State, WaitStateError> {
        let deadline = Instant::now().checked_add(timeout);
        block_on_condition(&self.waiters, deadline, || self.check(target)).unwrap_or_else(|| {
            Err(WaitStateError::Timeout {
                current: self.state(),
                target,
            })
        })
    }

    /// Blocks with no timeout until the state is `target` or `target`
    /// becomes unreachable.
    ///
    /// # Errors
    ///
    /// [`WaitStateError::Unreachable`].
    pub fn wait_for_blocking(&self, target: State) -> Result<State, WaitStateError> {
        block_on_condition(&self.waiters, None, || self.check(target)).unwrap_or_else(|| {
            Err(WaitStateError::Timeout {
                current: self.state(),
                target,
            })
        })
    }

    /// Waits asynchronously until the state is `target` or `target` becomes
    /// unreachable. Runtime-agnostic and cancel-safe; for a timeout wrap it
    /// in e.g. `tokio::time::timeout`.
    #[cfg(feature = "async")]
    pub fn wait(&self, target: State) -> WaitState<'_> {
        WaitState {
            lifecycle: self,
            target,
            wait: CondWait::new(),
        }
    }
}

/// Future returned by [`Lifecycle::wait`].
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WaitState<'a> {
    lifecycle: &'a Lifecycle,
    target: State,
    wait: CondWait,
}

#[cfg(feature = "async")]
impl std::future::Future for WaitState<'_> {
    type Output = Result<State, WaitStateError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        let (lifecycle, target) = (this.lifecycle, this.target);
        this.wait
            .poll(&lifecycle.waiters, cx.waker(), || lifecycle.check(target))
    }
}

#[cfg(feature = "async")]
impl Drop for WaitState<'_> {
    fn drop(&mut self) {
        self.wait.cancel(&self.lifecycle.waiters);
    }
}
