//! `SpanData` → OTLP `ExportTraceServiceRequest`, written straight from the
//! batch into a buffer: no intermediate message tree and no copy of the
//! spans. Byte-identical to opentelemetry-otlp's transform + prost.

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::proto::*;

/// OTLP's `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

// ---- Span ----------------------------------------------------------------

pub(crate) fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

pub(crate) fn status_parts(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    }
}

pub(crate) fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

/// What the length pass learns about a span and the write pass reuses:
/// the trace-state header is built once, and the timestamps are converted
/// once (`SystemTime` arithmetic is a visible share of encoding).
#[derive(Debug)]
struct Prepared {
    scope: usize,
    len: usize,
    trace_state: String,
    start: u64,
    end: u64,
}

/// The span's body length.
fn span_len(span: &SpanData, trace_state: &str, start: u64, end: u64) -> usize {
    let mut n = len_field(1, 16) + len_field(2, 8) + str_field(3, trace_state.len());
    if span.parent_span_id != SpanId::INVALID {
        n += len_field(4, 8);
    }
    n += str_field(5, span.name.len());
    n += uint_field(6, kind(&span.span_kind));
    n += fixed64_field(7, start);
    n += fixed64_field(8, end);
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

fn put_span(out: &mut Vec<u8>, span: &SpanData, prepared: &Prepared) {
    let Prepared {
        len,
        ref trace_state,
        start,
        end,
        ..
    } = *prepared;
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
    put_fixed64(out, 7, start);
    put_fixed64(out, 8, end);
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

// ---- Request -------------------------------------------------------------

/// Reusable scratch space: one encoder per exporting thread keeps every
/// batch after the first allocation-free.
#[derive(Debug, Default)]
pub struct TraceEncoder {
    /// Per span, in batch order.
    spans: Vec<Prepared>,
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
            let trace_state = span.span_context.trace_state().header();
            let (start, end) = (nanos(span.start_time), nanos(span.end_time));
            let len = span_len(span, &trace_state, start, end);
            self.scopes[s].1 += len_field(2, len);
            self.spans.push(Prepared {
                scope: s,
                len,
                trace_state,
                start,
                end,
            });
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
            for (span, prepared) in spans.iter().zip(&self.spans).filter(|(_, p)| p.scope == s) {
                put_span(out, span, prepared);
            }
            put_str(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
        }
        put_str(out, 3, resource.schema_url().unwrap_or_default().as_bytes());
    }
}
