//! `cargo xtask bench`: run the criterion benches, then write the report.

use std::path::Path;

use crate::cmd::{cargo, run_step};
use crate::report;
use crate::workspace;

/// Criterion settings for `--quick`: enough samples for a stable median,
/// short enough that every bench of every crate fits in a few minutes.
const QUICK: &[&str] = &[
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut no_run = false;
    let mut filter = None;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "--no-run" => no_run = true,
            flag if flag.starts_with('-') => return Err(format!("unknown bench flag `{flag}`")),
            text => filter = Some(text.to_owned()),
        }
    }
    let root = workspace::root();
    let home = root.join("target/criterion");
    let mut command = cargo();
    command
        .current_dir(&root)
        .env("CRITERION_HOME", &home)
        .args(["bench", "-p", "otlp-benches", "--benches"]);
    if no_run {
        command.arg("--no-run");
    } else {
        command.arg("--");
        if quick {
            command.args(QUICK);
        }
        if let Some(filter) = &filter {
            command.arg(filter);
        }
    }
    let step = run_step("bench", &mut command);
    if !step.ok {
        return Err("the benchmarks failed".to_owned());
    }
    if no_run {
        return Ok(());
    }
    let mode = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    write_report(&root, &home, mode)
}

/// `cargo xtask report`: rebuild the report from results already on disk.
pub fn report_only() -> Result<(), String> {
    let root = workspace::root();
    write_report(&root, &root.join("target/criterion"), "cargo xtask report")
}

fn write_report(root: &Path, home: &Path, command: &str) -> Result<(), String> {
    let results = report::collect(home)?;
    if results.is_empty() {
        return Err(format!("no criterion results under {}", home.display()));
    }
    let machine = report::Machine::detect();
    let md_path = root.join("docs/benchmarks.md");
    let previous = std::fs::read_to_string(&md_path).unwrap_or_default();
    let markdown = report::markdown(&results, &machine, command, &previous);
    let svg = report::svg(&results);
    std::fs::create_dir_all(root.join("docs")).map_err(|e| format!("docs/: {e}"))?;
    std::fs::write(&md_path, &markdown).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let svg_path = root.join("docs/benchmarks.svg");
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    print!("{}", report::table(&results));
    eprintln!(
        "\nwrote {} and {} ({} results)",
        md_path.display(),
        svg_path.display(),
        results.len()
    );
    Ok(())
}
