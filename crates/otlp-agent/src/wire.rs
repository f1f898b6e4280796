//! Allocation-free protobuf wire-format walk over OTLP export requests.
//!
//! Decoding a request with prost just to count it would build the whole
//! object tree; this walk only follows the few message levels that matter
//! for counting and checks everything else for well-formedness alone.

use std::fmt;

/// Which OTLP export request a body is; items are spans, log records or
/// metric data points.
pub use otlp_receiver::SignalKind as Signal;

/// Why a body is not a well-formed export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Absolute byte offset in the whole request where the problem was found.
    pub offset: usize,
    /// What was wrong there.
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed protobuf at byte {}: {}",
            self.offset, self.what
        )
    }
}

impl std::error::Error for WireError {}

/// Items in a request: spans, log records or metric data points; and
/// resources (ResourceSpans/ResourceLogs/ResourceMetrics entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Spans, log records or metric data points.
    pub items: u64,
    /// ResourceSpans / ResourceLogs / ResourceMetrics entries.
    pub resources: u64,
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

fn error(offset: usize, what: &'static str) -> WireError {
    WireError { offset, what }
}

/// Reads the varint starting at `buf[pos]`; returns its value and the position after it.
fn read_varint(buf: &[u8], pos: usize, base: usize) -> Result<(u64, usize), WireError> {
    // Errors point at the varint's first byte: that is where a reader would resync.
    let at = base + pos;
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = buf.get(pos + i) else {
            return Err(error(at, "truncated varint"));
        };
        if i == 9 {
            if byte & 0x80 != 0 {
                return Err(error(at, "varint longer than 10 bytes"));
            }
            // Only the lowest bit of the 10th byte still fits in a u64.
            if byte > 1 {
                return Err(error(at, "varint overflows 64 bits"));
            }
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, pos + i + 1));
        }
    }
    Err(error(at, "varint longer than 10 bytes"))
}

/// One field of a message. For LEN fields `body` is the payload.
struct Field<'a> {
    number: u64,
    wire: u8,
    at: usize,
    body: &'a [u8],
    body_at: usize,
}

impl<'a> Field<'a> {
    fn expect(&self, wire: u8) -> Result<(), WireError> {
        if self.wire == wire {
            Ok(())
        } else {
            Err(error(self.at, "wrong wire type for known field"))
        }
    }

    /// The payload of a LEN field, to be walked as a message.
    fn message(&self) -> Result<Fields<'a>, WireError> {
        self.expect(LEN)?;
        Ok(Fields {
            buf: self.body,
            pos: 0,
            base: self.body_at,
        })
    }
}

/// Cursor over the fields of one message; `base` is the absolute offset of `buf[0]`.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let (key, p) = read_varint(self.buf, self.pos, self.base)?;
        let number = key >> 3;
        // Keys are u32 on the wire format's own terms (prost rejects larger ones too).
        if number == 0 || key > u64::from(u32::MAX) {
            return Err(error(at, "invalid field number"));
        }
        let wire = (key & 7) as u8;
        let remaining = self.buf.len() - p;
        let (start, end) = match wire {
            VARINT => (p, read_varint(self.buf, p, self.base)?.1),
            I64 | I32 => {
                let width = if wire == I64 { 8 } else { 4 };
                if remaining < width {
                    return Err(error(self.base + p, "truncated fixed-width value"));
                }
                (p, p + width)
            }
            LEN => {
                let (len, s) = read_varint(self.buf, p, self.base)?;
                // Compare in u64 so a huge declared length cannot wrap an offset.
                if len > (self.buf.len() - s) as u64 {
                    return Err(error(self.base + p, "length past end of enclosing message"));
                }
                (s, s + len as usize)
            }
            3 | 4 => return Err(error(at, "group wire type not supported")),
            _ => return Err(error(at, "invalid wire type")),
        };
        self.pos = end;
        Ok(Some(Field {
            number,
            wire,
            at,
            body: &self.buf[start..end],
            body_at: self.base + start,
        }))
    }

    /// Walks a message whose schema we do not follow: well-formedness only.
    fn skip_all(mut self) -> Result<(), WireError> {
        while self.next()?.is_some() {}
        Ok(())
    }
}

/// Counts items in a concatenation of zero or more encoded export requests
/// of `signal`, checking that the walked structure is well-formed.
pub fn count_items(signal: Signal, message: &[u8]) -> Result<Count, WireError> {
    let mut count = Count::default();
    let mut fields = Fields {
        buf: message,
        pos: 0,
        base: 0,
    };
    while let Some(f) = fields.next()? {
        if f.number == 1 {
            count.items += resource_entry(signal, f.message()?)?;
            count.resources += 1;
        }
    }
    Ok(count)
}

/// ResourceSpans / ResourceLogs / ResourceMetrics share one layout.
fn resource_entry(signal: Signal, mut fields: Fields<'_>) -> Result<u64, WireError> {
    let mut items = 0;
    while let Some(f) = fields.next()? {
        match f.number {
            1 => f.message()?.skip_all()?,
            2 => items += scope_entry(signal, f.message()?)?,
            3 => f.expect(LEN)?,
            _ => {}
        }
    }
    Ok(items)
}

/// ScopeSpans / ScopeLogs / ScopeMetrics share one layout too.
fn scope_entry(signal: Signal, mut fields: Fields<'_>) -> Result<u64, WireError> {
    let mut items = 0;
    while let Some(f) = fields.next()? {
        match f.number {
            1 => f.message()?.skip_all()?,
            2 if signal == Signal::Metrics => items += metric(f.message()?)?,
            2 => {
                f.message()?.skip_all()?;
                items += 1;
            }
            3 => f.expect(LEN)?,
            _ => {}
        }
    }
    Ok(items)
}

fn metric(mut fields: Fields<'_>) -> Result<u64, WireError> {
    // `data` is a oneof: as in prost, a later variant replaces an earlier one
    // and a repeat of the same variant merges into it, so only those points count.
    let mut kind = 0;
    let mut points = 0;
    while let Some(f) = fields.next()? {
        match f.number {
            1..=3 => f.expect(LEN)?,
            5 | 7 | 9 | 10 | 11 => {
                let n = metric_data(f.number, f.message()?)?;
                points = if kind == f.number { points + n } else { n };
                kind = f.number;
            }
            12 => f.message()?.skip_all()?,
            _ => {}
        }
    }
    Ok(points)
}

/// Gauge (5), Sum (7), Histogram (9), ExponentialHistogram (10) or Summary (11).
fn metric_data(kind: u64, mut fields: Fields<'_>) -> Result<u64, WireError> {
    let mut points = 0;
    while let Some(f) = fields.next()? {
        match (kind, f.number) {
            (_, 1) => {
                f.message()?.skip_all()?;
                points += 1;
            }
            // aggregation_temporality, and Sum's is_monotonic.
            (7 | 9 | 10, 2) | (7, 3) => f.expect(VARINT)?,
            _ => {}
        }
    }
    Ok(points)
}

// Safe code: Miri runs the disk log's tests, not these.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use Signal::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as LogsReq;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as MetricsReq;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as TracesReq;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{self as m, metric::Data};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn d<T: Default>() -> T {
        T::default()
    }

    fn attrs() -> Vec<KeyValue> {
        let value = Some(AnyValue {
            value: Some(Value::StringValue("v".into())),
        });
        vec![KeyValue {
            key: "k".into(),
            value,
            ..d()
        }]
    }

    // shape[resource][scope] = spans/log records in that scope, or metrics
    // in that scope for metrics (metric j has j % 4 points, so some are empty).
    const SHAPE: &[&[usize]] = &[&[3, 0, 2], &[], &[1], &[0]];
    const ALL: [Signal; 3] = [Traces, Logs, Metrics];

    /// Metric with `n` points of kind `kind % 5`.
    fn metric_of(kind: usize, n: usize) -> m::Metric {
        let pts = |f: &dyn Fn() -> _| (0..n).map(|_| f()).collect::<Vec<_>>();
        let num = || m::NumberDataPoint {
            time_unix_nano: 1,
            attributes: attrs(),
            ..d()
        };
        let data = match kind % 5 {
            0 => Data::Gauge(m::Gauge {
                data_points: pts(&num),
            }),
            1 => Data::Sum(m::Sum {
                data_points: pts(&num),
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
            2 => Data::Histogram(m::Histogram {
                data_points: (0..n)
                    .map(|_| m::HistogramDataPoint {
                        count: 3,
                        bucket_counts: vec![1, 2],
                        ..d()
                    })
                    .collect(),
                aggregation_temporality: 1,
            }),
            3 => Data::ExponentialHistogram(m::ExponentialHistogram {
                data_points: (0..n)
                    .map(|_| m::ExponentialHistogramDataPoint {
                        scale: 2,
                        positive: Some(d()),
                        ..d()
                    })
                    .collect(),
                aggregation_temporality: 1,
            }),
            _ => Data::Summary(m::Summary {
                data_points: (0..n)
                    .map(|_| m::SummaryDataPoint { count: 4, ..d() })
                    .collect(),
            }),
        };
        m::Metric {
            name: format!("m{kind}"),
            unit: "s".into(),
            data: Some(data),
            metadata: attrs(),
            ..d()
        }
    }

    /// Builds `shape` as resource entries of scope entries of items.
    fn nest<R, S, I>(
        shape: &[&[usize]],
        item: impl Fn(usize) -> I,
        scope: impl Fn(Vec<I>) -> S,
        resource: impl Fn(Vec<S>) -> R,
    ) -> Vec<R> {
        let scope_of = |&n: &usize| scope((0..n).map(&item).collect());
        let resource_of = |r: &&[usize]| resource(r.iter().map(scope_of).collect());
        shape.iter().map(resource_of).collect()
    }

    fn encode(signal: Signal, shape: &[&[usize]]) -> Vec<u8> {
        let resource = || {
            Some(Resource {
                attributes: attrs(),
                ..d()
            })
        };
        let (scope, url) = (|| Some(d()), || String::from("u"));
        match signal {
            Traces => TracesReq {
                resource_spans: nest(
                    shape,
                    |_| Span {
                        name: "s".into(),
                        trace_id: vec![7; 16],
                        attributes: attrs(),
                        ..d()
                    },
                    |spans| ScopeSpans {
                        scope: scope(),
                        spans,
                        schema_url: url(),
                    },
                    |scope_spans| ResourceSpans {
                        resource: resource(),
                        scope_spans,
                        schema_url: url(),
                    },
                ),
            }
            .encode_to_vec(),
            Logs => LogsReq {
                resource_logs: nest(
                    shape,
                    |_| LogRecord {
                        severity_number: 9,
                        attributes: attrs(),
                        ..d()
                    },
                    |log_records| ScopeLogs {
                        scope: scope(),
                        log_records,
                        schema_url: url(),
                    },
                    |scope_logs| ResourceLogs {
                        resource: resource(),
                        scope_logs,
                        schema_url: url(),
                    },
                ),
            }
            .encode_to_vec(),
            Metrics => MetricsReq {
                resource_metrics: nest(
                    shape,
                    |j| metric_of(j, j % 4),
                    |metrics| m::ScopeMetrics {
                        scope: scope(),
                        metrics,
                        schema_url: url(),
                    },
                    |scope_metrics| m::ResourceMetrics {
                        resource: resource(),
                        scope_metrics,
                        schema_url: url(),
                    },
                ),
            }
            .encode_to_vec(),
        }
    }

    fn points(metric: &m::Metric) -> usize {
        match &metric.data {
            None => 0,
            Some(Data::Gauge(d)) => d.data_points.len(),
            Some(Data::Sum(d)) => d.data_points.len(),
            Some(Data::Histogram(d)) => d.data_points.len(),
            Some(Data::ExponentialHistogram(d)) => d.data_points.len(),
            Some(Data::Summary(d)) => d.data_points.len(),
        }
    }

    /// Count according to prost, or None if prost rejects the bytes.
    fn prost_count(signal: Signal, b: &[u8]) -> Option<Count> {
        let (items, resources): (usize, usize) = match signal {
            Traces => TracesReq::decode(b).ok().map(|r| {
                (
                    r.resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum(),
                    r.resource_spans.len(),
                )
            })?,
            Logs => LogsReq::decode(b).ok().map(|r| {
                (
                    r.resource_logs
                        .iter()
                        .flat_map(|r| &r.scope_logs)
                        .map(|s| s.log_records.len())
                        .sum(),
                    r.resource_logs.len(),
                )
            })?,
            Metrics => MetricsReq::decode(b).ok().map(|r| {
                (
                    r.resource_metrics
                        .iter()
                        .flat_map(|r| &r.scope_metrics)
                        .flat_map(|s| &s.metrics)
                        .map(points)
                        .sum(),
                    r.resource_metrics.len(),
                )
            })?,
        };
        Some(Count {
            items: items as u64,
            resources: resources as u64,
        })
    }

    #[test]
    fn counts_match_prost() {
        for signal in ALL {
            for shape in [SHAPE, &[], &[&[]], &[&[0]], &[&[1, 1], &[4]], &[&[11, 5]]] {
                let bytes = encode(signal, shape);
                let got = count_items(signal, &bytes).unwrap();
                assert_eq!(
                    Some(got),
                    prost_count(signal, &bytes),
                    "{signal:?} {shape:?}"
                );
                assert_eq!(got.resources, shape.len() as u64);
            }
        }
        assert_eq!(count_items(Traces, &[]), Ok(Count::default()));
        let want = Count {
            items: 6,
            resources: 4,
        }; // 3 + 2 + 1 spans
        assert_eq!(count_items(Traces, &encode(Traces, SHAPE)), Ok(want));
        let want = Count {
            items: 6,
            resources: 1,
        }; // metric j has j % 4 points: 0+1+2+3+0
        assert_eq!(count_items(Metrics, &encode(Metrics, &[&[5]])), Ok(want));
    }

    #[test]
    fn all_metric_kinds_count() {
        for kind in 0..5 {
            let mut req = MetricsReq::decode(&encode(Metrics, &[&[0]])[..]).unwrap();
            req.resource_metrics[0].scope_metrics[0].metrics =
                vec![metric_of(kind, 3), metric_of(kind, 0)];
            let got = count_items(Metrics, &req.encode_to_vec());
            assert_eq!(
                got,
                Ok(Count {
                    items: 3,
                    resources: 1
                }),
                "kind {kind}"
            );
        }
    }

    #[test]
    fn oneof_last_variant_wins() {
        let (gauge, sum) = (
            metric_of(0, 2).encode_to_vec(),
            metric_of(1, 3).encode_to_vec(),
        );
        let wrap = |key: u8, inner: &[u8]| {
            let mut v = vec![key];
            prost::encoding::encode_varint(inner.len() as u64, &mut v);
            [v, inner.to_vec()].concat()
        };
        for (a, b, want) in [(&gauge, &sum, 3), (&sum, &gauge, 2), (&gauge, &gauge, 4)] {
            // request { resource { scope { metric = a ++ b } } }: prost merges the two.
            let req = wrap(0x0a, &wrap(0x12, &wrap(0x12, &[a.as_slice(), b].concat())));
            assert_eq!(count_items(Metrics, &req).unwrap().items, want);
            assert_eq!(prost_count(Metrics, &req).unwrap().items, want);
        }
    }

    #[test]
    fn concatenation_sums() {
        for signal in ALL {
            let (a, b) = (encode(signal, SHAPE), encode(signal, &[&[1, 1], &[4]]));
            let (ca, cb) = (
                count_items(signal, &a).unwrap(),
                count_items(signal, &b).unwrap(),
            );
            let sum = Count {
                items: ca.items + cb.items,
                resources: ca.resources + cb.resources,
            };
            assert_eq!(count_items(signal, &[a, b].concat()), Ok(sum));
        }
    }

    #[test]
    fn truncations_fail_unless_on_top_level_boundary() {
        for signal in ALL {
            let bytes = encode(signal, SHAPE);
            let full = count_items(signal, &bytes).unwrap();
            // A request is the concatenation of its one-resource requests.
            let ends: Vec<usize> = (0..=SHAPE.len())
                .map(|i| encode(signal, &SHAPE[..i]).len())
                .collect();
            for cut in 0..bytes.len() {
                match count_items(signal, &bytes[..cut]) {
                    Ok(c) => {
                        assert!(ends.contains(&cut), "{signal:?} prefix {cut} accepted");
                        assert!(c.items <= full.items && c.resources < full.resources);
                    }
                    Err(e) => assert!(
                        !ends.contains(&cut) && e.offset <= cut,
                        "{signal:?} {cut}: {e}"
                    ),
                }
            }
        }
    }

    #[test]
    fn byte_flips_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for signal in ALL {
            let bytes = encode(signal, SHAPE);
            for _ in 0..if cfg!(miri) { 30 } else { 3000 } {
                let mut b = bytes.clone();
                let i = rng.usize(..b.len());
                b[i] ^= rng.u8(1..);
                match (count_items(signal, &b), prost_count(signal, &b)) {
                    // Agreement is not required in general, but holds where both accept.
                    (Ok(ours), Some(theirs)) => assert_eq!(ours, theirs, "{signal:?} flip at {i}"),
                    (Err(e), _) => assert!(e.offset <= b.len()),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..if cfg!(miri) { 50 } else { 5000 } {
            let b: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            for signal in ALL {
                if let Err(e) = count_items(signal, &b) {
                    assert!(e.offset <= b.len());
                }
            }
        }
    }

    #[test]
    fn specific_errors() {
        let huge = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let mut eleven = vec![0x78];
        eleven.extend([0x80; 10]);
        eleven.push(0x01);
        // request/resource/scope/metric/sum with aggregation_temporality as LEN.
        let sum = [
            0x0a, 0x0a, 0x12, 0x08, 0x12, 0x06, 0x3a, 0x04, 0x12, 0x00, 0x12, 0x00,
        ];
        let wrong = "wrong wire type for known field";
        let cases: &[(Signal, &[u8], usize, &str)] = &[
            (Traces, &[0x0a, 0x04, 0x12, 0x02, 0x10, 0x01], 4, wrong), // span as varint
            (Logs, &[0x08, 0x01], 0, wrong),
            (Metrics, &sum, 8, wrong),
            (Traces, &[0x0b, 0x0c], 0, "group wire type not supported"),
            (
                Traces,
                &[0x0a, 0x05, 0x12, 0x03, 0x12, 0x01, 0x53],
                6,
                "group wire type not supported",
            ),
            (Traces, &[0x0e], 0, "invalid wire type"),
            (Traces, &[0x0a, 0x01, 0x0f], 2, "invalid wire type"),
            (
                Traces,
                &[0x0a, 0x05, 0x00],
                1,
                "length past end of enclosing message",
            ),
            (
                Logs,
                &[0x0a, 0x03, 0x12, 0x04, 0x00],
                3,
                "length past end of enclosing message",
            ),
            (Traces, &huge, 1, "length past end of enclosing message"),
            (Traces, &[0x80, 0x80, 0x80], 0, "truncated varint"),
            (Traces, &[0x0a, 0x02, 0x80, 0x80], 2, "truncated varint"),
            (Traces, &eleven, 1, "varint longer than 10 bytes"),
            (
                Traces,
                &[
                    0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                1,
                "varint overflows 64 bits",
            ),
            (Traces, &[0x02, 0x00], 0, "invalid field number"),
            (
                Traces,
                &[0x80, 0x80, 0x80, 0x80, 0x10],
                0,
                "invalid field number",
            ), // key > u32
            (Traces, &[0x79, 0, 0, 0], 1, "truncated fixed-width value"),
            (Traces, &[0x7d, 0, 0, 0], 1, "truncated fixed-width value"),
        ];
        for &(signal, bytes, offset, what) in cases {
            assert_eq!(
                count_items(signal, bytes),
                Err(WireError { offset, what }),
                "{bytes:02x?}"
            );
        }
        let ok: &[(Signal, &[u8])] = &[
            (
                Traces,
                &[
                    0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
            ), // u64::MAX
            (Traces, &[0x7d, 0, 0, 0, 0]),
            (
                Metrics,
                &[
                    0x0a, 0x0a, 0x12, 0x08, 0x12, 0x06, 0x2a, 0x04, 0x12, 0x00, 0x12, 0x00,
                ],
            ), // gauge: field 2 unknown
        ];
        for &(signal, bytes) in ok {
            assert!(count_items(signal, bytes).is_ok(), "{bytes:02x?}");
        }
        assert_eq!(
            WireError {
                offset: 3,
                what: "x"
            }
            .to_string(),
            "malformed protobuf at byte 3: x"
        );
    }
}
