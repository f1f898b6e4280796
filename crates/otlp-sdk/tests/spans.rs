//! The span processor's contract, driven through the real SDK API
//! (`SdkTracerProvider::builder().with_span_processor(..)`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Behaviour, TestExporter, eventually};
use opentelemetry::trace::{Span as _, Tracer, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use otlp_sdk::{
    BatchConfig, BatchSpanProcessor, ExportMode, OverflowPolicy, ProcessorStats, StatsReader,
};

fn config() -> BatchConfig {
    BatchConfig::default()
        .with_max_queue_size(256)
        .with_max_export_batch_size(32)
        .with_scheduled_delay(Duration::from_millis(20))
        .with_export_timeout(Duration::from_secs(5))
        // Whole batches only (clamped to the batch size): these tests
        // count exports in batches of `max_export_batch_size`.
        .with_export_threshold(usize::MAX)
}

fn build(exporter: TestExporter, config: BatchConfig, mode: ExportMode) -> BatchSpanProcessor {
    BatchSpanProcessor::builder(exporter)
        .with_batch_config(config)
        .with_export_mode(mode)
        .build()
        .unwrap()
}

fn provider(processor: BatchSpanProcessor) -> (SdkTracerProvider, StatsReader) {
    let stats = processor.stats_reader();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("checkout").build())
        .with_span_processor(processor)
        .build();
    (provider, stats)
}

fn end_spans(provider: &SdkTracerProvider, n: usize) {
    let tracer = provider.tracer("test");
    for i in 0..n {
        let mut span = tracer.start(format!("span-{i}"));
        span.end();
    }
}

fn assert_conserved(stats: ProcessorStats, emitted: u64) {
    assert_eq!(stats.emitted, emitted, "{stats:?}");
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt,
        "{stats:?}"
    );
    assert_eq!(stats.queue_depth + stats.in_flight, 0, "{stats:?}");
}

#[test]
fn every_sampled_span_is_exported_or_counted_as_dropped() {
    for mode in [ExportMode::Threaded, ExportMode::Inline] {
        let exporter = TestExporter::new(Behaviour::BlockingSleep(Duration::from_millis(1)));
        let record = Arc::clone(&exporter.record);
        // A queue small enough that four producers overflow it.
        let config = config()
            .with_max_queue_size(64)
            .with_max_export_batch_size(16);
        let (provider, stats) = provider(build(exporter, config, mode));
        let provider = Arc::new(provider);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let provider = Arc::clone(&provider);
                std::thread::spawn(move || end_spans(&provider, 2000))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        provider
            .shutdown_with_timeout(Duration::from_secs(10))
            .unwrap();
        let stats = stats.stats();
        assert_conserved(stats, 8000);
        assert_eq!(stats.exported, record.items.load(Ordering::SeqCst) as u64);
        assert_eq!(stats.dropped, stats.dropped_queue_full, "{stats:?}");
        assert_eq!(record.shutdowns.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn unsampled_spans_are_ignored() {
    let exporter = TestExporter::new(Behaviour::Ok);
    let record = Arc::clone(&exporter.record);
    let processor = build(exporter, config(), ExportMode::Threaded);
    let stats = processor.stats_reader();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .with_span_processor(processor)
        .build();
    end_spans(&provider, 100);
    provider.shutdown().unwrap();
    assert_eq!(stats.stats().emitted, 0);
    assert_eq!(record.items.load(Ordering::SeqCst), 0);
}

#[test]
fn the_resource_reaches_the_exporter_before_its_first_export() {
    let exporter = TestExporter::new(Behaviour::Ok);
    let record = Arc::clone(&exporter.record);
    let (provider, _) = provider(build(exporter, config(), ExportMode::Threaded));
    assert_eq!(
        record.service_name.lock().unwrap().as_deref(),
        Some("checkout")
    );
    end_spans(&provider, 100);
    provider.force_flush().unwrap();
    let names = record.names_at_export.lock().unwrap().clone();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|n| n.as_deref() == Some("checkout")),
        "{names:?}"
    );
    provider.shutdown().unwrap();
}

#[test]
fn force_flush_returns_after_everything_ended_before_it_is_exported() {
    let exporter = TestExporter::new(Behaviour::AsyncSleep(Duration::from_millis(5)));
    let record = Arc::clone(&exporter.record);
    // A long delay: only the flush can make the partial batch go out.
    let config = config().with_scheduled_delay(Duration::from_secs(3600));
    let (provider, stats) = provider(build(exporter, config, ExportMode::Threaded));
    end_spans(&provider, 70);
    provider.force_flush().unwrap();
    assert_eq!(record.items.load(Ordering::SeqCst), 70);
    let names = record.span_names.lock().unwrap().clone();
    assert!(names.contains(&"span-0".to_owned()) && names.contains(&"span-69".to_owned()));
    assert_eq!(stats.stats().exported, 70);
    provider.shutdown().unwrap();
}

#[test]
fn shutdown_returns_within_its_timeout_whatever_the_exporter_does() {
    for behaviour in [Behaviour::HangFirstAsync, Behaviour::HangFirstBlocking] {
        let exporter = TestExporter::new(behaviour);
        let config = config().with_export_timeout(Duration::from_secs(60));
        let (provider, stats) = provider(build(exporter, config, ExportMode::Threaded));
        end_spans(&provider, 10);
        let started = Instant::now();
        let result = provider.shutdown_with_timeout(Duration::from_millis(300));
        let took = started.elapsed();
        // The provider wraps each processor's error; ours is a Timeout.
        match &result {
            Err(OTelSdkError::Timeout(_)) => {}
            Err(OTelSdkError::InternalFailure(m)) if m.contains("Timeout(") => {}
            other => panic!("{behaviour:?}: expected a timeout, got {other:?}"),
        }
        // A bound on a wait that would otherwise hang, not a speed claim.
        assert!(
            took < Duration::from_secs(10),
            "{behaviour:?} took {took:?}"
        );
        let stats = stats.stats();
        assert_eq!(
            stats.emitted,
            stats.exported + stats.dropped + stats.in_doubt,
            "{stats:?}"
        );
        // Abandoned while running: in doubt, not known to be lost.
        assert_eq!(stats.in_doubt, 10, "{stats:?}");
    }
}

/// Flush and shutdown from the places where the SDK's async-runtime
/// processors hang: a current-thread runtime, a task on a one-worker
/// runtime, and a plain thread.
#[test]
fn flush_and_shutdown_return_from_any_thread_or_runtime() {
    fn exercise() {
        let exporter = TestExporter::new(Behaviour::AsyncSleep(Duration::from_millis(1)));
        let record = Arc::clone(&exporter.record);
        let config = config().with_scheduled_delay(Duration::from_secs(3600));
        let (provider, _) = provider(build(exporter, config, ExportMode::Threaded));
        end_spans(&provider, 40);
        provider.force_flush().unwrap();
        assert_eq!(record.items.load(Ordering::SeqCst), 40);
        end_spans(&provider, 5);
        provider
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(record.items.load(Ordering::SeqCst), 45);
    }
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async { exercise() });
    let one_worker = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    one_worker
        .block_on(async { tokio::spawn(async { exercise() }).await })
        .unwrap();
    std::thread::spawn(exercise).join().unwrap();
}

#[test]
fn a_hung_export_is_cut_at_the_timeout_and_the_next_batch_goes_out() {
    for (behaviour, mode) in [
        (Behaviour::HangFirstAsync, ExportMode::Inline),
        (Behaviour::HangFirstAsync, ExportMode::Threaded),
        (Behaviour::HangFirstBlocking, ExportMode::Threaded),
    ] {
        let exporter = TestExporter::new(behaviour);
        let record = Arc::clone(&exporter.record);
        let config = config()
            .with_max_export_batch_size(10)
            .with_export_timeout(Duration::from_millis(100));
        let (provider, stats) = provider(build(exporter, config, mode));
        end_spans(&provider, 10);
        eventually("the first export started", || {
            record.calls.load(Ordering::SeqCst) >= 1
        });
        end_spans(&provider, 10);
        eventually("the second batch was exported", || {
            record.items.load(Ordering::SeqCst) == 10
        });
        eventually("the hung batch counted as in doubt", || {
            stats.stats().in_doubt_batches == 1
        });
        provider
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{behaviour:?}/{mode:?}: {e}"));
        let stats = stats.stats();
        assert_conserved(stats, 20);
        assert_eq!(stats.exported, 10, "{behaviour:?}/{mode:?}: {stats:?}");
        assert_eq!(stats.in_doubt, 10, "{stats:?}");
        assert_eq!(stats.dropped_export_failed, 0, "{stats:?}");
    }
}

#[test]
fn a_panicking_exporter_is_caught_and_counted() {
    for mode in [ExportMode::Threaded, ExportMode::Inline] {
        let exporter = TestExporter::new(Behaviour::PanicFirst);
        let record = Arc::clone(&exporter.record);
        let config = config().with_max_export_batch_size(10);
        let (provider, stats) = provider(build(exporter, config, mode));
        end_spans(&provider, 10);
        eventually("the first export ran", || {
            record.calls.load(Ordering::SeqCst) >= 1
        });
        end_spans(&provider, 10);
        provider.force_flush().ok();
        provider
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let stats = stats.stats();
        assert_conserved(stats, 20);
        assert_eq!(stats.failed_batches, 1, "{mode:?}: {stats:?}");
        assert_eq!(stats.exported, 10, "{mode:?}: {stats:?}");
    }
}

#[test]
fn failed_exports_are_reported_by_flush_and_counted() {
    let exporter = TestExporter::new(Behaviour::Fail);
    let (provider, stats) = provider(build(exporter, config(), ExportMode::Threaded));
    end_spans(&provider, 5);
    assert!(provider.force_flush().is_err());
    let _ = provider.shutdown();
    let stats = stats.stats();
    assert_conserved(stats, 5);
    assert_eq!(stats.dropped_export_failed, 5);
}

/// `max_concurrent_exports` > 1 overlaps exports, for an exporter that
/// awaits and, in the threaded mode, for one that blocks its thread.
#[test]
fn concurrent_exports_really_overlap() {
    for (behaviour, mode) in [
        (
            Behaviour::AsyncSleep(Duration::from_millis(150)),
            ExportMode::Inline,
        ),
        (
            Behaviour::AsyncSleep(Duration::from_millis(150)),
            ExportMode::Threaded,
        ),
        (
            Behaviour::BlockingSleep(Duration::from_millis(150)),
            ExportMode::Threaded,
        ),
    ] {
        let exporter = TestExporter::new(behaviour);
        let record = Arc::clone(&exporter.record);
        let config = config()
            .with_max_export_batch_size(10)
            .with_max_concurrent_exports(4);
        let (provider, stats) = provider(build(exporter, config, mode));
        end_spans(&provider, 40);
        provider.force_flush().unwrap();
        assert_eq!(
            record.max_running.load(Ordering::SeqCst),
            4,
            "{behaviour:?}/{mode:?}: four batches of ten should have overlapped"
        );
        provider.shutdown().unwrap();
        assert_conserved(stats.stats(), 40);
    }
}

#[test]
fn block_on_overflow_exports_everything() {
    let exporter = TestExporter::new(Behaviour::BlockingSleep(Duration::from_millis(2)));
    let record = Arc::clone(&exporter.record);
    let config = config()
        .with_max_queue_size(16)
        .with_max_export_batch_size(8)
        .with_overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(30),
        });
    let (provider, stats) = provider(build(exporter, config, ExportMode::Threaded));
    let provider = Arc::new(provider);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let provider = Arc::clone(&provider);
            std::thread::spawn(move || end_spans(&provider, 300))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    provider.shutdown().unwrap();
    let stats = stats.stats();
    assert_conserved(stats, 600);
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(record.items.load(Ordering::SeqCst), 600);
}

#[test]
fn bad_values_in_code_are_typed_errors() {
    let result = BatchSpanProcessor::builder(TestExporter::new(Behaviour::Ok))
        .with_batch_config(BatchConfig::default().with_max_queue_size(0))
        .build();
    assert_eq!(result.err(), Some(otlp_sdk::ConfigError::ZeroQueueSize));
}
