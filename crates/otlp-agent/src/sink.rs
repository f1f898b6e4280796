//! The receiving side: each request the server accepted is validated and
//! counted by the wire walk, then queued or refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otlp_receiver::decode::{self, Decoded};
use otlp_receiver::{Format, Sink, SinkRequest, Verdict, VerdictFuture};
use prost::Message;

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

impl AgentSink {
    fn take(&self, request: SinkRequest) -> Verdict {
        let i = index(request.signal);
        let counters = &self.counters[i];
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
                return Verdict::Malformed(why);
            }
        };
        if items == 0 {
            // Nothing to forward: an empty request is acknowledged as is.
            stats::add(&counters.accepted_requests, 1);
            return Verdict::accepted();
        }
        match self.queues[i].offer(message, items) {
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
                    retry_after: self.retry_after,
                }
            }
            Err(Refusal::Closed) => {
                stats::add(&counters.refused_shutdown_requests, 1);
                stats::add(&counters.refused_shutdown_items, items);
                Verdict::Unavailable {
                    reason: "the agent is shutting down".to_owned(),
                    retry_after: self.retry_after,
                }
            }
        }
    }
}

impl Sink for AgentSink {
    fn export(&self, request: SinkRequest) -> VerdictFuture {
        Box::pin(std::future::ready(self.take(request)))
    }
}
