//! `LogBatch` → OTLP `ExportLogsServiceRequest`, written straight from the
//! batch into a buffer: no intermediate message tree and no copy of the
//! records. Byte-identical to opentelemetry-otlp's transform + prost.

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, TraceContext};

use super::proto::*;

/// Scope groups whose first member the encoder keeps by reference while it
/// encodes; groups past these are found again through the batch (which has
/// no random access), so their lookups first compare a hash of the name.
const NEAR: usize = 16;

// ---- AnyValue (the logs API's own, with bytes, lists and maps) ----------

/// The body of an `AnyValue` holding `value`; a set oneof is written even
/// when empty (an empty string or byte array), as prost does.
fn value_len(value: &AnyValue) -> usize {
    match value {
        AnyValue::String(s) => len_field(1, s.as_str().len()),
        AnyValue::Boolean(_) => key_len(2) + 1,
        AnyValue::Int(i) => key_len(3) + varint_len(*i as u64),
        AnyValue::Double(_) => key_len(4) + 8,
        AnyValue::ListAny(values) => len_field(5, list_len(values)),
        AnyValue::Map(map) => len_field(
            6,
            map.iter()
                .map(|(k, v)| len_field(1, value_kv_len(k.as_str(), v)))
                .sum(),
        ),
        AnyValue::Bytes(bytes) => len_field(7, bytes.len()),
        // A value kind newer than this encoder: an empty AnyValue.
        _ => 0,
    }
}

/// An `ArrayValue` body: each element an `AnyValue` in field 1.
fn list_len(values: &[AnyValue]) -> usize {
    values.iter().map(|v| len_field(1, value_len(v))).sum()
}

fn value_kv_len(key: &str, value: &AnyValue) -> usize {
    str_field(1, key.len()) + len_field(2, value_len(value))
}

fn put_value(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::String(s) => {
            put_header(out, 1, s.as_str().len());
            out.extend_from_slice(s.as_str().as_bytes());
        }
        AnyValue::Boolean(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        AnyValue::Int(i) => {
            put_key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
        AnyValue::Double(f) => {
            put_key(out, 4, I64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        AnyValue::ListAny(values) => {
            put_header(out, 5, list_len(values));
            for v in values.iter() {
                put_header(out, 1, value_len(v));
                put_value(out, v);
            }
        }
        AnyValue::Map(map) => {
            // The same map is iterated for its length and its bytes, so the
            // order agrees; the transform iterates a clone, which keeps it.
            let body = map
                .iter()
                .map(|(k, v)| len_field(1, value_kv_len(k.as_str(), v)))
                .sum();
            put_header(out, 6, body);
            for (k, v) in map.iter() {
                put_value_kv(out, 1, k.as_str(), v);
            }
        }
        AnyValue::Bytes(bytes) => {
            put_header(out, 7, bytes.len());
            out.extend_from_slice(bytes);
        }
        _ => {}
    }
}

fn put_value_kv(out: &mut Vec<u8>, field: u32, key: &str, value: &AnyValue) {
    put_header(out, field, value_kv_len(key, value));
    put_str(out, 1, key.as_bytes());
    put_header(out, 2, value_len(value));
    put_value(out, value);
}

// ---- LogRecord -----------------------------------------------------------

pub(crate) fn severity(record: &SdkLogRecord) -> u64 {
    // `Severity`'s discriminants are OTLP's `SeverityNumber`s (1..=24).
    record.severity_number().map_or(0, |s| s as u64)
}

pub(crate) fn flags(ctx: &TraceContext) -> u32 {
    ctx.trace_flags.map_or(0, |f| u32::from(f.to_u8()))
}

/// The transform unwraps the observed timestamp (the SDK's logger always
/// sets it); a record built without one is written with none here rather
/// than panicking the exporter.
pub(crate) fn observed(record: &SdkLogRecord) -> u64 {
    record.observed_timestamp().map_or(0, nanos)
}

/// The record's body length. `dropped_attributes_count` is never written:
/// the transform always sends 0.
fn record_len(record: &SdkLogRecord) -> usize {
    let mut n = fixed64_field(1, record.timestamp().map_or(0, nanos))
        + uint_field(2, severity(record))
        + str_field(3, record.severity_text().unwrap_or_default().len());
    if let Some(body) = record.body() {
        n += len_field(5, value_len(body));
    }
    for (k, v) in record.attributes_iter() {
        n += len_field(6, value_kv_len(k.as_str(), v));
    }
    // A trace context sends its ids whatever they are, invalid ones too.
    if let Some(ctx) = record.trace_context() {
        n += fixed32_field(8, flags(ctx)) + len_field(9, 16) + len_field(10, 8);
    }
    n + fixed64_field(11, observed(record))
        + str_field(12, record.event_name().unwrap_or_default().len())
}

fn put_record(out: &mut Vec<u8>, record: &SdkLogRecord, len: usize) {
    put_header(out, 2, len); // ScopeLogs.log_records
    put_fixed64(out, 1, record.timestamp().map_or(0, nanos));
    put_uint(out, 2, severity(record));
    put_str(
        out,
        3,
        record.severity_text().unwrap_or_default().as_bytes(),
    );
    if let Some(body) = record.body() {
        put_header(out, 5, value_len(body));
        put_value(out, body);
    }
    for (k, v) in record.attributes_iter() {
        put_value_kv(out, 6, k.as_str(), v);
    }
    if let Some(ctx) = record.trace_context() {
        put_fixed32(out, 8, flags(ctx));
        put_header(out, 9, 16);
        out.extend_from_slice(&ctx.trace_id.to_bytes());
        put_header(out, 10, 8);
        out.extend_from_slice(&ctx.span_id.to_bytes());
    }
    put_fixed64(out, 11, observed(record));
    put_str(out, 12, record.event_name().unwrap_or_default().as_bytes());
}

// ---- Scope groups ----------------------------------------------------------

/// What a record is grouped by: the scope it is exported under, whose name
/// is the record's target when it has one.
pub(crate) type ScopeKey<'a> = (&'a str, &'a InstrumentationScope);

pub(crate) fn key_of<'a>(
    record: &'a SdkLogRecord,
    scope: &'a InstrumentationScope,
) -> ScopeKey<'a> {
    (record.target().map_or(scope.name(), |t| t.as_ref()), scope)
}

/// The transform's grouping: `InstrumentationScope`'s `==` on a scope
/// rebuilt with the exported name and with a missing version or schema URL
/// made empty (so `None` and `Some("")` group together).
pub(crate) fn same_group(a: ScopeKey<'_>, b: ScopeKey<'_>) -> bool {
    a.0 == b.0
        && a.1.version().unwrap_or_default() == b.1.version().unwrap_or_default()
        && a.1.schema_url().unwrap_or_default() == b.1.schema_url().unwrap_or_default()
        && same_attributes(a.1, b.1)
}

/// `InstrumentationScope`'s `==` compares attributes sorted by key; without
/// allocating, that is the same lists in order, or else every attribute
/// found in the other list, both ways (exact while keys are unique, as they
/// are in a scope built from a set of attributes). A NaN never matches, so
/// such a scope gets a group per record, as in the transform.
fn same_attributes(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    a.attributes().eq(b.attributes())
        || (a.attributes().count() == b.attributes().count()
            && a.attributes().all(|x| b.attributes().any(|y| x == y))
            && b.attributes().all(|y| a.attributes().any(|x| x == y)))
}

/// FNV-1a: a cheap filter before a far group is fetched from the batch.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One `ScopeLogs`: its records' indices span `first..=last`.
#[derive(Debug, Clone, Copy)]
struct Group {
    first: usize,
    last: usize,
    name_hash: u64,
    /// The `ScopeLogs` body length.
    len: usize,
}

/// The key of group `g`: kept in `near` for the first [`NEAR`] groups,
/// fetched from the batch past them.
fn group_key<'a>(
    batch: &'a LogBatch<'_>,
    groups: &[Group],
    near: &[Option<ScopeKey<'a>>; NEAR],
    g: usize,
) -> Option<ScopeKey<'a>> {
    near.get(g).copied().flatten().or_else(|| {
        let (record, scope) = batch.iter().nth(groups.get(g)?.first)?;
        Some(key_of(record, scope))
    })
}

/// Reusable scratch space: one encoder per exporting thread keeps every
/// batch after the first allocation-free.
#[derive(Debug, Default)]
pub struct LogEncoder {
    /// Per record: its group's index and its body length.
    records: Vec<(usize, usize)>,
    /// Distinct exported scopes in order of first appearance.
    groups: Vec<Group>,
}

impl LogEncoder {
    /// Appends one `ExportLogsServiceRequest` holding `batch` under
    /// `resource` to `out`, byte for byte what opentelemetry-otlp sends for
    /// the same batch — but for two differences. Its `ScopeLogs` come in
    /// `HashMap` order, which changes from one export to the next; these
    /// come in order of first appearance in the batch. And a record without
    /// an observed timestamp, on which the transform panics, is written
    /// without one.
    pub fn encode(&mut self, out: &mut Vec<u8>, resource: &Resource, batch: &LogBatch<'_>) {
        self.records.clear();
        self.groups.clear();
        let mut near: [Option<ScopeKey<'_>>; NEAR] = [None; NEAR];
        // A batch mostly holds runs of one scope: try the last group first.
        let mut last = 0;
        for (i, (record, scope)) in batch.iter().enumerate() {
            let key = key_of(record, scope);
            // Only far groups are filtered by the hash: hash only if any.
            let hash = if self.groups.len() > NEAR {
                name_hash(key.0)
            } else {
                0
            };
            let matches = |g: usize| {
                (g < NEAR || self.groups[g].name_hash == hash)
                    && group_key(batch, &self.groups, &near, g).is_some_and(|k| same_group(k, key))
            };
            let found = if last < self.groups.len() && matches(last) {
                Some(last)
            } else {
                (0..self.groups.len()).find(|&g| g != last && matches(g))
            };
            let g = found.unwrap_or_else(|| {
                let g = self.groups.len();
                if let Some(slot) = near.get_mut(g) {
                    *slot = Some(key);
                }
                self.groups.push(Group {
                    first: i,
                    last: i,
                    name_hash: name_hash(key.0),
                    len: 0,
                });
                g
            });
            last = g;
            let len = record_len(record);
            let group = &mut self.groups[g];
            group.last = i;
            group.len += len_field(2, len);
            self.records.push((g, len));
        }
        let mut resource_logs = len_field(1, resource_len(resource))
            + str_field(3, resource.schema_url().unwrap_or_default().len());
        for g in 0..self.groups.len() {
            if let Some((name, scope)) = group_key(batch, &self.groups, &near, g) {
                let group = &mut self.groups[g];
                group.len += len_field(1, scope_body_len(name, scope))
                    + str_field(3, scope.schema_url().unwrap_or_default().len());
                resource_logs += len_field(2, group.len);
            }
        }
        out.reserve(len_field(1, resource_logs));

        put_header(out, 1, resource_logs);
        put_resource(out, resource);
        for (g, group) in self.groups.iter().enumerate() {
            let Some((name, scope)) = group_key(batch, &self.groups, &near, g) else {
                continue;
            };
            put_header(out, 2, group.len);
            put_header(out, 1, scope_body_len(name, scope));
            put_scope_body(out, name, scope);
            let members = batch
                .iter()
                .zip(&self.records)
                .skip(group.first)
                .take(group.last + 1 - group.first)
                .filter(|(_, (of, _))| *of == g);
            for ((record, _), &(_, len)) in members {
                put_record(out, record, len);
            }
            put_str(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
        }
        put_str(out, 3, resource.schema_url().unwrap_or_default().as_bytes());
    }
}
