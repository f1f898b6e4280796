//! Two worker threads record simulated tasks; a reporter prints interval
//! snapshots, then the totals as a table and as Prometheus text.
//!
//! `cargo run -p otlp-monitor --example report`

use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp_monitor::ConcurrencyMonitor;

fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() {
    let monitor = Arc::new(
        ConcurrencyMonitor::builder()
            .name("example")
            .slow_task_threshold(Duration::from_micros(200))
            .build()
            .expect("valid configuration"),
    );
    let workers: Vec<_> = (0..2u64)
        .map(|w| {
            let monitor = Arc::clone(&monitor);
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(w);
                for i in 0..2_000u64 {
                    monitor.record_queue_wait(Duration::from_micros(rng.u64(1..50)));
                    let timer = monitor.start_task();
                    busy(Duration::from_micros(rng.u64(5..60)));
                    if i % 50 == 0 {
                        timer.fail();
                    } else {
                        timer.finish();
                    }
                }
            })
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(40));
        let s = monitor.interval();
        println!(
            "interval: {} done, {:.0} tasks/s, p99 {:?}, {} in flight",
            s.completed_tasks + s.failed_tasks,
            s.tasks_per_second,
            s.p99,
            s.in_flight
        );
    }
    for w in workers {
        w.join().expect("worker panicked");
    }
    println!("\n{}\n", monitor.get_stats());
    print!("{}", monitor.to_prometheus("example"));
}
