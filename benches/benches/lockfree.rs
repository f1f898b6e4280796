//! Benchmarks for otlp-lockfree (being written).
fn main() {}
