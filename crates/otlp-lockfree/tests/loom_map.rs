//! Loom model: `get_or_insert_with` racing on one key creates one value.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use otlp_lockfree::ConcurrentHashMap;

#[test]
fn get_or_insert_with_races_on_one_key() {
    loom::model(|| {
        let map: Arc<ConcurrentHashMap<u8, usize>> = Arc::new(ConcurrentHashMap::new());
        let inits = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (map, inits) = (map.clone(), inits.clone());
                thread::spawn(move || {
                    map.get_or_insert_with(7, || {
                        inits.fetch_add(1, Ordering::Relaxed);
                        100 + t
                    })
                })
            })
            .collect();
        let values: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(inits.load(Ordering::Relaxed), 1);
        assert_eq!(values[0], values[1]);
        assert_eq!(map.get(&7), Some(values[0]));
    });
}
