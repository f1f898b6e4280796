//! Lifecycle: transitions, bad edges, waits with timeouts.

use std::sync::Arc;
use std::time::Duration;

use otlp_sync::{InvalidTransition, Lifecycle, State, WaitStateError};

#[test]
fn happy_path() {
    let l = Lifecycle::new();
    assert_eq!(l.state(), State::Created);
    l.begin_start().unwrap();
    l.mark_running().unwrap();
    assert!(l.is_running());
    assert_eq!(l.begin_stop().unwrap(), State::Running);
    l.mark_stopped().unwrap();
    assert_eq!(l.state(), State::Stopped);
    assert!(l.state().is_terminal());
}

#[test]
fn forbidden_edges_are_errors() {
    let l = Lifecycle::new();
    assert_eq!(
        l.transition(State::Created, State::Running),
        Err(InvalidTransition {
            from: State::Created,
            to: State::Running
        })
    );
    assert_eq!(
        l.mark_running(),
        Err(InvalidTransition {
            from: State::Created,
            to: State::Running
        })
    );
    assert_eq!(
        l.fail(),
        Err(InvalidTransition {
            from: State::Created,
            to: State::Failed
        })
    );
    l.advance(State::Stopped).unwrap(); // never started
    for to in [
        State::Created,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Failed,
    ] {
        assert_eq!(
            l.advance(to),
            Err(InvalidTransition {
                from: State::Stopped,
                to
            })
        );
    }
    let err = l.transition(State::Running, State::Stopping).unwrap_err();
    assert_eq!(err.from, State::Stopped);
    assert!(err.to_string().contains("Stopped"));
}

#[test]
fn only_one_racing_start_wins() {
    let l = Arc::new(Lifecycle::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || l.begin_start().is_ok())
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&w| w)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn reachability() {
    assert!(State::Created.can_reach(State::Stopped));
    assert!(State::Starting.can_reach(State::Failed));
    assert!(!State::Running.can_reach(State::Starting));
    assert!(!State::Failed.can_reach(State::Stopped));
    assert!(State::Failed.can_reach(State::Failed));
}

#[test]
fn blocking_wait_reaches_target() {
    let l = Arc::new(Lifecycle::new());
    let l2 = Arc::clone(&l);
    let t = std::thread::spawn(move || l2.wait_for(State::Running, Duration::from_secs(3600)));
    l.begin_start().unwrap();
    l.mark_running().unwrap();
    assert_eq!(t.join().unwrap(), Ok(State::Running));
    assert_eq!(l.wait_for_blocking(State::Running), Ok(State::Running));
}

#[test]
fn blocking_wait_times_out() {
    let l = Lifecycle::new();
    assert_eq!(
        l.wait_for(State::Running, Duration::from_millis(20)),
        Err(WaitStateError::Timeout {
            current: State::Created,
            target: State::Running
        })
    );
}

#[test]
fn wait_gives_up_when_target_unreachable() {
    let l = Arc::new(Lifecycle::new());
    let l2 = Arc::clone(&l);
    let t = std::thread::spawn(move || l2.wait_for(State::Running, Duration::from_secs(3600)));
    l.begin_start().unwrap();
    l.fail().unwrap();
    assert_eq!(
        t.join().unwrap(),
        Err(WaitStateError::Unreachable {
            current: State::Failed,
            target: State::Running
        })
    );
}

#[cfg(feature = "async")]
#[tokio::test(start_paused = true)]
async fn async_wait_and_timeout() {
    let l = Arc::new(Lifecycle::new());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), l.wait(State::Running))
            .await
            .is_err()
    );
    let l2 = Arc::clone(&l);
    let waiter = tokio::spawn(async move { l2.wait(State::Stopped).await });
    tokio::task::yield_now().await;
    l.begin_start().unwrap();
    l.mark_running().unwrap();
    l.begin_stop().unwrap();
    l.mark_stopped().unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(State::Stopped));
    assert_eq!(
        l.wait(State::Running).await,
        Err(WaitStateError::Unreachable {
            current: State::Stopped,
            target: State::Running
        })
    );
}
