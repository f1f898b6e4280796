//! The seed's task manager, on the real API: the seed's `Task` enum and
//! `Metrics` struct are the example's own types; `AsyncTaskManager` supplies
//! the bounded queue, the workers, failure isolation and the accounted
//! shutdown; the monitor reports latencies.
//!
//! Run with `cargo run -p otlp-async --example task_manager`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otlp_async::{AsyncTaskManager, SubmitError, TaskHandler};

/// A metric sample, as in the seed.
#[derive(Debug, Clone)]
#[allow(dead_code)] // fields are printed through Debug only
struct Metrics {
    name: String,
    value: f64,
    timestamp: u64,
}

/// The seed's task kinds.
#[derive(Debug)]
enum Task {
    ProcessData(Vec<u8>),
    SendMetrics(Metrics),
    HealthCheck,
    /// In the seed this stopped one worker; here it is an ordinary task that
    /// asks the application to shut the manager down.
    Shutdown,
}

/// What the workers do with each task (the seed's `println!` handlers, with
/// a failure path).
struct Handler {
    shutdown_requested: tokio::sync::Notify,
}

impl TaskHandler<Task> for Handler {
    type Error = String;

    async fn handle(&self, task: Task) -> Result<(), String> {
        match task {
            Task::ProcessData(data) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if data.is_empty() {
                    return Err("empty payload".to_owned());
                }
                println!("processed {} bytes", data.len());
            }
            Task::SendMetrics(metrics) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                println!("sent metric {metrics:?}");
            }
            Task::HealthCheck => println!("health check ok"),
            Task::Shutdown => self.shutdown_requested.notify_one(),
        }
        Ok(())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handler = std::sync::Arc::new(Handler {
        shutdown_requested: tokio::sync::Notify::new(),
    });
    let manager = AsyncTaskManager::builder()
        .workers(4)
        .capacity(16)
        .task_timeout(Duration::from_secs(1))
        .build(std::sync::Arc::clone(&handler))?;

    for i in 0..40u8 {
        let task = match i % 4 {
            0 => Task::ProcessData(vec![i; usize::from(i)]),
            1 => Task::SendMetrics(Metrics {
                name: format!("queue_depth_{i}"),
                value: f64::from(i) * 1.5,
                timestamp: now(),
            }),
            2 => Task::HealthCheck,
            _ => Task::ProcessData(vec![i; 64]),
        };
        // Backpressure: waits while the 16-slot queue is full.
        manager.submit(task).await.map_err(|e| format!("{e}"))?;
    }
    // `try_submit` never waits: a full queue hands the task back.
    match manager.try_submit(Task::HealthCheck) {
        Ok(()) => println!("extra health check queued"),
        Err(SubmitError::Full(task)) => println!("queue full, got back {task:?}"),
        Err(other) => println!("refused: {other}"),
    }
    manager
        .submit(Task::Shutdown)
        .await
        .map_err(|e| format!("{e}"))?;
    handler.shutdown_requested.notified().await;

    let report = manager.shutdown(Duration::from_secs(5)).await?;
    println!("{report:?}");
    assert_eq!(
        report.submitted,
        report.completed + report.failed + report.aborted + report.still_queued.len() as u64
    );
    #[cfg(feature = "monitor")]
    {
        let stats = manager.monitor().expect("monitored").get_stats();
        println!(
            "monitor: {} completed, {} failed, mean {:?}, max {:?}",
            stats.completed_tasks,
            stats.failed_tasks,
            stats.average_execution_time,
            stats.max_execution_time
        );
    }
    // After shutdown every submit hands the task back.
    if let Err(SubmitError::Closed(task)) = manager.submit(Task::HealthCheck).await {
        println!("after shutdown, got back {task:?}");
    }
    Ok(())
}
