//! The seed's `AdvancedSyncPrimitives` bundle as a runnable example: a
//! semaphore bounding concurrent work, a barrier, a read-mostly shared value
//! and a mutex-protected counter, used from async tasks *and* from plain
//! threads, with timeouts on every wait.
//!
//! Run with `cargo run -p otlp-sync --example advanced_sync_primitives`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otlp_sync::{Barrier, ConfigCell, InstrumentedMutex, Semaphore};

#[derive(Debug, Clone)]
struct SharedData {
    value: i32,
    timestamp: u64,
}

#[derive(Debug)]
struct MutexData {
    counter: u64,
    last_update: Instant,
}

/// The seed's bundle, now usable from both sides of the async boundary.
struct AdvancedSyncPrimitives {
    semaphore: Arc<Semaphore>,
    barrier: Arc<Barrier>,
    shared_data: ConfigCell<SharedData>,
    mutex_data: InstrumentedMutex<MutexData>,
}

impl AdvancedSyncPrimitives {
    fn new(
        max_concurrent: usize,
        barrier_count: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(AdvancedSyncPrimitives {
            semaphore: Arc::new(Semaphore::new(max_concurrent)?),
            barrier: Arc::new(Barrier::new(barrier_count)?),
            shared_data: ConfigCell::new(SharedData {
                value: 0,
                timestamp: 0,
            }),
            mutex_data: InstrumentedMutex::new(MutexData {
                counter: 0,
                last_update: Instant::now(),
            }),
        })
    }

    fn update_mutex_data<R>(&self, f: impl FnOnce(&mut MutexData) -> R) -> R {
        f(&mut self.mutex_data.lock())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed made a 3-party barrier and then waited on it from one task
    // only, which hangs forever. Here the parties really are three: two
    // async tasks and one blocking thread.
    let sync = Arc::new(AdvancedSyncPrimitives::new(5, 3)?);

    // Semaphore: weighted permits, async and blocking, with a deadline.
    let permit = sync.semaphore.acquire(2).await?;
    println!("async task holds {} of 5 permits", permit.num_permits());
    let sem = Arc::clone(&sync.semaphore);
    let blocking = std::thread::spawn(move || {
        // Wants 4 while 2 of 5 are held: waits until the async task is done.
        sem.acquire_owned_timeout(4, Duration::from_secs(5))
            .map(|p| p.num_permits())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(permit);
    println!(
        "blocking thread got {:?} permits",
        blocking.join().expect("thread")?
    );

    // Barrier: two tasks and a thread meet; exactly one is the leader.
    let mut parties = Vec::new();
    for i in 0..2 {
        let sync = Arc::clone(&sync);
        parties.push(tokio::spawn(async move {
            let r = sync.barrier.wait().await;
            println!("task {i} passed the barrier (leader: {})", r.is_leader());
        }));
    }
    let sync2 = Arc::clone(&sync);
    let thread =
        std::thread::spawn(
            move || match sync2.barrier.wait_timeout(Duration::from_secs(5)) {
                Ok(r) => println!("thread passed the barrier (leader: {})", r.is_leader()),
                Err(e) => println!("thread gave up: {e}"),
            },
        );
    for p in parties {
        p.await?;
    }
    thread.join().expect("thread");

    // Read-mostly data: writers never block readers.
    sync.shared_data.update(|d| {
        d.value = 42;
        d.timestamp = now_secs();
        Ok::<_, std::convert::Infallible>(())
    })?;
    let data = sync.shared_data.load();
    println!(
        "shared data: {:?} (version {})",
        data,
        sync.shared_data.version()
    );

    // Mutex with contention statistics.
    let result = sync.update_mutex_data(|d| {
        d.counter += 1;
        d.last_update = Instant::now();
        d.counter
    });
    println!("mutex counter now {result}");
    println!("mutex stats: {:?}", sync.mutex_data.stats());
    Ok(())
}
