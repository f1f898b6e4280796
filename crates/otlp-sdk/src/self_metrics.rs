//! Self-observability: the semantic conventions' SDK metrics
//! (<https://opentelemetry.io/docs/specs/semconv/otel/sdk-metrics/>) for our
//! processors and exporters, reported through a `MeterProvider` the user
//! hands to `with_meter_provider`.
//!
//! Names, units, instrument kinds and the `otel.component.*` /
//! `error.type` attributes are those opentelemetry_sdk 0.33 uses for its own
//! processors (`otel.sdk.processor.{span,log}.processed`,
//! `otel.sdk.processor.log.queue.capacity`, behind its experimental feature)
//! and, for what 0.33 does not report, the semantic conventions' SDK
//! metrics page.
//!
//! Everything counted already lives in our atomics ([`ProcessorStats`],
//! the OTLP exporters' counters), so all but one instrument are
//! observable: their callbacks read those atomics when the user's reader
//! collects, and the paths that emit and export pay nothing for them. The
//! one exception is the exporters' `otel.sdk.exporter.operation.duration`
//! histogram, recorded once per export.

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use otlp_async::{ProcessorStats, StatsReader};

/// The instrumentation scope of every instrument this crate creates.
pub(crate) const SCOPE_NAME: &str = "otlp-sdk";

/// `otel.component.type`.
pub(crate) const COMPONENT_TYPE: &str = "otel.component.type";
/// `otel.component.name`.
pub(crate) const COMPONENT_NAME: &str = "otel.component.name";
/// `error.type`.
pub(crate) const ERROR_TYPE: &str = "error.type";

/// The meter our instruments are created on, from the user's provider.
pub(crate) fn meter<P: MeterProvider + ?Sized>(provider: &P) -> Meter {
    provider.meter_with_scope(
        InstrumentationScope::builder(SCOPE_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

/// A fresh `otel.component.name` for a component of `kind`:
/// `{otel.component.type}/{n}`, `n` counting from 0 per type, as the
/// conventions recommend (and as opentelemetry_sdk names its processors).
pub(crate) fn component_name(kind: &'static str) -> String {
    static NEXT: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());
    let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
    let n = match next.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            next.push((kind, 0));
            0
        }
    };
    format!("{kind}/{n}")
}

/// A counter value for an up-down counter's `i64`.
pub(crate) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What a processor's callbacks read: its live stats while it runs, the
/// final figures once it is gone (so the meter provider, which keeps
/// callbacks for its whole life, does not keep the processor's queue
/// alive).
enum Source {
    Live(StatsReader),
    Final(ProcessorStats),
}

/// The processor side: shared by the callbacks and the processor's guard.
struct ProcessorSource(Mutex<Source>);

impl ProcessorSource {
    /// A snapshot. The lock is held while atomics are read (and, after the
    /// loop finished, stragglers swept from the queue); no user code runs
    /// under it.
    fn stats(&self) -> ProcessorStats {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Source::Live(reader) => reader.stats(),
            Source::Final(stats) => *stats,
        }
    }
}

/// Held by a processor that reports; when the processor (and with it the
/// pipeline) is dropped, freezes the figures the callbacks report.
pub(crate) struct ProcessorGuard(Arc<ProcessorSource>);

impl Drop for ProcessorGuard {
    fn drop(&mut self) {
        let mut source = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Source::Live(reader) = &*source {
            *source = Source::Final(reader.stats());
        }
    }
}

/// Which processor: the conventions' names differ per signal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProcessorKind {
    Spans,
    Logs,
}

impl ProcessorKind {
    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            // (processed, queue.size, queue.capacity, unit)
            Self::Spans => (
                "otel.sdk.processor.span.processed",
                "otel.sdk.processor.span.queue.size",
                "otel.sdk.processor.span.queue.capacity",
                "{span}",
            ),
            Self::Logs => (
                "otel.sdk.processor.log.processed",
                "otel.sdk.processor.log.queue.size",
                "otel.sdk.processor.log.queue.capacity",
                "{log_record}",
            ),
        }
    }

    /// `otel.component.type`, the conventions' well-known values (the
    /// ones opentelemetry_sdk's batch processors use too).
    fn component_type(self) -> &'static str {
        match self {
            Self::Spans => "batching_span_processor",
            Self::Logs => "batching_log_processor",
        }
    }
}

/// Registers a processor's observable instruments on `meter`: processed
/// items (without `error.type` once handed to the exporter, as the
/// conventions and opentelemetry_sdk count them; `queue_full` and
/// `already_shutdown` for the drops), the queue's size and capacity.
pub(crate) fn register_processor(
    meter: &Meter,
    kind: ProcessorKind,
    reader: StatsReader,
    capacity: usize,
) -> ProcessorGuard {
    let (processed, size, cap, unit) = kind.names();
    let component_type = kind.component_type();
    let name = component_name(component_type);
    let component: Arc<[KeyValue]> = Arc::from(vec![
        KeyValue::new(COMPONENT_TYPE, component_type),
        KeyValue::new(COMPONENT_NAME, name.clone()),
    ]);
    let with_error = |error: &'static str| -> Vec<KeyValue> {
        let mut attrs = vec![KeyValue::new(ERROR_TYPE, error)];
        attrs.extend(component.iter().cloned());
        attrs
    };
    let queue_full = with_error("queue_full");
    let after_shutdown = with_error("already_shutdown");
    let source = Arc::new(ProcessorSource(Mutex::new(Source::Live(reader))));

    let (src, attrs) = (Arc::clone(&source), Arc::clone(&component));
    meter
        .u64_observable_counter(processed)
        .with_description(
            "The number of items for which the processing has finished, either successful or \
             failed.",
        )
        .with_unit(unit)
        .with_callback(move |observer| {
            let stats = src.stats();
            // Handed to the exporter: exported, failed, in doubt or still
            // in flight (the conventions count an item as processed once
            // submitted to the exporter).
            let submitted =
                stats.exported + stats.dropped_export_failed + stats.in_doubt + stats.in_flight;
            observer.observe(submitted, &attrs);
            observer.observe(stats.dropped_queue_full, &queue_full);
            observer.observe(stats.dropped_after_shutdown, &after_shutdown);
        })
        .build();

    let (src, attrs) = (Arc::clone(&source), Arc::clone(&component));
    meter
        .i64_observable_up_down_counter(size)
        .with_description("The number of items in the queue of a given instance of a processor.")
        .with_unit(unit)
        .with_callback(move |observer| {
            observer.observe(signed(src.stats().queue_depth), &attrs);
        })
        .build();

    let capacity = signed(capacity as u64);
    let attrs = Arc::clone(&component);
    meter
        .i64_observable_up_down_counter(cap)
        .with_description(
            "The maximum number of items the queue of a given instance of a processor can hold.",
        )
        .with_unit(unit)
        .with_callback(move |observer| observer.observe(capacity, &attrs))
        .build();

    ProcessorGuard(source)
}
