//! What both exporters share once a batch is encoded: the I/O runtime, the
//! transport, the retry loop within the timeout, and the counters.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use super::answer::{self, Failure};
use super::bodies::Bodies;
use super::config::Signal;
use super::config::{OtlpConfigError, Resolved, RetryPolicy};
use super::tls::TlsError;
use super::transport::Transport;

/// What an exporter has done so far; read with
/// [`OtlpStatsReader::stats`](super::OtlpStatsReader::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpExporterStats {
    /// Batches handed to `export`.
    pub exports: u64,
    /// Exports that ended in an error answer (after their retries), could
    /// not be sent, or were refused because the exporter was shut down.
    pub failed_exports: u64,
    /// Exports whose outcome is unknown: the timeout passed while a
    /// request was on the wire, so the server may have received it.
    pub in_doubt_exports: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after a retryable answer.
    pub retries: u64,
    /// Items the server accepted the request for but rejected
    /// (`partial_success.rejected_spans` / `rejected_log_records` /
    /// `rejected_data_points`); not
    /// retried, as the specification says.
    pub rejected_items: u64,
    /// Body bytes sent, retries included: compressed for HTTP, before
    /// tonic's gzip for gRPC.
    pub bytes_sent: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    exports: AtomicU64,
    failed_exports: AtomicU64,
    in_doubt_exports: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    rejected_items: AtomicU64,
    bytes_sent: AtomicU64,
    /// Partial-success warnings, at most one per interval.
    warnings: otlp_async::LogThrottle,
    /// Items whose export has ended, by [`Outcome`] (the self-metrics'
    /// `otel.sdk.exporter.*.exported`).
    items: [AtomicU64; Outcome::ALL.len()],
    /// Items handed to `export` whose export has not ended.
    items_in_flight: AtomicU64,
}

impl Counters {
    /// Items whose export ended with `outcome`.
    pub(crate) fn items(&self, outcome: Outcome) -> u64 {
        self.items[outcome as usize].load(Ordering::Relaxed)
    }

    /// Items in exports that have not ended.
    pub(crate) fn items_in_flight(&self) -> u64 {
        self.items_in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> OtlpExporterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OtlpExporterStats {
            exports: get(&self.exports),
            failed_exports: get(&self.failed_exports),
            in_doubt_exports: get(&self.in_doubt_exports),
            requests: get(&self.requests),
            retries: get(&self.retries),
            rejected_items: get(&self.rejected_items),
            bytes_sent: get(&self.bytes_sent),
        }
    }
}

/// How an export ended, for the self-metrics: exported, or the
/// `error.type` it is reported with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server accepted the items.
    Exported = 0,
    /// Accepted requests whose items the server rejected (partial
    /// success): `rejected`, the conventions' value.
    Rejected,
    /// The timeout passed: ours, with the request on the wire or before a
    /// retry could start, or the caller's (a processor that dropped the
    /// export at its own timeout).
    Timeout,
    /// `export` after `shutdown`.
    AlreadyShutdown,
    /// The TLS handshake failed (not retried).
    Tls,
    /// Any other failure: a permanent error answer, retries used up, a
    /// connection that could not be made, a panic.
    Other,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 6] = [
        Self::Exported,
        Self::Rejected,
        Self::Timeout,
        Self::AlreadyShutdown,
        Self::Tls,
        Self::Other,
    ];

    /// The `error.type` value; `None` for success, where the conventions
    /// say it must not be set.
    pub(crate) fn error_type(self) -> Option<&'static str> {
        match self {
            Self::Exported => None,
            Self::Rejected => Some("rejected"),
            Self::Timeout => Some("timeout"),
            Self::AlreadyShutdown => Some("already_shutdown"),
            Self::Tls => Some("tls"),
            Self::Other => Some("_OTHER"),
        }
    }
}

/// The self-metrics' per-export histogram and its attribute sets.
#[derive(Debug)]
pub(crate) struct DurationMetric {
    pub(crate) histogram: opentelemetry::metrics::Histogram<f64>,
    /// Indexed by [`Outcome`].
    pub(crate) attributes: [Vec<opentelemetry::KeyValue>; Outcome::ALL.len()],
}

/// Accounts for one export's items when it ends, also when its future is
/// dropped before it ends (counted as [`Outcome::Timeout`]: our processors
/// drop an export at their export timeout).
struct Accounting {
    counters: Arc<Counters>,
    items: u64,
    duration: Option<(Arc<DurationMetric>, Instant)>,
    ended: Option<(Outcome, u64)>,
}

impl Accounting {
    /// How the export ended; accounted when `self` drops.
    fn end(&mut self, outcome: Outcome, rejected: u64) {
        self.ended = Some((outcome, rejected));
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        let c = &self.counters;
        let (outcome, rejected) = self.ended.unwrap_or((Outcome::Timeout, 0));
        let rejected = rejected.min(self.items);
        c.items[outcome as usize].fetch_add(self.items - rejected, Ordering::Relaxed);
        c.items[Outcome::Rejected as usize].fetch_add(rejected, Ordering::Relaxed);
        c.items_in_flight.fetch_sub(self.items, Ordering::Relaxed);
        if let Some((metric, started)) = &self.duration {
            // A partial success is a successful operation (the full
            // success definitions of gRPC and HTTP): no `error.type`.
            metric.histogram.record(
                started.elapsed().as_secs_f64(),
                &metric.attributes[outcome as usize],
            );
        }
    }
}

/// A runtime that is shut down without waiting when dropped, so that an
/// exporter can be dropped anywhere, inside an async context included.
#[derive(Debug)]
struct OwnedRuntime(Mutex<Option<tokio::runtime::Runtime>>);

impl OwnedRuntime {
    fn stop(&self) {
        let runtime = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Aborts the request task when the export future is dropped (a processor
/// cutting the export at its timeout), so no retry outlives its export.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
pub(crate) struct Sender {
    runtime: OwnedRuntime,
    handle: tokio::runtime::Handle,
    transport: Arc<Transport>,
    endpoint: Arc<str>,
    timeout: Duration,
    retry: RetryPolicy,
    counters: Arc<Counters>,
    tls_error: Arc<Mutex<Option<TlsError>>>,
    bodies: Bodies,
    shut_down: AtomicBool,
    /// `otel.sdk.exporter.operation.duration`, when self-metrics are on.
    duration: Option<Arc<DurationMetric>>,
}

impl Sender {
    pub(crate) fn new(config: &Resolved, signal: Signal) -> Result<Self, OtlpConfigError> {
        // One I/O thread: an export is a few system calls once encoded, and
        // the encoding runs on the caller's thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-exporter-io")
            // Transport events (hyper, h2, tonic, our warnings) on this
            // thread must not become telemetry of the pipeline itself.
            .on_thread_start(crate::suppress_telemetry_on_this_thread)
            .enable_all()
            .build()
            .map_err(|e| OtlpConfigError::Runtime(e.to_string()))?;
        let handle = runtime.handle().clone();
        let transport = {
            let _inside = handle.enter();
            Transport::new(config, signal)?
        };
        Ok(Sender {
            runtime: OwnedRuntime(Mutex::new(Some(runtime))),
            handle,
            transport: Arc::new(transport),
            endpoint: config.url.to_string().into(),
            timeout: config.timeout,
            retry: config.retry,
            counters: Arc::default(),
            tls_error: Arc::default(),
            bodies: Bodies::default(),
            shut_down: AtomicBool::new(false),
            duration: None,
        })
    }

    /// Records each export's duration into `metric` from now on.
    pub(crate) fn set_duration_metric(&mut self, metric: DurationMetric) {
        self.duration = Some(Arc::new(metric));
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Where the latest TLS failure is kept.
    pub(crate) fn tls_error(&self) -> &Arc<Mutex<Option<TlsError>>> {
        &self.tls_error
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An empty buffer to encode a request into; reused across exports.
    pub(crate) fn body(&self) -> Vec<u8> {
        self.bodies.take()
    }

    /// Sends one encoded request (from [`body`](Self::body)) carrying
    /// `items` spans, log records or data points, retrying within the
    /// timeout. The returned future borrows nothing and may be polled on
    /// any executor.
    pub(crate) fn send(
        &self,
        encoded: Vec<u8>,
        items: u64,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        self.counters.exports.fetch_add(1, Ordering::Relaxed);
        self.counters
            .items_in_flight
            .fetch_add(items, Ordering::Relaxed);
        let mut accounting = Accounting {
            counters: Arc::clone(&self.counters),
            items,
            duration: self
                .duration
                .as_ref()
                .map(|metric| (Arc::clone(metric), Instant::now())),
            ended: None,
        };
        let task = if self.shut_down.load(Ordering::Acquire) {
            self.bodies.give_back(encoded);
            None
        } else {
            let body = self.transport.prepare(encoded, &self.bodies);
            Some(AbortOnDrop(self.handle.spawn(deliver(
                Arc::clone(&self.transport),
                body,
                Arc::clone(&self.endpoint),
                self.timeout,
                self.retry,
                Arc::clone(&self.counters),
                Arc::clone(&self.tls_error),
            ))))
        };
        let counters = Arc::clone(&self.counters);
        async move {
            let result = match task {
                None => Err((OTelSdkError::AlreadyShutdown, Outcome::AlreadyShutdown)),
                Some(mut task) => match (&mut task.0).await {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => Err((
                        OTelSdkError::InternalFailure("the OTLP request task panicked".to_owned()),
                        Outcome::Other,
                    )),
                    Err(_) => Err((OTelSdkError::AlreadyShutdown, Outcome::AlreadyShutdown)),
                },
            };
            match result {
                Ok(rejected) => {
                    accounting.end(Outcome::Exported, rejected);
                    Ok(())
                }
                Err((error, outcome)) => {
                    accounting.end(outcome, 0);
                    if let OTelSdkError::Timeout(_) = error {
                        counters.in_doubt_exports.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.failed_exports.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error)
                }
            }
        }
    }

    /// Refuses later exports and stops the I/O thread without waiting:
    /// both processors call this only after their last export returned.
    pub(crate) fn shutdown(&self) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.runtime.stop();
        Ok(())
    }
}

async fn deliver(
    transport: Arc<Transport>,
    body: bytes::Bytes,
    endpoint: Arc<str>,
    timeout: Duration,
    retry: RetryPolicy,
    counters: Arc<Counters>,
    tls_error: Arc<Mutex<Option<TlsError>>>,
) -> Result<u64, (OTelSdkError, Outcome)> {
    let deadline = Instant::now() + timeout;
    let failed = |reason: String| (OTelSdkError::InternalFailure(reason), Outcome::Other);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let (error, _) = failed(format!(
                "export to {endpoint} failed: the {timeout:?} timeout passed after {} refused \
                 attempt(s)",
                attempt - 1
            ));
            return Err((error, Outcome::Timeout));
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let outcome =
            tokio::time::timeout(remaining, transport.send(body.clone(), remaining)).await;
        let (reason, after) = match outcome {
            // The request was on the wire: it may have arrived. That is
            // `Timeout`, which the processors count as in doubt, not lost.
            Err(_elapsed) => return Err((OTelSdkError::Timeout(timeout), Outcome::Timeout)),
            Ok(Ok(response)) => {
                let partial = if transport.is_json() {
                    answer::partial_success_json(&response)
                } else {
                    answer::partial_success(&response)
                };
                if partial.rejected > 0 {
                    counters
                        .rejected_items
                        .fetch_add(partial.rejected, Ordering::Relaxed);
                    if let Some(held_back) = counters.warnings.admit() {
                        tracing::warn!(
                            similar_since_last_warning = held_back,
                            "{endpoint} rejected {} item(s) of an export: {}",
                            partial.rejected,
                            partial.message
                        );
                    }
                }
                return Ok(partial.rejected);
            }
            Ok(Err(Failure::Permanent(reason))) => {
                return Err(failed(format!("export to {endpoint} failed: {reason}")));
            }
            Ok(Err(Failure::Tls(failure))) => {
                let error = TlsError {
                    endpoint: endpoint.to_string(),
                    failure,
                };
                let message = format!("export failed, not retried: {error}");
                *tls_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                return Err((OTelSdkError::InternalFailure(message), Outcome::Tls));
            }
            Ok(Err(Failure::Retryable { reason, after })) => (reason, after),
        };
        if attempt >= retry.max_attempts {
            return Err(failed(format!(
                "export to {endpoint} failed after {attempt} attempt(s): {reason}"
            )));
        }
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        let seed = counters.requests.load(Ordering::Relaxed) ^ clock;
        let wait = after.unwrap_or_else(|| {
            answer::backoff(attempt - 1, retry.initial_backoff, retry.max_backoff, seed)
        });
        if Instant::now() + wait >= deadline {
            return Err(failed(format!(
                "export to {endpoint} failed: {reason}; no retry: waiting {wait:?} would pass \
                 the {timeout:?} timeout"
            )));
        }
        counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
    }
}
