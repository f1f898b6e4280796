#![cfg(feature = "otlp")]
//! Our metric encoder writes exactly the bytes opentelemetry-otlp sends:
//! opentelemetry-proto's `From<&ResourceMetrics>` transform encoded by
//! prost, for sums (i64 / u64 / f64, monotonic or not), gauges, explicit
//! and exponential histograms, synchronous and observable instruments,
//! both temporalities, attributes of every value type, several scopes and
//! a resource with a schema URL. The collections come from a real
//! `SdkMeterProvider`; our bytes also decode back to the transform's
//! message.
//!
//! Exemplars: opentelemetry_sdk 0.33 never records any (every data point's
//! list is empty, and `Exemplar` cannot be built outside the SDK), so no
//! collection can carry one; the encoder writes them by the proto schema.

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::{
    Aggregation, InMemoryMetricExporter, InMemoryMetricExporterBuilder, Instrument, PeriodicReader,
    SdkMeterProvider, Stream, Temporality,
};
use otlp_sdk::otlp::MetricEncoder;
use prost::Message;

fn theirs(metrics: &ResourceMetrics) -> Vec<u8> {
    ExportMetricsServiceRequest::from(metrics).encode_to_vec()
}

fn ours(metrics: &ResourceMetrics) -> Vec<u8> {
    let mut out = Vec::new();
    MetricEncoder::default().encode(&mut out, metrics);
    out
}

fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", "text"),
        KeyValue::new("empty", ""),
        KeyValue::new("i", -42i64),
        KeyValue::new("zero", 0i64),
        KeyValue::new("big", i64::MAX),
        KeyValue::new("f", 3.5f64),
        KeyValue::new("t", true),
        KeyValue::new("false", false),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 0]))),
        KeyValue::new("floats", Value::Array(Array::F64(vec![0.0, -2.25]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
        KeyValue::new("none", Value::Array(Array::I64(vec![]))),
        KeyValue::new("", "empty key"),
    ]
}

/// Instruments whose name ends in `.exp` get a base-2 exponential
/// histogram; `.exp_nominmax` one without min and max.
fn exponential_view(i: &Instrument) -> Option<Stream> {
    let record_min_max = if i.name().ends_with(".exp") {
        true
    } else if i.name().ends_with(".exp_nominmax") {
        false
    } else {
        return None;
    };
    Stream::builder()
        .with_aggregation(Aggregation::Base2ExponentialHistogram {
            max_size: 160,
            max_scale: 20,
            record_min_max,
        })
        .build()
        .ok()
}

/// A provider exporting to memory, with `record` run against it before
/// the collections are taken (`rounds` flushes, so delta and cumulative
/// differ after the first).
fn collect(
    temporality: Temporality,
    resource: Resource,
    rounds: usize,
    record: impl Fn(&SdkMeterProvider, usize),
) -> Vec<ResourceMetrics> {
    let exporter = InMemoryMetricExporterBuilder::new()
        .with_temporality(temporality)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .with_resource(resource)
        .with_view(exponential_view)
        .build();
    for round in 0..rounds {
        record(&provider, round);
        provider.force_flush().expect("flush");
    }
    provider.shutdown().expect("shutdown");
    exporter.get_finished_metrics().expect("collected")
}

fn assert_identical(collections: &[ResourceMetrics]) {
    assert!(!collections.is_empty(), "nothing was collected");
    let mut encoder = MetricEncoder::default();
    for (i, metrics) in collections.iter().enumerate() {
        let expected = theirs(metrics);
        // One encoder reused across collections, as the exporter does.
        let mut ours = Vec::new();
        encoder.encode(&mut ours, metrics);
        assert_eq!(ours, expected, "collection {i} differs");
        let decoded = ExportMetricsServiceRequest::decode(ours.as_slice()).expect("decodes");
        assert_eq!(decoded, ExportMetricsServiceRequest::from(metrics));
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "metrics-test"),
                KeyValue::new("pid", 4242i64),
            ],
            "https://opentelemetry.io/schemas/1.30.0",
        )
        .build()
}

/// Every synchronous instrument kind and number type, with attributes of
/// every value type, one attribute-less point and several scopes.
fn record_everything(provider: &SdkMeterProvider, round: usize) {
    let scoped = InstrumentationScope::builder("scoped")
        .with_version("1.2.3")
        .with_schema_url("https://example.com/schema")
        .with_attributes([KeyValue::new("scope.attr", 7i64)])
        .build();
    let meters = [provider.meter("plain"), provider.meter_with_scope(scoped)];
    let attrs = every_value();
    let other = [KeyValue::new("route", "/b"), KeyValue::new("ok", false)];
    let r = round as u64 + 1;
    for meter in &meters {
        let c = meter
            .u64_counter("requests")
            .with_description("requests served")
            .with_unit("{request}")
            .build();
        c.add(3 * r, &attrs);
        c.add(1, &other);
        c.add(5, &[]);
        let fc = meter.f64_counter("bytes").with_unit("By").build();
        fc.add(1.5 * r as f64, &attrs);
        fc.add(0.0, &other);
        let ud = meter.i64_up_down_counter("in_flight").build();
        ud.add(-7 * round as i64, &attrs);
        ud.add(3, &other);
        let fud = meter.f64_up_down_counter("level").build();
        fud.add(-0.25, &attrs);
        let g = meter.u64_gauge("queue.size").build();
        g.record(17 * r, &attrs);
        let ig = meter.i64_gauge("offset").build();
        ig.record(-3, &other);
        ig.record(i64::MIN, &attrs);
        let fg = meter.f64_gauge("temperature").with_unit("Cel").build();
        fg.record(-273.15, &attrs);
        fg.record(f64::MAX, &other);
        let h = meter
            .f64_histogram("latency")
            .with_unit("s")
            .with_description("request latency")
            .build();
        for v in [0.0, 0.004, 0.3, 7.0, 1e9] {
            h.record(v * r as f64, &attrs);
        }
        h.record(2.5, &other);
        let uh = meter
            .u64_histogram("sizes")
            .with_boundaries(vec![1.0, 10.0, 100.0])
            .build();
        for v in [0, 1, 5, 50, 500, 5000] {
            uh.record(v, &attrs);
        }
        let single = meter
            .f64_histogram("one_bucket")
            .with_boundaries(vec![])
            .build();
        single.record(4.0, &other);
        let eh = meter.f64_histogram("latency.exp").build();
        for v in [0.0, 0.001, 1.0, 1.5, 2.0, 1024.0, 1e-9, 3e12] {
            eh.record(v, &attrs);
        }
        eh.record(-5.0, &other);
        eh.record(0.0, &other);
        let ue = meter.u64_histogram("sizes.exp_nominmax").build();
        for v in [1, 2, 3, 1_000_000] {
            ue.record(v * r, &[]);
        }
    }
}

#[test]
fn cumulative_collections_are_byte_identical() {
    let collected = collect(Temporality::Cumulative, resource(), 3, record_everything);
    assert_identical(&collected);
    // The collection holds every aggregation this test claims to cover.
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let decoded = ExportMetricsServiceRequest::decode(ours(&collected[0]).as_slice()).unwrap();
    let metrics: Vec<_> = decoded.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .collect();
    assert_eq!(decoded.resource_metrics[0].scope_metrics.len(), 2);
    let has = |f: fn(&Data) -> bool| metrics.iter().any(|m| m.data.as_ref().is_some_and(f));
    assert!(has(|d| matches!(d, Data::Gauge(_))));
    assert!(has(|d| matches!(d, Data::Sum(s) if s.is_monotonic)));
    assert!(has(|d| matches!(d, Data::Sum(s) if !s.is_monotonic)));
    assert!(has(|d| matches!(d, Data::Histogram(_))));
    assert!(has(|d| matches!(d, Data::ExponentialHistogram(h)
        if h.data_points.iter().any(|p| p.negative.as_ref().is_some_and(|b| !b.bucket_counts.is_empty())
            && p.zero_count > 0 && p.min.is_some()))));
    assert!(has(|d| matches!(d, Data::ExponentialHistogram(h)
        if h.data_points.iter().all(|p| p.min.is_none()))));
}

#[test]
fn delta_collections_are_byte_identical() {
    let collected = collect(Temporality::Delta, resource(), 3, record_everything);
    assert_identical(&collected);
}

#[test]
fn low_memory_collections_are_byte_identical() {
    let collected = collect(Temporality::LowMemory, resource(), 2, record_everything);
    assert_identical(&collected);
}

#[test]
fn observable_instruments_are_byte_identical() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .with_resource(resource())
        .build();
    let meter = provider.meter("observed");
    let _a = meter
        .u64_observable_counter("cpu.time")
        .with_callback(|o| o.observe(u64::MAX, &[KeyValue::new("cpu", 0i64)]))
        .build();
    let _b = meter
        .f64_observable_up_down_counter("memory.delta")
        .with_callback(|o| o.observe(-1.25, &every_value()))
        .build();
    let _c = meter
        .i64_observable_gauge("threads")
        .with_callback(|o| {
            o.observe(12, &[]);
            o.observe(-1, &[KeyValue::new("state", "bad")]);
        })
        .build();
    let _d = meter
        .f64_observable_gauge("ratio")
        .with_callback(|o| o.observe(f64::NAN, &[]))
        .build();
    provider.force_flush().expect("flush");
    provider.force_flush().expect("flush");
    provider.shutdown().expect("shutdown");
    let collected = exporter.get_finished_metrics().expect("collected");
    assert_identical(&collected);
}

#[test]
fn u64_above_i64_max_is_sent_as_the_transform_sends_it() {
    let collected = collect(Temporality::Cumulative, resource(), 1, |provider, _| {
        let c = provider.meter("m").u64_counter("huge").build();
        c.add(u64::MAX - 1, &[]);
    });
    assert_identical(&collected);
    // The transform's `i64::try_from(..).unwrap_or_default()`: as_int 0.
    let decoded = ExportMetricsServiceRequest::decode(ours(&collected[0]).as_slice()).unwrap();
    let metric = &decoded.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &metric.data else {
        panic!("a sum: {metric:?}");
    };
    assert_eq!(
        sum.data_points[0].value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(0))
    );
}

#[test]
fn an_empty_collection_and_an_empty_resource_are_byte_identical() {
    let empty = ResourceMetrics::default();
    assert_eq!(ours(&empty), theirs(&empty));
    let collected = collect(
        Temporality::Cumulative,
        Resource::builder_empty().build(),
        1,
        |p, _| {
            p.meter("").u64_counter("c").build().add(1, &[]);
        },
    );
    assert_identical(&collected);
}

#[test]
fn many_points_and_metrics_are_byte_identical() {
    // Enough points for multi-byte length prefixes at every level.
    let collected = collect(Temporality::Cumulative, resource(), 1, |provider, _| {
        for m in 0..20 {
            let meter = provider
                .meter_with_scope(InstrumentationScope::builder(format!("scope-{m}")).build());
            let h = meter.f64_histogram(format!("h{m}")).build();
            let filler = "x".repeat(m);
            let c = meter.i64_up_down_counter(format!("c{m}")).build();
            for i in 0..200i64 {
                let attrs = [
                    KeyValue::new("i", i),
                    KeyValue::new("name", format!("value-{i}-{filler}")),
                ];
                h.record(i as f64 * 1.7, &attrs);
                c.add(i - 100, &attrs);
            }
        }
    });
    let body = ours(&collected[0]);
    assert!(body.len() > 100_000, "{} bytes", body.len());
    assert_identical(&collected);
}
