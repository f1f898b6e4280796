//! Loom model: `ConcurrentVec` pushes racing across a bucket boundary
//! (buckets of 1, 2, 4, … entries under loom): both race to allocate
//! bucket 1, and each reads the other's index while it may be in flight.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use otlp_lockfree::ConcurrentVec;

#[test]
fn pushes_race_across_bucket_boundary() {
    loom::model(|| {
        let v = Arc::new(ConcurrentVec::new());
        v.push(0usize); // fills bucket 0; the next two pushes race on bucket 1
        let v1 = v.clone();
        let other = thread::spawn(move || {
            let i = v1.push(1);
            // Reading the other racing index sees nothing or its final value.
            if let Some(&x) = v1.get(3 - i) {
                assert_eq!(x, 2);
            }
            (i, 1)
        });
        let mine = (v.push(2), 2);
        let mut indices = Vec::new();
        for (i, x) in [mine, other.join().unwrap()] {
            assert_eq!(v.get(i), Some(&x));
            indices.push(i);
        }
        indices.sort_unstable();
        assert_eq!(indices, [1, 2]);
        assert_eq!(v.len(), 3);
    });
}
