//! Benchmarks for otlp-sched (being written).
fn main() {}
