//! [`AsyncDataStream`]: a bounded channel whose receiving end is a stream of
//! batches, and [`BatchedExt::batched`], the same batching for any stream.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// A stream configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamConfigError {
    /// `batch_size` was 0.
    #[error("batch_size must be at least 1")]
    ZeroBatchSize,
    /// `capacity` was 0.
    #[error("channel capacity must be at least 1")]
    ZeroCapacity,
    /// `max_weight` was 0.
    #[error("max_weight must be at least 1")]
    ZeroWeight,
}

/// Why a [`StreamSender`] could not send; the item comes back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum SendError<T> {
    /// The channel is full (only from `try_send`).
    #[error("the stream's channel is full")]
    Full(T),
    /// The stream was dropped.
    #[error("the stream is closed")]
    Closed(T),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// An optional weight function and the most weight per batch.
type Weigher<T> = Option<(fn(&T) -> usize, usize)>;

enum Msg<T> {
    Item(T),
    Flush,
}

/// The sending half of an [`AsyncDataStream`]; clone it for more producers.
/// The stream ends once every sender is dropped.
pub struct StreamSender<T> {
    tx: mpsc::Sender<Msg<T>>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> fmt::Debug for StreamSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("capacity", &self.tx.capacity())
            .finish()
    }
}

impl<T> StreamSender<T> {
    /// Sends `item`, waiting for room. Cancel-safe in the tokio sense: if
    /// the future is dropped before it completes, the item was not sent (and
    /// is dropped with the future); use [`try_send`](Self::try_send) to keep it.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.tx.send(Msg::Item(item)).await.map_err(|e| match e.0 {
            Msg::Item(t) => SendError::Closed(t),
            Msg::Flush => unreachable_flush(),
        })
    }

    /// Sends `item` if there is room now, else hands it back.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        self.tx.try_send(Msg::Item(item)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(Msg::Item(t)) => SendError::Full(t),
            mpsc::error::TrySendError::Closed(Msg::Item(t)) => SendError::Closed(t),
            _ => unreachable_flush(),
        })
    }

    /// Asks the stream to emit what it has buffered (everything sent before
    /// this call) as soon as it is polled, without waiting for the size or
    /// time limit. Waits for channel room like `send`; returns `false` if the
    /// stream is gone.
    pub async fn flush(&self) -> bool {
        self.tx.send(Msg::Flush).await.is_ok()
    }

    /// Whether the stream has been dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cold]
fn unreachable_flush() -> ! {
    // `send`/`try_send` only ever put `Msg::Item` in, so the error hands an
    // item back; a flush marker cannot appear here.
    unreachable!("a flush marker came back from an item send")
}

/// Builder for [`AsyncDataStream`]; see [`AsyncDataStream::builder`].
pub struct AsyncDataStreamBuilder<T> {
    batch_size: usize,
    max_delay: Duration,
    capacity: Option<usize>,
    weigher: Weigher<T>,
}

impl<T> fmt::Debug for AsyncDataStreamBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDataStreamBuilder")
            .field("batch_size", &self.batch_size)
            .field("max_delay", &self.max_delay)
            .field("capacity", &self.capacity)
            .field("max_weight", &self.weigher.map(|w| w.1))
            .finish()
    }
}

impl<T> AsyncDataStreamBuilder<T> {
    /// Most items per batch.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Longest time the first item of a batch waits before the batch is
    /// emitted.
    #[must_use]
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Channel capacity (default: twice the batch size).
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// Also close a batch before its total weight (for example encoded
    /// bytes) would pass `max_weight`. An item heavier than `max_weight` on
    /// its own forms a batch by itself.
    #[must_use]
    pub fn max_weight(mut self, weigh: fn(&T) -> usize, max_weight: usize) -> Self {
        self.weigher = Some((weigh, max_weight));
        self
    }

    /// Creates the stream and its first sender.
    pub fn build(self) -> Result<(AsyncDataStream<T>, StreamSender<T>), StreamConfigError> {
        if self.batch_size == 0 {
            return Err(StreamConfigError::ZeroBatchSize);
        }
        let capacity = self.capacity.unwrap_or(self.batch_size.saturating_mul(2));
        if capacity == 0 {
            return Err(StreamConfigError::ZeroCapacity);
        }
        if matches!(self.weigher, Some((_, 0))) {
            return Err(StreamConfigError::ZeroWeight);
        }
        let (tx, rx) = mpsc::channel(capacity.min(usize::MAX >> 4));
        let stream = AsyncDataStream {
            rx,
            batcher: Batcher::new(self.batch_size, self.max_delay, self.weigher),
            scratch: Vec::new(),
            pending: VecDeque::new(),
        };
        Ok((stream, StreamSender { tx }))
    }
}

/// The shared batching state: buffer, deadline timer, optional weight.
struct Batcher<T> {
    buf: Vec<T>,
    size: usize,
    delay: Duration,
    /// When the current batch is due (set by its first item).
    deadline: Option<Instant>,
    /// Created, and registered with the timer, only when the stream would
    /// otherwise return `Pending`: a batch that fills up quickly costs no
    /// timer registration at all.
    sleep: Option<Pin<Box<Sleep>>>,
    weigher: Weigher<T>,
    weight: usize,
    /// An item that would have pushed the batch past `max_weight`; it opens
    /// the next batch.
    carry: Option<T>,
    done: bool,
}

impl<T> Batcher<T> {
    fn new(size: usize, delay: Duration, weigher: Weigher<T>) -> Self {
        Self {
            buf: Vec::new(),
            size,
            delay,
            deadline: None,
            sleep: None,
            weigher,
            weight: 0,
            carry: None,
            done: false,
        }
    }

    fn start_timer(&mut self) {
        self.deadline = Some(Instant::now() + self.delay);
    }

    /// Adds `item`; returns `true` when the batch is ready.
    #[inline(always)]
    fn push(&mut self, item: T) -> bool {
        if self.weigher.is_none() {
            if self.buf.is_empty() {
                self.open_batch();
            }
            self.buf.push(item);
            return self.buf.len() >= self.size;
        }
        self.push_weighed(item)
    }

    #[cold]
    #[inline(never)]
    fn open_batch(&mut self) {
        self.buf.reserve_exact(self.size.min(1 << 16));
        self.start_timer();
    }

    fn push_weighed(&mut self, item: T) -> bool {
        if let Some((weigh, max)) = self.weigher {
            let w = weigh(&item);
            if !self.buf.is_empty() && self.weight.saturating_add(w) > max {
                self.carry = Some(item);
                return true;
            }
            self.weight = self.weight.saturating_add(w);
            if self.buf.is_empty() {
                self.open_batch();
            }
            self.buf.push(item);
            return self.buf.len() >= self.size || self.weight >= max;
        }
        false
    }

    /// Takes the current batch (never empty: callers check) and opens the
    /// next one with the carried item, if any.
    fn take(&mut self) -> Vec<T> {
        let batch = std::mem::take(&mut self.buf);
        self.weight = 0;
        if let Some(item) = self.carry.take() {
            // Cannot be ready on its own unless it alone reaches a limit; that
            // is checked on the next poll.
            let _ = self.push(item);
        }
        batch
    }

    fn has_items(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Whether the carried item alone already fills a batch.
    fn ready_now(&self) -> bool {
        self.buf.len() >= self.size
            || self
                .weigher
                .is_some_and(|(_, max)| self.weight >= max && !self.buf.is_empty())
    }

    /// Polls the current batch's deadline (registering the waker with the
    /// timer); `true` when it has passed.
    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline.filter(|_| !self.buf.is_empty()) else {
            return false;
        };
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// A stream of batches fed by [`StreamSender`]s (the seed's batching stream,
/// repaired).
///
/// A batch (`Vec<T>`, never empty) is emitted when it reaches `batch_size`
/// items, when `max_delay` has passed since its first item arrived, when the
/// optional weight limit would be passed, or when a sender calls
/// [`StreamSender::flush`]. When every sender is gone the remainder is
/// emitted and the stream ends with `None`. Every `Pending` it returns has a
/// wake-up registered: with the channel for new items and with the timer for
/// the oldest buffered one.
///
/// `next()` is cancel-safe: buffered items live in the stream, not in the
/// future, so dropping a `next()` future loses nothing.
///
/// ```
/// use std::time::Duration;
/// use futures_util::StreamExt;
/// use otlp_async::AsyncDataStream;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let (mut stream, sender) = AsyncDataStream::new(100, Duration::from_millis(50)).unwrap();
/// tokio::spawn(async move {
///     for i in 0..250 {
///         sender.send(i).await.unwrap();
///     }
///     // Dropping the last sender ends the stream after the remainder.
/// });
/// let mut sizes = Vec::new();
/// while let Some(batch) = stream.next().await {
///     sizes.push(batch.len());
/// }
/// assert_eq!(sizes.iter().sum::<usize>(), 250);
/// assert!(sizes.iter().all(|&n| (1..=100).contains(&n)));
/// # });
/// ```
pub struct AsyncDataStream<T> {
    rx: mpsc::Receiver<Msg<T>>,
    batcher: Batcher<T>,
    /// Messages taken from the channel in one go (`poll_recv_many` releases
    /// their channel slots together, instead of one at a time).
    scratch: Vec<Msg<T>>,
    /// Messages received but not yet batched (a batch filled up first).
    pending: VecDeque<Msg<T>>,
}

/// Feeds one message to the batcher; `true` when a batch is ready.
#[inline]
fn feed<T>(b: &mut Batcher<T>, msg: Msg<T>) -> bool {
    match msg {
        Msg::Item(item) => b.push(item),
        Msg::Flush => b.has_items(),
    }
}

impl<T> fmt::Debug for AsyncDataStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDataStream")
            .field("batch_size", &self.batcher.size)
            .field("max_delay", &self.batcher.delay)
            .field("buffered", &self.batcher.buf.len())
            .field("done", &self.batcher.done)
            .finish()
    }
}

impl<T> AsyncDataStream<T> {
    /// A stream emitting batches of at most `batch_size` items, each at most
    /// `max_delay` after its first item, with a channel of twice
    /// `batch_size`. The stream needs a tokio runtime with time enabled when
    /// polled (not when created).
    pub fn new(
        batch_size: usize,
        max_delay: Duration,
    ) -> Result<(Self, StreamSender<T>), StreamConfigError> {
        Self::builder()
            .batch_size(batch_size)
            .max_delay(max_delay)
            .build()
    }

    /// A builder; defaults: batch 512, delay 1 s, capacity 2 × batch.
    pub fn builder() -> AsyncDataStreamBuilder<T> {
        AsyncDataStreamBuilder {
            batch_size: 512,
            max_delay: Duration::from_secs(1),
            capacity: None,
            weigher: None,
        }
    }

    /// Items buffered for the next batch.
    pub fn buffered(&self) -> usize {
        let pending = self
            .pending
            .iter()
            .filter(|m| matches!(m, Msg::Item(_)))
            .count();
        self.batcher.buf.len() + usize::from(self.batcher.carry.is_some()) + pending
    }
}

impl<T> Unpin for AsyncDataStream<T> {}

impl<T> Stream for AsyncDataStream<T> {
    type Item = Vec<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        let this = self.get_mut();
        let b = &mut this.batcher;
        if b.has_items() && b.ready_now() {
            return Poll::Ready(Some(b.take()));
        }
        while let Some(msg) = this.pending.pop_front() {
            if feed(b, msg) {
                return Poll::Ready(Some(b.take()));
            }
        }
        if b.done {
            return Poll::Ready(if b.has_items() { Some(b.take()) } else { None });
        }
        loop {
            let want = b.size.saturating_sub(b.buf.len()).clamp(1, 1024);
            match this.rx.poll_recv_many(cx, &mut this.scratch, want) {
                Poll::Ready(0) => {
                    // Every sender is gone and the channel is empty.
                    b.done = true;
                    return Poll::Ready(if b.has_items() { Some(b.take()) } else { None });
                }
                Poll::Ready(_) => {
                    let mut msgs = this.scratch.drain(..);
                    while let Some(msg) = msgs.next() {
                        if feed(b, msg) {
                            this.pending.extend(msgs);
                            return Poll::Ready(Some(b.take()));
                        }
                    }
                }
                Poll::Pending => break,
            }
        }
        // The channel registered our waker; now the timer for the oldest
        // buffered item.
        if b.timer_fired(cx) {
            return Poll::Ready(Some(b.take()));
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.batcher.done && !self.batcher.has_items() {
            (0, Some(0))
        } else {
            (0, None)
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream adapter grouping items into batches by count and time; see
    /// [`BatchedExt::batched`].
    pub struct Batched<S: Stream> {
        #[pin]
        inner: S,
        batcher: Batcher<S::Item>,
    }
}

impl<S: Stream> fmt::Debug for Batched<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batched")
            .field("batch_size", &self.batcher.size)
            .field("max_delay", &self.batcher.delay)
            .field("buffered", &self.batcher.buf.len())
            .finish_non_exhaustive()
    }
}

impl<S: Stream> Stream for Batched<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let b: &mut Batcher<S::Item> = this.batcher;
        if b.done {
            return Poll::Ready(if b.has_items() { Some(b.take()) } else { None });
        }
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if b.push(item) {
                        return Poll::Ready(Some(b.take()));
                    }
                }
                Poll::Ready(None) => {
                    b.done = true;
                    return Poll::Ready(if b.has_items() { Some(b.take()) } else { None });
                }
                Poll::Pending => break,
            }
        }
        if b.timer_fired(cx) {
            return Poll::Ready(Some(b.take()));
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        let buffered = self.batcher.buf.len();
        let size = self.batcher.size;
        let lo = lo.saturating_add(buffered).div_ceil(size);
        let hi = hi.and_then(|h| h.checked_add(buffered));
        (lo, hi)
    }
}

/// Adds [`batched`](BatchedExt::batched) to every [`Stream`].
pub trait BatchedExt: Stream + Sized {
    /// Groups items into `Vec`s of at most `size`, emitting a batch when it
    /// is full or `delay` after its first item, whichever comes first;
    /// never an empty batch; the remainder when the inner stream ends, then
    /// `None`. Like tokio-stream's `chunks_timeout`. A `size` of 0 is
    /// treated as 1. Needs a tokio runtime with time enabled when polled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::{StreamExt, stream};
    /// use otlp_async::BatchedExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let batches: Vec<Vec<u32>> = stream::iter(0..10)
    ///     .batched(4, Duration::from_secs(1))
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    /// # });
    /// ```
    fn batched(self, size: usize, delay: Duration) -> Batched<Self> {
        Batched {
            inner: self,
            batcher: Batcher::new(size.max(1), delay, None),
        }
    }
}

impl<S: Stream> BatchedExt for S {}
