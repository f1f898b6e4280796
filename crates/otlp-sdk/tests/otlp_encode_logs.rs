#![cfg(feature = "otlp")]
//! Our log encoder writes exactly the bytes opentelemetry-otlp sends: its
//! transform (opentelemetry-proto's `group_logs_by_resource_and_scope`)
//! encoded by prost, for every body and attribute kind, severities, trace
//! contexts, event names, targets and several scopes.
//!
//! The transform groups by scope through a `HashMap`, so with several
//! scopes its `ScopeLogs` order changes from call to call; there its
//! message, with the `ScopeLogs` put in our order (first appearance), is
//! re-encoded by prost and must equal our bytes.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key, KeyValue, StringValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLoggerProvider};
use otlp_sdk::otlp::LogEncoder;
use prost::Message;

/// A bare record, as the SDK's logger hands out: only `create_log_record`
/// can make one outside the SDK.
fn new_record() -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    provider.logger("test").create_log_record()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs) + Duration::from_nanos(123)
}

fn theirs(resource: &Resource, data: &[(&SdkLogRecord, &InstrumentationScope)]) -> Vec<u8> {
    let batch = LogBatch::new(data);
    let resource_logs =
        group_logs_by_resource_and_scope(&batch, &ResourceAttributesWithSchema::from(resource));
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

fn ours(resource: &Resource, data: &[(&SdkLogRecord, &InstrumentationScope)]) -> Vec<u8> {
    let mut out = Vec::new();
    LogEncoder::default().encode(&mut out, resource, &LogBatch::new(data));
    out
}

/// Asserts our bytes are theirs, up to the `ScopeLogs` order the
/// transform's `HashMap` picks; returns our bytes.
fn assert_matches(resource: &Resource, data: &[(&SdkLogRecord, &InstrumentationScope)]) -> Vec<u8> {
    let ours = ours(resource, data);
    let theirs = theirs(resource, data);
    if ours == theirs {
        return ours;
    }
    let mine = ExportLogsServiceRequest::decode(ours.as_slice()).expect("ours decodes");
    let mut reordered = ExportLogsServiceRequest::decode(theirs.as_slice()).expect("decodes");
    let (mine, resource_logs) = (&mine.resource_logs[0], &mut reordered.resource_logs[0]);
    let mut scopes = std::mem::take(&mut resource_logs.scope_logs);
    assert_eq!(scopes.len(), mine.scope_logs.len(), "as many scopes");
    for scope in &mine.scope_logs {
        let at = scopes
            .iter()
            .position(|s| s == scope)
            .unwrap_or_else(|| panic!("our scope {:?} is not theirs", scope.scope));
        resource_logs.scope_logs.push(scopes.swap_remove(at));
    }
    assert_eq!(ours, reordered.encode_to_vec(), "theirs in our scope order");
    ours
}

fn decode(bytes: &[u8]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(bytes).expect("decodes")
}

fn map(entries: Vec<(&'static str, AnyValue)>) -> AnyValue {
    AnyValue::Map(Box::new(
        entries
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect::<HashMap<_, _>>(),
    ))
}

/// Every kind of logs `AnyValue`, nested ones and empty ones included.
fn every_value() -> Vec<AnyValue> {
    vec![
        AnyValue::Int(0),
        AnyValue::Int(-1),
        AnyValue::Int(i64::MIN),
        AnyValue::Int(i64::MAX),
        AnyValue::Double(0.0),
        AnyValue::Double(-2.25),
        AnyValue::String(StringValue::from("")),
        AnyValue::String(StringValue::from("text ü")),
        AnyValue::Boolean(false),
        AnyValue::Boolean(true),
        AnyValue::Bytes(Box::default()),
        AnyValue::Bytes(Box::new(vec![0, 1, 0xFF, 0x80])),
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

const SEVERITIES: [Severity; 24] = [
    Severity::Trace,
    Severity::Trace2,
    Severity::Trace3,
    Severity::Trace4,
    Severity::Debug,
    Severity::Debug2,
    Severity::Debug3,
    Severity::Debug4,
    Severity::Info,
    Severity::Info2,
    Severity::Info3,
    Severity::Info4,
    Severity::Warn,
    Severity::Warn2,
    Severity::Warn3,
    Severity::Warn4,
    Severity::Error,
    Severity::Error2,
    Severity::Error3,
    Severity::Error4,
    Severity::Fatal,
    Severity::Fatal2,
    Severity::Fatal3,
    Severity::Fatal4,
];

/// Record `i` of a varied batch: every field set or unset in turn.
fn rich_record(i: u64) -> SdkLogRecord {
    let mut record = new_record();
    if i % 5 != 4 {
        record.set_timestamp(at(i));
    }
    record.set_observed_timestamp(at(i) + Duration::from_micros(3));
    if i % 4 != 3 {
        record.set_severity_number(SEVERITIES[(i % 24) as usize]);
    }
    if i.is_multiple_of(3) {
        record.set_severity_text(["INFO", "", "warn"][(i % 9 / 3) as usize]);
    }
    let values = every_value();
    if i % 7 != 6 {
        record.set_body(values[(i as usize) % values.len()].clone());
    }
    record.add_attribute("http.route", "/api/orders");
    record.add_attribute("attempt", i as i64);
    if i.is_multiple_of(2) {
        record.add_attribute("value", values[(i as usize * 3) % values.len()].clone());
    }
    match i % 4 {
        0 => record.set_trace_context(
            TraceId::from(0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10u128 + u128::from(i)),
            SpanId::from(0x1122_3344_5566_7788 + i),
            Some(TraceFlags::SAMPLED),
        ),
        1 => record.set_trace_context(TraceId::from(5), SpanId::from(6), None),
        _ => {}
    }
    if i % 6 == 1 {
        record.set_event_name("order.placed");
    }
    record
}

fn pipeline_scope() -> InstrumentationScope {
    InstrumentationScope::builder("otlp-pipeline")
        .with_version("0.1.0")
        .build()
}

fn service() -> Resource {
    Resource::builder_empty()
        .with_service_name("otlp-pipeline")
        .build()
}

#[test]
fn batches_of_any_size_match_byte_for_byte() {
    let scope = pipeline_scope();
    for n in [0, 1, 7, 512] {
        let records: Vec<SdkLogRecord> = (0..n).map(rich_record).collect();
        let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
        assert_eq!(
            ours(&service(), &data),
            theirs(&service(), &data),
            "{n} records"
        );
    }
}

#[test]
fn every_body_kind_matches_byte_for_byte() {
    let scope = pipeline_scope();
    let mut records: Vec<SdkLogRecord> = every_value()
        .into_iter()
        .map(|body| {
            let mut record = new_record();
            record.set_observed_timestamp(at(1));
            record.set_body(body);
            record
        })
        .collect();
    let mut bodiless = new_record();
    bodiless.set_observed_timestamp(at(2));
    records.push(bodiless);
    for record in &records {
        assert_matches(&service(), &[(record, &scope)]);
    }
    let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
    assert_matches(&service(), &data);
}

#[test]
fn every_attribute_value_kind_matches_byte_for_byte() {
    let scope = pipeline_scope();
    let mut record = new_record();
    record.set_observed_timestamp(at(0));
    // More than the five attributes the SDK keeps inline.
    for (i, value) in every_value().into_iter().enumerate() {
        record.add_attribute(format!("attr.{i}"), value);
    }
    record.add_attribute("", "empty key");
    assert_matches(&service(), &[(&record, &scope)]);
}

#[test]
fn severities_set_and_unset_match_byte_for_byte() {
    let scope = pipeline_scope();
    let mut records: Vec<SdkLogRecord> = SEVERITIES
        .iter()
        .map(|&severity| {
            let mut record = new_record();
            record.set_observed_timestamp(at(0));
            record.set_severity_number(severity);
            record.set_severity_text("LEVEL");
            record
        })
        .collect();
    let mut text_only = new_record();
    text_only.set_observed_timestamp(at(0));
    text_only.set_severity_text("custom");
    records.push(text_only);
    let mut unset = new_record();
    unset.set_observed_timestamp(at(0));
    records.push(unset);
    let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
    let bytes = assert_matches(&service(), &data);
    let decoded = decode(&bytes);
    let logs = &decoded.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(logs[23].severity_number, 24, "FATAL4");
    assert_eq!(logs[25].severity_number, 0, "unset");
}

#[test]
fn trace_contexts_match_byte_for_byte() {
    let scope = pipeline_scope();
    let contexts = [
        None,
        Some((
            TraceId::from(0xABCDu128),
            SpanId::from(0x12),
            Some(TraceFlags::SAMPLED),
        )),
        Some((
            TraceId::from(0xABCDu128),
            SpanId::from(0x12),
            Some(TraceFlags::default()),
        )),
        Some((TraceId::from(1u128 << 127), SpanId::from(u64::MAX), None)),
        // Invalid ids are still sent once a context is set.
        Some((TraceId::INVALID, SpanId::INVALID, Some(TraceFlags::SAMPLED))),
    ];
    let records: Vec<SdkLogRecord> = contexts
        .iter()
        .map(|ctx| {
            let mut record = new_record();
            record.set_observed_timestamp(at(0));
            record.set_body(AnyValue::String("request done".into()));
            if let Some((trace, span, flags)) = ctx {
                record.set_trace_context(*trace, *span, *flags);
            }
            record
        })
        .collect();
    for record in &records {
        assert_matches(&service(), &[(record, &scope)]);
    }
    let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
    let decoded = decode(&assert_matches(&service(), &data));
    let logs = &decoded.resource_logs[0].scope_logs[0].log_records;
    assert!(logs[0].trace_id.is_empty() && logs[0].span_id.is_empty());
    assert_eq!(logs[1].flags, 1);
    assert_eq!(logs[4].trace_id, vec![0; 16]);
}

#[test]
fn event_names_and_timestamps_match_byte_for_byte() {
    let scope = pipeline_scope();
    let mut named = new_record();
    named.set_event_name("checkout.completed");
    named.set_observed_timestamp(at(9));
    let mut empty_name = new_record();
    empty_name.set_event_name("");
    empty_name.set_observed_timestamp(at(9));
    empty_name.set_timestamp(at(8));
    // Before the epoch: the transform sends 0, as for no timestamp.
    let mut early = new_record();
    early.set_timestamp(UNIX_EPOCH - Duration::from_secs(1));
    early.set_observed_timestamp(UNIX_EPOCH);
    for record in [&named, &empty_name, &early] {
        assert_matches(&service(), &[(record, &scope)]);
    }
}

#[test]
fn interleaved_scopes_and_targets_match_byte_for_byte() {
    let a = InstrumentationScope::builder("lib-a")
        .with_version("1.2.3")
        .with_attributes([KeyValue::new("k1", 1i64), KeyValue::new("k2", "two")])
        .build();
    // Same attributes in another order: the transform's key is the same.
    let a_again = InstrumentationScope::builder("lib-a")
        .with_version("1.2.3")
        .with_attributes([KeyValue::new("k2", "two"), KeyValue::new("k1", 1i64)])
        .build();
    let b = InstrumentationScope::builder("lib-b")
        .with_schema_url("https://opentelemetry.io/schemas/1.21.0")
        .with_attributes([KeyValue::new("scope.attr", true)])
        .build();
    // No version and an empty one group together in the transform.
    let c = InstrumentationScope::builder("lib-c").build();
    let c_empty = InstrumentationScope::builder("lib-c")
        .with_version("")
        .with_schema_url("")
        .build();
    let d = InstrumentationScope::builder("lib-a")
        .with_version("2.0.0")
        .build();
    let scopes = [&a, &b, &a_again, &c, &d, &c_empty, &b];
    let records: Vec<SdkLogRecord> = (0..70)
        .map(|i| {
            let mut record = rich_record(i);
            // A target replaces the scope's name, so it is its own scope.
            if i % 10 == 9 {
                record.set_target("my_app::handlers");
            }
            record
        })
        .collect();
    let data: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r, scopes[i % scopes.len()]))
        .collect();
    let resource = Resource::builder_empty()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("host.name", "h1"),
            KeyValue::new("pid", 42i64),
        ])
        .with_schema_url([], "https://opentelemetry.io/schemas/1.20.0")
        .build();
    let decoded = decode(&assert_matches(&resource, &data));
    let resource_logs = &decoded.resource_logs[0];
    assert_eq!(
        resource_logs.schema_url,
        "https://opentelemetry.io/schemas/1.20.0"
    );
    let names: Vec<(&str, &str)> = resource_logs
        .scope_logs
        .iter()
        .map(|s| {
            let scope = s.scope.as_ref().expect("scope");
            (scope.name.as_str(), scope.version.as_str())
        })
        .collect();
    // First appearance order; targeted records of lib-a, lib-b, lib-c, …
    // share the target name but keep their scope's version and attributes.
    assert_eq!(
        names[..4],
        [
            ("lib-a", "1.2.3"),
            ("lib-b", ""),
            ("lib-c", ""),
            ("lib-a", "2.0.0")
        ]
    );
    assert!(names[4..].iter().all(|(n, _)| *n == "my_app::handlers"));
    assert_eq!(
        resource_logs.scope_logs[0].log_records.len(),
        18,
        "a and a_again, untargeted"
    );
    let first = resource_logs.scope_logs[0].scope.as_ref().expect("scope");
    assert_eq!(
        first.attributes[0].key, "k1",
        "the first member's attributes"
    );
}

#[test]
fn many_scopes_beyond_the_near_ones_match_byte_for_byte() {
    // More scopes than the encoder keeps at hand, interleaved.
    let scopes: Vec<InstrumentationScope> = (0..40)
        .map(|i| {
            InstrumentationScope::builder(format!("module::{}", i % 20))
                .with_version(if i < 20 { "1" } else { "2" })
                .build()
        })
        .collect();
    let records: Vec<SdkLogRecord> = (0..512).map(rich_record).collect();
    let data: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r, &scopes[(i * 7) % scopes.len()]))
        .collect();
    let decoded = decode(&assert_matches(&service(), &data));
    assert_eq!(decoded.resource_logs[0].scope_logs.len(), 40);
}

#[test]
fn a_record_without_observed_timestamp_is_written_without_one() {
    // The transform panics on it; the epoch is what it would write as 0.
    let scope = pipeline_scope();
    let mut unobserved = new_record();
    unobserved.set_timestamp(at(0));
    unobserved.set_body(AnyValue::String("not emitted".into()));
    assert_eq!(unobserved.observed_timestamp(), None);
    let mut at_epoch = unobserved.clone();
    at_epoch.set_observed_timestamp(UNIX_EPOCH);
    assert_eq!(
        ours(&service(), &[(&unobserved, &scope)]),
        theirs(&service(), &[(&at_epoch, &scope)]),
    );
    unobserved.set_observed_timestamp(at(0));
    assert_matches(&service(), &[(&unobserved, &scope)]);
}

#[test]
fn our_bytes_decode_to_the_batch() {
    let scope = pipeline_scope();
    let mut record = new_record();
    record.set_timestamp(at(1));
    record.set_observed_timestamp(at(2));
    record.set_severity_number(Severity::Warn);
    record.set_severity_text("WARN");
    record.set_body(AnyValue::String("disk almost full".into()));
    record.add_attribute("disk.free", 12i64);
    record.add_attribute("raw", AnyValue::Bytes(Box::new(vec![1, 2, 3])));
    record.set_trace_context(
        TraceId::from(7u128),
        SpanId::from(8),
        Some(TraceFlags::SAMPLED),
    );
    record.set_event_name("disk.low");
    let bytes = ours(&service(), &[(&record, &scope)]);
    let decoded = decode(&bytes);
    let resource_logs = &decoded.resource_logs[0];
    let service_name = &resource_logs
        .resource
        .as_ref()
        .expect("resource")
        .attributes[0];
    assert_eq!(service_name.key, "service.name");
    let scope_logs = &resource_logs.scope_logs[0];
    assert_eq!(
        scope_logs.scope.as_ref().expect("scope").name,
        "otlp-pipeline"
    );
    let log = &scope_logs.log_records[0];
    let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("after").as_nanos() as u64;
    assert_eq!(log.time_unix_nano, nanos(at(1)));
    assert_eq!(log.observed_time_unix_nano, nanos(at(2)));
    assert_eq!(log.severity_number, 13);
    assert_eq!(log.severity_text, "WARN");
    assert_eq!(
        log.body.as_ref().and_then(|b| b.value.clone()),
        Some(ProtoValue::StringValue("disk almost full".into()))
    );
    assert_eq!(log.attributes.len(), 2);
    assert_eq!(
        log.attributes[1]
            .value
            .as_ref()
            .and_then(|v| v.value.clone()),
        Some(ProtoValue::BytesValue(vec![1, 2, 3]))
    );
    assert_eq!(log.trace_id, TraceId::from(7u128).to_bytes());
    assert_eq!(log.span_id, SpanId::from(8).to_bytes());
    assert_eq!(log.flags, 1);
    assert_eq!(log.event_name, "disk.low");
    assert_eq!(log.dropped_attributes_count, 0);
}

#[test]
fn the_encoder_reuses_its_buffers_and_appends() {
    let scope = pipeline_scope();
    let records: Vec<SdkLogRecord> = (0..512).map(rich_record).collect();
    let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
    let batch = LogBatch::new(&data);
    let mut encoder = LogEncoder::default();
    let mut out = Vec::new();
    encoder.encode(&mut out, &service(), &batch);
    let first = out.clone();
    let capacity = out.capacity();
    out.clear();
    encoder.encode(&mut out, &service(), &batch);
    assert_eq!(out, first);
    assert_eq!(
        out.capacity(),
        capacity,
        "a cleared buffer is reused without growing"
    );
    // Appends after what the buffer holds (a frame header, say).
    let mut framed = vec![0xAA; 5];
    encoder.encode(&mut framed, &service(), &batch);
    assert_eq!(framed[..5], [0xAA; 5]);
    assert_eq!(framed[5..], first[..]);
}
