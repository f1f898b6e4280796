//! otlp-monitor (being written).
