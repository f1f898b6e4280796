//! ConfigCell and ConcurrentState.

use std::sync::Arc;
use std::time::Duration;

use otlp_sync::{ConcurrentState, Config, ConfigCell, ConfigError, CounterUnderflow, State};

#[test]
fn load_store_versions() {
    let cell = ConfigCell::new(String::from("a"));
    assert_eq!((cell.load().as_str(), cell.version()), ("a", 0));
    let old = cell.load();
    assert_eq!(cell.store(String::from("b")), 1);
    assert_eq!(old.as_str(), "a", "an old snapshot stays valid");
    let snap = cell.snapshot();
    assert_eq!((snap.config.as_str(), snap.version), ("b", 1));
    assert_eq!(&*snap, "b");
    assert_eq!(cell.store_arc(Arc::new(String::from("c"))), 2);
    assert_eq!(cell.try_replace(|s| Ok::<_, ()>(format!("{s}d"))), Ok(3));
    assert_eq!(cell.load().as_str(), "cd");
    assert_eq!(cell.try_replace(|_| Err("no")), Err("no"));
    assert_eq!(cell.version(), 3);
    assert!(format!("{cell:?}").contains("cd"));
}

#[test]
fn rejected_update_keeps_old_config() {
    let cell = ConfigCell::new(vec![1]);
    let r: Result<u64, &str> = cell.update(|v| {
        v.push(2);
        Err("rejected")
    });
    assert_eq!(r, Err("rejected"));
    assert_eq!(*cell.load(), vec![1]);
    assert_eq!(cell.version(), 0);
}

#[test]
fn panicking_update_keeps_old_config() {
    let cell = Arc::new(ConfigCell::new(1_u32));
    let c2 = Arc::clone(&cell);
    let r = std::thread::spawn(move || {
        let _ = c2.update(|_| -> Result<(), ()> { panic!("validator bug") });
    })
    .join();
    assert!(r.is_err());
    assert_eq!((*cell.load(), cell.version()), (1, 0));
    assert_eq!(cell.store(2), 1, "writer lock released after the panic");
}

#[test]
fn old_snapshots_are_dropped_when_last_reader_lets_go() {
    let tracker = Arc::new(());
    let cell = ConfigCell::new(Arc::clone(&tracker));
    let snap = cell.load();
    cell.store(Arc::new(()));
    assert_eq!(
        Arc::strong_count(&tracker),
        2,
        "held by the test and the snapshot"
    );
    drop(snap);
    assert_eq!(Arc::strong_count(&tracker), 1);
    drop(cell);
}

#[test]
fn wait_changed_times_out_and_wakes() {
    let cell = Arc::new(ConfigCell::new(0_u64));
    let err = cell.wait_changed(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err.version, 0);
    let c2 = Arc::clone(&cell);
    let watcher = std::thread::spawn(move || c2.wait_changed_since(0, Duration::from_secs(3600)));
    while cell.watchers() == 0 {
        std::thread::yield_now();
    }
    cell.store(7);
    let snap = watcher.join().unwrap().unwrap();
    assert_eq!((*snap.config, snap.version), (7, 1));
    // Already changed since version 0: returns at once.
    assert_eq!(
        cell.wait_changed_since(0, Duration::ZERO).unwrap().version,
        1
    );
    assert_eq!(cell.watchers(), 0);
}

#[cfg(feature = "async")]
#[tokio::test(start_paused = true)]
async fn async_changed_and_timeout() {
    let cell = Arc::new(ConfigCell::new(0_u64));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), cell.changed())
            .await
            .is_err()
    );
    assert_eq!(cell.watchers(), 0, "a cancelled watcher unregisters");
    let c2 = Arc::clone(&cell);
    let watcher = tokio::spawn(async move {
        let mut seen = 0;
        let mut values = Vec::new();
        while seen < 3 {
            let snap = c2.changed_since(seen).await;
            seen = snap.version;
            values.push(*snap.config);
        }
        values
    });
    for v in 1..=3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        cell.store(v * 10);
    }
    let values = watcher.await.unwrap();
    assert_eq!(values.last(), Some(&30));
}

#[test]
fn concurrent_state_seed_api() {
    let state = ConcurrentState::new(Config::default()).unwrap();
    assert!(!state.is_running());
    assert!(state.start());
    assert!(!state.start());
    assert!(state.is_running());
    assert_eq!(state.increment(), 1);
    assert_eq!(state.increment(), 2);
    assert_eq!(state.decrement(), Ok(1));
    assert_eq!(state.get_count(), 1);
    assert_eq!(state.decrement(), Ok(0));
    assert_eq!(state.decrement(), Err(CounterUnderflow));
    assert_eq!(state.get_count(), 0);

    assert_eq!(state.update_config(|c| c.retry_count = 5), Ok(1));
    assert_eq!(state.get_config().retry_count, 5);
    assert_eq!(
        state.update_config(|c| c.max_connections = 0),
        Err(ConfigError::ZeroMaxConnections)
    );
    assert_eq!(
        state.update_config(|c| c.timeout_ms = 0),
        Err(ConfigError::ZeroTimeout)
    );
    assert_eq!(state.get_config().max_connections, 100);
    assert_eq!(state.config().version(), 1);

    assert!(state.stop());
    assert!(!state.stop());
    assert!(!state.start(), "Stopped is terminal");
    assert_eq!(state.lifecycle().state(), State::Stopped);
}

#[test]
fn concurrent_state_rejects_invalid_initial_config() {
    let bad = Config {
        max_connections: 0,
        ..Config::default()
    };
    assert_eq!(
        ConcurrentState::new(bad).unwrap_err(),
        ConfigError::ZeroMaxConnections
    );
}

#[test]
fn concurrent_state_fail() {
    let state = ConcurrentState::new(Config::default()).unwrap();
    assert!(state.fail().is_err());
    assert!(state.start());
    assert_eq!(state.fail(), Ok(State::Running));
    assert!(!state.stop());
}
