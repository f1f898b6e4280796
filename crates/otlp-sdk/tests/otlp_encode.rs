#![cfg(feature = "otlp")]
//! Our encoder writes exactly the bytes opentelemetry-otlp sends:
//! its transform (opentelemetry-proto's `group_spans_by_resource_and_scope`)
//! encoded by prost, for every attribute type, events, links, status,
//! remote parents, trace state and several scopes.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use otlp_sdk::otlp::TraceEncoder;
use prost::Message;

fn theirs(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let resource_spans = group_spans_by_resource_and_scope(
        spans.to_vec(),
        &ResourceAttributesWithSchema::from(resource),
    );
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn ours(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::new();
    TraceEncoder::default().encode(&mut out, resource, spans);
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

fn rich_span(i: u64, scope: &InstrumentationScope) -> SpanData {
    let state = TraceState::from_key_value([("vendor", "v1"), ("other", "x")]).expect("state");
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10u128 + u128::from(i)),
            SpanId::from(0x1122_3344_5566_7788 + i),
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
            Cow::Owned(format!("span {i}"))
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
            _ => Status::error("it broke"),
        },
        instrumentation_scope: scope.clone(),
    }
}

fn batch(n: u64) -> Vec<SpanData> {
    let scope = InstrumentationScope::builder("otlp-pipeline")
        .with_version("0.1.0")
        .build();
    (0..n).map(|i| rich_span(i, &scope)).collect()
}

#[test]
fn batches_of_any_size_match_byte_for_byte() {
    let resource = Resource::builder_empty()
        .with_service_name("otlp-pipeline")
        .build();
    for n in [0, 1, 7, 512] {
        let spans = batch(n);
        assert_eq!(
            ours(&resource, &spans),
            theirs(&resource, &spans),
            "{n} spans"
        );
    }
}

#[test]
fn every_field_matches_byte_for_byte() {
    let a = InstrumentationScope::builder("lib-a")
        .with_version("1.2.3")
        .build();
    let b = InstrumentationScope::builder("lib-b")
        .with_schema_url("https://opentelemetry.io/schemas/1.21.0")
        .with_attributes([KeyValue::new("scope.attr", 1i64)])
        .build();
    let spans: Vec<SpanData> = (0..12)
        .map(|i| rich_span(i, if i % 3 == 1 { &b } else { &a }))
        .collect();
    let resource = Resource::builder_empty()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("host.name", "h1"),
            KeyValue::new("pid", 42i64),
        ])
        .with_schema_url([], "https://opentelemetry.io/schemas/1.20.0")
        .build();
    let ours = ours(&resource, &spans);
    assert_eq!(ours, theirs(&resource, &spans));
    let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).expect("decodes");
    assert_eq!(decoded.resource_spans[0].scope_spans.len(), 2, "two scopes");
}

#[test]
fn the_encoder_reuses_its_buffers() {
    let resource = Resource::builder_empty().with_service_name("x").build();
    let spans = batch(512);
    let mut encoder = TraceEncoder::default();
    let mut out = Vec::new();
    encoder.encode(&mut out, &resource, &spans);
    let first = out.clone();
    let capacity = out.capacity();
    out.clear();
    encoder.encode(&mut out, &resource, &spans);
    assert_eq!(out, first);
    assert_eq!(
        out.capacity(),
        capacity,
        "a cleared buffer is reused without growing"
    );
}
