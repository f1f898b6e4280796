//! Scoped tasks that may borrow from the caller's stack.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use crate::job::{HeapJob, Mode, ThreadLatch};
use crate::registry::{Registry, WorkerThread};
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering};

/// A scope opened by
/// [`WorkStealingScheduler::scope`](crate::WorkStealingScheduler::scope).
///
/// Tasks spawned into it may borrow anything that outlives the `scope`
/// call; the call returns only after every one of them finished. If a task
/// panics, the other tasks still run and the first panic is resumed when
/// the scope ends.
pub struct Scope<'scope> {
    registry: Arc<Registry>,
    /// Tasks not yet finished, plus one for the scope body.
    pending: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    latch: ThreadLatch,
    /// Invariant in `'scope`, like `std::thread::Scope`.
    _marker: PhantomData<fn(&'scope ()) -> &'scope ()>,
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A pointer to the scope that may travel with a job.
struct ScopePtr<'scope>(*const Scope<'scope>);

// SAFETY: `Scope` is `Sync` (atomics, a mutex, a latch that is Sync); the
// pointer is only dereferenced while the scope waits for the job.
unsafe impl Send for ScopePtr<'_> {}

impl<'scope> ScopePtr<'scope> {
    fn get(&self) -> *const Scope<'scope> {
        self.0
    }
}

impl<'scope> Scope<'scope> {
    pub(crate) fn new(registry: Arc<Registry>, owner: &Thread) -> Self {
        Self {
            registry,
            pending: AtomicUsize::new(1),
            panic: Mutex::new(None),
            latch: ThreadLatch::new(owner),
            _marker: PhantomData,
        }
    }

    /// Spawns a task into the scope. It may borrow data that outlives the
    /// scope, and it gets the scope to spawn more tasks.
    ///
    /// From a worker of the pool the task goes to that worker's deque (with
    /// the priority of the task being run), otherwise into the normal
    /// priority injector. Once the pool is shut down the task runs inline
    /// on the calling thread instead.
    pub fn spawn<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let scope_ptr = ScopePtr(self as *const Self);
        let job = HeapJob::new(
            move |_registry: &Registry| {
                let ptr = scope_ptr.get();
                // SAFETY: the scope does not return before `pending` drops
                // to zero, which happens only in `job_done` below.
                let scope = unsafe { &*ptr };
                if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(scope))) {
                    scope.record_panic(payload);
                }
                // SAFETY: `ptr` is alive until this call returns.
                unsafe { Scope::job_done(ptr) };
            },
            false,
        );
        // SAFETY: `f` borrows only data outliving 'scope, and the scope
        // waits for this job before it returns (pending was incremented).
        let job_ref = unsafe { job.into_job_ref() };
        if let Err(job_ref) = self.registry.submit_internal(job_ref) {
            // The pool runs nothing any more: run the task here.
            // SAFETY: the job was not queued, so this is its one execution.
            unsafe { job_ref.execute(&self.registry, Mode::Run) };
        }
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = self.panic.lock();
        if slot.is_none() {
            *slot = Some(payload);
            return;
        }
        drop(slot);
        // Only the first panic is resumed. This one's Drop is user code:
        // run it outside the lock and never let it unwind past the task
        // (the scope would wait for a `job_done` that never comes).
        self.registry.dispose(payload);
    }

    /// One task (or the body) finished.
    ///
    /// # Safety
    /// `this` must be alive; it may dangle after the call.
    unsafe fn job_done(this: *const Self) {
        // SAFETY: alive per the contract; pending > 0 keeps it so.
        let pending = unsafe { &(*this).pending };
        if pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the owner waits for this latch, so it is alive.
            unsafe { ThreadLatch::set(&raw const (*this).latch) };
        }
    }

    /// The body finished: wait for every task, helping if on a worker.
    fn wait_all(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            return;
        }
        WorkerThread::with_current(|wt| match wt {
            Some(wt) if wt.belongs_to(&self.registry) => wt.wait_until(&self.latch),
            _ => self.latch.wait(),
        });
    }
}

/// Runs `op` with a fresh scope and waits for all its tasks.
pub(crate) fn run_scope<'scope, OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let owner = thread::current();
    let scope = Scope::new(Arc::clone(registry), &owner);
    let result = panic::catch_unwind(AssertUnwindSafe(|| op(&scope)));
    scope.wait_all();
    let task_panic = scope.panic.lock().take();
    if let Some(payload) = task_panic {
        // Drop the body's outcome before unwinding starts: a panic out of
        // a drop during unwinding aborts the process.
        match result {
            Ok(value) => drop(value),
            Err(body_panic) => registry.dispose(body_panic),
        }
        panic::resume_unwind(payload);
    }
    match result {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}
