//! [`LockFreeStack`]: a Treiber stack with epoch-based reclamation.

use core::fmt;
use core::iter::FusedIterator;
use core::mem::ManuallyDrop;
use core::ptr;

use crossbeam_epoch::{self as epoch, Atomic, Owned, Shared};

use crate::sync::{Backoff, Ordering};

struct Node<T> {
    value: ManuallyDrop<T>,
    next: Atomic<Node<T>>,
    /// Number of nodes from this one to the bottom, this one included. A
    /// node's `next` never changes after it is published, so `depth` of the
    /// top node is the stack's length, with no shared counter to contend on.
    depth: usize,
}

/// A lock-free LIFO stack (Treiber stack).
///
/// Each push allocates one node and publishes it with a compare-and-swap on
/// the top pointer; each pop unlinks the top node with a compare-and-swap.
/// The classic hazards of this design are solved with crossbeam-epoch:
///
/// * **use-after-free**: a popper reads `top.next` while another thread
///   may pop and free `top`. Here nodes are only *retired* on pop
///   (`defer_destroy`) and freed once every thread that could still hold a
///   pointer to them has unpinned.
/// * **ABA**: a node's address cannot be reused while any thread that loaded
///   it is still pinned, so a compare-and-swap cannot succeed on a recycled
///   address.
///
/// Contention is handled with crossbeam-utils' exponential [`Backoff`]
/// after a failed compare-and-swap.
///
/// [`len`](Self::len) is exact and costs no shared counter: every node
/// records the depth below it.
///
/// [`Backoff`]: crate::Backoff
///
/// # Examples
///
/// ```
/// use otlp_lockfree::LockFreeStack;
///
/// let stack: LockFreeStack<i32> = (1..=3).collect();
/// stack.push(4);
/// assert_eq!(stack.len(), 4);
/// assert_eq!(stack.pop(), Some(4));
/// assert_eq!(stack.pop_all(), vec![3, 2, 1]);
/// assert!(stack.is_empty());
/// ```
pub struct LockFreeStack<T> {
    head: Atomic<Node<T>>,
}

// SAFETY: the stack owns its `T`s and moves each one out to exactly one
// popping thread; no `&T` is ever shared between threads, so `T: Send` is
// all that sending or sharing the stack requires.
unsafe impl<T: Send> Send for LockFreeStack<T> {}
// SAFETY: see the `Send` impl.
unsafe impl<T: Send> Sync for LockFreeStack<T> {}

impl<T> LockFreeStack<T> {
    /// Creates an empty stack.
    pub fn new() -> Self {
        Self {
            head: Atomic::null(),
        }
    }

    /// Pushes `value` on top.
    pub fn push(&self, value: T) {
        let guard = epoch::pin();
        let backoff = Backoff::new();
        let mut node = Owned::new(Node {
            value: ManuallyDrop::new(value),
            next: Atomic::null(),
            depth: 1,
        });
        let mut head = self.head.load(Ordering::Acquire, &guard);
        loop {
            // SAFETY: `head` was loaded while pinned, so if it is not null it
            // has not been freed (it is at most retired).
            node.depth = unsafe { head.as_ref() }.map_or(1, |h| h.depth + 1);
            node.next.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Acquire,
                &guard,
            ) {
                Ok(_) => return,
                Err(err) => {
                    head = err.current;
                    node = err.new;
                    backoff.spin();
                }
            }
        }
    }

    /// Pops the top item, or `None` when the stack is empty.
    pub fn pop(&self) -> Option<T> {
        let guard = epoch::pin();
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Acquire, &guard);
        loop {
            // SAFETY: loaded while pinned: not freed before `guard` drops.
            let node = unsafe { head.as_ref() }?;
            let next = node.next.load(Ordering::Relaxed, &guard);
            match self.head.compare_exchange_weak(
                head,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
                &guard,
            ) {
                Ok(_) => {
                    // SAFETY: the successful CAS unlinked `head`, so this
                    // thread alone owns its value (moved out exactly once; the
                    // node's `ManuallyDrop` never drops it again) and alone
                    // retires the node, which no new reader can reach.
                    unsafe {
                        let value = ptr::read(&*node.value);
                        guard.defer_destroy(head);
                        return Some(value);
                    }
                }
                Err(err) => {
                    head = err.current;
                    backoff.spin();
                }
            }
        }
    }

    /// Takes every item with one atomic swap and returns them in pop order
    /// (newest first). Pushes that happen after the swap stay on the stack.
    pub fn pop_all(&self) -> Vec<T> {
        let guard = epoch::pin();
        let mut cur = self.head.swap(Shared::null(), Ordering::AcqRel, &guard);
        // SAFETY: loaded while pinned.
        let mut out = Vec::with_capacity(unsafe { cur.as_ref() }.map_or(0, |n| n.depth));
        // SAFETY: loaded while pinned.
        while let Some(node) = unsafe { cur.as_ref() } {
            let next = node.next.load(Ordering::Relaxed, &guard);
            // SAFETY: the swap detached the whole chain: no popper's CAS can
            // succeed on any of its nodes any more (their addresses stay
            // reserved while those poppers are pinned), so this thread owns
            // every value once. Nodes are retired, not freed, because stale
            // poppers may still read `next`.
            unsafe {
                out.push(ptr::read(&*node.value));
                guard.defer_destroy(cur);
            }
            cur = next;
        }
        out
    }

    /// Number of items on the stack at the moment of the call.
    pub fn len(&self) -> usize {
        let guard = epoch::pin();
        let head = self.head.load(Ordering::Acquire, &guard);
        // SAFETY: loaded while pinned.
        unsafe { head.as_ref() }.map_or(0, |n| n.depth)
    }

    /// Whether the stack was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        let guard = epoch::pin();
        self.head.load(Ordering::Acquire, &guard).is_null()
    }
}

impl<T> Default for LockFreeStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for LockFreeStack<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can access the stack, so
        // the nodes can be freed at once, each value dropped exactly once.
        unsafe {
            let guard = epoch::unprotected();
            let mut cur = self.head.load(Ordering::Relaxed, guard);
            while !cur.is_null() {
                let mut owned = cur.into_owned();
                cur = owned.next.load(Ordering::Relaxed, guard);
                ManuallyDrop::drop(&mut owned.value);
            }
        }
    }
}

impl<T> fmt::Debug for LockFreeStack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeStack")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Extend<T> for LockFreeStack<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl<T> FromIterator<T> for LockFreeStack<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut stack = Self::new();
        stack.extend(iter);
        stack
    }
}

/// Owned iterator over a [`LockFreeStack`], in pop order (newest first).
#[derive(Debug)]
pub struct IntoIter<T>(LockFreeStack<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len();
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}
impl<T> FusedIterator for IntoIter<T> {}

impl<T> IntoIterator for LockFreeStack<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lifo_and_len() {
        let s = LockFreeStack::new();
        assert_eq!(s.pop(), None);
        assert!(s.is_empty());
        for i in 0..10 {
            s.push(i);
            assert_eq!(s.len(), i + 1);
        }
        assert_eq!(s.pop(), Some(9));
        assert_eq!(s.len(), 9);
        let rest: Vec<_> = s.into_iter().collect();
        assert_eq!(rest, (0..9).rev().collect::<Vec<_>>());
    }

    #[test]
    fn pop_all_and_drop() {
        let s: LockFreeStack<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(s.pop_all(), ["c", "b", "a"]);
        assert!(s.pop_all().is_empty());
        s.push("x".into());
        s.push("y".into());
        drop(s); // frees both remaining strings (Miri checks for leaks)
    }
}
