//! otlp-async (being written).
