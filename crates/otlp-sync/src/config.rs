//! Hot-reloadable configuration: lock-free reads of an `Arc<C>` snapshot.
//!
//! # Protocol
//!
//! The cell points (an `AtomicPtr`) at a heap node holding the current
//! `Arc<C>` and its version. Two sides of reader counters and an epoch bit
//! protect the short window in which a reader has loaded the pointer but not
//! yet cloned the `Arc`. Each side is striped over 8 cache lines, one per
//! reading thread (`t`, assigned round-robin), so concurrent readers do not
//! bounce a shared counter; writers drain every stripe.
//!
//! ```text
//! reader:  e = epoch & 1;  readers[e][t] += 1;  node = ptr;  clone node.config;  readers[e][t] -= 1
//! writer:  (writers serialised by a mutex)
//!          old = ptr.swap(new)
//!          wait readers[1 - cur][*] == 0  // stragglers that read an old epoch
//!          epoch = 1 - cur                // new readers count on the other side
//!          wait readers[cur][*] == 0      // everyone who could have seen `old`
//!          free old node (its Arc<C> reference drops; readers hold their own)
//! ```
//!
//! The writer checks the counters with read-modify-writes (`fetch_add(0)`),
//! not loads. RMWs on one counter are totally ordered, so for any reader
//! that used side `s` either (a) its increment comes first, the writer's
//! RMW sees it and waits for its decrement (release, paired with the
//! writer's acquire: the reader's clone happens before the free), or (b) the
//! writer's RMW comes first and the reader's increment acquires from it, so
//! the reader's pointer load sees the swap and never touches the old node.
//! The writer drains both sides after its swap, so it does not matter which
//! side a straggler with a stale epoch used. (With plain loads this would be
//! a store-load "Dekker" pattern needing a SeqCst fence on the read path;
//! loom confirmed that acquire/release loads alone are not enough.)
//!
//! Readers never wait, never lock and never retry: a read is an epoch load,
//! an increment, a pointer load, the `Arc` clone and a decrement
//! (wait-free). Writers wait only for the readers inside that window, and
//! the epoch flip means new readers cannot keep a counter from draining, so
//! writers cannot starve.
//!
//! # Versions
//!
//! The version lives in the node, next to the configuration it names, and
//! is read through the node (`version`, `snapshot`, and the change check of
//! `changed_since` / `wait_changed_since`): a separate counter stored after
//! the swap could disagree with the pointer for a moment, so a watcher that
//! had already seen the new node was told about a change "from v to v".
//! Writers keep the last version they installed under the writer lock.
//!
//! # User code and the writer lock
//!
//! `update` and `try_replace` run their closure (and `update` runs
//! `C::clone`) while holding the writer lock: that is what makes concurrent
//! updates see each other's results. They may read the cell but must not
//! store into it (that would wait for the lock they hold). Everything else
//! a store does with user code happens after the lock is released: the old
//! node (and with it possibly the last reference to the old `C`) and a
//! rejected copy are dropped, and watchers are woken, outside it.
//!
//! This is the left-right / "RCU with two counters" scheme, chosen over
//! `arc-swap`'s thread-local debt lists because it is small enough to model
//! completely in loom (`tests/loom_config.rs`, which also marks retired nodes
//! and asserts no reader ever clones from one) and needs no dependency.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::{Backoff, CachePadded};

use crate::loom::{AtomicPtr, AtomicUsize, Mutex, Ordering, READER_STRIPES, reader_stripe};
#[cfg(feature = "async")]
use crate::park::CondWait;
use crate::park::{WakerSet, block_on_condition};

/// A consistent view of a [`ConfigCell`]: the configuration and the version
/// it was stored as.
#[derive(Debug)]
pub struct Snapshot<C> {
    /// The configuration.
    pub config: Arc<C>,
    /// Its version: 0 for the initial value, +1 for every successful store.
    pub version: u64,
}

impl<C> Clone for Snapshot<C> {
    fn clone(&self) -> Self {
        Snapshot {
            config: Arc::clone(&self.config),
            version: self.version,
        }
    }
}

impl<C> std::ops::Deref for Snapshot<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.config
    }
}

/// `wait_changed` gave up: the version did not change within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("configuration did not change within {timeout:?} (still version {version})")]
pub struct ChangeTimeout {
    /// The timeout that passed.
    pub timeout: Duration,
    /// The version that was current when the wait gave up.
    pub version: u64,
}

struct Node<C> {
    config: Arc<C>,
    version: u64,
    /// Set by the writer instead of freeing under loom, so the model can
    /// assert that no reader clones from a node after it was retired.
    #[cfg(loom)]
    retired: crate::loom::AtomicBool,
    /// The node's fields as loom sees them: readers read this inside their
    /// window and retirement writes it where the real code frees the node,
    /// so a free not ordered after every reader's window (the readers'
    /// Release decrement, the writer's AcqRel drain) is a data race that
    /// loom reports. `config` and `version` are plain memory loom does not
    /// track.
    #[cfg(loom)]
    fields: crate::loom::TrackedCell<u64>,
}

/// Hot-reloadable configuration with lock-free, wait-free reads.
///
/// [`load`](Self::load) returns an `Arc<C>` snapshot and is never blocked by
/// writers; [`update`](Self::update) runs a validating closure on a copy and
/// installs it only if the closure accepts it; every installed value bumps
/// the [`version`](Self::version), and watchers wake through
/// [`changed`](Self::changed) (async) or
/// [`wait_changed`](Self::wait_changed) (blocking, with a timeout).
///
/// ```
/// use otlp_sync::ConfigCell;
///
/// let cell = ConfigCell::new(100_u32);
/// assert_eq!(*cell.load(), 100);
/// let rejected: Result<u64, &str> = cell.update(|v| {
///     *v = 0;
///     Err("must be positive")
/// });
/// assert!(rejected.is_err());
/// assert_eq!(*cell.load(), 100); // the old value stays
/// assert_eq!(cell.update(|v| { *v = 200; Ok::<_, &str>(()) }), Ok(1));
/// assert_eq!((*cell.load(), cell.version()), (200, 1));
/// ```
pub struct ConfigCell<C> {
    current: AtomicPtr<Node<C>>,
    /// `readers[side][stripe]`: in-flight readers per epoch side, striped
    /// per thread so concurrent readers do not share a cache line.
    readers: [[CachePadded<AtomicUsize>; READER_STRIPES]; 2],
    epoch: AtomicUsize,
    /// The writer lock; holds the last version installed.
    writer: Mutex<u64>,
    watchers: WakerSet,
    #[cfg(loom)]
    graveyard: Mutex<Vec<*mut Node<C>>>,
    /// The cell owns `Arc<C>`s through raw pointers.
    _owns: PhantomData<Arc<C>>,
}

// SAFETY: the cell owns an `Arc<C>` (through the node) and hands out clones
// of it to any thread, and drops it on whichever thread stores next: exactly
// what `Arc<C>: Send + Sync` requires, i.e. `C: Send + Sync`.
unsafe impl<C: Send + Sync> Send for ConfigCell<C> {}
// SAFETY: shared access only clones `Arc<C>` (readers) or replaces it under
// the writer lock; as for `Arc<C>`, that needs `C: Send + Sync`.
unsafe impl<C: Send + Sync> Sync for ConfigCell<C> {}

impl<C: fmt::Debug> fmt::Debug for ConfigCell<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snapshot();
        f.debug_struct("ConfigCell")
            .field("version", &snap.version)
            .field("config", &snap.config)
            .finish()
    }
}

impl<C: Default> Default for ConfigCell<C> {
    fn default() -> Self {
        ConfigCell::new(C::default())
    }
}

impl<C> ConfigCell<C> {
    /// Creates a cell holding `config` as version 0.
    pub fn new(config: C) -> Self {
        Self::from_arc(Arc::new(config))
    }

    /// Creates a cell holding an existing `Arc<C>` as version 0.
    pub fn from_arc(config: Arc<C>) -> Self {
        ConfigCell {
            current: AtomicPtr::new(Self::node(config, 0)),
            readers: std::array::from_fn(|_| {
                std::array::from_fn(|_| CachePadded::new(AtomicUsize::new(0)))
            }),
            epoch: AtomicUsize::new(0),
            writer: Mutex::new(0),
            watchers: WakerSet::new(),
            #[cfg(loom)]
            graveyard: Mutex::new(Vec::new()),
            _owns: PhantomData,
        }
    }

    fn node(config: Arc<C>, version: u64) -> *mut Node<C> {
        Box::into_raw(Box::new(Node {
            config,
            version,
            #[cfg(loom)]
            retired: crate::loom::AtomicBool::new(false),
            #[cfg(loom)]
            fields: crate::loom::TrackedCell::new(version),
        }))
    }

    /// Runs `f` on the current node inside the reader window. `f` must be
    /// short and must not call back into the cell (it only clones an `Arc`).
    #[inline]
    fn read<R>(&self, f: impl FnOnce(&Node<C>) -> R) -> R {
        // The epoch only steers readers away from the side a writer is
        // draining (progress); safety does not depend on which side we use.
        let side = self.epoch.load(Ordering::Relaxed) & 1;
        let counter = &self.readers[side][reader_stripe()];
        // Acquire: if a writer's drain RMW on this counter comes before our
        // increment, we synchronise with it and our load below sees its swap.
        counter.fetch_add(1, Ordering::Acquire);
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: `node` came from `Box::into_raw` and is freed only by a
        // writer after it swapped it out *and* saw `readers[side]` at zero
        // after that swap (see the module protocol). We incremented
        // `readers[side]` before loading `node`, so that cannot happen until
        // our decrement below; the node is valid for the whole call.
        let node = unsafe { &*node };
        #[cfg(loom)]
        assert!(
            !node.retired.load(Ordering::SeqCst),
            "reader entered a node that was already retired"
        );
        // SAFETY: a read of the node's own field, inside the reader window
        // that keeps the node alive (see above); only retirement writes it.
        #[cfg(loom)]
        node.fields
            .with(|version| assert_eq!(unsafe { *version }, node.version));
        let result = f(node);
        #[cfg(loom)]
        assert!(
            !node.retired.load(Ordering::SeqCst),
            "node retired while a reader was inside it"
        );
        counter.fetch_sub(1, Ordering::Release);
        result
    }

    /// The current configuration. Wait-free; never blocked by writers.
    #[inline]
    pub fn load(&self) -> Arc<C> {
        self.read(|node| Arc::clone(&node.config))
    }

    /// The current configuration with its version, read together.
    pub fn snapshot(&self) -> Snapshot<C> {
        self.read(|node| Snapshot {
            config: Arc::clone(&node.config),
            version: node.version,
        })
    }

    /// The current version: 0 initially, +1 per successful store or update.
    /// Read from the current node, so it always names the configuration
    /// [`load`](Self::load) would return at the same moment. Wait-free.
    pub fn version(&self) -> u64 {
        self.read(|node| node.version)
    }

    /// Replaces the configuration unconditionally; returns the new version.
    pub fn store(&self, config: C) -> u64 {
        self.store_arc(Arc::new(config))
    }

    /// Replaces the configuration with an existing `Arc<C>`; returns the new
    /// version. The old configuration is dropped (if this held its last
    /// reference) after the writer lock is released.
    pub fn store_arc(&self, config: Arc<C>) -> u64 {
        let (version, old) = {
            let mut latest = self.writer.lock();
            self.install(&mut latest, config)
        };
        self.retire(old);
        self.watchers.notify_all();
        version
    }

    /// Read-copy-update with validation: clones the current configuration,
    /// lets `f` edit the copy, and installs it only if `f` returns `Ok`.
    /// Concurrent updates are serialised, so `f` always edits the latest
    /// value. Returns the new version.
    ///
    /// `C::clone` and `f` run while the cell's writer lock is held (that is
    /// what serialises updates): they may [`load`](Self::load) from the
    /// cell, but storing into the same cell from them would wait for that
    /// lock forever. A rejected copy and the replaced configuration are
    /// dropped after the lock is released.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns; the old configuration stays in place (also if
    /// `f` panics).
    pub fn update<E>(&self, f: impl FnOnce(&mut C) -> Result<(), E>) -> Result<u64, E>
    where
        C: Clone,
    {
        // Declared before the guard, so it is dropped after the lock is
        // released, also when `f` fails or panics: `C::drop` is user code.
        let mut copy: Option<C> = None;
        let (version, old) = {
            let mut latest = self.writer.lock();
            f(copy.insert(C::clone(&self.load())))?;
            let Some(next) = copy.take() else {
                unreachable!("the copy was inserted just above")
            };
            self.install(&mut latest, Arc::new(next))
        };
        self.retire(old);
        self.watchers.notify_all();
        Ok(version)
    }

    /// Like [`update`](Self::update), but `f` builds the new value from a
    /// reference to the current one (no `Clone` needed) or rejects it. `f`
    /// runs under the writer lock, as in `update`.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns; the old configuration stays in place.
    pub fn try_replace<E>(&self, f: impl FnOnce(&C) -> Result<C, E>) -> Result<u64, E> {
        let (version, old) = {
            let mut latest = self.writer.lock();
            let next = f(&self.load())?;
            self.install(&mut latest, Arc::new(next))
        };
        self.retire(old);
        self.watchers.notify_all();
        Ok(version)
    }

    /// Installs `config` as the next version. Caller holds the writer lock
    /// (`latest` is its contents) and, after releasing it, retires the
    /// returned old node and calls `watchers.notify_all()`.
    #[must_use = "the old node must be retired"]
    fn install(&self, latest: &mut u64, config: Arc<C>) -> (u64, *mut Node<C>) {
        let version = *latest + 1;
        *latest = version;
        let new = Self::node(config, version);
        // AcqRel: release publishes the node; the drain RMWs come after it
        // in program order, so a reader that acquires from them sees it.
        let old = self.current.swap(new, Ordering::AcqRel);
        self.wait_for_readers();
        (version, old)
    }

    /// The writer's two waits and the epoch flip (see the module protocol).
    fn wait_for_readers(&self) {
        // Only writers change `epoch`, and they hold the writer lock.
        let cur = self.epoch.load(Ordering::Relaxed) & 1;
        self.drain(1 - cur);
        self.epoch.store(1 - cur, Ordering::Relaxed);
        self.drain(cur);
    }

    fn drain(&self, side: usize) {
        let backoff = Backoff::new();
        // A read-modify-write, not a load: RMWs on one counter are totally
        // ordered, so either our RMW comes after a reader's increment (and we
        // see it and wait), or the reader's increment comes after our RMW
        // (release) and acquires from it, so the reader sees our swap and
        // never loads the old node. A plain load would need a store-load
        // (SeqCst) fence on the reader's hot path to give the same
        // guarantee. Acquire pairs with the readers' release decrement:
        // everything a reader did inside its window happens before the free.
        for counter in &self.readers[side] {
            while counter.fetch_add(0, Ordering::AcqRel) != 0 {
                crate::loom::spin_wait(&backoff);
            }
        }
    }

    /// Frees a node `install` swapped out (called without the writer lock:
    /// dropping its `Arc<C>` may run `C::drop`).
    #[cfg(not(loom))]
    fn retire(&self, old: *mut Node<C>) {
        // SAFETY: `old` came from `Box::into_raw`, was swapped out of
        // `current` by `install` (no new reader can load it), and
        // `install`'s `wait_for_readers` returned, so no reader is still
        // inside it. Only the writer that swapped it out holds the pointer,
        // and it retires it exactly once. We own it now.
        drop(unsafe { Box::from_raw(old) });
    }

    #[cfg(loom)]
    fn retire(&self, old: *mut Node<C>) {
        // SAFETY: as in the non-loom version, `old` is ours; under loom we
        // only mark it and free it when the cell drops.
        let node = unsafe { &*old };
        // Where the real code frees the node: a write loom checks against
        // every reader's read of `fields`.
        // SAFETY: the node is ours (see above); loom checks that no reader
        // is still inside it.
        node.fields
            .with_mut(|version| unsafe { *version = u64::MAX });
        node.retired.store(true, Ordering::SeqCst);
        self.graveyard.lock().push(old);
    }

    /// Waits asynchronously until the version differs from the one current
    /// when this is called; resolves to the new snapshot.
    ///
    /// Runtime-agnostic; for a timeout wrap it in e.g.
    /// `tokio::time::timeout`. Several changes in a row may be observed as
    /// one (the latest wins).
    #[cfg(feature = "async")]
    pub fn changed(&self) -> Changed<'_, C> {
        self.changed_since(self.version())
    }

    /// Waits asynchronously until the version differs from `seen` (use the
    /// version of the last snapshot you acted on, so that no change between
    /// two waits is missed).
    #[cfg(feature = "async")]
    pub fn changed_since(&self, seen: u64) -> Changed<'_, C> {
        Changed {
            cell: self,
            seen,
            wait: CondWait::new(),
        }
    }

    /// Blocks until the version differs from the one current when this is
    /// called, or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`ChangeTimeout`] if nothing changed in time.
    pub fn wait_changed(&self, timeout: Duration) -> Result<Snapshot<C>, ChangeTimeout> {
        self.wait_changed_since(self.version(), timeout)
    }

    /// Blocks until the version differs from `seen`, or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`ChangeTimeout`] if nothing changed in time.
    pub fn wait_changed_since(
        &self,
        seen: u64,
        timeout: Duration,
    ) -> Result<Snapshot<C>, ChangeTimeout> {
        let deadline = Instant::now().checked_add(timeout);
        block_on_condition(&self.watchers, deadline, || self.changed_from(seen)).ok_or_else(|| {
            ChangeTimeout {
                timeout,
                version: self.version(),
            }
        })
    }

    /// The snapshot, if its own version differs from `seen`. Version and
    /// configuration come from one node, so the snapshot returned never
    /// carries `seen` itself.
    fn changed_from(&self, seen: u64) -> Option<Snapshot<C>> {
        self.read(|node| {
            (node.version != seen).then(|| Snapshot {
                config: Arc::clone(&node.config),
                version: node.version,
            })
        })
    }

    /// Number of registered watchers (async or blocking) right now.
    pub fn watchers(&self) -> usize {
        self.watchers.len()
    }
}

impl<C> Drop for ConfigCell<C> {
    fn drop(&mut self) {
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: `&mut self`: no reader or writer is active, and `node`
        // came from `Box::into_raw` and was never freed (it is current).
        drop(unsafe { Box::from_raw(node) });
        #[cfg(loom)]
        for old in self.graveyard.lock().drain(..) {
            // SAFETY: retired nodes are unique `Box::into_raw` pointers
            // freed only here, after every reader is gone.
            drop(unsafe { Box::from_raw(old) });
        }
    }
}

/// Future returned by [`ConfigCell::changed`] and
/// [`ConfigCell::changed_since`].
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
pub struct Changed<'a, C> {
    cell: &'a ConfigCell<C>,
    seen: u64,
    wait: CondWait,
}

#[cfg(feature = "async")]
impl<C> fmt::Debug for Changed<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changed").field("seen", &self.seen).finish()
    }
}

#[cfg(feature = "async")]
impl<C> std::future::Future for Changed<'_, C> {
    type Output = Snapshot<C>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Snapshot<C>> {
        let this = &mut *self;
        let (cell, seen) = (this.cell, this.seen);
        this.wait
            .poll(&cell.watchers, cx.waker(), || cell.changed_from(seen))
    }
}

#[cfg(feature = "async")]
impl<C> Drop for Changed<'_, C> {
    fn drop(&mut self) {
        self.wait.cancel(&self.cell.watchers);
    }
}
