//! An idle pool uses (almost) no CPU: after a burst, its threads together
//! use under 5% of one core over one second. Measured as CPU *time* from
//! `/proc/self/task/*/stat` (utime + stime), not as a speed.
#![cfg(all(not(loom), target_os = "linux"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otlp_sched::Builder;

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// Sum of utime + stime (ticks) of this process's threads whose name
/// starts with `prefix`, and how many there are.
fn cpu_ticks(prefix: &str) -> (u64, usize) {
    let mut ticks = 0;
    let mut threads = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = entry.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // Fields after the ")" that closes the command name: state is field
        // 3, utime 14 and stime 15 (1-based) of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        threads += 1;
    }
    (ticks, threads)
}

#[test]
#[cfg_attr(miri, ignore = "reads /proc and sleeps for a second")]
fn idle_pool_uses_no_cpu_after_a_burst() {
    let workers = 4;
    let pool = Builder::new()
        .workers(workers)
        .thread_name(|i| format!("idlechk-{i}"))
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let burst = 20_000;
    for _ in 0..burst {
        let done = done.clone();
        pool.spawn(move || {
            done.fetch_add(1, Ordering::Relaxed);
        })
        .ok()
        .unwrap();
    }
    while done.load(Ordering::Relaxed) < burst {
        std::thread::yield_now();
    }
    // Let the workers finish their short spin and go to sleep.
    std::thread::sleep(Duration::from_millis(100));
    let (before, threads) = cpu_ticks("idlechk-");
    assert_eq!(threads, workers);
    std::thread::sleep(Duration::from_secs(1));
    let (after, _) = cpu_ticks("idlechk-");
    let used_ms = (after - before) * 1000 / USER_HZ;
    assert!(
        used_ms < 50,
        "idle pool used {used_ms} ms of CPU in one second"
    );
    // And it still wakes up for new work.
    assert_eq!(pool.submit(|| 3).ok().unwrap().join().unwrap(), 3);
}
