//! Loom model of racing lifecycle transitions and a waiter.
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use otlp_sync::{Lifecycle, State, WaitStateError};

#[test]
fn racing_start_and_fail_with_waiter() {
    loom::model(|| {
        let life = Arc::new(Lifecycle::new());
        let starters: Vec<_> = (0..2)
            .map(|_| {
                let life = Arc::clone(&life);
                thread::spawn(move || {
                    if life.begin_start().is_ok() {
                        // Only the winner gets here; `fail` may beat it.
                        let _ = life.mark_running();
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        let failer = {
            let life = Arc::clone(&life);
            thread::spawn(move || life.fail().is_ok())
        };
        let waited = life.wait_for_blocking(State::Running);
        let wins: usize = starters
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        let failed = failer.join().unwrap();
        assert_eq!(wins, 1, "exactly one start wins");
        let end = life.state();
        if failed {
            assert_eq!(end, State::Failed);
        } else {
            assert_eq!(end, State::Running);
        }
        match waited {
            Ok(state) => assert_eq!(state, State::Running),
            Err(WaitStateError::Unreachable { current, target }) => {
                assert_eq!((current, target), (State::Failed, State::Running));
                assert!(failed);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    });
}
