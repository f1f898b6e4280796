//! Dropping every element even when one element's destructor panics.

use core::mem;

/// Runs `drain`, and runs it once more if it unwinds, so that one panicking
/// destructor does not leak the elements after it (`Vec` behaves the same).
///
/// `drain` must be *resumable*: each call continues where the previous one
/// stopped and never drops an element twice (mark an element gone before
/// running its destructor). A second panic during the resumed run happens
/// while unwinding and aborts the process, exactly as a second panicking
/// element does in `Vec`'s drop; the first panic is the one that propagates.
pub(crate) fn drain_resuming(mut drain: impl FnMut()) {
    struct Resume<'a, F: FnMut()>(&'a mut F);

    impl<F: FnMut()> Drop for Resume<'_, F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }

    let resume = Resume(&mut drain);
    (resume.0)();
    // Finished without unwinding: nothing left to resume. `Resume` owns only
    // a borrow, so forgetting it leaks nothing.
    mem::forget(resume);
}
