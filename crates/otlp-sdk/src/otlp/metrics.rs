//! `ResourceMetrics` → OTLP `ExportMetricsServiceRequest`, written straight
//! from the SDK's collected metrics into a buffer: no intermediate message
//! tree and no copy of names, attributes or buckets. Byte-identical to
//! opentelemetry-otlp's transform (opentelemetry-proto's
//! `From<&ResourceMetrics>`) + prost.
//!
//! Messages nest six deep (request, resource, scope, metric, aggregation,
//! data point), so rather than recompute a body's length at each level the
//! first pass records every length in pre-order and the second pass reads
//! them back in the same order.

use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Exemplar, ExponentialBucket, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, MetricData,
    ResourceMetrics, ScopeMetrics, Sum,
};

use super::proto::*;

/// A data point's number as the transform writes it.
pub(super) trait Num: Copy {
    /// `Some` for an integer (`as_int`, sfixed64; a `u64` above
    /// `i64::MAX` becomes 0, as in the transform), `None` for a double.
    fn as_int(self) -> Option<i64>;
    /// The value as a double (histogram sums, minimums and maximums).
    fn as_f64(self) -> f64;
}

impl Num for f64 {
    fn as_int(self) -> Option<i64> {
        None
    }
    fn as_f64(self) -> f64 {
        self
    }
}

impl Num for i64 {
    fn as_int(self) -> Option<i64> {
        Some(self)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Num for u64 {
    fn as_int(self) -> Option<i64> {
        Some(i64::try_from(self).unwrap_or_default())
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

/// OTLP's `AggregationTemporality`: the transform maps anything but delta
/// (low-memory included, which never reaches collected data) to
/// cumulative.
pub(super) fn temporality(t: Temporality) -> u64 {
    match t {
        Temporality::Delta => 1,
        _ => 2,
    }
}

/// A oneof number: `double_field` for a double, field 6 (sfixed64) for an
/// integer in both `NumberDataPoint` and `Exemplar`; always written.
const NUM_LEN: usize = 1 + 8;

fn put_num<T: Num>(out: &mut Vec<u8>, double_field: u32, v: T) {
    match v.as_int() {
        Some(i) => {
            put_key(out, 6, I64);
            out.extend_from_slice(&i.to_le_bytes());
        }
        None => {
            put_key(out, double_field, I64);
            out.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
}

/// A proto3 `optional double`: written when present, whatever its value.
fn opt_f64_len(field: u32, v: Option<f64>) -> usize {
    v.map_or(0, |_| key_len(field) + 8)
}

fn put_opt_f64(out: &mut Vec<u8>, field: u32, v: Option<f64>) {
    if let Some(v) = v {
        put_key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A plain proto3 `double`: omitted when it equals 0 (so -0.0 too).
fn f64_len(field: u32, v: f64) -> usize {
    if v == 0.0 { 0 } else { key_len(field) + 8 }
}

fn put_f64(out: &mut Vec<u8>, field: u32, v: f64) {
    if v != 0.0 {
        put_key(out, field, I64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

// ---- Exemplars --------------------------------------------------------------

fn exemplar_len<T: Num>(e: &Exemplar<T>) -> usize {
    fixed64_field(2, nanos(e.time()))
        + NUM_LEN
        + len_field(4, 8)
        + len_field(5, 16)
        + attrs_len(7, e.filtered_attributes())
}

fn exemplars_len<'a, T: Num + 'a>(field: u32, it: impl Iterator<Item = &'a Exemplar<T>>) -> usize {
    it.map(|e| len_field(field, exemplar_len(e))).sum()
}

/// Fields in prost's order: by each field's lowest tag, so the value
/// (oneof 3 | 6) comes before the span id (4) whichever it is.
fn put_exemplars<'a, T: Num + 'a>(
    out: &mut Vec<u8>,
    field: u32,
    it: impl Iterator<Item = &'a Exemplar<T>>,
) {
    for e in it {
        put_header(out, field, exemplar_len(e));
        put_fixed64(out, 2, nanos(e.time()));
        put_num(out, 3, e.value);
        put_header(out, 4, 8);
        out.extend_from_slice(e.span_id());
        put_header(out, 5, 16);
        out.extend_from_slice(e.trace_id());
        put_attrs(out, 7, e.filtered_attributes());
    }
}

// ---- The encoder -------------------------------------------------------------

/// Reusable scratch space (the recorded lengths): one encoder per exporting
/// thread keeps every collection after the first allocation-free.
#[derive(Debug, Default)]
pub struct MetricEncoder {
    /// Message body lengths, in the order their headers are written.
    lens: Vec<usize>,
    /// The next length to read back while writing.
    cursor: usize,
}

/// Times shared by every data point of an aggregation.
#[derive(Clone, Copy)]
struct Times {
    start: u64,
    time: u64,
}

impl MetricEncoder {
    /// Appends one `ExportMetricsServiceRequest` holding `metrics` to `out`,
    /// byte for byte what opentelemetry-otlp 0.33 sends for the same
    /// collection: scopes, metrics and data points in the SDK's order.
    pub fn encode(&mut self, out: &mut Vec<u8>, metrics: &ResourceMetrics) {
        self.lens.clear();
        self.cursor = 0;
        let resource = metrics.resource();
        let mut body = len_field(1, resource_len(resource))
            + str_field(3, resource.schema_url().unwrap_or_default().len());
        for scope in metrics.scope_metrics() {
            body += len_field(2, self.measure_scope(scope));
        }
        out.reserve(len_field(1, body));

        put_header(out, 1, body);
        put_resource(out, resource);
        for scope in metrics.scope_metrics() {
            self.put_scope(out, scope);
        }
        put_str(out, 3, resource.schema_url().unwrap_or_default().as_bytes());
    }

    /// Reserves a slot for a length measured after its children.
    fn slot(&mut self) -> usize {
        self.lens.push(0);
        self.lens.len() - 1
    }

    fn set(&mut self, slot: usize, len: usize) -> usize {
        if let Some(l) = self.lens.get_mut(slot) {
            *l = len;
        }
        len
    }

    /// The next recorded length (the passes walk the same data in the same
    /// order, so it is the one measured for this message).
    fn next(&mut self) -> usize {
        let len = self.lens.get(self.cursor).copied().unwrap_or_default();
        self.cursor += 1;
        len
    }

    // ---- Scope, metric ----

    fn measure_scope(&mut self, sm: &ScopeMetrics) -> usize {
        let slot = self.slot();
        let scope = sm.scope();
        let mut len = len_field(1, scope_len(scope))
            + str_field(3, scope.schema_url().unwrap_or_default().len());
        for metric in sm.metrics() {
            len += len_field(2, self.measure_metric(metric));
        }
        self.set(slot, len)
    }

    fn put_scope(&mut self, out: &mut Vec<u8>, sm: &ScopeMetrics) {
        let len = self.next();
        let scope = sm.scope();
        put_header(out, 2, len);
        put_header(out, 1, scope_len(scope));
        put_scope_body(out, scope.name(), scope);
        for metric in sm.metrics() {
            self.put_metric(out, metric);
        }
        put_str(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
    }

    fn measure_metric(&mut self, metric: &Metric) -> usize {
        let slot = self.slot();
        let head = str_field(1, metric.name().len())
            + str_field(2, metric.description().len())
            + str_field(3, metric.unit().len());
        let (field, data) = match metric.data() {
            AggregatedMetrics::F64(d) => self.measure_data(d),
            AggregatedMetrics::U64(d) => self.measure_data(d),
            AggregatedMetrics::I64(d) => self.measure_data(d),
        };
        self.set(slot, head + len_field(field, data))
    }

    fn put_metric(&mut self, out: &mut Vec<u8>, metric: &Metric) {
        let len = self.next();
        put_header(out, 2, len);
        put_str(out, 1, metric.name().as_bytes());
        put_str(out, 2, metric.description().as_bytes());
        put_str(out, 3, metric.unit().as_bytes());
        match metric.data() {
            AggregatedMetrics::F64(d) => self.put_data(out, d),
            AggregatedMetrics::U64(d) => self.put_data(out, d),
            AggregatedMetrics::I64(d) => self.put_data(out, d),
        }
    }

    // ---- Aggregations ----

    /// The `Metric.data` field number and the aggregation's body length.
    fn measure_data<T: Num>(&mut self, data: &MetricData<T>) -> (u32, usize) {
        let slot = self.slot();
        let (field, len) = match data {
            MetricData::Gauge(g) => (5, self.measure_gauge(g)),
            MetricData::Sum(s) => (7, self.measure_sum(s)),
            MetricData::Histogram(h) => (9, self.measure_histogram(h)),
            MetricData::ExponentialHistogram(h) => (10, self.measure_exp_histogram(h)),
        };
        (field, self.set(slot, len))
    }

    fn put_data<T: Num>(&mut self, out: &mut Vec<u8>, data: &MetricData<T>) {
        let len = self.next();
        match data {
            MetricData::Gauge(g) => {
                put_header(out, 5, len);
                let t = Times {
                    start: g.start_time().map_or(0, nanos),
                    time: nanos(g.time()),
                };
                for dp in g.data_points() {
                    self.put_number_point(out, t, dp.value(), dp.attributes(), dp.exemplars());
                }
            }
            MetricData::Sum(s) => {
                put_header(out, 7, len);
                let t = Times {
                    start: nanos(s.start_time()),
                    time: nanos(s.time()),
                };
                for dp in s.data_points() {
                    self.put_number_point(out, t, dp.value(), dp.attributes(), dp.exemplars());
                }
                put_uint(out, 2, temporality(s.temporality()));
                put_uint(out, 3, u64::from(s.is_monotonic()));
            }
            MetricData::Histogram(h) => {
                put_header(out, 9, len);
                let t = Times {
                    start: nanos(h.start_time()),
                    time: nanos(h.time()),
                };
                for dp in h.data_points() {
                    self.put_histogram_point(out, t, dp);
                }
                put_uint(out, 2, temporality(h.temporality()));
            }
            MetricData::ExponentialHistogram(h) => {
                put_header(out, 10, len);
                let t = Times {
                    start: nanos(h.start_time()),
                    time: nanos(h.time()),
                };
                for dp in h.data_points() {
                    self.put_exp_point(out, t, dp);
                }
                put_uint(out, 2, temporality(h.temporality()));
            }
        }
    }

    fn measure_gauge<T: Num>(&mut self, g: &Gauge<T>) -> usize {
        let t = Times {
            start: g.start_time().map_or(0, nanos),
            time: nanos(g.time()),
        };
        g.data_points()
            .map(|dp| {
                let len = number_point_len(t, dp.attributes(), dp.exemplars());
                self.lens.push(len);
                len_field(1, len)
            })
            .sum()
    }

    fn measure_sum<T: Num>(&mut self, s: &Sum<T>) -> usize {
        let t = Times {
            start: nanos(s.start_time()),
            time: nanos(s.time()),
        };
        let points: usize = s
            .data_points()
            .map(|dp| {
                let len = number_point_len(t, dp.attributes(), dp.exemplars());
                self.lens.push(len);
                len_field(1, len)
            })
            .sum();
        points
            + uint_field(2, temporality(s.temporality()))
            + uint_field(3, u64::from(s.is_monotonic()))
    }

    fn measure_histogram<T: Num>(&mut self, h: &Histogram<T>) -> usize {
        let t = Times {
            start: nanos(h.start_time()),
            time: nanos(h.time()),
        };
        let points: usize = h
            .data_points()
            .map(|dp| {
                let len = histogram_point_len(t, dp);
                self.lens.push(len);
                len_field(1, len)
            })
            .sum();
        points + uint_field(2, temporality(h.temporality()))
    }

    fn measure_exp_histogram<T: Num>(&mut self, h: &ExponentialHistogram<T>) -> usize {
        let t = Times {
            start: nanos(h.start_time()),
            time: nanos(h.time()),
        };
        let points: usize = h
            .data_points()
            .map(|dp| {
                let len = exp_point_len(t, dp);
                self.lens.push(len);
                len_field(1, len)
            })
            .sum();
        points + uint_field(2, temporality(h.temporality()))
    }

    // ---- Data points ----

    /// A `NumberDataPoint` (gauges and sums) as field 1 of its aggregation.
    fn put_number_point<'a, T: Num + 'a>(
        &mut self,
        out: &mut Vec<u8>,
        t: Times,
        value: T,
        attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>,
        exemplars: impl Iterator<Item = &'a Exemplar<T>>,
    ) {
        let len = self.next();
        put_header(out, 1, len);
        put_fixed64(out, 2, t.start);
        put_fixed64(out, 3, t.time);
        put_num(out, 4, value);
        put_exemplars(out, 5, exemplars);
        put_attrs(out, 7, attributes);
    }

    fn put_histogram_point<T: Num>(
        &mut self,
        out: &mut Vec<u8>,
        t: Times,
        dp: &HistogramDataPoint<T>,
    ) {
        let len = self.next();
        put_header(out, 1, len);
        put_fixed64(out, 2, t.start);
        put_fixed64(out, 3, t.time);
        put_fixed64(out, 4, dp.count());
        put_opt_f64(out, 5, Some(dp.sum().as_f64()));
        let buckets = dp.bucket_counts().count();
        if buckets > 0 {
            put_header(out, 6, buckets * 8);
            for c in dp.bucket_counts() {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        let bounds = dp.bounds().count();
        if bounds > 0 {
            put_header(out, 7, bounds * 8);
            for b in dp.bounds() {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
        put_exemplars(out, 8, dp.exemplars());
        put_attrs(out, 9, dp.attributes());
        put_opt_f64(out, 11, dp.min().map(Num::as_f64));
        put_opt_f64(out, 12, dp.max().map(Num::as_f64));
    }

    fn put_exp_point<T: Num>(
        &mut self,
        out: &mut Vec<u8>,
        t: Times,
        dp: &ExponentialHistogramDataPoint<T>,
    ) {
        let len = self.next();
        put_header(out, 1, len);
        put_attrs(out, 1, dp.attributes());
        put_fixed64(out, 2, t.start);
        put_fixed64(out, 3, t.time);
        put_fixed64(out, 4, dp.count() as u64);
        put_opt_f64(out, 5, Some(dp.sum().as_f64()));
        put_uint(out, 6, zigzag(i32::from(dp.scale())));
        put_fixed64(out, 7, dp.zero_count());
        put_buckets(out, 8, dp.positive_bucket());
        put_buckets(out, 9, dp.negative_bucket());
        put_exemplars(out, 11, dp.exemplars());
        put_opt_f64(out, 12, dp.min().map(Num::as_f64));
        put_opt_f64(out, 13, dp.max().map(Num::as_f64));
        put_f64(out, 14, dp.zero_threshold());
    }
}

fn number_point_len<'a, T: Num + 'a>(
    t: Times,
    attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    exemplars: impl Iterator<Item = &'a Exemplar<T>>,
) -> usize {
    fixed64_field(2, t.start)
        + fixed64_field(3, t.time)
        + NUM_LEN
        + exemplars_len(5, exemplars)
        + attrs_len(7, attributes)
}

fn histogram_point_len<T: Num>(t: Times, dp: &HistogramDataPoint<T>) -> usize {
    let packed = |field: u32, n: usize| if n == 0 { 0 } else { len_field(field, n * 8) };
    fixed64_field(2, t.start)
        + fixed64_field(3, t.time)
        + fixed64_field(4, dp.count())
        + opt_f64_len(5, Some(dp.sum().as_f64()))
        + packed(6, dp.bucket_counts().count())
        + packed(7, dp.bounds().count())
        + exemplars_len(8, dp.exemplars())
        + attrs_len(9, dp.attributes())
        + opt_f64_len(11, dp.min().map(Num::as_f64))
        + opt_f64_len(12, dp.max().map(Num::as_f64))
}

/// A `Buckets` body: sint32 offset, packed varint counts.
fn buckets_counts_len(b: &ExponentialBucket) -> usize {
    b.counts().map(varint_len).sum()
}

fn buckets_len(b: &ExponentialBucket) -> usize {
    let counts = buckets_counts_len(b);
    uint_field(1, zigzag(b.offset())) + if counts == 0 { 0 } else { len_field(2, counts) }
}

/// Always written: the transform sets both buckets, empty or not.
fn put_buckets(out: &mut Vec<u8>, field: u32, b: &ExponentialBucket) {
    put_header(out, field, buckets_len(b));
    put_uint(out, 1, zigzag(b.offset()));
    let counts = buckets_counts_len(b);
    if counts > 0 {
        put_header(out, 2, counts);
        for c in b.counts() {
            put_varint(out, c);
        }
    }
}

fn exp_point_len<T: Num>(t: Times, dp: &ExponentialHistogramDataPoint<T>) -> usize {
    attrs_len(1, dp.attributes())
        + fixed64_field(2, t.start)
        + fixed64_field(3, t.time)
        + fixed64_field(4, dp.count() as u64)
        + opt_f64_len(5, Some(dp.sum().as_f64()))
        + uint_field(6, zigzag(i32::from(dp.scale())))
        + fixed64_field(7, dp.zero_count())
        + len_field(8, buckets_len(dp.positive_bucket()))
        + len_field(9, buckets_len(dp.negative_bucket()))
        + exemplars_len(11, dp.exemplars())
        + opt_f64_len(12, dp.min().map(Num::as_f64))
        + opt_f64_len(13, dp.max().map(Num::as_f64))
        + f64_len(14, dp.zero_threshold())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_matches_sint32() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i32::MAX), u64::from(u32::MAX - 1));
        assert_eq!(zigzag(i32::MIN), u64::from(u32::MAX));
    }

    #[test]
    fn u64_above_i64_max_is_sent_as_zero_like_the_transform() {
        assert_eq!(u64::MAX.as_int(), Some(0));
        assert_eq!(7u64.as_int(), Some(7));
        assert_eq!(1.5f64.as_int(), None);
    }
}
