//! Ctrl-C: SIGINT stops the producers, the queue is flushed within the
//! shutdown timeout, and the report still accounts for every span. One
//! test in its own binary, because the signal goes to the whole process.

mod pipeline;

use std::time::{Duration, Instant};

use otlp_receiver::{Receiver, ReceiverConfig};

#[test]
fn sigint_stops_flushes_and_reports() {
    pipeline::system::catch_sigint().expect("handler");
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let options = pipeline::options(&format!(
        "--duration 10m --rate 5000 --delay 50ms --endpoint {}",
        receiver.endpoint()
    ));
    let outcome = std::thread::scope(|scope| {
        let job = scope.spawn(|| pipeline::job::run(&options));
        // Interrupt once spans are arriving (bounded, so a broken job
        // fails the test instead of hanging it).
        let deadline = Instant::now() + Duration::from_secs(120);
        while receiver.stats().spans == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(receiver.stats().spans > 0, "spans never arrived");
        // SAFETY: raising a signal whose handler (installed above) only
        // stores to an atomic.
        assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
        job.join().expect("job thread")
    })
    .expect("the job ran");
    let stats = receiver.stop();
    let r = &outcome.runs[0];
    assert!(r.interrupted && outcome.interrupted());
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(
        stats.spans, r.exported,
        "the flush delivered what was queued"
    );
    assert_eq!(r.dropped.total(), 0, "{outcome}");
    assert_eq!(outcome.exit_code(), 130);
}
