//! The optional integrations: `numa` (workers pinned to their plan) and
//! `monitor` (queue wait and run time recorded).
#![cfg(not(loom))]

#[cfg(all(feature = "numa", target_os = "linux"))]
#[test]
#[cfg_attr(
    miri,
    ignore = "sched_setaffinity and sysfs are not available under Miri"
)]
fn each_worker_affinity_matches_its_plan() {
    use std::sync::{Arc, Mutex};

    use otlp_sched::{Builder, Placement};

    let allowed = otlp_numa::current_affinity().unwrap();
    let workers = allowed.len().clamp(1, 4);
    for placement in [Placement::Compact, Placement::Scatter] {
        let actual = Arc::new(Mutex::new(vec![None; workers]));
        let record = actual.clone();
        let pool = Builder::new()
            .workers(workers)
            .placement(placement)
            .on_thread_start(move |i| {
                record.lock().unwrap()[i] = Some(otlp_numa::current_affinity().unwrap());
            })
            .build()
            .unwrap();
        let plan = pool.placement_plan().unwrap().to_vec();
        assert_eq!(plan.len(), workers);
        // Also check from inside a running task.
        let inside = pool
            .submit(|| {
                (
                    otlp_sched::WorkStealingScheduler::current_worker_index().unwrap(),
                    otlp_numa::current_affinity().unwrap(),
                )
            })
            .ok()
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(inside.1, plan[inside.0]);
        pool.shutdown().unwrap();
        let actual = actual.lock().unwrap().clone();
        for (i, cpus) in actual.into_iter().enumerate() {
            assert_eq!(
                cpus.as_ref(),
                Some(&plan[i]),
                "worker {i} under {placement:?}"
            );
        }
    }
}

#[cfg(feature = "numa")]
#[test]
#[cfg_attr(miri, ignore = "sysfs is not available under Miri")]
fn impossible_placement_is_an_error() {
    use otlp_sched::{BuildError, Builder, Placement};

    let err = Builder::new()
        .workers(1)
        .placement(Placement::Node(usize::MAX))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Placement(_)), "{err}");
}

#[cfg(feature = "monitor")]
#[test]
fn monitor_records_queue_wait_and_run_time() {
    use std::sync::Arc;

    use otlp_monitor::ConcurrencyMonitor;
    use otlp_sched::Builder;

    let monitor = Arc::new(ConcurrencyMonitor::new());
    let pool = Builder::new()
        .workers(2)
        .monitor(monitor.clone())
        .build()
        .unwrap();
    let n = 50;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            pool.submit(move || {
                if i == 7 {
                    panic!("seven");
                }
                i
            })
            .ok()
            .unwrap()
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    pool.shutdown().unwrap();
    let stats = monitor.get_stats();
    assert_eq!(stats.total_tasks, n);
    assert_eq!(stats.completed_tasks, n - 1);
    assert_eq!(stats.failed_tasks, 1);
    assert_eq!(stats.queue_wait_samples, n);
}
