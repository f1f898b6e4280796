//! SpanData → OTLP protobuf: our direct encoder
//! (`otlp_sdk::otlp::TraceEncoder`) beside what
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
//! The wire issue's rule: ours backs `otlp_sdk::otlp` only while it takes
//! ≤ 0.5× the time of opentelemetry-otlp's path.
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use otlp_benches::OURS;
use otlp_benches::otlp_encode::pipeline_batch;
use otlp_sdk::otlp::TraceEncoder;
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

criterion_group!(benches, encode);
criterion_main!(benches);
