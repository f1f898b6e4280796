//! The bridge from an OpenTelemetry SDK exporter to an
//! [`otlp_async::Exporter`]: where each export runs ([`ExportMode`]), how
//! `set_resource` reaches an exporter that exports are sharing, and how the
//! two crates' errors map onto each other.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use otlp_async::{
    BatchConfig, BatchProcessor, ExportError, Exporter, ProcessorError, ProcessorStats, StatsReader,
};
use tokio::sync::RwLock;

/// Where the processor runs each call into the SDK exporter.
///
/// The SDK's exporter traits return futures, but nothing stops an exporter
/// from blocking inside one: opentelemetry-otlp's default HTTP client is
/// the blocking reqwest client, and a future that blocks its thread cannot
/// be cut by a timeout on that thread or overlapped with another export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExportMode {
    /// Each export (and the exporter's shutdown) runs on a thread of the
    /// processor's blocking pool, driven to completion there. The export
    /// timeout then holds whatever the exporter does, `max_concurrent_exports`
    /// exports really overlap, and a hung export only costs its own thread
    /// (abandoned at the timeout; the next batch goes out on another).
    /// Costs one thread hand-off per batch, a few microseconds against
    /// batches of hundreds of items. The default, because it is correct for
    /// every exporter.
    #[default]
    Threaded,
    /// Each export's future is polled on the processor's own runtime
    /// thread, with no hand-off. Only for exporters that truly await (the
    /// tonic gRPC exporter, an in-memory exporter): an export that blocks
    /// its thread stalls the whole loop, its timeout cannot fire, and no
    /// other export overlaps it.
    Inline,
}

/// One kind of SDK exporter (spans or logs), as the adapter needs it.
pub(crate) trait Kind: Send + Sync + 'static {
    /// What the processor queues.
    type Item: Send + Sync + 'static;
    /// The SDK exporter.
    type Exporter: Send + Sync + 'static;

    fn export(
        exporter: &Self::Exporter,
        batch: Vec<Self::Item>,
    ) -> impl Future<Output = OTelSdkResult> + Send + '_;

    fn shutdown(exporter: &Self::Exporter, timeout: Duration) -> OTelSdkResult;

    /// An empty buffer for the next batch (see `Exporter::batch_buffer`).
    fn batch_buffer(capacity: usize) -> Vec<Self::Item> {
        Vec::with_capacity(capacity)
    }

    fn set_resource(exporter: &mut Self::Exporter, resource: &Resource);

    /// Which processor this is, for the self-metrics' names.
    const SELF_METRICS: crate::self_metrics::ProcessorKind;
}

/// The SDK exporter, shared by concurrent exports.
///
/// Exports take the read side of an async `RwLock` (they may overlap, as in
/// the SDK's own async-runtime processor); `set_resource`, the only call
/// that needs `&mut`, takes the write side without ever waiting for it:
/// when exports are running it leaves the resource for the next export to
/// apply once it can get the write side.
struct Shared<K: Kind> {
    exporter: RwLock<K::Exporter>,
    pending_resource: Mutex<Option<Resource>>,
    has_pending: AtomicBool,
}

impl<K: Kind> Shared<K> {
    fn set_resource(&self, resource: &Resource) {
        match self.exporter.try_write() {
            Ok(mut exporter) => K::set_resource(&mut exporter, resource),
            Err(_) => {
                *lock(&self.pending_resource) = Some(resource.clone());
                self.has_pending.store(true, Ordering::Release);
                self.apply_pending();
            }
        }
    }

    /// Applies a resource left by `set_resource`, if the write side is free
    /// now (it is whenever no export is running).
    fn apply_pending(&self) {
        if !self.has_pending.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut exporter) = self.exporter.try_write() else {
            return;
        };
        let resource = lock(&self.pending_resource).take();
        self.has_pending.store(false, Ordering::Release);
        if let Some(resource) = resource {
            K::set_resource(&mut exporter, &resource);
        }
    }
}

/// The resource slot guards plain data that no user code touches while the
/// lock is held, so a poisoned lock is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An SDK exporter as an [`otlp_async::Exporter`].
pub(crate) struct Adapter<K: Kind> {
    shared: Arc<Shared<K>>,
    mode: ExportMode,
    /// The timeout handed to the SDK exporter's `shutdown_with_timeout`,
    /// in nanoseconds: the caller's shutdown timeout, once known.
    shutdown_timeout: AtomicU64,
    _kind: PhantomData<K>,
}

impl<K: Kind> Adapter<K> {
    pub(crate) fn new(exporter: K::Exporter, mode: ExportMode, shutdown_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                exporter: RwLock::new(exporter),
                pending_resource: Mutex::new(None),
                has_pending: AtomicBool::new(false),
            }),
            mode,
            shutdown_timeout: AtomicU64::new(nanos(shutdown_timeout)),
            _kind: PhantomData,
        }
    }

    /// Runs `work` where [`ExportMode`] says.
    async fn run<F>(&self, work: F) -> Result<(), ExportError>
    where
        F: Future<Output = OTelSdkResult> + Send + 'static,
    {
        // As the SDK's processors do: whatever the export starts or emits
        // through a provider is dropped. (The threads the processor runs
        // exports on are suppressed for life as well; this also covers an
        // exporter that attaches a context of its own around the call.)
        let work = work.with_context(Context::current().with_telemetry_suppressed());
        let result = match self.mode {
            ExportMode::Inline => work.await,
            ExportMode::Threaded => {
                let handle = tokio::runtime::Handle::current();
                match tokio::task::spawn_blocking(move || handle.block_on(work)).await {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => {
                        return Err(ExportError::permanent("the exporter panicked"));
                    }
                    Err(_) => return Err(ExportError::permanent("the export was cancelled")),
                }
            }
        };
        result.map_err(export_error)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<K: Kind> fmt::Debug for Adapter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<K: Kind> Exporter<K::Item> for Adapter<K> {
    /// Never called by the processor (it hands batches over by value);
    /// lending is refused rather than cloning every item behind the
    /// caller's back.
    async fn export(&self, _batch: &[K::Item]) -> Result<(), ExportError> {
        Err(ExportError::permanent(
            "SDK exporters take their batch by value; use export_owned",
        ))
    }

    fn export_owned(
        &self,
        batch: Vec<K::Item>,
    ) -> impl Future<Output = Result<(), ExportError>> + Send {
        self.shared.apply_pending();
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            let exporter = shared.exporter.read().await;
            K::export(&exporter, batch).await
        })
    }

    fn batch_buffer(&self, capacity: usize) -> Vec<K::Item> {
        K::batch_buffer(capacity)
    }

    fn shutdown(&self) -> impl Future<Output = Result<(), ExportError>> + Send {
        let shared = Arc::clone(&self.shared);
        let timeout = Duration::from_nanos(self.shutdown_timeout.load(Ordering::Relaxed));
        self.run(async move {
            let exporter = shared.exporter.read().await;
            K::shutdown(&exporter, timeout)
        })
    }
}

/// An SDK exporter's answer as an [`ExportError`]. The SDK's exporters
/// retry on their own (the trait leaves retries to them), so what reaches
/// the processor is final.
fn export_error(e: OTelSdkError) -> ExportError {
    match e {
        OTelSdkError::Timeout(d) => ExportError::Timeout(d),
        OTelSdkError::AlreadyShutdown => ExportError::Shutdown,
        other => ExportError::permanent(other.to_string()),
    }
}

/// A processor's failure in the SDK's terms.
fn sdk_error(e: ProcessorError) -> OTelSdkError {
    match e {
        ProcessorError::AlreadyShutdown => OTelSdkError::AlreadyShutdown,
        ProcessorError::Timeout(d) => OTelSdkError::Timeout(d),
        other => OTelSdkError::InternalFailure(other.to_string()),
    }
}

/// A running processor with its adapter, its exporter type erased so the
/// public processors are plain (non-generic) types, as the SDK's are.
pub(crate) trait Pipeline<T>: Send + Sync {
    fn emit(&self, item: T);
    fn force_flush(&self, timeout: Duration) -> Result<(), ProcessorError>;
    fn shutdown(&self, timeout: Duration) -> Result<(), ProcessorError>;
    fn stats(&self) -> ProcessorStats;
    fn stats_reader(&self) -> StatsReader;
    fn config(&self) -> &BatchConfig;
    fn set_resource(&self, resource: &Resource);
}

impl<K: Kind> Pipeline<K::Item> for BatchProcessor<K::Item, Adapter<K>> {
    #[inline]
    fn emit(&self, item: K::Item) {
        BatchProcessor::emit(self, item);
    }

    fn force_flush(&self, timeout: Duration) -> Result<(), ProcessorError> {
        self.force_flush_blocking(timeout)
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), ProcessorError> {
        self.exporter()
            .shutdown_timeout
            .store(nanos(timeout), Ordering::Relaxed);
        self.shutdown_blocking(timeout)
    }

    fn stats(&self) -> ProcessorStats {
        BatchProcessor::stats(self)
    }

    fn stats_reader(&self) -> StatsReader {
        BatchProcessor::stats_reader(self)
    }

    fn config(&self) -> &BatchConfig {
        BatchProcessor::config(self)
    }

    fn set_resource(&self, resource: &Resource) {
        self.exporter().shared.set_resource(resource);
    }
}

/// What a processor builder collects, for spans and logs alike.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: BatchConfig,
    pub(crate) mode: ExportMode,
    pub(crate) flush_timeout: Option<Duration>,
    /// Where the self-metrics go; `None`: not reported.
    pub(crate) meter: Option<opentelemetry::metrics::Meter>,
}

impl Settings {
    pub(crate) fn from_env(signal: otlp_async::Signal) -> Self {
        Self {
            config: BatchConfig::from_env(signal),
            mode: ExportMode::default(),
            flush_timeout: None,
            meter: None,
        }
    }

    /// Starts the processor for `exporter`.
    pub(crate) fn start<K: Kind>(
        self,
        exporter: K::Exporter,
    ) -> Result<Core<K::Item>, otlp_async::ConfigError> {
        let flush_timeout = self.flush_timeout.unwrap_or(self.config.export_timeout);
        let adapter = Adapter::<K>::new(exporter, self.mode, self.config.export_timeout);
        let processor = BatchProcessor::with_thread_start(
            self.config,
            adapter,
            Arc::new(crate::suppress_telemetry_on_this_thread),
        )?;
        // Off unless a meter provider was given: then only callbacks are
        // registered, read at collection time; emit is untouched.
        let self_metrics = self.meter.as_ref().map(|meter| {
            crate::self_metrics::register_processor(
                meter,
                K::SELF_METRICS,
                processor.stats_reader(),
                processor.config().max_queue_size,
            )
        });
        Ok(Core {
            inner: Box::new(processor),
            flush_timeout,
            _self_metrics: self_metrics,
        })
    }
}

/// The running processor behind both public processor types.
pub(crate) struct Core<T> {
    inner: Box<dyn Pipeline<T>>,
    flush_timeout: Duration,
    /// Declared after `inner`, so dropped after it: the self-metrics then
    /// keep the processor's final figures, not its queue.
    _self_metrics: Option<crate::self_metrics::ProcessorGuard>,
}

impl<T> Core<T> {
    #[inline]
    pub(crate) fn emit(&self, item: T) {
        self.inner.emit(item);
    }

    pub(crate) fn force_flush(&self) -> OTelSdkResult {
        self.inner
            .force_flush(self.flush_timeout)
            .map_err(sdk_error)
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown(timeout).map_err(sdk_error)
    }

    pub(crate) fn stats(&self) -> ProcessorStats {
        self.inner.stats()
    }

    pub(crate) fn stats_reader(&self) -> StatsReader {
        self.inner.stats_reader()
    }

    pub(crate) fn config(&self) -> &BatchConfig {
        self.inner.config()
    }

    pub(crate) fn set_resource(&self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<T> fmt::Debug for Core<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("config", self.inner.config())
            .field("stats", &self.inner.stats())
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}
