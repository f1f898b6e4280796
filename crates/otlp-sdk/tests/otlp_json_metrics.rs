#![cfg(feature = "otlp")]
//! OTLP/JSON metrics (`http/json`): `MetricJsonEncoder` checked against an
//! independent decoder (opentelemetry-proto's serde support), and
//! `OtlpMetricExporter` over `http/json` to the embedded receiver, which
//! decodes JSON with that same serde support.
//!
//! As in `otlp_json.rs`, "every field arrived" means: the message decoded
//! from our JSON equals the message prost decodes from our protobuf
//! encoding of the same collection (which `otlp_encode_metrics.rs` checks
//! byte for byte against opentelemetry-otlp). The collections come from a
//! real `SdkMeterProvider`: sums of i64, u64 and f64, monotonic or not,
//! gauges, explicit-bucket and exponential histograms, cumulative and
//! delta. Exemplars: opentelemetry_sdk 0.33 records none (and `Exemplar`
//! cannot be built outside it), so no collection can carry one.
//!
//! Non-finite values: opentelemetry_sdk 0.33 drops NaN and infinite
//! measurements and observations in every aggregator (and refuses them as
//! histogram bounds), so no collection can carry one; the unit tests in
//! `src/otlp/metrics_json.rs` check that such a value would be written as
//! proto3 JSON's `"NaN"`, `"Infinity"` or `"-Infinity"` (which
//! opentelemetry-proto 0.33's serde could not read back: it takes doubles
//! only as JSON numbers).

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::{
    Aggregation, InMemoryMetricExporterBuilder, Instrument, PeriodicReader, SdkMeterProvider,
    Stream, Temporality,
};
use otlp_receiver::decode::Decoded;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{
    Compression, MetricEncoder, MetricJsonEncoder, OtlpExporterBuilder, OtlpMetricExporter,
    Protocol,
};
use prost::Message;

// ---- Collections ------------------------------------------------------------------

fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", "text \"quoted\" \\ ü\n"),
        KeyValue::new("empty", ""),
        KeyValue::new("i", -42i64),
        KeyValue::new("min", i64::MIN),
        KeyValue::new("f", 3.5f64),
        KeyValue::new("t", true),
        KeyValue::new("false", false),
        KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 0]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
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

fn resource() -> Resource {
    Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "metrics-json-test"),
                KeyValue::new("pid", 4242i64),
                KeyValue::new("ratio", 0.25f64),
            ],
            "https://opentelemetry.io/schemas/1.30.0",
        )
        .build()
}

/// A provider exporting to memory, `record` run against it before each of
/// `rounds` flushes (so delta and cumulative differ after the first).
fn collect(
    temporality: Temporality,
    rounds: usize,
    record: impl Fn(&SdkMeterProvider, usize),
) -> Vec<ResourceMetrics> {
    let exporter = InMemoryMetricExporterBuilder::new()
        .with_temporality(temporality)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .with_resource(resource())
        .with_view(exponential_view)
        .build();
    for round in 0..rounds {
        record(&provider, round);
        provider.force_flush().expect("flush");
    }
    provider.shutdown().expect("shutdown");
    exporter.get_finished_metrics().expect("collected")
}

/// Every synchronous instrument kind and number type under two scopes,
/// finite values only (extremes and zeros included).
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
        fg.record(0.1, &[]);
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

fn json(metrics: &ResourceMetrics) -> Vec<u8> {
    let mut out = Vec::new();
    MetricJsonEncoder.encode(&mut out, metrics);
    out
}

/// The same collection through our protobuf encoder, decoded by prost.
fn proto(metrics: &ResourceMetrics) -> ExportMetricsServiceRequest {
    let mut out = Vec::new();
    MetricEncoder::default().encode(&mut out, metrics);
    ExportMetricsServiceRequest::decode(out.as_slice()).expect("protobuf decodes")
}

fn assert_same_message(collections: &[ResourceMetrics]) {
    assert!(!collections.is_empty(), "nothing was collected");
    let mut encoder = MetricJsonEncoder;
    for (i, metrics) in collections.iter().enumerate() {
        // One encoder reused, appending after what is already there.
        let mut out = b"prefix".to_vec();
        encoder.encode(&mut out, metrics);
        let decoded: ExportMetricsServiceRequest = serde_json::from_slice(&out[6..])
            .unwrap_or_else(|e| panic!("collection {i}: not valid OTLP/JSON: {e}"));
        assert_eq!(decoded, proto(metrics), "collection {i}");
    }
}

// ---- The encoder ------------------------------------------------------------------

#[test]
fn cumulative_metric_json_decodes_to_the_protobuf_message() {
    let collected = collect(Temporality::Cumulative, 3, record_everything);
    assert_same_message(&collected);
    // The collection holds every aggregation this test claims to cover.
    let decoded = proto(&collected[0]);
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
    assert!(has(
        |d| matches!(d, Data::Sum(s) if s.data_points.iter().any(
        |p| matches!(p.value, Some(number_data_point::Value::AsInt(_)))))
    ));
    assert!(has(
        |d| matches!(d, Data::Sum(s) if s.data_points.iter().any(
        |p| matches!(p.value, Some(number_data_point::Value::AsDouble(_)))))
    ));
    assert!(has(|d| matches!(d, Data::Histogram(h)
        if h.data_points.iter().any(|p| p.min.is_some() && !p.explicit_bounds.is_empty()))));
    assert!(has(|d| matches!(d, Data::ExponentialHistogram(h)
        if h.data_points.iter().any(|p| p.negative.as_ref().is_some_and(|b| !b.bucket_counts.is_empty())
            && p.zero_count > 0 && p.min.is_some()))));
    assert!(has(|d| matches!(d, Data::ExponentialHistogram(h)
        if h.data_points.iter().all(|p| p.min.is_none()))));
}

#[test]
fn delta_and_low_memory_metric_json_decodes_to_the_protobuf_message() {
    assert_same_message(&collect(Temporality::Delta, 3, record_everything));
    assert_same_message(&collect(Temporality::LowMemory, 2, record_everything));
}

#[test]
fn an_empty_collection_and_observable_instruments_decode_alike() {
    assert_same_message(&[ResourceMetrics::default()]);
    let collected = collect(Temporality::Cumulative, 2, |provider, _| {
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
        provider.force_flush().expect("flush");
    });
    assert_same_message(&collected);
}

/// The metrics of the first collection as JSON, by name, in the first
/// scope.
fn json_metrics(metrics: &ResourceMetrics) -> serde_json::Value {
    serde_json::from_slice(&json(metrics)).expect("JSON")
}

fn metric<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("metric {name}"))
}

/// The data point of `metric` (of `kind`) without attributes, or the only
/// one.
fn point<'a>(metric: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let points = metric[kind]["dataPoints"].as_array().expect("data points");
    points
        .iter()
        .find(|p| p.get("attributes").is_none())
        .or(points.first())
        .expect("a data point")
}

#[test]
fn metric_json_follows_the_otlp_json_rules() {
    let collected = collect(Temporality::Cumulative, 1, |provider, _| {
        let meter = provider.meter("rules");
        meter.u64_counter("requests").build().add(5, &[]);
        meter.i64_up_down_counter("in_flight").build().add(-3, &[]);
        meter.f64_gauge("temperature").build().record(-1.5, &[]);
        let h = meter
            .u64_histogram("sizes")
            .with_boundaries(vec![1.0, 10.5])
            .build();
        for v in [0, 5, 50] {
            h.record(v, &[]);
        }
        let e = meter.f64_histogram("latency.exp").build();
        for v in [0.0, 0.5, 1.0, -4.0] {
            e.record(v, &[]);
        }
    });
    let json = json_metrics(&collected[0]);
    let rm = &json["resourceMetrics"][0];
    assert_eq!(rm["schemaUrl"], "https://opentelemetry.io/schemas/1.30.0");
    assert_eq!(rm["scopeMetrics"][0]["scope"]["name"], "rules");

    // A monotonic sum: asInt a string, temporality an integer, timestamps
    // strings.
    let requests = metric(&json, "requests");
    assert_eq!(requests["sum"]["aggregationTemporality"], 2);
    assert_eq!(requests["sum"]["isMonotonic"], true);
    let p = point(requests, "sum");
    assert_eq!(p["asInt"], "5");
    assert!(
        p["startTimeUnixNano"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok())
    );
    assert!(
        p["timeUnixNano"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok())
    );
    // Not monotonic: `isMonotonic` left out.
    let in_flight = metric(&json, "in_flight");
    assert!(in_flight["sum"].get("isMonotonic").is_none(), "{in_flight}");
    assert_eq!(point(in_flight, "sum")["asInt"], "-3");
    // A gauge: asDouble a number, no temporality.
    let temperature = metric(&json, "temperature");
    assert_eq!(point(temperature, "gauge")["asDouble"], -1.5);
    assert!(temperature["gauge"].get("aggregationTemporality").is_none());
    // A histogram: count and bucket counts strings, bounds and sum numbers.
    let sizes = point(metric(&json, "sizes"), "histogram");
    assert_eq!(sizes["count"], "3");
    assert_eq!(sizes["sum"], 55.0);
    assert_eq!(sizes["bucketCounts"], serde_json::json!(["1", "1", "1"]));
    assert_eq!(sizes["explicitBounds"], serde_json::json!([1.0, 10.5]));
    assert_eq!(
        (&sizes["min"], &sizes["max"]),
        (&serde_json::json!(0.0), &serde_json::json!(50.0))
    );
    // An exponential histogram: scale a number, zeroCount a string, both
    // bucket sets present.
    let exp = point(metric(&json, "latency.exp"), "exponentialHistogram");
    assert_eq!(exp["count"], "4");
    assert_eq!(exp["zeroCount"], "1");
    assert!(exp["scale"].is_i64(), "{exp}");
    assert!(exp["positive"]["bucketCounts"][0].is_string(), "{exp}");
    assert!(exp["negative"]["bucketCounts"][0].is_string(), "{exp}");
    assert_eq!(exp["min"], -4.0);
    assert!(exp.get("zeroThreshold").is_none(), "{exp}");
}

// ---- Over the wire ----------------------------------------------------------------

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn builder(receiver: &Receiver, compression: Compression) -> OtlpExporterBuilder {
    OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(receiver.endpoint())
        .with_compression(compression)
        .with_timeout(Duration::from_secs(10))
}

#[test]
fn collections_over_http_json_arrive_with_every_field_plain_and_gzip() {
    let collected = collect(Temporality::Delta, 2, record_everything);
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let mut points = 0;
    for compression in [Compression::None, Compression::Gzip] {
        let exporter = builder(&receiver, compression)
            .build_metric_exporter()
            .expect("an http/json metric exporter");
        assert_eq!(exporter.endpoint(), receiver.metrics_url());
        for metrics in &collected {
            receiver.keep_requests(1);
            block_on(exporter.export(metrics)).expect("exported");
            let kept = receiver.take_requests();
            let [Decoded::Metrics(received)] = kept.as_slice() else {
                panic!("{compression:?}: one metrics request, got {kept:?}");
            };
            let expected = proto(metrics);
            assert_eq!(received, &expected, "{compression:?}");
            points += expected.resource_metrics[0]
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    _ => 0,
                })
                .sum::<usize>() as u64;
        }
        let stats = exporter.stats_reader().stats();
        assert_eq!(
            (stats.exports, stats.failed_exports),
            (collected.len() as u64, 0)
        );
    }
    let stats = receiver.stop();
    assert!(points > 0);
    assert_eq!(stats.data_points, points);
    let n = collected.len() as u64;
    assert_eq!((stats.json_requests, stats.gzip_requests), (2 * n, n));
    assert_eq!(stats.service_names.get("metrics-json-test"), Some(&points));
    assert_eq!(stats.rejected(), 0);
}

#[test]
fn a_periodic_reader_exports_over_http_json() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    receiver.keep_requests(1);
    let exporter: OtlpMetricExporter = builder(&receiver, Compression::Zstd)
        .build_metric_exporter()
        .expect("exporter");
    let sent = exporter.stats_reader();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource())
        .with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let meter = provider.meter("reader");
    let counter = meter.u64_counter("requests").build();
    let histogram = meter.f64_histogram("latency").with_unit("s").build();
    for route in ["/a", "/b", "/c"] {
        let attrs = [KeyValue::new("route", route)];
        counter.add(2, &attrs);
        histogram.record(0.25, &attrs);
        histogram.record(3.0, &attrs);
    }
    provider.shutdown().expect("exported at shutdown");
    let kept = receiver.take_requests();
    let stats = receiver.stop();
    assert_eq!((stats.metrics, stats.data_points), (2, 6));
    assert_eq!((stats.json_requests, stats.zstd_requests), (1, 1));
    let [Decoded::Metrics(received)] = kept.as_slice() else {
        panic!("one metrics request, got {kept:?}");
    };
    let metrics = &received.resource_metrics[0].scope_metrics[0].metrics;
    let named = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} in {metrics:?}"))
    };
    let Some(Data::Sum(sum)) = &named("requests").data else {
        panic!("requests is a sum: {metrics:?}");
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 3);
    assert!(
        sum.data_points
            .iter()
            .all(|p| p.value == Some(number_data_point::Value::AsInt(2)))
    );
    let latency = named("latency");
    let Some(Data::Histogram(h)) = &latency.data else {
        panic!("latency is a histogram: {metrics:?}");
    };
    assert_eq!(latency.unit, "s");
    assert!(
        h.data_points
            .iter()
            .all(|p| p.count == 2 && p.sum == Some(3.25))
    );
    let sent = sent.stats();
    assert_eq!((sent.exports, sent.failed_exports), (1, 0));
}
