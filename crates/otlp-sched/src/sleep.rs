//! The park/unpark handshake between producers and idle workers.
//!
//! One atomic word counts the workers that are *searching* (awake, looking
//! for work, not running a task) in its low 16 bits and the workers that
//! are *sleeping* (committed to waiting on the condition variable) above
//! them. Workers that are running a task are in neither count.
//!
//! * A producer pushes its task, issues a `SeqCst` fence and reads the
//!   word ([`Sleep::notify_work`]). It wakes a sleeper only when nobody is
//!   searching and somebody sleeps; a searcher will find the task instead.
//! * A searcher that gives up takes the lock, moves itself from searching
//!   to sleeping in one read-modify-write, issues a `SeqCst` fence and
//!   checks the queues once more ([`Sleep::sleep`]'s `recheck`) before it
//!   waits. Either the producer's read comes after that move in the single
//!   `SeqCst` order, and then the producer sees a sleeper and no searcher
//!   (or a searcher that inherits the duty), or it comes before, and then
//!   the fence pairing makes the pushed task visible to the recheck. So a
//!   task is never left queued while every worker sleeps (no lost wake-up).
//! * A waker moves one sleeper back to searching itself and leaves a token
//!   under the lock, so two producers never both count on the same sleeper
//!   and a woken worker already counts as searching (which stops further
//!   producers from waking more workers than there is work for).
//! * When the last searcher finds work, its caller re-checks the queues and
//!   calls [`Sleep::notify_work`] if more work is visible, so a task a
//!   producer left to "the searcher" is never stranded behind that
//!   searcher's own task.
//!
//! The module uses only the [`crate::sync`] facade, so `tests/loom_sleep.rs`
//! model-checks it with loom and no deque at all.

use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering, fence};

/// One searching worker in the state word.
const SEARCH_ONE: usize = 1;
/// One sleeping worker in the state word.
const SLEEP_ONE: usize = 1 << 16;
/// Mask of the searching count.
const SEARCH_MASK: usize = SLEEP_ONE - 1;

/// The most workers the state word can count.
#[cfg_attr(loom, allow(dead_code))]
pub const MAX_WORKERS: usize = SEARCH_MASK;

fn searching(state: usize) -> usize {
    state & SEARCH_MASK
}

fn sleeping(state: usize) -> usize {
    state / SLEEP_ONE
}

/// How a call to [`Sleep::sleep`] ended. In every case the caller counts
/// as searching again when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The last look at the queues found work; the worker never slept.
    Cancelled,
    /// The worker slept and a producer woke it.
    Woken,
    /// The worker was told to terminate (before or while sleeping).
    Terminated,
}

#[derive(Debug, Default)]
struct Inner {
    /// Wake-ups handed out and not yet taken by a sleeper.
    tokens: usize,
    /// Set once by [`Sleep::terminate`]; never cleared.
    terminated: bool,
}

/// The sleep state machine shared by one pool's workers and producers.
#[derive(Debug)]
pub struct Sleep {
    state: AtomicUsize,
    inner: Mutex<Inner>,
    cvar: Condvar,
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Sleep {
    /// A new state: no worker searching or sleeping. Workers start out
    /// running (they look at the queues before they count as searching).
    pub fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
            inner: Mutex::new(Inner::default()),
            cvar: Condvar::new(),
        }
    }

    /// How many workers are searching and how many sleep, now.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state.load(Ordering::SeqCst);
        (searching(s), sleeping(s))
    }

    /// A worker that ran out of local work starts searching.
    pub fn start_searching(&self) {
        self.state.fetch_add(SEARCH_ONE, Ordering::SeqCst);
    }

    /// A searching worker found a task. Returns `true` when it was the last
    /// searcher: the caller must then call [`Sleep::notify_work`] if more
    /// work is visible in the queues.
    pub fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(SEARCH_ONE, Ordering::SeqCst);
        searching(prev) == 1
    }

    /// Called by a producer after it pushed a task (and by the last searcher
    /// that found work while more is queued): wakes one sleeper when no
    /// worker is searching.
    #[inline]
    pub fn notify_work(&self) {
        fence(Ordering::SeqCst);
        let s = self.state.load(Ordering::SeqCst);
        if searching(s) == 0 && sleeping(s) > 0 {
            self.wake_one();
        }
    }

    /// The cheap variant for a job pushed on the pusher's *own* deque by a
    /// worker that will itself pop or wait for it (the `b` side of
    /// `join`): no fence, so a wake-up can be missed in a race, which only
    /// costs parallelism — the pusher runs the job itself if nobody steals
    /// it, so it is never stranded.
    #[cfg_attr(loom, allow(dead_code))]
    #[inline]
    pub fn notify_work_unfenced(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if searching(s) == 0 && sleeping(s) > 0 {
            self.wake_one();
        }
    }

    /// Moves one sleeper to searching and wakes it. Returns whether there
    /// was a sleeper to wake.
    fn wake_one(&self) -> bool {
        let mut inner = self.inner.lock();
        let s = self.state.load(Ordering::SeqCst);
        if sleeping(s) == 0 {
            return false;
        }
        self.state
            .fetch_sub(SLEEP_ONE - SEARCH_ONE, Ordering::SeqCst);
        inner.tokens += 1;
        drop(inner);
        self.cvar.notify_one();
        true
    }

    /// A searching worker that found nothing goes to sleep. `recheck` is the
    /// last look at the queues, made after the worker counts as sleeping:
    /// when it returns `true` the worker does not sleep. Returns when the
    /// worker is woken, cancelled or terminated; it counts as searching
    /// again then.
    pub fn sleep(&self, recheck: impl FnOnce() -> bool) -> Wake {
        let mut inner = self.inner.lock();
        if inner.terminated {
            return Wake::Terminated;
        }
        // The SeqCst fence below is what orders this move before the
        // recheck and pairs with the producer's fence in `notify_work`; the
        // read-modify-write itself could be Relaxed (a correct weakening in
        // xtask's mutation list, `sleep-sleeper-rmw-relaxed`).
        self.state
            .fetch_add(SLEEP_ONE - SEARCH_ONE, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if recheck() {
            Self::leave(&self.state, &mut inner);
            return Wake::Cancelled;
        }
        loop {
            if inner.tokens > 0 {
                // A waker already moved one sleeper (us) back to searching.
                inner.tokens -= 1;
                return Wake::Woken;
            }
            if inner.terminated {
                Self::leave(&self.state, &mut inner);
                return Wake::Terminated;
            }
            inner = self.cvar.wait(inner);
        }
    }

    /// Leaves the sleeping count without a token of one's own: takes a
    /// pending token if a waker already did the move for "some sleeper",
    /// else moves itself.
    fn leave(state: &AtomicUsize, inner: &mut Inner) {
        if inner.tokens > 0 {
            inner.tokens -= 1;
        } else {
            state.fetch_sub(SLEEP_ONE - SEARCH_ONE, Ordering::SeqCst);
        }
    }

    /// The search half of a worker's loop, for a worker that found no
    /// work: it counts as searching, looks again with `find`, spends
    /// `spin` (one back-off step per call; `false` once the back-off is
    /// spent) and then sleeps, with `has_work() || terminating()` as the
    /// last look. After every sleep `woke` gets how it ended.
    ///
    /// Returns the work found, or `None` when `terminating()` was true and
    /// the look after it found nothing. When the worker found work as the
    /// last searcher and `has_work()` shows more, it wakes a sleeper for
    /// it: a producer that saw a searcher left that work to this one.
    ///
    /// This is the pool's real worker loop (`WorkerThread::run`), kept here
    /// so that `tests/loom_sleep.rs` model-checks the code the pool runs.
    pub fn search<T>(
        &self,
        mut find: impl FnMut() -> Option<T>,
        has_work: impl Fn() -> bool,
        terminating: impl Fn() -> bool,
        mut spin: impl FnMut() -> bool,
        mut woke: impl FnMut(Wake),
    ) -> Option<T> {
        self.start_searching();
        let found = loop {
            // Read `terminating` before looking: every task pushed before
            // termination began is then visible to the look.
            let stopping = terminating();
            if let Some(found) = find() {
                break Some(found);
            }
            if stopping {
                break None;
            }
            if spin() {
                continue;
            }
            let wake = self.sleep(|| has_work() || terminating());
            woke(wake);
        };
        let last_searcher = self.stop_searching();
        if found.is_some() && last_searcher && has_work() {
            self.notify_work();
        }
        found
    }

    /// Wakes every sleeper for good: later calls to [`Sleep::sleep`] return
    /// [`Wake::Terminated`] at once.
    pub fn terminate(&self) {
        let mut inner = self.inner.lock();
        inner.terminated = true;
        drop(inner);
        self.cvar.notify_all();
    }
}
