//! Request decoding, free of any I/O so the fuzz target and the tests can
//! drive it directly: OTLP/HTTP bodies (content type, `Content-Encoding`,
//! protobuf or OTLP/JSON) and unary gRPC frames (the 5-byte prefix,
//! `grpc-encoding`).
//!
//! OTLP/JSON is decoded by opentelemetry-proto's serde support (its
//! `with-serde` feature: lowerCamelCase keys, hex trace and span ids,
//! 64-bit integers as strings or numbers, unknown keys ignored), an
//! implementation independent of the encoder in `otlp-sdk`. serde_json
//! stops at 128 levels of nesting, so deep input is refused, not recursed
//! into.
//!
//! Every failure is a [`Rejection`] naming what was wrong; the server maps it
//! onto the status the OTLP specification asks for. Nothing here panics on
//! any input, and nothing allocates more than the configured limit for a
//! decompressed body (a gzip or zstd bomb is cut at the limit, not
//! inflated; a zstd frame may not ask for a window larger than the limit
//! warrants).

use std::fmt;
use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Why a request was refused before it reached the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The body (after any decompression) is not the expected protobuf
    /// or OTLP/JSON message, or a gRPC frame is inconsistent.
    Malformed(String),
    /// The content type is not one this receiver decodes.
    UnsupportedMediaType(String),
    /// A `Content-Encoding` / `grpc-encoding` this receiver does not inflate.
    UnsupportedEncoding(String),
    /// The body, compressed or inflated, is larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The gzip stream does not inflate.
    BadGzip(String),
    /// The zstd stream does not inflate, or asks for a window larger than
    /// the limit warrants.
    BadZstd(String),
    /// The client stopped sending before the body was complete.
    TimedOut,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(why) => write!(f, "malformed request: {why}"),
            Rejection::UnsupportedMediaType(ct) => {
                write!(
                    f,
                    "unsupported content type `{ct}` (this receiver decodes \
                     application/x-protobuf and application/json)"
                )
            }
            Rejection::UnsupportedEncoding(enc) => {
                write!(f, "unsupported encoding `{enc}` (identity, gzip or zstd)")
            }
            Rejection::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            Rejection::BadGzip(why) => write!(f, "gzip body does not inflate: {why}"),
            Rejection::BadZstd(why) => write!(f, "zstd body does not inflate: {why}"),
            Rejection::TimedOut => write!(f, "timed out reading the request body"),
        }
    }
}

impl std::error::Error for Rejection {}

/// Which OTLP signal a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// `ExportTraceServiceRequest`.
    Traces,
    /// `ExportLogsServiceRequest`.
    Logs,
    /// `ExportMetricsServiceRequest`.
    Metrics,
}

/// A decoded export request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Spans.
    Traces(ExportTraceServiceRequest),
    /// Log records.
    Logs(ExportLogsServiceRequest),
    /// Metrics.
    Metrics(ExportMetricsServiceRequest),
}

/// How an OTLP/HTTP body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`: binary protobuf.
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

/// Decodes `bytes` as the OTLP/JSON request message of `kind`.
pub fn decode_json(kind: SignalKind, bytes: &[u8]) -> Result<Decoded, Rejection> {
    let malformed = |e: serde_json::Error| Rejection::Malformed(format!("not OTLP/JSON: {e}"));
    Ok(match kind {
        SignalKind::Traces => Decoded::Traces(serde_json::from_slice(bytes).map_err(malformed)?),
        SignalKind::Logs => Decoded::Logs(serde_json::from_slice(bytes).map_err(malformed)?),
        SignalKind::Metrics => Decoded::Metrics(serde_json::from_slice(bytes).map_err(malformed)?),
    })
}

/// Decodes `bytes`, encoded as `format`, as the request message of `kind`.
pub fn decode_as(kind: SignalKind, format: Format, bytes: &[u8]) -> Result<Decoded, Rejection> {
    match format {
        Format::Protobuf => decode_message(kind, bytes),
        Format::Json => decode_json(kind, bytes),
    }
}

/// Decodes `bytes` as the protobuf request message of `kind`.
pub fn decode_message(kind: SignalKind, bytes: &[u8]) -> Result<Decoded, Rejection> {
    let malformed = |e: prost::DecodeError| Rejection::Malformed(e.to_string());
    Ok(match kind {
        SignalKind::Traces => {
            Decoded::Traces(ExportTraceServiceRequest::decode(bytes).map_err(malformed)?)
        }
        SignalKind::Logs => {
            Decoded::Logs(ExportLogsServiceRequest::decode(bytes).map_err(malformed)?)
        }
        SignalKind::Metrics => {
            Decoded::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(malformed)?)
        }
    })
}

/// Inflates a gzip `body`, refusing output over `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| Rejection::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(Rejection::TooLarge { limit });
    }
    Ok(out)
}

/// The largest zstd window a frame may ask for, as a power of two: enough
/// for any frame whose content fits `limit` (a compressor needs no window
/// larger than its input), at least 1 MiB (small limits stay usable with
/// streaming compressors' default windows), at most 128 MiB (zstd's own
/// default cap).
fn zstd_window_log(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(20, 27)
}

/// Inflates a zstd `body`, refusing output over `limit` bytes and frames
/// that ask for a window beyond [`zstd_window_log`] (what the decoder would
/// allocate before writing a byte).
pub fn unzstd(body: &[u8], limit: usize) -> Result<Vec<u8>, Rejection> {
    let bad = |e: std::io::Error| Rejection::BadZstd(e.to_string());
    let mut decoder = zstd::stream::read::Decoder::new(body).map_err(bad)?;
    decoder
        .window_log_max(zstd_window_log(limit))
        .map_err(bad)?;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(bad)?;
    if out.len() > limit {
        return Err(Rejection::TooLarge { limit });
    }
    Ok(out)
}

/// The media type of a `Content-Type` value, lower-cased, parameters cut.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body format an OTLP/HTTP `Content-Type` names:
/// `application/x-protobuf` or `application/json`, any case, parameters
/// (`charset=utf-8`) ignored.
pub fn media_format(content_type: Option<&str>) -> Result<Format, Rejection> {
    match content_type.map(media_type).as_deref() {
        Some("application/x-protobuf") => Ok(Format::Protobuf),
        Some("application/json") => Ok(Format::Json),
        Some(other) => Err(Rejection::UnsupportedMediaType(other.to_owned())),
        None => Err(Rejection::UnsupportedMediaType(String::new())),
    }
}

/// Checks an OTLP/HTTP `Content-Type`: one [`media_format`] accepts.
pub fn check_media_type(content_type: Option<&str>) -> Result<(), Rejection> {
    media_format(content_type).map(|_| ())
}

/// Decodes an OTLP/HTTP request body: checks the content type, inflates
/// `Content-Encoding: gzip` or `zstd` up to `limit`, and decodes the
/// message, protobuf or OTLP/JSON as the content type says. Returns it
/// with its uncompressed size.
pub fn decode_http(
    kind: SignalKind,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<(Decoded, usize), Rejection> {
    let format = media_format(content_type)?;
    let inflated = inflate(content_encoding, body, limit)?;
    Ok((decode_as(kind, format, &inflated)?, inflated.len()))
}

fn inflate<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, Rejection> {
    if body.len() > limit {
        return Err(Rejection::TooLarge { limit });
    }
    let encoding = content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body.into()),
        "gzip" | "x-gzip" => gunzip(body, limit).map(Into::into),
        "zstd" => unzstd(body, limit).map(Into::into),
        other => Err(Rejection::UnsupportedEncoding(other.to_owned())),
    }
}

/// Inflates an OTLP/HTTP body per its `Content-Encoding` (identity, gzip or
/// zstd), refusing a body, compressed or inflated, over `limit` bytes.
pub fn inflate_http(
    content_encoding: Option<&str>,
    body: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, Rejection> {
    match inflate(content_encoding, &body, limit)? {
        std::borrow::Cow::Borrowed(_) => Ok(body),
        std::borrow::Cow::Owned(inflated) => Ok(inflated.into()),
    }
}

/// Unwraps one unary gRPC message: the 5-byte prefix (compressed flag, big
/// endian length) must describe exactly the rest of `body`; a compressed
/// message is inflated per `grpc_encoding` up to `limit`. Returns the
/// uncompressed message bytes.
pub fn unframe_grpc(
    body: &[u8],
    grpc_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, Rejection> {
    unframe(body, grpc_encoding, limit).map(std::borrow::Cow::into_owned)
}

/// As [`unframe_grpc`], sharing `body`'s buffer when the message is not
/// compressed.
pub fn unframe_grpc_bytes(
    body: &bytes::Bytes,
    grpc_encoding: Option<&str>,
    limit: usize,
) -> Result<bytes::Bytes, Rejection> {
    match unframe(body, grpc_encoding, limit)? {
        std::borrow::Cow::Borrowed(_) => Ok(body.slice(5..)),
        std::borrow::Cow::Owned(inflated) => Ok(inflated.into()),
    }
}

fn unframe<'a>(
    body: &'a [u8],
    grpc_encoding: Option<&str>,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, Rejection> {
    let Some((prefix, message)) = body.split_first_chunk::<5>() else {
        return Err(Rejection::Malformed(format!(
            "a gRPC frame needs a 5-byte prefix, got {} bytes",
            body.len()
        )));
    };
    let [flag, len @ ..] = *prefix;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(Rejection::TooLarge { limit });
    }
    if len != message.len() {
        return Err(Rejection::Malformed(format!(
            "gRPC frame says {len} bytes, body has {}",
            message.len()
        )));
    }
    match (flag, grpc_encoding.map(str::trim)) {
        (0, _) => Ok(message.into()),
        (1, Some("gzip")) => gunzip(message, limit).map(Into::into),
        (1, Some("zstd")) => unzstd(message, limit).map(Into::into),
        (1, Some(other)) if other != "identity" => {
            Err(Rejection::UnsupportedEncoding(other.to_owned()))
        }
        (1, _) => Err(Rejection::Malformed(
            "compressed gRPC frame without a grpc-encoding".to_owned(),
        )),
        (flag, _) => Err(Rejection::Malformed(format!(
            "gRPC compressed flag is {flag}, not 0 or 1"
        ))),
    }
}

/// Frames `message` as one uncompressed gRPC message.
pub fn frame_grpc(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// A `google.rpc.Status` with `code` and `message`, protobuf-encoded: the
/// body OTLP/HTTP asks for on an error answer.
pub fn rpc_status(code: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    if code != 0 {
        prost::encoding::int32::encode(1, &code, &mut out);
    }
    if !message.is_empty() {
        prost::encoding::string::encode(2, &message.to_owned(), &mut out);
    }
    out
}

/// A `google.rpc.Status` with `code` and `message` in the proto3 JSON
/// mapping: the error body of an answer to an OTLP/JSON request.
pub fn rpc_status_json(code: i32, message: &str) -> Vec<u8> {
    serde_json::json!({ "code": code, "message": message })
        .to_string()
        .into_bytes()
}

/// A `google.rpc.Status` whose details hold one `google.rpc.RetryInfo`
/// asking the client to come back after `delay`: what a gRPC server puts in
/// `grpc-status-details-bin` to make `RESOURCE_EXHAUSTED` retryable.
pub fn rpc_status_with_retry_info(code: i32, message: &str, delay: std::time::Duration) -> Vec<u8> {
    let mut duration = Vec::new();
    let seconds = delay.as_secs() as i64;
    let nanos = delay.subsec_nanos() as i32;
    if seconds != 0 {
        prost::encoding::int64::encode(1, &seconds, &mut duration);
    }
    if nanos != 0 {
        prost::encoding::int32::encode(2, &nanos, &mut duration);
    }
    let mut retry_info = Vec::new();
    prost::encoding::bytes::encode(1, &duration, &mut retry_info);
    let mut any = Vec::new();
    prost::encoding::string::encode(
        1,
        &"type.googleapis.com/google.rpc.RetryInfo".to_owned(),
        &mut any,
    );
    prost::encoding::bytes::encode(2, &retry_info, &mut any);
    let mut out = rpc_status(code, message);
    prost::encoding::bytes::encode(3, &any, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_request() -> Vec<u8> {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "x".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("in memory");
        enc.finish().expect("in memory")
    }

    #[test]
    fn http_bodies_decode_plain_and_gzip() {
        let body = spans_request();
        let ct = Some("application/x-protobuf");
        assert!(matches!(
            decode_http(SignalKind::Traces, ct, None, &body, 1 << 20),
            Ok((Decoded::Traces(r), _)) if r.resource_spans[0].scope_spans[0].spans.len() == 1
        ));
        assert!(
            decode_http(
                SignalKind::Traces,
                Some("Application/X-Protobuf; charset=binary"),
                Some("gzip"),
                &gzip(&body),
                1 << 20
            )
            .is_ok()
        );
    }

    #[test]
    fn http_rejections_name_the_problem() {
        let body = spans_request();
        let ct = Some("application/x-protobuf");
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Vec<u8>,
            usize,
            fn(&Rejection) -> bool,
        );
        let cases: [Case<'_>; 9] = [
            (
                Some("text/plain"),
                None,
                body.clone(),
                1 << 20,
                |r| matches!(r, Rejection::UnsupportedMediaType(t) if t == "text/plain"),
            ),
            (
                Some("application/json"),
                None,
                body.clone(),
                1 << 20,
                |r| matches!(r, Rejection::Malformed(why) if why.starts_with("not OTLP/JSON")),
            ),
            (
                Some("application/json"),
                None,
                format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
                1 << 20,
                |r| matches!(r, Rejection::Malformed(_)),
            ),
            (None, None, body.clone(), 1 << 20, |r| {
                matches!(r, Rejection::UnsupportedMediaType(_))
            }),
            (ct, None, vec![0xff, 0xff, 0xff], 1 << 20, |r| {
                matches!(r, Rejection::Malformed(_))
            }),
            (ct, None, body[..body.len() - 1].to_vec(), 1 << 20, |r| {
                matches!(r, Rejection::Malformed(_))
            }),
            (
                ct,
                Some("gzip"),
                b"not gzip at all".to_vec(),
                1 << 20,
                |r| matches!(r, Rejection::BadGzip(_)),
            ),
            (
                ct,
                Some("br"),
                body.clone(),
                1 << 20,
                |r| matches!(r, Rejection::UnsupportedEncoding(e) if e == "br"),
            ),
            (ct, None, body.clone(), 4, |r| {
                matches!(r, Rejection::TooLarge { limit: 4 })
            }),
        ];
        for (ct, enc, body, limit, expected) in cases {
            let got = decode_http(SignalKind::Traces, ct, enc, &body, limit)
                .expect_err("must be rejected");
            assert!(expected(&got), "{ct:?} {enc:?}: got {got:?}");
        }
    }

    #[test]
    fn json_bodies_decode_plain_and_compressed() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"x","kind":2,"startTimeUnixNano":"1544712660000000000",
            "attributes":[{"key":"n","value":{"intValue":"-5"}}],
            "status":{"code":2,"message":"m"},"unknownField":[1,{"a":null}]}]}]}]}"#;
        let ct = Some("application/json; charset=utf-8");
        for (encoding, wire) in [
            (None, body.to_vec()),
            (Some("gzip"), gzip(body)),
            (Some("zstd"), zstd(body)),
        ] {
            let (decoded, n) = decode_http(SignalKind::Traces, ct, encoding, &wire, 1 << 20)
                .expect("valid OTLP/JSON");
            assert_eq!(n, body.len());
            let Decoded::Traces(request) = decoded else {
                panic!("traces decoded as logs");
            };
            let span = &request.resource_spans[0].scope_spans[0].spans[0];
            assert_eq!(hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
            assert_eq!(hex(&span.span_id), "eee19b7ec3c1b174");
            assert_eq!(
                (span.kind, span.start_time_unix_nano),
                (2, 1_544_712_660_000_000_000)
            );
            assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        }
        let logs = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
            {"severityNumber":9,"body":{"bytesValue":"AAEC"}}]}]}]}"#;
        assert!(matches!(
            decode_http(SignalKind::Logs, Some("application/json"), None, logs, 1 << 20),
            Ok((Decoded::Logs(r), _)) if r.resource_logs[0].scope_logs[0].log_records[0].severity_number == 9
        ));
        let status: serde_json::Value =
            serde_json::from_slice(&rpc_status_json(3, "bad \"x\"")).expect("JSON");
        assert_eq!(
            status,
            serde_json::json!({"code": 3, "message": "bad \"x\""})
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert_eq!(
            gunzip(&bomb, 1000),
            Err(Rejection::TooLarge { limit: 1000 })
        );
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(bytes, 3).expect("in memory")
    }

    #[test]
    fn zstd_bodies_inflate_and_bombs_stop_at_the_limit() {
        let body = spans_request();
        let ct = Some("application/x-protobuf");
        assert!(matches!(
            decode_http(SignalKind::Traces, ct, Some("zstd"), &zstd(&body), 1 << 20),
            Ok((Decoded::Traces(_), n)) if n == body.len()
        ));
        let bomb = zstd(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 1000);
        assert_eq!(
            unzstd(&bomb, 1000),
            Err(Rejection::TooLarge { limit: 1000 })
        );
        assert!(matches!(
            decode_http(SignalKind::Traces, ct, Some("zstd"), b"not zstd", 1 << 20),
            Err(Rejection::BadZstd(_))
        ));
        // A frame declaring a 128 MiB window (streamed, no content size) is
        // refused before the decoder allocates it, under a 4 KiB limit.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        encoder
            .set_parameter(zstd::stream::raw::CParameter::WindowLog(27))
            .expect("window");
        std::io::Write::write_all(&mut encoder, &body).expect("in memory");
        let wide = encoder.finish().expect("in memory");
        assert!(matches!(unzstd(&wide, 4096), Err(Rejection::BadZstd(_))));
        // The same frame under a limit that warrants the window inflates.
        assert_eq!(unzstd(&wide, 128 << 20).as_deref(), Ok(&body[..]));
        assert_eq!(zstd_window_log(4096), 20);
        assert_eq!(zstd_window_log(16 << 20), 24);
        assert_eq!(zstd_window_log(usize::MAX), 27);
    }

    #[test]
    fn grpc_frames_round_trip_and_reject_lies() {
        let body = spans_request();
        let framed = frame_grpc(&body);
        assert_eq!(
            unframe_grpc(&framed, None, 1 << 20).as_deref(),
            Ok(&body[..])
        );

        let mut compressed = gzip(&body);
        let mut framed_gz = vec![1];
        framed_gz.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        framed_gz.append(&mut compressed);
        assert_eq!(
            unframe_grpc(&framed_gz, Some("gzip"), 1 << 20).as_deref(),
            Ok(&body[..])
        );
        assert!(matches!(
            unframe_grpc(&framed_gz, None, 1 << 20),
            Err(Rejection::Malformed(_))
        ));
        let mut compressed = zstd(&body);
        let mut framed_zstd = vec![1];
        framed_zstd.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        framed_zstd.append(&mut compressed);
        assert_eq!(
            unframe_grpc(&framed_zstd, Some("zstd"), 1 << 20).as_deref(),
            Ok(&body[..])
        );
        assert!(matches!(
            unframe_grpc(&framed_gz, Some("zstd"), 1 << 20),
            Err(Rejection::BadZstd(_))
        ));
        assert!(matches!(
            unframe_grpc(&framed_gz, Some("snappy"), 1 << 20),
            Err(Rejection::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            unframe_grpc(&framed[..3], None, 1 << 20),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            unframe_grpc(&framed[..framed.len() - 1], None, 1 << 20),
            Err(Rejection::Malformed(_))
        ));
        let mut bad_flag = framed.clone();
        bad_flag[0] = 7;
        assert!(matches!(
            unframe_grpc(&bad_flag, None, 1 << 20),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(
            unframe_grpc(&framed, None, 2),
            Err(Rejection::TooLarge { limit: 2 })
        );
    }

    #[test]
    fn rpc_status_decodes_as_google_rpc_status() {
        let bytes = rpc_status(3, "bad");
        let mut buf = &bytes[..];
        let (mut code, mut message) = (0i32, String::new());
        while !buf.is_empty() {
            let (tag, wire) = prost::encoding::decode_key(&mut buf).expect("key");
            let ctx = prost::encoding::DecodeContext::default();
            match tag {
                1 => prost::encoding::int32::merge(wire, &mut code, &mut buf, ctx),
                2 => prost::encoding::string::merge(wire, &mut message, &mut buf, ctx),
                _ => panic!("unexpected field {tag}"),
            }
            .expect("field");
        }
        assert_eq!((code, message.as_str()), (3, "bad"));
    }
}
