//! The receiving side: each request the server accepted is validated and
//! counted by the wire walk, then queued or refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otlp_receiver::decode::{self, Decoded};
use otlp_receiver::{Format, Sink, SinkRequest, Verdict, VerdictFuture};
use prost::Message;

use crate::durable::Durable;
use crate::queue::{Refusal, SignalQueue};
use crate::stats::{self, Counters};
use crate::wire::{self, Signal};

/// Index of a signal in the agent's per-signal arrays.
pub(crate) fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

pub(crate) struct AgentSink {
    pub(crate) queues: [Arc<SignalQueue>; 3],
    pub(crate) counters: [Arc<Counters>; 3],
    pub(crate) retry_after: Duration,
    /// The disk queue, when there is one: a request is acknowledged only
    /// once its signal's log has it.
    pub(crate) durable: Option<[Arc<Durable>; 3]>,
}

/// OTLP/JSON is the one input the agent re-encodes: batches are protobuf.
fn json_to_protobuf(signal: Signal, json: &[u8]) -> Result<Bytes, String> {
    Ok(
        match decode::decode_json(signal, json).map_err(|e| e.to_string())? {
            Decoded::Traces(request) => request.encode_to_vec(),
            Decoded::Logs(request) => request.encode_to_vec(),
            Decoded::Metrics(request) => request.encode_to_vec(),
        }
        .into(),
    )
}

/// A request that passed validation: its signal's index, its protobuf
/// bytes and its items.
struct Valid {
    index: usize,
    message: Bytes,
    items: u64,
}

impl AgentSink {
    /// Validates and counts; `Err` is the answer when there is nothing to
    /// queue (malformed, or no items).
    fn validate(&self, request: SinkRequest) -> Result<Valid, Verdict> {
        let index = index(request.signal);
        let counters = &self.counters[index];
        stats::add(&counters.received_requests, 1);
        let message = match request.format {
            Format::Json => json_to_protobuf(request.signal, &request.message),
            _ => Ok(request.message),
        };
        let counted = message.and_then(|message| {
            wire::count_items(request.signal, &message)
                .map(|count| (message, count.items))
                .map_err(|e| e.to_string())
        });
        let (message, items) = match counted {
            Ok(counted) => counted,
            Err(why) => {
                stats::add(&counters.malformed_requests, 1);
                return Err(Verdict::Malformed(why));
            }
        };
        if items == 0 {
            // Nothing to forward: an empty request is acknowledged as is.
            stats::add(&counters.accepted_requests, 1);
            return Err(Verdict::accepted());
        }
        Ok(Valid {
            index,
            message,
            items,
        })
    }

    fn take(&self, request: SinkRequest) -> Verdict {
        let valid = match self.validate(request) {
            Ok(valid) => valid,
            Err(answer) => return answer,
        };
        let outcome = self.queues[valid.index].offer(valid.message, valid.items);
        answer(
            &self.counters[valid.index],
            valid.items,
            outcome,
            self.retry_after,
        )
    }
}

/// The answer to a request whose queueing ended with `outcome`, counted.
pub(crate) fn answer(
    counters: &Counters,
    items: u64,
    outcome: Result<(), Refusal>,
    retry_after: Duration,
) -> Verdict {
    match outcome {
        Ok(()) => {
            stats::add(&counters.accepted_requests, 1);
            stats::add(&counters.accepted_items, items);
            Verdict::accepted()
        }
        Err(Refusal::Full) => {
            stats::add(&counters.refused_full_requests, 1);
            stats::add(&counters.refused_full_items, items);
            Verdict::Busy {
                reason: format!(
                    "the agent's queue has no room for {items} more item(s); retry later"
                ),
                retry_after,
            }
        }
        Err(Refusal::Closed) => {
            stats::add(&counters.refused_shutdown_requests, 1);
            stats::add(&counters.refused_shutdown_items, items);
            Verdict::Unavailable {
                reason: "the agent is shutting down".to_owned(),
                retry_after,
            }
        }
    }
}

/// The disk queue's path: the append; once the request is on disk the
/// committer queues it with its record's id (in memory if there is room,
/// else on disk only), counts it and answers. Only the disk's room can
/// refuse it.
async fn take_durable(
    queue: Arc<SignalQueue>,
    counters: Arc<Counters>,
    durable: Arc<Durable>,
    valid: Valid,
    retry_after: Duration,
) -> Verdict {
    let Valid { message, items, .. } = valid;
    if queue.is_closed() {
        return answer(&counters, items, Err(Refusal::Closed), retry_after);
    }
    durable.append(message, items).await
}

impl Sink for AgentSink {
    fn export(&self, request: SinkRequest) -> VerdictFuture {
        let Some(durable) = &self.durable else {
            return Box::pin(std::future::ready(self.take(request)));
        };
        let valid = match self.validate(request) {
            Ok(valid) => valid,
            Err(answer) => return Box::pin(std::future::ready(answer)),
        };
        let i = valid.index;
        Box::pin(take_durable(
            Arc::clone(&self.queues[i]),
            Arc::clone(&self.counters[i]),
            Arc::clone(&durable[i]),
            valid,
            self.retry_after,
        ))
    }
}
