//! Benchmarks for otlp-numa (being written).
fn main() {}
