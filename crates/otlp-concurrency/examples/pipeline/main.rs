//! The main job: OTLP on the wire.
//!
//! ```text
//! producer threads ──span.end() / emit──► batch processor ──► opentelemetry-otlp exporter ──► OTLP/gRPC or OTLP/HTTP
//! (OpenTelemetry API on          (otlp_sdk's, or the           (tonic / hyper, retries,       to --endpoint, the
//!  SdkTracerProvider /            SDK's own with                gzip, OTEL_EXPORTER_OTLP_*)    OTEL_EXPORTER_OTLP_*
//!  SdkLoggerProvider)             --processor sdk)                                             endpoint, or the
//!                                                                                              embedded receiver
//! ```
//!
//! With `--signal metrics` the producers record to counters and a histogram
//! on an `SdkMeterProvider` whose `PeriodicReader` exports through
//! otlp_sdk's `OtlpMetricExporter`, and the report counts data points.
//! With `--tls` the embedded receiver (or the agent) serves TLS with a
//! certificate made at start, and the exporter trusts its CA.
//!
//! With `--via-agent` an otlp-agent started in process (its library) sits
//! between the exporter and the embedded receiver, and the report checks
//! conservation across both hops; `--agent-queue disk` gives it its disk
//! queue in a temporary directory, and the report its bytes on disk,
//! replays and fsync timings.
//!
//! Run it with `cargo run --release --example pipeline -- --help`; the
//! guide is `docs/pipeline.md`.

mod cli;
mod exporters;
mod http;
mod job;
mod producers;
mod report;
mod system;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(job::main(std::env::args().skip(1)))
}
