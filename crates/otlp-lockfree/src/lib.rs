//! otlp-lockfree (being written).
