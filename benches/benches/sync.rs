//! Benchmarks for otlp-sync (being written).
fn main() {}
