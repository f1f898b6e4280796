//! OTLP exporters of our own: the SDK's `SpanData` and log records encoded
//! straight to OTLP protobuf, sent over gRPC (tonic) or HTTP/protobuf
//! (hyper), with gzip, headers, a timeout, retry with backoff and the
//! `OTEL_EXPORTER_OTLP_*` variables.

mod logs;
mod proto;
mod trace;

pub use logs::LogEncoder;
pub use trace::TraceEncoder;
