//! The public exporters and their builder.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::config::Signal;
use super::config::{Compression, OtlpConfigError, Protocol, RetryPolicy, Settings};
use super::forward::OtlpRequestSender;
use super::json::{LogJsonEncoder, TraceJsonEncoder};
use super::logs::LogEncoder;
use super::metrics::MetricEncoder;
use super::sender::{Counters, OtlpExporterStats, Sender};
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

    /// Ignores every `OTEL_EXPORTER_OTLP_*` variable.
    pub fn without_env(mut self) -> Self {
        self.settings.ignore_env = true;
        self
    }

    /// Builds a span exporter; starts its I/O thread.
    pub fn build_span_exporter(&self) -> Result<OtlpSpanExporter, OtlpConfigError> {
        Core::new(&self.settings, Signal::Spans).map(OtlpSpanExporter)
    }

    /// Builds a log exporter; starts its I/O thread.
    pub fn build_log_exporter(&self) -> Result<OtlpLogExporter, OtlpConfigError> {
        Core::new(&self.settings, Signal::Logs).map(OtlpLogExporter)
    }

    /// Builds a metric exporter, for the SDK's `PeriodicReader`; starts its
    /// I/O thread. Requests go to `MetricsService/Export` over gRPC and to
    /// `/v1/metrics` over HTTP.
    pub fn build_metric_exporter(&self) -> Result<OtlpMetricExporter, OtlpConfigError> {
        let temporality =
            super::config::resolve_temporality(self.temporality, self.settings.ignore_env);
        Core::new(&self.settings, Signal::Metrics)
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
    fn new(settings: &Settings, signal: Signal) -> Result<Self, OtlpConfigError> {
        let config = settings.resolve(signal)?;
        if signal == Signal::Metrics && config.protocol == Protocol::HttpJson {
            return Err(OtlpConfigError::UnsupportedProtocol(
                "http/json (the metric exporter speaks grpc or http/protobuf)".to_owned(),
            ));
        }
        Ok(Core {
            sender: Sender::new(&config, signal)?,
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
        // I/O thread.
        drop(batch);
        self.0.sender.send(body)
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
        self.0.sender.send(body)
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
/// reader's thread (byte-identical to opentelemetry-otlp's), sent over gRPC
/// or HTTP/protobuf from the exporter's own I/O thread with the same retry,
/// timeout, compression and TLS as the span and log exporters.
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
    core: Core<MetricEncoder>,
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
        let body = self
            .core
            .encode(|encoder, body, _resource, _json| encoder.encode(body, metrics));
        self.core.sender.send(body)
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
