//! [`BatchSpanProcessor`]: the SDK's `SpanProcessor` on an
//! [`otlp_async::BatchProcessor`].

use std::fmt;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use otlp_async::{BatchConfig, ConfigError, ProcessorStats, Signal, StatsReader};

use crate::export::{Core, ExportMode, Kind, Settings};
use crate::self_metrics::ProcessorKind;

struct Spans<E>(std::marker::PhantomData<E>);

impl<E: SpanExporter + 'static> Kind for Spans<E> {
    type Item = SpanData;
    type Exporter = E;

    fn export(
        exporter: &E,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send + '_ {
        exporter.export(batch)
    }

    /// Our OTLP span exporter gives its batches back (see `recycle`).
    fn batch_buffer(capacity: usize) -> Vec<SpanData> {
        crate::recycle::SPANS.take(capacity)
    }

    fn shutdown(exporter: &E, timeout: Duration) -> OTelSdkResult {
        exporter.shutdown_with_timeout(timeout)
    }

    fn set_resource(exporter: &mut E, resource: &Resource) {
        exporter.set_resource(resource);
    }

    const SELF_METRICS: ProcessorKind = ProcessorKind::Spans;
}

/// A batch span processor for `opentelemetry_sdk`, in place of the SDK's own
/// [`opentelemetry_sdk::trace::BatchSpanProcessor`].
///
/// Ended, sampled spans go into a lock-free bounded queue (`on_end` never
/// blocks under the default [`OverflowPolicy::Drop`](crate::OverflowPolicy));
/// a loop on the processor's own thread exports them in batches through the
/// wrapped [`SpanExporter`], up to `max_concurrent_exports` at a time, each
/// cut at `export_timeout`. Every span handed to `on_end` is exported or
/// counted as dropped by cause in [`stats`](Self::stats); unsampled spans
/// are ignored, as the SDK's processor ignores them.
///
/// `force_flush` and `shutdown_with_timeout` only message the loop and wait
/// for its answer, so they return from a plain thread, a current-thread
/// runtime or a task on a one-worker runtime alike; the loop enforces their
/// time limits.
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// // Any SDK exporter; this one (opentelemetry-stdout) prints each span.
/// let exporter = opentelemetry_stdout::SpanExporter::default();
/// let processor = otlp_sdk::BatchSpanProcessor::new(exporter);
/// let stats = processor.stats_reader();
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(processor)
///     .build();
/// provider.tracer("example").in_span("work", |_cx| {});
/// provider.force_flush().unwrap();
/// assert_eq!(stats.stats().exported, 1);
/// provider.shutdown().unwrap();
/// ```
pub struct BatchSpanProcessor {
    core: Core<SpanData>,
}

impl BatchSpanProcessor {
    /// A processor for `exporter` configured from the environment
    /// (`OTEL_BSP_*`, see [`BatchConfig::from_env`]; bad values there are
    /// ignored with a warning), exporting in [`ExportMode::Threaded`].
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start the processor's thread, as
    /// [`std::thread::spawn`] does. [`builder`](Self::builder)'s `build`
    /// returns that as an error instead.
    pub fn new<E: SpanExporter + 'static>(exporter: E) -> Self {
        match Self::builder(exporter).build() {
            Ok(processor) => processor,
            Err(e) => panic!("cannot start the batch span processor: {e}"),
        }
    }

    /// A builder for a processor around `exporter`, starting from the
    /// environment's configuration.
    pub fn builder<E: SpanExporter + 'static>(exporter: E) -> BatchSpanProcessorBuilder<E> {
        BatchSpanProcessorBuilder {
            exporter,
            settings: Settings::from_env(Signal::Spans),
        }
    }

    /// The processor's counters: spans emitted, exported, dropped by cause,
    /// queued and in flight. Exact once shutdown has returned.
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

impl fmt::Debug for BatchSpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BatchSpanProcessor")
            .field(&self.core)
            .finish()
    }
}

impl SpanProcessor for BatchSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    #[inline]
    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.core.emit(span);
        }
    }

    /// Waits until every span ended before the call is exported or
    /// accounted, for at most the flush timeout (see
    /// [`BatchSpanProcessorBuilder::with_flush_timeout`]).
    fn force_flush(&self) -> OTelSdkResult {
        self.core.force_flush()
    }

    /// Stops taking spans, exports what is queued and shuts the exporter
    /// down, all within `timeout`; a timeout is reported as
    /// `OTelSdkError::Timeout`.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.core.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.core.set_resource(resource);
    }
}

/// Builds a [`BatchSpanProcessor`]; see [`BatchSpanProcessor::builder`].
#[derive(Debug)]
pub struct BatchSpanProcessorBuilder<E> {
    exporter: E,
    settings: Settings,
}

impl<E: SpanExporter + 'static> BatchSpanProcessorBuilder<E> {
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
    /// (`otel.sdk.processor.span.processed`, with `error.type` =
    /// `queue_full` or `already_shutdown` for drops), the queue's size and
    /// capacity (`otel.sdk.processor.span.queue.size`, `….queue.capacity`),
    /// each with `otel.component.type` = `batching_span_processor` and a
    /// unique `otel.component.name`.
    ///
    /// All are observable instruments whose callbacks read the counters of
    /// [`stats`](BatchSpanProcessor::stats) when the provider's reader collects: emitting
    /// costs nothing more. The instruments' scope is `otlp-sdk`.
    ///
    /// ```
    /// use opentelemetry::trace::{Tracer, TracerProvider};
    /// use opentelemetry_sdk::metrics::SdkMeterProvider;
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    ///
    /// // Your meter provider, with its reader and exporter (an
    /// // `otlp_sdk::otlp::OtlpMetricExporter` behind a `PeriodicReader`, say).
    /// let meters = SdkMeterProvider::builder().build();
    /// let processor = otlp_sdk::BatchSpanProcessor::builder(opentelemetry_stdout::SpanExporter::default())
    ///     .with_meter_provider(&meters)
    ///     .build()
    ///     .expect("a valid configuration");
    /// let provider = SdkTracerProvider::builder()
    ///     .with_span_processor(processor)
    ///     .build();
    /// provider.tracer("example").in_span("work", |_cx| {});
    /// provider.shutdown().unwrap();
    /// meters.shutdown().unwrap(); // its last collection reports the final counts
    /// ```
    #[must_use]
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::metrics::MeterProvider + ?Sized,
    {
        self.settings.meter = Some(crate::self_metrics::meter(provider));
        self
    }

    /// Starts the processor. A configuration set in code that cannot work
    /// (a zero queue, batch size, delay, timeout or concurrency) is a typed
    /// [`ConfigError`], as is a thread the system refused to start.
    pub fn build(self) -> Result<BatchSpanProcessor, ConfigError> {
        Ok(BatchSpanProcessor {
            core: self.settings.start::<Spans<E>>(self.exporter)?,
        })
    }
}
