//! Fixed-memory log-linear latency histogram (HDR-style).
//!
//! Values are nanoseconds (`u64`). Every power-of-two range `[2^k, 2^(k+1))`
//! is split into [`SUB_BUCKETS`](Histogram::SUB_BUCKETS) equal-width
//! buckets, and values below `SUB_BUCKETS` get one bucket each. A bucket is
//! therefore never wider than `1 / SUB_BUCKETS` of its lower bound, and a
//! quantile reported as the bucket's midpoint is within half of that (0.39%
//! with 128 sub-buckets) of the true value. The tracked range ends at
//! [`Histogram::MAX_TRACKED`] (about 73 minutes); larger values are counted
//! in one overflow bucket above it (so no finite bucket bound claims them),
//! while `max` stays exact and `sum` saturates at `u64::MAX`.
//!
//! The bucket index is computed without branches:
//! `shift = msb(v | SUB_BUCKETS) - SUB_BITS`, `index = (shift << SUB_BITS) + (v >> shift)`,
//! with `v` clamped to `MAX_TRACKED + 1`, whose index is the overflow bucket.

use std::fmt;
use std::time::Duration;

use crate::sync::{AtomicBool, AtomicU64, Ordering, add};

/// Number of bits of sub-bucket resolution per power of two.
#[cfg(not(loom))]
const SUB_BITS: u32 = 7;
/// Highest most-significant-bit position tracked with full precision.
#[cfg(not(loom))]
const MAX_MSB: u32 = 41;
// Under loom the histogram shrinks to a handful of buckets so that models
// stay small; the bucket math is the same code.
#[cfg(loom)]
const SUB_BITS: u32 = 1;
#[cfg(loom)]
const MAX_MSB: u32 = 3;

const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Buckets of the tracked range `0..=MAX_TRACKED`.
const TRACKED_BUCKETS: usize = ((MAX_MSB - SUB_BITS + 2) as usize) << SUB_BITS;
/// Index of the overflow bucket: every value above `MAX_TRACKED`. It is the
/// index the bucket formula gives `MAX_TRACKED + 1`.
const OVERFLOW: usize = TRACKED_BUCKETS;
/// All buckets, the overflow bucket included.
const BUCKET_COUNT: usize = TRACKED_BUCKETS + 1;
const MAX_TRACKED: u64 = (1u64 << (MAX_MSB + 1)) - 1;

/// Index of the bucket that holds `value` (values above the tracked range
/// land in the overflow bucket).
#[inline(always)]
pub(crate) fn bucket_index(value: u64) -> usize {
    let v = if value > MAX_TRACKED {
        MAX_TRACKED + 1
    } else {
        value
    };
    let msb = 63 - (v | SUB_COUNT).leading_zeros();
    let shift = msb - SUB_BITS;
    ((shift as usize) << SUB_BITS) + (v >> shift) as usize
}

/// Smallest value that maps to bucket `index`.
#[inline]
pub(crate) fn bucket_lower(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_COUNT {
        index
    } else {
        let shift = (index >> SUB_BITS) - 1;
        let mantissa = (index & (SUB_COUNT - 1)) + SUB_COUNT;
        mantissa << shift
    }
}

/// Width of bucket `index` (how many distinct values map to it).
#[inline]
pub(crate) fn bucket_width(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_COUNT {
        1
    } else {
        1 << ((index >> SUB_BITS) - 1)
    }
}

/// Largest value that maps to bucket `index` (`u64::MAX` for the overflow
/// bucket).
#[inline]
pub(crate) fn bucket_upper(index: usize) -> u64 {
    if index >= OVERFLOW {
        return u64::MAX;
    }
    bucket_lower(index) + (bucket_width(index) - 1)
}

/// Value reported for a quantile that falls in bucket `index`: the middle
/// of the bucket, which halves the worst-case relative error. The overflow
/// bucket has no useful middle; its lower bound is what is known (the
/// caller clamps it to `[min, max]`, so a lone overflow value is exact).
#[inline]
fn bucket_midpoint(index: usize) -> u64 {
    if index >= OVERFLOW {
        return MAX_TRACKED + 1;
    }
    bucket_lower(index) + bucket_width(index) / 2
}

/// Fixed-point scale of a quantile: `q` is taken to 15 decimal places.
const QUANTILE_SCALE: u64 = 1_000_000_000_000_000;

/// The nearest rank `ceil(q * count)`, clamped to `1..=count`, computed on
/// `q` rounded to 15 decimal places and integer arithmetic.
///
/// `q * count as f64` is not exact: `0.07 * 100.0` is `7.000000000000001`,
/// whose ceiling is rank 8, one past the rank the caller asked for. Scaling
/// by `10^15` and rounding recovers the decimal the caller wrote (for up to
/// 15 places: the scaled value is below `2^50`, where the two roundings
/// together err by less than one half), and `u128` holds the product with
/// any `u64` count.
fn nearest_rank(q: f64, count: u64) -> u64 {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    // In 0..=10^15, so the cast is exact.
    let scaled = (q * QUANTILE_SCALE as f64).round() as u128;
    let scale = u128::from(QUANTILE_SCALE);
    let rank = (scaled * u128::from(count)).div_ceil(scale);
    // rank <= count because scaled <= scale.
    (rank as u64).clamp(1, count)
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX` (584 years).
#[inline(always)]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// A fixed-memory latency histogram with bounded relative error.
///
/// `Histogram` is the plain (single-owner) form: [`record`](Self::record)
/// takes `&mut self`. [`ConcurrencyMonitor`](crate::ConcurrencyMonitor)
/// keeps atomic, per-shard versions of the same layout and merges them into
/// a `Histogram` when you read it, so the value you get back supports every
/// method here.
///
/// * Memory: [`Histogram::BUCKETS`] `u64` counters (about 36 KiB), allocated
///   once in [`new`](Self::new); recording never allocates.
/// * Precision: any quantile is within 1% (in fact within
///   `1 / (2 * SUB_BUCKETS)`, 0.39%) of the exact value for values from
///   1 ns to [`MAX_TRACKED`](Self::MAX_TRACKED) ns (about 73 minutes);
///   values below [`SUB_BUCKETS`](Self::SUB_BUCKETS) are exact. Values above
///   `MAX_TRACKED` share one overflow bucket.
/// * `min`, `max` and `count` are exact; `sum` is exact until it would pass
///   `u64::MAX` ns (584 years), where it saturates.
///
/// ```
/// use otlp_monitor::Histogram;
///
/// let mut h = Histogram::new();
/// for v in 1..=1000u64 {
///     h.record(v * 1_000); // 1 µs ..= 1 ms
/// }
/// let p99 = h.quantile(0.99);
/// assert!((p99 as f64 - 990_000.0).abs() / 990_000.0 < 0.01);
/// assert_eq!(h.count(), 1000);
/// assert_eq!(h.max(), 1_000_000);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    /// Number of buckets, the overflow bucket included (fixed; the memory
    /// is `BUCKETS * 8` bytes).
    pub const BUCKETS: usize = BUCKET_COUNT;
    /// Buckets per power of two; the relative bucket width is at most
    /// `1 / SUB_BUCKETS`.
    pub const SUB_BUCKETS: u64 = SUB_COUNT;
    /// Largest value (in nanoseconds) tracked with full precision, about
    /// 73 minutes. Larger values are counted in one overflow bucket:
    /// [`count_at_or_below`](Self::count_at_or_below) of any bound but
    /// `u64::MAX` leaves them out, and a quantile that falls among them
    /// reports `MAX_TRACKED + 1` clamped to `[min, max]`.
    pub const MAX_TRACKED: u64 = MAX_TRACKED;

    /// Creates an empty histogram. This is the only allocation it makes.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKET_COUNT].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `n` occurrences of `value` (nanoseconds).
    #[inline]
    pub fn record_n(&mut self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let idx = bucket_index(value);
        self.counts[idx] = self.counts[idx].saturating_add(n);
        self.count = self.count.saturating_add(n);
        self.sum = self.sum.saturating_add(value.saturating_mul(n));
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Records a duration (saturating at `u64::MAX` nanoseconds).
    #[inline]
    pub fn record_duration(&mut self, d: Duration) {
        self.record(duration_to_nanos(d));
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `true` when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of all recorded values in nanoseconds (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Smallest recorded value, or 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    /// Largest recorded value, or 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the recorded values in nanoseconds, or 0 when empty.
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// The value at quantile `q` (0.0 ..= 1.0) in nanoseconds.
    ///
    /// The quantile is the smallest recorded value `v` such that at least
    /// `ceil(q * count)` values are `<= v` (the usual "nearest rank"
    /// definition), reported as the midpoint of its bucket and clamped to
    /// `[min, max]`. The rank is computed exactly, on `q` rounded to 15
    /// decimal places: with 7 values of 1 µs among 100, `quantile(0.07)` is
    /// 1 µs (rank 7), although `0.07 * 100.0` is `7.000000000000001` in
    /// floating point. `q` outside `0..=1` is clamped; NaN is treated as 0.
    /// Returns 0 for an empty histogram.
    pub fn quantile(&self, q: f64) -> u64 {
        self.quantiles([q])[0]
    }

    /// Several quantiles in one pass over the buckets (same definition as
    /// [`quantile`](Self::quantile); `qs` may be in any order).
    ///
    /// ```
    /// use otlp_monitor::Histogram;
    ///
    /// let mut h = Histogram::new();
    /// (1..=100).for_each(|v| h.record(v));
    /// assert_eq!(h.quantiles([0.5, 0.99, 0.0]), [50, 99, 1]);
    /// ```
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [u64; N] {
        let mut out = [0u64; N];
        if self.count == 0 {
            return out;
        }
        let ranks = qs.map(|q| nearest_rank(q, self.count));
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_unstable_by_key(|&i| ranks[i]);
        let mut next = 0;
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            if next == N {
                break;
            }
            if c == 0 {
                continue;
            }
            seen = seen.saturating_add(c);
            while next < N && ranks[order[next]] <= seen {
                out[order[next]] = self.rank_value(ranks[order[next]], idx);
                next += 1;
            }
        }
        while next < N {
            out[order[next]] = self.max;
            next += 1;
        }
        out
    }

    /// The reported value for `rank` found in bucket `idx`.
    fn rank_value(&self, rank: u64, idx: usize) -> u64 {
        if rank == self.count {
            self.max
        } else if rank == 1 {
            self.min
        } else {
            // `max(min).min(max)` rather than `clamp`: never panics.
            bucket_midpoint(idx).max(self.min()).min(self.max)
        }
    }

    /// [`quantile`](Self::quantile) as a [`Duration`].
    pub fn quantile_duration(&self, q: f64) -> Duration {
        Duration::from_nanos(self.quantile(q))
    }

    /// Number of recorded values that are `<= value`, at bucket precision:
    /// the bucket containing `value` is counted whole.
    ///
    /// Values above [`MAX_TRACKED`](Self::MAX_TRACKED) are counted only for
    /// `value == u64::MAX`: their exact size is unknown, so no smaller bound
    /// may claim them (a 10-hour sample is not `<= 2 h`).
    pub fn count_at_or_below(&self, value: u64) -> u64 {
        let last = if value == u64::MAX {
            OVERFLOW
        } else {
            bucket_index(value).min(OVERFLOW - 1)
        };
        self.counts[..=last]
            .iter()
            .fold(0u64, |acc, &c| acc.saturating_add(c))
    }

    /// Adds every value of `other` to `self`.
    pub fn merge(&mut self, other: &Histogram) {
        for (dst, &src) in self.counts.iter_mut().zip(other.counts.iter()) {
            *dst = dst.saturating_add(src);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        if other.count > 0 {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
    }

    /// Forgets every recorded value (keeps the memory).
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    /// Iterates over the non-empty buckets as `(lowest value, highest value,
    /// count)`, in increasing order.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(idx, &c)| (bucket_lower(idx), bucket_upper(idx), c))
    }

    /// The values recorded in `self` but not in `earlier`, assuming `self`
    /// is a later snapshot of the same monotonic source.
    ///
    /// `min`/`max` of the result come from the bucket bounds (they are exact
    /// below `SUB_BUCKETS` and within one bucket above).
    pub(crate) fn delta_since(&self, earlier: &Histogram) -> Histogram {
        let mut out = Histogram::new();
        let mut count = 0u64;
        let mut first = None;
        let mut last = None;
        for (idx, ((dst, &now), &before)) in out
            .counts
            .iter_mut()
            .zip(self.counts.iter())
            .zip(earlier.counts.iter())
            .enumerate()
        {
            let d = now.saturating_sub(before);
            *dst = d;
            if d > 0 {
                count += d;
                first.get_or_insert(idx);
                last = Some(idx);
            }
        }
        out.count = count;
        out.sum = if count == 0 {
            0
        } else if self.sum == u64::MAX {
            // Saturated: what the window added is unknown, so it stays
            // saturated rather than shrinking by the earlier total.
            u64::MAX
        } else {
            self.sum.saturating_sub(earlier.sum)
        };
        if let (Some(lo), Some(hi)) = (first, last) {
            out.min = bucket_lower(lo);
            out.max = bucket_upper(hi);
        }
        out
    }

    /// Installs min/max tracked outside the buckets (the shards' exact
    /// trackers), checked against the buckets: a value that does not fall
    /// in the first (last) non-empty bucket belongs to an event the buckets
    /// do not hold, or misses one (a read racing a record, or a `reset`
    /// racing a record), so the bucket bound is used instead. After
    /// recording quiesces the trackers are exact and kept as they are.
    pub(crate) fn set_min_max(&mut self, min: u64, max: u64) {
        let Some(first) = self.counts.iter().position(|&c| c > 0) else {
            self.min = u64::MAX;
            self.max = 0;
            return;
        };
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(first);
        self.min = if bucket_index(min) == first && min <= max {
            min
        } else {
            bucket_lower(first)
        };
        self.max = if bucket_index(max) == last {
            max
        } else {
            bucket_upper(last)
        };
        if self.max < self.min {
            self.max = self.min;
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        struct Buckets<'a>(&'a Histogram);
        impl serde::Serialize for Buckets<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.buckets().map(|(lo, hi, c)| [lo, hi, c]))
            }
        }

        let mut s = serializer.serialize_struct("Histogram", 6)?;
        s.serialize_field("count", &self.count)?;
        s.serialize_field("sum_ns", &self.sum)?;
        s.serialize_field("min_ns", &self.min())?;
        s.serialize_field("max_ns", &self.max)?;
        s.serialize_field("mean_ns", &self.mean())?;
        s.serialize_field("buckets", &Buckets(self))?;
        s.end()
    }
}

/// The concurrent form of [`Histogram`] used inside a monitor shard:
/// relaxed atomic bucket counters plus exact min/max and a saturating sum.
///
/// Writers publish with the `Release` increment of the shard's event
/// counter that follows (see `monitor.rs`); the histogram's own fields use
/// `Relaxed` because readers only need them to be at least as new as the
/// counter they read first.
pub(crate) struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    /// Set before the first value is recorded and never cleared, so a
    /// reader can skip the bucket array of a shard no thread has used.
    used: AtomicBool,
}

impl AtomicHistogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: (0..BUCKET_COUNT).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            used: AtomicBool::new(false),
        }
    }

    /// Whether any value was ever recorded here (read after the shard's
    /// event counters: a counted event's `used` store, or the `true` its
    /// thread loaded, is visible by coherence).
    #[inline]
    pub(crate) fn is_used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// Records one value: min/max first, then sum and bucket.
    ///
    /// `exclusive`: the calling thread owns this shard (no other thread
    /// records into it), so sum and bucket use load + store. Min/max always
    /// use a CAS when they change, because `reset` writes them from the
    /// reader's thread.
    #[inline(always)]
    pub(crate) fn record(&self, value: u64, exclusive: bool) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Release);
        }
        // Min and max only write when they improve, so the common case is
        // two plain loads of a line this shard's thread already owns.
        let mut cur = self.max.load(Ordering::Relaxed);
        while value > cur {
            match self
                .max
                .compare_exchange_weak(cur, value, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let mut cur = self.min.load(Ordering::Relaxed);
        while value < cur {
            match self
                .min
                .compare_exchange_weak(cur, value, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        add_saturating(&self.sum, value, exclusive);
        add(
            &self.counts[bucket_index(value)],
            1,
            exclusive,
            Ordering::Release,
        );
    }

    /// Adds this shard's buckets and sum into `into` (min/max are merged by
    /// the caller through [`Self::min_max`]).
    pub(crate) fn add_to(&self, into: &mut Histogram) {
        if !self.is_used() {
            return;
        }
        let mut count = 0u64;
        for (dst, src) in into.counts.iter_mut().zip(self.counts.iter()) {
            let c = src.load(Ordering::Acquire);
            *dst = dst.saturating_add(c);
            count = count.saturating_add(c);
        }
        into.count = into.count.saturating_add(count);
        into.sum = into.sum.saturating_add(self.sum.load(Ordering::Relaxed));
    }

    /// Current exact `(min, max)` of this shard; `(u64::MAX, 0)` when empty.
    pub(crate) fn min_max(&self) -> (u64, u64) {
        (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }

    /// Restarts min/max tracking (used by `reset`).
    pub(crate) fn reset_min_max(&self) {
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }
}

/// Adds `n` to a sum that saturates at `u64::MAX`, like
/// [`Histogram::record`]'s: a wrapped sum would turn `Duration::MAX` plus
/// one second into one second. `exclusive` (the shard's owner is the only
/// writer): load + store; otherwise a CAS loop, which stops writing once
/// the sum is saturated.
#[inline(always)]
fn add_saturating(sum: &AtomicU64, n: u64, exclusive: bool) {
    let cur = sum.load(Ordering::Relaxed);
    if exclusive {
        sum.store(cur.saturating_add(n), Ordering::Relaxed);
        return;
    }
    let mut cur = cur;
    loop {
        let next = cur.saturating_add(n);
        if next == cur {
            return;
        }
        match sum.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn index_is_monotonic_and_contiguous() {
        let mut prev = 0;
        let end = if cfg!(miri) { 3_000u64 } else { 100_000 };
        for v in 0..end {
            let idx = bucket_index(v);
            assert!(
                idx == prev || idx == prev + 1,
                "v={v} idx={idx} prev={prev}"
            );
            assert!(bucket_lower(idx) <= v && v <= bucket_upper(idx));
            prev = idx;
        }
        assert_eq!(bucket_index(MAX_TRACKED), OVERFLOW - 1);
        assert_eq!(bucket_upper(OVERFLOW - 1), MAX_TRACKED);
        assert_eq!(bucket_index(MAX_TRACKED + 1), OVERFLOW);
        assert_eq!(bucket_index(u64::MAX), OVERFLOW);
        assert_eq!(bucket_lower(OVERFLOW), MAX_TRACKED + 1);
        assert_eq!(bucket_upper(OVERFLOW), u64::MAX);
        assert_eq!(OVERFLOW, BUCKET_COUNT - 1);
    }

    #[test]
    fn nearest_rank_is_exact_for_decimal_quantiles() {
        assert_eq!(nearest_rank(0.07, 100), 7);
        assert_eq!(nearest_rank(0.5, 3), 2);
        assert_eq!(nearest_rank(0.999, 1000), 999);
        assert_eq!(nearest_rank(0.9999, 1000), 1000);
        assert_eq!(nearest_rank(1.0 / 3.0, 3), 1);
        assert_eq!(nearest_rank(0.0, 10), 1);
        assert_eq!(nearest_rank(1.0, u64::MAX), u64::MAX);
        assert_eq!(nearest_rank(0.5, u64::MAX), u64::MAX / 2 + 1);
        assert_eq!(nearest_rank(f64::NAN, 5), 1);
        assert_eq!(nearest_rank(-1.0, 5), 1);
        assert_eq!(nearest_rank(2.0, 5), 5);
    }

    #[test]
    fn bucket_bounds_round_trip_across_range() {
        for idx in 0..TRACKED_BUCKETS {
            let lo = bucket_lower(idx);
            let hi = bucket_upper(idx);
            assert_eq!(bucket_index(lo), idx);
            assert_eq!(bucket_index(hi), idx);
            if idx + 1 < BUCKET_COUNT {
                assert_eq!(bucket_lower(idx + 1), hi + 1);
            }
            // Relative width bound that gives the 1% guarantee.
            assert!(bucket_width(idx) == 1 || bucket_width(idx) * SUB_COUNT <= lo);
        }
    }

    #[test]
    fn one_hour_is_tracked() {
        let hour = 3_600_000_000_000u64;
        assert!(hour <= MAX_TRACKED);
        let mut h = Histogram::new();
        h.record(hour);
        h.record(1);
        let q = h.quantile(0.5);
        assert_eq!(q, 1);
        assert_eq!(h.quantile(1.0), hour);
    }

    #[test]
    fn empty_and_edge_quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.min(), 0);
        h.record(500);
        h.record(700);
        assert_eq!(h.quantile(f64::NAN), 500);
        assert_eq!(h.quantile(-3.0), 500);
        assert_eq!(h.quantile(7.0), 700);
        assert_eq!(h.mean(), 600);
        h.reset();
        assert!(h.is_empty());
        assert_eq!(h.max(), 0);
    }

    #[test]
    fn merge_and_delta() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..1000 {
            a.record(v);
            b.record(v + 10_000);
        }
        let before = a.clone();
        a.merge(&b);
        assert_eq!(a.count(), 2000);
        assert_eq!(a.min(), 0);
        assert_eq!(a.max(), 10_999);
        let d = a.delta_since(&before);
        assert_eq!(d.count(), 1000);
        assert_eq!(d.sum(), b.sum());
        assert!(d.min() <= 10_000 && d.max() >= 10_999);
        assert_eq!(a.count_at_or_below(999), 1000);
    }
}
