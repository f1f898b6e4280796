//! Stress tests: several producers and consumers on every structure,
//! asserting conservation (every item exactly once), per-producer FIFO for
//! the queues, one value per key for `get_or_insert_with`, and that a
//! drop-counting element is dropped exactly once.
//!
//! Sized for 2 cores; `OTLP_STRESS_SMALL=1` (ThreadSanitizer runs) and Miri
//! shrink them about 10x.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use otlp_lockfree::{BoundedQueue, ConcurrentHashMap, ConcurrentVec, LockFreeQueue, LockFreeStack};

fn scaled(n: usize) -> usize {
    let small = cfg!(miri) || std::env::var_os("OTLP_STRESS_SMALL").is_some_and(|v| v != "0");
    if cfg!(miri) {
        (n / 200).max(20)
    } else if small {
        (n / 2).max(10)
    } else {
        n * 5
    }
}

/// An element that counts its drops and carries (producer, sequence).
#[derive(Debug)]
struct Item {
    producer: usize,
    seq: usize,
    drops: Arc<AtomicUsize>,
}

impl Item {
    fn new(producer: usize, seq: usize, drops: &Arc<AtomicUsize>) -> Self {
        Item {
            producer,
            seq,
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;

/// Checks that `seen[p]` holds every sequence number of producer `p`
/// exactly once.
fn assert_each_once(per_producer: usize, seen: Vec<Vec<usize>>) {
    let mut all = vec![vec![0u8; per_producer]; PRODUCERS];
    for consumer in seen {
        for key in consumer {
            let (p, s) = (key / per_producer, key % per_producer);
            all[p][s] += 1;
        }
    }
    for (p, counts) in all.iter().enumerate() {
        for (s, &c) in counts.iter().enumerate() {
            assert_eq!(c, 1, "producer {p} item {s} seen {c} times");
        }
    }
}

/// Consumer-side bookkeeping: records each item and checks per-producer FIFO.
struct Seen {
    per_producer: usize,
    last: [Option<usize>; PRODUCERS],
    keys: Vec<usize>,
}

impl Seen {
    fn new(per_producer: usize) -> Self {
        Seen {
            per_producer,
            last: [None; PRODUCERS],
            keys: Vec::new(),
        }
    }

    fn record(&mut self, item: &Item, fifo: bool) {
        if fifo {
            if let Some(prev) = self.last[item.producer] {
                assert!(
                    item.seq > prev,
                    "producer {} FIFO broken: {} after {prev}",
                    item.producer,
                    item.seq
                );
            }
            self.last[item.producer] = Some(item.seq);
        }
        self.keys.push(item.producer * self.per_producer + item.seq);
    }
}

#[test]
fn stack_conserves_and_drops_once() {
    let n = scaled(20_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let stack = Arc::new(LockFreeStack::new());
    let consumed = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(PRODUCERS + CONSUMERS));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (stack, drops, barrier) = (stack.clone(), drops.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for s in 0..n {
                    stack.push(Item::new(p, s, &drops));
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (stack, consumed, barrier) = (stack.clone(), consumed.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut seen = Seen::new(n);
                while consumed.load(Ordering::Relaxed) < PRODUCERS * n {
                    if c == 0 {
                        for item in stack.pop_all() {
                            seen.record(&item, false);
                            consumed.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some(item) = stack.pop() {
                        seen.record(&item, false);
                        consumed.fetch_add(1, Ordering::Relaxed);
                    }
                    thread::yield_now();
                }
                seen.keys
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let seen = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_each_once(n, seen);
    assert!(stack.is_empty());
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n);
    // Leftovers are dropped by the stack's destructor.
    stack.push(Item::new(0, 0, &drops));
    drop(stack);
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n + 1);
}

/// Every thread pushes and pops on a stack that stays almost empty, so the
/// same few slots are recycled (through the spare slot and the free list)
/// by every thread in turn, the pattern where a stale compare-and-swap would
/// strike (ABA). Every item is seen exactly once and dropped exactly once.
#[test]
fn stack_recycles_slots_without_loss_or_duplication() {
    const THREADS: usize = 4;
    let n = scaled(20_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let stack = Arc::new(LockFreeStack::new());
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stack, drops, barrier) = (stack.clone(), drops.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut keys = Vec::new();
                for s in 0..n {
                    stack.push(Item::new(t, s, &drops));
                    if s % 64 == 63 {
                        keys.extend(stack.pop_all().iter().map(|i| i.producer * n + i.seq));
                    } else if let Some(item) = stack.pop() {
                        keys.push(item.producer * n + item.seq);
                    }
                }
                keys
            })
        })
        .collect();
    let mut seen = vec![0u8; THREADS * n];
    for w in workers {
        for key in w.join().unwrap() {
            seen[key] += 1;
        }
    }
    for item in stack.pop_all() {
        seen[item.producer * n + item.seq] += 1;
    }
    for (key, &count) in seen.iter().enumerate() {
        assert_eq!(
            count,
            1,
            "producer {} item {} seen {count} times",
            key / n,
            key % n
        );
    }
    assert!(stack.is_empty());
    assert_eq!(drops.load(Ordering::Relaxed), THREADS * n);
}

#[test]
fn bounded_queue_conserves_fifo_and_drops_once() {
    let n = scaled(20_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(BoundedQueue::new(16).unwrap());
    let consumed = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || {
                let mut s = 0;
                while s < n {
                    if p == 0 {
                        let mut item = Item::new(p, s, &drops);
                        loop {
                            match queue.push(item) {
                                Ok(()) => break,
                                Err(back) => {
                                    item = back;
                                    thread::yield_now();
                                }
                            }
                        }
                        s += 1;
                    } else {
                        let end = (s + 5).min(n);
                        let mut batch: Vec<_> = (s..end).map(|i| Item::new(p, i, &drops)).collect();
                        while !batch.is_empty() {
                            queue.push_from_vec(&mut batch);
                            thread::yield_now();
                        }
                        s = end;
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (queue, consumed) = (queue.clone(), consumed.clone());
            thread::spawn(move || {
                let mut seen = Seen::new(n);
                let mut buf = Vec::new();
                while consumed.load(Ordering::Relaxed) < PRODUCERS * n {
                    if c == 0 {
                        if let Some(item) = queue.pop() {
                            seen.record(&item, true);
                            consumed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    } else {
                        let k = queue.pop_batch(&mut buf, 7);
                        for item in buf.drain(..) {
                            seen.record(&item, true);
                        }
                        consumed.fetch_add(k, Ordering::Relaxed);
                        if k > 0 {
                            continue;
                        }
                    }
                    thread::yield_now();
                }
                seen.keys
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let seen = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_each_once(n, seen);
    assert!(queue.is_empty());
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n);
}

#[test]
fn bounded_queue_force_push_loses_nothing() {
    // Every item is either popped by the consumer or handed back to its
    // producer by `force_push`: exactly once in total.
    let n = scaled(20_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(BoundedQueue::new(4).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, drops, done) = (queue.clone(), drops.clone(), done.clone());
            thread::spawn(move || {
                let mut evicted = Vec::new();
                for s in 0..n {
                    if let Some(old) = queue.force_push(Item::new(p, s, &drops)) {
                        evicted.push(old.producer * n + old.seq);
                    }
                }
                done.fetch_add(1, Ordering::Release);
                evicted
            })
        })
        .collect();
    let consumer = {
        let (queue, done) = (queue.clone(), done.clone());
        thread::spawn(move || {
            let mut seen = Seen::new(n);
            loop {
                let finished = done.load(Ordering::Acquire) == PRODUCERS;
                match queue.pop() {
                    Some(item) => seen.record(&item, true),
                    None if finished => break,
                    None => thread::yield_now(),
                }
            }
            seen.keys
        })
    };
    let mut all: Vec<Vec<usize>> = producers.into_iter().map(|p| p.join().unwrap()).collect();
    all.push(consumer.join().unwrap());
    assert_each_once(n, all);
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n);
}

#[test]
fn unbounded_queue_conserves_fifo_and_drops_once() {
    let n = scaled(40_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(LockFreeQueue::new());
    let consumed = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, drops) = (queue.clone(), drops.clone());
            thread::spawn(move || {
                for s in 0..n {
                    queue.push(Item::new(p, s, &drops));
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (queue, consumed) = (queue.clone(), consumed.clone());
            thread::spawn(move || {
                let mut seen = Seen::new(n);
                let mut buf = Vec::new();
                while consumed.load(Ordering::Relaxed) < PRODUCERS * n {
                    let k = if c == 0 {
                        match queue.pop() {
                            Some(item) => {
                                seen.record(&item, true);
                                1
                            }
                            None => 0,
                        }
                    } else {
                        let k = queue.pop_batch(&mut buf, 16);
                        for item in buf.drain(..) {
                            seen.record(&item, true);
                        }
                        k
                    };
                    consumed.fetch_add(k, Ordering::Relaxed);
                    if k == 0 {
                        thread::yield_now();
                    }
                }
                seen.keys
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let seen = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_each_once(n, seen);
    assert!(queue.is_empty());
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n);
    for s in 0..100 {
        queue.push(Item::new(0, s, &drops));
    }
    drop(queue);
    assert_eq!(drops.load(Ordering::Relaxed), PRODUCERS * n + 100);
}

#[test]
fn map_get_or_insert_with_creates_one_value_per_key() {
    let keys = scaled(2_000);
    let threads = 4;
    let inits = Arc::new(AtomicUsize::new(0));
    let map: Arc<ConcurrentHashMap<usize, Arc<AtomicUsize>>> = Arc::new(ConcurrentHashMap::new());
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (map, inits, barrier) = (map.clone(), inits.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut got = HashMap::new();
                for i in 0..keys {
                    // Alternate direction so threads collide on fresh keys.
                    let k = if t % 2 == 0 { i } else { keys - 1 - i };
                    let v = map.get_or_insert_with(k, || {
                        inits.fetch_add(1, Ordering::Relaxed);
                        Arc::new(AtomicUsize::new(0))
                    });
                    v.fetch_add(1, Ordering::Relaxed);
                    got.insert(k, Arc::as_ptr(&v) as usize);
                    if i % 7 == 0 {
                        // Concurrent readers and unrelated writers.
                        assert!(map.with(&k, |v| v.load(Ordering::Relaxed)).unwrap() >= 1);
                        map.update(&k, |v| {
                            v.fetch_add(0, Ordering::Relaxed);
                        });
                    }
                }
                got
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(inits.load(Ordering::Relaxed), keys, "one init per key");
    assert_eq!(map.len(), keys);
    for k in 0..keys {
        let ptr = results[0][&k];
        assert!(
            results.iter().all(|r| r[&k] == ptr),
            "key {k}: threads saw different values"
        );
        assert_eq!(map.with(&k, |v| v.load(Ordering::Relaxed)), Some(threads));
    }
}

#[test]
fn map_mixed_ops_drop_values_once() {
    let n = scaled(5_000);
    let drops = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicUsize::new(0));
    let map: Arc<ConcurrentHashMap<usize, Item>> = Arc::new(ConcurrentHashMap::new());
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (map, drops, created) = (map.clone(), drops.clone(), created.clone());
            thread::spawn(move || {
                for s in 0..n {
                    let key = s % 64;
                    if s % 4 != 2 {
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    match s % 4 {
                        0 | 1 => drop(map.insert(key, Item::new(p, s, &drops))),
                        2 => drop(map.remove(&key)),
                        _ => {
                            map.compute(key, |slot| {
                                *slot = Some(Item::new(p, s, &drops));
                            });
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let remaining = map.len();
    assert_eq!(
        drops.load(Ordering::Relaxed) + remaining,
        created.load(Ordering::Relaxed)
    );
    drop(map);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        created.load(Ordering::Relaxed)
    );
}

#[test]
fn vec_pushes_are_unique_stable_and_dropped_once() {
    let n = scaled(20_000);
    let threads = 3;
    let drops = Arc::new(AtomicUsize::new(0));
    let vec = Arc::new(ConcurrentVec::new());
    let handles: Vec<_> = (0..threads)
        .map(|p| {
            let (vec, drops) = (vec.clone(), drops.clone());
            thread::spawn(move || {
                let mut mine = Vec::with_capacity(n);
                for s in 0..n {
                    let i = vec.push(Item::new(p % PRODUCERS, s, &drops));
                    let item = vec.get(i).unwrap();
                    assert_eq!((item.producer, item.seq), (p % PRODUCERS, s));
                    mine.push((i, item as *const Item as usize));
                }
                mine
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(vec.len(), threads * n);
    let mut indices: Vec<usize> = results.iter().flatten().map(|&(i, _)| i).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..threads * n).collect::<Vec<_>>());
    for &(i, addr) in results.iter().flatten() {
        assert_eq!(
            vec.get(i).unwrap() as *const Item as usize,
            addr,
            "address moved"
        );
    }
    assert_eq!(vec.iter().count(), threads * n);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    drop(vec);
    assert_eq!(drops.load(Ordering::Relaxed), threads * n);
}
