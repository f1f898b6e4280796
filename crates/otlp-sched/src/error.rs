//! Error types.

use std::any::Any;
use std::fmt;

/// Why [`Builder::build`](crate::Builder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The worker count was zero.
    #[error("a pool needs at least one worker, got 0")]
    ZeroWorkers,
    /// More workers than the sleep state can count.
    #[error("{requested} workers requested, at most {max} are supported")]
    TooManyWorkers {
        /// The requested count.
        requested: usize,
        /// The largest supported count.
        max: usize,
    },
    /// The stack size was zero.
    #[error("the worker stack size must be non-zero")]
    ZeroStackSize,
    /// The operating system refused to start a worker thread.
    #[error("failed to spawn worker thread {index}: {source}")]
    Spawn {
        /// Index of the worker that could not start.
        index: usize,
        /// The error from `std::thread::Builder::spawn`.
        #[source]
        source: std::io::Error,
    },
    /// The topology could not be detected or the placement could not be
    /// planned for this many workers.
    #[cfg(feature = "numa")]
    #[error("cannot plan the worker placement: {0}")]
    Placement(#[source] otlp_numa::NumaError),
    /// A worker could not pin itself to the CPU set of its plan.
    #[cfg(feature = "numa")]
    #[error("worker {worker} could not pin itself to CPUs {cpus}: {source}")]
    Pin {
        /// Index of the worker.
        worker: usize,
        /// The CPU set it was planned to run on.
        cpus: otlp_numa::CpuSet,
        /// The pinning error.
        #[source]
        source: otlp_numa::NumaError,
    },
}

/// A task the pool refused; the task is handed back.
pub enum SubmitError<F> {
    /// The pool is shut down (or shutting down) and accepts no new tasks.
    ShutDown(F),
}

impl<F> SubmitError<F> {
    /// The rejected task.
    pub fn into_inner(self) -> F {
        match self {
            SubmitError::ShutDown(task) => task,
        }
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown(_) => {
                f.write_str("the pool is shut down and accepts no new tasks (task handed back)")
            }
        }
    }
}

impl<F> std::error::Error for SubmitError<F> {}

/// Why a [`TaskHandle`](crate::TaskHandle) has no value.
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; this is the payload.
    Panicked(Box<dyn Any + Send>),
    /// `shutdown_now` dropped the task before it ran.
    Cancelled,
    /// The result was already taken (the handle was polled again after it
    /// returned `Ready`).
    ResultTaken,
}

impl TaskError {
    /// The panic message, when the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Panicked(payload) => payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }

    /// The panic payload, when the task panicked (to `resume_unwind` it).
    pub fn into_panic(self) -> Option<Box<dyn Any + Send>> {
        match self {
            TaskError::Panicked(payload) => Some(payload),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(_) => match self.panic_message() {
                Some(msg) => f.debug_tuple("Panicked").field(&msg).finish(),
                None => f.write_str("Panicked(..)"),
            },
            TaskError::Cancelled => f.write_str("Cancelled"),
            TaskError::ResultTaken => f.write_str("ResultTaken"),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "the task panicked: {msg}"),
                None => f.write_str("the task panicked"),
            },
            TaskError::Cancelled => {
                f.write_str("the task was dropped by shutdown_now before it ran")
            }
            TaskError::ResultTaken => f.write_str("the task's result was already taken"),
        }
    }
}

impl std::error::Error for TaskError {}

/// Why `shutdown`/`shutdown_now` could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Called from one of the pool's own workers, which cannot join itself.
    #[error("shutdown was called from one of the pool's own worker threads")]
    OnWorkerThread,
}
