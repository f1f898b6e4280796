//! The batches the OTLP benches encode and send: shaped like the pipeline
//! example's traffic, built as `SpanData` and `SdkLogRecord`s directly so
//! that every implementation is handed the same batch; and a metrics
//! collection (`ResourceMetrics`) taken from a real `SdkMeterProvider`.

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::SpanData;
use std::time::UNIX_EPOCH;

/// A batch shaped like the pipeline example's traffic: a server root span
/// and client/internal children, three attributes each (a route string, a
/// status code, a cache flag), one scope, sampled, no events or links.
pub fn pipeline_batch(n: usize) -> Vec<SpanData> {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::Duration;

    const ROUTES: [&str; 4] = ["/api/orders", "/api/users", "/healthz", "/metrics"];
    const NAMES: [&str; 6] = [
        "GET /api/orders",
        "db.query",
        "cache.get",
        "kafka.produce",
        "auth.verify",
        "render.template",
    ];
    let scope = InstrumentationScope::builder("otlp-pipeline")
        .with_version("0.1.0")
        .build();
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut root = SpanId::INVALID;
    (0..n as u64)
        .map(|i| {
            let is_root = i.is_multiple_of(4);
            let span_id = SpanId::from(i + 1);
            if is_root {
                root = span_id;
            }
            let start = base + Duration::from_nanos(i * 1_000);
            SpanData {
                span_context: SpanContext::new(
                    TraceId::from(u128::from(i / 4 + 1) << 64 | 0xABCD),
                    span_id,
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::default(),
                ),
                parent_span_id: if is_root { SpanId::INVALID } else { root },
                parent_span_is_remote: false,
                span_kind: if is_root {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                name: NAMES[(i % 6) as usize].into(),
                start_time: start,
                end_time: start + Duration::from_micros(250 + i % 1000),
                attributes: vec![
                    KeyValue::new("http.route", ROUTES[(i % 4) as usize]),
                    KeyValue::new(
                        "http.response.status_code",
                        if i.is_multiple_of(50) { 500 } else { 200 },
                    ),
                    KeyValue::new("cache.hit", i.is_multiple_of(3)),
                ],
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                instrumentation_scope: scope.clone(),
            }
        })
        .collect()
}

/// Log records shaped like a service's: a message body, INFO (every tenth
/// WARN, every fiftieth ERROR) with its text, three attributes (a route, a
/// status code, a cache flag), the trace context of the request, the
/// timestamps the SDK's logger sets; and the one scope they are emitted
/// under. Pair them as `(&record, &scope)` for a `LogBatch`.
pub fn service_logs(n: usize) -> (Vec<SdkLogRecord>, InstrumentationScope) {
    use opentelemetry::trace::{TraceFlags, TraceId};
    use std::time::Duration;

    const ROUTES: [&str; 4] = ["/api/orders", "/api/users", "/healthz", "/metrics"];
    const MESSAGES: [&str; 4] = [
        "request completed",
        "cache miss, loading from the database",
        "order placed",
        "upstream responded slowly",
    ];
    let scope = InstrumentationScope::builder("otlp-pipeline")
        .with_version("0.1.0")
        .build();
    // Records only come from a logger; this one has no processor.
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger_with_scope(scope.clone());
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let records = (0..n as u64)
        .map(|i| {
            let mut record = logger.create_log_record();
            let at = base + Duration::from_nanos(i * 1_000);
            record.set_timestamp(at);
            record.set_observed_timestamp(at + Duration::from_nanos(200));
            let (severity, text) = if i.is_multiple_of(50) {
                (Severity::Error, "ERROR")
            } else if i.is_multiple_of(10) {
                (Severity::Warn, "WARN")
            } else {
                (Severity::Info, "INFO")
            };
            record.set_severity_number(severity);
            record.set_severity_text(text);
            record.set_body(AnyValue::from(MESSAGES[(i % 4) as usize]));
            record.add_attribute("http.route", ROUTES[(i % 4) as usize]);
            record.add_attribute(
                "http.response.status_code",
                if i.is_multiple_of(50) { 500 } else { 200 },
            );
            record.add_attribute("cache.hit", i.is_multiple_of(3));
            record.set_trace_context(
                TraceId::from(u128::from(i / 4 + 1) << 64 | 0xABCD),
                SpanId::from(i + 1),
                Some(TraceFlags::SAMPLED),
            );
            record
        })
        .collect();
    (records, scope)
}

/// One cumulative collection of a service's metrics, as a `PeriodicReader`
/// hands it to its exporter: per route (`points / 4` routes, at least
/// one), a request counter (u64 sum), an in-flight up-down counter (i64
/// sum), a latency histogram (f64, the SDK's default 16 buckets) and a
/// queue-size gauge (f64), each point with a route, a method and a status
/// code; `points` data points in four metrics, one scope, a resource with a
/// service name.
pub fn service_metrics(points: usize) -> opentelemetry_sdk::metrics::data::ResourceMetrics {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("otlp-pipeline")
                .build(),
        )
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let meter = provider.meter("otlp-pipeline");
    let requests = meter.u64_counter("http.server.requests").build();
    let in_flight = meter
        .i64_up_down_counter("http.server.active_requests")
        .build();
    let latency = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    let queue = meter.f64_gauge("queue.size").build();
    for route in 0..(points / 4).max(1) {
        let attrs = [
            KeyValue::new("http.route", format!("/api/v1/items/{route}")),
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200i64),
        ];
        for i in 0..8 {
            requests.add(1, &attrs);
            in_flight.add(if i % 2 == 0 { 1 } else { -1 }, &attrs);
            latency.record(0.001 * f64::from(i * 37 % 100), &attrs);
        }
        queue.record(route as f64, &attrs);
    }
    // Shutting down collects once more; the bench takes the first.
    let _ = provider.force_flush();
    let _ = provider.shutdown();
    exporter
        .get_finished_metrics()
        .ok()
        .and_then(|mut all| (!all.is_empty()).then(|| all.swap_remove(0)))
        .unwrap_or_default()
}
