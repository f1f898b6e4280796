//! `cargo xtask loom`: every `tests/loom_*.rs` model, release mode, `--cfg loom`.

use crate::cmd::{StepResult, cargo, run_step, summarize};
use crate::workspace::{self, CrateInfo};

/// Preemption bound when `LOOM_MAX_PREEMPTIONS` is not set.
const DEFAULT_PREEMPTIONS: &str = "3";

pub fn run(args: &[String]) -> Result<(), String> {
    let root = workspace::root();
    let all = workspace::crates(&root)?;
    let selected = workspace::select(&all, args)?;
    let preemptions =
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| DEFAULT_PREEMPTIONS.to_owned());
    let mut steps = Vec::new();
    for krate in selected.into_iter().filter(|c| !c.loom_tests.is_empty()) {
        steps.push(run_crate(&root, krate, &preemptions));
    }
    if steps.is_empty() {
        return Err("no tests/loom_*.rs models found in the selected crates".to_owned());
    }
    summarize(
        &format!("loom (LOOM_MAX_PREEMPTIONS={preemptions})"),
        &steps,
    )
}

/// The RUSTFLAGS a crate's loom build needs.
pub fn rustflags(krate: &CrateInfo) -> &'static str {
    if krate.uses_epoch {
        // crossbeam-epoch's own loom support is switched on by this cfg plus
        // its `loom` feature (enabled in the crate's cfg(loom) dependencies).
        "--cfg loom --cfg crossbeam_loom"
    } else {
        "--cfg loom"
    }
}

fn run_crate(root: &std::path::Path, krate: &CrateInfo, preemptions: &str) -> StepResult {
    // One target dir per flag set, so loom builds never invalidate normal ones
    // and crates that need crossbeam_loom do not rebuild the others' deps.
    let target = if krate.uses_epoch {
        "target/loom-crossbeam"
    } else {
        "target/loom"
    };
    let mut command = cargo();
    command
        .current_dir(root)
        .env("RUSTFLAGS", rustflags(krate))
        .env("LOOM_MAX_PREEMPTIONS", preemptions)
        .env("CARGO_TARGET_DIR", root.join(target))
        .args(["test", "--release", "-p", &krate.name]);
    for test in &krate.loom_tests {
        command.args(["--test", test]);
    }
    run_step(&format!("loom {}", krate.name), &mut command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn epoch_crates_get_the_crossbeam_cfg() {
        let mut krate = CrateInfo {
            name: "otlp-x".to_owned(),
            dir: PathBuf::new(),
            loom_tests: vec!["loom_x".to_owned()],
            has_stress: false,
            uses_epoch: false,
            has_unsafe: false,
            miri_flags: None,
        };
        assert_eq!(rustflags(&krate), "--cfg loom");
        krate.uses_epoch = true;
        assert_eq!(rustflags(&krate), "--cfg loom --cfg crossbeam_loom");
    }
}
