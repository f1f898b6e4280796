//! otlp-concurrency facade (being written).
