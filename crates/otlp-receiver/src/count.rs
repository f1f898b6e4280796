//! What the receiver counts: items (spans, log records, metric data
//! points), requests, bytes, refusals and rejections by cause,
//! `service.name` per item, and span-end (log timestamp, data point time)
//! to received latency.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp_monitor::Histogram;

use crate::decode::{Decoded, Rejection};

/// The protocol a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with OTLP/JSON bodies.
    HttpJson,
}

/// How an accepted request's body was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// From a `Content-Encoding` / `grpc-encoding` value the decoder
    /// accepted.
    pub(crate) fn of(name: Option<&str>) -> Self {
        match name.map(|n| n.trim().to_ascii_lowercase()).as_deref() {
            Some("gzip" | "x-gzip") => Encoding::Gzip,
            Some("zstd") => Encoding::Zstd,
            _ => Encoding::Identity,
        }
    }
}

/// A snapshot of everything the receiver has counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiverStats {
    /// Spans in accepted requests.
    pub spans: u64,
    /// Log records in accepted requests.
    pub log_records: u64,
    /// Metrics in accepted requests (one per metric stream per request).
    pub metrics: u64,
    /// Metric data points in accepted requests, every aggregation.
    pub data_points: u64,
    /// Accepted gRPC export requests.
    pub grpc_requests: u64,
    /// Accepted OTLP/HTTP export requests, protobuf and JSON.
    pub http_requests: u64,
    /// Of `http_requests`, those with OTLP/JSON bodies.
    pub json_requests: u64,
    /// Accepted requests whose body was gzip-compressed.
    pub gzip_requests: u64,
    /// Accepted requests whose body was zstd-compressed.
    pub zstd_requests: u64,
    /// Bytes of accepted request bodies as they came over the wire
    /// (compressed where they were).
    pub wire_bytes: u64,
    /// Bytes of accepted request messages once inflated.
    pub message_bytes: u64,
    /// Well-formed requests refused on purpose (`fail_ratio`), answered
    /// with a retryable status; their items are not counted.
    pub refused: u64,
    /// Accepted requests whose every item had arrived before, in one
    /// earlier request: a retry of a request that had in fact arrived (its
    /// answer was lost or came too late). Their items are counted in
    /// `spans` / `log_records` / `data_points` as well, and in
    /// `duplicate_items`.
    pub duplicate_requests: u64,
    /// Items in `duplicate_requests`.
    pub duplicate_items: u64,
    /// Requests rejected as malformed protobuf, OTLP/JSON or gRPC framing.
    pub rejected_malformed: u64,
    /// Requests rejected for their content type.
    pub rejected_media_type: u64,
    /// Requests rejected for an unsupported content encoding.
    pub rejected_encoding: u64,
    /// Requests rejected as larger than the body limit.
    pub rejected_too_large: u64,
    /// Requests whose gzip body did not inflate.
    pub rejected_bad_gzip: u64,
    /// Requests whose zstd body did not inflate (corrupt, or a frame
    /// asking for a larger window than the body limit warrants).
    pub rejected_bad_zstd: u64,
    /// Requests whose body did not arrive within the body timeout.
    pub rejected_timed_out: u64,
    /// Items per `service.name` resource attribute (`""` when absent).
    pub service_names: BTreeMap<String, u64>,
    /// Requests per `name: value` for request headers whose name starts
    /// with `x-` (how a test sees `OTEL_EXPORTER_OTLP_HEADERS` arrive).
    pub custom_headers: BTreeMap<String, u64>,
}

impl ReceiverStats {
    /// Spans, log records and metric data points together, duplicates
    /// included.
    pub fn items(&self) -> u64 {
        self.spans + self.log_records + self.data_points
    }

    /// Spans, log records and data points together, each counted once: what a client
    /// delivered, whatever it sent twice.
    pub fn unique_items(&self) -> u64 {
        self.items() - self.duplicate_items
    }

    /// Accepted requests over both protocols.
    pub fn requests(&self) -> u64 {
        self.grpc_requests + self.http_requests
    }

    /// Every rejected request, whatever the cause.
    pub fn rejected(&self) -> u64 {
        self.rejected_malformed
            + self.rejected_media_type
            + self.rejected_encoding
            + self.rejected_too_large
            + self.rejected_bad_gzip
            + self.rejected_bad_zstd
            + self.rejected_timed_out
    }
}

#[derive(Debug, Default)]
struct Named {
    service_names: BTreeMap<String, u64>,
    custom_headers: BTreeMap<String, u64>,
}

/// The shared counters; one per receiver.
#[derive(Debug)]
pub(crate) struct Counters {
    spans: AtomicU64,
    log_records: AtomicU64,
    metrics: AtomicU64,
    data_points: AtomicU64,
    grpc_requests: AtomicU64,
    http_requests: AtomicU64,
    json_requests: AtomicU64,
    gzip_requests: AtomicU64,
    zstd_requests: AtomicU64,
    wire_bytes: AtomicU64,
    message_bytes: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    media_type: AtomicU64,
    encoding: AtomicU64,
    too_large: AtomicU64,
    bad_gzip: AtomicU64,
    bad_zstd: AtomicU64,
    timed_out: AtomicU64,
    /// Requests seen so far, the input of the refusal decision.
    sequence: AtomicU64,
    duplicate_requests: AtomicU64,
    duplicate_items: AtomicU64,
    /// Fingerprints of the accepted requests (see `fingerprint`).
    seen: Mutex<HashSet<u64>>,
    named: Mutex<Named>,
    latency: Mutex<Latency>,
    /// Accepted requests kept for [`Counters::take_kept`], and how many
    /// more may be.
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    room: usize,
    requests: Vec<Decoded>,
}

#[derive(Debug)]
struct Latency {
    total: Histogram,
    window: Histogram,
}

/// The counters' locks guard plain data no user code touches while they are
/// held, so a poisoned lock still holds consistent numbers.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn add<'a>(per_service: &mut Vec<(&'a str, u64)>, service: &'a str, n: u64) {
    match per_service.iter_mut().find(|(s, _)| *s == service) {
        Some((_, count)) => *count += n,
        None => per_service.push((service, n)),
    }
}

fn service_name(resource: Option<&Resource>) -> &str {
    let attributes: &[KeyValue] = resource.map_or(&[], |r| &r.attributes);
    attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// What identifies a request's content, and its item count: a hash of
/// every span's trace and span id, or of every log record's timestamps,
/// severity, attribute count and trace context. A client that sends a request again sends the same
/// items; two different requests of a real client do not share them all.
fn fingerprint(decoded: &Decoded) -> (u64, u64) {
    let mut hasher = DefaultHasher::new();
    let mut items = 0;
    match decoded {
        Decoded::Traces(request) => {
            for span in request
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
            {
                span.trace_id.hash(&mut hasher);
                span.span_id.hash(&mut hasher);
                items += 1;
            }
        }
        Decoded::Logs(request) => {
            for record in request
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| &sl.log_records)
            {
                record.time_unix_nano.hash(&mut hasher);
                record.observed_time_unix_nano.hash(&mut hasher);
                record.severity_number.hash(&mut hasher);
                record.attributes.len().hash(&mut hasher);
                record.trace_id.hash(&mut hasher);
                record.span_id.hash(&mut hasher);
                items += 1;
            }
        }
        Decoded::Metrics(request) => {
            for metric in request
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
            {
                metric.name.hash(&mut hasher);
                for_each_point(metric, |time, attributes| {
                    time.hash(&mut hasher);
                    attributes.hash(&mut hasher);
                    items += 1;
                });
            }
        }
    }
    (hasher.finish(), items)
}

/// Calls `f` with the time and the attribute count of each data point of
/// `metric`, whatever its aggregation.
fn for_each_point(metric: &Metric, mut f: impl FnMut(u64, usize)) {
    match &metric.data {
        Some(metric::Data::Gauge(g)) => g
            .data_points
            .iter()
            .for_each(|p| f(p.time_unix_nano, p.attributes.len())),
        Some(metric::Data::Sum(s)) => s
            .data_points
            .iter()
            .for_each(|p| f(p.time_unix_nano, p.attributes.len())),
        Some(metric::Data::Histogram(h)) => h
            .data_points
            .iter()
            .for_each(|p| f(p.time_unix_nano, p.attributes.len())),
        Some(metric::Data::ExponentialHistogram(h)) => h
            .data_points
            .iter()
            .for_each(|p| f(p.time_unix_nano, p.attributes.len())),
        Some(metric::Data::Summary(s)) => s
            .data_points
            .iter()
            .for_each(|p| f(p.time_unix_nano, p.attributes.len())),
        None => {}
    }
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            spans: AtomicU64::new(0),
            log_records: AtomicU64::new(0),
            metrics: AtomicU64::new(0),
            data_points: AtomicU64::new(0),
            grpc_requests: AtomicU64::new(0),
            http_requests: AtomicU64::new(0),
            json_requests: AtomicU64::new(0),
            gzip_requests: AtomicU64::new(0),
            zstd_requests: AtomicU64::new(0),
            wire_bytes: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            media_type: AtomicU64::new(0),
            encoding: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            bad_gzip: AtomicU64::new(0),
            bad_zstd: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            duplicate_requests: AtomicU64::new(0),
            duplicate_items: AtomicU64::new(0),
            seen: Mutex::new(HashSet::new()),
            named: Mutex::new(Named::default()),
            latency: Mutex::new(Latency {
                total: Histogram::new(),
                window: Histogram::new(),
            }),
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Keeps a copy of the next `n` accepted requests.
    pub(crate) fn keep(&self, n: usize) {
        lock(&self.kept).room = n;
    }

    /// The requests kept so far, in the order they were accepted.
    pub(crate) fn take_kept(&self) -> Vec<Decoded> {
        std::mem::take(&mut lock(&self.kept).requests)
    }

    /// Whether to refuse this well-formed request: a fixed-seed hash of the
    /// request's sequence number against `ratio`, so a run refuses the same
    /// share of requests however they interleave.
    pub(crate) fn should_refuse(&self, ratio: f64) -> bool {
        if ratio <= 0.0 {
            return false;
        }
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        // splitmix64 finaliser: evenly spread bits from a counter.
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let refused = (z >> 11) as f64 / (1u64 << 53) as f64 <= ratio;
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    pub(crate) fn reject(&self, why: &Rejection) {
        let counter = match why {
            Rejection::Malformed(_) => &self.malformed,
            Rejection::UnsupportedMediaType(_) => &self.media_type,
            Rejection::UnsupportedEncoding(_) => &self.encoding,
            Rejection::TooLarge { .. } => &self.too_large,
            Rejection::BadGzip(_) => &self.bad_gzip,
            Rejection::BadZstd(_) => &self.bad_zstd,
            Rejection::TimedOut => &self.timed_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted request.
    pub(crate) fn accept(
        &self,
        protocol: Protocol,
        decoded: &Decoded,
        wire_bytes: usize,
        message_bytes: usize,
        encoding: Encoding,
        custom_headers: &[String],
    ) {
        let (fingerprint, items) = fingerprint(decoded);
        if items > 0 && !lock(&self.seen).insert(fingerprint) {
            self.duplicate_requests.fetch_add(1, Ordering::Relaxed);
            self.duplicate_items.fetch_add(items, Ordering::Relaxed);
        }
        let now = now_unix_nanos();
        let mut per_service: Vec<(&str, u64)> = Vec::with_capacity(1);
        let mut latencies: Vec<u64> = Vec::new();
        match decoded {
            Decoded::Traces(request) => {
                let mut spans = 0;
                for rs in &request.resource_spans {
                    let service = service_name(rs.resource.as_ref());
                    let mut n = 0;
                    for ss in &rs.scope_spans {
                        n += ss.spans.len() as u64;
                        latencies.extend(
                            ss.spans
                                .iter()
                                .map(|s| now.saturating_sub(s.end_time_unix_nano)),
                        );
                    }
                    add(&mut per_service, service, n);
                    spans += n;
                }
                self.spans.fetch_add(spans, Ordering::Relaxed);
            }
            Decoded::Logs(request) => {
                let mut records = 0;
                for rl in &request.resource_logs {
                    let service = service_name(rl.resource.as_ref());
                    let mut n = 0;
                    for sl in &rl.scope_logs {
                        n += sl.log_records.len() as u64;
                        latencies.extend(sl.log_records.iter().map(|r| {
                            let at = if r.time_unix_nano != 0 {
                                r.time_unix_nano
                            } else {
                                r.observed_time_unix_nano
                            };
                            now.saturating_sub(at)
                        }));
                    }
                    add(&mut per_service, service, n);
                    records += n;
                }
                self.log_records.fetch_add(records, Ordering::Relaxed);
            }
            Decoded::Metrics(request) => {
                let (mut metrics, mut points) = (0, 0);
                for rm in &request.resource_metrics {
                    let service = service_name(rm.resource.as_ref());
                    let mut n = 0;
                    for sm in &rm.scope_metrics {
                        metrics += sm.metrics.len() as u64;
                        for metric in &sm.metrics {
                            for_each_point(metric, |time, _| {
                                latencies.push(now.saturating_sub(time));
                                n += 1;
                            });
                        }
                    }
                    add(&mut per_service, service, n);
                    points += n;
                }
                self.metrics.fetch_add(metrics, Ordering::Relaxed);
                self.data_points.fetch_add(points, Ordering::Relaxed);
            }
        }
        match protocol {
            Protocol::Grpc => &self.grpc_requests,
            Protocol::HttpProtobuf | Protocol::HttpJson => &self.http_requests,
        }
        .fetch_add(1, Ordering::Relaxed);
        if protocol == Protocol::HttpJson {
            self.json_requests.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut kept = lock(&self.kept);
            if kept.room > 0 {
                kept.room -= 1;
                kept.requests.push(decoded.clone());
            }
        }
        match encoding {
            Encoding::Identity => {}
            Encoding::Gzip => {
                self.gzip_requests.fetch_add(1, Ordering::Relaxed);
            }
            Encoding::Zstd => {
                self.zstd_requests.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.wire_bytes
            .fetch_add(wire_bytes as u64, Ordering::Relaxed);
        self.message_bytes
            .fetch_add(message_bytes as u64, Ordering::Relaxed);
        {
            let mut named = lock(&self.named);
            for (service, n) in per_service {
                match named.service_names.get_mut(service) {
                    Some(count) => *count += n,
                    None => {
                        named.service_names.insert(service.to_owned(), n);
                    }
                }
            }
            for header in custom_headers {
                *named.custom_headers.entry(header.clone()).or_insert(0) += 1;
            }
        }
        let mut latency = lock(&self.latency);
        for ns in latencies {
            latency.total.record(ns);
            latency.window.record(ns);
        }
    }

    pub(crate) fn stats(&self) -> ReceiverStats {
        let named = lock(&self.named);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceiverStats {
            spans: get(&self.spans),
            log_records: get(&self.log_records),
            metrics: get(&self.metrics),
            data_points: get(&self.data_points),
            grpc_requests: get(&self.grpc_requests),
            http_requests: get(&self.http_requests),
            json_requests: get(&self.json_requests),
            gzip_requests: get(&self.gzip_requests),
            zstd_requests: get(&self.zstd_requests),
            wire_bytes: get(&self.wire_bytes),
            message_bytes: get(&self.message_bytes),
            refused: get(&self.refused),
            duplicate_requests: get(&self.duplicate_requests),
            duplicate_items: get(&self.duplicate_items),
            rejected_malformed: get(&self.malformed),
            rejected_media_type: get(&self.media_type),
            rejected_encoding: get(&self.encoding),
            rejected_too_large: get(&self.too_large),
            rejected_bad_gzip: get(&self.bad_gzip),
            rejected_bad_zstd: get(&self.bad_zstd),
            rejected_timed_out: get(&self.timed_out),
            service_names: named.service_names.clone(),
            custom_headers: named.custom_headers.clone(),
        }
    }

    /// Latency of every accepted item so far.
    pub(crate) fn latency(&self) -> Histogram {
        lock(&self.latency).total.clone()
    }

    /// Latency of the items accepted since the last call.
    pub(crate) fn take_window_latency(&self) -> Histogram {
        std::mem::take(&mut lock(&self.latency).window)
    }
}
