//! `SpanData` and log records → OTLP/JSON (`http/json`), written straight
//! from the batch into a buffer, as the protobuf encoders do: no message
//! tree, no serde, no copy of the items.
//!
//! The specification's JSON encoding is the proto3 JSON mapping with three
//! OTLP rules (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>):
//! trace and span ids are hex strings (not base64), enum values are
//! integers, and keys are lowerCamelCase. From proto3 JSON: 64-bit integers
//! (timestamps, `intValue`) are decimal strings, `bytes` values base64, a
//! double that is not finite the string `"NaN"`, `"Infinity"` or
//! `"-Infinity"`, and fields at their default value are left out.
//!
//! What is written matches the protobuf encoders field for field: a field
//! the protobuf bytes carry is here, one they leave out is left out (a
//! span's `status` and a record's trace ids included), so a JSON request
//! and a protobuf request of the same batch decode to the same message
//! (`tests/otlp_json.rs` checks that with opentelemetry-proto's serde
//! support).

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{Event, Link, SpanId};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use opentelemetry_sdk::trace::SpanData;

use super::logs::{self, ScopeKey};
use super::proto::nanos;
use super::trace;

// ---- Scalars ----------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A JSON string: quoted, with `"`, `\` and control characters escaped.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Lower-case hex in quotes: how OTLP/JSON writes trace and span ids.
pub(super) fn put_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'"');
}

/// Standard base64 with padding, in quotes: proto3 JSON's `bytes`.
fn put_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4 + 2);
    out.push(b'"');
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(BASE64[(n >> shift & 63) as usize]);
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[BASE64[(n >> 18) as usize], BASE64[(n >> 12 & 63) as usize]]);
            out.extend_from_slice(b"==");
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                BASE64[(n >> 18) as usize],
                BASE64[(n >> 12 & 63) as usize],
                BASE64[(n >> 6 & 63) as usize],
            ]);
            out.push(b'=');
        }
        _ => {}
    }
    out.push(b'"');
}

/// A decimal number, unquoted.
pub(super) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A 64-bit integer the proto3 JSON way: a decimal string.
pub(super) fn put_u64_string(out: &mut Vec<u8>, v: u64) {
    out.push(b'"');
    put_u64(out, v);
    out.push(b'"');
}

pub(super) fn put_i64_string(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    if v < 0 {
        out.push(b'-');
    }
    put_u64(out, v.unsigned_abs());
    out.push(b'"');
}

/// A double: the shortest decimal that reads back as the same value; not
/// finite ones as proto3 JSON's strings.
pub(super) fn put_f64(out: &mut Vec<u8>, f: f64) {
    use std::io::Write as _;
    if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        // `Debug` is Rust's shortest round-trip form ("1.5", "1e-7",
        // "1e300"): JSON numbers. Writing into a Vec cannot fail.
        let _ = write!(out, "{f:?}");
    }
}

// ---- Objects ------------------------------------------------------------------

/// An object being written: the comma goes before every field but the
/// first.
pub(super) struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    pub(super) fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// Writes `"name":` and returns the buffer for the value.
    pub(super) fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field, left out when empty.
    pub(super) fn str(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            put_str(self.key(name), value);
        }
    }

    /// An integer field (enums, 32-bit counts and flags), left out at zero.
    pub(super) fn uint(&mut self, name: &str, value: u64) {
        if value != 0 {
            put_u64(self.key(name), value);
        }
    }

    /// A 64-bit field (timestamps), as a string, left out at zero.
    pub(super) fn u64_string(&mut self, name: &str, value: u64) {
        if value != 0 {
            put_u64_string(self.key(name), value);
        }
    }

    /// A list field, left out when `items` is empty; `each` writes one
    /// element.
    pub(super) fn list<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Vec<u8>, T),
    ) {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return;
        }
        let out = self.key(name);
        out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            each(out, item);
        }
        out.push(b']');
    }

    pub(super) fn close(self) {
        self.out.push(b'}');
    }
}

/// A JSON array of every item (`[]` when none: `ArrayValue.values` and
/// `KeyValueList.values` are written even empty, as some decoders ask).
fn put_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

// ---- AnyValue / KeyValue ------------------------------------------------------

/// An `AnyValue` holding a span, resource or scope attribute's value; a
/// value kind newer than this encoder is an empty `AnyValue`, as in the
/// protobuf encoder.
fn put_value(out: &mut Vec<u8>, value: &Value) {
    let mut o = Object::open(out);
    match value {
        Value::Bool(b) => o
            .key("boolValue")
            .extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(i) => put_i64_string(o.key("intValue"), *i),
        Value::F64(f) => put_f64(o.key("doubleValue"), *f),
        Value::String(s) => put_str(o.key("stringValue"), s.as_str()),
        Value::Array(a) => {
            let mut array = Object::open(o.key("arrayValue"));
            let values = array.key("values");
            match a {
                Array::Bool(v) => put_array(values, v, |out, b| {
                    put_value(out, &Value::Bool(*b));
                }),
                Array::I64(v) => put_array(values, v, |out, i| {
                    put_value(out, &Value::I64(*i));
                }),
                Array::F64(v) => put_array(values, v, |out, f| {
                    put_value(out, &Value::F64(*f));
                }),
                Array::String(v) => put_array(values, v, |out, s| {
                    let mut o = Object::open(out);
                    put_str(o.key("stringValue"), s.as_str());
                    o.close();
                }),
                _ => put_array(values, std::iter::empty::<()>(), |_, ()| {}),
            }
            array.close();
        }
        _ => {}
    }
    o.close();
}

fn put_kv(out: &mut Vec<u8>, key: &str, value: &Value) {
    let mut o = Object::open(out);
    put_str(o.key("key"), key);
    put_value(o.key("value"), value);
    o.close();
}

pub(super) fn put_attrs<'a>(
    o: &mut Object<'_>,
    name: &str,
    attrs: impl Iterator<Item = &'a KeyValue>,
) {
    o.list(name, attrs, |out, kv| {
        put_kv(out, kv.key.as_str(), &kv.value)
    });
}

/// The logs API's `AnyValue`, with bytes, lists and maps.
fn put_any(out: &mut Vec<u8>, value: &AnyValue) {
    let mut o = Object::open(out);
    match value {
        AnyValue::String(s) => put_str(o.key("stringValue"), s.as_str()),
        AnyValue::Boolean(b) => {
            o.key("boolValue")
                .extend_from_slice(if *b { b"true" } else { b"false" })
        }
        AnyValue::Int(i) => put_i64_string(o.key("intValue"), *i),
        AnyValue::Double(f) => put_f64(o.key("doubleValue"), *f),
        AnyValue::ListAny(values) => {
            let mut array = Object::open(o.key("arrayValue"));
            put_array(array.key("values"), values.iter(), put_any);
            array.close();
        }
        AnyValue::Map(map) => {
            let mut list = Object::open(o.key("kvlistValue"));
            put_array(list.key("values"), map.iter(), |out, (k, v)| {
                put_any_kv(out, k.as_str(), v);
            });
            list.close();
        }
        AnyValue::Bytes(bytes) => put_base64(o.key("bytesValue"), bytes),
        _ => {}
    }
    o.close();
}

fn put_any_kv(out: &mut Vec<u8>, key: &str, value: &AnyValue) {
    let mut o = Object::open(out);
    put_str(o.key("key"), key);
    put_any(o.key("value"), value);
    o.close();
}

// ---- Resource, scope ------------------------------------------------------------

/// `"resource":{...}`, always present, as in the protobuf encoders.
pub(super) fn put_resource(o: &mut Object<'_>, resource: &Resource) {
    let mut r = Object::open(o.key("resource"));
    r.list("attributes", resource.iter(), |out, (k, v)| {
        put_kv(out, k.as_str(), v);
    });
    r.close();
}

/// `"scope":{...}`, always present; logs name the scope after the record's
/// target, hence `name` apart.
pub(super) fn put_scope(o: &mut Object<'_>, name: &str, scope: &InstrumentationScope) {
    let mut s = Object::open(o.key("scope"));
    s.str("name", name);
    s.str("version", scope.version().unwrap_or_default());
    put_attrs(&mut s, "attributes", scope.attributes());
    s.close();
}

// ---- Spans ----------------------------------------------------------------------

fn put_event(out: &mut Vec<u8>, event: &Event) {
    let mut o = Object::open(out);
    o.u64_string("timeUnixNano", nanos(event.timestamp));
    o.str("name", &event.name);
    put_attrs(&mut o, "attributes", event.attributes.iter());
    o.uint(
        "droppedAttributesCount",
        u64::from(event.dropped_attributes_count),
    );
    o.close();
}

fn put_link(out: &mut Vec<u8>, link: &Link) {
    let context = &link.span_context;
    let mut o = Object::open(out);
    put_hex(o.key("traceId"), &context.trace_id().to_bytes());
    put_hex(o.key("spanId"), &context.span_id().to_bytes());
    o.str("traceState", &context.trace_state().header());
    put_attrs(&mut o, "attributes", link.attributes.iter());
    o.uint(
        "droppedAttributesCount",
        u64::from(link.dropped_attributes_count),
    );
    // Never zero: the has-is-remote bit is always set.
    o.uint(
        "flags",
        u64::from(trace::flags(
            context.trace_flags().to_u8(),
            context.is_remote(),
        )),
    );
    o.close();
}

fn put_span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    let mut o = Object::open(out);
    put_hex(o.key("traceId"), &context.trace_id().to_bytes());
    put_hex(o.key("spanId"), &context.span_id().to_bytes());
    o.str("traceState", &context.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        put_hex(o.key("parentSpanId"), &span.parent_span_id.to_bytes());
    }
    o.uint(
        "flags",
        u64::from(trace::flags(
            context.trace_flags().to_u8(),
            span.parent_span_is_remote,
        )),
    );
    o.str("name", &span.name);
    o.uint("kind", trace::kind(&span.span_kind));
    o.u64_string("startTimeUnixNano", nanos(span.start_time));
    o.u64_string("endTimeUnixNano", nanos(span.end_time));
    put_attrs(&mut o, "attributes", span.attributes.iter());
    o.uint(
        "droppedAttributesCount",
        u64::from(span.dropped_attributes_count),
    );
    o.list("events", span.events.iter(), put_event);
    o.uint("droppedEventsCount", u64::from(span.events.dropped_count));
    o.list("links", span.links.iter(), put_link);
    o.uint("droppedLinksCount", u64::from(span.links.dropped_count));
    // Always present, as in the protobuf encoder (an unset status is `{}`).
    let (code, message) = trace::status_parts(&span.status);
    let mut status = Object::open(o.key("status"));
    status.str("message", message);
    status.uint("code", code);
    status.close();
    o.close();
}

/// Writes `ExportTraceServiceRequest`s as OTLP/JSON; reusable scratch
/// space, like [`TraceEncoder`](super::TraceEncoder).
#[derive(Debug, Default)]
pub struct TraceJsonEncoder {
    /// Per span, in batch order: its scope group.
    groups: Vec<usize>,
    /// Per scope group, in order of first appearance: its first span.
    firsts: Vec<usize>,
}

impl TraceJsonEncoder {
    /// Appends one OTLP/JSON `ExportTraceServiceRequest` holding `spans`
    /// under `resource` to `out`: the same message, scope groups in the
    /// same order, as [`TraceEncoder`](super::TraceEncoder) writes in
    /// protobuf.
    pub fn encode(&mut self, out: &mut Vec<u8>, resource: &Resource, spans: &[SpanData]) {
        self.groups.clear();
        self.firsts.clear();
        let mut last: Option<usize> = None;
        for (i, span) in spans.iter().enumerate() {
            let scope = &span.instrumentation_scope;
            let found = match last {
                Some(g) if spans[self.firsts[g]].instrumentation_scope == *scope => Some(g),
                _ => self
                    .firsts
                    .iter()
                    .position(|&first| spans[first].instrumentation_scope == *scope),
            };
            let g = found.unwrap_or_else(|| {
                self.firsts.push(i);
                self.firsts.len() - 1
            });
            last = Some(g);
            self.groups.push(g);
        }
        // A span is a few hundred bytes of JSON; one reserve saves most
        // of the regrowth.
        out.reserve(256 + spans.len() * 384);

        out.extend_from_slice(b"{\"resourceSpans\":[");
        let mut rs = Object::open(out);
        put_resource(&mut rs, resource);
        let groups = &self.groups;
        rs.list(
            "scopeSpans",
            self.firsts.iter().enumerate(),
            |out, (g, &first)| {
                let scope = &spans[first].instrumentation_scope;
                let mut ss = Object::open(out);
                put_scope(&mut ss, scope.name(), scope);
                let members = spans[first..]
                    .iter()
                    .zip(&groups[first..])
                    .filter(|&(_, &of)| of == g)
                    .map(|(span, _)| span);
                ss.list("spans", members, put_span);
                ss.str("schemaUrl", scope.schema_url().unwrap_or_default());
                ss.close();
            },
        );
        rs.str("schemaUrl", resource.schema_url().unwrap_or_default());
        rs.close();
        out.extend_from_slice(b"]}");
    }
}

// ---- Log records ----------------------------------------------------------------

fn put_record(out: &mut Vec<u8>, record: &SdkLogRecord) {
    let mut o = Object::open(out);
    o.u64_string("timeUnixNano", record.timestamp().map_or(0, nanos));
    o.u64_string("observedTimeUnixNano", logs::observed(record));
    o.uint("severityNumber", logs::severity(record));
    o.str("severityText", record.severity_text().unwrap_or_default());
    if let Some(body) = record.body() {
        put_any(o.key("body"), body);
    }
    o.list("attributes", record.attributes_iter(), |out, (k, v)| {
        put_any_kv(out, k.as_str(), v);
    });
    // A trace context sends its ids whatever they are, as in protobuf.
    if let Some(ctx) = record.trace_context() {
        o.uint("flags", u64::from(logs::flags(ctx)));
        put_hex(o.key("traceId"), &ctx.trace_id.to_bytes());
        put_hex(o.key("spanId"), &ctx.span_id.to_bytes());
    }
    o.str("eventName", record.event_name().unwrap_or_default());
    o.close();
}

/// Writes `ExportLogsServiceRequest`s as OTLP/JSON; reusable scratch
/// space, like [`LogEncoder`](super::LogEncoder).
#[derive(Debug, Default)]
pub struct LogJsonEncoder {
    /// Per record, in batch order: its scope group.
    groups: Vec<usize>,
    /// Per scope group, in order of first appearance: its first and last
    /// record.
    spans: Vec<(usize, usize)>,
}

impl LogJsonEncoder {
    /// Appends one OTLP/JSON `ExportLogsServiceRequest` holding `batch`
    /// under `resource` to `out`: the same message, scope groups in the
    /// same order (first appearance in the batch), as
    /// [`LogEncoder`](super::LogEncoder) writes in protobuf.
    pub fn encode(&mut self, out: &mut Vec<u8>, resource: &Resource, batch: &LogBatch<'_>) {
        self.groups.clear();
        self.spans.clear();
        // The groups' keys borrow the batch, so they live here, not in self.
        let mut keys: Vec<ScopeKey<'_>> = Vec::new();
        let mut last = 0;
        let mut count = 0;
        for (i, (record, scope)) in batch.iter().enumerate() {
            let key = logs::key_of(record, scope);
            let found = if keys.get(last).is_some_and(|&k| logs::same_group(k, key)) {
                Some(last)
            } else {
                keys.iter().position(|&k| logs::same_group(k, key))
            };
            let g = found.unwrap_or_else(|| {
                keys.push(key);
                self.spans.push((i, i));
                keys.len() - 1
            });
            last = g;
            self.spans[g].1 = i;
            self.groups.push(g);
            count += 1;
        }
        out.reserve(256 + count * 320);

        out.extend_from_slice(b"{\"resourceLogs\":[");
        let mut rl = Object::open(out);
        put_resource(&mut rl, resource);
        let groups = &self.groups;
        rl.list(
            "scopeLogs",
            keys.iter().zip(&self.spans).enumerate(),
            |out, (g, (&(name, scope), &(first, last)))| {
                let mut sl = Object::open(out);
                put_scope(&mut sl, name, scope);
                let members = batch
                    .iter()
                    .zip(groups)
                    .skip(first)
                    .take(last + 1 - first)
                    .filter(|&(_, &of)| of == g)
                    .map(|((record, _), _)| record);
                sl.list("logRecords", members, put_record);
                sl.str("schemaUrl", scope.schema_url().unwrap_or_default());
                sl.close();
            },
        );
        rl.str("schemaUrl", resource.schema_url().unwrap_or_default());
        rl.close();
        out.extend_from_slice(b"]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        let s = text(|o| put_str(o, "a\"b\\c\n\r\t\u{1}\u{1f}é€😀"));
        assert_eq!(s, r#""a\"b\\c\n\r\t\u0001\u001fé€😀""#);
        let parsed: String = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(parsed, "a\"b\\c\n\r\t\u{1}\u{1f}é€😀");
    }

    #[test]
    fn scalars_follow_proto3_json() {
        assert_eq!(text(|o| put_hex(o, &[0, 0xab, 0x0f])), r#""00ab0f""#);
        for (bytes, b64) in [
            (&b""[..], r#""""#),
            (b"f", r#""Zg==""#),
            (b"fo", r#""Zm8=""#),
            (b"foo", r#""Zm9v""#),
            (b"foob", r#""Zm9vYg==""#),
            (&[0xff, 0xfe, 0xfd, 0xfc][..], r#""//79/A==""#),
        ] {
            assert_eq!(text(|o| put_base64(o, bytes)), b64);
        }
        assert_eq!(text(|o| put_u64_string(o, 0)), r#""0""#);
        assert_eq!(
            text(|o| put_u64_string(o, u64::MAX)),
            r#""18446744073709551615""#
        );
        assert_eq!(
            text(|o| put_i64_string(o, i64::MIN)),
            r#""-9223372036854775808""#
        );
        assert_eq!(text(|o| put_f64(o, f64::NAN)), r#""NaN""#);
        assert_eq!(text(|o| put_f64(o, f64::INFINITY)), r#""Infinity""#);
        assert_eq!(text(|o| put_f64(o, f64::NEG_INFINITY)), r#""-Infinity""#);
        for f in [
            0.0,
            -0.0,
            1.5,
            1e300,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1,
        ] {
            let s = text(|o| put_f64(o, f));
            let back: f64 = serde_json::from_str(&s).expect("a JSON number");
            assert_eq!(back.to_bits(), f.to_bits(), "{s}");
        }
    }
}
