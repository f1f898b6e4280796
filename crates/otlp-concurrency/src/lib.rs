//! The concurrency layer of an OpenTelemetry (OTLP) telemetry pipeline, in
//! one dependency.
//!
//! This facade re-exports the otlp-concurrency crates as modules, each behind
//! a cargo feature of the same short name. Depend on a single crate instead
//! when you need only one part: `otlp-lockfree` alone pulls in no tokio, no
//! parking_lot and no C library.
//!
//! | module | crate | feature | default |
//! |---|---|---|---|
//! | [`lockfree`] | `otlp-lockfree` | `lockfree` | yes |
//! | [`sync`] | `otlp-sync` | `sync` | yes |
//! | [`monitor`] | `otlp-monitor` | `monitor` | yes |
//! | [`numa`] | `otlp-numa` | `numa` | yes (sysfs backend; `hwloc` adds the hwloc backend) |
//! | [`sched`] | `otlp-sched` | `sched` | yes |
//! | [`async_rt`] | `otlp-async` | `async` | yes |
//!
//! Features also switch on the integrations between crates: with `numa` and
//! `sched` both on, the scheduler can pin its workers to a placement plan;
//! with `monitor` on, the scheduler and the async task manager record into a
//! `ConcurrencyMonitor`.
//!
//! The end-to-end example, `cargo run --release --example pipeline`, wires
//! every crate into an OTLP span pipeline.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "lockfree")]
#[doc(inline)]
pub use otlp_lockfree as lockfree;

#[cfg(feature = "sync")]
#[doc(inline)]
pub use otlp_sync as sync;

#[cfg(feature = "monitor")]
#[doc(inline)]
pub use otlp_monitor as monitor;

#[cfg(feature = "numa")]
#[doc(inline)]
pub use otlp_numa as numa;

#[cfg(feature = "sched")]
#[doc(inline)]
pub use otlp_sched as sched;

/// The async layer (`otlp-async`): named `async_rt` because `async` is a
/// keyword.
#[cfg(feature = "async")]
#[doc(inline)]
pub use otlp_async as async_rt;
