//! Type-erased jobs as they sit in the deques, and the latches that tell a
//! waiting thread a job has finished.
//!
//! A [`JobRef`] is a data pointer plus the monomorphised function that
//! knows its type. Heap jobs (`spawn`, `submit`, scope tasks) own a `Box`;
//! stack jobs (the stolen side of `join`, calls from outside the pool) live
//! in the frame of a thread that does not return before the job's latch is
//! set. Keeping the deques to two words per entry and giving `join` a job
//! that needs no allocation is what makes fork-join cheap.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use crate::registry::Registry;
use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// What the worker wants done with a job it took from a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Run it.
    Run,
    /// `shutdown_now`: drop it if it may be dropped (a `spawn`/`submit`
    /// task); run it if a waiting thread depends on it.
    Discard,
}

/// A queued job: a pointer to its data and the function that runs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRef {
    pointer: *const (),
    execute_fn: unsafe fn(*const (), &Registry, Mode) -> bool,
}

// SAFETY: a JobRef is only created from jobs whose data is `Send` (the
// constructors require it), and each JobRef is executed exactly once, by
// whichever thread takes it from a queue.
unsafe impl Send for JobRef {}

impl JobRef {
    /// Whether both refer to the same job (same data pointer).
    #[inline]
    pub(crate) fn same_job(self, other: JobRef) -> bool {
        std::ptr::eq(self.pointer, other.pointer)
    }

    /// Runs (or, in [`Mode::Discard`], possibly drops) the job. Returns
    /// `true` when the job was dropped without running.
    ///
    /// # Safety
    /// Must be called exactly once per job, while the job's data is alive
    /// (which its constructor's contract guarantees until this call).
    pub(crate) unsafe fn execute(self, registry: &Registry, mode: Mode) -> bool {
        crate::sync::job_received();
        // SAFETY: forwarded from this function's contract.
        unsafe { (self.execute_fn)(self.pointer, registry, mode) }
    }
}

/// A boxed job: `spawn`/`submit` tasks (discardable) and scope tasks (not).
pub(crate) struct HeapJob<F> {
    f: F,
    discardable: bool,
}

impl<F> HeapJob<F>
where
    F: FnOnce(&Registry) + Send,
{
    /// Boxes `f`. `discardable` says whether `shutdown_now` may drop it.
    pub(crate) fn new(f: F, discardable: bool) -> Box<Self> {
        Box::new(Self { f, discardable })
    }

    /// Turns the box into a queue entry.
    ///
    /// # Safety
    /// Whatever `F` borrows must outlive the job's execution (trivially true
    /// for `F: 'static`; `scope` ensures it by waiting for all its jobs).
    pub(crate) unsafe fn into_job_ref(self: Box<Self>) -> JobRef {
        crate::sync::job_published();
        JobRef {
            pointer: Box::into_raw(self).cast::<()>().cast_const(),
            execute_fn: Self::execute,
        }
    }

    unsafe fn execute(this: *const (), registry: &Registry, mode: Mode) -> bool {
        // SAFETY: `this` came from `Box::into_raw` in `into_job_ref` and
        // `JobRef::execute` is called once, so we own the box again.
        let job = unsafe { Box::from_raw(this.cast_mut().cast::<Self>()) };
        if mode == Mode::Discard && job.discardable {
            // Dropping the closure drops its result slot, which tells the
            // task's handle it was cancelled. A panicking destructor (of a
            // captured value, or the handle's waker) must not take the
            // worker down; it is reported like a task panic.
            registry.contain(move || drop(job));
            return true;
        }
        (job.f)(registry);
        false
    }
}

impl<F> std::fmt::Debug for HeapJob<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapJob")
            .field("discardable", &self.discardable)
            .finish_non_exhaustive()
    }
}

const UNSET: usize = 0;
const SLEEPING: usize = 1;
const SET: usize = 2;

/// A one-shot latch whose owner may park until it is set.
///
/// The owner is the only thread that waits on it; it holds a pointer to a
/// `Thread` handle that lives at least as long as the latch. The setter
/// touches the latch only before it publishes `SET`: once the owner sees
/// `SET` it may return and free the latch.
#[derive(Debug)]
pub(crate) struct ThreadLatch {
    state: AtomicUsize,
    owner: *const Thread,
}

// SAFETY: the only non-thread-safe field is the `*const Thread`, which
// points to a `Thread` (itself `Send + Sync`) that outlives the latch and
// is only read, never written, through the pointer.
unsafe impl Send for ThreadLatch {}
// SAFETY: as above; the state is an atomic.
unsafe impl Sync for ThreadLatch {}

impl ThreadLatch {
    /// A latch owned by the thread `owner` names. `owner` must outlive the
    /// latch.
    pub(crate) fn new(owner: &Thread) -> Self {
        Self {
            state: AtomicUsize::new(UNSET),
            owner,
        }
    }

    /// Whether the latch is set.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// Sets the latch and wakes its owner if it parked.
    ///
    /// # Safety
    /// `this` must point to a live latch; after this call it may dangle.
    pub(crate) unsafe fn set(this: *const Self) {
        // SAFETY: the caller guarantees the latch is alive now; the owner
        // cannot free it before it observes SET, which only happens below.
        let latch = unsafe { &*this };
        match latch
            .state
            .compare_exchange(UNSET, SET, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(_) => {
                // The owner is parked (SLEEPING) and stays so until SET, so
                // the latch and the Thread it points to are alive here.
                // SAFETY: `owner` outlives the latch (constructor contract).
                let owner = unsafe { (*latch.owner).clone() };
                latch.state.store(SET, Ordering::Release);
                owner.unpark();
            }
        }
    }

    /// Blocks the owner (the current thread) until the latch is set.
    pub(crate) fn wait(&self) {
        if self
            .state
            .compare_exchange(UNSET, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Already SET (only the owner ever writes SLEEPING).
            return;
        }
        while self.state.load(Ordering::Acquire) != SET {
            thread::park();
        }
    }
}

/// How a stack job ended.
enum JobResult<R> {
    Pending,
    Ok(R),
    Panic(Box<dyn Any + Send>),
}

/// A job that lives on the stack of the thread that waits for it.
pub(crate) struct StackJob<F, R> {
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<JobResult<R>>,
    latch: ThreadLatch,
    _marker: PhantomData<R>,
}

// SAFETY: the cells are accessed by one thread at a time: the executor
// writes `func`/`result` before it sets the latch (Release), the owner reads
// them only after it observes the latch set (Acquire) or after it popped the
// job back, in which case no other thread has it.
unsafe impl<F: Send, R: Send> Sync for StackJob<F, R> {}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    /// A job whose latch is owned by the thread `owner` names.
    pub(crate) fn new(func: F, owner: &Thread) -> Self {
        Self {
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(JobResult::Pending),
            latch: ThreadLatch::new(owner),
            _marker: PhantomData,
        }
    }

    /// A queue entry for this job.
    ///
    /// # Safety
    /// The job must stay where it is until its latch is set or until the
    /// owner popped the entry back from its own deque.
    pub(crate) unsafe fn as_job_ref(&self) -> JobRef {
        crate::sync::job_published();
        JobRef {
            pointer: (self as *const Self).cast::<()>(),
            execute_fn: Self::execute,
        }
    }

    /// The job's latch.
    #[inline]
    pub(crate) fn latch(&self) -> &ThreadLatch {
        &self.latch
    }

    unsafe fn execute(this: *const (), _registry: &Registry, _mode: Mode) -> bool {
        let this = this.cast::<Self>();
        // SAFETY: the job is alive until its latch is set (as_job_ref's
        // contract) and this thread is the only one executing it.
        let func = unsafe { (*(*this).func.get()).take() };
        if let Some(func) = func {
            let result = match panic::catch_unwind(AssertUnwindSafe(func)) {
                Ok(value) => JobResult::Ok(value),
                Err(payload) => JobResult::Panic(payload),
            };
            // SAFETY: as above; the owner reads `result` only after the
            // latch is set below.
            unsafe { *(*this).result.get() = result };
        }
        // SAFETY: `this` is alive; after this call we do not touch it.
        unsafe { ThreadLatch::set(&raw const (*this).latch) };
        false
    }

    /// Runs the job on the owner's thread after popping it back. Takes the
    /// closure out in place rather than moving the whole job (a copy of the
    /// job's words that the closure call would then wait on).
    pub(crate) fn run_inline(&self) -> R {
        // SAFETY: the owner popped the job back from its own deque, so no
        // other thread has it or ever will.
        let func = unsafe { (*self.func.get()).take() };
        match func {
            Some(func) => func(),
            None => unreachable!("a stack job popped back by its owner was never run"),
        }
    }

    /// The result after the latch was set (`Err` carries the job's panic).
    pub(crate) fn into_result(self) -> thread::Result<R> {
        match self.result.into_inner() {
            JobResult::Ok(value) => Ok(value),
            JobResult::Panic(payload) => Err(payload),
            JobResult::Pending => unreachable!("stack job result read before its latch was set"),
        }
    }
}

impl<F, R> std::fmt::Debug for StackJob<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackJob")
            .field("latch", &self.latch)
            .finish_non_exhaustive()
    }
}
