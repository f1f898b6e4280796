//! A configurable SDK exporter for the contract tests: counts what it gets,
//! remembers the resource it was given, and can sleep (awaiting or blocking
//! its thread), hang, or panic.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// What each export does before it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Ok,
    /// `tokio::time::sleep` (an exporter that awaits).
    AsyncSleep(Duration),
    /// `std::thread::sleep` (an exporter that blocks its thread).
    BlockingSleep(Duration),
    /// The first export never finishes (awaiting forever); later ones are Ok.
    HangFirstAsync,
    /// The first export blocks its thread for a long time; later ones are Ok.
    HangFirstBlocking,
    /// The first export panics; later ones are Ok.
    PanicFirst,
    /// Every export fails.
    Fail,
}

#[derive(Debug, Default)]
pub struct Record {
    pub items: AtomicUsize,
    pub exports: AtomicUsize,
    pub calls: AtomicUsize,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub shutdowns: AtomicUsize,
    /// `service.name` as set by `set_resource`.
    pub service_name: Mutex<Option<String>>,
    /// `service.name` seen at each successful export.
    pub names_at_export: Mutex<Vec<Option<String>>>,
    pub span_names: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct TestExporter {
    pub record: Arc<Record>,
    pub behaviour: Behaviour,
    service_name: Option<String>,
}

impl TestExporter {
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            record: Arc::default(),
            behaviour,
            service_name: None,
        }
    }

    async fn export_n(&self, n: usize) -> OTelSdkResult {
        let r = &*self.record;
        let call = r.calls.fetch_add(1, Ordering::SeqCst);
        let now = r.running.fetch_add(1, Ordering::SeqCst) + 1;
        r.max_running.fetch_max(now, Ordering::SeqCst);
        let result = match self.behaviour {
            Behaviour::Ok => Ok(()),
            Behaviour::AsyncSleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Behaviour::BlockingSleep(d) => {
                std::thread::sleep(d);
                Ok(())
            }
            Behaviour::HangFirstAsync if call == 0 => std::future::pending().await,
            Behaviour::HangFirstBlocking if call == 0 => {
                std::thread::sleep(Duration::from_secs(30));
                Ok(())
            }
            Behaviour::PanicFirst if call == 0 => panic!("exporter panics on purpose"),
            Behaviour::Fail => Err(OTelSdkError::InternalFailure("failing on purpose".into())),
            _ => Ok(()),
        };
        r.running.fetch_sub(1, Ordering::SeqCst);
        if result.is_ok() {
            r.items.fetch_add(n, Ordering::SeqCst);
            r.exports.fetch_add(1, Ordering::SeqCst);
            r.names_at_export
                .lock()
                .unwrap()
                .push(self.service_name.clone());
        }
        result
    }

    fn remember(&mut self, resource: &Resource) {
        let name = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string());
        *self.record.service_name.lock().unwrap() = name.clone();
        self.service_name = name;
    }
}

impl SpanExporter for TestExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let names: Vec<String> = batch.iter().map(|s| s.name.to_string()).collect();
        let n = batch.len();
        let result = self.export_n(n).await;
        if result.is_ok() {
            self.record.span_names.lock().unwrap().extend(names);
        }
        result
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.record.shutdowns.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.remember(resource);
    }
}

impl LogExporter for TestExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let _scopes: Vec<&InstrumentationScope> = batch.iter().map(|(_, s)| s).collect();
        self.export_n(n).await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.record.shutdowns.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.remember(resource);
    }
}

/// Waits (bounded: a hang fails the test instead of stalling it) until
/// `cond` holds.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
