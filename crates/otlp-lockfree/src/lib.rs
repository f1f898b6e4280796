//! Lock-free data structures for the hot paths of a telemetry pipeline.
//!
//! | type | what | progress |
//! |---|---|---|
//! | [`LockFreeStack<T>`] | Treiber stack, `pop_all` in one swap | lock-free |
//! | [`BoundedQueue<T>`] | bounded MPMC ring, `force_push`, one-CAS `push_batch`/`pop_batch` | lock-free claims (Vyukov) |
//! | [`LockFreeQueue<T>`] | unbounded MPMC FIFO of linked blocks, one spare reused | lock-free claims (`SegQueue`-style) |
//! | [`ConcurrentHashMap<K, V, S>`] | sharded map, closure access, atomic get-or-create | blocking per shard |
//! | [`ConcurrentVec<T>`] | append-only vector, stable `&T` | lock-free push, wait-free get |
//!
//! [`CachePadded`] and [`Backoff`] are crossbeam-utils' own, re-exported.
//!
//! # Design, and why
//!
//! * **No deferred reclamation needed.** The stack is a tagged Treiber stack
//!   of slot indices over a slab the stack owns: a stale index always names
//!   live memory, and a 32-bit tag in each head word defeats ABA (the seed's
//!   `pop` read `head.next` after another thread could free `head`). The
//!   unbounded queue touches a block only after claiming a slot in it, and
//!   the last consumer done with a block frees it (per-slot hand-off flags).
//!   Neither pins an epoch per operation.
//! * **Queues are Vyukov rings.** Each slot carries a stamp that says which
//!   lap's producer or consumer may use it, so a producer claims a position
//!   with one compare-and-swap on a cache-padded counter and never touches the
//!   consumers' counter on the fast path. [`BoundedQueue`] adds *batch claims*:
//!   scan the stamps of the next `n` slots, then move the counter past all the
//!   ready ones with a single CAS. One contended CAS per batch instead of per
//!   item is where batching pays off (crossbeam's `ArrayQueue` has no batch
//!   operations). [`LockFreeQueue`] is a list of 63-slot blocks claimed the
//!   same way (one CAS on the tail or head index, a *written* flag per slot);
//!   a drained block is kept as a spare and reused, so a steady push/pop load
//!   allocates nothing and only a growing backlog allocates blocks.
//! * **The map takes locks on purpose.** Metric aggregation is read-mostly
//!   with occasional inserts; a read lock on a cache-padded shard is one
//!   uncontended atomic, and the initialiser of `get_or_insert_with` must run
//!   exactly once per key, which a shard write lock gives for free. No method
//!   hands out a guard, so the "hold a `Ref`, then write" deadlock of dashmap
//!   cannot be written. Every shard lock records its map in a thread-local
//!   stack, so code run under a lock (a closure, or a key's `Eq`, a value's
//!   `Clone` or `Debug`) that calls back into a map this thread already
//!   holds, through any number of other maps, panics with a message instead
//!   of deadlocking; keys are hashed before locking and the entries the map
//!   removes are dropped after unlocking.
//! * **The vector never moves an element**: buckets of doubling size are
//!   allocated once, so `get` returns a plain `&T` that stays valid while
//!   other threads push.
//!
//! Every structure is `Send`/`Sync` exactly when sound (`T: Send` for the
//! queues and the stack, `T: Send + Sync` for the vector's `Sync`), drops
//! every remaining element exactly once (when one element's `Drop` panics,
//! the others are still dropped, as `Vec` does), and reports bad input as a value
//! (a [`CapacityError`], an item handed back, `None`, `0`), never a panic.
//!
//! # Verification
//!
//! Loom models (`tests/loom_*.rs`, run with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"`), Miri with many seeds over
//! every test, ThreadSanitizer over `tests/stress.rs`, and stress tests that
//! check conservation, per-producer FIFO and drop counts.
//!
//! # Example
//!
//! ```
//! use otlp_lockfree::{BoundedQueue, ConcurrentHashMap};
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::thread;
//!
//! // Spans flow through a bounded queue; the exporter drains batches.
//! let queue = Arc::new(BoundedQueue::new(1024).unwrap());
//! let producer = {
//!     let queue = Arc::clone(&queue);
//!     thread::spawn(move || {
//!         for span in 0..100u32 {
//!             // Keep the newest: evict the oldest span when full.
//!             queue.force_push(span);
//!         }
//!     })
//! };
//! producer.join().unwrap();
//! let mut batch = Vec::with_capacity(64);
//! assert_eq!(queue.pop_batch(&mut batch, 64), 64);
//!
//! // Metrics aggregate per attribute set.
//! let sums: ConcurrentHashMap<&str, Arc<AtomicU64>> = ConcurrentHashMap::new();
//! for span in &batch {
//!     let key = if span % 2 == 0 { "even" } else { "odd" };
//!     sums.get_or_insert_with(key, || Arc::new(AtomicU64::new(0)))
//!         .fetch_add(1, Ordering::Relaxed);
//! }
//! assert_eq!(sums.with("even", |c| c.load(Ordering::Relaxed)), Some(32));
//! ```

mod bounded;
mod error;
mod map;
mod queue;
mod stack;
mod sync;
mod unwind;
mod vec;

pub use bounded::BoundedQueue;
pub use crossbeam_utils::{Backoff, CachePadded};
pub use error::CapacityError;
pub use map::ConcurrentHashMap;
pub use queue::LockFreeQueue;
pub use stack::{IntoIter as StackIntoIter, LockFreeStack};
pub use vec::{ConcurrentVec, Iter as ConcurrentVecIter};

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
