//! Criterion benchmarks for the otlp-concurrency workspace.
//!
//! Every bench group puts one of our types beside the peers a user would
//! otherwise pick, in the same run, so the ratios in `docs/benchmarks.md`
//! compare like with like. Benchmark ids follow `group/scenario/impl`, where
//! `impl` is `ours` or the peer's name; `cargo xtask bench` relies on that.
//!
//! Run them with `cargo xtask bench` (or `cargo bench -p otlp-benches`).
//! The peers written for the benches live in [`peers`], shared with the
//! `icount` target, which mirrors the single-thread scenarios as plain
//! loops for callgrind's instruction counts.

pub mod otlp_encode;

/// The benchmark id segment that marks our implementation in every group.
pub const OURS: &str = "ours";

pub mod peers;

use std::io::Write as _;
use std::path::PathBuf;

/// The environment variable that selects standalone extra measurements (ones
/// not tied to a criterion benchmark, such as CPU used while idle): a regex
/// over their `group/scenario/impl` ids, the same syntax as criterion's
/// FILTER. Unset, every extra runs, as a plain `cargo bench` expects.
/// `cargo xtask bench` sets it to `$^` (matches nothing) while it runs one
/// criterion benchmark per process, and to the user's filter in the one pass
/// per round that measures the extras.
pub const EXTRAS_ENV: &str = "OTLP_BENCH_EXTRAS";

/// Whether this process should measure the standalone extra `id`
/// (`group/scenario/impl`).
///
/// Under criterion's `--list` it prints `id: extra` for a selected extra and
/// returns `false`, so a listing shows the extras without measuring them.
pub fn extra_selected(id: &str) -> bool {
    let selected = match std::env::var(EXTRAS_ENV) {
        Err(_) => true,
        Ok(pattern) => match regex::Regex::new(&pattern) {
            Ok(re) => re.is_match(id),
            Err(err) => {
                eprintln!("{EXTRAS_ENV}: not a regex ({err}); measuring no extras");
                false
            }
        },
    };
    if std::env::args().any(|arg| arg == "--list") {
        if selected {
            println!("{id}: extra");
        }
        return false;
    }
    selected
}

/// Where criterion writes its results: `$CRITERION_HOME`, else the
/// workspace's `target/criterion`.
pub fn criterion_home() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
    }
}

/// Records a measurement that is not a time per iteration (CPU used while
/// idle, bytes, a rate measured outside criterion) so that `cargo xtask
/// bench` can put it in the same ratio table.
///
/// It lands in `<criterion home>/otlp-extra/<group>__<scenario>__<imp>.json`
/// as `{"group", "scenario", "impl", "value", "unit"}`. Lower is better for
/// every unit except rates (ending in `/s`) and shares of the work (`%`).
pub fn record_extra(group: &str, scenario: &str, imp: &str, value: f64, unit: &str) {
    let dir = criterion_home().join("otlp-extra");
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("record_extra: cannot create {}: {err}", dir.display());
        return;
    }
    let path = dir.join(format!("{group}__{scenario}__{imp}.json"));
    let json = format!(
        "{{\"group\":\"{group}\",\"scenario\":\"{scenario}\",\"impl\":\"{imp}\",\"value\":{value},\"unit\":\"{unit}\"}}\n"
    );
    match std::fs::File::create(&path) {
        Ok(mut file) => {
            if let Err(err) = file.write_all(json.as_bytes()) {
                eprintln!("record_extra: cannot write {}: {err}", path.display());
            }
        }
        Err(err) => eprintln!("record_extra: cannot create {}: {err}", path.display()),
    }
}

/// User plus system CPU time of the whole process so far, every thread,
/// ended ones included (`getrusage(RUSAGE_SELF)`); zero if the call fails.
pub fn process_cpu_time() -> std::time::Duration {
    // SAFETY: `usage` is zero-initialised (a valid `rusage`) and writable
    // for the duration of the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return std::time::Duration::ZERO;
        }
        usage
    };
    let time =
        |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The environment variable that sets the thread counts of the multi-thread
/// scenarios: a comma list such as `1,2,4,8,16`. Unset, they run at
/// [`DEFAULT_THREADS`] only, so a plain `cargo bench` keeps the ids the
/// published figures use. `cargo xtask bench --threads LIST` sets it.
pub const THREADS_ENV: &str = "OTLP_BENCH_THREADS";

/// The thread counts when [`THREADS_ENV`] is unset or not valid: the two
/// threads every `_2t` id was measured with.
pub const DEFAULT_THREADS: &[usize] = &[2];

/// Parses a [`THREADS_ENV`] value: comma-separated whole numbers ≥ 1,
/// spaces allowed, returned ascending without repeats (a repeat would give
/// criterion the same id twice).
pub fn parse_thread_counts(text: &str) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.parse::<usize>() {
            Ok(n) if n >= 1 => counts.push(n),
            _ => {
                return Err(format!(
                    "`{part}` is not a thread count (a whole number ≥ 1)"
                ));
            }
        }
    }
    counts.sort_unstable();
    counts.dedup();
    Ok(counts)
}

/// The thread counts every multi-thread scenario runs at, from
/// [`THREADS_ENV`]; a value that does not parse is reported once on stderr
/// and [`DEFAULT_THREADS`] used, so a typo costs a rerun, not a panic in the
/// middle of a bench run.
pub fn thread_counts() -> Vec<usize> {
    static COUNTS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    COUNTS
        .get_or_init(|| match std::env::var(THREADS_ENV) {
            Err(_) => DEFAULT_THREADS.to_vec(),
            Ok(text) => parse_thread_counts(&text).unwrap_or_else(|err| {
                eprintln!("{THREADS_ENV}={text:?}: {err}; running {DEFAULT_THREADS:?} threads");
                DEFAULT_THREADS.to_vec()
            }),
        })
        .clone()
}

/// [`thread_counts`] with 1 in front, for the scenarios that always had a
/// `_1t` row beside the `_2t` one: the single-thread row stays whatever the
/// list says, since it is the base a scaling series is read against.
pub fn thread_counts_from_one() -> Vec<usize> {
    let mut counts = thread_counts();
    if counts.first() != Some(&1) {
        counts.insert(0, 1);
    }
    counts
}

/// [`thread_counts`] without 1, for the scenarios whose single-thread row
/// already exists under its own `_1t` id (measured without the thread
/// harness); a second `_1t` would be the same id twice, which criterion
/// rejects.
pub fn thread_counts_above_one() -> Vec<usize> {
    thread_counts().into_iter().filter(|&n| n > 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_parse_sorted_without_repeats() {
        assert_eq!(parse_thread_counts("2"), Ok(vec![2]));
        assert_eq!(
            parse_thread_counts("16, 1,2,4,8,2"),
            Ok(vec![1, 2, 4, 8, 16])
        );
    }

    #[test]
    fn thread_counts_reject_zero_empty_and_words() {
        for bad in ["", "0", "1,,2", "two", "-1", "1;2"] {
            let err = parse_thread_counts(bad).expect_err(bad);
            assert!(err.contains("thread count"), "{bad}: {err}");
        }
    }
}
