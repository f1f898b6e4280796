//! The public pool type and its builder.

use std::any::Any;
use std::num::NonZeroUsize;

use crate::Priority;
use crate::error::{BuildError, ShutdownError, SubmitError, TaskError};
use crate::handle::{self, TaskHandle};
use crate::job::HeapJob;
use crate::registry::{
    self, PanicHandler, Registry, ThreadHook, WorkerThread, new_locals, stealers_of,
};
use crate::scope::{self, Scope};
use crate::sleep::MAX_WORKERS;
use crate::stats::WorkerStats;
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{Arc, Mutex};

type NameFn = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// Configures and starts a [`WorkStealingScheduler`].
///
/// ```
/// use otlp_sched::Builder;
///
/// let pool = Builder::new()
///     .workers(2)
///     .thread_name(|i| format!("cpu-{i}"))
///     .panic_handler(|_payload| eprintln!("a task panicked"))
///     .build()?;
/// assert_eq!(pool.workers(), 2);
/// # Ok::<(), otlp_sched::BuildError>(())
/// ```
#[must_use]
pub struct Builder {
    workers: Option<usize>,
    thread_name: Option<NameFn>,
    stack_size: Option<usize>,
    start_hook: Option<ThreadHook>,
    exit_hook: Option<ThreadHook>,
    panic_handler: Option<PanicHandler>,
    #[cfg(feature = "numa")]
    placement: Option<otlp_numa::Placement>,
    #[cfg(feature = "monitor")]
    monitor: Option<Arc<otlp_monitor::ConcurrencyMonitor>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per CPU this process may run
    /// on, threads named `otlp-sched-<index>`, the platform's stack size, no
    /// hooks, no panic handler.
    pub fn new() -> Self {
        Self {
            workers: None,
            thread_name: None,
            stack_size: None,
            start_hook: None,
            exit_hook: None,
            panic_handler: None,
            #[cfg(feature = "numa")]
            placement: None,
            #[cfg(feature = "monitor")]
            monitor: None,
        }
    }

    /// The number of worker threads (0 makes `build` fail with
    /// [`BuildError::ZeroWorkers`]).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Names worker `i` `name(i)`.
    pub fn thread_name(mut self, name: impl Fn(usize) -> String + Send + Sync + 'static) -> Self {
        self.thread_name = Some(Arc::new(name));
        self
    }

    /// Stack size of each worker in bytes (0 makes `build` fail).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Called on each worker thread, with its index, before it runs tasks.
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.start_hook = Some(Arc::new(hook));
        self
    }

    /// Called on each worker thread, with its index, when it exits.
    pub fn on_thread_exit(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.exit_hook = Some(Arc::new(hook));
        self
    }

    /// Called, on the worker, with the payload of every panicking task
    /// (and of a panicking hook). The worker survives either way; a task's
    /// handle still receives the payload afterwards.
    ///
    /// Panics out of destructors the worker runs are reported the same
    /// way: the result of a `submit` task whose handle was already dropped
    /// (the task then counts as failed, like a panicking task), a task
    /// dropped by `shutdown_now`, and a panic payload nobody takes (a
    /// `spawn` task's, or a `submit` task's whose handle is gone). A
    /// payload whose `Drop` panics is followed by that panic's payload,
    /// and so on; after 16 in a row the last one is leaked.
    pub fn panic_handler(
        mut self,
        handler: impl Fn(&(dyn Any + Send)) + Send + Sync + 'static,
    ) -> Self {
        self.panic_handler = Some(Arc::new(handler));
        self
    }

    /// Pins worker `i` to the `i`-th CPU set of the topology's plan for
    /// this placement; `build` fails if the plan or a pin fails.
    #[cfg(feature = "numa")]
    pub fn placement(mut self, placement: otlp_numa::Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Records each `spawn`/`submit` task's queue wait (submit to start),
    /// start, run time and failure into `monitor`.
    #[cfg(feature = "monitor")]
    pub fn monitor(mut self, monitor: Arc<otlp_monitor::ConcurrencyMonitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Starts the pool.
    pub fn build(self) -> Result<WorkStealingScheduler, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        if workers > MAX_WORKERS {
            return Err(BuildError::TooManyWorkers {
                requested: workers,
                max: MAX_WORKERS,
            });
        }
        if self.stack_size == Some(0) {
            return Err(BuildError::ZeroStackSize);
        }
        #[cfg(feature = "numa")]
        let plan = match self.placement {
            Some(placement) => Some(
                otlp_numa::Topology::detect()
                    .and_then(|topology| topology.plan(workers, placement))
                    .map_err(BuildError::Placement)?,
            ),
            None => None,
        };

        let locals: Vec<_> = (0..workers).map(|_| new_locals()).collect();
        let mut registry = Registry::new(locals.iter().map(stealers_of).collect());
        registry.panic_handler = self.panic_handler;
        registry.start_hook = self.start_hook;
        registry.exit_hook = self.exit_hook;
        #[cfg(feature = "monitor")]
        {
            registry.monitor = self.monitor;
        }
        let registry = Arc::new(registry);

        #[cfg(feature = "numa")]
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(workers);
        for (index, locals) in locals.into_iter().enumerate() {
            let name = match &self.thread_name {
                Some(name) => name(index),
                None => format!("otlp-sched-{index}"),
            };
            let mut builder = thread::Builder::new().name(name);
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let worker_registry = Arc::clone(&registry);
            #[cfg(feature = "numa")]
            let pin = plan
                .as_ref()
                .map(|plan| (plan[index].clone(), ready_tx.clone()));
            let spawned = builder.spawn(move || {
                #[cfg(feature = "numa")]
                if let Some((cpus, ready)) = pin {
                    let result = otlp_numa::pin_current_thread(&cpus);
                    // The receiver outlives every send (build waits for all).
                    let _ = ready.send((index, cpus, result));
                }
                registry::worker_main(worker_registry, index, locals);
            });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(source) => {
                    stop_threads(&registry, threads);
                    return Err(BuildError::Spawn { index, source });
                }
            }
        }
        let pool = WorkStealingScheduler {
            registry,
            threads: Mutex::new(threads),
            #[cfg(feature = "numa")]
            plan,
        };
        #[cfg(feature = "numa")]
        if pool.plan.is_some() {
            drop(ready_tx);
            let mut failure = None;
            for (worker, cpus, result) in ready_rx.iter() {
                if let Err(source) = result {
                    failure.get_or_insert(BuildError::Pin {
                        worker,
                        cpus,
                        source,
                    });
                }
            }
            if let Some(error) = failure {
                let _ = pool.shutdown();
                return Err(error);
            }
        }
        Ok(pool)
    }
}

fn stop_threads(registry: &Registry, threads: Vec<JoinHandle<()>>) {
    registry.close();
    registry.terminate(false);
    for handle in threads {
        let _ = handle.join();
    }
    registry.drain_injectors();
}

/// A work-stealing thread pool: per-worker crossbeam deques plus global
/// injectors, three priorities, random stealing, workers that sleep
/// when idle, and a graceful shutdown. See the [crate docs](crate).
pub struct WorkStealingScheduler {
    registry: Arc<Registry>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    #[cfg(feature = "numa")]
    plan: Option<Vec<otlp_numa::CpuSet>>,
}

impl std::fmt::Debug for WorkStealingScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkStealingScheduler")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl WorkStealingScheduler {
    /// A pool of `workers` threads with the default settings.
    pub fn new(workers: usize) -> Result<Self, BuildError> {
        Builder::new().workers(workers).build()
    }

    /// A [`Builder`] for a pool with more settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.registry.workers()
    }

    /// The index of the calling thread in the pool it works for, if it is
    /// a worker thread of any `WorkStealingScheduler`.
    pub fn current_worker_index() -> Option<usize> {
        WorkerThread::with_current(|wt| wt.map(WorkerThread::index))
    }

    /// Queues a fire-and-forget task at [`Priority::Normal`].
    ///
    /// From one of the pool's workers it goes to that worker's own deque;
    /// from any other thread into the global injector. A panic is caught
    /// and given to the panic handler. After `shutdown` began the task is
    /// handed back in [`SubmitError::ShutDown`].
    pub fn spawn<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_with_priority(Priority::Normal, f)
    }

    /// [`spawn`](Self::spawn) at a given priority.
    pub fn spawn_with_priority<F>(&self, priority: Priority, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let enqueued = self.registry.enqueue_time();
        self.registry
            .submit(priority, f, |f| {
                let job = HeapJob::new(
                    move |registry: &Registry| {
                        if let Err(payload) = registry.run_task(enqueued, f) {
                            // Nobody waits for it; its Drop may panic too.
                            registry.dispose(payload);
                        }
                    },
                    true,
                );
                // SAFETY: the closure is 'static.
                unsafe { job.into_job_ref() }
            })
            .map_err(SubmitError::ShutDown)
    }

    /// Queues a task at [`Priority::Normal`] and returns a handle to its
    /// result: [`TaskHandle::join`] blocks, `.await` does not.
    ///
    /// If the task panics the handle yields [`TaskError::Panicked`] with
    /// the payload (the panic handler sees it first); if `shutdown_now`
    /// drops it, [`TaskError::Cancelled`].
    pub fn submit<F, R>(&self, f: F) -> Result<TaskHandle<R>, SubmitError<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_with_priority(Priority::Normal, f)
    }

    /// [`submit`](Self::submit) at a given priority.
    pub fn submit_with_priority<F, R>(
        &self,
        priority: Priority,
        f: F,
    ) -> Result<TaskHandle<R>, SubmitError<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let enqueued = self.registry.enqueue_time();
        let (handle, completer) = handle::pair();
        self.registry
            .submit(priority, f, move |f| {
                let job = HeapJob::new(
                    move |registry: &Registry| {
                        let mut completer = Some(completer);
                        let ran = registry.run_task(enqueued, || {
                            let value = f();
                            // If the handle is gone this drops `value` here,
                            // inside the task: a panicking Drop is the
                            // task's panic.
                            if let Some(completer) = completer.take() {
                                completer.complete(Ok(value));
                            }
                        });
                        let Err(payload) = ran else { return };
                        match completer {
                            // The task panicked: the handle gets the payload,
                            // or, if it is gone, the payload is dropped here,
                            // and its Drop may panic as well.
                            Some(completer) => registry.contain(move || {
                                completer.complete(Err(TaskError::Panicked(payload)));
                            }),
                            // Completing panicked (the result's Drop or the
                            // handle's waker): the handle already holds its
                            // result, or is gone.
                            None => registry.dispose(payload),
                        }
                    },
                    true,
                );
                // SAFETY: the closure is 'static.
                unsafe { job.into_job_ref() }
            })
            .map_err(SubmitError::ShutDown)?;
        Ok(handle)
    }

    /// Runs `op` with a [`Scope`] whose tasks may borrow from the caller's
    /// stack, and returns once all of them finished. The first panic of a
    /// task (or of `op`) is resumed after that.
    ///
    /// ```
    /// let pool = otlp_sched::WorkStealingScheduler::new(2)?;
    /// let mut halves = [0u64; 2];
    /// let data: Vec<u64> = (1..=100).collect();
    /// pool.scope(|s| {
    ///     let (lo, hi) = halves.split_at_mut(1);
    ///     let (a, b) = data.split_at(50);
    ///     s.spawn(move |_| lo[0] = a.iter().sum());
    ///     s.spawn(move |_| hi[0] = b.iter().sum());
    /// });
    /// assert_eq!(halves[0] + halves[1], 5050);
    /// # Ok::<(), otlp_sched::BuildError>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R,
    {
        scope::run_scope(&self.registry, op)
    }

    /// Fork-join: runs `a` and `b`, possibly in parallel, and returns both
    /// results. On a worker of this pool `b` is pushed on the worker's deque
    /// (where idle workers can steal it) while `a` runs inline, then `b` is
    /// popped back or awaited; from another thread the whole call runs on a
    /// worker while the caller blocks. A panic in either side is resumed
    /// after both finished. After shutdown both run on the caller.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        // The common case, a join inside a join, in as few steps as
        // possible: one thread-local read and one pointer compare.
        WorkerThread::with_current(|wt| match wt {
            Some(wt) if wt.belongs_to(&self.registry) => wt.join(a, b),
            _ => self.join_cold(a, b),
        })
    }

    /// [`join`](Self::join) from a thread that is not one of this pool's
    /// workers.
    #[cold]
    #[inline(never)]
    fn join_cold<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        self.registry.in_worker(move |wt| match wt {
            Some(wt) => wt.join(a, b),
            None => (a(), b()),
        })
    }

    /// Whether `shutdown` or `shutdown_now` began.
    pub fn is_shut_down(&self) -> bool {
        self.registry.is_closed()
    }

    /// A snapshot of every worker's counters.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.registry
            .counters
            .iter()
            .enumerate()
            .map(|(i, c)| c.snapshot(i))
            .collect()
    }

    /// The CPU set each worker was planned to run on (index = worker), when
    /// the pool was built with a placement.
    #[cfg(feature = "numa")]
    pub fn placement_plan(&self) -> Option<&[otlp_numa::CpuSet]> {
        self.plan.as_deref()
    }

    /// Graceful shutdown: stops accepting tasks (later `spawn`/`submit`
    /// calls hand theirs back), runs everything already queued, and joins
    /// the worker threads. Tasks already queued may still use `join` and
    /// `scope`. Idempotent; a concurrent call waits for the first.
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        self.stop(false).map(|_| ())
    }

    /// Immediate shutdown: stops accepting tasks, drops every queued
    /// `spawn`/`submit` task that has not started (their handles yield
    /// [`TaskError::Cancelled`]), lets running tasks finish, joins the
    /// workers, and returns how many tasks were dropped. Queued halves of
    /// `join` and scope tasks still run, since a caller waits for them.
    pub fn shutdown_now(&self) -> Result<usize, ShutdownError> {
        self.stop(true)
    }

    fn on_own_worker(&self) -> bool {
        WorkerThread::with_current(|wt| wt.is_some_and(|wt| wt.belongs_to(&self.registry)))
    }

    fn stop(&self, discard: bool) -> Result<usize, ShutdownError> {
        if self.on_own_worker() {
            return Err(ShutdownError::OnWorkerThread);
        }
        let mut threads = self.threads.lock();
        self.registry.close();
        self.registry.terminate(discard);
        for handle in threads.drain(..) {
            // Workers catch every task panic; a join error cannot carry
            // anything we could act on.
            let _ = handle.join();
        }
        self.registry.drain_injectors();
        Ok(self.registry.take_dropped())
    }
}

impl Drop for WorkStealingScheduler {
    /// Shuts down gracefully (see [`WorkStealingScheduler::shutdown`]).
    /// When the last owner is dropped on one of the pool's own workers, the
    /// workers are told to drain and exit but are not joined.
    fn drop(&mut self) {
        if self.on_own_worker() {
            self.registry.close();
            self.registry.terminate(false);
            return;
        }
        let _ = self.stop(false);
    }
}
