//! Producer threads: a small service's telemetry made through the real
//! OpenTelemetry API. Traces: a server root span with one to four client or
//! internal children, three attributes each. Logs: one record per request
//! with a severity, a body and two attributes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// Items a producer makes between clock reads and rate checks.
const CHUNK: u64 = 64;

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

/// Paces a producer to `rate` items/s (0 = flat out).
struct Pace {
    rate: f64,
    started: Instant,
    made: u64,
}

impl Pace {
    fn wait(&mut self, made: u64) {
        self.made += made;
        if self.rate > 0.0 {
            let due = Duration::from_secs_f64(self.made as f64 / self.rate);
            if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
                thread::sleep(ahead.min(Duration::from_millis(100)));
            }
        }
    }
}

/// Ends spans on `tracer` until `shared.stop`, at `rate` spans/s.
pub fn spans<T>(id: u64, tracer: &T, shared: &Shared, rate: f64)
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut pace = Pace {
        rate,
        started: Instant::now(),
        made: 0,
    };
    while !shared.stop.load(Ordering::Acquire) {
        let mut made = 0;
        while made < CHUNK {
            let r = rng.next();
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
            let children = 1 + (r >> 60) % 4;
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
            made += 1 + children;
        }
        shared.emitted.fetch_add(made, Ordering::Relaxed);
        pace.wait(made);
    }
}

/// Emits log records on `logger` until `shared.stop`, at `rate` records/s.
pub fn logs<L: Logger>(id: u64, logger: &L, shared: &Shared, rate: f64) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut pace = Pace {
        rate,
        started: Instant::now(),
        made: 0,
    };
    while !shared.stop.load(Ordering::Acquire) {
        for _ in 0..CHUNK {
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
        }
        shared.emitted.fetch_add(CHUNK, Ordering::Relaxed);
        pace.wait(CHUNK);
    }
}

/// Starts `count` producer threads running `body(id)`.
pub fn start<F>(count: usize, body: F) -> Result<Vec<thread::JoinHandle<()>>, String>
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let body = Arc::new(body);
    (0..count)
        .map(|id| {
            let body = Arc::clone(&body);
            thread::Builder::new()
                .name(format!("producer-{id}"))
                .spawn(move || body(id as u64))
                .map_err(|e| format!("starting producer {id}: {e}"))
        })
        .collect()
}
