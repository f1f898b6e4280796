//! Benchmarks for otlp-async (being written).
fn main() {}
