#![cfg(feature = "otlp")]
//! OTLP/JSON (`http/json`): our JSON encoders checked against an
//! independent decoder (opentelemetry-proto's serde support, which
//! implements the specification's JSON mapping), and the exporters over
//! real loopback sockets to the embedded receiver, which decodes JSON with
//! that same serde support.
//!
//! What "every field arrived" means here: the message the receiver decoded
//! from our JSON equals the message prost decodes from our protobuf
//! encoding of the same batch, which `otlp_encode.rs` and
//! `otlp_encode_logs.rs` check byte for byte against opentelemetry-otlp.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use otlp_receiver::decode::Decoded;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{
    Compression, LogEncoder, LogJsonEncoder, OtlpExporterBuilder, Protocol, TraceEncoder,
    TraceJsonEncoder,
};
use prost::Message;

// ---- Spans ----------------------------------------------------------------------

/// Every span attribute value type, defaults and extremes included.
fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", "text \"quoted\" \\ ü\n\u{1}"),
        KeyValue::new("empty", ""),
        KeyValue::new("i", -42i64),
        KeyValue::new("zero", 0i64),
        KeyValue::new("max", i64::MAX),
        KeyValue::new("min", i64::MIN),
        KeyValue::new("f", 3.5f64),
        KeyValue::new("tiny", 1e-300f64),
        KeyValue::new("huge", -1.7976931348623157e308f64),
        KeyValue::new("t", true),
        KeyValue::new("false", false),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 0, i64::MIN]))),
        KeyValue::new("floats", Value::Array(Array::F64(vec![0.0, -2.25, 0.1]))),
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

fn rich_span(i: u64, scope: &InstrumentationScope) -> SpanData {
    let state = TraceState::from_key_value([("vendor", "v1"), ("other", "x")]).expect("state");
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i) + Duration::from_nanos(7);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x0A02_0304_0506_0708_090A_0B0C_0D0E_0FF0u128 + u128::from(i)),
            SpanId::from(0xF122_3344_5566_7788 + i),
            if i.is_multiple_of(2) {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            if i.is_multiple_of(3) {
                state.clone()
            } else {
                TraceState::default()
            },
        ),
        parent_span_id: if i.is_multiple_of(2) {
            SpanId::from(7)
        } else {
            SpanId::INVALID
        },
        parent_span_is_remote: i.is_multiple_of(4),
        span_kind: [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ][(i % 5) as usize]
            .clone(),
        name: if i == 3 {
            Cow::Borrowed("")
        } else {
            Cow::Owned(format!("span {i} \"ü\""))
        },
        start_time: if i == 5 { UNIX_EPOCH } else { start },
        end_time: start + Duration::from_nanos(123_456),
        attributes: every_value(),
        dropped_attributes_count: (i % 3) as u32,
        events: {
            let mut events = SpanEvents::default();
            events.events = vec![
                Event::new("exception", start, every_value(), 1),
                Event::new("", UNIX_EPOCH, vec![], 0),
            ];
            events.dropped_count = 2;
            events
        },
        links: {
            let mut links = SpanLinks::default();
            links.links = vec![Link::new(
                SpanContext::new(
                    TraceId::from(99u128),
                    SpanId::from(98),
                    TraceFlags::SAMPLED,
                    true,
                    state,
                ),
                vec![KeyValue::new("link.kind", "follows")],
                3,
            )];
            links.dropped_count = 1;
            links
        },
        status: match i % 3 {
            0 => Status::Unset,
            1 => Status::Ok,
            _ => Status::error("it \"broke\""),
        },
        instrumentation_scope: scope.clone(),
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("host.name", "h1"),
            KeyValue::new("pid", 42i64),
            KeyValue::new("ratio", 0.25f64),
        ])
        .with_schema_url([], "https://opentelemetry.io/schemas/1.20.0")
        .build()
}

/// Spans under two scopes, interleaved, every field set or unset in turn.
fn spans(n: u64) -> Vec<SpanData> {
    let a = InstrumentationScope::builder("lib-a")
        .with_version("1.2.3")
        .build();
    let b = InstrumentationScope::builder("lib-b")
        .with_schema_url("https://opentelemetry.io/schemas/1.21.0")
        .with_attributes([KeyValue::new("scope.attr", 1i64)])
        .build();
    (0..n)
        .map(|i| rich_span(i, if i % 3 == 1 { &b } else { &a }))
        .collect()
}

fn traces_json(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::new();
    TraceJsonEncoder::default().encode(&mut out, resource, spans);
    out
}

/// The same batch through our protobuf encoder, decoded by prost.
fn traces_proto(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    let mut out = Vec::new();
    TraceEncoder::default().encode(&mut out, resource, spans);
    ExportTraceServiceRequest::decode(out.as_slice()).expect("protobuf decodes")
}

#[test]
fn span_json_decodes_with_opentelemetry_proto_serde_to_the_protobuf_message() {
    let resource = resource();
    for n in [0, 1, 12] {
        let spans = spans(n);
        let json = traces_json(&resource, &spans);
        let decoded: ExportTraceServiceRequest =
            serde_json::from_slice(&json).expect("valid OTLP/JSON");
        assert_eq!(decoded, traces_proto(&resource, &spans), "{n} spans");
    }
}

#[test]
fn span_json_follows_the_otlp_json_rules() {
    let resource = resource();
    let spans = spans(3);
    let json: serde_json::Value =
        serde_json::from_slice(&traces_json(&resource, &spans)).expect("JSON");
    let rs = &json["resourceSpans"][0];
    assert_eq!(rs["schemaUrl"], "https://opentelemetry.io/schemas/1.20.0");
    let span = &rs["scopeSpans"][0]["spans"][0];
    // Hex ids, lower case, not base64.
    assert_eq!(span["traceId"], "0a02030405060708090a0b0c0d0e0ff0");
    assert_eq!(span["spanId"], "f122334455667788");
    assert_eq!(span["parentSpanId"], "0000000000000007");
    // Enums as integers, 64-bit integers as strings, 32-bit as numbers.
    assert_eq!(span["kind"], 1);
    assert_eq!(span["startTimeUnixNano"], "1700000000000000007");
    assert_eq!(span["flags"], 0x301);
    assert_eq!(span["droppedEventsCount"], 2);
    assert_eq!(span["traceState"], "vendor=v1,other=x");
    let attribute = |name: &str| {
        span["attributes"]
            .as_array()
            .and_then(|attrs| attrs.iter().find(|kv| kv["key"] == name))
            .map(|kv| kv["value"].clone())
            .unwrap_or_else(|| panic!("attribute {name}"))
    };
    assert_eq!(attribute("i"), serde_json::json!({"intValue": "-42"}));
    assert_eq!(
        attribute("min"),
        serde_json::json!({"intValue": "-9223372036854775808"})
    );
    assert_eq!(attribute("f"), serde_json::json!({"doubleValue": 3.5}));
    assert_eq!(attribute("false"), serde_json::json!({"boolValue": false}));
    assert_eq!(attribute("empty"), serde_json::json!({"stringValue": ""}));
    assert_eq!(
        attribute("none"),
        serde_json::json!({"arrayValue": {"values": []}})
    );
    // Defaults are left out: an unset status is `{}`, no name on span 3.
    assert_eq!(span["status"], serde_json::json!({}));
    let error = &rs["scopeSpans"][0]["spans"][1]["status"];
    assert_eq!(
        error,
        &serde_json::json!({"message": "it \"broke\"", "code": 2})
    );
    assert!(span.get("droppedLinksCount").is_some());
    // Span 1 (the first of scope b) has no parent.
    assert!(
        rs["scopeSpans"][1]["spans"][0]
            .get("parentSpanId")
            .is_none()
    );
}

#[test]
fn doubles_that_are_not_finite_are_written_as_proto3_json_strings() {
    let scope = InstrumentationScope::builder("s").build();
    let mut span = rich_span(1, &scope);
    span.attributes = vec![
        KeyValue::new("nan", f64::NAN),
        KeyValue::new("inf", f64::INFINITY),
        KeyValue::new("-inf", f64::NEG_INFINITY),
    ];
    let json: serde_json::Value =
        serde_json::from_slice(&traces_json(&resource(), &[span])).expect("still valid JSON");
    let attrs = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    assert_eq!(attrs[0]["value"]["doubleValue"], "NaN");
    assert_eq!(attrs[1]["value"]["doubleValue"], "Infinity");
    assert_eq!(attrs[2]["value"]["doubleValue"], "-Infinity");
}

// ---- Log records ----------------------------------------------------------------

fn new_record() -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    provider.logger("test").create_log_record()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs) + Duration::from_nanos(123)
}

fn map(entries: Vec<(&'static str, AnyValue)>) -> AnyValue {
    AnyValue::Map(Box::new(
        entries
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect::<HashMap<_, _>>(),
    ))
}

/// Every kind of logs `AnyValue`, nested and empty ones included.
fn every_any_value() -> Vec<AnyValue> {
    vec![
        AnyValue::Int(0),
        AnyValue::Int(-1),
        AnyValue::Int(i64::MIN),
        AnyValue::Int(i64::MAX),
        AnyValue::Double(0.0),
        AnyValue::Double(-2.25),
        AnyValue::Double(1e-7),
        AnyValue::String(StringValue::from("")),
        AnyValue::String(StringValue::from("text ü \"q\" \\ \t")),
        AnyValue::Boolean(false),
        AnyValue::Boolean(true),
        AnyValue::Bytes(Box::default()),
        AnyValue::Bytes(Box::new(vec![0, 1, 0xFF, 0x80])),
        AnyValue::Bytes(Box::new((0..=255).collect())),
        AnyValue::ListAny(Box::default()),
        AnyValue::ListAny(Box::new(vec![
            AnyValue::Int(1),
            AnyValue::String("".into()),
            AnyValue::ListAny(Box::new(vec![AnyValue::Boolean(true), map(vec![])])),
        ])),
        map(vec![]),
        map(vec![
            ("a", AnyValue::Int(7)),
            ("", AnyValue::String("empty key".into())),
            ("bytes", AnyValue::Bytes(Box::new(vec![9; 200]))),
            (
                "nested",
                map(vec![
                    (
                        "list",
                        AnyValue::ListAny(Box::new(vec![AnyValue::Double(1.5)])),
                    ),
                    ("deeper", map(vec![("x", AnyValue::Boolean(false))])),
                ]),
            ),
        ]),
    ]
}

/// Record `i`: every field set or unset in turn, its body and one
/// attribute from [`every_any_value`].
fn rich_record(i: u64) -> SdkLogRecord {
    let mut record = new_record();
    if i % 5 != 4 {
        record.set_timestamp(at(i));
    }
    record.set_observed_timestamp(at(i) + Duration::from_micros(3));
    if i % 4 != 3 {
        let severities = [
            Severity::Trace,
            Severity::Debug3,
            Severity::Info,
            Severity::Warn2,
            Severity::Error,
            Severity::Fatal4,
        ];
        record.set_severity_number(severities[(i % 6) as usize]);
    }
    if i.is_multiple_of(3) {
        record.set_severity_text(["INFO", "", "warn"][(i % 9 / 3) as usize]);
    }
    let values = every_any_value();
    if i % 7 != 6 {
        record.set_body(values[(i as usize) % values.len()].clone());
    }
    record.add_attribute("http.route", "/api/orders");
    record.add_attribute("attempt", i as i64);
    record.add_attribute("value", values[(i as usize * 5) % values.len()].clone());
    match i % 4 {
        0 => record.set_trace_context(
            TraceId::from(0xFF02_0304_0506_0708_090A_0B0C_0D0E_0F10u128 + u128::from(i)),
            SpanId::from(0x1122_3344_5566_7788 + i),
            Some(TraceFlags::SAMPLED),
        ),
        1 => record.set_trace_context(TraceId::from(5), SpanId::from(6), None),
        2 => record.set_trace_context(TraceId::INVALID, SpanId::INVALID, None),
        _ => {}
    }
    if i % 6 == 1 {
        record.set_event_name("order.placed");
    }
    if i % 5 == 2 {
        record.set_target("my::module");
    }
    record
}

fn records(n: u64) -> Vec<SdkLogRecord> {
    (0..n).map(rich_record).collect()
}

fn scopes() -> [InstrumentationScope; 2] {
    [
        InstrumentationScope::builder("otlp-pipeline")
            .with_version("0.1.0")
            .build(),
        InstrumentationScope::builder("other")
            .with_attributes([KeyValue::new("k", "v")])
            .with_schema_url("https://opentelemetry.io/schemas/1.21.0")
            .build(),
    ]
}

fn pairs<'a>(
    records: &'a [SdkLogRecord],
    scopes: &'a [InstrumentationScope; 2],
) -> Vec<(&'a SdkLogRecord, &'a InstrumentationScope)> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (r, &scopes[i % 3 / 2]))
        .collect()
}

fn logs_json(resource: &Resource, data: &[(&SdkLogRecord, &InstrumentationScope)]) -> Vec<u8> {
    let mut out = Vec::new();
    LogJsonEncoder::default().encode(&mut out, resource, &LogBatch::new(data));
    out
}

fn logs_proto(
    resource: &Resource,
    data: &[(&SdkLogRecord, &InstrumentationScope)],
) -> ExportLogsServiceRequest {
    let mut out = Vec::new();
    LogEncoder::default().encode(&mut out, resource, &LogBatch::new(data));
    ExportLogsServiceRequest::decode(out.as_slice()).expect("protobuf decodes")
}

#[test]
fn log_json_decodes_with_opentelemetry_proto_serde_to_the_protobuf_message() {
    let resource = resource();
    let scopes = scopes();
    for n in [0, 1, 40] {
        let records = records(n);
        let data = pairs(&records, &scopes);
        let json = logs_json(&resource, &data);
        let decoded: ExportLogsServiceRequest =
            serde_json::from_slice(&json).expect("valid OTLP/JSON");
        assert_eq!(decoded, logs_proto(&resource, &data), "{n} records");
    }
}

#[test]
fn every_log_value_kind_round_trips_as_a_body_and_an_attribute() {
    let scope = scopes()[0].clone();
    // One resource: its attributes' order is a hash map's, per instance.
    let resource = resource();
    for value in every_any_value() {
        let mut record = new_record();
        record.set_observed_timestamp(at(1));
        record.set_body(value.clone());
        record.add_attribute("v", value.clone());
        let json = logs_json(&resource, &[(&record, &scope)]);
        let decoded: ExportLogsServiceRequest =
            serde_json::from_slice(&json).expect("valid OTLP/JSON");
        let expected = logs_proto(&resource, &[(&record, &scope)]);
        assert_eq!(decoded, expected, "{value:?}");
    }
    // Bytes are base64, 64-bit integers strings.
    let mut record = new_record();
    record.set_body(AnyValue::Bytes(Box::new(vec![0, 1, 0xFF, 0x80])));
    record.add_attribute("n", i64::MAX);
    let json: serde_json::Value =
        serde_json::from_slice(&logs_json(&resource, &[(&record, &scope)])).expect("JSON");
    let log = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(log["body"], serde_json::json!({"bytesValue": "AAH/gA=="}));
    assert_eq!(
        log["attributes"][0]["value"],
        serde_json::json!({"intValue": "9223372036854775807"})
    );
    let ProtoValue::BytesValue(bytes) = serde_json::from_value::<ExportLogsServiceRequest>(json)
        .expect("decodes")
        .resource_logs[0]
        .scope_logs[0]
        .log_records[0]
        .body
        .clone()
        .and_then(|b| b.value)
        .expect("a body")
    else {
        panic!("the body is bytes");
    };
    assert_eq!(bytes, [0, 1, 0xFF, 0x80]);
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
fn spans_over_http_json_arrive_with_every_field_plain_gzip_and_zstd() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let resource = resource();
    let batch = spans(12);
    let compressions = [Compression::None, Compression::Gzip, Compression::Zstd];
    for compression in compressions {
        receiver.keep_requests(1);
        let mut exporter = builder(&receiver, compression)
            .build_span_exporter()
            .expect("exporter");
        assert_eq!(exporter.endpoint(), receiver.traces_url());
        exporter.set_resource(&resource);
        block_on(exporter.export(batch.clone())).expect("exported");
        let kept = receiver.take_requests();
        let [Decoded::Traces(received)] = kept.as_slice() else {
            panic!("{compression:?}: one traces request, got {kept:?}");
        };
        assert_eq!(
            received,
            &traces_proto(&resource, &batch),
            "{compression:?}"
        );
        // Spot checks that do not lean on the protobuf encoder.
        let rs = &received.resource_spans[0];
        assert_eq!(rs.scope_spans.len(), 2);
        assert_eq!(
            rs.scope_spans[1].scope.as_ref().map(|s| s.name.as_str()),
            Some("lib-b")
        );
        // Scope a's second span is batch span 2.
        let span = &rs.scope_spans[0].spans[1];
        assert_eq!(span.name, "span 2 \"ü\"");
        assert_eq!(span.trace_id, batch[2].span_context.trace_id().to_bytes());
        assert_eq!(span.span_id, batch[2].span_context.span_id().to_bytes());
        assert_eq!(span.kind, 3, "client");
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        assert_eq!(span.events.len(), 2);
        assert_eq!(span.links[0].trace_id, TraceId::from(99u128).to_bytes());
        assert_eq!(span.attributes.len(), every_value().len());
        let stats = exporter.stats_reader().stats();
        assert_eq!((stats.failed_exports, stats.requests), (0, 1));
    }
    let stats = receiver.stop();
    assert_eq!(stats.spans, 36);
    assert_eq!((stats.json_requests, stats.http_requests), (3, 3));
    assert_eq!((stats.gzip_requests, stats.zstd_requests), (1, 1));
    assert_eq!(stats.service_names.get("checkout"), Some(&36));
    assert_eq!(stats.rejected(), 0);
}

#[test]
fn log_records_over_http_json_arrive_with_every_field_plain_and_gzip() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let resource = resource();
    let scopes = scopes();
    let records = records(40);
    let data = pairs(&records, &scopes);
    for compression in [Compression::None, Compression::Gzip] {
        receiver.keep_requests(1);
        let mut exporter = builder(&receiver, compression)
            .build_log_exporter()
            .expect("exporter");
        assert_eq!(exporter.endpoint(), receiver.logs_url());
        exporter.set_resource(&resource);
        block_on(exporter.export(LogBatch::new(&data))).expect("exported");
        let kept = receiver.take_requests();
        let [Decoded::Logs(received)] = kept.as_slice() else {
            panic!("{compression:?}: one logs request, got {kept:?}");
        };
        assert_eq!(received, &logs_proto(&resource, &data), "{compression:?}");
        let rl = &received.resource_logs[0];
        let names: Vec<&str> = rl
            .scope_logs
            .iter()
            .filter_map(|s| s.scope.as_ref().map(|s| s.name.as_str()))
            .collect();
        // Scopes in order of first appearance; a target names its own.
        assert_eq!(names[..2], ["otlp-pipeline", "my::module"]);
        assert!(names.contains(&"other"));
        let first = &rl.scope_logs[0].log_records[0];
        assert_eq!(first.severity_number, Severity::Trace as i32);
        assert_eq!(first.severity_text, "INFO");
        assert_eq!(
            first.trace_id,
            TraceId::from(0xFF02_0304_0506_0708_090A_0B0C_0D0E_0F10u128).to_bytes()
        );
        assert_eq!(first.flags, 1);
    }
    let stats = receiver.stop();
    assert_eq!(stats.log_records, 80);
    assert_eq!((stats.json_requests, stats.gzip_requests), (2, 1));
}

#[test]
fn a_json_partial_success_is_read_and_counted() {
    let receiver = Receiver::start(ReceiverConfig {
        partial_reject: 3,
        ..ReceiverConfig::default()
    })
    .expect("receiver");
    let exporter = builder(&receiver, Compression::None)
        .build_span_exporter()
        .expect("exporter");
    let stats = exporter.stats_reader();
    block_on(exporter.export(spans(4))).expect("a partial success is a success");
    block_on(exporter.export(spans(2))).expect("a partial success is a success");
    assert_eq!(stats.stats().rejected_items, 6);
    assert_eq!(receiver.stop().spans, 6);
}

#[test]
fn a_json_refusal_is_retried_and_named() {
    let receiver = Receiver::start(ReceiverConfig {
        fail_ratio: 1.0,
        retry_after: Duration::ZERO,
        ..ReceiverConfig::default()
    })
    .expect("receiver");
    let exporter = builder(&receiver, Compression::None)
        .with_retry(otlp_sdk::otlp::RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        })
        .build_span_exporter()
        .expect("exporter");
    let stats = exporter.stats_reader();
    let error = block_on(exporter.export(spans(1))).expect_err("always refused");
    // The JSON google.rpc.Status's message made it into the error.
    assert!(
        error
            .to_string()
            .contains("refused by the receiver's fail ratio"),
        "{error}"
    );
    assert_eq!(stats.stats().retries, 1);
    assert_eq!(receiver.stop().refused, 2);
}
