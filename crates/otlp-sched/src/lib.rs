//! otlp-sched (being written).
