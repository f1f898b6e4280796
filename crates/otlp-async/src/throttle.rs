//! [`LogThrottle`]: lets a repeated diagnostic through at most once per
//! interval, so a failure that repeats every batch cannot flood a log (or,
//! through a `tracing` → OpenTelemetry bridge, feed the pipeline that is
//! failing).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admits one occurrence of a repeated event per interval and counts the
/// ones it holds back, for the next admitted one to report.
///
/// The first occurrence is always admitted. Cheap when it says no: one
/// uncontended lock and a clock read; meant for failure paths, not for
/// every item.
///
/// ```
/// use std::time::Duration;
/// use otlp_async::LogThrottle;
///
/// let throttle = LogThrottle::new(Duration::from_secs(60));
/// assert_eq!(throttle.admit(), Some(0)); // logged
/// assert_eq!(throttle.admit(), None); // held back and counted
/// assert_eq!(throttle.admit(), None);
/// assert_eq!(throttle.held_back(), 2);
/// ```
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<State>,
}

struct State {
    /// When the next occurrence may be admitted; `None` before the first.
    next: Option<Instant>,
    held: u64,
}

impl LogThrottle {
    /// A throttle admitting at most one occurrence per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                next: None,
                held: 0,
            }),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many
    /// were held back since the last one logged; `None` when it is held
    /// back (and counted).
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        // Plain counters, no user code under the lock: a poisoned lock is
        // still consistent.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.next {
            Some(next) if now < next => {
                state.held += 1;
                None
            }
            _ => {
                state.next = Some(now + self.interval);
                Some(std::mem::take(&mut state.held))
            }
        }
    }

    /// Occurrences held back since the last one admitted.
    pub fn held_back(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).held
    }
}

impl fmt::Debug for LogThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogThrottle")
            .field("interval", &self.interval)
            .field("held_back", &self.held_back())
            .finish()
    }
}

impl Default for LogThrottle {
    /// One occurrence per 10 seconds.
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}
