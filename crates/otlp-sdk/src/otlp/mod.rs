//! OTLP exporters of our own: the SDK's `SpanData`, log records and
//! collected metrics encoded
//! straight to OTLP protobuf, sent over gRPC (tonic) or HTTP/protobuf
//! (hyper), or to OTLP/JSON for HTTP/JSON (`http/json`, hyper), over TLS or
//! mutual TLS for `https://` endpoints (rustls), with
//! gzip or zstd, headers, a timeout, retry with backoff and the
//! `OTEL_EXPORTER_OTLP_*` variables.
//!
//! ```no_run
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use otlp_sdk::otlp::{Compression, OtlpSpanExporter, Protocol};
//!
//! let exporter = OtlpSpanExporter::builder()
//!     .with_protocol(Protocol::Grpc)
//!     .with_endpoint("http://127.0.0.1:4317")
//!     .with_compression(Compression::Gzip)
//!     .build_span_exporter()
//!     .expect("a valid endpoint");
//! let provider = SdkTracerProvider::builder()
//!     .with_span_processor(otlp_sdk::BatchSpanProcessor::new(exporter))
//!     .build();
//! # provider.shutdown().unwrap();
//! ```
//!
//! Why a second OTLP exporter beside opentelemetry-otlp's: its encoder.
//! opentelemetry-otlp turns each batch into opentelemetry-proto's message
//! tree (an owned copy of every string and attribute) and then has prost
//! encode the tree; [`TraceEncoder`], [`LogEncoder`] and [`MetricEncoder`]
//! write the same bytes straight from the SDK's data, in about a sixth of
//! the time (`otlp_encode` in docs/benchmarks.md). [`TraceJsonEncoder`],
//! [`LogJsonEncoder`] and [`MetricJsonEncoder`] write the specification's
//! JSON encoding (hex ids, enums as integers, the proto3 JSON mapping
//! otherwise) the same way, for [`Protocol::HttpJson`].
//!
//! Metrics: [`OtlpMetricExporter`] is a `PushMetricExporter` for the SDK's
//! `PeriodicReader`, with cumulative, delta or low-memory temporality
//! ([`OtlpExporterBuilder::with_temporality`],
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`), over gRPC,
//! `http/protobuf` or `http/json`.
//!
//! TLS: an `https://` endpoint is verified against the system's trust store
//! (the `webpki-roots` feature: Mozilla's roots compiled in instead), or
//! against the CA certificates of [`TlsConfig`] /
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`; a client certificate and key
//! ([`TlsConfig::with_client_identity_files`],
//! `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY`) answer servers
//! that require mutual TLS. A TLS failure is not retried: the export fails
//! with a message naming the endpoint and the cause, and
//! [`OtlpStatsReader::last_tls_error`] returns it as a [`TlsError`].

mod answer;
mod bodies;
mod config;
mod exporter;
mod forward;
mod json;
mod logs;
mod metrics;
mod metrics_json;
mod proto;
mod sender;
mod tls;
mod trace;
mod transport;

pub use config::{Compression, OtlpConfigError, Protocol, RetryPolicy, Signal};
pub use exporter::{
    OtlpExporterBuilder, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter, OtlpStatsReader,
};
pub use forward::{Delivered, OtlpRequestSender, SendError};
pub use json::{LogJsonEncoder, TraceJsonEncoder};
pub use logs::LogEncoder;
pub use metrics::MetricEncoder;
pub use metrics_json::MetricJsonEncoder;
pub use sender::OtlpExporterStats;
pub use tls::{TlsConfig, TlsError, TlsFailure};
pub use trace::TraceEncoder;
