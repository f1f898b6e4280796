//! The public exporters and their builder.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::config::Signal;
use super::config::{Compression, OtlpConfigError, Protocol, RetryPolicy, Settings};
use super::forward::OtlpRequestSender;
use super::json::{LogJsonEncoder, TraceJsonEncoder};
use super::logs::LogEncoder;
use super::metrics::MetricEncoder;
use super::metrics_json::MetricJsonEncoder;
use super::sender::{Counters, DurationMetric, OtlpExporterStats, Outcome, Sender};
use super::tls::{TlsConfig, TlsError};
use super::trace::TraceEncoder;

/// Configures an [`OtlpSpanExporter`], an [`OtlpLogExporter`] or an
/// [`OtlpMetricExporter`].
///
/// Every setting left unset is read from the environment when the exporter
/// is built: the signal's own `OTEL_EXPORTER_OTLP_TRACES_*` /
/// `OTEL_EXPORTER_OTLP_LOGS_*` / `OTEL_EXPORTER_OTLP_METRICS_*` variable
/// first, then
/// `OTEL_EXPORTER_OTLP_*`, then the specification's default
/// (`grpc` to `http://localhost:4317`, 10 s timeout, no compression).
/// [`without_env`](Self::without_env) skips the environment.
#[derive(Debug, Clone, Default)]
pub struct OtlpExporterBuilder {
    settings: Settings,
    temporality: Option<Temporality>,
    meter: Option<Meter>,
}

impl OtlpExporterBuilder {
    /// A builder with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// `grpc`, `http/protobuf` or `http/json`.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.settings.protocol = Some(protocol);
        self
    }

    /// The server's URL, `http://host:port`. Over HTTP a URL without a path
    /// gets the signal's (`/v1/traces`, `/v1/logs`); one with a path is
    /// used as given. Over gRPC any path is ignored.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.settings.endpoint = Some(url.into());
        self
    }

    /// A header sent with every request (gRPC metadata over gRPC), on top
    /// of those from `OTEL_EXPORTER_OTLP_HEADERS`; replaces one of the same
    /// name.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.headers.push((name.into(), value.into()));
        self
    }

    /// The most one export may take, every retry and wait included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = Some(timeout);
        self
    }

    /// Request body compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.settings.compression = Some(compression);
        self
    }

    /// TLS settings for an `https://` endpoint: CA certificates, a client
    /// certificate and key (mutual TLS), the server name. Parts left unset
    /// come from `OTEL_EXPORTER_OTLP_{TRACES_,LOGS_,}CERTIFICATE`,
    /// `…CLIENT_CERTIFICATE` and `…CLIENT_KEY`. Without any, an `https`
    /// endpoint is verified against the default trust store.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.settings.tls = tls;
        self
    }

    /// For a gRPC endpoint given without a scheme (`collector:4317`):
    /// `true` connects in plain text, `false` (the default) over TLS; what
    /// `OTEL_EXPORTER_OTLP_INSECURE` sets. An endpoint with a scheme is
    /// plain (`http`) or TLS (`https`) whatever this says.
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.settings.insecure = Some(insecure);
        self
    }

    /// How retryable failures are retried (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.settings.retry = retry;
        self
    }

    /// The temporality a metric exporter asks the SDK for:
    /// [`Temporality::Cumulative`] (the default), [`Temporality::Delta`], or
    /// [`Temporality::LowMemory`] (delta for synchronous counters and
    /// histograms, cumulative for up-down counters and asynchronous
    /// instruments). Unset: `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`
    /// (`cumulative`, `delta`, `lowmemory`). Span and log exporters ignore it.
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = Some(temporality);
        self
    }

    /// Reports the exporters built from here on through `provider`, by
    /// the semantic conventions' SDK metrics (off unless called):
    ///
    /// * `otel.sdk.exporter.span.exported` / `…log.exported` /
    ///   `…metric_data_point.exported` (counters): items whose export
    ///   ended, with `error.type` when it failed: `rejected` (refused by a
    ///   partial success), `timeout`, `already_shutdown`, `tls`, or
    ///   `_OTHER`;
    /// * `otel.sdk.exporter.span.inflight` / `…log.inflight` /
    ///   `…metric_data_point.inflight` (up-down counters): items handed to
    ///   `export` whose export has not ended;
    /// * `otel.sdk.exporter.operation.duration` (histogram, seconds): one
    ///   value per export, retries included, with `error.type` when it
    ///   failed.
    ///
    /// Every series has `otel.component.type` (`otlp_grpc_span_exporter`,
    /// `otlp_http_log_exporter`, `otlp_http_json_span_exporter`, ...),
    /// a unique `otel.component.name`, `server.address` and `server.port`.
    /// The counters are observable: they read the exporter's own atomics
    /// when the provider's reader collects; only the histogram is recorded
    /// per export. The instruments' scope is `otlp-sdk`.
    ///
    /// Reading them runs no code of the exporter's and emits nothing, and
    /// the exporter's requests go out from its suppressed I/O thread, so
    /// exporting them (through an [`OtlpMetricExporter`] too) adds no span
    /// or log record to the pipelines they describe.
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.meter = Some(crate::self_metrics::meter(provider));
        self
    }

    /// Ignores every `OTEL_EXPORTER_OTLP_*` variable.
    pub fn without_env(mut self) -> Self {
        self.settings.ignore_env = true;
        self
    }

    /// Builds a span exporter; starts its I/O thread.
    pub fn build_span_exporter(&self) -> Result<OtlpSpanExporter, OtlpConfigError> {
        Core::new(&self.settings, Signal::Spans, self.meter.as_ref()).map(OtlpSpanExporter)
    }

    /// Builds a log exporter; starts its I/O thread.
    pub fn build_log_exporter(&self) -> Result<OtlpLogExporter, OtlpConfigError> {
        Core::new(&self.settings, Signal::Logs, self.meter.as_ref()).map(OtlpLogExporter)
    }

    /// Builds a metric exporter, for the SDK's `PeriodicReader`; starts its
    /// I/O thread. Requests go to `MetricsService/Export` over gRPC and to
    /// `/v1/metrics` over HTTP.
    pub fn build_metric_exporter(&self) -> Result<OtlpMetricExporter, OtlpConfigError> {
        let temporality =
            super::config::resolve_temporality(self.temporality, self.settings.ignore_env);
        Core::new(&self.settings, Signal::Metrics, self.meter.as_ref())
            .map(|core| OtlpMetricExporter { core, temporality })
    }
}

impl OtlpExporterBuilder {
    /// Builds a sender of already-serialized requests of `signal` (what a
    /// forwarding agent sends on): the same endpoint, headers, compression,
    /// TLS and timeout rules as the exporters, one attempt per
    /// [`send`](OtlpRequestSender::send). Must be called inside the Tokio
    /// runtime that will carry its connections; `http/json` is refused (a
    /// request sender forwards protobuf).
    pub fn build_request_sender(
        &self,
        signal: Signal,
    ) -> Result<OtlpRequestSender, OtlpConfigError> {
        OtlpRequestSender::new(&self.settings, signal)
    }
}

/// Reads an exporter's [`OtlpExporterStats`]; cloneable, and still reads
/// after the exporter moved into a processor or was dropped.
#[derive(Clone)]
pub struct OtlpStatsReader {
    counters: Arc<Counters>,
    tls_error: Arc<Mutex<Option<TlsError>>>,
}

impl OtlpStatsReader {
    /// The counts so far.
    pub fn stats(&self) -> OtlpExporterStats {
        self.counters.snapshot()
    }

    /// The TLS failure that ended the latest export ended by one, if any:
    /// the endpoint and the cause (unknown CA, name mismatch, expired
    /// certificate, client certificate required or refused).
    pub fn last_tls_error(&self) -> Option<TlsError> {
        self.tls_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for OtlpStatsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OtlpStatsReader")
            .field(&self.stats())
            .finish()
    }
}

/// Encoders kept between exports, so a steady stream of batches allocates
/// only each request's body. Taken and returned under a lock held for a
/// push or a pop, never while encoding.
#[derive(Debug, Default)]
struct EncoderPool<E>(Mutex<Vec<E>>);

impl<E: Default> EncoderPool<E> {
    fn with<R>(&self, f: impl FnOnce(&mut E) -> R) -> R {
        let taken = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut encoder = taken.unwrap_or_default();
        let result = f(&mut encoder);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(encoder);
        result
    }
}

/// A signal's protobuf and JSON encoders; the exporter's protocol picks
/// which one writes its requests.
#[derive(Debug, Default)]
struct Encoders<P, J> {
    proto: P,
    json: J,
}

/// What both exporters are: a sender, the resource the SDK set, and the
/// encoders of their signal.
struct Core<E> {
    sender: Sender,
    resource: Resource,
    encoders: EncoderPool<E>,
    /// `http/json`: requests are written by the JSON encoder.
    json: bool,
}

impl<E: Default> Core<E> {
    fn new(
        settings: &Settings,
        signal: Signal,
        meter: Option<&Meter>,
    ) -> Result<Self, OtlpConfigError> {
        let config = settings.resolve(signal)?;
        let mut sender = Sender::new(&config, signal)?;
        if let Some(meter) = meter {
            register_self_metrics(meter, signal, &config, &mut sender);
        }
        Ok(Core {
            sender,
            resource: Resource::builder_empty().build(),
            encoders: EncoderPool::default(),
            json: config.protocol == Protocol::HttpJson,
        })
    }

    /// One request body, encoded by `encode` with a pooled encoder into a
    /// reused buffer; `encode` is told whether to write JSON.
    fn encode(&self, encode: impl FnOnce(&mut E, &mut Vec<u8>, &Resource, bool)) -> Vec<u8> {
        let mut body = self.sender.body();
        self.encoders
            .with(|encoder| encode(encoder, &mut body, &self.resource, self.json));
        body
    }

    fn stats_reader(&self) -> OtlpStatsReader {
        OtlpStatsReader {
            counters: Arc::clone(self.sender.counters()),
            tls_error: Arc::clone(self.sender.tls_error()),
        }
    }

    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("endpoint", &self.sender.endpoint())
            .finish_non_exhaustive()
    }
}

/// An OTLP span exporter: `SpanData` encoded straight to protobuf on the
/// exporting thread (no message tree, no copy of the batch; byte-identical
/// to opentelemetry-otlp's), or to OTLP/JSON for `http/json`, sent over
/// gRPC or HTTP from the exporter's own I/O thread.
///
/// It works behind any processor: the export future needs no Tokio
/// context, so the SDK's own `BatchSpanProcessor` can drive it as well as
/// [`crate::BatchSpanProcessor`]. Exports may overlap
/// (`max_concurrent_exports` above 1): gRPC multiplexes them on one
/// connection, HTTP opens more.
pub struct OtlpSpanExporter(Core<Encoders<TraceEncoder, TraceJsonEncoder>>);

impl OtlpSpanExporter {
    /// A builder; see [`OtlpExporterBuilder`].
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new()
    }

    /// An exporter configured from the environment alone.
    pub fn from_env() -> Result<Self, OtlpConfigError> {
        OtlpExporterBuilder::new().build_span_exporter()
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.0.sender.endpoint()
    }

    /// A reader of this exporter's counts.
    pub fn stats_reader(&self) -> OtlpStatsReader {
        self.0.stats_reader()
    }
}

impl fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("OtlpSpanExporter", f)
    }
}

impl SpanExporter for OtlpSpanExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let body = self.0.encode(|encoders, body, resource, json| {
            if json {
                encoders.json.encode(body, resource, &batch);
            } else {
                encoders.proto.encode(body, resource, &batch);
            }
        });
        // The spans are dropped here, on the exporting thread, not on the
        // I/O thread, and the vector goes back to this thread's pool for
        // our processor's next batch.
        let items = batch.len() as u64;
        crate::recycle::SPANS.give_back(batch);
        self.0.sender.send(body, items)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.0.sender.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.resource = resource.clone();
    }
}

/// An OTLP log exporter; the log counterpart of [`OtlpSpanExporter`].
pub struct OtlpLogExporter(Core<Encoders<LogEncoder, LogJsonEncoder>>);

impl OtlpLogExporter {
    /// A builder; see [`OtlpExporterBuilder`].
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new()
    }

    /// An exporter configured from the environment alone.
    pub fn from_env() -> Result<Self, OtlpConfigError> {
        OtlpExporterBuilder::new().build_log_exporter()
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.0.sender.endpoint()
    }

    /// A reader of this exporter's counts.
    pub fn stats_reader(&self) -> OtlpStatsReader {
        self.0.stats_reader()
    }
}

impl fmt::Debug for OtlpLogExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("OtlpLogExporter", f)
    }
}

impl LogExporter for OtlpLogExporter {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let body = self.0.encode(|encoders, body, resource, json| {
            if json {
                encoders.json.encode(body, resource, &batch);
            } else {
                encoders.proto.encode(body, resource, &batch);
            }
        });
        self.0.sender.send(body, batch.iter().count() as u64)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.0.sender.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.resource = resource.clone();
    }
}

/// An OTLP metric exporter: each collection (`ResourceMetrics`) encoded
/// straight to an `ExportMetricsServiceRequest` by [`MetricEncoder`] on the
/// reader's thread (byte-identical to opentelemetry-otlp's), or to
/// OTLP/JSON by [`MetricJsonEncoder`] for `http/json`, sent over gRPC or
/// HTTP from the exporter's own I/O thread with the same retry, timeout,
/// compression and TLS as the span and log exporters.
///
/// ```no_run
/// use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
/// use otlp_sdk::otlp::OtlpMetricExporter;
///
/// let exporter = OtlpMetricExporter::builder()
///     .with_endpoint("http://127.0.0.1:4317")
///     .with_temporality(Temporality::Delta)
///     .build_metric_exporter()
///     .expect("a valid endpoint");
/// let provider = SdkMeterProvider::builder()
///     .with_reader(PeriodicReader::builder(exporter).build())
///     .build();
/// # provider.shutdown().unwrap();
/// ```
pub struct OtlpMetricExporter {
    core: Core<Encoders<MetricEncoder, MetricJsonEncoder>>,
    temporality: Temporality,
}

impl OtlpMetricExporter {
    /// A builder; see [`OtlpExporterBuilder`].
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new()
    }

    /// An exporter configured from the environment alone.
    pub fn from_env() -> Result<Self, OtlpConfigError> {
        OtlpExporterBuilder::new().build_metric_exporter()
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.core.sender.endpoint()
    }

    /// A reader of this exporter's counts.
    pub fn stats_reader(&self) -> OtlpStatsReader {
        self.core.stats_reader()
    }
}

impl fmt::Debug for OtlpMetricExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("OtlpMetricExporter", f)
    }
}

impl PushMetricExporter for OtlpMetricExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // The collection carries its own resource.
        let body = self.core.encode(|encoders, body, _resource, json| {
            if json {
                encoders.json.encode(body, metrics);
            } else {
                encoders.proto.encode(body, metrics);
            }
        });
        self.core.sender.send(body, data_points(metrics))
    }

    /// Nothing is buffered here: each export is sent as it comes.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.core.sender.shutdown()
    }

    /// The configured preference, low-memory included: the SDK's pipeline
    /// reads it per instrument kind.
    fn temporality(&self) -> Temporality {
        self.temporality
    }
}

/// The data points of a collection: what `otel.sdk.exporter.metric_data_point.*`
/// counts.
fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    let mut n = 0;
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            n += match metric.data() {
                AggregatedMetrics::F64(d) => count(d),
                AggregatedMetrics::U64(d) => count(d),
                AggregatedMetrics::I64(d) => count(d),
            };
        }
    }
    n as u64
}

/// The boundaries of `otel.sdk.exporter.operation.duration`, in seconds:
/// those the conventions advise for `http.client.request.duration` (the
/// SDK's default boundaries are meant for milliseconds).
const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Registers an exporter's self-metrics on `meter`: the observable
/// `exported` and `inflight` counters over its [`Counters`], and the
/// duration histogram the sender records per export.
fn register_self_metrics(
    meter: &Meter,
    signal: Signal,
    config: &super::config::Resolved,
    sender: &mut Sender,
) {
    use crate::self_metrics::{COMPONENT_NAME, COMPONENT_TYPE, ERROR_TYPE, component_name, signed};

    let (exported, inflight, unit, what) = match signal {
        Signal::Spans => (
            "otel.sdk.exporter.span.exported",
            "otel.sdk.exporter.span.inflight",
            "{span}",
            "span",
        ),
        Signal::Logs => (
            "otel.sdk.exporter.log.exported",
            "otel.sdk.exporter.log.inflight",
            "{log_record}",
            "log",
        ),
        Signal::Metrics => (
            "otel.sdk.exporter.metric_data_point.exported",
            "otel.sdk.exporter.metric_data_point.inflight",
            "{data_point}",
            "metric",
        ),
    };
    // The conventions' well-known `otel.component.type` values.
    let component_type: &'static str = match (config.protocol, what) {
        (Protocol::Grpc, "span") => "otlp_grpc_span_exporter",
        (Protocol::Grpc, "log") => "otlp_grpc_log_exporter",
        (Protocol::Grpc, _) => "otlp_grpc_metric_exporter",
        (Protocol::HttpProtobuf, "span") => "otlp_http_span_exporter",
        (Protocol::HttpProtobuf, "log") => "otlp_http_log_exporter",
        (Protocol::HttpProtobuf, _) => "otlp_http_metric_exporter",
        (Protocol::HttpJson, "span") => "otlp_http_json_span_exporter",
        (Protocol::HttpJson, "log") => "otlp_http_json_log_exporter",
        (Protocol::HttpJson, _) => "otlp_http_json_metric_exporter",
    };
    let mut base = vec![
        KeyValue::new(COMPONENT_TYPE, component_type),
        KeyValue::new(COMPONENT_NAME, component_name(component_type)),
    ];
    if let Some(host) = config.url.host() {
        base.push(KeyValue::new("server.address", host.to_owned()));
    }
    let port = config
        .url
        .port_u16()
        .or_else(|| match config.url.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
    if let Some(port) = port {
        base.push(KeyValue::new("server.port", i64::from(port)));
    }
    let attributes = Outcome::ALL.map(|outcome| {
        let mut attrs = base.clone();
        if let Some(error) = outcome.error_type() {
            attrs.insert(0, KeyValue::new(ERROR_TYPE, error));
        }
        attrs
    });

    let counters = Arc::clone(sender.counters());
    let by_outcome = attributes.clone();
    meter
        .u64_observable_counter(exported)
        .with_description(
            "The number of items for which the export has finished, either successful or failed.",
        )
        .with_unit(unit)
        .with_callback(move |observer| {
            for outcome in Outcome::ALL {
                observer.observe(counters.items(outcome), &by_outcome[outcome as usize]);
            }
        })
        .build();

    let counters = Arc::clone(sender.counters());
    let attrs = base;
    meter
        .i64_observable_up_down_counter(inflight)
        .with_description(
            "The number of items which were passed to the exporter, but that have not been \
             exported yet (neither successful, nor failed).",
        )
        .with_unit(unit)
        .with_callback(move |observer| {
            observer.observe(signed(counters.items_in_flight()), &attrs);
        })
        .build();

    let histogram = meter
        .f64_histogram("otel.sdk.exporter.operation.duration")
        .with_description("The duration of exporting a batch of telemetry records.")
        .with_unit("s")
        .with_boundaries(DURATION_BOUNDARIES.to_vec())
        .build();
    sender.set_duration_metric(DurationMetric {
        histogram,
        attributes,
    });
}
