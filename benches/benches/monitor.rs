//! Benchmarks for otlp-monitor (being written).
fn main() {}
