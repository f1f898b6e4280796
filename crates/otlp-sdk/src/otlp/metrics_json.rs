//! `ResourceMetrics` → OTLP/JSON `ExportMetricsServiceRequest`
//! (`http/json`), written straight from the SDK's collection into a buffer
//! with the JSON helpers of [`super::json`] (whose module doc has the
//! encoding's rules).
//!
//! Field for field the message [`MetricEncoder`](super::MetricEncoder)
//! writes in protobuf: a field the protobuf bytes carry is here, one they
//! leave out is left out. So, as there: a number data point's value is
//! always written (`asInt` for integer instruments, a decimal string;
//! `asDouble` otherwise), a histogram's `sum` always, `min` and `max` when
//! recorded, an exponential histogram's `positive` and `negative` buckets
//! always, `isMonotonic` only when true, and an exemplar's ids always.
//! From proto3 JSON: `count`, `zeroCount`, `bucketCounts` and timestamps
//! are (arrays of) decimal strings, `scale` and `offset` signed JSON
//! numbers, `aggregationTemporality` an integer, and doubles JSON numbers
//! or `"NaN"`, `"Infinity"`, `"-Infinity"`.

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Exemplar, ExponentialBucket, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, MetricData, ResourceMetrics, ScopeMetrics,
};

use super::json::{
    Object, put_attrs, put_f64, put_hex, put_i64_string, put_resource, put_scope, put_u64,
    put_u64_string,
};
use super::metrics::{Num, temporality};
use super::proto::nanos;

/// A signed 32-bit field (`scale`, `offset`): a JSON number, left out at
/// zero.
fn int(o: &mut Object<'_>, name: &str, v: i32) {
    if v != 0 {
        let out = o.key(name);
        if v < 0 {
            out.push(b'-');
        }
        put_u64(out, u64::from(v.unsigned_abs()));
    }
}

/// A number data point's or exemplar's value, always written.
fn value<T: Num>(o: &mut Object<'_>, v: T) {
    match v.as_int() {
        Some(i) => put_i64_string(o.key("asInt"), i),
        None => put_f64(o.key("asDouble"), v.as_f64()),
    }
}

/// A proto3 `optional double`: written when present, whatever its value.
fn opt_f64(o: &mut Object<'_>, name: &str, v: Option<f64>) {
    if let Some(v) = v {
        put_f64(o.key(name), v);
    }
}

fn exemplars<'a, T: Num + 'a>(
    o: &mut Object<'_>,
    name: &str,
    it: impl IntoIterator<Item = &'a Exemplar<T>>,
) {
    o.list(name, it, |out, e| {
        let mut x = Object::open(out);
        x.u64_string("timeUnixNano", nanos(e.time()));
        value(&mut x, e.value);
        put_hex(x.key("spanId"), e.span_id());
        put_hex(x.key("traceId"), e.trace_id());
        put_attrs(&mut x, "filteredAttributes", e.filtered_attributes());
        x.close();
    });
}

/// Times shared by every data point of an aggregation.
#[derive(Clone, Copy)]
struct Times {
    start: u64,
    time: u64,
}

impl Times {
    fn put(self, o: &mut Object<'_>) {
        o.u64_string("startTimeUnixNano", self.start);
        o.u64_string("timeUnixNano", self.time);
    }
}

fn number_point<'a, T: Num + 'a>(
    out: &mut Vec<u8>,
    t: Times,
    v: T,
    attributes: impl Iterator<Item = &'a KeyValue>,
    exemplar_list: impl Iterator<Item = &'a Exemplar<T>>,
) {
    let mut o = Object::open(out);
    t.put(&mut o);
    value(&mut o, v);
    exemplars(&mut o, "exemplars", exemplar_list);
    put_attrs(&mut o, "attributes", attributes);
    o.close();
}

fn histogram_point<T: Num>(out: &mut Vec<u8>, t: Times, dp: &HistogramDataPoint<T>) {
    let mut o = Object::open(out);
    t.put(&mut o);
    o.u64_string("count", dp.count());
    put_f64(o.key("sum"), dp.sum().as_f64());
    o.list("bucketCounts", dp.bucket_counts(), put_u64_string);
    o.list("explicitBounds", dp.bounds(), put_f64);
    exemplars(&mut o, "exemplars", dp.exemplars());
    put_attrs(&mut o, "attributes", dp.attributes());
    opt_f64(&mut o, "min", dp.min().map(Num::as_f64));
    opt_f64(&mut o, "max", dp.max().map(Num::as_f64));
    o.close();
}

/// Always written: the protobuf encoder sets both buckets, empty or not.
fn buckets(o: &mut Object<'_>, name: &str, b: &ExponentialBucket) {
    let mut x = Object::open(o.key(name));
    int(&mut x, "offset", b.offset());
    x.list("bucketCounts", b.counts(), put_u64_string);
    x.close();
}

fn exp_point<T: Num>(out: &mut Vec<u8>, t: Times, dp: &ExponentialHistogramDataPoint<T>) {
    let mut o = Object::open(out);
    put_attrs(&mut o, "attributes", dp.attributes());
    t.put(&mut o);
    o.u64_string("count", dp.count() as u64);
    put_f64(o.key("sum"), dp.sum().as_f64());
    int(&mut o, "scale", i32::from(dp.scale()));
    o.u64_string("zeroCount", dp.zero_count());
    buckets(&mut o, "positive", dp.positive_bucket());
    buckets(&mut o, "negative", dp.negative_bucket());
    exemplars(&mut o, "exemplars", dp.exemplars());
    opt_f64(&mut o, "min", dp.min().map(Num::as_f64));
    opt_f64(&mut o, "max", dp.max().map(Num::as_f64));
    // A plain double: left out when it equals 0, -0.0 included.
    if dp.zero_threshold() != 0.0 {
        put_f64(o.key("zeroThreshold"), dp.zero_threshold());
    }
    o.close();
}

/// `"gauge":{...}`, `"sum":{...}`, `"histogram":{...}` or
/// `"exponentialHistogram":{...}`: always present, as in protobuf, even
/// with no data points.
fn data<T: Num>(m: &mut Object<'_>, data: &MetricData<T>) {
    match data {
        MetricData::Gauge(g) => {
            let t = Times {
                start: g.start_time().map_or(0, nanos),
                time: nanos(g.time()),
            };
            let mut o = Object::open(m.key("gauge"));
            o.list("dataPoints", g.data_points(), |out, dp| {
                number_point(out, t, dp.value(), dp.attributes(), dp.exemplars());
            });
            o.close();
        }
        MetricData::Sum(s) => {
            let t = Times {
                start: nanos(s.start_time()),
                time: nanos(s.time()),
            };
            let mut o = Object::open(m.key("sum"));
            o.list("dataPoints", s.data_points(), |out, dp| {
                number_point(out, t, dp.value(), dp.attributes(), dp.exemplars());
            });
            o.uint("aggregationTemporality", temporality(s.temporality()));
            if s.is_monotonic() {
                o.key("isMonotonic").extend_from_slice(b"true");
            }
            o.close();
        }
        MetricData::Histogram(h) => {
            let t = Times {
                start: nanos(h.start_time()),
                time: nanos(h.time()),
            };
            let mut o = Object::open(m.key("histogram"));
            o.list("dataPoints", h.data_points(), |out, dp| {
                histogram_point(out, t, dp);
            });
            o.uint("aggregationTemporality", temporality(h.temporality()));
            o.close();
        }
        MetricData::ExponentialHistogram(h) => {
            let t = Times {
                start: nanos(h.start_time()),
                time: nanos(h.time()),
            };
            let mut o = Object::open(m.key("exponentialHistogram"));
            o.list("dataPoints", h.data_points(), |out, dp| {
                exp_point(out, t, dp);
            });
            o.uint("aggregationTemporality", temporality(h.temporality()));
            o.close();
        }
    }
}

fn metric(out: &mut Vec<u8>, metric: &Metric) {
    let mut o = Object::open(out);
    o.str("name", metric.name());
    o.str("description", metric.description());
    o.str("unit", metric.unit());
    match metric.data() {
        AggregatedMetrics::F64(d) => data(&mut o, d),
        AggregatedMetrics::U64(d) => data(&mut o, d),
        AggregatedMetrics::I64(d) => data(&mut o, d),
    }
    o.close();
}

fn scope_metrics(out: &mut Vec<u8>, sm: &ScopeMetrics) {
    let scope = sm.scope();
    let mut o = Object::open(out);
    put_scope(&mut o, scope.name(), scope);
    o.list("metrics", sm.metrics(), metric);
    o.str("schemaUrl", scope.schema_url().unwrap_or_default());
    o.close();
}

/// Writes `ExportMetricsServiceRequest`s as OTLP/JSON, for
/// [`Protocol::HttpJson`](super::Protocol::HttpJson).
///
/// Holds no state (every collection is written in one pass); it is a type
/// so that the metric exporter pools it beside
/// [`MetricEncoder`](super::MetricEncoder), as the span and log exporters
/// pool their encoders.
#[derive(Debug, Default)]
pub struct MetricJsonEncoder;

impl MetricJsonEncoder {
    /// Appends one OTLP/JSON `ExportMetricsServiceRequest` holding
    /// `metrics` to `out`: the same message, scopes, metrics and data
    /// points in the same order, as [`MetricEncoder`](super::MetricEncoder)
    /// writes in protobuf.
    pub fn encode(&mut self, out: &mut Vec<u8>, metrics: &ResourceMetrics) {
        let resource = metrics.resource();
        out.extend_from_slice(b"{\"resourceMetrics\":[");
        let mut rm = Object::open(out);
        put_resource(&mut rm, resource);
        rm.list("scopeMetrics", metrics.scope_metrics(), scope_metrics);
        rm.str("schemaUrl", resource.schema_url().unwrap_or_default());
        rm.close();
        out.extend_from_slice(b"]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Object<'_>)) -> String {
        let mut out = Vec::new();
        let mut o = Object::open(&mut out);
        f(&mut o);
        o.close();
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn signed_32_bit_fields_are_json_numbers_left_out_at_zero() {
        assert_eq!(text(|o| int(o, "scale", 0)), "{}");
        assert_eq!(text(|o| int(o, "scale", -3)), r#"{"scale":-3}"#);
        assert_eq!(text(|o| int(o, "offset", 20)), r#"{"offset":20}"#);
        assert_eq!(
            text(|o| int(o, "offset", i32::MIN)),
            r#"{"offset":-2147483648}"#
        );
    }

    #[test]
    fn values_are_as_int_strings_or_as_double_numbers_always_written() {
        assert_eq!(text(|o| value(o, 0i64)), r#"{"asInt":"0"}"#);
        assert_eq!(text(|o| value(o, -5i64)), r#"{"asInt":"-5"}"#);
        assert_eq!(text(|o| value(o, u64::MAX)), r#"{"asInt":"0"}"#);
        assert_eq!(text(|o| value(o, 0.0f64)), r#"{"asDouble":0.0}"#);
        assert_eq!(text(|o| value(o, -2.5f64)), r#"{"asDouble":-2.5}"#);
        // Non-finite doubles (the SDK drops them before they reach a
        // collection, but the encoder writes whatever it is given).
        assert_eq!(text(|o| value(o, f64::NAN)), r#"{"asDouble":"NaN"}"#);
        assert_eq!(
            text(|o| value(o, f64::INFINITY)),
            r#"{"asDouble":"Infinity"}"#
        );
        assert_eq!(
            text(|o| opt_f64(o, "min", Some(f64::NEG_INFINITY))),
            r#"{"min":"-Infinity"}"#
        );
        assert_eq!(text(|o| opt_f64(o, "min", None)), "{}");
    }
}
