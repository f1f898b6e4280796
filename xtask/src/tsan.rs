//! `cargo xtask tsan`: each crate's `tests/stress.rs` under ThreadSanitizer.

use crate::cmd::{cargo_nightly, ensure_nightly_component, run_step, summarize};
use crate::workspace;

/// The host triple `-Zbuild-std` builds for; sanitizers need an explicit one.
const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn run(args: &[String]) -> Result<(), String> {
    ensure_nightly_component("rust-src")?;
    let root = workspace::root();
    let all = workspace::crates(&root)?;
    let selected: Vec<_> = workspace::select(&all, args)?
        .into_iter()
        .filter(|c| c.has_stress)
        .collect();
    if selected.is_empty() {
        return Err("no tests/stress.rs in the selected crates".to_owned());
    }
    let mut command = cargo_nightly();
    command
        .current_dir(&root)
        .env("RUSTFLAGS", "-Zsanitizer=thread")
        .env("RUSTDOCFLAGS", "-Zsanitizer=thread")
        // Any report fails the run; the stress tests shrink under TSan's
        // 5-15x slowdown.
        .env("TSAN_OPTIONS", "halt_on_error=1 second_deadlock_stack=1")
        .env("OTLP_STRESS_SMALL", "1")
        .env("CARGO_TARGET_DIR", root.join("target/tsan"))
        .args([
            "test",
            "-Zbuild-std",
            "--target",
            TARGET,
            "--test",
            "stress",
        ]);
    for krate in &selected {
        command.args(["-p", &krate.name]);
    }
    let names: Vec<&str> = selected.iter().map(|c| c.short()).collect();
    let step = run_step(&format!("tsan {}", names.join(",")), &mut command);
    summarize("tsan", &[step])
}
