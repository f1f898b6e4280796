//! Exponential back-off with jitter for retryable export errors, as the OTLP
//! exporters specify it, and the [`Retry`] wrapper that applies it to any
//! [`Exporter`].

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::export::{ExportError, Exporter};

/// Back-off settings. [`Default`] gives the OTLP exporter defaults: first
/// wait 5 s, waits grow by 1.5× up to 30 s each, no new attempt once 300 s
/// have passed since the first; each wait is randomised by ±50 % (jitter) so
/// that many clients do not retry in step.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub initial_interval: Duration,
    /// Longest single wait.
    pub max_interval: Duration,
    /// No retry starts once this much time has passed since the first
    /// attempt.
    pub max_elapsed_time: Duration,
    /// Growth factor between consecutive waits (at least 1).
    pub multiplier: f64,
    /// Jitter: each wait is drawn uniformly from
    /// `interval × [1 − f, 1 + f]`; 0 disables it. Clamped to `[0, 1]`.
    pub randomization_factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

impl RetryPolicy {
    /// Sets the first wait.
    #[must_use]
    pub fn with_initial_interval(mut self, d: Duration) -> Self {
        self.initial_interval = d;
        self
    }

    /// Sets the longest single wait.
    #[must_use]
    pub fn with_max_interval(mut self, d: Duration) -> Self {
        self.max_interval = d;
        self
    }

    /// Sets the total time after which no retry starts.
    #[must_use]
    pub fn with_max_elapsed_time(mut self, d: Duration) -> Self {
        self.max_elapsed_time = d;
        self
    }

    /// Sets the growth factor (values below 1, or NaN, are treated as 1).
    #[must_use]
    pub fn with_multiplier(mut self, m: f64) -> Self {
        self.multiplier = m;
        self
    }

    /// Sets the jitter fraction (clamped to `[0, 1]`).
    #[must_use]
    pub fn with_randomization_factor(mut self, f: f64) -> Self {
        self.randomization_factor = f;
        self
    }

    /// A fresh back-off schedule following this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            current: self.initial_interval,
            elapsed: Duration::ZERO,
            rng: seed(),
        }
    }
}

/// One retry sequence: [`next_delay`](Backoff::next_delay) yields the waits.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    current: Duration,
    elapsed: Duration,
    rng: u64,
}

impl Backoff {
    /// The next wait, or `None` once the waits so far (plus this one) would
    /// pass `max_elapsed_time`. `hint` (a server's `retry-after`) replaces
    /// the computed wait when it is longer.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        let unit = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let p = &self.policy;
        let base = self.current.min(p.max_interval);
        let f = if p.randomization_factor.is_nan() {
            0.0
        } else {
            p.randomization_factor.clamp(0.0, 1.0)
        };
        let jittered = base.as_secs_f64() * (1.0 - f + 2.0 * f * unit);
        let mut delay = Duration::try_from_secs_f64(jittered).unwrap_or(p.max_interval);
        if let Some(hint) = hint {
            delay = delay.max(hint);
        }
        let m = if p.multiplier.is_nan() || p.multiplier < 1.0 {
            1.0
        } else {
            p.multiplier
        };
        self.current = Duration::try_from_secs_f64(base.as_secs_f64() * m)
            .unwrap_or(p.max_interval)
            .min(p.max_interval);
        let total = self.elapsed.saturating_add(delay);
        if total > p.max_elapsed_time {
            return None;
        }
        self.elapsed = total;
        Some(delay)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn seed() -> u64 {
    // `RandomState` is seeded from the OS once per thread and then varied per
    // instance: a dependency-free source of distinct seeds.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

/// Wraps an [`Exporter`] so that batches failing with a
/// [retryable](ExportError::is_retryable) error are sent again after an
/// exponential back-off with jitter; other errors, and the last retryable
/// one once the policy gives up, are returned as they are.
///
/// The whole retried export runs inside the processor's export timeout; raise
/// `export_timeout` if retries should be allowed to take longer.
///
/// ```
/// use std::time::Duration;
/// use otlp_async::{ExportError, Exporter, Retry, RetryPolicy};
///
/// struct Flaky;
/// impl Exporter<u8> for Flaky {
///     async fn export(&self, _batch: &[u8]) -> Result<(), ExportError> {
///         Err(ExportError::retryable("unavailable"))
///     }
/// }
///
/// let policy = RetryPolicy::default()
///     .with_initial_interval(Duration::from_millis(1))
///     .with_max_elapsed_time(Duration::from_millis(20));
/// let exporter = Retry::new(Flaky, policy);
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let result = rt.block_on(exporter.export(&[1, 2, 3]));
/// assert!(result.unwrap_err().is_retryable());
/// ```
#[derive(Debug, Clone)]
pub struct Retry<X> {
    inner: X,
    policy: RetryPolicy,
}

impl<X> Retry<X> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: X, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped exporter.
    pub fn inner(&self) -> &X {
        &self.inner
    }

    /// The back-off policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<T: Sync, X: Exporter<T>> Exporter<T> for Retry<X> {
    async fn export(&self, batch: &[T]) -> Result<(), ExportError> {
        let mut backoff: Option<Backoff> = None;
        loop {
            match self.inner.export(batch).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    let schedule = backoff.get_or_insert_with(|| self.policy.backoff());
                    match schedule.next_delay(e.retry_after_hint()) {
                        Some(delay) => {
                            tracing::debug!(error = %e, ?delay, "retrying export");
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn shutdown(&self) -> impl Future<Output = Result<(), ExportError>> + Send {
        self.inner.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_cap_and_stop_without_jitter() {
        let policy = RetryPolicy::default().with_randomization_factor(0.0);
        let mut b = policy.backoff();
        let mut delays = Vec::new();
        while let Some(d) = b.next_delay(None) {
            delays.push(d.as_secs_f64());
        }
        assert_eq!(&delays[..5], &[5.0, 7.5, 11.25, 16.875, 25.3125]);
        assert!(delays[5..].iter().all(|&d| d == 30.0));
        let total: f64 = delays.iter().sum();
        assert!(total <= 300.0 && total + 30.0 > 300.0, "{total}");
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let policy = RetryPolicy::default().with_max_elapsed_time(Duration::from_secs(100_000));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = policy.backoff();
            let d = b.next_delay(None).unwrap();
            assert!(
                d >= Duration::from_millis(2500) && d <= Duration::from_millis(7500),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 1, "jitter never varied");
    }

    #[test]
    fn hint_wins_when_longer_and_bad_numbers_are_tamed() {
        let policy = RetryPolicy::default()
            .with_randomization_factor(f64::NAN)
            .with_multiplier(0.1);
        let mut b = policy.backoff();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(20))),
            Some(Duration::from_secs(20))
        );
        assert_eq!(b.next_delay(None), Some(Duration::from_secs(5)));
    }
}
