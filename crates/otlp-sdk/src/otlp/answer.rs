//! Reading a server's answer: which failures to retry and after how long,
//! and the partial-success part of a successful response.
//!
//! The few protobuf messages involved (`google.rpc.Status`, `RetryInfo`,
//! `Export*PartialSuccess`) are read with a minimal field walker rather
//! than generated code: each is two or three scalar fields, and a malformed
//! answer must only ever mean "no information", never an error of ours.
//! OTLP/JSON answers (`http/json`) carry the same messages in the proto3
//! JSON mapping and are read with serde_json, under the same rule.

use std::time::Duration;

/// How one attempt ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth another attempt; `after` is the server's requested delay.
    Retryable {
        reason: String,
        after: Option<Duration>,
    },
    /// Final: retrying cannot help (bad request, unauthenticated, ...).
    Permanent(String),
    /// Final: the TLS connection failed; the next attempt would meet the
    /// same certificates.
    Tls(super::tls::TlsFailure),
}

/// What a successful answer said about rejected items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    pub rejected: u64,
    pub message: String,
}

/// One field of a protobuf message: its number and, for the two wire types
/// read here, its value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Walks the top-level fields of `buf`, stopping quietly at the first
/// malformed byte.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || {
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).ok()?;
                let (value, rest) = buf.split_at_checked(n)?;
                buf = rest;
                Field::Bytes(value)
            }
            1 => {
                buf = buf.get(8..)?;
                Field::Varint(0)
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Varint(0)
            }
            _ => return None,
        };
        Some((key >> 3, field))
    })
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// `Export{Trace,Logs}ServiceResponse.partial_success` (field 1): rejected
/// count (field 1) and error message (field 2); the two messages share the
/// layout.
pub(crate) fn partial_success(response: &[u8]) -> PartialSuccess {
    let mut out = PartialSuccess::default();
    for (number, field) in fields(response) {
        if let (1, Field::Bytes(body)) = (number, field) {
            for (number, field) in fields(body) {
                match (number, field) {
                    (1, Field::Varint(n)) => out.rejected = n,
                    (2, Field::Bytes(m)) => out.message = String::from_utf8_lossy(m).into_owned(),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The `google.rpc.RetryInfo.retry_delay` inside a `google.rpc.Status`
/// (gRPC's `grpc-status-details-bin`, or an OTLP/HTTP error body).
pub(crate) fn retry_info(status: &[u8]) -> Option<Duration> {
    fields(status).find_map(|(number, field)| {
        let (3, Field::Bytes(any)) = (number, field) else {
            return None;
        };
        let mut type_url = &[][..];
        let mut value = &[][..];
        for (number, field) in fields(any) {
            match (number, field) {
                (1, Field::Bytes(t)) => type_url = t,
                (2, Field::Bytes(v)) => value = v,
                _ => {}
            }
        }
        if !type_url.ends_with(b"google.rpc.RetryInfo") {
            return None;
        }
        let delay = fields(value).find_map(|(n, f)| match (n, f) {
            (1, Field::Bytes(d)) => Some(d),
            _ => None,
        })?;
        let (mut seconds, mut nanos) = (0u64, 0u64);
        for (number, field) in fields(delay) {
            match (number, field) {
                (1, Field::Varint(s)) => seconds = s,
                (2, Field::Varint(n)) => nanos = n,
                _ => {}
            }
        }
        // Negative durations (two's complement varints) are no delay.
        (seconds < 1 << 40 && nanos < 1_000_000_000).then(|| Duration::new(seconds, nanos as u32))
    })
}

/// The `google.rpc.Status.message` of an OTLP/HTTP error body, if readable.
pub(crate) fn status_message(status: &[u8]) -> Option<String> {
    fields(status).find_map(|(number, field)| match (number, field) {
        (2, Field::Bytes(m)) => Some(String::from_utf8_lossy(m).into_owned()),
        _ => None,
    })
}

// ---- OTLP/JSON answers ------------------------------------------------------

fn json(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// A field under its lowerCamelCase JSON name or its proto name, both of
/// which proto3 JSON parsers accept.
fn json_field<'a>(
    object: &'a serde_json::Value,
    camel: &str,
    proto: &str,
) -> Option<&'a serde_json::Value> {
    object.get(camel).or_else(|| object.get(proto))
}

/// A 64-bit integer: a decimal string in proto3 JSON, a number from
/// lenient writers.
fn json_u64(value: &serde_json::Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

/// The partial success of an OTLP/JSON `Export*ServiceResponse`.
pub(crate) fn partial_success_json(response: &[u8]) -> PartialSuccess {
    let mut out = PartialSuccess::default();
    let Some(answer) = json(response) else {
        return out;
    };
    let Some(partial) = json_field(&answer, "partialSuccess", "partial_success") else {
        return out;
    };
    for (camel, proto) in [
        ("rejectedSpans", "rejected_spans"),
        ("rejectedLogRecords", "rejected_log_records"),
        ("rejectedDataPoints", "rejected_data_points"),
    ] {
        if let Some(n) = json_field(partial, camel, proto).and_then(json_u64) {
            out.rejected = n;
        }
    }
    if let Some(message) =
        json_field(partial, "errorMessage", "error_message").and_then(serde_json::Value::as_str)
    {
        message.clone_into(&mut out.message);
    }
    out
}

/// The `message` of a JSON `google.rpc.Status` error body.
pub(crate) fn status_message_json(status: &[u8]) -> Option<String> {
    json(status)?.get("message")?.as_str().map(str::to_owned)
}

/// The `google.rpc.RetryInfo.retryDelay` among a JSON `google.rpc.Status`'s
/// details: a proto3 JSON `Duration`, `"1.5s"`.
pub(crate) fn retry_info_json(status: &[u8]) -> Option<Duration> {
    let status = json(status)?;
    status.get("details")?.as_array()?.iter().find_map(|any| {
        let kind = any.get("@type")?.as_str()?;
        if !kind.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        json_duration(json_field(any, "retryDelay", "retry_delay")?.as_str()?)
    })
}

/// `"<seconds>[.<fraction>]s"`; a negative or malformed one is no delay.
fn json_duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, ""));
    if !seconds.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 9
    {
        return None;
    }
    let seconds: u64 = seconds.parse().ok()?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32)
    };
    (seconds < 1 << 40).then(|| Duration::new(seconds, nanos))
}

/// A `Retry-After` value in seconds (the HTTP-date form is rare from OTLP
/// servers and falls back to the exporter's own backoff).
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// Classifies a gRPC status the way the OTLP specification does.
pub(crate) fn grpc_failure(code: tonic::Code, message: &str, details: &[u8]) -> Failure {
    use tonic::Code;
    let after = retry_info(details);
    let reason = format!("gRPC {code:?}: {message}");
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Failure::Retryable { reason, after },
        // Retryable only when the server says when to come back.
        Code::ResourceExhausted if after.is_some() => Failure::Retryable { reason, after },
        _ => Failure::Permanent(reason),
    }
}

/// Classifies an HTTP status the way the OTLP specification does.
/// `json`: the body is a JSON `google.rpc.Status` (an `http/json`
/// request's answer) rather than a protobuf one.
pub(crate) fn http_failure(
    status: http::StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    json: bool,
) -> Failure {
    let detail = if json {
        status_message_json(body)
    } else {
        status_message(body)
    }
    .unwrap_or_default();
    let reason = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    match status.as_u16() {
        429 | 502 | 503 | 504 => Failure::Retryable {
            reason,
            after: retry_after.or_else(|| {
                if json {
                    retry_info_json(body)
                } else {
                    retry_info(body)
                }
            }),
        },
        _ => Failure::Permanent(reason),
    }
}

/// The wait before retry number `retry` (0-based): exponential from
/// `initial`, capped at `max`, drawn from the upper half so that many
/// exporters refused at once do not come back at once.
pub(crate) fn backoff(retry: u32, initial: Duration, max: Duration, seed: u64) -> Duration {
    let ceiling = initial
        .saturating_mul(1u32 << retry.min(20))
        .min(max)
        .max(Duration::from_millis(1));
    let half = ceiling / 2;
    // splitmix64 of the seed: cheap, and good enough to spread retries.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let span = half.as_nanos().max(1) as u64;
    half + Duration::from_nanos(z % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len_field(out: &mut Vec<u8>, field: u64, body: &[u8]) {
        put_varint(out, field << 3 | 2);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    fn status_with_retry_info(seconds: u64, nanos: u64) -> Vec<u8> {
        let mut duration = Vec::new();
        put_varint(&mut duration, 1 << 3);
        put_varint(&mut duration, seconds);
        put_varint(&mut duration, 2 << 3);
        put_varint(&mut duration, nanos);
        let mut info = Vec::new();
        len_field(&mut info, 1, &duration);
        let mut any = Vec::new();
        len_field(&mut any, 1, b"type.googleapis.com/google.rpc.RetryInfo");
        len_field(&mut any, 2, &info);
        let mut status = Vec::new();
        put_varint(&mut status, 1 << 3);
        put_varint(&mut status, 14);
        len_field(&mut status, 2, b"slow down");
        len_field(&mut status, 3, &any);
        status
    }

    #[test]
    fn retry_info_is_read_from_a_status() {
        let status = status_with_retry_info(2, 500_000_000);
        assert_eq!(retry_info(&status), Some(Duration::from_millis(2500)));
        assert_eq!(status_message(&status).as_deref(), Some("slow down"));
        assert_eq!(
            grpc_failure(tonic::Code::ResourceExhausted, "full", &status),
            Failure::Retryable {
                reason: "gRPC ResourceExhausted: full".into(),
                after: Some(Duration::from_millis(2500)),
            }
        );
        assert!(matches!(
            grpc_failure(tonic::Code::ResourceExhausted, "full", &[]),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            grpc_failure(tonic::Code::InvalidArgument, "bad", &[]),
            Failure::Permanent(_)
        ));
    }

    #[test]
    fn malformed_answers_carry_no_information() {
        for junk in [&[0xff_u8; 12][..], &[0x1a, 0x7f, 0x01], &[0x0a], &[]] {
            assert_eq!(retry_info(junk), None);
            assert_eq!(partial_success(junk), PartialSuccess::default());
        }
        // A negative delay (a two's complement varint) is no delay.
        assert_eq!(retry_info(&status_with_retry_info(u64::MAX, 0)), None);
    }

    #[test]
    fn partial_success_is_read() {
        let mut inner = Vec::new();
        put_varint(&mut inner, 1 << 3);
        put_varint(&mut inner, 7);
        len_field(&mut inner, 2, b"7 spans too old");
        let mut response = Vec::new();
        len_field(&mut response, 1, &inner);
        assert_eq!(
            partial_success(&response),
            PartialSuccess {
                rejected: 7,
                message: "7 spans too old".into()
            }
        );
    }

    #[test]
    fn http_statuses_follow_the_specification() {
        use http::StatusCode;
        for code in [429, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                http_failure(status, Some(Duration::from_secs(1)), &[], false),
                Failure::Retryable { after: Some(_), .. }
            ));
        }
        for code in [400, 401, 403, 404, 413, 415, 500] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                http_failure(status, None, &[], false),
                Failure::Permanent(_)
            ));
        }
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn json_answers_are_read_and_junk_carries_no_information() {
        let partial = br#"{"partialSuccess":{"rejectedSpans":"7","errorMessage":"too old"}}"#;
        assert_eq!(
            partial_success_json(partial),
            PartialSuccess {
                rejected: 7,
                message: "too old".into()
            }
        );
        let lenient = br#"{"partial_success":{"rejected_log_records":3}}"#;
        assert_eq!(partial_success_json(lenient).rejected, 3);
        let status = br#"{"code":14,"message":"slow down","details":[
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]}"#;
        assert_eq!(status_message_json(status).as_deref(), Some("slow down"));
        assert_eq!(retry_info_json(status), Some(Duration::from_millis(2500)));
        assert_eq!(
            http_failure(http::StatusCode::SERVICE_UNAVAILABLE, None, status, true),
            Failure::Retryable {
                reason: "HTTP 503 Service Unavailable: slow down".into(),
                after: Some(Duration::from_millis(2500)),
            }
        );
        for junk in [
            &b"{"[..],
            b"[]",
            b"null",
            b"\xff",
            b"{\"partialSuccess\":7}",
            b"",
        ] {
            assert_eq!(partial_success_json(junk), PartialSuccess::default());
            assert_eq!(status_message_json(junk), None);
            assert_eq!(retry_info_json(junk), None);
        }
        for bad in ["-1s", "1", "1.0000000001s", "xs", "1e3s", ""] {
            assert_eq!(json_duration(bad), None, "{bad}");
        }
        assert_eq!(json_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(json_duration("0.000000001s"), Some(Duration::from_nanos(1)));
    }

    #[test]
    fn backoff_grows_stays_capped_and_jitters_in_the_upper_half() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for seed in 0..100 {
            let first = backoff(0, initial, max, seed);
            assert!(first >= Duration::from_millis(50) && first <= initial);
            let late = backoff(30, initial, max, seed);
            assert!(late >= max / 2 && late <= max);
        }
        let distinct: std::collections::HashSet<_> =
            (0..50).map(|s| backoff(3, initial, max, s)).collect();
        assert!(distinct.len() > 40, "jitter spreads the waits");
    }
}
