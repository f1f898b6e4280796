//! otlp-numa (being written).
