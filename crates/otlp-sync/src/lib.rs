//! otlp-sync (being written).
