//! A direct protobuf encoder for OTLP's `ExportTraceServiceRequest`.
//!
//! It writes the wire format straight from our `Span`s into a reusable
//! buffer: no intermediate prost message tree, no allocation once the buffer
//! has grown. Fields are written in field-number order and defaults are
//! omitted exactly as prost does, so the bytes are identical to
//! `opentelemetry-proto`'s encoding of the same request (the test
//! `tests/otlp_encoding.rs` checks both that and a full decode).

use super::span::{AttrValue, Attribute, Span};

/// What the resource and scope of every request say.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub service_name: &'static str,
    pub scope_name: &'static str,
    pub scope_version: &'static str,
}

/// The origin the pipeline example reports as.
pub const PIPELINE_ORIGIN: Origin = Origin {
    service_name: "otlp-pipeline",
    scope_name: "otlp-concurrency",
    scope_version: env!("CARGO_PKG_VERSION"),
};

const LEN: u8 = 2; // wire type: length-delimited
const VARINT: u8 = 0;
const FIXED64: u8 = 1;

fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire)));
}

/// Size of a length-delimited field whose body is `body` bytes (field
/// numbers here are all below 16, so the key is one byte).
fn field_len(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_header(out: &mut Vec<u8>, field: u32, body: usize) {
    put_key(out, field, LEN);
    put_varint(out, body as u64);
}

fn any_value_len(value: &AttrValue) -> usize {
    match value {
        AttrValue::Str(s) => field_len(s.len()),
        AttrValue::Int(i) => 1 + varint_len(*i as u64),
        AttrValue::Bool(_) => 2,
    }
}

fn key_value_len(key: &str, value: &AttrValue) -> usize {
    field_len(key.len()) + field_len(any_value_len(value))
}

fn put_key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &AttrValue) {
    put_header(out, field, key_value_len(key, value));
    put_bytes(out, 1, key.as_bytes());
    put_header(out, 2, any_value_len(value));
    match value {
        AttrValue::Str(s) => put_bytes(out, 1, s.as_bytes()),
        AttrValue::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        AttrValue::Int(i) => {
            put_key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
    }
}

fn attribute_len(a: &Attribute) -> usize {
    field_len(key_value_len(a.key, &a.value))
}

fn span_len(span: &Span) -> usize {
    let mut len = field_len(16) + field_len(8);
    if span.has_parent() {
        len += field_len(8);
    }
    len += field_len(span.name.len());
    len += 1 + varint_len(span.kind as u64);
    len += 2 * (1 + 8);
    len += span.attributes.iter().map(attribute_len).sum::<usize>();
    len
}

fn put_span(out: &mut Vec<u8>, span: &Span) {
    put_header(out, 2, span_len(span)); // ScopeSpans.spans = 2
    put_bytes(out, 1, &span.trace_id);
    put_bytes(out, 2, &span.span_id);
    if span.has_parent() {
        put_bytes(out, 4, &span.parent_span_id);
    }
    put_bytes(out, 5, span.name.as_bytes());
    put_key(out, 6, VARINT);
    put_varint(out, span.kind as u64);
    put_key(out, 7, FIXED64);
    out.extend_from_slice(&span.start_time_unix_nano.to_le_bytes());
    put_key(out, 8, FIXED64);
    out.extend_from_slice(&span.end_time_unix_nano.to_le_bytes());
    for a in &span.attributes {
        put_key_value(out, 9, a.key, &a.value);
    }
}

const SERVICE_NAME: &str = "service.name";

fn resource_len(origin: &Origin) -> usize {
    field_len(key_value_len(
        SERVICE_NAME,
        &AttrValue::Str(origin.service_name),
    ))
}

fn scope_len(origin: &Origin) -> usize {
    field_len(origin.scope_name.len()) + field_len(origin.scope_version.len())
}

/// Appends one `ExportTraceServiceRequest` holding `spans` to `out` and
/// returns its length in bytes.
pub fn encode_request(out: &mut Vec<u8>, origin: &Origin, spans: &[Span]) -> usize {
    let spans_len: usize = spans.iter().map(|s| field_len(span_len(s))).sum();
    let scope_spans_len = field_len(scope_len(origin)) + spans_len;
    let resource_spans_len = field_len(resource_len(origin)) + field_len(scope_spans_len);
    let total = field_len(resource_spans_len);
    out.reserve(total);
    let start = out.len();

    put_header(out, 1, resource_spans_len); // ExportTraceServiceRequest.resource_spans
    put_header(out, 1, resource_len(origin)); // ResourceSpans.resource
    put_key_value(out, 1, SERVICE_NAME, &AttrValue::Str(origin.service_name));
    put_header(out, 2, scope_spans_len); // ResourceSpans.scope_spans
    put_header(out, 1, scope_len(origin)); // ScopeSpans.scope
    put_bytes(out, 1, origin.scope_name.as_bytes());
    put_bytes(out, 2, origin.scope_version.as_bytes());
    for span in spans {
        put_span(out, span);
    }
    debug_assert_eq!(
        out.len() - start,
        total,
        "length precomputation and writing disagree"
    );
    total
}

/// Appends `message` to `out` in protobuf's delimited format (varint length,
/// then the bytes), the framing `--output` files use.
pub fn put_delimited(out: &mut Vec<u8>, message: &[u8]) {
    put_varint(out, message.len() as u64);
    out.extend_from_slice(message);
}
