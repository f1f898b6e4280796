//! The `tracing` feature: one WARN event per task at or above the
//! slow-task threshold, none below it.
#![cfg(all(feature = "tracing", not(loom)))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_monitor::ConcurrencyMonitor;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Default, Debug, Clone, PartialEq)]
struct Seen {
    level: Option<Level>,
    monitor: String,
    elapsed_ns: u64,
    threshold_ns: u64,
    succeeded: Option<bool>,
}

impl Visit for Seen {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "elapsed_ns" => self.elapsed_ns = value,
            "threshold_ns" => self.threshold_ns = value,
            _ => {}
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "succeeded" {
            self.succeeded = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "monitor" {
            self.monitor = value.to_owned();
        }
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

struct Collect(Arc<Mutex<Vec<Seen>>>);

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() != "otlp_monitor" {
            return;
        }
        let mut seen = Seen {
            level: Some(*event.metadata().level()),
            ..Seen::default()
        };
        event.record(&mut seen);
        self.0.lock().unwrap().push(seen);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn slow_tasks_emit_one_warn_event_each() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let monitor = ConcurrencyMonitor::builder()
        .name("export")
        .slow_task_threshold(Duration::from_millis(5))
        .build()
        .unwrap();
    tracing::subscriber::with_default(Collect(Arc::clone(&events)), || {
        monitor.record_task_completion(Duration::from_millis(4)); // fast
        monitor.record_task_completion(Duration::from_millis(5)); // at threshold
        monitor.record_task_failure_after(Duration::from_millis(9));
        monitor.record_task_failure(); // no latency, no event
    });
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].level, Some(Level::WARN));
    assert_eq!(events[0].monitor, "export");
    assert_eq!(events[0].elapsed_ns, 5_000_000);
    assert_eq!(events[0].threshold_ns, 5_000_000);
    assert_eq!(events[0].succeeded, Some(true));
    assert_eq!(events[1].elapsed_ns, 9_000_000);
    assert_eq!(events[1].succeeded, Some(false));
    assert_eq!(monitor.get_stats().slow_tasks, 2);
}

#[test]
fn no_threshold_no_events() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let monitor = ConcurrencyMonitor::new();
    tracing::subscriber::with_default(Collect(Arc::clone(&events)), || {
        monitor.record_task_completion(Duration::from_secs(3600));
    });
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(monitor.get_stats().slow_tasks, 0);
}
