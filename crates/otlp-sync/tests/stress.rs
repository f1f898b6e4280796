//! Stress tests: conservation under many threads. Sized for 2 cores; shrunk
//! 10x when `OTLP_STRESS_SMALL=1` (ThreadSanitizer runs) and 200x under Miri.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otlp_sync::{AcquireError, Barrier, ConfigCell, Semaphore};

fn scale(n: usize) -> usize {
    if cfg!(miri) {
        // Miri interprets every step; a few dozen rounds per thread still
        // interleave threads at every atomic operation.
        (n / 200).max(2)
    } else if std::env::var_os("OTLP_STRESS_SMALL").is_some() {
        (n / 10).max(2)
    } else {
        n
    }
}

/// Many threads take weighted permits every way there is; the permits held
/// at once never exceed the total, and all come back at the end.
#[test]
fn semaphore_permit_conservation() {
    const TOTAL: usize = 16;
    let threads = 6;
    let rounds = scale(20_000);
    let sem = Arc::new(Semaphore::new(TOTAL).unwrap());
    let in_use = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (sem, in_use) = (Arc::clone(&sem), Arc::clone(&in_use));
            std::thread::spawn(move || {
                let mut acquired = 0_usize;
                for i in 0..rounds {
                    let n = 1 + (t + i) % 5;
                    let permit = match i % 4 {
                        0 => sem.acquire_owned_blocking(n).unwrap(),
                        1 => match sem.acquire_owned_timeout(n, Duration::from_micros(50)) {
                            Ok(p) => p,
                            Err(AcquireError::Timeout) => continue,
                            Err(e) => panic!("{e}"),
                        },
                        2 => match sem.try_acquire_owned(n) {
                            Ok(p) => p,
                            Err(AcquireError::WouldBlock) => continue,
                            Err(e) => panic!("{e}"),
                        },
                        _ => {
                            let mut p = sem.acquire_owned_blocking(n).unwrap();
                            if n > 1 {
                                let q = p.split(1).unwrap();
                                p.merge(q).unwrap();
                            }
                            p
                        }
                    };
                    let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                    assert!(now <= TOTAL, "{now} permits in use out of {TOTAL}");
                    in_use.fetch_sub(n, Ordering::SeqCst);
                    drop(permit);
                    acquired += 1;
                }
                acquired
            })
        })
        .collect();
    let acquired: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(acquired > 0);
    assert_eq!(sem.available(), TOTAL);
    assert_eq!(sem.waiters(), 0);
}

/// Async tasks and blocking threads share one semaphore; some async
/// acquires are cancelled by a timeout. No permit is lost.
#[cfg(feature = "async")]
#[test]
fn semaphore_async_cancellation_conserves_permits() {
    const TOTAL: usize = 8;
    let rounds = scale(5_000);
    let sem = Arc::new(Semaphore::new(TOTAL).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let blocking: Vec<_> = (0..2)
        .map(|t| {
            let sem = Arc::clone(&sem);
            std::thread::spawn(move || {
                for i in 0..rounds {
                    let p = sem.acquire_blocking(1 + (i + t) % TOTAL).unwrap();
                    std::hint::black_box(&p);
                }
            })
        })
        .collect();
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let sem = Arc::clone(&sem);
                tokio::spawn(async move {
                    for i in 0..rounds {
                        let n = 1 + (i * 3 + t) % TOTAL;
                        let fut = sem.acquire_owned(n);
                        if i % 3 == 0 {
                            // Often cancelled mid-wait.
                            let _ = tokio::time::timeout(Duration::from_micros(20), fut).await;
                        } else {
                            let p = fut.await.unwrap();
                            tokio::task::yield_now().await;
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for b in blocking {
        b.join().unwrap();
    }
    assert_eq!(sem.available(), TOTAL);
    assert_eq!(sem.waiters(), 0);
}

/// Closing while many threads wait: every thread finishes (nobody hangs) and
/// the permits all come back.
#[test]
fn semaphore_close_under_load() {
    let sem = Arc::new(Semaphore::new(4).unwrap());
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let sem = Arc::clone(&sem);
            std::thread::spawn(move || {
                let mut ok = 0;
                loop {
                    match sem.acquire_blocking(3) {
                        Ok(p) => {
                            ok += 1;
                            drop(p);
                        }
                        Err(AcquireError::Closed) => return ok,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    sem.close();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(sem.available(), 4);
    assert_eq!(sem.waiters(), 0);
}

/// Readers never see a torn or stale-then-older config while writers
/// update; every old snapshot is dropped exactly once.
#[test]
fn config_cell_readers_and_writers() {
    #[derive(Clone)]
    struct Cfg {
        a: u64,
        b: u64,
        _token: Arc<()>,
    }
    let token = Arc::new(());
    let cell = Arc::new(ConfigCell::new(Cfg {
        a: 0,
        b: 0,
        _token: Arc::clone(&token),
    }));
    let writes = scale(20_000) as u64;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0_u64;
                while last < writes {
                    let snap = cell.snapshot();
                    assert_eq!(snap.a, snap.version);
                    assert_eq!(snap.b, snap.version * 2, "torn config");
                    assert!(snap.version >= last, "version went back");
                    last = snap.version;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                for _ in 0..writes / 2 {
                    cell.update(|c| {
                        c.a += 1;
                        c.b += 2;
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(cell.version(), writes);
    drop(cell);
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "every config dropped exactly once"
    );
}

/// Barrier generations under threads: exactly one leader per generation.
#[test]
fn barrier_generations() {
    let parties = 4;
    let rounds = scale(5_000) as u64;
    let barrier = Arc::new(Barrier::new(parties).unwrap());
    let leaders = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..parties)
        .map(|_| {
            let (barrier, leaders) = (Arc::clone(&barrier), Arc::clone(&leaders));
            std::thread::spawn(move || {
                for round in 0..rounds {
                    let r = barrier.wait_blocking();
                    assert_eq!(r.generation(), round);
                    if r.is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(leaders.load(Ordering::Relaxed) as u64, rounds);
}
