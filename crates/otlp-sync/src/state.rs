//! The seed's `ConcurrentState`: a counter, a lifecycle and a hot-reloadable
//! configuration.

use std::sync::Arc;

use crate::config::ConfigCell;
use crate::lifecycle::{InvalidTransition, Lifecycle, State};
use crate::loom::{AtomicU64, Ordering};

/// The seed's example configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Upper bound on concurrent connections; must be positive.
    pub max_connections: usize,
    /// Per-request timeout in milliseconds; must be positive.
    pub timeout_ms: u64,
    /// Retries after the first attempt (0 is allowed).
    pub retry_count: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 100,
            timeout_ms: 10_000,
            retry_count: 3,
        }
    }
}

/// A [`Config`] that failed validation; the previous configuration stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_connections` was 0.
    #[error("max_connections must be positive")]
    ZeroMaxConnections,
    /// `timeout_ms` was 0.
    #[error("timeout_ms must be positive")]
    ZeroTimeout,
}

impl Config {
    /// Checks the invariants listed on the fields.
    ///
    /// # Errors
    ///
    /// The first violated invariant.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        Ok(())
    }
}

/// [`ConcurrentState::decrement`] on a zero counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("counter is already 0")]
pub struct CounterUnderflow;

/// Shared state of a running component: an atomic counter (e.g. in-flight
/// requests), a [`Lifecycle`] and a validated, hot-reloadable [`Config`].
///
/// Unlike the seed's bare `is_running` flag, the lifecycle distinguishes
/// starting, stopping, stopped and failed; unlike its `RwLock<Config>`,
/// config readers never contend with writers and can watch for changes.
///
/// ```
/// use otlp_sync::{Config, ConcurrentState};
///
/// let state = ConcurrentState::new(Config::default()).unwrap();
/// assert!(state.start());
/// assert!(!state.start()); // already running
/// state.increment();
/// assert_eq!(state.get_count(), 1);
/// state.update_config(|c| c.max_connections = 8).unwrap();
/// assert_eq!(state.get_config().max_connections, 8);
/// assert!(state.update_config(|c| c.timeout_ms = 0).is_err());
/// assert!(state.stop());
/// ```
#[derive(Debug)]
pub struct ConcurrentState {
    counter: AtomicU64,
    lifecycle: Lifecycle,
    config: ConfigCell<Config>,
}

impl ConcurrentState {
    /// New state in [`State::Created`] with counter 0.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` is invalid.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(ConcurrentState {
            counter: AtomicU64::new(0),
            lifecycle: Lifecycle::new(),
            config: ConfigCell::new(config),
        })
    }

    /// Adds 1; returns the new count (saturates at `u64::MAX`).
    pub fn increment(&self) -> u64 {
        let mut current = self.counter.load(Ordering::Relaxed);
        loop {
            let new = current.saturating_add(1);
            match self.counter.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return new,
                Err(actual) => current = actual,
            }
        }
    }

    /// Subtracts 1; returns the new count.
    ///
    /// # Errors
    ///
    /// [`CounterUnderflow`] if the count is 0 (it stays 0; the seed wrapped
    /// around to `u64::MAX`).
    pub fn decrement(&self) -> Result<u64, CounterUnderflow> {
        let mut current = self.counter.load(Ordering::Relaxed);
        loop {
            let new = current.checked_sub(1).ok_or(CounterUnderflow)?;
            match self.counter.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(new),
                Err(actual) => current = actual,
            }
        }
    }

    /// The current count.
    pub fn get_count(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// `Created -> Starting -> Running`. True if this call started it;
    /// false if it was not in `Created` (already started, or finished:
    /// `Stopped` and `Failed` are terminal).
    pub fn start(&self) -> bool {
        self.lifecycle.begin_start().is_ok() && self.lifecycle.mark_running().is_ok()
    }

    /// `Running -> Stopping -> Stopped`. True if this call stopped it.
    pub fn stop(&self) -> bool {
        self.lifecycle
            .transition(State::Running, State::Stopping)
            .is_ok()
            && self.lifecycle.mark_stopped().is_ok()
    }

    /// Whether the lifecycle is `Running`.
    pub fn is_running(&self) -> bool {
        self.lifecycle.is_running()
    }

    /// The lifecycle, for finer-grained transitions and waits.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Moves to `Failed` (from `Starting`, `Running` or `Stopping`).
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from `Created` or a terminal state.
    pub fn fail(&self) -> Result<State, InvalidTransition> {
        self.lifecycle.fail()
    }

    /// Edits a copy of the configuration and installs it if it validates.
    /// Readers are never blocked. Returns the new config version.
    ///
    /// # Errors
    ///
    /// [`ConfigError`]; the previous configuration stays.
    pub fn update_config<F>(&self, updater: F) -> Result<u64, ConfigError>
    where
        F: FnOnce(&mut Config),
    {
        self.config.update(|config| {
            updater(config);
            config.validate()
        })
    }

    /// The current configuration (lock-free, wait-free).
    pub fn get_config(&self) -> Arc<Config> {
        self.config.load()
    }

    /// The configuration cell, for versions and change notification.
    pub fn config(&self) -> &ConfigCell<Config> {
        &self.config
    }
}
