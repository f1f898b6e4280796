//! [`ConcurrentVec`]: an append-only vector with stable addresses.

use core::fmt;
use core::iter::FusedIterator;
use core::mem::{self, MaybeUninit};
use core::ptr;

use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, UnsafeCell};
use crate::unwind::drain_resuming;

/// log2 of the first bucket's length.
#[cfg(not(loom))]
const FIRST_SHIFT: u32 = 5;
#[cfg(loom)]
const FIRST_SHIFT: u32 = 0;
const FIRST: usize = 1 << FIRST_SHIFT;
/// Bucket `b` holds `FIRST << b` entries; this many buckets cover every
/// index below `usize::MAX - FIRST`.
const BUCKETS: usize = (usize::BITS - FIRST_SHIFT) as usize;

struct Entry<T> {
    ready: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Bucket and offset of index `i`.
#[inline(always)]
fn locate(i: usize) -> (usize, usize) {
    // Cannot overflow: `push` never hands out an index above `MAX_INDEX`.
    let j = i + FIRST;
    let bucket = (usize::BITS - 1 - j.leading_zeros() - FIRST_SHIFT) as usize;
    (bucket, j - (FIRST << bucket))
}

/// Largest index `push` hands out.
const MAX_INDEX: usize = usize::MAX - FIRST;

/// [`ConcurrentVec::with_capacity`] allocates buckets up front only while
/// they total at most this many bytes; the rest come lazily, on first use.
#[cfg(not(miri))]
const PREALLOCATE_BYTES: usize = 16 << 20;
/// Under Miri every entry costs thousands of interpreted instructions.
#[cfg(miri)]
const PREALLOCATE_BYTES: usize = 64 << 10;

/// An append-only concurrent vector: lock-free `push` that returns the new
/// element's index, and `get` that returns a plain `&T`.
///
/// Elements live in buckets of doubling size (32, 64, 128, … entries), each
/// allocated once, when first needed, and never moved or freed before the
/// vector is dropped, so
/// a reference returned by [`get`](Self::get) stays valid for as long as the
/// vector is borrowed, while other threads keep pushing.
///
/// `push` claims an index with one `fetch_add`, allocates the bucket if it is
/// the first to need it (a compare-and-swap settles races; the loser frees
/// its allocation), writes the value and marks the entry ready. An index
/// whose push is still in flight reads as `None`.
///
/// # Examples
///
/// ```
/// use otlp_lockfree::ConcurrentVec;
///
/// let v = ConcurrentVec::new();
/// let first = v.push("a");
/// let r = v.get(first).unwrap(); // a stable reference...
/// for _ in 0..1000 {
///     v.push("b"); // ...survives growth
/// }
/// assert_eq!(*r, "a");
/// assert_eq!(v.len(), 1001);
/// assert_eq!(v.iter().filter(|s| **s == "b").count(), 1000);
/// ```
pub struct ConcurrentVec<T> {
    buckets: [AtomicPtr<Entry<T>>; BUCKETS],
    /// Indices handed out.
    claimed: AtomicUsize,
    /// Pushes completed.
    count: AtomicUsize,
}

// SAFETY: the vector owns its `T`s: sending it sends them (`T: Send`).
unsafe impl<T: Send> Send for ConcurrentVec<T> {}
// SAFETY: sharing the vector lets other threads push (move `T` in: `T:
// Send`) and `get` (share `&T`: `T: Sync`).
unsafe impl<T: Send + Sync> Sync for ConcurrentVec<T> {}

impl<T> ConcurrentVec<T> {
    /// Creates an empty vector; nothing is allocated until the first push.
    pub fn new() -> Self {
        Self {
            buckets: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            claimed: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
        }
    }

    /// Creates an empty vector ready for about `capacity` elements.
    ///
    /// The buckets that cover the first `capacity` indices are allocated up
    /// front as long as they total at most 16 MiB; buckets beyond that, and
    /// any that cannot be allocated now, are allocated by the first push
    /// that needs them, exactly as with [`new`](Self::new). `capacity` is
    /// therefore a hint: any value, `usize::MAX` included, is accepted, and
    /// no capacity allocates gigabytes (or aborts on allocation failure)
    /// before anything is pushed.
    pub fn with_capacity(capacity: usize) -> Self {
        let vec = Self::new();
        if capacity == 0 {
            return vec;
        }
        let (last, _) = locate(capacity.min(MAX_INDEX) - 1);
        let mut bytes = 0usize;
        for b in 0..=last {
            let size = mem::size_of::<Entry<T>>().saturating_mul(Self::bucket_len(b));
            bytes = bytes.saturating_add(size);
            if bytes > PREALLOCATE_BYTES {
                break;
            }
            match Self::allocate(b) {
                // Relaxed: no other thread can see `vec` yet.
                Some(bucket) => vec.buckets[b].store(bucket, Ordering::Relaxed),
                None => break,
            }
        }
        vec
    }

    fn bucket_len(bucket: usize) -> usize {
        FIRST << bucket
    }

    /// A fresh bucket `b` of empty entries, or `None` if it cannot be
    /// allocated.
    fn allocate(b: usize) -> Option<*mut Entry<T>> {
        let len = Self::bucket_len(b);
        let mut entries: Vec<Entry<T>> = Vec::new();
        entries.try_reserve_exact(len).ok()?;
        entries.extend((0..len).map(|_| Entry {
            ready: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        Some(Box::into_raw(entries.into_boxed_slice()).cast::<Entry<T>>())
    }

    /// Bucket `b`'s first entry, allocating the bucket if needed.
    fn bucket(&self, b: usize) -> *mut Entry<T> {
        let current = self.buckets[b].load(Ordering::Acquire);
        if !current.is_null() {
            return current;
        }
        let len = Self::bucket_len(b);
        let Some(fresh) = Self::allocate(b) else {
            // Out of memory for the element being pushed: the same outcome
            // as a `Vec::push` that cannot grow.
            let layout = std::alloc::Layout::array::<Entry<T>>(len)
                .unwrap_or_else(|_| std::alloc::Layout::new::<Entry<T>>());
            std::alloc::handle_alloc_error(layout)
        };
        match self.buckets[b].compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` of a slice of
                // `len` entries in `allocate` and was never shared.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, len)) });
                winner
            }
        }
    }

    /// Appends `value` and returns its index.
    ///
    /// Indices are unique and handed out in claim order; a reference to the
    /// element is available through [`get`](Self::get) once `push` returns.
    pub fn push(&self, value: T) -> usize {
        let index = self.claimed.fetch_add(1, Ordering::Relaxed);
        // Reaching `MAX_INDEX` would need more elements than memory can
        // hold (every earlier bucket is allocated), so this only guards the
        // arithmetic below.
        assert!(index <= MAX_INDEX, "ConcurrentVec index space exhausted");
        let (b, offset) = locate(index);
        let base = self.bucket(b);
        // SAFETY: `offset < bucket_len(b)`, the bucket is allocated and never
        // freed before `self` drops, and index `index` was claimed by this
        // thread alone, so nobody else writes this entry; readers look at the
        // value only after seeing `ready` (released below).
        unsafe {
            let entry = &*base.add(offset);
            entry.value.with_mut(|p| p.write(MaybeUninit::new(value)));
            entry.ready.store(true, Ordering::Release);
        }
        self.count.fetch_add(1, Ordering::Release);
        index
    }

    /// The element at `index`, or `None` when no push for it has completed.
    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.claimed.load(Ordering::Acquire) {
            return None;
        }
        let (b, offset) = locate(index);
        let base = self.buckets[b].load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: the bucket is allocated with `bucket_len(b) > offset`
        // entries and lives as long as `self`.
        let entry = unsafe { &*base.add(offset) };
        if !entry.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: `ready` (acquired) shows the value fully written; it is
        // never written or moved again while `self` is borrowed.
        Some(unsafe { entry.value.with(|p| (*p).assume_init_ref()) })
    }

    /// Number of completed pushes.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no push has completed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates over the elements in index order, skipping indices whose
    /// push is still in flight.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            vec: self,
            index: 0,
            end: self.claimed.load(Ordering::Acquire),
        }
    }
}

impl<T> Default for ConcurrentVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ConcurrentVec<T> {
    /// Drops every element not dropped yet and frees every bucket.
    ///
    /// Resumable (see [`drain_resuming`]): an entry is marked not ready
    /// before its value is dropped, and a bucket is unlinked before it is
    /// freed, so a second call after a panicking destructor continues with
    /// the next element and never drops or frees anything twice.
    fn release(&mut self) {
        for (b, bucket) in self.buckets.iter().enumerate() {
            let base = bucket.load(Ordering::Relaxed);
            if base.is_null() {
                continue;
            }
            let len = Self::bucket_len(b);
            for i in 0..len {
                // SAFETY: `&mut self`: no push is in flight; the bucket holds
                // `len` entries and is still linked, so still allocated.
                let entry = unsafe { &*base.add(i) };
                if entry.ready.load(Ordering::Relaxed) {
                    entry.ready.store(false, Ordering::Relaxed);
                    // SAFETY: `ready` said the value is initialised, and it
                    // was just cleared, so this is the value's only drop.
                    unsafe { entry.value.with_mut(|p| (*p).assume_init_drop()) };
                }
            }
            bucket.store(ptr::null_mut(), Ordering::Relaxed);
            // SAFETY: the bucket came from `Box::into_raw` of `len` entries,
            // holds no initialised value any more, and was unlinked above, so
            // it is freed exactly once.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(base, len)) });
        }
    }
}

impl<T> Drop for ConcurrentVec<T> {
    fn drop(&mut self) {
        // One panicking element destructor must not leak the elements after
        // it (or the buckets): like `Vec`, keep dropping the rest.
        drain_resuming(|| self.release());
    }
}

impl<T: fmt::Debug> fmt::Debug for ConcurrentVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> Extend<T> for ConcurrentVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl<T> FromIterator<T> for ConcurrentVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut vec = Self::new();
        vec.extend(iter);
        vec
    }
}

/// Iterator over a [`ConcurrentVec`]'s elements, from [`ConcurrentVec::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    vec: &'a ConcurrentVec<T>,
    index: usize,
    end: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        while self.index < self.end {
            let i = self.index;
            self.index += 1;
            if let Some(value) = self.vec.get(i) {
                return Some(value);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.end - self.index))
    }
}

impl<T> FusedIterator for Iter<'_, T> {}

impl<'a, T> IntoIterator for &'a ConcurrentVec<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_buckets() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST - 1), (0, FIRST - 1));
        assert_eq!(locate(FIRST), (1, 0));
        assert_eq!(locate(3 * FIRST - 1), (1, 2 * FIRST - 1));
        assert_eq!(locate(3 * FIRST), (2, 0));
        assert_eq!(locate(MAX_INDEX).0, BUCKETS - 1);
    }

    #[test]
    fn push_get_iter_drop() {
        let v = ConcurrentVec::with_capacity(10);
        assert_eq!(v.get(0), None);
        assert!(v.is_empty());
        for i in 0..200 {
            assert_eq!(v.push(i.to_string()), i);
        }
        let addr = v.get(5).unwrap() as *const String;
        for i in 200..400 {
            v.push(i.to_string());
        }
        assert_eq!(v.get(5).unwrap() as *const String, addr);
        assert_eq!(v.get(399).map(String::as_str), Some("399"));
        assert_eq!(v.get(400), None);
        assert_eq!(v.get(usize::MAX), None);
        assert_eq!(v.iter().count(), 400);
        assert_eq!(v.len(), 400);
    }
}
