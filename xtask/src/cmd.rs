//! Running cargo and friends: logged, timed, with a clear error on failure.

use std::process::Command;
use std::time::{Duration, Instant};

/// A finished step: what ran, whether it passed, how long it took.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub ok: bool,
    pub elapsed: Duration,
}

/// Runs `command`, echoing it first, and reports success and wall time.
pub fn run_step(name: &str, command: &mut Command) -> StepResult {
    eprintln!("\n==> [{name}] {}", describe(command));
    let start = Instant::now();
    let ok = match command.status() {
        Ok(status) => status.success(),
        Err(err) => {
            eprintln!("xtask: cannot start {:?}: {err}", command.get_program());
            false
        }
    };
    let elapsed = start.elapsed();
    let verdict = if ok { "ok" } else { "FAILED" };
    eprintln!("<== [{name}] {verdict} in {:.1} s", elapsed.as_secs_f64());
    StepResult {
        name: name.to_owned(),
        ok,
        elapsed,
    }
}

/// Prints a summary table and turns any failure into an error.
pub fn summarize(title: &str, steps: &[StepResult]) -> Result<(), String> {
    eprintln!("\n{title} summary:");
    for step in steps {
        let verdict = if step.ok { "ok" } else { "FAILED" };
        eprintln!(
            "  {:<40} {:>7}  {:>8.1} s",
            step.name,
            verdict,
            step.elapsed.as_secs_f64()
        );
    }
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{title}: failed: {}", failed.join(", ")))
    }
}

/// Returns the cargo binary cargo itself was started with, so `+nightly`
/// proxies and alternate cargos keep working.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// `cargo +nightly`, through rustup's proxy (the `CARGO` of a stable run
/// points at the stable binary, which does not understand `+nightly`).
pub fn cargo_nightly() -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly");
    // The pinned stable toolchain's variables must not leak into nightly runs.
    command.env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC");
    command
}

fn describe(command: &Command) -> String {
    let envs: Vec<String> = command
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
        .collect();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut text = envs.join(" ");
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(&command.get_program().to_string_lossy());
    for arg in args {
        text.push(' ');
        text.push_str(&arg);
    }
    text
}

/// Makes sure a rustup component is installed on the nightly toolchain.
pub fn ensure_nightly_component(component: &str) -> Result<(), String> {
    let output = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .map_err(|err| format!("cannot run rustup: {err}"))?;
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed
        .lines()
        .any(|line| line == component || line.starts_with(&format!("{component}-")))
    {
        return Ok(());
    }
    let step = run_step(
        &format!("install {component}"),
        Command::new("rustup").args(["component", "add", component, "--toolchain", "nightly"]),
    );
    if step.ok {
        Ok(())
    } else {
        Err(format!(
            "could not install the nightly `{component}` component"
        ))
    }
}
