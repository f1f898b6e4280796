//! Self-observability: `with_meter_provider` on our processors and OTLP
//! exporters reports the semantic conventions' SDK metrics, read back here
//! through opentelemetry_sdk's own `InMemoryMetricExporter` behind a
//! `PeriodicReader` (collected on `force_flush`): names, units, instrument
//! kinds, attributes and values, against our own `stats()`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use common::{Behaviour, TestExporter, eventually};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    SdkTracerProvider, SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor as _,
};
use otlp_sdk::{BatchConfig, BatchLogProcessor, BatchSpanProcessor, ExportMode, Signal};

/// One data point as collected: which metric, its kind and unit, its
/// attributes, and its value (a histogram's: its count; `sum` apart).
#[derive(Debug, Clone)]
struct Point {
    scope: String,
    name: String,
    unit: String,
    kind: &'static str,
    attrs: BTreeMap<String, String>,
    value: f64,
    sum: f64,
}

/// A meter provider whose reader exports only when flushed, and its
/// in-memory exporter.
fn meter_provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(exporter.clone())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    (provider, exporter)
}

/// Collects now; the points of that collection (cumulative temporality:
/// each collection carries every total).
fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Vec<Point> {
    exporter.reset();
    provider.force_flush().expect("collect");
    let finished = exporter.get_finished_metrics().expect("metrics");
    points(finished.last().expect("one collection"))
}

fn points(rm: &ResourceMetrics) -> Vec<Point> {
    fn attrs<'a>(
        kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    ) -> BTreeMap<String, String> {
        kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }
    let mut out = Vec::new();
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            let mut push = |kind, attrs, value: f64, sum: f64| {
                out.push(Point {
                    scope: sm.scope().name().to_owned(),
                    name: m.name().to_owned(),
                    unit: m.unit().to_owned(),
                    kind,
                    attrs,
                    value,
                    sum,
                });
            };
            match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() {
                        "counter"
                    } else {
                        "updown"
                    };
                    for dp in s.data_points() {
                        push(kind, attrs(dp.attributes()), dp.value() as f64, 0.0);
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() {
                        "counter"
                    } else {
                        "updown"
                    };
                    for dp in s.data_points() {
                        push(kind, attrs(dp.attributes()), dp.value() as f64, 0.0);
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for dp in h.data_points() {
                        push(
                            "histogram",
                            attrs(dp.attributes()),
                            dp.count() as f64,
                            dp.sum(),
                        );
                    }
                }
                other => panic!("unexpected aggregation for {}: {other:?}", m.name()),
            }
        }
    }
    out
}

/// The points of metric `name`.
fn named<'a>(points: &'a [Point], name: &str) -> Vec<&'a Point> {
    points.iter().filter(|p| p.name == name).collect()
}

/// The one point of `name` whose `error.type` is `error` (`None`: unset).
fn value(points: &[Point], name: &str, error: Option<&str>) -> f64 {
    let found: Vec<_> = named(points, name)
        .into_iter()
        .filter(|p| p.attrs.get("error.type").map(String::as_str) == error)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} point with error.type {error:?}: {points:#?}"
    );
    found[0].value
}

/// Checks name-independent facts of every point of `name`: its kind, unit,
/// our scope, and the component attributes.
fn check_shape(points: &[Point], name: &str, kind: &str, unit: &str, component_type: &str) {
    let found = named(points, name);
    assert!(!found.is_empty(), "{name} reported: {points:#?}");
    for p in found {
        assert_eq!(p.kind, kind, "{name}'s instrument kind");
        assert_eq!(p.unit, unit, "{name}'s unit");
        assert_eq!(p.scope, "otlp-sdk", "{name}'s scope");
        assert_eq!(
            p.attrs.get("otel.component.type").map(String::as_str),
            Some(component_type),
            "{name}'s otel.component.type"
        );
        let component_name = p
            .attrs
            .get("otel.component.name")
            .expect("a component name");
        assert!(
            component_name.starts_with(&format!("{component_type}/")),
            "{name}'s otel.component.name {component_name}"
        );
    }
}

#[test]
fn span_processor_reports_processed_and_its_queue() {
    let (meters, metrics) = meter_provider();
    let exporter = TestExporter::new(Behaviour::Ok);
    let record = Arc::clone(&exporter.record);
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfig::from_env(Signal::Spans)
                .with_max_queue_size(64)
                .with_max_export_batch_size(16),
        )
        .with_meter_provider(&meters)
        .build()
        .expect("processor");
    let stats = processor.stats_reader();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("test");
    for _ in 0..40 {
        tracer.in_span("work", |_cx| {});
    }
    provider.force_flush().expect("flush");
    assert_eq!(record.items.load(Ordering::SeqCst), 40);

    let points = collect(&meters, &metrics);
    let processed = "otel.sdk.processor.span.processed";
    check_shape(
        &points,
        processed,
        "counter",
        "{span}",
        "batching_span_processor",
    );
    assert_eq!(value(&points, processed, None), 40.0);
    assert_eq!(value(&points, processed, Some("queue_full")), 0.0);
    assert_eq!(value(&points, processed, Some("already_shutdown")), 0.0);
    let size = "otel.sdk.processor.span.queue.size";
    check_shape(&points, size, "updown", "{span}", "batching_span_processor");
    assert_eq!(value(&points, size, None), 0.0);
    let capacity = "otel.sdk.processor.span.queue.capacity";
    check_shape(
        &points,
        capacity,
        "updown",
        "{span}",
        "batching_span_processor",
    );
    assert_eq!(value(&points, capacity, None), 64.0);
    // One component: every series names the same one.
    let names: std::collections::BTreeSet<_> = points
        .iter()
        .map(|p| p.attrs["otel.component.name"].clone())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(stats.stats().exported, 40);
    provider.shutdown().expect("shutdown");
}

#[test]
fn log_processor_reports_processed_and_its_queue() {
    let (meters, metrics) = meter_provider();
    let exporter = TestExporter::new(Behaviour::Ok);
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(BatchConfig::from_env(Signal::Logs).with_max_queue_size(128))
        .with_meter_provider(&meters)
        .build()
        .expect("processor");
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let logger = provider.logger("test");
    for i in 0..5 {
        let mut record = logger.create_log_record();
        record.set_body(format!("line {i}").into());
        logger.emit(record);
    }
    provider.force_flush().expect("flush");

    let points = collect(&meters, &metrics);
    let processed = "otel.sdk.processor.log.processed";
    check_shape(
        &points,
        processed,
        "counter",
        "{log_record}",
        "batching_log_processor",
    );
    assert_eq!(value(&points, processed, None), 5.0);
    assert_eq!(value(&points, processed, Some("queue_full")), 0.0);
    let capacity = "otel.sdk.processor.log.queue.capacity";
    check_shape(
        &points,
        capacity,
        "updown",
        "{log_record}",
        "batching_log_processor",
    );
    assert_eq!(value(&points, capacity, None), 128.0);
    let size = "otel.sdk.processor.log.queue.size";
    check_shape(
        &points,
        size,
        "updown",
        "{log_record}",
        "batching_log_processor",
    );
    assert_eq!(value(&points, size, None), 0.0);
    provider.shutdown().expect("shutdown");
}

/// A gate an exporter blocks its thread on until it is opened.
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[derive(Debug, Clone)]
struct Blocked {
    gate: Arc<Gate>,
    items: Arc<AtomicUsize>,
}

impl SpanExporter for Blocked {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.gate.wait();
        self.items.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

fn span(i: u64) -> SpanData {
    let scope = InstrumentationScope::builder("test").build();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(i) + 1),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: format!("span {i}").into(),
        start_time: SystemTime::now(),
        end_time: SystemTime::now(),
        attributes: vec![opentelemetry::KeyValue::new("i", Value::I64(i as i64))],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope,
    }
}

#[test]
fn queue_full_and_already_shutdown_drops_are_reported_by_error_type() {
    let (meters, metrics) = meter_provider();
    let gate = Arc::new(Gate::default());
    let items = Arc::new(AtomicUsize::new(0));
    let processor = BatchSpanProcessor::builder(Blocked {
        gate: Arc::clone(&gate),
        items: Arc::clone(&items),
    })
    .with_batch_config(
        BatchConfig::from_env(Signal::Spans)
            .with_max_queue_size(4)
            .with_max_export_batch_size(1)
            .with_max_concurrent_exports(1)
            .with_scheduled_delay(Duration::from_millis(5))
            .with_export_timeout(Duration::from_secs(30)),
    )
    .with_export_mode(ExportMode::Threaded)
    .with_meter_provider(&meters)
    .build()
    .expect("processor");
    let stats = processor.stats_reader();

    // The first span goes to the exporter, which blocks; then the queue
    // (4) fills and the rest are dropped.
    processor.on_end(span(0));
    eventually("the first export to start", || stats.stats().in_flight == 1);
    for i in 1..=24 {
        processor.on_end(span(i));
    }
    let burst = stats.stats();
    assert!(burst.dropped_queue_full > 0, "{burst:?}");
    assert!(burst.queue_depth > 0, "{burst:?}");

    // A collection between two equal snapshots reads exactly those
    // figures (the loop may still be taking a span into its next batch
    // just after the burst; then look again).
    let processed = "otel.sdk.processor.span.processed";
    let (points, blocked) = loop {
        let before = stats.stats();
        let points = collect(&meters, &metrics);
        if stats.stats() == before {
            break (points, before);
        }
    };
    let full = value(&points, processed, Some("queue_full"));
    let size = value(&points, "otel.sdk.processor.span.queue.size", None);
    let submitted = value(&points, processed, None);
    assert_eq!(full, blocked.dropped_queue_full as f64);
    assert_eq!(size, blocked.queue_depth as f64);
    assert_eq!(submitted, (blocked.in_flight + blocked.exported) as f64);
    assert_eq!(submitted + full + size, 25.0, "every span accounted");
    assert_eq!(
        value(&points, "otel.sdk.processor.span.queue.capacity", None),
        4.0
    );

    gate.open();
    processor.force_flush().expect("flush");
    processor
        .shutdown_with_timeout(Duration::from_secs(10))
        .expect("shutdown");
    for i in 100..107 {
        processor.on_end(span(i));
    }
    let end = stats.stats();
    assert_eq!(end.dropped_after_shutdown, 7, "{end:?}");
    let points = collect(&meters, &metrics);
    assert_eq!(value(&points, processed, Some("already_shutdown")), 7.0);
    assert_eq!(value(&points, processed, Some("queue_full")), full);
    assert_eq!(value(&points, processed, None), end.exported as f64);
    assert_eq!(end.exported as usize, items.load(Ordering::SeqCst));
    assert_eq!(
        value(&points, "otel.sdk.processor.span.queue.size", None),
        0.0
    );

    // Dropped, the processor still reports its final figures (the meter
    // provider keeps the callbacks; they no longer hold the processor).
    drop(processor);
    let points = collect(&meters, &metrics);
    assert_eq!(value(&points, processed, Some("already_shutdown")), 7.0);
    assert_eq!(value(&points, processed, None), end.exported as f64);
}

#[test]
fn nothing_is_reported_without_a_meter_provider() {
    let (meters, metrics) = meter_provider();
    // The provider works: the application's own counter is collected.
    meters
        .meter("app")
        .u64_counter("app.requests")
        .build()
        .add(3, &[]);
    let processor = BatchSpanProcessor::builder(TestExporter::new(Behaviour::Ok))
        .build()
        .expect("processor");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("test");
    for _ in 0..10 {
        tracer.in_span("work", |_cx| {});
    }
    provider.force_flush().expect("flush");
    let points = collect(&meters, &metrics);
    assert_eq!(value(&points, "app.requests", None), 3.0);
    assert!(
        points
            .iter()
            .all(|p| !p.name.starts_with("otel.sdk.") && p.scope != "otlp-sdk"),
        "{points:#?}"
    );
    provider.shutdown().expect("shutdown");
}

#[cfg(feature = "otlp")]
mod otlp {
    use super::*;
    use otlp_receiver::{Receiver, ReceiverConfig};
    use otlp_sdk::otlp::{OtlpExporterBuilder, Protocol, RetryPolicy};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn receiver(config: ReceiverConfig) -> Receiver {
        Receiver::start(config).expect("receiver starts on a loopback port")
    }

    #[test]
    fn span_exporter_reports_exported_inflight_and_duration() {
        let (meters, metrics) = meter_provider();
        let rx = receiver(ReceiverConfig::default());
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(rx.endpoint())
            .with_meter_provider(&meters)
            .build_span_exporter()
            .expect("exporter");
        block_on(exporter.export((0..3).map(span).collect())).expect("export");
        exporter
            .shutdown_with_timeout(Duration::from_secs(5))
            .expect("shutdown");
        let refused = block_on(exporter.export((3..5).map(span).collect()));
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(rx.stats().spans, 3);

        let points = collect(&meters, &metrics);
        let kind = "otlp_grpc_span_exporter";
        let exported = "otel.sdk.exporter.span.exported";
        check_shape(&points, exported, "counter", "{span}", kind);
        assert_eq!(value(&points, exported, None), 3.0);
        assert_eq!(value(&points, exported, Some("already_shutdown")), 2.0);
        for error in ["rejected", "timeout", "tls", "_OTHER"] {
            assert_eq!(value(&points, exported, Some(error)), 0.0, "{error}");
        }
        let inflight = "otel.sdk.exporter.span.inflight";
        check_shape(&points, inflight, "updown", "{span}", kind);
        assert_eq!(value(&points, inflight, None), 0.0);
        let duration = "otel.sdk.exporter.operation.duration";
        check_shape(&points, duration, "histogram", "s", kind);
        assert_eq!(value(&points, duration, None), 1.0, "one successful export");
        assert_eq!(value(&points, duration, Some("already_shutdown")), 1.0);
        let ok = named(&points, duration)
            .into_iter()
            .find(|p| !p.attrs.contains_key("error.type"))
            .expect("the successful export's duration");
        assert!(ok.sum > 0.0 && ok.sum < 10.0, "{ok:?}");
        // The server's address and port, on every series.
        let port = rx.addr().port().to_string();
        for p in points
            .iter()
            .filter(|p| p.name.starts_with("otel.sdk.exporter."))
        {
            assert_eq!(p.attrs["server.address"], "127.0.0.1", "{p:?}");
            assert_eq!(p.attrs["server.port"], port, "{p:?}");
        }
    }

    #[test]
    fn partial_success_rejections_are_exported_items_with_error_type_rejected() {
        let (meters, metrics) = meter_provider();
        let rx = receiver(ReceiverConfig {
            partial_reject: 2,
            ..ReceiverConfig::default()
        });
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(Protocol::HttpProtobuf)
            .with_endpoint(rx.endpoint())
            .with_meter_provider(&meters)
            .build_span_exporter()
            .expect("exporter");
        let stats = exporter.stats_reader();
        for round in 0..3 {
            block_on(exporter.export((round * 10..round * 10 + 10).map(span).collect()))
                .expect("a partial success is a success");
        }
        assert_eq!(stats.stats().rejected_items, 6);
        let points = collect(&meters, &metrics);
        let kind = "otlp_http_span_exporter";
        let exported = "otel.sdk.exporter.span.exported";
        check_shape(&points, exported, "counter", "{span}", kind);
        assert_eq!(value(&points, exported, None), 24.0);
        assert_eq!(value(&points, exported, Some("rejected")), 6.0);
        // A partial success is a successful operation.
        assert_eq!(
            value(&points, "otel.sdk.exporter.operation.duration", None),
            3.0
        );
    }

    #[test]
    fn failed_exports_are_reported_with_their_error_type() {
        let (meters, metrics) = meter_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(Protocol::HttpProtobuf)
            .with_endpoint(dead)
            .with_timeout(Duration::from_secs(2))
            .with_retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
            .with_meter_provider(&meters)
            .build_log_exporter()
            .expect("exporter");
        let logs = SdkLoggerProvider::builder()
            .with_log_processor(
                BatchLogProcessor::builder(exporter)
                    .with_meter_provider(&meters)
                    .build()
                    .expect("processor"),
            )
            .build();
        let logger = logs.logger("test");
        for _ in 0..4 {
            logger.emit(logger.create_log_record());
        }
        let _ = logs.force_flush();
        let points = collect(&meters, &metrics);
        let exported = "otel.sdk.exporter.log.exported";
        check_shape(
            &points,
            exported,
            "counter",
            "{log_record}",
            "otlp_http_log_exporter",
        );
        assert_eq!(value(&points, exported, None), 0.0);
        assert_eq!(
            value(&points, exported, Some("_OTHER")),
            4.0,
            "connection refused"
        );
        assert_eq!(
            value(
                &points,
                "otel.sdk.exporter.operation.duration",
                Some("_OTHER")
            ),
            1.0
        );
        // The processor handed them over: processed, without error.type.
        assert_eq!(
            value(&points, "otel.sdk.processor.log.processed", None),
            4.0
        );
        logs.shutdown().expect("shutdown");
    }

    #[test]
    fn an_export_past_its_timeout_is_reported_as_timeout() {
        let (meters, metrics) = meter_provider();
        let rx = receiver(ReceiverConfig {
            latency: Duration::from_secs(3),
            ..ReceiverConfig::default()
        });
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(rx.endpoint())
            .with_timeout(Duration::from_millis(300))
            .with_meter_provider(&meters)
            .build_span_exporter()
            .expect("exporter");
        let stats = exporter.stats_reader();
        let result = block_on(exporter.export((0..5).map(span).collect()));
        assert!(result.is_err(), "{result:?}");
        assert_eq!(stats.stats().in_doubt_exports, 1);
        let points = collect(&meters, &metrics);
        let exported = "otel.sdk.exporter.span.exported";
        assert_eq!(value(&points, exported, Some("timeout")), 5.0);
        assert_eq!(value(&points, exported, None), 0.0);
        assert_eq!(value(&points, "otel.sdk.exporter.span.inflight", None), 0.0);
        let timed_out = named(&points, "otel.sdk.exporter.operation.duration")
            .into_iter()
            .find(|p| p.attrs.get("error.type").map(String::as_str) == Some("timeout"))
            .expect("the timed-out export's duration");
        assert_eq!(timed_out.value, 1.0);
        assert!(timed_out.sum >= 0.3, "{timed_out:?}");
    }
}
