//! The telemetry the pipeline carries: OTLP-shaped spans, and the producer
//! that makes them.
//!
//! A span is plain data with no heap allocation (names and attribute keys
//! are `&'static str` from a fixed vocabulary), so producing and emitting one
//! costs what a real SDK's `span.end()` costs: a copy into the queue.

/// OTLP `Span.SpanKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An OTLP `AnyValue` restricted to what the producers emit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue {
    Str(&'static str),
    Int(i64),
    Bool(bool),
}

/// An OTLP `KeyValue`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribute {
    pub key: &'static str,
    pub value: AttrValue,
}

/// Attributes per span: fixed, so a span never allocates.
pub const ATTRIBUTES: usize = 3;

/// One finished span, as an SDK hands it to its batch processor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zeroes for a root span (OTLP's "empty" parent).
    pub parent_span_id: [u8; 8],
    pub name: &'static str,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: [Attribute; ATTRIBUTES],
}

impl Span {
    /// Whether the span has a parent.
    pub fn has_parent(&self) -> bool {
        self.parent_span_id != [0; 8]
    }
}

/// Span names the producers pick from; the pipeline counts spans per name.
pub const NAMES: [&str; 8] = [
    "GET /api/orders",
    "POST /api/orders",
    "db.query",
    "cache.get",
    "kafka.produce",
    "auth.verify",
    "render.template",
    "GET /healthz",
];

const ROUTES: [&str; 4] = ["/api/orders", "/api/users", "/healthz", "/metrics"];

/// Makes spans that look like a small service's traces: a server root span
/// and a few client/internal children per trace, ids unique per producer.
#[derive(Debug)]
pub struct SpanFactory {
    rng: u64,
    producer: u64,
    sequence: u64,
    trace_id: [u8; 16],
    root_id: [u8; 8],
    children_left: u32,
}

impl SpanFactory {
    /// A factory for producer number `producer` (ids never collide across
    /// producers).
    pub fn new(producer: u64) -> Self {
        SpanFactory {
            rng: 0x9E37_79B9_7F4A_7C15
                ^ (producer.wrapping_add(1)).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            producer,
            sequence: 0,
            trace_id: [0; 16],
            root_id: [0; 8],
            children_left: 0,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: fast, good enough for synthetic telemetry.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next span, ending at `now_unix_nano`.
    pub fn next_span(&mut self, now_unix_nano: u64) -> Span {
        self.sequence += 1;
        let random = self.next_random();
        // Span ids: producer in the top 16 bits, sequence below; unique and
        // never zero.
        let span_id =
            ((self.producer & 0xFFFF) << 48 | (self.sequence & 0xFFFF_FFFF_FFFF)).to_be_bytes();
        let duration = 1_000 + random % 5_000_000;
        let (parent, kind, name) = if self.children_left == 0 {
            self.trace_id[..8].copy_from_slice(&random.to_be_bytes());
            self.trace_id[8..].copy_from_slice(&span_id);
            self.root_id = span_id;
            self.children_left = 1 + (random >> 60) as u32 % 4;
            let name = if random & 1 == 0 { NAMES[0] } else { NAMES[1] };
            ([0; 8], SpanKind::Server, name)
        } else {
            self.children_left -= 1;
            let name = NAMES[2 + (random >> 40) as usize % (NAMES.len() - 2)];
            let kind = if random & 2 == 0 {
                SpanKind::Client
            } else {
                SpanKind::Internal
            };
            (self.root_id, kind, name)
        };
        Span {
            trace_id: self.trace_id,
            span_id,
            parent_span_id: parent,
            name,
            kind,
            start_time_unix_nano: now_unix_nano.saturating_sub(duration),
            end_time_unix_nano: now_unix_nano,
            attributes: [
                Attribute {
                    key: "http.route",
                    value: AttrValue::Str(ROUTES[(random >> 20) as usize % ROUTES.len()]),
                },
                Attribute {
                    key: "http.status_code",
                    value: AttrValue::Int(if random.is_multiple_of(50) { 500 } else { 200 }),
                },
                Attribute {
                    key: "cache.hit",
                    value: AttrValue::Bool(random & 4 == 0),
                },
            ],
        }
    }
}
