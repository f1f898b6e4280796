//! Every path a request body takes through the receiver before it is
//! counted: OTLP/HTTP (content type, `Content-Encoding`, protobuf or
//! OTLP/JSON, which `application/json` selects) and
//! unary gRPC framing (`grpc-encoding`, then the message). The first input
//! byte picks the signal, the headers and a small body limit; the rest is
//! the body. Nothing may panic, and an accepted body must respect the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_receiver::decode::{self, Decoded, SignalKind};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/x-protobuf"),
    Some("application/x-protobuf; charset=binary"),
    Some("application/json"),
    None,
];
const ENCODINGS: [Option<&str>; 4] = [None, Some("gzip"), Some("identity"), Some("br")];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let kind = if selector & 0x40 != 0 {
        SignalKind::Metrics
    } else if selector & 1 == 0 {
        SignalKind::Traces
    } else {
        SignalKind::Logs
    };
    let content_type = CONTENT_TYPES[usize::from(selector >> 1) & 3];
    let encoding = ENCODINGS[usize::from(selector >> 3) & 3];
    // Small limits reach the size checks; large ones the decoder.
    let limit = if selector & 0x20 == 0 { 1 << 16 } else { 64 };

    if let Ok((decoded, message_len)) =
        decode::decode_http(kind, content_type, encoding, body, limit)
    {
        assert!(message_len <= limit);
        match (kind, decoded) {
            (SignalKind::Traces, Decoded::Traces(_))
            | (SignalKind::Logs, Decoded::Logs(_))
            | (SignalKind::Metrics, Decoded::Metrics(_)) => {}
            _ => panic!("decoded the other signal"),
        }
    }
    if let Ok(message) = decode::unframe_grpc(body, encoding, limit) {
        assert!(message.len() <= limit);
        let _ = decode::decode_message(kind, &message);
    }
});
