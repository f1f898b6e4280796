//! [`ConcurrentHashMap`]: a sharded map with closure-only access.

use core::borrow::Borrow;
use core::cell::Cell;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::sync::PoisonError;

use crossbeam_utils::CachePadded;

use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, thread_local};

// loom's `thread_local!` has no `const { }` form; the facade picks it.
#[allow(clippy::missing_const_for_thread_local)]
mod marker {
    use super::{Cell, thread_local};
    thread_local! {
        /// Address of the map whose shard this thread holds while it runs a
    /// caller's closure (0 when none).
        pub(super) static IN_CLOSURE: Cell<usize> = Cell::new(0);
    }
}
use marker::IN_CLOSURE;

type Shard<K, V, S> = CachePadded<RwLock<HashMap<K, V, S>>>;

/// A concurrent hash map for the metric-aggregation pattern: read-mostly
/// lookups of an attribute set, occasional get-or-create.
///
/// # Design
///
/// The map is split into `next_power_of_two(4 × cores)` shards, each a
/// [`std::collections::HashMap`] (hashbrown's SwissTable) behind its own
/// cache-padded `std::sync::RwLock`. A key's hash picks the shard (bits just
/// below the top seven, which the SwissTable keeps for its tag bytes), so
/// readers of different shards never touch a shared cache line, and readers
/// of the same shard share it without blocking each other. Sharded locks were
/// chosen over lock-free buckets because the workload is read-mostly with
/// rare inserts: a read lock is one uncontended atomic on a padded line, the
/// table itself stays a cache-friendly open-addressing table with no
/// per-entry allocation or epoch bookkeeping, and `get_or_insert_with` can
/// run its initialiser exactly once per key under the shard's write lock.
///
/// # No deadlock by construction
///
/// No method returns a guard or a reference into the map (the cause of
/// dashmap's deadlocks when a caller holds a `Ref` and then writes). Values
/// are reached by cloning ([`get`](Self::get)) or inside a closure
/// ([`with`](Self::with), [`update`](Self::update),
/// [`compute`](Self::compute)); a closure runs with exactly one shard locked
/// and that lock is released before the method returns. If a closure calls
/// back into the *same* map, the call panics with a clear message instead of
/// deadlocking (checked with a thread-local marker). A panic in a caller's
/// closure does not poison the map.
///
/// # Examples
///
/// ```
/// use otlp_lockfree::ConcurrentHashMap;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let counters: ConcurrentHashMap<String, Arc<AtomicU64>> = ConcurrentHashMap::new();
/// for route in ["/a", "/b", "/a"] {
///     let c = counters.get_or_insert_with(route.to_string(), || Arc::new(AtomicU64::new(0)));
///     c.fetch_add(1, Ordering::Relaxed);
/// }
/// assert_eq!(counters.with("/a", |c| c.load(Ordering::Relaxed)), Some(2));
/// assert_eq!(counters.len(), 2);
/// ```
pub struct ConcurrentHashMap<K, V, S = RandomState> {
    shards: Box<[Shard<K, V, S>]>,
    hasher: S,
    /// `shard = (hash << 7) >> shift`; `shift >= 64` means one shard.
    shift: u32,
}

#[cfg(not(loom))]
fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 4).next_power_of_two().clamp(4, 1024)
}

#[cfg(loom)]
fn default_shards() -> usize {
    2
}

/// Clears the re-entrancy marker even if the caller's closure panics.
struct ClosureScope {
    previous: usize,
}

impl ClosureScope {
    fn enter(map: usize) -> Self {
        let previous = IN_CLOSURE.with(|c| c.replace(map));
        Self { previous }
    }
}

impl Drop for ClosureScope {
    fn drop(&mut self) {
        let previous = self.previous;
        IN_CLOSURE.with(|c| c.set(previous));
    }
}

impl<K, V> ConcurrentHashMap<K, V, RandomState> {
    /// Creates an empty map with the default hasher.
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }
}

impl<K, V, S: Default + Clone> Default for ConcurrentHashMap<K, V, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, S> ConcurrentHashMap<K, V, S> {
    /// Creates an empty map that hashes with `hasher` (the same hasher
    /// picks the shard and places the key inside it).
    pub fn with_hasher(hasher: S) -> Self
    where
        S: Clone,
    {
        let n = default_shards();
        let shards = (0..n)
            .map(|_| CachePadded::new(RwLock::new(HashMap::with_hasher(hasher.clone()))))
            .collect();
        Self {
            shards,
            hasher,
            shift: u64::BITS - n.trailing_zeros(),
        }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn check_reentry(&self) {
        let me = self as *const Self as usize;
        if IN_CLOSURE.with(Cell::get) == me {
            panic!(
                "ConcurrentHashMap: a closure passed to this map called back into the same map; \
                 that would deadlock (do the second operation after the first returns)"
            );
        }
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, HashMap<K, V, S>> {
        self.check_reentry();
        self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, HashMap<K, V, S>> {
        self.check_reentry();
        self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a caller's closure with the re-entrancy marker set.
    fn in_closure<R>(&self, f: impl FnOnce() -> R) -> R {
        let _scope = ClosureScope::enter(self as *const Self as usize);
        f()
    }

    /// Number of entries (sums the shards one after the other, so it is a
    /// snapshot only when no writer is active).
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.read(i).len()).sum()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        (0..self.shards.len()).all(|i| self.read(i).is_empty())
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for i in 0..self.shards.len() {
            self.write(i).clear();
        }
    }

    /// Keeps only the entries for which `f` returns true. Shards are visited
    /// one at a time, each under its write lock.
    pub fn retain(&self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for i in 0..self.shards.len() {
            let mut shard = self.write(i);
            self.in_closure(|| shard.retain(|k, v| f(k, v)));
        }
    }

    /// Calls `f` on every entry, one shard at a time under its read lock.
    /// Entries inserted or removed concurrently may or may not be seen.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for i in 0..self.shards.len() {
            let shard = self.read(i);
            self.in_closure(|| shard.iter().for_each(|(k, v)| f(k, v)));
        }
    }

    /// A copy of every entry (taken shard by shard).
    pub fn snapshot(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let shard = self.read(i);
            out.extend(shard.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Iterates over a [`snapshot`](Self::snapshot): no lock is held while
    /// the caller iterates.
    pub fn iter(&self) -> std::vec::IntoIter<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.snapshot().into_iter()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ConcurrentHashMap<K, V, S> {
    #[inline]
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        let hash = self.hasher.hash_one(key);
        (hash << 7).checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// A clone of the value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read(self.shard_of(key)).get(key).cloned()
    }

    /// Runs `f` on the value for `key` under the shard's read lock and
    /// returns its result, or `None` when the key is absent.
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.read(self.shard_of(key));
        let value = shard.get(key)?;
        Some(self.in_closure(|| f(value)))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(self.shard_of(key)).contains_key(key)
    }

    /// Inserts `value` for `key`, returning the previous value.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.write(self.shard_of(&key)).insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.write(self.shard_of(key)).remove(key)
    }

    /// Returns (a clone of) the value for `key`, creating it with `init` if
    /// absent. `init` runs at most once per absent key even when many
    /// threads race on it: the lookup is retried under the shard's write
    /// lock before `init` is called. The hot path (key present) takes only
    /// the read lock.
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        self.with_or_insert_with(key, init, V::clone)
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) but, instead of
    /// cloning, runs `f` on the (possibly new) value under the shard's lock.
    pub fn with_or_insert_with<R>(
        &self,
        key: K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let index = self.shard_of(&key);
        {
            let shard = self.read(index);
            if let Some(value) = shard.get(&key) {
                return self.in_closure(|| f(value));
            }
        }
        let mut shard = self.write(index);
        let value = match shard.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let value = self.in_closure(init);
                entry.insert(value)
            }
        };
        let value = &*value;
        self.in_closure(|| f(value))
    }

    /// Runs `f` on the value for `key` under the shard's write lock; `None`
    /// when the key is absent.
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.write(self.shard_of(key));
        let value = shard.get_mut(key)?;
        Some(self.in_closure(|| f(value)))
    }

    /// Atomically reads and rewrites the entry for `key`: `f` sees the
    /// current value (`None` if absent) and may replace it, set it to `None`
    /// (removing the entry) or leave it. Runs under the shard's write lock.
    /// If `f` panics, the entry is removed.
    pub fn compute<R>(&self, key: K, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let mut shard = self.write(self.shard_of(&key));
        match shard.entry(key) {
            Entry::Occupied(entry) => {
                let (key, value) = entry.remove_entry();
                let mut slot = Some(value);
                let result = self.in_closure(|| f(&mut slot));
                if let Some(value) = slot {
                    shard.insert(key, value);
                }
                result
            }
            Entry::Vacant(entry) => {
                let mut slot = None;
                let result = self.in_closure(|| f(&mut slot));
                if let Some(value) = slot {
                    entry.insert(value);
                }
                result
            }
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ConcurrentHashMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for i in 0..self.shards.len() {
            let shard = self.read(i);
            map.entries(shard.iter());
        }
        map.finish()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher + Default + Clone> FromIterator<(K, V)>
    for ConcurrentHashMap<K, V, S>
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map = Self::with_hasher(S::default());
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Extend<(K, V)> for ConcurrentHashMap<K, V, S> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn basic_ops() {
        let m: ConcurrentHashMap<String, u32> = ConcurrentHashMap::new();
        assert!(m.is_empty());
        assert_eq!(m.get("x"), None);
        assert_eq!(m.remove("x"), None);
        assert_eq!(m.update("x", |v| *v += 1), None);
        assert_eq!(m.insert("x".into(), 1), None);
        assert_eq!(m.insert("x".into(), 2), Some(1));
        assert_eq!(m.update("x", |v| *v += 1), Some(()));
        assert_eq!(m.get("x"), Some(3));
        assert_eq!(m.get_or_insert_with("x".into(), || 100), 3);
        assert_eq!(m.get_or_insert_with("y".into(), || 100), 100);
        assert_eq!(m.compute("y".into(), |v| v.take()), Some(100));
        assert!(!m.contains_key("y"));
        m.compute("z".into(), |v| *v = Some(7));
        assert_eq!(m.get("z"), Some(7));
        for i in 0..100 {
            m.insert(i.to_string(), i);
        }
        m.retain(|_, v| *v % 2 == 0);
        assert_eq!(m.len(), 50);
        let mut snap = m.snapshot();
        snap.sort();
        assert_eq!(snap.len(), 50);
        let mut seen = 0;
        m.for_each(|_, _| seen += 1);
        assert_eq!(seen, 50);
        m.clear();
        assert!(m.is_empty());
        assert!(format!("{m:?}").starts_with('{'));
    }

    #[test]
    fn reentry_panics_instead_of_deadlocking_and_map_survives() {
        let m: ConcurrentHashMap<u32, u32> = ConcurrentHashMap::new();
        m.insert(1, 1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.with(&1, |_| m.insert(2, 2));
        }));
        assert!(r.is_err());
        // Not poisoned, marker cleared.
        assert_eq!(m.insert(2, 2), None);
        assert_eq!(m.get(&1), Some(1));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.update(&1, |_| panic!("user bug"));
        }));
        assert!(r.is_err());
        assert_eq!(m.get(&1), Some(1));
    }
}
