//! What the job prints: a line per second on stderr, a final table (two
//! columns and the ratios with `--compare`) or JSON, and Prometheus text for
//! `--metrics-addr`.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_concurrency::monitor::ConcurrencyStats;
use otlp_concurrency::sdk::{ProcessorStats, StatsReader};
use otlp_receiver::{Finished, Histogram, Receiver};

use super::cli::{AgentFsync, Batching, Options, ProcessorKind, Protocol, SignalKind};
use super::exporters::Tally;
use super::producers::Shared;

fn per_sec(count: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Duration,
    pub emitted: u64,
    pub handed: u64,
    pub exported: u64,
    pub failed: u64,
    pub in_doubt: u64,
    pub received: Option<u64>,
    pub refused: Option<u64>,
    pub queue_depth: Option<u64>,
    /// Ours: items taken from the queue whose export has not finished.
    pub in_flight: Option<u64>,
    pub dropped: Option<u64>,
}

impl Sample {
    pub fn take(
        at: Duration,
        shared: &Shared,
        tally: &Tally,
        stats: Option<&StatsReader>,
        receiver: Option<&Receiver>,
    ) -> Self {
        let ours = stats.map(StatsReader::stats);
        let received = receiver.map(Receiver::stats);
        Sample {
            at,
            emitted: shared.emitted.load(Ordering::Relaxed),
            handed: tally.handed.load(Ordering::Relaxed),
            exported: tally.exported.load(Ordering::Relaxed),
            failed: tally.failed.load(Ordering::Relaxed),
            in_doubt: tally.in_doubt.load(Ordering::Relaxed),
            received: received.as_ref().map(|r| r.unique_items()),
            refused: received.as_ref().map(|r| r.refused),
            queue_depth: ours.map(|s| s.queue_depth),
            in_flight: ours.map(|s| s.in_flight),
            dropped: ours.map(|s| s.dropped),
        }
    }

    /// Items emitted whose export has not ended yet: queued or in flight
    /// (ours), or not yet handed over or not yet answered (the SDK's).
    pub fn unfinished(&self) -> u64 {
        match (self.queue_depth, self.in_flight) {
            (Some(queued), Some(in_flight)) => queued + in_flight,
            _ => self
                .emitted
                .saturating_sub(self.exported + self.failed + self.in_doubt),
        }
    }

    /// Prometheus text for `--metrics-addr`.
    pub fn prometheus(&self, kind: ProcessorKind) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind_: &str, help: &str, value: Option<u64>| {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind_}\n{name}{{processor=\"{}\"}} {value}",
                    kind.name()
                );
            }
        };
        metric(
            "otlp_pipeline_items_emitted_total",
            "counter",
            "Spans ended or log records emitted.",
            Some(self.emitted),
        );
        metric(
            "otlp_pipeline_items_exported_total",
            "counter",
            "Items in exports that succeeded.",
            Some(self.exported),
        );
        metric(
            "otlp_pipeline_items_export_failed_total",
            "counter",
            "Items in exports that failed.",
            Some(self.failed),
        );
        metric(
            "otlp_pipeline_items_in_doubt_total",
            "counter",
            "Items in exports that timed out: sent, perhaps received.",
            Some(self.in_doubt),
        );
        metric(
            "otlp_pipeline_items_received_total",
            "counter",
            "Items the embedded receiver decoded, each counted once.",
            self.received,
        );
        metric(
            "otlp_pipeline_requests_refused_total",
            "counter",
            "Requests the embedded receiver refused on purpose.",
            self.refused,
        );
        metric(
            "otlp_pipeline_items_dropped_total",
            "counter",
            "Items our processor dropped, any cause.",
            self.dropped,
        );
        metric(
            "otlp_pipeline_queue_depth",
            "gauge",
            "Items waiting in our processor's queue.",
            self.queue_depth,
        );
        out
    }
}

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Tick {
    pub at: Duration,
    pub emitted_per_sec: f64,
    pub exported_per_sec: f64,
    pub received_per_sec: Option<f64>,
    pub queue_depth: Option<u64>,
    pub dropped: Option<u64>,
    pub failed: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    /// `--agent-queue disk`: the agent's bytes on disk and items held on
    /// disk only, for the run's signal.
    pub agent_disk: Option<(u64, u64)>,
}

impl Tick {
    pub fn between(before: &Sample, after: &Sample, window: Option<&Histogram>) -> Self {
        let over = after.at.saturating_sub(before.at);
        let window = window.filter(|h| !h.is_empty());
        Tick {
            at: after.at,
            emitted_per_sec: per_sec(after.emitted.saturating_sub(before.emitted), over),
            exported_per_sec: per_sec(after.exported.saturating_sub(before.exported), over),
            received_per_sec: after
                .received
                .zip(before.received)
                .map(|(a, b)| per_sec(a.saturating_sub(b), over)),
            queue_depth: after.queue_depth,
            dropped: after.dropped,
            failed: after.failed,
            p50_ns: window.map(|h| h.quantile(0.5)),
            p99_ns: window.map(|h| h.quantile(0.99)),
            agent_disk: None,
        }
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>5.1}s] emitted/s {:>9.0}  exported/s {:>9.0}",
            self.at.as_secs_f64(),
            self.emitted_per_sec,
            self.exported_per_sec
        )?;
        if let Some(r) = self.received_per_sec {
            write!(f, "  received/s {r:>9.0}")?;
        }
        if let Some(q) = self.queue_depth {
            write!(f, "  queue {q:>6}")?;
        }
        if let Some(d) = self.dropped {
            write!(f, "  dropped {d}")?;
        }
        write!(f, "  failed {}", self.failed)?;
        if let Some((bytes, disk_only)) = self.agent_disk {
            write!(
                f,
                "  agent disk {} B ({disk_only} on disk only)",
                thousands(bytes)
            )?;
        }
        if let (Some(p50), Some(p99)) = (self.p50_ns, self.p99_ns) {
            write!(f, "  latency p50 {:.1} ms p99 {:.1} ms", ms(p50), ms(p99))?;
        }
        Ok(())
    }
}

/// The most items the receiver may have got from the agent: exported,
/// rejected upstream (the request arrived), dropped or left on disk (an
/// export may have been on the wire when it was given up).
fn agent_out_max(s: &otlp_agent::SignalStats) -> u64 {
    s.exported_items + s.rejected_upstream_items + s.dropped_items() + s.left_on_disk_items
}

/// The items known to be lost, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dropped {
    /// Ours: the queue was full (`OverflowPolicy::Drop`).
    pub queue_full: u64,
    /// Ours: ended after shutdown began, or left when its timeout expired.
    pub after_shutdown: u64,
    /// Exports the destination refused, or that could not be sent, after
    /// the exporter's retries.
    pub export_failed: u64,
    /// The SDK's processor: never handed to the exporter (its queue was
    /// full, or they were left at shutdown); it does not say which.
    pub never_exported: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.queue_full + self.after_shutdown + self.export_failed + self.never_exported
    }
}

/// `--via-agent`: the in-process otlp-agent's final figures for the run's
/// signal, taken after its shutdown.
#[derive(Debug, Clone)]
pub struct AgentHop {
    /// Where the exporter sent (the agent's listening URL).
    pub endpoint: String,
    /// Where the agent forwarded (the embedded receiver).
    pub upstream: String,
    /// The protocol of the agent's hop.
    pub upstream_protocol: Protocol,
    pub stats: otlp_agent::SignalStats,
    /// Items still queued when the agent's shutdown ran out of time
    /// (counted as dropped by the shutdown).
    pub left: u64,
    pub flush_time: Duration,
    /// `--agent-queue disk`: the disk queue; `None` with the memory queue.
    pub disk: Option<AgentDisk>,
}

/// `--agent-queue disk`: what the run saw of the agent's disk queue beyond
/// its final [`SignalStats`](otlp_agent::SignalStats) (which hold the
/// bytes on disk and the backlog on disk only at the end, the replays,
/// the writes and the fsync timings).
#[derive(Debug, Clone)]
pub struct AgentDisk {
    /// The temporary directory the queue lived in.
    pub dir: std::path::PathBuf,
    pub fsync: AgentFsync,
    /// The most bytes of the signal's segments seen during the run.
    pub peak_disk_bytes: u64,
    /// The most items seen held on disk only (the backlog beyond the
    /// memory the queue may use).
    pub peak_disk_only_items: u64,
    /// Why the directory could not be removed at the end; `None`: removed.
    pub removal_error: Option<String>,
}

/// `--signal metrics`: what a collection holds and how the exports went,
/// in data points.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricShape {
    /// Data points in a full collection: instruments × attribute sets.
    pub points_per_export: u64,
    pub instruments: u64,
    pub attribute_sets: u64,
    /// The PeriodicReader's interval.
    pub interval: Duration,
    /// The exporter's temporality, in words.
    pub temporality: &'static str,
    /// Data points handed to the exporter, over every export.
    pub handed: u64,
    /// Exports (collections handed to the exporter).
    pub exports: u64,
    /// Exports that held exactly `points_per_export` data points (the
    /// others held fewer: a collection before every attribute set was
    /// recorded to, or with delta temporality one with idle sets).
    pub full_exports: u64,
    /// Exports that held more than `points_per_export`: none should.
    pub over_full_exports: u64,
}

impl MetricShape {
    pub fn new(tally: &Tally, interval: Duration) -> Self {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        MetricShape {
            points_per_export: get(&tally.points_per_export),
            instruments: super::producers::METRIC_INSTRUMENTS,
            attribute_sets: super::producers::METRIC_ATTRIBUTE_SETS,
            interval,
            temporality: tally.temporality.get().copied().unwrap_or("cumulative"),
            handed: get(&tally.handed),
            exports: get(&tally.batches),
            full_exports: get(&tally.full_batches),
            over_full_exports: get(&tally.over_full_batches),
        }
    }

    /// The most data points the exports could hold: exports × points per
    /// full collection.
    pub fn expected(&self) -> u64 {
        self.exports * self.points_per_export
    }
}

/// The end of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub processor: ProcessorKind,
    /// Whose OTLP exporter: `ours` or `opentelemetry-otlp`.
    pub exporter: &'static str,
    pub signal: SignalKind,
    pub protocol: Protocol,
    pub endpoint: String,
    pub embedded: bool,
    pub producers: usize,
    pub batch_size: usize,
    pub queue_size: usize,
    pub concurrent_exports: usize,
    pub produce_time: Duration,
    pub flush_time: Duration,
    pub interrupted: bool,
    pub emitted: u64,
    /// What our processor counted as emitted (ours only).
    pub processor_emitted: Option<u64>,
    pub exported: u64,
    /// Items the embedded receiver got, each counted once.
    pub received: Option<u64>,
    /// Items the embedded receiver got a second time (a retried request
    /// that had in fact arrived).
    pub duplicates: Option<u64>,
    pub dropped: Dropped,
    /// Items whose export timed out or was abandoned at the shutdown
    /// deadline: sent, and perhaps received; not known to be lost.
    pub in_doubt: u64,
    pub batches: u64,
    pub failed_batches: u64,
    /// Requests the embedded receiver refused on purpose; each was retried
    /// by the exporter or ended its batch as failed.
    pub refused: Option<u64>,
    /// Requests our exporter sent again after a retryable answer.
    pub retries: Option<u64>,
    /// Requests the embedded receiver rejected as bad input.
    pub rejected: Option<u64>,
    pub requests: Option<u64>,
    pub wire_bytes: Option<u64>,
    pub service_names: BTreeMap<String, u64>,
    /// Process CPU time of the run less the receiver's threads.
    pub sender_cpu: Duration,
    pub receiver_cpu: Option<Duration>,
    pub latency_p50_ns: Option<u64>,
    pub latency_p99_ns: Option<u64>,
    pub latency_max_ns: Option<u64>,
    pub exports: ConcurrencyStats,
    pub first_error: Option<String>,
    pub shutdown_error: Option<String>,
    pub ticks: Vec<Tick>,
    /// `--via-agent`: the agent between the exporter and the receiver.
    pub agent: Option<AgentHop>,
    /// `--tls`: which hop is TLS, in words.
    pub tls: Option<String>,
    /// `--signal metrics`: data points per collection and per export
    /// (`emitted` counts measurements, `exported` and `received` data
    /// points).
    pub metrics: Option<MetricShape>,
}

impl RunReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: &Options,
        batching: &Batching,
        processor: ProcessorKind,
        protocol: Protocol,
        tally: &Tally,
        end: Sample,
        ours: Option<ProcessorStats>,
        receiver: Option<Finished>,
        cpu: Duration,
        produce_time: Duration,
        flush_time: Duration,
        interrupted: bool,
        shutdown_error: Option<String>,
        ticks: Vec<Tick>,
        agent: Option<AgentHop>,
    ) -> Self {
        let (dropped, in_doubt) = match &ours {
            // The PeriodicReader counts nothing: data points in failed
            // exports are lost, those in exports that timed out or were
            // never answered are in doubt.
            None if options.signal == SignalKind::Metrics => (
                Dropped {
                    export_failed: end.failed,
                    ..Dropped::default()
                },
                end.handed.saturating_sub(end.exported + end.failed),
            ),
            Some(s) => (
                Dropped {
                    queue_full: s.dropped_queue_full,
                    after_shutdown: s.dropped_after_shutdown,
                    export_failed: s.dropped_export_failed,
                    never_exported: 0,
                },
                s.in_doubt,
            ),
            // The SDK's processor counts nothing; what the exporter was
            // handed and never answered (a batch in flight when its
            // shutdown timed out) is in doubt like a timed-out export.
            None => (
                Dropped {
                    export_failed: end.failed,
                    never_exported: end.emitted.saturating_sub(end.handed),
                    ..Dropped::default()
                },
                end.handed.saturating_sub(end.exported + end.failed),
            ),
        };
        let receiver_cpu = receiver.as_ref().and_then(|r| r.cpu_time);
        let otlp = tally.otlp.get().map(|s| s.stats());
        let latency = receiver
            .as_ref()
            .map(|r| &r.latency)
            .filter(|h| !h.is_empty());
        RunReport {
            processor,
            exporter: options.exporter.name(),
            signal: options.signal,
            protocol,
            endpoint: tally.endpoint.clone(),
            embedded: receiver.is_some(),
            producers: options.producers,
            batch_size: batching.batch_size,
            queue_size: batching.queue_size,
            concurrent_exports: match processor {
                // The PeriodicReader exports one collection at a time.
                _ if options.signal == SignalKind::Metrics => 1,
                ProcessorKind::Ours => batching.concurrent_exports,
                ProcessorKind::Sdk => 1,
            },
            produce_time,
            flush_time,
            interrupted,
            emitted: end.emitted,
            processor_emitted: ours.map(|s| s.emitted),
            exported: end.exported,
            received: receiver.as_ref().map(|r| r.stats.unique_items()),
            duplicates: receiver.as_ref().map(|r| r.stats.duplicate_items),
            dropped,
            in_doubt,
            batches: tally.batches.load(Ordering::Relaxed),
            failed_batches: tally.failed_batches.load(Ordering::Relaxed),
            refused: receiver.as_ref().map(|r| r.stats.refused),
            retries: otlp.map(|s| s.retries),
            rejected: receiver.as_ref().map(|r| r.stats.rejected()),
            // The receiver's count where it is ours, else our exporter's.
            requests: receiver
                .as_ref()
                .map(|r| r.stats.requests())
                .or(otlp.map(|s| s.requests)),
            wire_bytes: receiver
                .as_ref()
                .map(|r| r.stats.wire_bytes)
                .or(otlp.map(|s| s.bytes_sent)),
            service_names: receiver
                .as_ref()
                .map(|r| r.stats.service_names.clone())
                .unwrap_or_default(),
            sender_cpu: cpu.saturating_sub(receiver_cpu.unwrap_or_default()),
            receiver_cpu,
            latency_p50_ns: latency.map(|h| h.quantile(0.5)),
            latency_p99_ns: latency.map(|h| h.quantile(0.99)),
            latency_max_ns: latency.map(|h| h.max()),
            exports: tally.exports.get_stats(),
            first_error: tally.first_error(),
            shutdown_error,
            ticks,
            agent,
            tls: None,
            metrics: None,
        }
    }

    /// Every emitted item was exported, dropped for a known cause, or is
    /// in doubt (`emitted == exported + dropped + in doubt`; ours must also
    /// have seen every item); and, with the embedded receiver, it got every
    /// exported item and nothing it was not sent (`exported <= received <=
    /// exported + in doubt`, duplicates counted once).
    pub fn conserved(&self) -> bool {
        self.accounted() && self.delivered() && self.agent_conserved()
    }

    /// With `--via-agent`, every hop holds ([`agent_in`](Self::agent_in),
    /// [`agent_kept`](Self::agent_kept), [`agent_out`](Self::agent_out));
    /// true without the agent.
    pub fn agent_conserved(&self) -> bool {
        self.agent_in() && self.agent_kept() && self.agent_out()
    }

    /// Exporter -> agent: the agent acknowledged every item of the
    /// exporter's successful exports, and nothing else but items of exports
    /// in doubt (`exported <= accepted <= exported + in doubt`). A request
    /// the agent refused (queue full) and the exporter sent again is counted
    /// once, when accepted.
    pub fn agent_in(&self) -> bool {
        self.agent.as_ref().is_none_or(|a| {
            let accepted = a.stats.accepted_items;
            self.exported <= accepted && accepted <= self.exported + self.in_doubt
        })
    }

    /// Inside the agent, after its shutdown: `accepted + replayed ==
    /// exported + rejected upstream + dropped + left on disk` (what the
    /// shutdown left is counted as dropped with the memory queue, as left
    /// on disk with the disk queue; nothing is replayed from a fresh
    /// directory), nothing queued, `unaccounted() == 0`.
    pub fn agent_kept(&self) -> bool {
        self.agent.as_ref().is_none_or(|a| {
            let s = &a.stats;
            s.unaccounted() == 0
                && s.queued_items == 0
                && s.accepted_items + s.replayed_items
                    == s.exported_items
                        + s.rejected_upstream_items
                        + s.dropped_items()
                        + s.left_on_disk_items
        })
    }

    /// Agent -> receiver: the receiver got every item the agent exported
    /// (duplicates of retried requests counted once) and nothing else but
    /// items the agent gave up on after sending (`agent exported <= received
    /// <= agent exported + rejected upstream + dropped + left on disk`).
    pub fn agent_out(&self) -> bool {
        match (&self.agent, self.received) {
            (Some(a), Some(received)) => {
                a.stats.exported_items <= received && received <= agent_out_max(&a.stats)
            }
            _ => true,
        }
    }

    /// `emitted == exported + dropped + in doubt`, on the sender's side.
    /// Metrics: measurements are aggregated, so they are not counted one by
    /// one; instead every data point handed to the exporter was exported,
    /// lost to a failed export or is in doubt, and no export held more
    /// than a full collection (`handed <= exports × points per export`).
    pub fn accounted(&self) -> bool {
        if let Some(m) = &self.metrics {
            return m.handed == self.exported + self.dropped.total() + self.in_doubt
                && m.over_full_exports == 0
                && m.handed <= m.expected();
        }
        self.emitted == self.exported + self.dropped.total() + self.in_doubt
            && self.processor_emitted.is_none_or(|n| n == self.emitted)
    }

    /// The receiver got what was exported, and perhaps some of what is in
    /// doubt, nothing else.
    pub fn delivered(&self) -> bool {
        self.received
            .is_none_or(|r| self.exported <= r && r <= self.exported + self.in_doubt)
    }

    /// Exported items per second over production and the final flush.
    pub fn exported_per_sec(&self) -> f64 {
        per_sec(self.exported, self.produce_time + self.flush_time)
    }

    /// Sender CPU per exported item, in nanoseconds.
    /// Metrics: per measurement recorded (a data point aggregates many).
    pub fn cpu_ns_per_item(&self) -> Option<f64> {
        let items = if self.metrics.is_some() {
            self.emitted
        } else {
            self.exported
        };
        (items > 0).then(|| self.sender_cpu.as_nanos() as f64 / items as f64)
    }

    /// What went wrong, in words; empty for a clean run.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let who = self.processor.name();
        if let Some(m) = self.metrics.as_ref().filter(|_| !self.accounted()) {
            out.push(format!(
                "{who}: {} data points handed to the exporter != {} exported + {} lost + {} in doubt, \
                 or more than {} exports × {} points ({} exports over full)",
                m.handed,
                self.exported,
                self.dropped.total(),
                self.in_doubt,
                m.exports,
                m.points_per_export,
                m.over_full_exports
            ));
        } else if !self.accounted() {
            out.push(format!(
                "{who}: {} emitted != {} exported + {} dropped + {} in doubt: items are unaccounted for",
                self.emitted,
                self.exported,
                self.dropped.total(),
                self.in_doubt
            ));
        }
        if let Some(received) = self.received.filter(|_| !self.delivered()) {
            out.push(format!(
                "{who}: the receiver got {received} {}, outside {} exported ..= {} exported + in doubt",
                self.signal.item(),
                self.exported,
                self.exported + self.in_doubt
            ));
        }
        if let Some(a) = &self.agent {
            let s = &a.stats;
            let item = self.signal.item();
            if !self.agent_in() {
                out.push(format!(
                    "{who}: the agent accepted {} {item}, outside {} exported ..= {} exported + in doubt",
                    s.accepted_items,
                    self.exported,
                    self.exported + self.in_doubt
                ));
            }
            if !self.agent_kept() {
                out.push(format!(
                    "{who}: the agent accepted {} {item} (+ {} replayed) != {} exported + {} rejected upstream + {} dropped + {} left on disk ({} queued, {} unaccounted)",
                    s.accepted_items,
                    s.replayed_items,
                    s.exported_items,
                    s.rejected_upstream_items,
                    s.dropped_items(),
                    s.left_on_disk_items,
                    s.queued_items,
                    s.unaccounted()
                ));
            }
            if let Some(received) = self.received.filter(|_| !self.agent_out()) {
                out.push(format!(
                    "{who}: the receiver got {received} {item}, outside the agent's {} exported ..= {} exported + rejected + dropped + left on disk",
                    s.exported_items,
                    agent_out_max(s)
                ));
            }
            if s.left_on_disk_items > 0 {
                out.push(format!(
                    "{who}: the agent's shutdown left {} {item} in its disk queue, removed with its temporary directory",
                    s.left_on_disk_items
                ));
            }
            if let Some(e) = a.disk.as_ref().and_then(|d| d.removal_error.as_deref()) {
                out.push(format!(
                    "{who}: the agent's disk queue directory was not removed: {e}"
                ));
            }
            if s.dropped_items() > 0 {
                out.push(format!(
                    "{who}: the agent dropped {} {item} ({} permanent error, {} max elapsed, {} shutdown)",
                    s.dropped_items(),
                    s.dropped_permanent_items,
                    s.dropped_max_elapsed_items,
                    s.dropped_shutdown_items
                ));
            }
        }
        if self.dropped.export_failed > 0 {
            out.push(format!(
                "{who}: {} {} lost to failed exports ({})",
                self.dropped.export_failed,
                self.signal.item(),
                self.first_error
                    .as_deref()
                    .unwrap_or("the export timed out")
            ));
        }
        if self.emitted > 0 && self.exported == 0 && self.dropped.export_failed == 0 {
            out.push(format!("{who}: nothing was exported to {}", self.endpoint));
        }
        if let Some(e) = &self.shutdown_error {
            out.push(format!("{who}: shutdown: {e}"));
        }
        out
    }
}

/// Every run of the job.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub runs: Vec<RunReport>,
    pub compare: bool,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

impl Outcome {
    pub fn conserved(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(RunReport::conserved)
    }

    pub fn problems(&self) -> Vec<String> {
        self.runs.iter().flat_map(RunReport::problems).collect()
    }

    pub fn interrupted(&self) -> bool {
        self.runs.iter().any(|r| r.interrupted)
    }

    /// 1 when items are unaccounted for; else 130 after Ctrl-C; else 1 on
    /// any other problem (items lost to failed exports, a failed shutdown);
    /// else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.conserved() {
            1
        } else if self.interrupted() {
            130
        } else if !self.problems().is_empty() {
            1
        } else {
            0
        }
    }

    /// (ours / sdk) for throughput, CPU per item and p99 latency, when both ran.
    fn ratios(&self) -> Option<(Option<f64>, Option<f64>, Option<f64>)> {
        let ours = self
            .runs
            .iter()
            .find(|r| r.processor == ProcessorKind::Ours)?;
        let sdk = self
            .runs
            .iter()
            .find(|r| r.processor == ProcessorKind::Sdk)?;
        let f = |x: Option<u64>| x.map(|v| v as f64);
        Some((
            ratio(ours.exported_per_sec(), sdk.exported_per_sec()),
            ours.cpu_ns_per_item()
                .zip(sdk.cpu_ns_per_item())
                .and_then(|(a, b)| ratio(a, b)),
            f(ours.latency_p99_ns)
                .zip(f(sdk.latency_p99_ns))
                .and_then(|(a, b)| ratio(a, b)),
        ))
    }

    pub fn to_json(&self) -> String {
        let runs: Vec<String> = self.runs.iter().map(run_json).collect();
        if !self.compare && runs.len() == 1 {
            return runs.into_iter().next().unwrap_or_default();
        }
        let num = |x: Option<f64>| x.map_or("null".to_owned(), |v| format!("{v:.3}"));
        let ratios = match self.ratios() {
            Some((t, c, l)) => format!(
                "{{\"exported_per_sec\":{},\"cpu_per_item\":{},\"latency_p99\":{}}}",
                num(t),
                num(c),
                num(l)
            ),
            None => "null".to_owned(),
        };
        format!(
            "{{\"compare\":true,\"runs\":[{}],\"ratios_ours_over_sdk\":{ratios},\"conserved\":{}}}",
            runs.join(","),
            self.conserved()
        )
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt<T: fmt::Display>(x: Option<T>) -> String {
    x.map_or("null".to_owned(), |v| v.to_string())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("null".to_owned(), |v| format!("{:.1}", v as f64 / 1e3))
}

fn run_json(r: &RunReport) -> String {
    let names: Vec<String> = r
        .service_names
        .iter()
        .map(|(name, n)| format!("{}:{n}", json_str(name)))
        .collect();
    let ticks: Vec<String> = r
        .ticks
        .iter()
        .map(|t| {
            format!(
                "{{\"at_s\":{:.3},\"emitted_per_sec\":{:.0},\"exported_per_sec\":{:.0},\"received_per_sec\":{},\"queue_depth\":{},\"p99_us\":{},\"agent_disk_bytes\":{}}}",
                t.at.as_secs_f64(),
                t.emitted_per_sec,
                t.exported_per_sec,
                opt(t.received_per_sec.map(|v| format!("{v:.0}"))),
                opt(t.queue_depth),
                us(t.p99_ns),
                opt(t.agent_disk.map(|(bytes, _)| bytes))
            )
        })
        .collect();
    let d = &r.dropped;
    format!(
        "{{\"processor\":{},\"exporter\":{},\"signal\":{},\"protocol\":{},\"endpoint\":{},\"embedded_receiver\":{},\
         \"producers\":{},\"batch_size\":{},\"queue_size\":{},\"concurrent_exports\":{},\
         \"produce_s\":{:.3},\"flush_s\":{:.3},\"interrupted\":{},\
         \"emitted\":{},\"exported\":{},\"received\":{},\"received_twice\":{},\"in_doubt\":{},\"dropped\":{},\
         \"dropped_queue_full\":{},\"dropped_after_shutdown\":{},\"dropped_export_failed\":{},\"dropped_never_exported\":{},\
         \"batches\":{},\"failed_batches\":{},\"refused_requests\":{},\"retries\":{},\"rejected_requests\":{},\
         \"requests\":{},\"wire_bytes\":{},\"exported_per_sec\":{:.0},\
         \"sender_cpu_s\":{:.4},\"receiver_cpu_s\":{},\"cpu_ns_per_item\":{},\
         \"latency_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}},\
         \"export_latency_us\":{{\"p50\":{:.1},\"p99\":{:.1}}},\
         \"service_names\":{{{}}},\"first_error\":{},\"shutdown_error\":{},\"accounted\":{},\"delivered\":{},\"agent\":{},\"tls\":{},\"metrics\":{},\"conserved\":{},\"ticks\":[{}]}}",
        json_str(r.processor.name()),
        json_str(r.exporter),
        json_str(r.signal.name()),
        json_str(r.protocol.name()),
        json_str(&r.endpoint),
        r.embedded,
        r.producers,
        r.batch_size,
        r.queue_size,
        r.concurrent_exports,
        r.produce_time.as_secs_f64(),
        r.flush_time.as_secs_f64(),
        r.interrupted,
        r.emitted,
        r.exported,
        opt(r.received),
        opt(r.duplicates),
        r.in_doubt,
        d.total(),
        d.queue_full,
        d.after_shutdown,
        d.export_failed,
        d.never_exported,
        r.batches,
        r.failed_batches,
        opt(r.refused),
        opt(r.retries),
        opt(r.rejected),
        opt(r.requests),
        opt(r.wire_bytes),
        r.exported_per_sec(),
        r.sender_cpu.as_secs_f64(),
        opt(r.receiver_cpu.map(|c| format!("{:.4}", c.as_secs_f64()))),
        opt(r.cpu_ns_per_item().map(|v| format!("{v:.1}"))),
        us(r.latency_p50_ns),
        us(r.latency_p99_ns),
        us(r.latency_max_ns),
        r.exports.p50.as_secs_f64() * 1e6,
        r.exports.p99.as_secs_f64() * 1e6,
        names.join(","),
        opt(r.first_error.as_deref().map(json_str)),
        opt(r.shutdown_error.as_deref().map(json_str)),
        r.accounted(),
        r.delivered(),
        agent_json(r),
        opt(r.tls.as_deref().map(json_str)),
        metrics_json(r),
        r.conserved(),
        ticks.join(",")
    )
}

/// The `metrics` object of a run's JSON; `null` but for `--signal metrics`.
/// The run's `emitted` counts measurements; `exported` and `received`
/// count data points.
fn metrics_json(r: &RunReport) -> String {
    let Some(m) = &r.metrics else {
        return "null".to_owned();
    };
    format!(
        "{{\"instruments\":{},\"attribute_sets\":{},\"points_per_export\":{},\"interval_s\":{:.3},\
         \"temporality\":{},\"exports\":{},\"full_exports\":{},\"over_full_exports\":{},\
         \"handed_points\":{},\"expected_points_at_most\":{}}}",
        m.instruments,
        m.attribute_sets,
        m.points_per_export,
        m.interval.as_secs_f64(),
        json_str(m.temporality),
        m.exports,
        m.full_exports,
        m.over_full_exports,
        m.handed,
        m.expected(),
    )
}

/// The `agent` object of a run's JSON; `null` without `--via-agent`.
fn agent_json(r: &RunReport) -> String {
    let Some(a) = &r.agent else {
        return "null".to_owned();
    };
    let s = &a.stats;
    format!(
        "{{\"endpoint\":{},\"upstream\":{},\"upstream_protocol\":{},\"accepted_items\":{},\"accepted_requests\":{},\
         \"refused_full_requests\":{},\"refused_full_items\":{},\"exported_items\":{},\"rejected_upstream_items\":{},\
         \"dropped_items\":{},\"left_items\":{},\"queued_items\":{},\"unaccounted\":{},\"retries\":{},\"flush_s\":{:.3},\
         \"queue\":{},\"disk\":{},\
         \"exporter_to_agent\":{},\"agent_accounted\":{},\"agent_to_receiver\":{}}}",
        json_str(&a.endpoint),
        json_str(&a.upstream),
        json_str(a.upstream_protocol.name()),
        s.accepted_items,
        s.accepted_requests,
        s.refused_full_requests,
        s.refused_full_items,
        s.exported_items,
        s.rejected_upstream_items,
        s.dropped_items(),
        a.left,
        s.queued_items,
        s.unaccounted(),
        s.retries,
        a.flush_time.as_secs_f64(),
        json_str(if a.disk.is_some() { "disk" } else { "memory" }),
        agent_disk_json(a),
        r.agent_in(),
        r.agent_kept(),
        r.agent_out(),
    )
}

/// The agent's `disk` object: `null` with the memory queue. `disk_bytes`
/// and `disk_only_items` are at the end (after the agent's shutdown), the
/// `peak_*` the most seen during the run.
fn agent_disk_json(a: &AgentHop) -> String {
    let Some(d) = &a.disk else {
        return "null".to_owned();
    };
    let s = &a.stats;
    format!(
        "{{\"dir\":{},\"dir_removed\":{},\"fsync\":{},\"disk_bytes\":{},\"peak_disk_bytes\":{},\
         \"disk_only_items\":{},\"peak_disk_only_items\":{},\"replayed_requests\":{},\"replayed_items\":{},\
         \"left_on_disk_items\":{},\"refused_disk_requests\":{},\"disk_writes\":{},\
         \"fsyncs\":{},\"fsync_mean_micros\":{},\"fsync_max_micros\":{}}}",
        json_str(&d.dir.to_string_lossy()),
        d.removal_error.is_none(),
        json_str(d.fsync.name()),
        s.disk_bytes,
        d.peak_disk_bytes,
        s.disk_only_items,
        d.peak_disk_only_items,
        s.replayed_requests,
        s.replayed_items,
        s.left_on_disk_items,
        s.refused_disk_requests,
        s.disk_writes,
        s.fsyncs,
        s.fsync_mean_micros,
        s.fsync_max_micros,
    )
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn count_cell(x: Option<u64>) -> String {
    x.map_or("-".to_owned(), thousands)
}

/// One item of the signal: `span`, `log record`.
fn singular(signal: SignalKind) -> &'static str {
    match signal {
        SignalKind::Traces => "span",
        SignalKind::Logs => "log record",
        SignalKind::Metrics => "data point",
    }
}

/// The rows of the final table, as (label, value) per run.
fn rows(r: &RunReport) -> Vec<(String, String)> {
    let ms_opt = |ns: Option<u64>| ns.map_or("-".to_owned(), |v| format!("{:.2} ms", ms(v)));
    let d = &r.dropped;
    let rows: Vec<(&str, String)> = vec![
        (
            "processor",
            if r.metrics.is_some() {
                "PeriodicReader".to_owned()
            } else {
                r.processor.name().to_owned()
            },
        ),
        ("exporter", r.exporter.to_owned()),
        (
            "endpoint",
            match (r.agent.is_some(), r.embedded, r.tls.is_some()) {
                (true, _, false) => format!("{} (agent)", r.endpoint),
                (true, _, true) => format!("{} (agent, TLS)", r.endpoint),
                (false, true, false) => format!("{} (embedded)", r.endpoint),
                (false, true, true) => format!("{} (embedded, TLS)", r.endpoint),
                _ => r.endpoint.clone(),
            },
        ),
        ("concurrent exports", r.concurrent_exports.to_string()),
        (
            "production / flush time",
            format!(
                "{:.2} s / {:.3} s",
                r.produce_time.as_secs_f64(),
                r.flush_time.as_secs_f64()
            ),
        ),
        ("emitted", thousands(r.emitted)),
        ("exported", thousands(r.exported)),
        ("received (each once)", count_cell(r.received)),
        ("received twice (retried)", count_cell(r.duplicates)),
        ("in doubt (timed out)", thousands(r.in_doubt)),
        ("dropped: queue full", thousands(d.queue_full)),
        ("dropped: after shutdown", thousands(d.after_shutdown)),
        ("dropped: export failed", thousands(d.export_failed)),
        ("dropped: never exported (sdk)", thousands(d.never_exported)),
        (
            "exports (failed)",
            format!("{} ({})", thousands(r.batches), thousands(r.failed_batches)),
        ),
        ("requests refused (retried)", count_cell(r.refused)),
        ("exporter retries", count_cell(r.retries)),
        ("requests rejected", count_cell(r.rejected)),
        (
            "requests / bytes on the wire",
            match (r.requests, r.wire_bytes) {
                (Some(q), Some(b)) => format!("{} / {}", thousands(q), thousands(b)),
                _ => "-".to_owned(),
            },
        ),
        ("exported/s", thousands(r.exported_per_sec().round() as u64)),
        (
            "sender CPU per exported item",
            r.cpu_ns_per_item()
                .map_or("-".to_owned(), |v| format!("{v:.0} ns")),
        ),
        (
            "sender / receiver CPU",
            format!(
                "{:.2} s / {}",
                r.sender_cpu.as_secs_f64(),
                r.receiver_cpu
                    .map_or("-".to_owned(), |c| format!("{:.2} s", c.as_secs_f64()))
            ),
        ),
        ("end -> received p50", ms_opt(r.latency_p50_ns)),
        ("end -> received p99", ms_opt(r.latency_p99_ns)),
        (
            "export call p50 / p99",
            format!(
                "{:.2} / {:.2} ms",
                r.exports.p50.as_secs_f64() * 1e3,
                r.exports.p99.as_secs_f64() * 1e3
            ),
        ),
        (
            "service.name received",
            if r.service_names.is_empty() {
                "-".to_owned()
            } else {
                r.service_names
                    .iter()
                    .map(|(n, c)| format!("{n} ({})", thousands(*c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "accounted",
            format!(
                "{} = {} + {} + {} in doubt {}",
                thousands(r.emitted),
                thousands(r.exported),
                thousands(d.total()),
                thousands(r.in_doubt),
                if r.accounted() {
                    "(holds)"
                } else {
                    "(VIOLATED)"
                }
            ),
        ),
        (
            "delivered",
            match r.received {
                None => "- (no embedded receiver)".to_owned(),
                Some(received) => format!(
                    "{} <= {} <= {} {}",
                    thousands(r.exported),
                    thousands(received),
                    thousands(r.exported + r.in_doubt),
                    if r.delivered() {
                        "(holds)"
                    } else {
                        "(VIOLATED)"
                    }
                ),
            },
        ),
    ];
    let holds = |ok: bool| if ok { "(holds)" } else { "(VIOLATED)" };
    let mut rows = rows;
    if let Some(tls) = &r.tls {
        rows.insert(3, ("tls", tls.clone()));
    }
    if let Some(m) = &r.metrics {
        for (label, value) in rows.iter_mut() {
            match *label {
                "emitted" => *label = "measurements recorded",
                "exported" => *label = "data points exported",
                "accounted" => {
                    *value = format!(
                        "{} handed = {} + {} + {} in doubt, <= {} {}",
                        thousands(m.handed),
                        thousands(r.exported),
                        thousands(d.total()),
                        thousands(r.in_doubt),
                        thousands(m.expected()),
                        holds(r.accounted())
                    )
                }
                _ => {}
            }
        }
        // No batch processor: no queue to overflow, no SDK processor.
        rows.retain(|(label, _)| {
            !matches!(
                *label,
                "dropped: queue full" | "dropped: after shutdown" | "dropped: never exported (sdk)"
            )
        });
        let at = rows
            .iter()
            .position(|(label, _)| *label == "data points exported")
            .map_or(rows.len(), |i| i + 1);
        rows.splice(
            at..at,
            [
                (
                    "metric reader",
                    format!("every {:.3} s, {}", m.interval.as_secs_f64(), m.temporality),
                ),
                (
                    "points per full export",
                    format!(
                        "{} instruments x {} sets = {}",
                        m.instruments, m.attribute_sets, m.points_per_export
                    ),
                ),
                (
                    "exports: full / all",
                    format!("{} / {}", thousands(m.full_exports), thousands(m.exports)),
                ),
                (
                    "expected (exports x points)",
                    format!(
                        "{} x {} = {}",
                        thousands(m.exports),
                        m.points_per_export,
                        thousands(m.expected())
                    ),
                ),
            ],
        );
    }
    if let Some(a) = &r.agent {
        let s = &a.stats;
        let out_max = agent_out_max(s);
        rows.extend([
            (
                "agent (in process)",
                format!("{} -> {}", a.endpoint, a.upstream),
            ),
            (
                "agent -> receiver protocol",
                a.upstream_protocol.name().to_owned(),
            ),
            (
                "agent queue",
                match &a.disk {
                    None => "memory".to_owned(),
                    Some(d) => format!("disk, fsync {}", d.fsync.name()),
                },
            ),
            (
                "agent: accepted (requests)",
                format!(
                    "{} ({})",
                    thousands(s.accepted_items),
                    thousands(s.accepted_requests)
                ),
            ),
            (
                "agent: refused, queue full",
                format!(
                    "{} requests / {} items",
                    thousands(s.refused_full_requests),
                    thousands(s.refused_full_items)
                ),
            ),
            ("agent: exported", thousands(s.exported_items)),
            (
                "agent: rejected upstream",
                thousands(s.rejected_upstream_items),
            ),
            (
                "agent: dropped (shutdown left)",
                format!("{} ({})", thousands(s.dropped_items()), thousands(a.left)),
            ),
            ("agent: upstream retries", thousands(s.retries)),
            (
                "agent: shutdown flush",
                format!("{:.3} s", a.flush_time.as_secs_f64()),
            ),
            (
                "hop exporter -> agent",
                format!(
                    "{} <= {} <= {} {}",
                    thousands(r.exported),
                    thousands(s.accepted_items),
                    thousands(r.exported + r.in_doubt),
                    holds(r.agent_in())
                ),
            ),
            (
                "agent: accepted = out",
                if a.disk.is_some() {
                    format!(
                        "{} + {} = {} + {} + {} + {} {}",
                        thousands(s.accepted_items),
                        thousands(s.replayed_items),
                        thousands(s.exported_items),
                        thousands(s.rejected_upstream_items),
                        thousands(s.dropped_items()),
                        thousands(s.left_on_disk_items),
                        holds(r.agent_kept())
                    )
                } else {
                    format!(
                        "{} = {} + {} + {} {}",
                        thousands(s.accepted_items),
                        thousands(s.exported_items),
                        thousands(s.rejected_upstream_items),
                        thousands(s.dropped_items()),
                        holds(r.agent_kept())
                    )
                },
            ),
            (
                "hop agent -> receiver",
                match r.received {
                    None => "-".to_owned(),
                    Some(received) => format!(
                        "{} <= {} <= {} {}",
                        thousands(s.exported_items),
                        thousands(received),
                        thousands(out_max),
                        holds(r.agent_out())
                    ),
                },
            ),
        ]);
        if let Some(d) = &a.disk {
            let at = rows
                .iter()
                .position(|(label, _)| *label == "hop exporter -> agent")
                .unwrap_or(rows.len());
            rows.splice(at..at, agent_disk_rows(s, d));
        }
    }
    rows.into_iter()
        .map(|(label, value)| {
            let label = if label == "sender CPU per exported item" && r.metrics.is_some() {
                "sender CPU per measurement".to_owned()
            } else if label == "sender CPU per exported item" {
                format!("sender CPU per exported {}", singular(r.signal))
            } else {
                label.to_owned()
            };
            (label, value)
        })
        .collect()
}

/// `--agent-queue disk`: the disk queue's rows, before the agent's checks.
fn agent_disk_rows(s: &otlp_agent::SignalStats, d: &AgentDisk) -> Vec<(&'static str, String)> {
    vec![
        (
            "agent: queue dir",
            format!(
                "{} ({})",
                d.dir.display(),
                if d.removal_error.is_none() {
                    "removed"
                } else {
                    "NOT removed"
                }
            ),
        ),
        (
            "agent: bytes on disk end / peak",
            format!(
                "{} / {}",
                thousands(s.disk_bytes),
                thousands(d.peak_disk_bytes)
            ),
        ),
        (
            "agent: on disk only end / peak",
            format!(
                "{} / {}",
                thousands(s.disk_only_items),
                thousands(d.peak_disk_only_items)
            ),
        ),
        (
            "agent: replayed requests / items",
            format!(
                "{} / {}",
                thousands(s.replayed_requests),
                thousands(s.replayed_items)
            ),
        ),
        ("agent: left on disk", thousands(s.left_on_disk_items)),
        (
            "agent: refused, disk error",
            format!("{} requests", thousands(s.refused_disk_requests)),
        ),
        (
            "agent: disk writes / fsyncs",
            format!("{} / {}", thousands(s.disk_writes), thousands(s.fsyncs)),
        ),
        (
            "agent: fsync mean / max",
            format!(
                "{} / {} us",
                thousands(s.fsync_mean_micros),
                thousands(s.fsync_max_micros)
            ),
        ),
    ]
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(first) = self.runs.first() else {
            return write!(f, "\n== pipeline: no run completed ==");
        };
        writeln!(
            f,
            "\n== pipeline: {} over {} ==",
            first.signal.item(),
            first.protocol.name(),
        )?;
        let batching = match &first.metrics {
            Some(m) => format!(
                "{} instruments x {} attribute sets, read every {:.3} s",
                m.instruments,
                m.attribute_sets,
                m.interval.as_secs_f64()
            ),
            None => format!("batch {}, queue {}", first.batch_size, first.queue_size),
        };
        writeln!(
            f,
            "  {} producers, {batching}{}",
            first.producers,
            if self.interrupted() {
                ", interrupted by Ctrl-C"
            } else {
                ""
            }
        )?;
        let columns: Vec<Vec<(String, String)>> = self.runs.iter().map(rows).collect();
        for (i, (label, _)) in columns[0].iter().enumerate() {
            write!(f, "  {label:<32}")?;
            for column in &columns {
                write!(f, " {:>26}", column[i].1)?;
            }
            writeln!(f)?;
        }
        if let Some((t, c, l)) = self.ratios() {
            let show = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}x"));
            write!(
                f,
                "  ours / sdk: exported/s {} (higher is better), CPU per {} {} (lower is better), \
                 p99 latency {} (lower is better)",
                show(t),
                singular(first.signal),
                show(c),
                show(l)
            )?;
        }
        Ok(())
    }
}
