//! The pipeline example's hand-written OTLP encoder, checked against the
//! reference: `opentelemetry-proto`'s prost messages must decode our bytes to
//! the same spans, and prost's own encoding must be byte-identical.

#[allow(dead_code)]
#[path = "../examples/pipeline/span.rs"]
mod span;

#[allow(dead_code)]
#[path = "../examples/pipeline/encode.rs"]
mod encode;

use encode::{PIPELINE_ORIGIN, encode_request, put_delimited};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use span::{AttrValue, Span, SpanFactory};

fn spans(count: usize) -> Vec<Span> {
    let mut factory = SpanFactory::new(7);
    (0..count)
        .map(|i| factory.next_span(1_700_000_000_000_000_000 + i as u64 * 1_000))
        .collect()
}

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(bytes).expect("our bytes are a valid request")
}

#[test]
fn decodes_to_the_same_spans() {
    let spans = spans(64);
    let mut buffer = Vec::new();
    let len = encode_request(&mut buffer, &PIPELINE_ORIGIN, &spans);
    assert_eq!(len, buffer.len());

    let request = decode(&buffer);
    assert_eq!(request.resource_spans.len(), 1);
    let resource_spans = &request.resource_spans[0];
    let resource = resource_spans.resource.as_ref().expect("resource");
    assert_eq!(resource.attributes[0].key, "service.name");
    let scope_spans = &resource_spans.scope_spans[0];
    let scope = scope_spans.scope.as_ref().expect("scope");
    assert_eq!(scope.name, PIPELINE_ORIGIN.scope_name);
    assert_eq!(scope.version, PIPELINE_ORIGIN.scope_version);
    assert_eq!(scope_spans.spans.len(), spans.len());
    for (ours, theirs) in spans.iter().zip(&scope_spans.spans) {
        assert_eq!(theirs.trace_id, ours.trace_id);
        assert_eq!(theirs.span_id, ours.span_id);
        let parent: &[u8] = if ours.has_parent() {
            &ours.parent_span_id
        } else {
            &[]
        };
        assert_eq!(theirs.parent_span_id, parent);
        assert_eq!(theirs.name, ours.name);
        assert_eq!(theirs.kind, ours.kind as i32);
        assert_eq!(theirs.start_time_unix_nano, ours.start_time_unix_nano);
        assert_eq!(theirs.end_time_unix_nano, ours.end_time_unix_nano);
        assert_eq!(theirs.attributes.len(), ours.attributes.len());
        for (a, b) in ours.attributes.iter().zip(&theirs.attributes) {
            assert_eq!(b.key, a.key);
            let value = b
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .expect("value");
            match (a.value, value) {
                (AttrValue::Str(x), Value::StringValue(y)) => assert_eq!(x, y),
                (AttrValue::Int(x), Value::IntValue(y)) => assert_eq!(x, *y),
                (AttrValue::Bool(x), Value::BoolValue(y)) => assert_eq!(x, *y),
                (ours, theirs) => panic!("attribute {ours:?} decoded as {theirs:?}"),
            }
        }
    }
}

#[test]
fn bytes_match_prost_encoding() {
    for count in [0, 1, 5, 512] {
        let mut buffer = Vec::new();
        encode_request(&mut buffer, &PIPELINE_ORIGIN, &spans(count));
        assert_eq!(decode(&buffer).encode_to_vec(), buffer, "{count} spans");
    }
}

#[test]
fn buffers_are_reused_and_delimited_framing_reads_back() {
    let mut buffer = Vec::with_capacity(1 << 16);
    let capacity = buffer.capacity();
    let mut stream = Vec::new();
    for count in [3, 10, 1] {
        buffer.clear();
        encode_request(&mut buffer, &PIPELINE_ORIGIN, &spans(count));
        put_delimited(&mut stream, &buffer);
    }
    assert_eq!(
        buffer.capacity(),
        capacity,
        "a cleared buffer is reused without growing"
    );
    let mut rest = stream.as_slice();
    let mut counts = Vec::new();
    while !rest.is_empty() {
        let request = ExportTraceServiceRequest::decode_length_delimited(&mut rest).expect("frame");
        counts.push(request.resource_spans[0].scope_spans[0].spans.len());
    }
    assert_eq!(counts, [3, 10, 1]);
}
