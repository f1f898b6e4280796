//! A reusable barrier for blocking and async code, with timeouts.
//!
//! One lock guards `(arrived, generation, waiters)`. The party that makes
//! `arrived == parties` is the leader: it resets `arrived`, bumps
//! `generation` and wakes everyone registered. A waiter is released when the
//! generation it arrived in is over. A waiter that gives up (timeout, or a
//! dropped future) withdraws its arrival under the same lock, unless its
//! generation completed meanwhile (then the wait succeeded after all), so
//! the count the other parties see always matches the parties still waiting.
//!
//! No waker is cloned, woken or dropped under the lock (that is user code,
//! which may call back into the barrier): wakers are cloned before it is
//! taken, and those it displaces or wakes are handled after it is released.

use std::fmt;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::Mutex;
use crate::park::{WakeList, WakerSlab, thread_waker};

/// Bad barrier construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// A barrier needs at least one party.
    #[error("a barrier needs at least one party, got 0")]
    ZeroParties,
}

/// [`Barrier::wait_timeout`] gave up; its arrival was withdrawn, so the
/// barrier still waits for the same number of parties as before it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("barrier wait timed out after {timeout:?}")]
pub struct BarrierTimeout {
    /// The timeout that passed.
    pub timeout: Duration,
}

/// What a completed barrier wait returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
    generation: u64,
}

impl BarrierWaitResult {
    /// True for exactly one party per generation: the one that arrived last.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The generation that completed (0 for the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[derive(Debug)]
struct Inner {
    arrived: usize,
    generation: u64,
    waiters: WakerSlab,
}

/// A reusable barrier for `parties` parties, blocking or async.
///
/// ```
/// use std::sync::Arc;
/// use otlp_sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(3).unwrap());
/// let handles: Vec<_> = (0..3)
///     .map(|_| {
///         let b = Arc::clone(&barrier);
///         std::thread::spawn(move || b.wait_blocking().is_leader())
///     })
///     .collect();
/// let leaders = handles
///     .into_iter()
///     .map(|h| h.join().unwrap())
///     .filter(|&leader| leader)
///     .count();
/// assert_eq!(leaders, 1);
/// assert!(Barrier::new(0).is_err());
/// ```
pub struct Barrier {
    parties: usize,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("arrived", &inner.arrived)
            .field("generation", &inner.generation)
            .finish()
    }
}

/// Progress of one party through one generation.
#[derive(Debug)]
struct Arrival {
    generation: u64,
    key: Option<usize>,
    done: bool,
}

enum Arrive {
    Leader(BarrierWaitResult),
    Wait(Arrival),
}

impl Barrier {
    /// A barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`BarrierError::ZeroParties`] if `parties == 0`.
    pub fn new(parties: usize) -> Result<Self, BarrierError> {
        if parties == 0 {
            return Err(BarrierError::ZeroParties);
        }
        Ok(Barrier {
            parties,
            inner: Mutex::new(Inner {
                arrived: 0,
                generation: 0,
                waiters: WakerSlab::new(),
            }),
        })
    }

    /// The number of parties per generation.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Parties waiting in the current generation.
    pub fn arrived(&self) -> usize {
        self.inner.lock().arrived
    }

    /// Generations completed so far.
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    fn arrive(&self, waker: Option<&Waker>) -> Arrive {
        let mut wake = WakeList::new();
        let mut fresh = waker.cloned();
        let result = {
            let mut inner = self.inner.lock();
            if inner.arrived + 1 == self.parties {
                let generation = inner.generation;
                inner.arrived = 0;
                inner.generation += 1;
                inner.waiters.drain_into(&mut wake);
                Arrive::Leader(BarrierWaitResult {
                    leader: true,
                    generation,
                })
            } else {
                inner.arrived += 1;
                let mut key = None;
                if let Some(waker) = fresh.take() {
                    // A new key: nothing is displaced.
                    fresh = inner.waiters.register(&mut key, waker);
                }
                Arrive::Wait(Arrival {
                    generation: inner.generation,
                    key,
                    done: false,
                })
            }
        };
        drop(fresh);
        wake.wake_all();
        result
    }

    /// Checks whether `arrival`'s generation is over; refreshes the waker if
    /// not.
    fn poll_arrival(&self, arrival: &mut Arrival, waker: &Waker) -> Poll<BarrierWaitResult> {
        let fresh = waker.clone();
        let (poll, stale) = {
            let mut inner = self.inner.lock();
            if inner.generation != arrival.generation {
                let removed = inner.waiters.remove(&mut arrival.key);
                arrival.done = true;
                let ready = Poll::Ready(BarrierWaitResult {
                    leader: false,
                    generation: arrival.generation,
                });
                (ready, [removed, Some(fresh)])
            } else {
                let displaced = inner.waiters.register(&mut arrival.key, fresh);
                (Poll::Pending, [displaced, None])
            }
        };
        // After the unlock: dropping a waker may call back into the barrier.
        drop(stale);
        poll
    }

    /// Withdraws `arrival` unless its generation completed meanwhile (then
    /// returns the successful result).
    fn withdraw(&self, arrival: &mut Arrival) -> Option<BarrierWaitResult> {
        if arrival.done {
            return None;
        }
        arrival.done = true;
        let (result, stale) = {
            let mut inner = self.inner.lock();
            let stale = inner.waiters.remove(&mut arrival.key);
            let result = if inner.generation != arrival.generation {
                Some(BarrierWaitResult {
                    leader: false,
                    generation: arrival.generation,
                })
            } else {
                inner.arrived -= 1;
                None
            };
            (result, stale)
        };
        // After the unlock: dropping a waker may call back into the barrier.
        drop(stale);
        result
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<BarrierWaitResult> {
        let waker = thread_waker();
        let mut arrival = match self.arrive(Some(&waker)) {
            Arrive::Leader(result) => return Some(result),
            Arrive::Wait(arrival) => arrival,
        };
        loop {
            if let Poll::Ready(result) = self.poll_arrival(&mut arrival, &waker) {
                return Some(result);
            }
            if crate::loom::expired(deadline) {
                return self.withdraw(&mut arrival);
            }
            crate::loom::park(deadline);
        }
    }

    /// Blocks until all parties have arrived.
    pub fn wait_blocking(&self) -> BarrierWaitResult {
        loop {
            if let Some(result) = self.wait_until(None) {
                return result;
            }
        }
    }

    /// Blocks until all parties have arrived or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeout`]; the arrival is withdrawn, so the barrier stays
    /// consistent for the others (they still need the same number of
    /// parties), and this party may wait again.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, BarrierTimeout> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_until(deadline).ok_or(BarrierTimeout { timeout })
    }

    /// Waits asynchronously until all parties have arrived.
    ///
    /// The arrival happens on the first poll. Cancel-safe: dropping the
    /// future before it completes withdraws the arrival. Runtime-agnostic;
    /// for a timeout wrap it in e.g. `tokio::time::timeout`.
    #[cfg(feature = "async")]
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            arrival: None,
        }
    }
}

/// Future returned by [`Barrier::wait`].
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    arrival: Option<Arrival>,
}

#[cfg(feature = "async")]
impl std::future::Future for BarrierWait<'_> {
    type Output = BarrierWaitResult;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<BarrierWaitResult> {
        let this = &mut *self;
        match &mut this.arrival {
            None => match this.barrier.arrive(Some(cx.waker())) {
                Arrive::Leader(result) => {
                    this.arrival = Some(Arrival {
                        generation: result.generation,
                        key: None,
                        done: true,
                    });
                    Poll::Ready(result)
                }
                Arrive::Wait(arrival) => {
                    this.arrival = Some(arrival);
                    Poll::Pending
                }
            },
            Some(arrival) if arrival.done => Poll::Ready(BarrierWaitResult {
                leader: false,
                generation: arrival.generation,
            }),
            Some(arrival) => this.barrier.poll_arrival(arrival, cx.waker()),
        }
    }
}

#[cfg(feature = "async")]
impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let Some(arrival) = &mut self.arrival {
            self.barrier.withdraw(arrival);
        }
    }
}
