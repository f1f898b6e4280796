//! Loom model of ConfigCell: updates racing reads. Under loom the cell marks
//! retired nodes instead of freeing them and asserts that no reader is ever
//! inside a retired node, so a reclamation bug fails the model. A watcher
//! racing a store must never be told of a change from the version it saw.
#![cfg(all(loom, feature = "async"))]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::thread;
use otlp_sync::ConfigCell;

#[test]
fn reads_race_two_updates() {
    loom::model(|| {
        let cell = Arc::new(ConfigCell::new(0_u64));
        let reader = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                let a = cell.snapshot();
                let b = cell.snapshot();
                assert_eq!(*a.config, a.version * 10);
                assert_eq!(*b.config, b.version * 10);
                assert!(b.version >= a.version, "versions never go back");
            })
        };
        cell.store(10);
        cell.store(20);
        reader.join().unwrap();
        assert_eq!((*cell.load(), cell.version()), (20, 2));
    });
}

#[test]
fn two_writers_and_a_reader() {
    loom::model(|| {
        let cell = Arc::new(ConfigCell::new(0_u64));
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                cell.update(|v| {
                    *v += 1;
                    Ok::<_, ()>(())
                })
                .unwrap()
            })
        };
        let reader = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || *cell.load())
        };
        let mine = cell
            .update(|v| {
                *v += 1;
                Ok::<_, ()>(())
            })
            .unwrap();
        let theirs = writer.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen <= 2);
        assert_ne!(mine, theirs);
        assert_eq!((*cell.load(), cell.version()), (2, 2));
    });
}

#[test]
fn watcher_sees_the_change() {
    loom::model(|| {
        let cell = Arc::new(ConfigCell::new(0_u64));
        let watcher = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || loom::future::block_on(cell.changed_since(0)).version)
        };
        cell.store(1);
        assert_eq!(watcher.join().unwrap(), 1);
    });
}

#[test]
fn change_is_reported_only_past_the_seen_version() {
    loom::model(|| {
        let cell = Arc::new(ConfigCell::new(0_u64));
        let watcher = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                let seen = cell.snapshot();
                assert_eq!(*seen.config, seen.version);
                assert!(cell.version() >= seen.version, "version went back");
                if seen.version == 0 {
                    // The store is still to come or under way: the blocking
                    // wait must see it (loom has no time: no timeout fires).
                    let next = cell.wait_changed_since(0, Duration::from_secs(1)).unwrap();
                    assert_eq!(next.version, 1);
                } else {
                    // Already saw the new node: nothing further changed, even
                    // if the store has not finished yet.
                    let mut fut = Box::pin(cell.changed_since(seen.version));
                    let mut cx = Context::from_waker(Waker::noop());
                    match fut.as_mut().poll(&mut cx) {
                        Poll::Pending => {}
                        Poll::Ready(next) => {
                            panic!("change reported from {} to {}", seen.version, next.version)
                        }
                    }
                }
            })
        };
        cell.store(1);
        watcher.join().unwrap();
        assert_eq!(cell.version(), 1);
    });
}
