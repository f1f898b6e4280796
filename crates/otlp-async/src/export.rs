//! The [`Exporter`] trait the [`BatchProcessor`](crate::BatchProcessor) hands
//! its batches to, and the [`ExportError`] it reports back.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Why an export failed, and whether trying again may help.
///
/// The distinction drives [`Retry`](crate::Retry): only
/// [`ExportError::Retryable`] errors are retried (OTLP's "retryable" status
/// codes such as `UNAVAILABLE` or HTTP 429/502/503/504 map here); everything
/// else fails the batch at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A transient failure: the same batch may succeed later.
    #[error("retryable export failure: {message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// A server-supplied hint (OTLP `RetryInfo`, HTTP `Retry-After`) for
        /// how long to wait before the next attempt.
        retry_after: Option<Duration>,
    },
    /// A permanent failure: retrying the same batch cannot succeed.
    #[error("export failed: {message}")]
    Permanent {
        /// What went wrong.
        message: String,
    },
    /// The export did not finish within its time limit.
    #[error("export timed out after {0:?}")]
    Timeout(Duration),
    /// The exporter has been shut down and accepts no more batches.
    #[error("exporter is shut down")]
    Shutdown,
}

impl ExportError {
    /// A retryable error with `message` and no server hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A retryable error carrying the server's back-off hint.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// A permanent error with `message`.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// Whether retrying the same batch may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The server's back-off hint, if it sent one.
    pub fn retry_after_hint(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Where a [`BatchProcessor`](crate::BatchProcessor) sends its batches: an
/// OTLP client, a file, a test sink.
///
/// `export` receives the batch by reference so that a wrapper such as
/// [`Retry`](crate::Retry) can send the same batch again without cloning it.
/// The processor runs exports on its own runtime (see the crate docs), so
/// the returned futures must be `Send`; writing `async fn export(...)` in an
/// impl is fine as long as the body is `Send`.
///
/// ```
/// use otlp_async::{ExportError, Exporter};
///
/// struct Stdout;
///
/// impl Exporter<String> for Stdout {
///     async fn export(&self, batch: &[String]) -> Result<(), ExportError> {
///         for line in batch {
///             println!("{line}");
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Exporter<T>: Send + Sync + 'static {
    /// Sends one batch. The batch is never empty. The processor bounds the
    /// returned future by its export timeout and drops it when that passes.
    fn export(&self, batch: &[T]) -> impl Future<Output = Result<(), ExportError>> + Send;

    /// Sends one batch the processor no longer needs; the processor calls
    /// this one. The default lends the batch to [`export`](Self::export);
    /// override it when the destination wants the items by value (an
    /// OpenTelemetry SDK exporter takes `Vec<SpanData>`), so that nothing is
    /// cloned.
    fn export_owned(&self, batch: Vec<T>) -> impl Future<Output = Result<(), ExportError>> + Send
    where
        T: Send + Sync,
    {
        async move { self.export(&batch).await }
    }

    /// An empty buffer, with room for at least `capacity` items, that the
    /// processor fills with the next batch before handing it to
    /// [`export_owned`](Self::export_owned). The default allocates one.
    ///
    /// Override it when the exporter gets its batches' buffers back (for
    /// example a pool its `export_owned` returns them to): a batch of large
    /// items is a large allocation, which the system allocator may serve
    /// with fresh pages and hand back to the kernel every time, so that
    /// filling each batch costs a page fault per page. A buffer that is not
    /// empty is cleared first.
    fn batch_buffer(&self, capacity: usize) -> Vec<T> {
        Vec::with_capacity(capacity)
    }

    /// Releases the exporter's resources; called once by the processor's
    /// `shutdown` after the final flush. The default does nothing.
    fn shutdown(&self) -> impl Future<Output = Result<(), ExportError>> + Send {
        async { Ok(()) }
    }
}

/// An [`Exporter`] made from a closure that takes each batch by value; see
/// [`exporter_fn`].
pub struct ExporterFn<F> {
    f: F,
}

impl<F> fmt::Debug for ExporterFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterFn").finish_non_exhaustive()
    }
}

/// Builds an [`Exporter`] from a closure `Fn(Vec<T>) -> impl Future<Output =
/// Result<(), ExportError>>`. A processor hands the closure its batch by
/// value; only wrappers that lend the batch (such as [`Retry`](crate::Retry))
/// make the closure work on a copy (`T: Clone`).
///
/// ```
/// use otlp_async::{ExportError, exporter_fn};
///
/// let exporter = exporter_fn(|batch: Vec<u64>| async move {
///     assert!(!batch.is_empty());
///     Ok::<(), ExportError>(())
/// });
/// # let _ = exporter;
/// ```
pub fn exporter_fn<T, F, Fut>(f: F) -> ExporterFn<F>
where
    T: Clone + Send + Sync,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ExportError>> + Send,
{
    ExporterFn { f }
}

impl<T, F, Fut> Exporter<T> for ExporterFn<F>
where
    T: Clone + Send + Sync,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ExportError>> + Send,
{
    fn export(&self, batch: &[T]) -> impl Future<Output = Result<(), ExportError>> + Send {
        (self.f)(batch.to_vec())
    }

    /// The processor's batch goes to the closure as it is, uncopied.
    fn export_owned(&self, batch: Vec<T>) -> impl Future<Output = Result<(), ExportError>> + Send
    where
        T: Send + Sync,
    {
        (self.f)(batch)
    }
}

impl<T, X: Exporter<T>> Exporter<T> for std::sync::Arc<X> {
    fn export(&self, batch: &[T]) -> impl Future<Output = Result<(), ExportError>> + Send {
        (**self).export(batch)
    }

    fn export_owned(&self, batch: Vec<T>) -> impl Future<Output = Result<(), ExportError>> + Send
    where
        T: Send + Sync,
    {
        (**self).export_owned(batch)
    }

    fn batch_buffer(&self, capacity: usize) -> Vec<T> {
        (**self).batch_buffer(capacity)
    }

    fn shutdown(&self) -> impl Future<Output = Result<(), ExportError>> + Send {
        (**self).shutdown()
    }
}
