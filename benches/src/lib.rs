//! Criterion benchmarks for the otlp-concurrency workspace.
//!
//! Every bench group puts one of our types beside the peers a user would
//! otherwise pick, in the same run, so the ratios in `docs/benchmarks.md`
//! compare like with like. Benchmark ids follow `group/scenario/impl`, where
//! `impl` is `ours` or the peer's name; `cargo xtask bench` relies on that.
//!
//! Run them with `cargo xtask bench` (or `cargo bench -p otlp-benches`).

/// The benchmark id segment that marks our implementation in every group.
pub const OURS: &str = "ours";
