//! What the current thread holds of each open environment, so that a call
//! that would wait for the thread itself fails at once instead of hanging.
//!
//! An environment has one writer lock (held by a `Txn` for its whole life,
//! and taken by a checkpoint to pick its redo point) and a reader lock
//! (held by `Env::read` and `scan` around the caller's closure, taken for
//! writing by a commit to install its pages). Neither is reentrant, so
//! inside one thread:
//! * `begin`, `checkpoint` or `close` while a `Txn` is alive waits for that
//!   same `Txn`;
//! * `begin`, `commit`, `checkpoint` or `close` inside a read closure waits
//!   for the closure's own read lock (directly, or through a committer in
//!   another thread that holds the writer lock and waits for the reader).
//!
//! Each of those returns `Error::Misuse` instead. A `Txn` is not `Send` (it
//! holds a mutex guard), so the thread that marks it is the one that ends
//! it; marks are keyed by the address of the environment's shared state.

use std::cell::RefCell;

/// What a thread can hold of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The writer lock: a live `Txn`.
    Writer,
    /// The reader lock: inside an `Env::read` or `scan` closure.
    Reader,
}

thread_local! {
    static HELD: RefCell<Vec<(usize, Hold)>> = const { RefCell::new(Vec::new()) };
}

/// Marks `hold` of the environment `key` as held by this thread until it
/// is dropped.
pub(crate) struct Mark {
    key: usize,
    hold: Hold,
}

impl Mark {
    pub(crate) fn new(key: usize, hold: Hold) -> Mark {
        HELD.with(|h| h.borrow_mut().push((key, hold)));
        Mark { key, hold }
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|e| *e == (self.key, self.hold)) {
                h.remove(i);
            }
        });
    }
}

/// True if this thread holds `hold` of the environment `key`.
pub(crate) fn holds(key: usize, hold: Hold) -> bool {
    HELD.with(|h| h.borrow().contains(&(key, hold)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_per_thread_and_nest() {
        let a = Mark::new(1, Hold::Reader);
        let b = Mark::new(1, Hold::Reader);
        assert!(holds(1, Hold::Reader));
        assert!(!holds(1, Hold::Writer));
        assert!(!holds(2, Hold::Reader));
        std::thread::spawn(|| assert!(!holds(1, Hold::Reader)))
            .join()
            .unwrap();
        drop(b);
        assert!(holds(1, Hold::Reader));
        drop(a);
        assert!(!holds(1, Hold::Reader));
    }
}
