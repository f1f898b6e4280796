//! The state one pool's workers share, and the worker loop itself.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::time::Instant;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use crate::Priority;
use crate::job::{JobRef, Mode, StackJob, ThreadLatch};
use crate::sleep::{Sleep, Wake};
use crate::stats::Counters;
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Backoff, Ordering, const_thread_local};

/// Number of priority levels, and so of injectors and deques per worker.
pub(crate) const PRIORITIES: usize = 3;

/// The closed bit of `Registry::submit_state`; the bits below count the
/// outside threads that are between their "is it open?" check and their
/// push.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// How many panics in a row, each raised by the `Drop` of the previous
/// panic's payload, are reported before the next payload is leaked rather
/// than dropped: a payload whose `Drop` always panics with another such
/// payload must not keep a worker busy forever.
const MAX_PAYLOAD_DROP_PANICS: usize = 16;

/// Called with every payload of a panicking task.
pub(crate) type PanicHandler = Arc<dyn Fn(&(dyn Any + Send)) + Send + Sync>;
/// Called with the worker index at thread start or exit.
pub(crate) type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;

/// What every worker of one pool shares.
pub(crate) struct Registry {
    injectors: [Injector<JobRef>; PRIORITIES],
    stealers: Vec<[Stealer<JobRef>; PRIORITIES]>,
    pub(crate) sleep: Sleep,
    pub(crate) counters: Vec<CachePadded<Counters>>,
    submit_state: AtomicUsize,
    terminate: AtomicBool,
    discard: AtomicBool,
    dropped: AtomicUsize,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) start_hook: Option<ThreadHook>,
    pub(crate) exit_hook: Option<ThreadHook>,
    #[cfg(feature = "monitor")]
    pub(crate) monitor: Option<Arc<otlp_monitor::ConcurrencyMonitor>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("workers", &self.stealers.len())
            .field("sleep", &self.sleep)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry for workers whose deques' stealers are `stealers`.
    pub(crate) fn new(stealers: Vec<[Stealer<JobRef>; PRIORITIES]>) -> Self {
        let workers = stealers.len();
        Self {
            injectors: [Injector::new(), Injector::new(), Injector::new()],
            stealers,
            sleep: Sleep::new(),
            counters: (0..workers).map(|_| CachePadded::default()).collect(),
            submit_state: AtomicUsize::new(0),
            terminate: AtomicBool::new(false),
            discard: AtomicBool::new(false),
            dropped: AtomicUsize::new(0),
            panic_handler: None,
            start_hook: None,
            exit_hook: None,
            #[cfg(feature = "monitor")]
            monitor: None,
        }
    }

    /// Number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    /// Whether new `spawn`/`submit` calls are refused.
    pub(crate) fn is_closed(&self) -> bool {
        self.submit_state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// An outside thread announces a push; `false` if the pool is closed.
    fn try_enter(&self) -> bool {
        let prev = self.submit_state.fetch_add(1, Ordering::SeqCst);
        if prev & CLOSED != 0 {
            self.submit_state.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn exit(&self) {
        self.submit_state.fetch_sub(1, Ordering::SeqCst);
    }

    /// Refuses new submissions and waits until every outside push that
    /// passed its check has landed in a queue (a handful of instructions).
    pub(crate) fn close(&self) {
        self.submit_state.fetch_or(CLOSED, Ordering::SeqCst);
        let backoff = Backoff::new();
        while self.submit_state.load(Ordering::SeqCst) & !CLOSED != 0 {
            backoff.snooze();
        }
    }

    /// Tells the workers to exit once no work is visible (`discard`: drop
    /// what is queued instead of running it) and wakes the sleepers.
    pub(crate) fn terminate(&self, discard: bool) {
        if discard {
            self.discard.store(true, Ordering::SeqCst);
        }
        self.terminate.store(true, Ordering::SeqCst);
        self.sleep.terminate();
    }

    /// Tasks dropped by `shutdown_now` since the last call.
    pub(crate) fn take_dropped(&self) -> usize {
        self.dropped.swap(0, Ordering::SeqCst)
    }

    /// Pushes `job` into the injector of priority `p` and wakes a worker if
    /// needed.
    fn inject(&self, p: Priority, job: JobRef) {
        self.injectors[p.index()].push(job);
        self.sleep.notify_work();
    }

    /// Queues the job `make` builds from `payload` — on the calling
    /// worker's own deque when called from one of this pool's workers, else
    /// on the injector — unless the pool is closed, in which case the
    /// payload is handed back.
    pub(crate) fn submit<T>(
        &self,
        p: Priority,
        payload: T,
        make: impl FnOnce(T) -> JobRef,
    ) -> Result<(), T> {
        WorkerThread::with_current(|wt| match wt {
            Some(wt) if wt.belongs_to(self) => {
                if self.is_closed() {
                    return Err(payload);
                }
                wt.push(p, make(payload));
                Ok(())
            }
            _ => {
                if !self.try_enter() {
                    return Err(payload);
                }
                self.inject(p, make(payload));
                self.exit();
                Ok(())
            }
        })
    }

    /// Like [`Registry::submit`] but for jobs that must run even after
    /// `shutdown` began (scope tasks): queued while any worker can still run
    /// them, else handed back for the caller to run inline.
    pub(crate) fn submit_internal(&self, job_payload: JobRef) -> Result<(), JobRef> {
        WorkerThread::with_current(|wt| match wt {
            Some(wt) if wt.belongs_to(self) => {
                wt.push(wt.priority.get(), job_payload);
                Ok(())
            }
            _ => {
                if !self.try_enter() {
                    return Err(job_payload);
                }
                self.inject(Priority::Normal, job_payload);
                self.exit();
                Ok(())
            }
        })
    }

    /// Whether any queue of the pool holds a job (a racy snapshot).
    pub(crate) fn has_visible_work(&self) -> bool {
        self.injectors.iter().any(|inj| !inj.is_empty())
            || self
                .stealers
                .iter()
                .any(|set| set.iter().any(|s| !s.is_empty()))
    }

    /// Reports a panic caught on this pool: counts it in the calling
    /// worker's `panicked` stat (when called on one of this pool's
    /// workers) and calls the panic handler, if any, shielding the caller
    /// from a panic inside the handler itself.
    pub(crate) fn report_panic(&self, payload: &(dyn Any + Send)) {
        WorkerThread::with_current(|wt| {
            if let Some(wt) = wt.filter(|wt| wt.belongs_to(self)) {
                wt.counters().bump_panicked();
            }
        });
        if let Some(handler) = &self.panic_handler
            && let Err(inner) = panic::catch_unwind(AssertUnwindSafe(|| handler(payload)))
        {
            drop_quietly(inner);
        }
    }

    /// Runs `f`, which runs user code that is not a task body (a
    /// destructor, a waker): a panic out of it is reported like a task
    /// panic and its payload disposed of, so it never unwinds into the
    /// worker loop.
    pub(crate) fn contain(&self, f: impl FnOnce()) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
            self.report_panic(&*payload);
            self.dispose(payload);
        }
    }

    /// Drops a panic payload that was already reported. Its `Drop` is user
    /// code and may panic in turn; that panic is reported and its payload
    /// dropped the same way, up to [`MAX_PAYLOAD_DROP_PANICS`] in a row,
    /// after which the last payload is leaked.
    pub(crate) fn dispose(&self, mut payload: Box<dyn Any + Send>) {
        for _ in 0..MAX_PAYLOAD_DROP_PANICS {
            match panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                Ok(()) => return,
                Err(next) => {
                    self.report_panic(&*next);
                    payload = next;
                }
            }
        }
        std::mem::forget(payload);
    }

    /// The submit time to carry with a task, when something will read it.
    pub(crate) fn enqueue_time(&self) -> Option<Instant> {
        #[cfg(feature = "monitor")]
        if self.monitor.is_some() {
            return Some(Instant::now());
        }
        None
    }

    /// Runs a user task: catches its panic (reporting it to the panic
    /// handler) and, under the `monitor` feature, records queue wait and
    /// run time. `f` includes whatever the task does with its result, so
    /// a panic while dropping an unwanted result is the task's panic.
    /// `Err` hands back the payload, already reported; the caller owns it
    /// and must [`dispose`](Self::dispose) of it or pass it on.
    pub(crate) fn run_task(
        &self,
        enqueued: Option<Instant>,
        f: impl FnOnce(),
    ) -> Result<(), Box<dyn Any + Send>> {
        #[cfg(feature = "monitor")]
        if let Some(monitor) = &self.monitor {
            let start = Instant::now();
            if let Some(enqueued) = enqueued {
                monitor.record_queue_wait(start.saturating_duration_since(enqueued));
            }
            monitor.record_task_start();
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            match &result {
                Ok(()) => monitor.record_task_completion(start.elapsed()),
                Err(payload) => {
                    monitor.record_task_failure_after(start.elapsed());
                    self.report_panic(&**payload);
                }
            }
            return result;
        }
        let _ = enqueued;
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        if let Err(payload) = &result {
            self.report_panic(&**payload);
        }
        result
    }

    /// Runs `op` on a worker of this pool: directly when the caller is one,
    /// else as a job injected into the pool while the caller blocks. When
    /// the pool no longer runs jobs, `op` runs on the caller with `None`.
    pub(crate) fn in_worker<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(Option<&WorkerThread>) -> R + Send,
        R: Send,
    {
        WorkerThread::with_current(|wt| match wt {
            Some(wt) if wt.belongs_to(self) => op(Some(wt)),
            _ => self.in_worker_cold(op),
        })
    }

    fn in_worker_cold<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(Option<&WorkerThread>) -> R + Send,
        R: Send,
    {
        if !self.try_enter() {
            return op(None);
        }
        let me = thread::current();
        let registry: &Registry = self;
        let job = StackJob::new(
            move || WorkerThread::with_current(|wt| op(wt.filter(|wt| wt.belongs_to(registry)))),
            &me,
        );
        // SAFETY: `job` stays in this frame until its latch is set: we wait
        // for it below before returning or unwinding. Jobs in the injector
        // are always executed (stack jobs are never discarded), by a worker
        // or by the final drain in `shutdown`.
        let job_ref = unsafe { job.as_job_ref() };
        self.inject(Priority::Normal, job_ref);
        self.exit();
        job.latch().wait();
        match job.into_result() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Runs (or discards) what is left in the injectors on the calling
    /// thread; used by `shutdown` after the workers exited.
    pub(crate) fn drain_injectors(&self) {
        let mode = if self.discard.load(Ordering::SeqCst) {
            Mode::Discard
        } else {
            Mode::Run
        };
        for injector in &self.injectors {
            loop {
                match injector.steal() {
                    Steal::Success(job) => {
                        // SAFETY: a job taken from a queue is executed once.
                        if unsafe { job.execute(self, mode) } {
                            self.dropped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
    }
}

const_thread_local! {
    static CURRENT: Cell<*const WorkerThread> = Cell::new(ptr::null());
}

/// A worker's own state, living on its thread's stack.
#[derive(Debug)]
pub(crate) struct WorkerThread {
    locals: [Worker<JobRef>; PRIORITIES],
    index: usize,
    registry: Arc<Registry>,
    thread: Thread,
    rng: Cell<u64>,
    /// Priority of the job being run, inherited by the jobs `join` pushes.
    priority: Cell<Priority>,
}

impl WorkerThread {
    /// Calls `f` with the current thread's worker state, if it is a worker.
    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerThread>) -> R) -> R {
        let ptr = CURRENT.with(Cell::get);
        if ptr.is_null() {
            f(None)
        } else {
            // SAFETY: CURRENT is set by `worker_main` to a WorkerThread in
            // its own frame and cleared before that frame ends; `f` runs on
            // this thread within that frame.
            f(Some(unsafe { &*ptr }))
        }
    }

    /// Whether this worker belongs to `registry`.
    #[inline]
    pub(crate) fn belongs_to(&self, registry: &Registry) -> bool {
        ptr::eq(Arc::as_ptr(&self.registry), registry)
    }

    /// This worker's index in its pool.
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.registry.counters[self.index]
    }

    /// Pushes a job on this worker's own deque and wakes a worker if none
    /// is searching.
    #[inline]
    pub(crate) fn push(&self, p: Priority, job: JobRef) {
        self.locals[p.index()].push(job);
        self.registry.sleep.notify_work();
    }

    /// Pushes the `b` side of a `join` on this worker's own deque. The
    /// worker pops it back or waits for it itself, so the wake-up may be
    /// the cheap unfenced one (see [`Sleep::notify_work_unfenced`]).
    #[inline]
    fn push_join(&self, p: Priority, job: JobRef) {
        self.locals[p.index()].push(job);
        self.registry.sleep.notify_work_unfenced();
    }

    fn next_random(&self) -> usize {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize
    }

    /// The next job this worker should run, highest priority first: its own
    /// deque, then the injector (a batch), then the other workers' deques
    /// (one job).
    pub(crate) fn find_work(&self) -> Option<(JobRef, Priority)> {
        for p in Priority::ALL {
            if let Some(job) = self.locals[p.index()].pop() {
                return Some((job, p));
            }
            if let Some(job) = self.steal(p) {
                return Some((job, p));
            }
        }
        None
    }

    fn steal(&self, p: Priority) -> Option<JobRef> {
        let registry = &*self.registry;
        let local = &self.locals[p.index()];
        // `is_empty` is a pair of loads; `steal*` on an empty queue costs a
        // fence (and an epoch pin for deques), so look before stealing. A
        // stale "empty" is harmless: a worker re-checks every queue after
        // a fence before it sleeps.
        loop {
            let mut retry = false;
            let injector = &registry.injectors[p.index()];
            if !injector.is_empty() {
                match injector.steal_batch_and_pop(local) {
                    Steal::Success(job) => return Some(job),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            let n = registry.stealers.len();
            if n > 1 {
                let start = self.next_random() % n;
                for k in 0..n {
                    let victim = (start + k) % n;
                    let stealer = &registry.stealers[victim][p.index()];
                    if victim == self.index || stealer.is_empty() {
                        continue;
                    }
                    // One job from a peer, not a batch (as the injector
                    // gives): a peer's deque holds mostly the stolen-able
                    // `b` halves of its own joins, oldest (largest) first.
                    // A batch would take several of them, which the thief
                    // then runs one after another while the peer, back at
                    // those frames, can only wait for them.
                    match stealer.steal() {
                        Steal::Success(job) => {
                            self.counters().bump_stolen();
                            return Some(job);
                        }
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Runs a job taken from a queue (or drops it during `shutdown_now`).
    pub(crate) fn execute(&self, job: JobRef, p: Priority) {
        let registry = &*self.registry;
        let mode = if registry.discard.load(Ordering::Relaxed) {
            Mode::Discard
        } else {
            Mode::Run
        };
        let prev = self.priority.replace(p);
        // SAFETY: a job taken from a queue is executed exactly once.
        let dropped = unsafe { job.execute(registry, mode) };
        self.priority.set(prev);
        if dropped {
            registry.dropped.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters().bump_executed();
        }
    }

    /// [`WorkerThread::execute`] kept out of line, for `join`'s rare path
    /// (a job pushed on top of `b` by `a`), so the hot path stays small.
    #[cold]
    #[inline(never)]
    fn execute_cold(&self, job: JobRef, p: Priority) {
        self.execute(job, p);
    }

    /// Helps with other work until `latch` is set, then parks if nothing
    /// is left to help with.
    #[cold]
    #[inline(never)]
    pub(crate) fn wait_until(&self, latch: &ThreadLatch) {
        let backoff = Backoff::new();
        while !latch.probe() {
            if let Some((job, p)) = self.find_work() {
                self.execute(job, p);
                backoff.reset();
                continue;
            }
            if backoff.is_completed() {
                latch.wait();
                return;
            }
            backoff.snooze();
        }
    }

    /// Helps with other work until `done()` holds or no work is visible.
    pub(crate) fn help_while(&self, done: impl Fn() -> bool) {
        while !done() {
            match self.find_work() {
                Some((job, p)) => self.execute(job, p),
                None => return,
            }
        }
    }

    /// Fork-join on this worker: `b` is pushed where others can steal it,
    /// `a` runs here, then `b` is popped back or awaited.
    pub(crate) fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let p = self.priority.get();
        let job_b = StackJob::new(b, &self.thread);
        // SAFETY: `job_b` stays in this frame until it is popped back below
        // or its latch is set (`wait_until`), on every path, panics of `a`
        // included (they are caught first).
        let job_b_ref = unsafe { job_b.as_job_ref() };
        self.push_join(p, job_b_ref);
        let result_a = panic::catch_unwind(AssertUnwindSafe(a));
        let popped_back = loop {
            if job_b.latch().probe() {
                break false;
            }
            match self.locals[p.index()].pop() {
                Some(job) if job.same_job(job_b_ref) => break true,
                Some(job) => self.execute_cold(job, p),
                None => {
                    self.wait_until(job_b.latch());
                    break false;
                }
            }
        };
        if popped_back {
            let result_a = match result_a {
                Ok(value) => value,
                Err(payload) => {
                    // `b` never runs; drop it now rather than while `a`'s
                    // panic unwinds, where a panicking drop would abort.
                    self.registry.contain(move || drop(job_b));
                    panic::resume_unwind(payload)
                }
            };
            // Popped back by its owner: a plain call, not counted as a job.
            return (result_a, job_b.run_inline());
        }
        let result_b = job_b.into_result();
        // Whatever is not resumed is dropped before unwinding starts: a
        // panic out of a drop during unwinding aborts the process.
        match (result_a, result_b) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (Err(payload), Err(other)) => {
                self.registry.dispose(other);
                panic::resume_unwind(payload)
            }
            (Err(payload), Ok(rb)) => {
                drop(rb);
                panic::resume_unwind(payload)
            }
            (Ok(ra), Err(payload)) => {
                drop(ra);
                panic::resume_unwind(payload)
            }
        }
    }

    /// The worker loop: run what is found, search with a short back-off,
    /// then sleep; exit on terminate once nothing is visible.
    fn run(&self) {
        let registry = &*self.registry;
        loop {
            if registry.discard.load(Ordering::SeqCst) {
                self.discard_all();
                return;
            }
            if let Some((job, p)) = self.find_work() {
                self.execute(job, p);
                continue;
            }
            let backoff = Backoff::new();
            let found = registry.sleep.search(
                || self.find_work(),
                || registry.has_visible_work(),
                // `shutdown` sets it only after every accepted push landed.
                || registry.terminate.load(Ordering::SeqCst),
                || {
                    if backoff.is_completed() {
                        false
                    } else {
                        backoff.snooze();
                        true
                    }
                },
                |wake| {
                    if wake == Wake::Woken {
                        self.counters().bump_parked();
                    }
                    backoff.reset();
                },
            );
            match found {
                Some((job, p)) => self.execute(job, p),
                None => {
                    if registry.discard.load(Ordering::SeqCst) {
                        self.discard_all();
                    }
                    return;
                }
            }
        }
    }

    /// `shutdown_now`: empties this worker's deques and the injectors,
    /// dropping what may be dropped and running what others wait for.
    fn discard_all(&self) {
        loop {
            let mut any = false;
            for p in Priority::ALL {
                while let Some(job) = self.locals[p.index()].pop() {
                    any = true;
                    self.execute(job, p);
                }
                loop {
                    match self.registry.injectors[p.index()].steal() {
                        Steal::Success(job) => {
                            any = true;
                            self.execute(job, p);
                        }
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
            }
            if !any {
                return;
            }
        }
    }
}

/// The body of one worker thread.
pub(crate) fn worker_main(
    registry: Arc<Registry>,
    index: usize,
    locals: [Worker<JobRef>; PRIORITIES],
) {
    let worker = WorkerThread {
        locals,
        index,
        registry,
        thread: thread::current(),
        rng: Cell::new(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) << 17)),
        priority: Cell::new(Priority::Normal),
    };
    CURRENT.with(|c| c.set(&raw const worker));
    let registry = &*worker.registry;
    if let Some(hook) = &registry.start_hook {
        registry.contain(|| hook(index));
    }
    worker.run();
    if let Some(hook) = &registry.exit_hook {
        registry.contain(|| hook(index));
    }
    CURRENT.with(|c| c.set(ptr::null()));
}

/// Drops the payload of a panic that nobody will be told about (the panic
/// handler's own); if that drop panics as well, its payload is leaked.
fn drop_quietly(payload: Box<dyn Any + Send>) {
    if let Err(next) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(next);
    }
}

/// Creates one worker's deques (LIFO for the owner, FIFO for thieves).
pub(crate) fn new_locals() -> [Worker<JobRef>; PRIORITIES] {
    [Worker::new_lifo(), Worker::new_lifo(), Worker::new_lifo()]
}

/// The stealers of one worker's deques.
pub(crate) fn stealers_of(locals: &[Worker<JobRef>; PRIORITIES]) -> [Stealer<JobRef>; PRIORITIES] {
    [
        locals[0].stealer(),
        locals[1].stealer(),
        locals[2].stealer(),
    ]
}
