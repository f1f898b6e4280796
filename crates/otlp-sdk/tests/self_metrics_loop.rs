#![cfg(feature = "otlp")]
//! Telemetry about telemetry must not loop: our processors' and OTLP
//! exporters' self-metrics, exported through OUR OTLP metric exporter to
//! the embedded receiver, add no span and no log record to the pipelines
//! they describe, with every `tracing` event (hyper, h2, tonic, ours, at
//! TRACE) bridged to OpenTelemetry logs.
//!
//! Its own test binary: the bridge is the global `tracing` subscriber.

use std::time::Duration;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::decode::Decoded;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{OtlpExporterBuilder, Protocol};
use otlp_sdk::{BatchLogProcessor, BatchSpanProcessor};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn self_metrics_through_our_metric_exporter_do_not_feed_the_pipelines() {
    let rx = Receiver::start(ReceiverConfig::default()).expect("receiver");
    rx.keep_requests(1000);
    let builder = OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(rx.endpoint())
        .with_timeout(Duration::from_secs(10));

    // The metric exporter reports on itself into a second provider (its
    // own cannot exist before it), read in memory.
    let own = InMemoryMetricExporter::default();
    let own_provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(own.clone())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let meters = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(
                builder
                    .clone()
                    .with_meter_provider(&own_provider)
                    .build_metric_exporter()
                    .expect("metric exporter"),
            )
            .with_interval(Duration::from_secs(3600))
            .build(),
        )
        .build();

    let builder = builder.with_meter_provider(&meters);
    let spans = BatchSpanProcessor::builder(builder.build_span_exporter().expect("span exporter"))
        .with_meter_provider(&meters)
        .build()
        .expect("span processor");
    let span_stats = spans.stats_reader();
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(spans)
        .build();
    let logs = BatchLogProcessor::builder(builder.build_log_exporter().expect("log exporter"))
        .with_meter_provider(&meters)
        .build()
        .expect("log processor");
    let log_stats = logs.stats_reader();
    let logger_provider = SdkLoggerProvider::builder()
        .with_log_processor(logs)
        .build();
    // Every event of every crate, from every thread, becomes a log record
    // unless it happens under suppression.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(
            OpenTelemetryTracingBridge::new(&logger_provider).with_filter(LevelFilter::TRACE),
        ),
    )
    .expect("the only subscriber of this test binary");

    // The application: 10 spans and 2 log records (through the bridge,
    // which shows it works).
    let tracer = tracer_provider.tracer("app");
    for _ in 0..10 {
        tracer.in_span("work", |_cx| {});
    }
    tracing::info!("first");
    tracing::info!("second");
    tracer_provider.force_flush().expect("flush spans");
    logger_provider.force_flush().expect("flush logs");

    // Five collections of the self-metrics, each exported over gRPC.
    for _ in 0..5 {
        meters.force_flush().expect("export the self-metrics");
    }
    tracer_provider.force_flush().expect("flush spans");
    logger_provider.force_flush().expect("flush logs");

    assert_eq!(span_stats.stats().emitted, 10, "{:?}", span_stats.stats());
    assert_eq!(log_stats.stats().emitted, 2, "{:?}", log_stats.stats());
    let received = rx.stats();
    assert_eq!(received.spans, 10, "{received:?}");
    assert_eq!(received.log_records, 2, "{received:?}");

    // The self-metrics did arrive, decoded by opentelemetry-proto: the
    // last request carries the span processor's 10 and the exporter's.
    let requests = rx.take_requests();
    let last = requests
        .iter()
        .rev()
        .find_map(|r| match r {
            Decoded::Metrics(m) => Some(m),
            _ => None,
        })
        .expect("a metrics request");
    let sum_of = |name: &str, error: Option<&str>| -> i64 {
        let mut total = 0;
        for rm in &last.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in sm.metrics.iter().filter(|m| m.name == name) {
                    let Some(Data::Sum(sum)) = &m.data else {
                        panic!("{name} is a sum")
                    };
                    for dp in &sum.data_points {
                        let e = dp
                            .attributes
                            .iter()
                            .find(|kv| kv.key == "error.type")
                            .and_then(|kv| kv.value.as_ref())
                            .map(|v| format!("{v:?}"));
                        let wanted = error.map(|e| format!("{:?}", string_value(e)));
                        if e == wanted {
                            total += match dp.value {
                                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
                                other => panic!("{name}: integer points, got {other:?}"),
                            };
                        }
                    }
                }
            }
        }
        total
    };
    assert_eq!(sum_of("otel.sdk.processor.span.processed", None), 10);
    assert_eq!(sum_of("otel.sdk.processor.log.processed", None), 2);
    assert_eq!(sum_of("otel.sdk.exporter.span.exported", None), 10);
    assert_eq!(sum_of("otel.sdk.exporter.log.exported", None), 2);
    assert_eq!(
        sum_of("otel.sdk.processor.span.processed", Some("queue_full")),
        0
    );

    // And the metric exporter counted the data points it sent.
    own.reset();
    own_provider.force_flush().expect("collect");
    let finished = own.get_finished_metrics().expect("metrics");
    let mut sent = None;
    for sm in finished.last().expect("a collection").scope_metrics() {
        for m in sm.metrics() {
            if m.name() != "otel.sdk.exporter.metric_data_point.exported" {
                continue;
            }
            let AggregatedMetrics::U64(MetricData::Sum(s)) = m.data() else {
                panic!("a u64 sum")
            };
            for dp in s.data_points() {
                if !dp.attributes().any(|kv| kv.key.as_str() == "error.type") {
                    sent = Some(dp.value());
                }
            }
        }
    }
    assert_eq!(
        sent,
        Some(received.data_points),
        "the receiver counted every data point the exporter reports as exported"
    );

    tracer_provider.shutdown().expect("shutdown");
    logger_provider.shutdown().expect("shutdown");
    meters.shutdown().expect("shutdown");
}

fn string_value(s: &str) -> opentelemetry_proto::tonic::common::v1::any_value::Value {
    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s.to_owned())
}
