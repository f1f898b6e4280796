//! AsyncDataStream and `.batched`: size, time, weight and flush triggers,
//! termination, no empty batch, cancel-safe `next()`.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use otlp_async::{AsyncDataStream, BatchedExt, SendError, StreamConfigError};

#[tokio::test(start_paused = true)]
async fn size_then_remainder_then_end() {
    let (mut s, tx) = AsyncDataStream::new(4, Duration::from_secs(10)).unwrap();
    for i in 0..10 {
        tx.send(i).await.unwrap_or_else(|_| panic!("send"));
        if i % 4 == 3 {
            assert_eq!(s.next().await.unwrap().len(), 4);
        }
    }
    drop(tx);
    assert_eq!(s.next().await, Some(vec![8, 9]));
    assert_eq!(s.next().await, None);
    assert_eq!(s.next().await, None, "stays ended");
}

#[tokio::test(start_paused = true)]
async fn delay_counts_from_the_first_item() {
    let (mut s, tx) = AsyncDataStream::new(100, Duration::from_secs(2)).unwrap();
    // A live consumer, as in a pipeline: it sees each item as it arrives.
    let consumer = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(batch) = s.next().await {
            out.push((tokio::time::Instant::now(), batch));
        }
        out
    });
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    tx.send(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tx.send(2).await.unwrap();
    // The next batch's timer starts with its own first item.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t1 = tokio::time::Instant::now();
    tx.send(3).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(tx);
    let out = consumer.await.unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1, vec![1, 2]);
    assert_eq!(
        out[0].0 - start,
        Duration::from_secs(2),
        "timer from the first item"
    );
    assert_eq!(out[1].1, vec![3]);
    assert_eq!(out[1].0 - t1, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_pending_partial_batch_wakes_on_its_own() {
    // The seed's stream returned Pending with no waker: this would hang.
    let (mut s, tx) = AsyncDataStream::new(100, Duration::from_millis(100)).unwrap();
    let consumer = tokio::spawn(async move { s.next().await });
    tokio::task::yield_now().await;
    tx.send(7).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), consumer).await;
    assert_eq!(got.unwrap().unwrap(), Some(vec![7]));
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn flush_emits_now_and_never_an_empty_batch() {
    let (mut s, tx) = AsyncDataStream::new(100, Duration::from_secs(3600)).unwrap();
    assert!(tx.flush().await, "flush with nothing buffered");
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert!(tx.flush().await);
    let start = tokio::time::Instant::now();
    assert_eq!(s.next().await.unwrap(), vec![1, 2]);
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(tx);
    assert_eq!(s.next().await, None, "the empty flush produced no batch");
}

#[tokio::test(start_paused = true)]
async fn weight_limit_closes_batches_before_they_pass_it() {
    let (mut s, tx) = AsyncDataStream::<Vec<u8>>::builder()
        .batch_size(100)
        .max_delay(Duration::from_secs(3600))
        .capacity(64)
        .max_weight(Vec::len, 10)
        .build()
        .unwrap();
    for n in [4, 4, 4, 10, 3, 20, 1] {
        tx.send(vec![0; n]).await.unwrap();
    }
    drop(tx);
    let mut weights = Vec::new();
    while let Some(batch) = s.next().await {
        assert!(!batch.is_empty());
        weights.push(batch.iter().map(Vec::len).collect::<Vec<_>>());
    }
    assert_eq!(
        weights,
        vec![vec![4, 4], vec![4], vec![10], vec![3], vec![20], vec![1]]
    );
}

#[tokio::test(start_paused = true)]
async fn next_is_cancel_safe() {
    let (mut s, tx) = AsyncDataStream::new(1000, Duration::from_secs(3600)).unwrap();
    let producer = tokio::spawn(async move {
        for i in 0..5000u32 {
            tx.send(i).await.unwrap();
            if i.is_multiple_of(7) {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut got = Vec::new();
    loop {
        tokio::select! {
            batch = s.next() => match batch {
                Some(b) => got.extend(b),
                None => break,
            },
            () = tokio::task::yield_now() => {} // cancels next() often
        }
    }
    producer.await.unwrap();
    assert_eq!(got, (0..5000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn senders_get_items_back() {
    let (s, tx) = AsyncDataStream::new(1, Duration::from_secs(1)).unwrap();
    let tx2 = tx.clone();
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap(); // capacity 2
    assert_eq!(tx.try_send(3), Err(SendError::Full(3)));
    drop(s);
    assert!(tx2.is_closed());
    assert_eq!(tx2.send(4).await, Err(SendError::Closed(4)));
    assert_eq!(tx2.try_send(5).map_err(SendError::into_inner), Err(5));
    assert_eq!(
        AsyncDataStream::<u8>::new(0, Duration::from_secs(1)).err(),
        Some(StreamConfigError::ZeroBatchSize)
    );
    assert_eq!(
        AsyncDataStream::<u8>::builder().capacity(0).build().err(),
        Some(StreamConfigError::ZeroCapacity)
    );
}

#[tokio::test(start_paused = true)]
async fn batched_matches_chunks_timeout_semantics() {
    let batches: Vec<Vec<u32>> = stream::iter(0..1030)
        .batched(512, Duration::from_secs(1))
        .collect()
        .await;
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![512, 512, 6]
    );
    assert_eq!(batches.concat(), (0..1030).collect::<Vec<_>>());

    // A slow source: the delay cuts batches short.
    let slow = stream::iter(0..6u32).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        i
    });
    let batches: Vec<Vec<u32>> = slow.batched(100, Duration::from_secs(1)).collect().await;
    assert_eq!(batches.concat(), (0..6).collect::<Vec<_>>());
    assert!(
        batches.len() >= 2 && batches.iter().all(|b| !b.is_empty()),
        "{batches:?}"
    );

    let empty: Vec<Vec<u32>> = stream::iter(Vec::<u32>::new())
        .batched(0, Duration::from_secs(1))
        .collect()
        .await;
    assert!(empty.is_empty());
}
