//! [`BatchLogProcessor`]: the SDK's `LogProcessor` on an
//! [`otlp_async::BatchProcessor`].

use std::fmt;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use otlp_async::{BatchConfig, ConfigError, ProcessorStats, Signal, StatsReader};

use crate::export::{Core, ExportMode, Kind, Settings};
use crate::recycle;
use crate::self_metrics::ProcessorKind;

/// A queued log record with the scope of the logger that emitted it.
pub(crate) type Record = (SdkLogRecord, InstrumentationScope);

struct Logs<E>(std::marker::PhantomData<E>);

impl<E: LogExporter + 'static> Kind for Logs<E> {
    type Item = Record;
    type Exporter = E;

    async fn export(exporter: &E, batch: Vec<Record>) -> OTelSdkResult {
        let result = {
            let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch
                .iter()
                .map(|(record, scope)| (record, scope))
                .collect();
            exporter.export(LogBatch::new(&refs)).await
        };
        recycle::LOGS.give_back(batch);
        result
    }

    fn batch_buffer(capacity: usize) -> Vec<Record> {
        recycle::LOGS.take(capacity)
    }

    fn shutdown(exporter: &E, timeout: Duration) -> OTelSdkResult {
        exporter.shutdown_with_timeout(timeout)
    }

    fn set_resource(exporter: &mut E, resource: &Resource) {
        exporter.set_resource(resource);
    }

    const SELF_METRICS: ProcessorKind = ProcessorKind::Logs;
}

/// A batch log record processor for `opentelemetry_sdk`, in place of the
/// SDK's own [`opentelemetry_sdk::logs::BatchLogProcessor`].
///
/// `emit` copies the record and its scope (the SDK lends them only for the
/// call, as it does to its own processor) into a lock-free bounded queue;
/// the rest is as for [`BatchSpanProcessor`](crate::BatchSpanProcessor):
/// batched export on the processor's own thread, concurrent exports cut at
/// `export_timeout`, every record exported or counted as dropped by cause,
/// and `force_flush` / `shutdown_with_timeout` that return from any thread
/// or runtime.
///
/// ```
/// use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// // Any SDK exporter; this one (opentelemetry-stdout) prints each record.
/// let exporter = opentelemetry_stdout::LogExporter::default();
/// let processor = otlp_sdk::BatchLogProcessor::new(exporter);
/// let stats = processor.stats_reader();
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(processor)
///     .build();
/// let logger = provider.logger("example");
/// let mut record = logger.create_log_record();
/// record.set_severity_number(Severity::Info);
/// record.set_body("hello".into());
/// logger.emit(record);
/// provider.force_flush().unwrap();
/// assert_eq!(stats.stats().exported, 1);
/// provider.shutdown().unwrap();
/// ```
pub struct BatchLogProcessor {
    core: Core<Record>,
}

impl BatchLogProcessor {
    /// A processor for `exporter` configured from the environment
    /// (`OTEL_BLRP_*`, see [`BatchConfig::from_env`]; bad values there are
    /// ignored with a warning), exporting in [`ExportMode::Threaded`].
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start the processor's thread, as
    /// [`std::thread::spawn`] does. [`builder`](Self::builder)'s `build`
    /// returns that as an error instead.
    pub fn new<E: LogExporter + 'static>(exporter: E) -> Self {
        match Self::builder(exporter).build() {
            Ok(processor) => processor,
            Err(e) => panic!("cannot start the batch log processor: {e}"),
        }
    }

    /// A builder for a processor around `exporter`, starting from the
    /// environment's configuration.
    pub fn builder<E: LogExporter + 'static>(exporter: E) -> BatchLogProcessorBuilder<E> {
        BatchLogProcessorBuilder {
            exporter,
            settings: Settings::from_env(Signal::Logs),
        }
    }

    /// The processor's counters: records emitted, exported, dropped by
    /// cause, queued and in flight. Exact once shutdown has returned.
    pub fn stats(&self) -> ProcessorStats {
        self.core.stats()
    }

    /// A handle on [`stats`](Self::stats) that stays usable after the
    /// processor has been handed to a provider.
    pub fn stats_reader(&self) -> StatsReader {
        self.core.stats_reader()
    }

    /// The configuration in force (batch size clamped to the queue size).
    pub fn config(&self) -> &BatchConfig {
        self.core.config()
    }
}

impl fmt::Debug for BatchLogProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BatchLogProcessor")
            .field(&self.core)
            .finish()
    }
}

impl LogProcessor for BatchLogProcessor {
    #[inline]
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.core.emit((record.clone(), scope.clone()));
    }

    /// Waits until every record emitted before the call is exported or
    /// accounted, for at most the flush timeout (see
    /// [`BatchLogProcessorBuilder::with_flush_timeout`]).
    fn force_flush(&self) -> OTelSdkResult {
        self.core.force_flush()
    }

    /// Stops taking records, exports what is queued and shuts the exporter
    /// down, all within `timeout`; a timeout is reported as
    /// `OTelSdkError::Timeout`.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.core.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.core.set_resource(resource);
    }
}

/// Builds a [`BatchLogProcessor`]; see [`BatchLogProcessor::builder`].
#[derive(Debug)]
pub struct BatchLogProcessorBuilder<E> {
    exporter: E,
    settings: Settings,
}

impl<E: LogExporter + 'static> BatchLogProcessorBuilder<E> {
    /// Replaces the configuration (queue, batch size, delay, export timeout,
    /// concurrency, overflow policy).
    #[must_use]
    pub fn with_batch_config(mut self, config: BatchConfig) -> Self {
        self.settings.config = config;
        self
    }

    /// Where each export runs; [`ExportMode::Threaded`] unless set.
    #[must_use]
    pub fn with_export_mode(mut self, mode: ExportMode) -> Self {
        self.settings.mode = mode;
        self
    }

    /// How long `force_flush` waits; the export timeout unless set.
    #[must_use]
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.settings.flush_timeout = Some(timeout);
        self
    }

    /// Reports this processor's self-metrics, the semantic conventions'
    /// SDK metrics, through `provider` (off unless called): items processed
    /// (`otel.sdk.processor.log.processed`, with `error.type` =
    /// `queue_full` or `already_shutdown` for drops), the queue's size and
    /// capacity (`otel.sdk.processor.log.queue.size`, `….queue.capacity`),
    /// each with `otel.component.type` = `batching_log_processor` and a
    /// unique `otel.component.name`.
    ///
    /// All are observable instruments whose callbacks read the counters of
    /// [`stats`](BatchLogProcessor::stats) when the provider's reader collects: emitting
    /// costs nothing more. The instruments' scope is `otlp-sdk`.
    #[must_use]
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::metrics::MeterProvider + ?Sized,
    {
        self.settings.meter = Some(crate::self_metrics::meter(provider));
        self
    }

    /// Starts the processor. A configuration set in code that cannot work
    /// is a typed [`ConfigError`], as is a thread the system refused to
    /// start.
    pub fn build(self) -> Result<BatchLogProcessor, ConfigError> {
        Ok(BatchLogProcessor {
            core: self.settings.start::<Logs<E>>(self.exporter)?,
        })
    }
}
