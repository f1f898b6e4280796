//! Loom model: concurrent push and pop on `LockFreeStack`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use otlp_lockfree::LockFreeStack;

#[test]
fn concurrent_push_pop() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        let s1 = stack.clone();
        let pusher = thread::spawn(move || s1.push(1));
        let popped = stack.pop();
        pusher.join().unwrap();
        let mut got: Vec<i32> = popped.into_iter().collect();
        got.extend(stack.pop_all());
        got.sort_unstable();
        assert_eq!(got, [0, 1]);
        assert!(stack.is_empty());
    });
}
