//! SpanData and log records → OTLP protobuf: our direct encoders
//! (`otlp_sdk::otlp::TraceEncoder`, `LogEncoder`) beside what
//! opentelemetry-otlp 0.33 does in every export, on the same batches.
//!
//! * `otlp_encode/{64,512}_spans/opentelemetry-otlp`:
//!   `group_spans_by_resource_and_scope` (opentelemetry-proto's transform
//!   into prost messages) then `encode_to_vec`. The transform consumes its
//!   batch; the copy it is handed is made outside the timed loop
//!   (`iter_batched`), so the exporter's own per-attempt clone of the batch
//!   is not charged to it.
//! * `otlp_encode/{64,512}_spans/ours`: `TraceEncoder::encode` from
//!   `&[SpanData]` into a reused buffer.
//!
//! * `otlp_encode_logs/{64,512}_records/opentelemetry-otlp`:
//!   `group_logs_by_resource_and_scope` then `encode_to_vec`; it borrows
//!   the `LogBatch`, so nothing is set up per iteration.
//! * `otlp_encode_logs/{64,512}_records/ours`: `LogEncoder::encode` from
//!   the same `LogBatch` into a reused buffer.
//!
//! * `otlp_encode_json/{64,512}_spans`, `otlp_encode_logs_json/{64,512}_records`:
//!   OTLP/JSON. The peer is opentelemetry-otlp's `http-json` path (the
//!   same transform, then `serde_json::to_vec` through opentelemetry-proto's
//!   serde support); ours is `TraceJsonEncoder` / `LogJsonEncoder`, written
//!   straight from the SDK's data into a reused buffer.
//! * `otlp_encode_metrics/{64,512}_points/opentelemetry-otlp`:
//!   `ExportMetricsServiceRequest::from(&ResourceMetrics)` (the transform
//!   opentelemetry-otlp's metric exporter runs on every export) then
//!   `encode_to_vec`.
//! * `otlp_encode_metrics/{64,512}_points/ours`: `MetricEncoder::encode`
//!   from the same collection into a reused buffer.
//!
//! The wire issue's rule: ours backs `otlp_sdk::otlp` only while it takes
//! ≤ 0.5× the time of opentelemetry-otlp's path.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::LogBatch;
use otlp_benches::OURS;
use otlp_benches::otlp_encode::{pipeline_batch, service_logs, service_metrics};
use otlp_sdk::otlp::{LogEncoder, LogJsonEncoder, MetricEncoder, TraceEncoder, TraceJsonEncoder};
use prost::Message;

fn encode(c: &mut Criterion) {
    let resource = Resource::builder_empty()
        .with_service_name("otlp-pipeline")
        .build();
    let attributes = ResourceAttributesWithSchema::from(&resource);
    let mut group = c.benchmark_group("otlp_encode");
    for n in [64usize, 512] {
        let batch = pipeline_batch(n);
        let scenario = format!("{n}_spans");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(&scenario, "opentelemetry-otlp"), |b| {
            b.iter_batched(
                || batch.clone(),
                |spans| {
                    let resource_spans = group_spans_by_resource_and_scope(spans, &attributes);
                    black_box(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
                },
                BatchSize::SmallInput,
            )
        });
        let mut encoder = TraceEncoder::default();
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(&mut out, &resource, black_box(&batch));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn encode_logs(c: &mut Criterion) {
    let resource = Resource::builder_empty()
        .with_service_name("otlp-pipeline")
        .build();
    let attributes = ResourceAttributesWithSchema::from(&resource);
    let mut group = c.benchmark_group("otlp_encode_logs");
    for n in [64usize, 512] {
        let (records, scope) = service_logs(n);
        let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
        let batch = LogBatch::new(&data);
        let mut encoder = LogEncoder::default();
        let mut out = Vec::new();
        encoder.encode(&mut out, &resource, &batch);
        // One scope, so the transform's scope order cannot differ.
        assert_eq!(
            out,
            ExportLogsServiceRequest {
                resource_logs: group_logs_by_resource_and_scope(&batch, &attributes)
            }
            .encode_to_vec(),
            "both paths write the same bytes"
        );
        let scenario = format!("{n}_records");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(&scenario, "opentelemetry-otlp"), |b| {
            b.iter(|| {
                let resource_logs =
                    group_logs_by_resource_and_scope(black_box(&batch), &attributes);
                black_box(ExportLogsServiceRequest { resource_logs }.encode_to_vec())
            })
        });
        group.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(&mut out, &resource, black_box(&batch));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// OTLP/JSON: opentelemetry-otlp's `http-json` path (its transform into
/// opentelemetry-proto's messages, then serde_json) beside our JSON
/// encoders, which write straight from the SDK's data.
fn encode_json(c: &mut Criterion) {
    let resource = Resource::builder_empty()
        .with_service_name("otlp-pipeline")
        .build();
    let attributes = ResourceAttributesWithSchema::from(&resource);
    let mut group = c.benchmark_group("otlp_encode_json");
    for n in [64usize, 512] {
        let batch = pipeline_batch(n);
        let scenario = format!("{n}_spans");
        let mut encoder = TraceJsonEncoder::default();
        let mut out = Vec::new();
        encoder.encode(&mut out, &resource, &batch);
        let resource_spans = group_spans_by_resource_and_scope(batch.clone(), &attributes);
        assert_eq!(
            serde_json::from_slice::<ExportTraceServiceRequest>(&out).expect("valid OTLP/JSON"),
            ExportTraceServiceRequest { resource_spans },
            "both paths write the same message"
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(&scenario, "opentelemetry-otlp"), |b| {
            b.iter_batched(
                || batch.clone(),
                |spans| {
                    let resource_spans = group_spans_by_resource_and_scope(spans, &attributes);
                    black_box(
                        serde_json::to_vec(&ExportTraceServiceRequest { resource_spans })
                            .expect("serialises"),
                    )
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(&mut out, &resource, black_box(&batch));
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("otlp_encode_logs_json");
    for n in [64usize, 512] {
        let (records, scope) = service_logs(n);
        let data: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
        let batch = LogBatch::new(&data);
        let mut encoder = LogJsonEncoder::default();
        let mut out = Vec::new();
        let scenario = format!("{n}_records");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(&scenario, "opentelemetry-otlp"), |b| {
            b.iter(|| {
                let resource_logs =
                    group_logs_by_resource_and_scope(black_box(&batch), &attributes);
                black_box(
                    serde_json::to_vec(&ExportLogsServiceRequest { resource_logs })
                        .expect("serialises"),
                )
            })
        });
        group.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(&mut out, &resource, black_box(&batch));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn encode_metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_encode_metrics");
    for n in [64usize, 512] {
        let metrics = service_metrics(n);
        let mut encoder = MetricEncoder::default();
        let mut out = Vec::new();
        encoder.encode(&mut out, &metrics);
        assert_eq!(
            out,
            ExportMetricsServiceRequest::from(&metrics).encode_to_vec(),
            "both paths write the same bytes"
        );
        let scenario = format!("{n}_points");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(&scenario, "opentelemetry-otlp"), |b| {
            b.iter(|| {
                black_box(ExportMetricsServiceRequest::from(black_box(&metrics)).encode_to_vec())
            })
        });
        group.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(&mut out, black_box(&metrics));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, encode_logs, encode_json, encode_metrics);
criterion_main!(benches);
