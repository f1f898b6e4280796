//! [`ConcurrentHashMap`]: a sharded map with closure-only access.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::mem;
use std::collections::hash_map::RandomState;
use std::sync::PoisonError;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One key/value pair with the hash it was placed by. Keeping the hash means
/// a table that grows never calls the user's `Hash` (which would run under
/// the shard's write lock), and a lookup compares hashes before it calls
/// `Eq`.
struct Slot<K, V> {
    hash: u64,
    key: K,
    value: V,
}

type Table<K, V> = HashTable<Slot<K, V>>;
type Shard<K, V> = CachePadded<RwLock<Table<K, V>>>;

/// The stored hash, for the table's own rehashing.
fn stored_hash<K, V>(slot: &Slot<K, V>) -> u64 {
    slot.hash
}

/// Which maps this thread holds a shard lock of, for re-entry detection.
mod held {
    use core::cell::{Cell, RefCell};

    use crate::sync::const_thread_local;

    const_thread_local! {
        /// Address of the first map whose shard lock this thread took (0
        /// when none): almost every call holds one map at most, and this
        /// keeps it to one thread-local word with no destructor.
        static FIRST: Cell<usize> = Cell::new(0);
    }
    const_thread_local! {
        /// The maps locked while `FIRST` is held (a closure, or code the map
        /// ran, using other maps), innermost last: any depth.
        static MORE: RefCell<Vec<usize>> = RefCell::new(Vec::new());
    }

    /// Where a [`Held`] recorded its map.
    enum Level {
        First,
        More,
        /// `MORE` was unavailable (a map used from a thread-local destructor
        /// during thread exit): nothing recorded, nothing to undo.
        Untracked,
    }

    /// Marks one map as locked by this thread for as long as it lives.
    ///
    /// Every shard lock the map takes borrows one (see `hold`), so whatever user
    /// code runs under the lock (a closure, or the map's calls to `Clone`,
    /// `Eq`, `Debug` or `Drop`) and calls back into a map this thread already
    /// holds, through any number of other maps, panics here before it could
    /// block on the lock. Marks are scoped (a lock is released before the
    /// method that took it returns, and nested locks are released first), so
    /// they are removed in reverse order of taking, unwinding included.
    pub(super) struct Held(Level);

    impl Held {
        #[inline]
        pub(super) fn enter(map: usize) -> Self {
            let first = FIRST.with(Cell::get);
            if first == 0 {
                FIRST.with(|f| f.set(map));
                return Held(Level::First);
            }
            if first == map {
                reentered();
            }
            Self::enter_nested(map)
        }

        #[cold]
        #[inline(never)]
        fn enter_nested(map: usize) -> Self {
            let recorded = MORE.try_with(|more| {
                let mut more = more.borrow_mut();
                if more.contains(&map) {
                    drop(more);
                    reentered();
                }
                more.push(map);
            });
            Held(if recorded.is_ok() {
                Level::More
            } else {
                Level::Untracked
            })
        }
    }

    impl Drop for Held {
        #[inline]
        fn drop(&mut self) {
            match self.0 {
                Level::First => FIRST.with(|f| f.set(0)),
                Level::More => {
                    let _ = MORE.try_with(|more| more.borrow_mut().pop());
                }
                Level::Untracked => {}
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn reentered() -> ! {
        panic!(
            "ConcurrentHashMap: re-entrant call: this thread already holds a lock of this map \
             (code run by the map, such as a closure passed to it or a Clone, Eq, Debug or Drop \
             of its keys or values, called back into it, possibly through other maps); that \
             would deadlock, so do the second operation after the first returns"
        )
    }
}
use held::Held;

/// A concurrent hash map for the metric-aggregation pattern: read-mostly
/// lookups of an attribute set, occasional get-or-create.
///
/// # Design
///
/// The map is split into `next_power_of_two(4 × cores)` shards, each a
/// hashbrown SwissTable behind its own cache-padded `std::sync::RwLock`.
/// Every operation hashes its key **once**, before taking any lock: the hash
/// picks the shard (bits just below the top seven, which the SwissTable keeps
/// for its tag bytes) and is stored with the entry, so the table places,
/// finds and rehashes entries without hashing again. Readers of different
/// shards never touch a shared cache line, and readers of the same shard
/// share it without blocking each other. Sharded locks were chosen over
/// lock-free buckets because the workload is read-mostly with rare inserts:
/// a read lock is one uncontended atomic on a padded line, the table itself
/// stays a cache-friendly open-addressing table with no per-entry allocation
/// or epoch bookkeeping, and `get_or_insert_with` can run its initialiser
/// exactly once per key under the shard's write lock.
///
/// # No deadlock by construction
///
/// No method returns a guard or a reference into the map (the cause of
/// dashmap's deadlocks when a caller holds a `Ref` and then writes). Values
/// are reached by cloning ([`get`](Self::get)) or inside a closure
/// ([`with`](Self::with), [`update`](Self::update),
/// [`compute`](Self::compute)); a closure runs with exactly one shard locked
/// and that lock is released before the method returns.
///
/// What runs while a shard lock is held, and what does not:
///
/// * **Under the lock**: the closures passed to the map (`with`, `update`,
///   `compute`, `retain`, `for_each`, the initialiser and `f` of
///   `get_or_insert_with` / `with_or_insert_with`, and whatever those
///   closures drop), `Eq` of the keys during a lookup, `V::clone` (and
///   `K::clone`) in [`get`](Self::get), [`get_or_insert_with`](Self::get_or_insert_with),
///   [`snapshot`](Self::snapshot) and [`iter`](Self::iter), and `Debug` of
///   keys and values in the map's `Debug`.
/// * **Never under the lock**: `Hash` and the `BuildHasher` (the key is
///   hashed before locking and the hash is stored), and the destructors of
///   entries the map removes or replaces itself (`remove`, `insert`'s spare
///   key, `clear`, `retain`, `compute`'s removed entry, a key not inserted by
///   `get_or_insert_with`): they run after the lock is released, so such a
///   destructor may use the map freely.
///
/// If code that runs under a lock calls back into a map whose lock this
/// thread already holds, directly or through any number of other maps (A's
/// closure uses B, whose closure uses A), the call **panics** with a clear
/// message instead of deadlocking: every lock the map takes records the map
/// in a thread-local stack first. A panic under the lock releases it and
/// does not poison the map. Nesting *different* maps is allowed; as with any
/// two locks, two threads that nest the same two maps in opposite orders can
/// still deadlock each other, which no thread-local check can see.
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
    shards: Box<[Shard<K, V>]>,
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

impl<K, V> ConcurrentHashMap<K, V, RandomState> {
    /// Creates an empty map with the default hasher.
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }
}

impl<K, V, S: Default> Default for ConcurrentHashMap<K, V, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, S> ConcurrentHashMap<K, V, S> {
    /// Creates an empty map that hashes with `hasher` (one hash per
    /// operation picks the shard and places the key inside it).
    pub fn with_hasher(hasher: S) -> Self {
        let n = default_shards();
        let shards = (0..n)
            .map(|_| CachePadded::new(RwLock::new(HashTable::new())))
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

    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        (hash << 7).checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// Marks this map as locked by this thread (panicking if it already
    /// is). Every shard lock is taken through [`read`](Self::read) or
    /// [`write`](Self::write), which borrow the mark, so the guard cannot
    /// outlive it: the lock is released before the mark. (Two locals rather
    /// than one guard type keep both drops inlined on the hot path.)
    #[inline]
    fn hold(&self) -> Held {
        Held::enter(self as *const Self as usize)
    }

    #[inline]
    fn read<'a>(&'a self, _held: &'a Held, index: usize) -> RwLockReadGuard<'a, Table<K, V>> {
        self.shards[index]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn write<'a>(&'a self, _held: &'a Held, index: usize) -> RwLockWriteGuard<'a, Table<K, V>> {
        self.shards[index]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of entries (sums the shards one after the other, so it is a
    /// snapshot only when no writer is active).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.read(&self.hold(), i).len())
            .sum()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        (0..self.shards.len()).all(|i| self.read(&self.hold(), i).is_empty())
    }

    /// Removes every entry. Each shard's table is taken out under its lock
    /// and dropped after the lock is released (so the values' destructors
    /// may use the map); the shards' memory is freed.
    pub fn clear(&self) {
        for i in 0..self.shards.len() {
            // The mark and the guard are temporaries of this statement:
            // unlocked at its end.
            let table = mem::take(&mut *self.write(&self.hold(), i));
            drop(table);
        }
    }

    /// Keeps only the entries for which `f` returns true. Shards are visited
    /// one at a time, each under its write lock; the entries removed from a
    /// shard are dropped after its lock is released.
    pub fn retain(&self, mut f: impl FnMut(&K, &mut V) -> bool) {
        // Declared before the guards, so that if `f` panics the entries
        // already removed are dropped after the lock is released.
        let mut removed = Vec::new();
        for i in 0..self.shards.len() {
            {
                let held = self.hold();
                let mut shard = self.write(&held, i);
                removed.extend(shard.extract_if(|slot| !f(&slot.key, &mut slot.value)));
            }
            removed.clear();
        }
    }

    /// Calls `f` on every entry, one shard at a time under its read lock.
    /// Entries inserted or removed concurrently may or may not be seen.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for i in 0..self.shards.len() {
            let held = self.hold();
            let shard = self.read(&held, i);
            shard.iter().for_each(|slot| f(&slot.key, &slot.value));
        }
    }

    /// A copy of every entry (taken shard by shard; `K::clone` and
    /// `V::clone` run under the shard's read lock).
    pub fn snapshot(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        // Declared before the guards: if a clone panics, the copies made so
        // far are dropped after the lock is released.
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let held = self.hold();
            let shard = self.read(&held, i);
            out.reserve(shard.len());
            out.extend(
                shard
                    .iter()
                    .map(|slot| (slot.key.clone(), slot.value.clone())),
            );
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
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// A clone of the value for `key` (cloned under the shard's read lock).
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with(key, V::clone)
    }

    /// Runs `f` on the value for `key` under the shard's read lock and
    /// returns its result, or `None` when the key is absent.
    #[inline]
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let held = self.hold();
        let shard = self.read(&held, self.shard_of(hash));
        let slot = shard.find(hash, |slot| slot.hash == hash && slot.key.borrow() == key)?;
        Some(f(&slot.value))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with(key, |_| ()).is_some()
    }

    /// Inserts `value` for `key`, returning the previous value. When the key
    /// was present the stored key is kept and `key` is dropped after the
    /// shard's lock is released.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        let held = self.hold();
        let mut shard = self.write(&held, self.shard_of(hash));
        match shard.entry(
            hash,
            |slot| slot.hash == hash && slot.key == key,
            stored_hash,
        ) {
            TableEntry::Occupied(mut entry) => {
                Some(mem::replace(&mut entry.get_mut().value, value))
            }
            TableEntry::Vacant(entry) => {
                entry.insert(Slot { hash, key, value });
                None
            }
        }
        // `key`, a parameter, is dropped after the guard, a local.
    }

    /// Removes `key`, returning its value. The stored key is dropped after
    /// the shard's lock is released.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let held = self.hold();
        let mut shard = self.write(&held, self.shard_of(hash));
        let (slot, _) = shard
            .find_entry(hash, |slot| slot.hash == hash && slot.key.borrow() == key)
            .ok()?
            .remove();
        // Unlock (and unmark) before the stored key is dropped.
        drop(shard);
        drop(held);
        Some(slot.value)
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
    /// `init` also runs under the shard's write lock (that is what makes it
    /// run once per key). When the key was already present, `key` is dropped
    /// after the lock is released.
    pub fn with_or_insert_with<R>(
        &self,
        key: K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let hash = self.hash(&key);
        let index = self.shard_of(hash);
        {
            let held = self.hold();
            let shard = self.read(&held, index);
            if let Some(slot) = shard.find(hash, |slot| slot.hash == hash && slot.key == key) {
                return f(&slot.value);
            }
        }
        let held = self.hold();
        let mut shard = self.write(&held, index);
        let slot = match shard.entry(
            hash,
            |slot| slot.hash == hash && slot.key == key,
            stored_hash,
        ) {
            TableEntry::Occupied(entry) => entry.into_mut(),
            TableEntry::Vacant(entry) => {
                // If `init` panics, `key` (a parameter) is dropped after the
                // guard (a local), so with the lock released.
                let value = init();
                entry.insert(Slot { hash, key, value }).into_mut()
            }
        };
        f(&slot.value)
    }

    /// Runs `f` on the value for `key` under the shard's write lock; `None`
    /// when the key is absent.
    pub fn update<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let held = self.hold();
        let mut shard = self.write(&held, self.shard_of(hash));
        let slot = shard.find_mut(hash, |slot| slot.hash == hash && slot.key.borrow() == key)?;
        Some(f(&mut slot.value))
    }

    /// Atomically reads and rewrites the entry for `key`: `f` sees the
    /// current value (`None` if absent) and may replace it, set it to `None`
    /// (removing the entry) or leave it. Runs under the shard's write lock.
    /// If `f` panics, the entry is removed. A removed entry (and `key`, when
    /// the entry existed) is dropped after the lock is released.
    pub fn compute<R>(&self, key: K, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let hash = self.hash(&key);
        // Declared before the guard, so that they are dropped after the lock
        // is released, on return and if `f` panics alike.
        let mut value: Option<V> = None;
        let stored_key: K;
        let held = self.hold();
        let mut shard = self.write(&held, self.shard_of(hash));
        match shard.entry(
            hash,
            |slot| slot.hash == hash && slot.key == key,
            stored_hash,
        ) {
            TableEntry::Occupied(entry) => {
                let (slot, vacant) = entry.remove();
                stored_key = slot.key;
                value = Some(slot.value);
                let result = f(&mut value);
                if let Some(value) = value.take() {
                    // Reinserted under the key that was stored, as `HashMap`
                    // keeps it.
                    vacant.insert(Slot {
                        hash,
                        key: stored_key,
                        value,
                    });
                }
                result
            }
            TableEntry::Vacant(vacant) => {
                let result = f(&mut value);
                if let Some(value) = value.take() {
                    vacant.insert(Slot { hash, key, value });
                }
                result
            }
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ConcurrentHashMap<K, V, S> {
    /// Formats the entries shard by shard; the keys' and values' `Debug`
    /// runs under each shard's read lock.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for i in 0..self.shards.len() {
            let held = self.hold();
            let shard = self.read(&held, i);
            map.entries(shard.iter().map(|slot| (&slot.key, &slot.value)));
        }
        map.finish()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher + Default> FromIterator<(K, V)>
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
        assert_eq!(m.compute("z".into(), |v| v.map(|x| x + 1)), Some(8));
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
    fn grows_without_rehashing_through_hash() {
        // Many keys in one shard force the tables to grow; lookups must still
        // find every key by its stored hash.
        let m: ConcurrentHashMap<u64, u64> = ConcurrentHashMap::new();
        let n = if cfg!(miri) { 200 } else { 5_000 };
        for i in 0..n {
            assert_eq!(m.insert(i, i * 2), None);
        }
        assert_eq!(m.len(), n as usize);
        for i in 0..n {
            assert_eq!(m.get(&i), Some(i * 2));
        }
        for i in (0..n).step_by(2) {
            assert_eq!(m.remove(&i), Some(i * 2));
        }
        assert_eq!(m.len(), (n / 2) as usize);
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
