//! Loom model of ConfigCell: updates racing reads. Under loom the cell marks
//! retired nodes instead of freeing them and asserts that no reader is ever
//! inside a retired node, so a reclamation bug fails the model.
#![cfg(all(loom, feature = "async"))]

use std::sync::Arc;

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
