//! The exporters: otlp_sdk's `OtlpSpanExporter` / `OtlpLogExporter` (our
//! encoder; tonic and hyper underneath) or opentelemetry-otlp's
//! `SpanExporter` / `LogExporter`, over gRPC or HTTP/protobuf, each wrapped
//! in [`Counted`], the same wrapper for both processors; for metrics,
//! otlp_sdk's `OtlpMetricExporter` under the SDK's `PeriodicReader`, wrapped
//! in `Counted` too, which then counts data points.
//!
//! `Counted` counts what it is handed and how each export ended (the SDK's
//! own processor reports none of that), times each export with an
//! otlp-monitor `ConcurrencyMonitor`, prints the first failure as soon as it
//! happens, naming the endpoint, and polls the inner export inside the
//! exporter's Tokio runtime: opentelemetry-otlp's tonic channel and hyper
//! client need a Tokio context, and the SDK's thread-based processor polls
//! exports on a plain thread with `futures_executor::block_on`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry_otlp::{Compression, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use otlp_concurrency::monitor::ConcurrencyMonitor;

use otlp_sdk::otlp::{
    OtlpExporterBuilder, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter, OtlpStatsReader,
    TlsConfig,
};

use super::cli::{ExporterKind, Protocol, SignalKind};

/// What the wrapper counted; shared with the report and the live line.
#[derive(Debug)]
pub struct Tally {
    /// Where exports go, as the user should read it in an error.
    pub endpoint: String,
    /// Items handed to `export`.
    pub handed: AtomicU64,
    /// Items in exports that succeeded.
    pub exported: AtomicU64,
    /// Items in exports that failed (after the exporter's own retries):
    /// the destination refused them, or they could not be sent.
    pub failed: AtomicU64,
    /// Items in exports that timed out: sent, perhaps received, unanswered.
    pub in_doubt: AtomicU64,
    pub batches: AtomicU64,
    pub failed_batches: AtomicU64,
    pub in_doubt_batches: AtomicU64,
    /// Export durations (the exporter's retries included).
    pub exports: ConcurrencyMonitor,
    /// Our exporter's own counts (requests, retries, bytes), when it is ours.
    pub otlp: OnceLock<OtlpStatsReader>,
    /// Metrics: the most data points one collection can hold (instruments ×
    /// attribute sets); 0 for the other signals.
    pub points_per_export: AtomicU64,
    /// Metrics: exports that held exactly `points_per_export` data points.
    pub full_batches: AtomicU64,
    /// Metrics: exports that held more than `points_per_export` (none
    /// should).
    pub over_full_batches: AtomicU64,
    /// Metrics: the exporter's temporality, in words.
    pub temporality: OnceLock<&'static str>,
    /// Whose exporter: opentelemetry-otlp's timeouts are told by their text.
    kind: ExporterKind,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    pub fn new(endpoint: String, kind: ExporterKind) -> Self {
        Tally {
            endpoint,
            kind,
            handed: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_doubt: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            in_doubt_batches: AtomicU64::new(0),
            exports: ConcurrencyMonitor::new(),
            otlp: OnceLock::new(),
            points_per_export: AtomicU64::new(0),
            full_batches: AtomicU64::new(0),
            over_full_batches: AtomicU64::new(0),
            temporality: OnceLock::new(),
            first_error: Mutex::new(None),
        }
    }

    /// The first export failure, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, items: u64, result: &OTelSdkResult) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
            }
            Err(e) => {
                let (count, batches, what) = if timed_out(self.kind, e) {
                    (&self.in_doubt, &self.in_doubt_batches, "timed out")
                } else {
                    (&self.failed, &self.failed_batches, "failed")
                };
                count.fetch_add(items, Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    let message = format!("export to {} {what}: {e}", self.endpoint);
                    eprintln!("pipeline: {message}");
                    *first = Some(message);
                }
            }
        }
    }
}

/// Whether an export's error says it timed out, so that the request may
/// have arrived. Our exporter says so with `Timeout`; opentelemetry-otlp
/// wraps tonic's or its HTTP client's timeout in an internal failure whose
/// text is all there is to go by.
fn timed_out(kind: ExporterKind, e: &OTelSdkError) -> bool {
    match e {
        OTelSdkError::Timeout(_) => true,
        OTelSdkError::InternalFailure(text) if kind == ExporterKind::OpentelemetryOtlp => {
            let text = text.to_ascii_lowercase();
            text.contains("timeout expired")
                || text.contains("timed out")
                || text.contains("deadlineexceeded")
                || text.contains("deadline has elapsed")
        }
        _ => false,
    }
}

/// Polls a future with a Tokio runtime's context entered.
struct InRuntime<F> {
    handle: tokio::runtime::Handle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _inside = self.handle.enter();
        self.future.as_mut().poll(cx)
    }
}

/// An SDK exporter that counts, times and reports; see the module docs.
#[derive(Debug)]
pub struct Counted<E> {
    inner: E,
    io: tokio::runtime::Handle,
    tally: Arc<Tally>,
}

impl<E> Counted<E> {
    pub fn new(inner: E, io: tokio::runtime::Handle, tally: Arc<Tally>) -> Self {
        Counted { inner, io, tally }
    }

    async fn run<F: Future<Output = OTelSdkResult>>(&self, items: u64, export: F) -> OTelSdkResult {
        self.tally.handed.fetch_add(items, Ordering::Relaxed);
        let timer = self.tally.exports.start_task();
        let result = InRuntime {
            handle: self.io.clone(),
            future: Box::pin(export),
        }
        .await;
        match result {
            Ok(()) => timer.finish(),
            Err(_) => timer.fail(),
        };
        self.tally.record(items, &result);
        result
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let items = batch.len() as u64;
        self.run(items, self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _inside = self.io.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _inside = self.io.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Data points in one collection, every aggregation.
pub fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(e) => e.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(d) => count(d),
            AggregatedMetrics::U64(d) => count(d),
            AggregatedMetrics::I64(d) => count(d),
        } as u64)
        .sum()
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let points = data_points(metrics);
        let most = self.tally.points_per_export.load(Ordering::Relaxed);
        if points == most {
            self.tally.full_batches.fetch_add(1, Ordering::Relaxed);
        } else if points > most {
            self.tally.over_full_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.run(points, self.inner.export(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _inside = self.io.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _inside = self.io.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let items = batch.iter().count() as u64;
        self.run(items, self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _inside = self.io.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// How to reach the endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    pub protocol: Protocol,
    /// `None`: the exporter reads `OTEL_EXPORTER_OTLP_*` itself.
    pub endpoint: Option<String>,
    pub compression: Option<otlp_sdk::otlp::Compression>,
    pub timeout: Option<Duration>,
    /// `--tls`: the generated CA (PEM) the server's certificate chains to.
    pub ca_pem: Option<Vec<u8>>,
}

impl Target {
    /// What to call the endpoint in messages.
    pub fn describe(&self, signal: SignalKind) -> String {
        match &self.endpoint {
            Some(url) => url.clone(),
            None => {
                let specific = match signal {
                    SignalKind::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    SignalKind::Logs => "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    SignalKind::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                };
                [specific, "OTEL_EXPORTER_OTLP_ENDPOINT"]
                    .iter()
                    .find_map(|var| {
                        std::env::var(var)
                            .ok()
                            .filter(|v| !v.is_empty())
                            .map(|v| format!("{v} (from {var})"))
                    })
                    .unwrap_or_else(|| "the default OTLP endpoint".to_owned())
            }
        }
    }
}

/// opentelemetry-otlp's name for a compression; `None` for none.
fn compression(compression: otlp_sdk::otlp::Compression) -> Option<Compression> {
    match compression {
        otlp_sdk::otlp::Compression::None => None,
        otlp_sdk::otlp::Compression::Gzip => Some(Compression::Gzip),
        otlp_sdk::otlp::Compression::Zstd => Some(Compression::Zstd),
    }
}

/// The endpoint and timeout of `target`, on either transport's builder.
fn with_target<B: WithExportConfig>(mut builder: B, target: &Target) -> B {
    if let Some(url) = &target.endpoint {
        builder = builder.with_endpoint(url.clone());
    }
    if let Some(timeout) = target.timeout {
        builder = builder.with_timeout(timeout);
    }
    builder
}

/// Our exporter's builder for `target`; what it leaves unset the exporter
/// reads from `OTEL_EXPORTER_OTLP_*` itself.
fn ours(target: &Target) -> OtlpExporterBuilder {
    let mut builder = OtlpExporterBuilder::new().with_protocol(match target.protocol {
        Protocol::Grpc => otlp_sdk::otlp::Protocol::Grpc,
        Protocol::HttpProtobuf => otlp_sdk::otlp::Protocol::HttpProtobuf,
        Protocol::HttpJson => otlp_sdk::otlp::Protocol::HttpJson,
    });
    if let Some(url) = &target.endpoint {
        builder = builder.with_endpoint(url.clone());
    }
    if let Some(timeout) = target.timeout {
        builder = builder.with_timeout(timeout);
    }
    if let Some(compression) = target.compression {
        builder = builder.with_compression(compression);
    }
    if let Some(ca) = &target.ca_pem {
        // Only the CA: a client certificate, if the environment names one,
        // still comes from OTEL_EXPORTER_OTLP_CLIENT_*.
        builder = builder.with_tls(TlsConfig::new().with_ca_certificate_pem(ca.clone()));
    }
    builder
}

type BoxedExport<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

/// Either exporter, so one provider-building path serves both.
#[derive(Debug)]
pub enum AnySpanExporter {
    Ours(OtlpSpanExporter),
    OpentelemetryOtlp(opentelemetry_otlp::SpanExporter),
}

impl SpanExporter for AnySpanExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let export: BoxedExport<'_> = match self {
            Self::Ours(e) => Box::pin(e.export(batch)),
            Self::OpentelemetryOtlp(e) => Box::pin(e.export(batch)),
        };
        export
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Ours(e) => e.shutdown_with_timeout(timeout),
            Self::OpentelemetryOtlp(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            Self::Ours(e) => e.force_flush(),
            Self::OpentelemetryOtlp(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Ours(e) => e.set_resource(resource),
            Self::OpentelemetryOtlp(e) => e.set_resource(resource),
        }
    }
}

/// Either log exporter; see [`AnySpanExporter`].
#[derive(Debug)]
pub enum AnyLogExporter {
    Ours(OtlpLogExporter),
    OpentelemetryOtlp(opentelemetry_otlp::LogExporter),
}

impl LogExporter for AnyLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        match self {
            Self::Ours(e) => e.export(batch).await,
            Self::OpentelemetryOtlp(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Ours(e) => e.shutdown_with_timeout(timeout),
            Self::OpentelemetryOtlp(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Ours(e) => e.set_resource(resource),
            Self::OpentelemetryOtlp(e) => e.set_resource(resource),
        }
    }
}

/// opentelemetry-otlp's exporter of type `$exporter` for `$target`. A macro
/// because its span and log builders share no trait for `build`.
macro_rules! opentelemetry_otlp_exporter {
    ($exporter:ty, $target:expr) => {{
        let target: &Target = $target;
        let compressed = target.compression.and_then(compression);
        let builder = <$exporter>::builder();
        match target.protocol {
            Protocol::Grpc => {
                let b = with_target(builder.with_tonic(), target);
                match compressed {
                    Some(c) => b.with_compression(c).build(),
                    None => b.build(),
                }
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let b = builder.with_http().with_protocol(match target.protocol {
                    Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
                    _ => opentelemetry_otlp::Protocol::HttpBinary,
                });
                let b = with_target(b, target);
                match compressed {
                    Some(c) => b.with_compression(c).build(),
                    None => b.build(),
                }
            }
        }
    }};
}

/// Builds the chosen span exporter, and our exporter's counters when it is
/// ours; must run inside the Tokio runtime that will carry
/// opentelemetry-otlp's connections (tonic connects lazily on it).
pub fn span_exporter(
    kind: ExporterKind,
    target: &Target,
) -> Result<(AnySpanExporter, Option<OtlpStatsReader>), String> {
    let failed = |e: &dyn std::fmt::Display| format!("building the OTLP span exporter: {e}");
    if kind == ExporterKind::Ours {
        let exporter = ours(target).build_span_exporter().map_err(|e| failed(&e))?;
        let stats = exporter.stats_reader();
        return Ok((AnySpanExporter::Ours(exporter), Some(stats)));
    }
    opentelemetry_otlp_exporter!(opentelemetry_otlp::SpanExporter, target)
        .map(|e| (AnySpanExporter::OpentelemetryOtlp(e), None))
        .map_err(|e| failed(&e))
}

/// Builds the chosen log exporter; see [`span_exporter`].
pub fn log_exporter(
    kind: ExporterKind,
    target: &Target,
) -> Result<(AnyLogExporter, Option<OtlpStatsReader>), String> {
    let failed = |e: &dyn std::fmt::Display| format!("building the OTLP log exporter: {e}");
    if kind == ExporterKind::Ours {
        let exporter = ours(target).build_log_exporter().map_err(|e| failed(&e))?;
        let stats = exporter.stats_reader();
        return Ok((AnyLogExporter::Ours(exporter), Some(stats)));
    }
    opentelemetry_otlp_exporter!(opentelemetry_otlp::LogExporter, target)
        .map(|e| (AnyLogExporter::OpentelemetryOtlp(e), None))
        .map_err(|e| failed(&e))
}

/// Builds otlp_sdk's metric exporter and its counters; metrics over
/// HTTP/JSON are refused by the builder (an error here is a usage error).
pub fn metric_exporter(target: &Target) -> Result<(OtlpMetricExporter, OtlpStatsReader), String> {
    let exporter = ours(target)
        .build_metric_exporter()
        .map_err(|e| format!("building the OTLP metric exporter: {e}"))?;
    let stats = exporter.stats_reader();
    Ok((exporter, stats))
}
