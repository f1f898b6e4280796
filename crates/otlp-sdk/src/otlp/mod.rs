//! OTLP exporters of our own: the SDK's `SpanData` and log records encoded
//! straight to OTLP protobuf, sent over gRPC (tonic) or HTTP/protobuf
//! (hyper), with gzip, headers, a timeout, retry with backoff and the
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
//! encode the tree; [`TraceEncoder`] and [`LogEncoder`] write the same
//! bytes straight from the SDK's data, in about a sixth of the time
//! (`otlp_encode` in docs/benchmarks.md). Not built in: TLS (`https`
//! endpoints are refused with [`OtlpConfigError::TlsUnsupported`]) and
//! `http/json`.

mod answer;
mod bodies;
mod config;
mod exporter;
mod logs;
mod proto;
mod sender;
mod trace;
mod transport;

pub use config::{Compression, OtlpConfigError, Protocol, RetryPolicy};
pub use exporter::{OtlpExporterBuilder, OtlpLogExporter, OtlpSpanExporter, OtlpStatsReader};
pub use logs::LogEncoder;
pub use sender::OtlpExporterStats;
pub use trace::TraceEncoder;
