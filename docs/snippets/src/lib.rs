//! The Rust snippets of the repository's `README.md` and `docs/*.md`,
//! compiled and run by `cargo test -p otlp-docs --doc` (and so by
//! `cargo test --workspace`).
//!
//! Each guide is the documentation of one item below, compiled only for
//! doctests: rustdoc turns every ```` ```rust ```` block into a doctest
//! (`ignore` blocks are skipped, `no_run` ones are compiled only, and a
//! fence with no language counts as Rust). The crate is unpublished and its
//! dev-dependencies are what the guides tell a user to add (with the
//! features they name), so a snippet can use nothing that a new crate with
//! its guide's `Cargo.toml` lines lacks. Each crate's own `README.md` is a
//! doctest of that crate instead, so it travels in the crate's package.
//!
//! `cargo xtask` checks (a unit test of its `snippets` module) that every
//! guide is listed here and every crate README is included by its crate.

macro_rules! guides {
    ($($name:ident => $path:literal),* $(,)?) => {
        $(
            #[doc = concat!("The code blocks of `", $path, "`.")]
            #[cfg(doctest)]
            #[doc = include_str!(concat!("../../../", $path))]
            pub struct $name;
        )*
    };
}

guides! {
    Readme => "README.md",
    Agent => "docs/agent.md",
    Architecture => "docs/architecture.md",
    Async => "docs/async.md",
    Benchmarks => "docs/benchmarks.md",
    Correctness => "docs/correctness.md",
    LearningPath => "docs/learning-path.md",
    Lockfree => "docs/lockfree.md",
    Monitor => "docs/monitor.md",
    Numa => "docs/numa.md",
    Pipeline => "docs/pipeline.md",
    Sched => "docs/sched.md",
    Sdk => "docs/sdk.md",
    Sync => "docs/sync.md",
}
