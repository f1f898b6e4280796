//! Running cargo and friends: logged, timed, with a clear error on failure.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A finished step: what ran, whether it passed, how long it took, and
/// where its output was kept, if it was.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub ok: bool,
    pub elapsed: Duration,
    pub log: Option<PathBuf>,
}

/// Lines of a failed step's log printed again after the summary, so the
/// cause is in the last screen of a CI log, not only far above it.
const FAILURE_TAIL_LINES: usize = 60;

/// Runs `command`, echoing it first, and reports success and wall time.
pub fn run_step(name: &str, command: &mut Command) -> StepResult {
    eprintln!("\n==> [{name}] {}", describe(command));
    let start = Instant::now();
    let ran = command.status().map(|status| status.success());
    finish_step(name, command, start, ran, None)
}

/// [`run_step`], with the command's output (stdout and stderr) also kept
/// in `log`, which the summary of a failure quotes.
pub fn run_step_logged(name: &str, command: &mut Command, log: &Path) -> StepResult {
    eprintln!(
        "\n==> [{name}] {} (output kept in {})",
        describe(command),
        log.display()
    );
    let start = Instant::now();
    let ran = tee(command, log);
    finish_step(name, command, start, ran, Some(log))
}

/// The step's verdict line and result; `ran` is how running `command`
/// (started at `start`) went.
fn finish_step(
    name: &str,
    command: &Command,
    start: Instant,
    ran: std::io::Result<bool>,
    log: Option<&Path>,
) -> StepResult {
    let elapsed = start.elapsed();
    let ok = ran.unwrap_or_else(|err| {
        eprintln!("xtask: cannot run {:?}: {err}", command.get_program());
        false
    });
    let verdict = if ok { "ok" } else { "FAILED" };
    eprintln!("<== [{name}] {verdict} in {:.1} s", elapsed.as_secs_f64());
    StepResult {
        name: name.to_owned(),
        ok,
        elapsed,
        log: log.map(Path::to_owned),
    }
}

/// Runs `command` with its stdout and stderr copied both to ours (stderr)
/// and to `log`; returns whether it succeeded.
fn tee(command: &mut Command, log: &Path) -> std::io::Result<bool> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = Arc::new(Mutex::new(File::create(log)?));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let copy = |mut from: Box<dyn Read + Send>| {
        let file = Arc::clone(&file);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = std::io::stderr().write_all(&buf[..n]);
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(&buf[..n]);
                }
            }
        })
    };
    let readers = [
        child.stdout.take().map(|o| copy(Box::new(o))),
        child.stderr.take().map(|e| copy(Box::new(e))),
    ];
    let status = child.wait()?;
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    Ok(status.success())
}

/// The last `lines` lines of `path`, or why it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
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
    for step in steps.iter().filter(|s| !s.ok) {
        if let Some(log) = &step.log {
            eprintln!(
                "\n==> the last {FAILURE_TAIL_LINES} lines of [{}] ({}):\n{}",
                step.name,
                log.display(),
                tail(log, FAILURE_TAIL_LINES)
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_step_keeps_both_streams_and_its_failure() {
        let log = std::env::temp_dir().join(format!("xtask-tee-{}.log", std::process::id()));
        let step = run_step_logged(
            "tee",
            Command::new("sh").args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]),
            &log,
        );
        assert!(!step.ok);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("to-stdout") && text.contains("to-stderr"),
            "{text}"
        );
        assert_eq!(tail(&log, 1).lines().count(), 1);
        assert!(summarize("t", &[step]).is_err());
        std::fs::remove_file(&log).unwrap();
    }
}
