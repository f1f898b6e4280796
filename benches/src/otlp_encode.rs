//! A candidate direct encoder from the SDK's `SpanData` to an OTLP
//! `ExportTraceServiceRequest`, written to decide one question from the
//! wire issue: is our own encoder at most half the time of
//! opentelemetry-otlp's path (`group_spans_by_resource_and_scope`, which
//! builds opentelemetry-proto's prost message tree, then prost's
//! `encode`) on the same batches? Only then may it move into otlp-sdk
//! behind an exporter of ours; until then it lives here, unpublished, next
//! to the bench that measures it (`benches/benches/otlp_encode.rs`).
//!
//! It writes the protobuf wire format straight from `&[SpanData]` into a
//! reusable buffer: lengths are computed bottom-up once per span, then
//! bytes are written in field-number order with proto3 defaults omitted,
//! exactly as prost does, so the output is byte-identical to
//! opentelemetry-otlp's (checked by `tests/otlp_encode.rs` over every
//! attribute type, events, links, status, remote parents and several
//! scopes). No allocation once the buffers have grown, and no copy of the
//! batch.

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use std::time::{SystemTime, UNIX_EPOCH};

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

/// OTLP's `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

#[inline]
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from(field << 3 | wire));
}

/// A length-delimited field of `n` bytes, present whatever `n` is.
#[inline]
fn len_field(field: u32, n: usize) -> usize {
    key_len(field) + varint_len(n as u64) + n
}

/// A proto3 string or bytes field: omitted when empty.
#[inline]
fn str_field(field: u32, n: usize) -> usize {
    if n == 0 { 0 } else { len_field(field, n) }
}

#[inline]
fn uint_field(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(field) + varint_len(v)
    }
}

#[inline]
fn fixed64_field(field: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(field) + 8 }
}

#[inline]
fn put_header(out: &mut Vec<u8>, field: u32, n: usize) {
    put_key(out, field, LEN);
    put_varint(out, n as u64);
}

#[inline]
fn put_str(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_header(out, field, bytes.len());
        out.extend_from_slice(bytes);
    }
}

#[inline]
fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

#[inline]
fn put_fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---- AnyValue / KeyValue -------------------------------------------------

/// The body of an `AnyValue` holding `value` (its oneof is always written,
/// even for a default value, as prost does for a set oneof).
fn any_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(i) => key_len(3) + varint_len(*i as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(s) => len_field(1, s.as_str().len()),
        Value::Array(a) => len_field(5, array_len(a)),
        // A value kind newer than this encoder: an empty AnyValue.
        _ => 0,
    }
}

fn array_len(array: &Array) -> usize {
    fn each<T>(values: &[T], f: impl Fn(&T) -> usize) -> usize {
        values.iter().map(|v| len_field(1, f(v))).sum()
    }
    match array {
        Array::Bool(v) => each(v, |_| key_len(2) + 1),
        Array::I64(v) => each(v, |i| key_len(3) + varint_len(*i as u64)),
        Array::F64(v) => each(v, |_| key_len(4) + 8),
        Array::String(v) => each(v, |s| len_field(1, s.as_str().len())),
        _ => 0,
    }
}

fn put_any(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            put_key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
        Value::F64(f) => {
            put_key(out, 4, I64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            put_header(out, 1, s.as_str().len());
            out.extend_from_slice(s.as_str().as_bytes());
        }
        Value::Array(a) => {
            put_header(out, 5, array_len(a));
            put_array(out, a);
        }
        _ => {}
    }
}

fn put_array(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(v) => {
            for b in v {
                put_header(out, 1, key_len(2) + 1);
                put_key(out, 2, VARINT);
                out.push(u8::from(*b));
            }
        }
        Array::I64(v) => {
            for i in v {
                put_header(out, 1, key_len(3) + varint_len(*i as u64));
                put_key(out, 3, VARINT);
                put_varint(out, *i as u64);
            }
        }
        Array::F64(v) => {
            for f in v {
                put_header(out, 1, key_len(4) + 8);
                put_key(out, 4, I64);
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        Array::String(v) => {
            for s in v {
                put_header(out, 1, len_field(1, s.as_str().len()));
                put_header(out, 1, s.as_str().len());
                out.extend_from_slice(s.as_str().as_bytes());
            }
        }
        _ => {}
    }
}

#[inline]
fn kv_len(key: &str, value: &Value) -> usize {
    str_field(1, key.len()) + len_field(2, any_len(value))
}

fn attrs_len<'a>(field: u32, attrs: impl Iterator<Item = &'a KeyValue>) -> usize {
    attrs
        .map(|kv| len_field(field, kv_len(kv.key.as_str(), &kv.value)))
        .sum()
}

fn put_kv(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    put_header(out, field, kv_len(key, value));
    put_str(out, 1, key.as_bytes());
    put_header(out, 2, any_len(value));
    put_any(out, value);
}

fn put_attrs<'a>(out: &mut Vec<u8>, field: u32, attrs: impl Iterator<Item = &'a KeyValue>) {
    for kv in attrs {
        put_kv(out, field, kv.key.as_str(), &kv.value);
    }
}

// ---- Span ----------------------------------------------------------------

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn status_parts(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    }
}

fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

/// The span's body length; `trace_state` is its header, computed once.
fn span_len(span: &SpanData, trace_state: &str) -> usize {
    let mut n = len_field(1, 16) + len_field(2, 8) + str_field(3, trace_state.len());
    if span.parent_span_id != SpanId::INVALID {
        n += len_field(4, 8);
    }
    n += str_field(5, span.name.len());
    n += uint_field(6, kind(&span.span_kind));
    n += fixed64_field(7, nanos(span.start_time));
    n += fixed64_field(8, nanos(span.end_time));
    n += attrs_len(9, span.attributes.iter());
    n += uint_field(10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        n += len_field(11, event_len(event));
    }
    n += uint_field(12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        n += len_field(
            13,
            link_len(link, &link.span_context.trace_state().header()),
        );
    }
    n += uint_field(14, u64::from(span.links.dropped_count));
    let (code, message) = status_parts(&span.status);
    n += len_field(15, str_field(2, message.len()) + uint_field(3, code));
    n + key_len(16) + 4 // flags: never zero (HAS_IS_REMOTE is always set)
}

fn event_len(event: &opentelemetry::trace::Event) -> usize {
    fixed64_field(1, nanos(event.timestamp))
        + str_field(2, event.name.len())
        + attrs_len(3, event.attributes.iter())
        + uint_field(4, u64::from(event.dropped_attributes_count))
}

fn link_len(link: &opentelemetry::trace::Link, trace_state: &str) -> usize {
    len_field(1, 16)
        + len_field(2, 8)
        + str_field(3, trace_state.len())
        + attrs_len(4, link.attributes.iter())
        + uint_field(5, u64::from(link.dropped_attributes_count))
        + key_len(6)
        + 4
}

fn put_span(out: &mut Vec<u8>, span: &SpanData, trace_state: &str, len: usize) {
    put_header(out, 2, len); // ScopeSpans.spans
    put_header(out, 1, 16);
    out.extend_from_slice(&span.span_context.trace_id().to_bytes());
    put_header(out, 2, 8);
    out.extend_from_slice(&span.span_context.span_id().to_bytes());
    put_str(out, 3, trace_state.as_bytes());
    if span.parent_span_id != SpanId::INVALID {
        put_header(out, 4, 8);
        out.extend_from_slice(&span.parent_span_id.to_bytes());
    }
    put_str(out, 5, span.name.as_bytes());
    put_uint(out, 6, kind(&span.span_kind));
    put_fixed64(out, 7, nanos(span.start_time));
    put_fixed64(out, 8, nanos(span.end_time));
    put_attrs(out, 9, span.attributes.iter());
    put_uint(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        put_header(out, 11, event_len(event));
        put_fixed64(out, 1, nanos(event.timestamp));
        put_str(out, 2, event.name.as_bytes());
        put_attrs(out, 3, event.attributes.iter());
        put_uint(out, 4, u64::from(event.dropped_attributes_count));
    }
    put_uint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let state = link.span_context.trace_state().header();
        put_header(out, 13, link_len(link, &state));
        put_header(out, 1, 16);
        out.extend_from_slice(&link.span_context.trace_id().to_bytes());
        put_header(out, 2, 8);
        out.extend_from_slice(&link.span_context.span_id().to_bytes());
        put_str(out, 3, state.as_bytes());
        put_attrs(out, 4, link.attributes.iter());
        put_uint(out, 5, u64::from(link.dropped_attributes_count));
        put_key(out, 6, I32);
        let f = flags(
            link.span_context.trace_flags().to_u8(),
            link.span_context.is_remote(),
        );
        out.extend_from_slice(&f.to_le_bytes());
    }
    put_uint(out, 14, u64::from(span.links.dropped_count));
    let (code, message) = status_parts(&span.status);
    put_header(out, 15, str_field(2, message.len()) + uint_field(3, code));
    put_str(out, 2, message.as_bytes());
    put_uint(out, 3, code);
    put_key(out, 16, I32);
    let f = flags(
        span.span_context.trace_flags().to_u8(),
        span.parent_span_is_remote,
    );
    out.extend_from_slice(&f.to_le_bytes());
}

// ---- Scope, resource, request -------------------------------------------

fn scope_len(scope: &InstrumentationScope) -> usize {
    str_field(1, scope.name().len())
        + str_field(2, scope.version().unwrap_or_default().len())
        + attrs_len(3, scope.attributes())
}

fn resource_len(resource: &Resource) -> usize {
    resource
        .iter()
        .map(|(k, v)| len_field(1, kv_len(k.as_str(), v)))
        .sum()
}

/// Reusable scratch space: one encoder per exporting thread keeps every
/// batch after the first allocation-free.
#[derive(Debug, Default)]
pub struct TraceEncoder {
    /// Per span: its scope's index, body length, and trace-state header.
    spans: Vec<(usize, usize, String)>,
    /// Distinct scopes in order of first appearance, with their
    /// `ScopeSpans` body lengths.
    scopes: Vec<(usize, usize)>,
}

impl TraceEncoder {
    /// Appends one `ExportTraceServiceRequest` holding `spans` under
    /// `resource` to `out`, byte for byte what opentelemetry-otlp sends for
    /// the same batch.
    pub fn encode(&mut self, out: &mut Vec<u8>, resource: &Resource, spans: &[SpanData]) {
        self.spans.clear();
        self.scopes.clear();
        // Group by scope (first appearance order, as opentelemetry-proto
        // does); a batch almost always has one scope, so compare with the
        // last one found first.
        let mut last: Option<usize> = None;
        for (i, span) in spans.iter().enumerate() {
            let scope = &span.instrumentation_scope;
            let found = match last {
                Some(s) if spans[self.scopes[s].0].instrumentation_scope == *scope => Some(s),
                _ => self
                    .scopes
                    .iter()
                    .position(|&(first, _)| spans[first].instrumentation_scope == *scope),
            };
            let s = found.unwrap_or_else(|| {
                self.scopes.push((i, 0));
                self.scopes.len() - 1
            });
            last = Some(s);
            let state = span.span_context.trace_state().header();
            let len = span_len(span, &state);
            self.scopes[s].1 += len_field(2, len);
            self.spans.push((s, len, state));
        }
        let mut resource_spans = len_field(1, resource_len(resource))
            + str_field(3, resource.schema_url().unwrap_or_default().len());
        for (first, spans_len) in &mut self.scopes {
            let scope = &spans[*first].instrumentation_scope;
            *spans_len += len_field(1, scope_len(scope))
                + str_field(3, scope.schema_url().unwrap_or_default().len());
            resource_spans += len_field(2, *spans_len);
        }
        out.reserve(len_field(1, resource_spans));

        put_header(out, 1, resource_spans);
        put_header(out, 1, resource_len(resource));
        for (k, v) in resource.iter() {
            put_kv(out, 1, k.as_str(), v);
        }
        for (s, &(first, body)) in self.scopes.iter().enumerate() {
            let scope = &spans[first].instrumentation_scope;
            put_header(out, 2, body);
            put_header(out, 1, scope_len(scope));
            put_str(out, 1, scope.name().as_bytes());
            put_str(out, 2, scope.version().unwrap_or_default().as_bytes());
            put_attrs(out, 3, scope.attributes());
            for (span, (_, len, state)) in spans
                .iter()
                .zip(&self.spans)
                .filter(|(_, (of, _, _))| *of == s)
            {
                put_span(out, span, state, *len);
            }
            put_str(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
        }
        put_str(out, 3, resource.schema_url().unwrap_or_default().as_bytes());
    }
}

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
