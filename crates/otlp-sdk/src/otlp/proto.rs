//! Protobuf wire-format writing shared by the trace and log encoders.
//!
//! Every message is written in two passes over the same data: a `*_len`
//! function computes a body's length bottom-up, then a `put_*` function
//! writes the key, that length and the body. Field order and the omission
//! of proto3 defaults follow prost, so the bytes match what
//! opentelemetry-otlp sends (checked by `tests/otlp_encode.rs` and
//! `tests/otlp_encode_logs.rs`).

use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const VARINT: u32 = 0;
pub(crate) const I64: u32 = 1;
pub(crate) const LEN: u32 = 2;
pub(crate) const I32: u32 = 5;

#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(crate) fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(crate) fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from(field << 3 | wire));
}

/// A length-delimited field of `n` bytes, present whatever `n` is.
#[inline]
pub(crate) fn len_field(field: u32, n: usize) -> usize {
    key_len(field) + varint_len(n as u64) + n
}

/// A proto3 string or bytes field: omitted when empty.
#[inline]
pub(crate) fn str_field(field: u32, n: usize) -> usize {
    if n == 0 { 0 } else { len_field(field, n) }
}

#[inline]
pub(crate) fn uint_field(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(field) + varint_len(v)
    }
}

#[inline]
pub(crate) fn fixed64_field(field: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(field) + 8 }
}

#[inline]
pub(crate) fn fixed32_field(field: u32, v: u32) -> usize {
    if v == 0 { 0 } else { key_len(field) + 4 }
}

#[inline]
pub(crate) fn put_header(out: &mut Vec<u8>, field: u32, n: usize) {
    put_key(out, field, LEN);
    put_varint(out, n as u64);
}

#[inline]
pub(crate) fn put_str(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_header(out, field, bytes.len());
        out.extend_from_slice(bytes);
    }
}

#[inline]
pub(crate) fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

#[inline]
pub(crate) fn put_fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[inline]
pub(crate) fn put_fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        put_key(out, field, I32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---- AnyValue / KeyValue -------------------------------------------------

/// The body of an `AnyValue` holding `value` (its oneof is always written,
/// even for a default value, as prost does for a set oneof).
pub(crate) fn any_len(value: &Value) -> usize {
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

pub(crate) fn array_len(array: &Array) -> usize {
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

pub(crate) fn put_any(out: &mut Vec<u8>, value: &Value) {
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

pub(crate) fn put_array(out: &mut Vec<u8>, array: &Array) {
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
pub(crate) fn kv_len(key: &str, value: &Value) -> usize {
    str_field(1, key.len()) + len_field(2, any_len(value))
}

pub(crate) fn attrs_len<'a>(field: u32, attrs: impl Iterator<Item = &'a KeyValue>) -> usize {
    attrs
        .map(|kv| len_field(field, kv_len(kv.key.as_str(), &kv.value)))
        .sum()
}

pub(crate) fn put_kv(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    put_header(out, field, kv_len(key, value));
    put_str(out, 1, key.as_bytes());
    put_header(out, 2, any_len(value));
    put_any(out, value);
}

pub(crate) fn put_attrs<'a>(
    out: &mut Vec<u8>,
    field: u32,
    attrs: impl Iterator<Item = &'a KeyValue>,
) {
    for kv in attrs {
        put_kv(out, field, kv.key.as_str(), &kv.value);
    }
}

// ---- Scope, resource ------------------------------------------------------

/// An `InstrumentationScope` body. Logs export the record's target in place
/// of the scope's name, hence `name` apart.
pub(crate) fn scope_body_len(name: &str, scope: &InstrumentationScope) -> usize {
    str_field(1, name.len())
        + str_field(2, scope.version().unwrap_or_default().len())
        + attrs_len(3, scope.attributes())
}

pub(crate) fn scope_len(scope: &InstrumentationScope) -> usize {
    scope_body_len(scope.name(), scope)
}

pub(crate) fn put_scope_body(out: &mut Vec<u8>, name: &str, scope: &InstrumentationScope) {
    put_str(out, 1, name.as_bytes());
    put_str(out, 2, scope.version().unwrap_or_default().as_bytes());
    put_attrs(out, 3, scope.attributes());
}

pub(crate) fn resource_len(resource: &Resource) -> usize {
    resource
        .iter()
        .map(|(k, v)| len_field(1, kv_len(k.as_str(), v)))
        .sum()
}

/// The `Resource` message as field 1 of a `Resource{Spans,Logs}`: always
/// present, as the transform always sets it.
pub(crate) fn put_resource(out: &mut Vec<u8>, resource: &Resource) {
    put_header(out, 1, resource_len(resource));
    for (k, v) in resource.iter() {
        put_kv(out, 1, k.as_str(), v);
    }
}
