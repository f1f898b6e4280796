//! Keeping the pipeline's own threads out of telemetry.
//!
//! OpenTelemetry marks a context as suppressed
//! ([`Context::enter_telemetry_suppressed_scope`]); the SDK's tracers and
//! loggers drop what is started or emitted under it. A span or log record
//! produced while a batch is exported (by the exporter, by its transport's
//! `tracing` events bridged to OpenTelemetry, by our own warnings) would
//! otherwise become the next batch: a feedback loop that exports forever.

use opentelemetry::Context;

/// Suppresses telemetry on the calling thread for the rest of its life:
/// spans started and log records emitted on it through an OpenTelemetry
/// SDK provider are dropped, unless code on it attaches a context of its
/// own that is not suppressed.
///
/// Every thread this crate creates calls it first (the processors' loop
/// threads and blocking pools, the OTLP exporters' I/O threads). Call it
/// at the start of a thread of yours that only exports or does network
/// work for the pipeline — a tokio runtime's `on_thread_start`, say.
/// Calling it again on the same thread does nothing more.
///
/// ```
/// use opentelemetry::Context;
///
/// std::thread::spawn(|| {
///     otlp_sdk::suppress_telemetry_on_this_thread();
///     assert!(Context::is_current_telemetry_suppressed());
/// })
/// .join()
/// .unwrap();
/// ```
pub fn suppress_telemetry_on_this_thread() {
    if Context::is_current_telemetry_suppressed() {
        return;
    }
    // The guard would restore the unsuppressed context when dropped; the
    // thread is to stay suppressed, so it is never dropped. Forgetting it
    // leaks nothing: the context sits in the thread's context stack, which
    // is freed with the thread.
    std::mem::forget(Context::enter_telemetry_suppressed_scope());
}
