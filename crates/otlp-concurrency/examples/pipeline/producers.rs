//! Producer threads: a small service's telemetry made through the real
//! OpenTelemetry API. Traces: a server root span with one to four client or
//! internal children, three attributes each. Logs: one record per request
//! with a severity, a body and two attributes. Metrics: per request, one
//! measurement on each of [`METRIC_INSTRUMENTS`] instruments, with one of
//! [`METRIC_ATTRIBUTE_SETS`] attribute sets taken in turn, so that every
//! collection holds at most instruments × attribute sets data points.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// Items a producer running flat out makes between stop checks and
/// updates of the shared count.
const CHUNK: u64 = 64;

/// The shortest sleep of a paced producer.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// Stack of a producer thread: making a span or a record is shallow, and
/// ten thousand default 2 MiB stacks would reserve 20 GiB.
const STACK_BYTES: usize = 256 << 10;

const ROOTS: [&str; 2] = ["GET /api/orders", "POST /api/orders"];
const CHILDREN: [&str; 5] = [
    "db.query",
    "cache.get",
    "kafka.produce",
    "auth.verify",
    "render.template",
];
const ROUTES: [&str; 4] = ["/api/orders", "/api/users", "/healthz", "/metrics"];

/// What every producer shares.
#[derive(Debug, Default)]
pub struct Shared {
    pub stop: AtomicBool,
    /// Items ended (spans) or emitted (log records) so far.
    pub emitted: AtomicU64,
}

/// xorshift64*: cheap variety for synthetic telemetry.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Paces a producer to `rate` items/s (0 = flat out) and keeps its share
/// of the shared count.
///
/// A paced producer makes an item only when its schedule says so: the
/// items it has made, this one included, divided by its rate, is never
/// after the time since it started. So it is never ahead of its rate,
/// whatever the number of producers, and it sleeps (parked, woken at once
/// by `stop`) rather than spinning between items.
struct Pace<'a> {
    rate: f64,
    started: Instant,
    made: u64,
    /// Made but not yet added to `shared.emitted`.
    unreported: u64,
    shared: &'a Shared,
}

impl<'a> Pace<'a> {
    fn new(rate: f64, shared: &'a Shared) -> Self {
        Pace {
            rate,
            started: Instant::now(),
            made: 0,
            unreported: 0,
            shared,
        }
    }

    /// Waits until `next` more items are due; `false` when the run stops
    /// first.
    fn until_due(&mut self, next: u64) -> bool {
        if self.rate <= 0.0 {
            return !self.shared.stop.load(Ordering::Acquire);
        }
        let due = Duration::from_secs_f64((self.made + next) as f64 / self.rate);
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return false;
            }
            let Some(ahead) = due.checked_sub(self.started.elapsed()) else {
                return true;
            };
            // About to sleep: what was made so far shows in the live line.
            self.report();
            // At least a millisecond: waking per item would cost more CPU
            // than making it. What falls due meanwhile is made on waking.
            thread::park_timeout(ahead.max(MIN_SLEEP));
        }
    }

    fn made(&mut self, n: u64) {
        self.made += n;
        self.unreported += n;
        if self.unreported >= CHUNK {
            self.report();
        }
    }

    fn report(&mut self) {
        if self.unreported > 0 {
            self.shared
                .emitted
                .fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
    }
}

impl Drop for Pace<'_> {
    fn drop(&mut self) {
        self.report();
    }
}

/// Ends spans on `tracer` until `shared.stop`, at `rate` spans/s.
pub fn spans<T>(id: u64, tracer: &T, shared: &Shared, rate: f64)
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut pace = Pace::new(rate, shared);
    loop {
        let r = rng.next();
        let children = 1 + (r >> 60) % 4;
        if !pace.until_due(1 + children) {
            return;
        }
        let route = ROUTES[(r >> 20) as usize % ROUTES.len()];
        let status: i64 = if r.is_multiple_of(50) { 500 } else { 200 };
        let root = tracer
            .span_builder(ROOTS[(r & 1) as usize])
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", status),
                KeyValue::new("cache.hit", r & 4 == 0),
            ])
            .start(tracer);
        let cx = Context::current_with_span(root);
        for c in 0..children {
            let name = CHILDREN[((r >> (8 * c)) as usize) % CHILDREN.len()];
            let kind = if (r >> c) & 2 == 0 {
                SpanKind::Client
            } else {
                SpanKind::Internal
            };
            tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes([
                    KeyValue::new("http.route", route),
                    KeyValue::new("http.response.status_code", status),
                    KeyValue::new("cache.hit", r & 8 == 0),
                ])
                .start_with_context(tracer, &cx)
                .end();
        }
        cx.span().end();
        pace.made(1 + children);
    }
}

/// Emits log records on `logger` until `shared.stop`, at `rate` records/s.
pub fn logs<L: Logger>(id: u64, logger: &L, shared: &Shared, rate: f64) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut pace = Pace::new(rate, shared);
    while pace.until_due(1) {
        let r = rng.next();
        let route = ROUTES[(r >> 20) as usize % ROUTES.len()];
        let error = r.is_multiple_of(50);
        let mut record = logger.create_log_record();
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        record.set_severity_number(if error {
            Severity::Error
        } else {
            Severity::Info
        });
        record.set_severity_text(if error { "ERROR" } else { "INFO" });
        record.set_body(AnyValue::from(if error {
            "request failed"
        } else {
            "request served"
        }));
        record.add_attribute("http.route", route);
        record.add_attribute("http.response.status_code", if error { 500 } else { 200 });
        logger.emit(record);
        pace.made(1);
    }
}

/// Instruments each metrics producer records to.
pub const METRIC_INSTRUMENTS: u64 = 3;

/// Status codes of the metric attribute sets.
const STATUSES: [i64; 2] = [200, 500];

/// Attribute sets the metrics producers use: every route with every status.
pub const METRIC_ATTRIBUTE_SETS: u64 = (ROUTES.len() * STATUSES.len()) as u64;

/// The instruments of `--signal metrics`, shared by every producer.
#[derive(Clone)]
pub struct Instruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    bytes: Counter<u64>,
}

impl Instruments {
    pub fn new(meter: &Meter) -> Self {
        Instruments {
            requests: meter
                .u64_counter("pipeline.requests")
                .with_description("Requests served.")
                .build(),
            duration: meter
                .f64_histogram("pipeline.request.duration")
                .with_description("Time to serve a request.")
                .with_unit("s")
                .build(),
            bytes: meter
                .u64_counter("pipeline.response.size")
                .with_description("Bytes of responses.")
                .with_unit("By")
                .build(),
        }
    }
}

/// Records to `instruments` until `shared.stop`, at `rate` measurements/s
/// ([`METRIC_INSTRUMENTS`] per request), the attribute sets taken in turn.
pub fn metrics(id: u64, instruments: &Instruments, shared: &Shared, rate: f64) {
    let mut rng = Rng(0x94D0_49BB_1331_11EB ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let sets: Vec<[KeyValue; 2]> = ROUTES
        .iter()
        .flat_map(|route| {
            STATUSES.iter().map(move |status| {
                [
                    KeyValue::new("http.route", *route),
                    KeyValue::new("http.response.status_code", *status),
                ]
            })
        })
        .collect();
    let mut turn = id as usize;
    let mut pace = Pace::new(rate, shared);
    while pace.until_due(METRIC_INSTRUMENTS) {
        let r = rng.next();
        let attributes = &sets[turn % sets.len()];
        turn += 1;
        instruments.requests.add(1, attributes);
        instruments
            .duration
            .record((r % 250_000) as f64 / 1e6, attributes);
        instruments.bytes.add(200 + (r >> 40) % 4096, attributes);
        pace.made(METRIC_INSTRUMENTS);
    }
}

/// Stops every producer: sets `stop`, then wakes the parked ones.
pub fn stop(shared: &Shared, handles: &[thread::JoinHandle<()>]) {
    shared.stop.store(true, Ordering::Release);
    for handle in handles {
        handle.thread().unpark();
    }
}

/// Starts `count` producer threads running `body(id)`. If one cannot be
/// started, the ones already running are stopped and joined.
pub fn start<F>(
    count: usize,
    shared: &Shared,
    body: F,
) -> Result<Vec<thread::JoinHandle<()>>, String>
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let mut handles = Vec::with_capacity(count);
    for id in 0..count {
        let body = Arc::clone(&body);
        let spawned = thread::Builder::new()
            .name(format!("producer-{id}"))
            .stack_size(STACK_BYTES)
            .spawn(move || body(id as u64));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stop(shared, &handles);
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(format!("starting producer {id} of {count}: {e}"));
            }
        }
    }
    Ok(handles)
}
