//! Prefetching for a restore: a store whose every object costs a round
//! trip (S3: about 1.5 ms each on loopback, far more across a network)
//! makes a restore of thousands of small segments wait on them one at a
//! time. `Prefetcher` wraps the store and fetches the objects a walk is
//! expected to ask for next on a few helper threads, a bounded number
//! (and bytes) ahead of it.
//!
//! The walk itself is unchanged: it asks for each object in its own order,
//! checks it and applies it. The prefetcher only answers `get` with what
//! it fetched for that very key; a key it was not asked to expect, or
//! whose fetch failed, is fetched then, as without it, so a failure is
//! seen (and named) by the walk exactly where it would have been.
//! Segments are never rewritten under a key (create-only), so an object
//! fetched a moment early is the object. Every other call goes straight
//! to the store.

use super::epoch::Epochs;
use super::segment::{self, Listed};
use super::store::{Object, ReplicaStore, StoreLayer};
use crate::error::Result;
use crate::types::Lsn;
use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Helper threads fetching at once.
pub const THREADS: usize = 8;
/// Objects fetched ahead of the walk and not yet taken, at most.
pub const AHEAD: usize = 32;
/// Bytes fetched ahead and not yet taken: once past it, helpers wait
/// (one object always goes, whatever its size).
pub const AHEAD_BYTES: u64 = 64 << 20;

/// One expected key's state.
enum Slot {
    /// A helper is fetching it.
    Fetching,
    /// Fetched, waiting for the walk.
    Ready(Result<Option<Object>>),
}

#[derive(Default)]
struct State {
    /// Keys expected, not yet started.
    queue: VecDeque<String>,
    slots: HashMap<String, Slot>,
    /// Objects (and their bytes) ready and not taken.
    ready: usize,
    ready_bytes: u64,
    stop: bool,
}

impl State {
    fn room(&self) -> bool {
        self.ready + self.fetching() < AHEAD && (self.ready == 0 || self.ready_bytes < AHEAD_BYTES)
    }

    fn fetching(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Fetching))
            .count()
    }
}

/// A store that answers `get` for expected keys from objects fetched
/// ahead (see the module documentation). Made by `Prefetcher::run`.
pub struct Prefetcher<'a> {
    inner: &'a dyn ReplicaStore,
    state: Mutex<State>,
    /// Signalled when a slot becomes ready, one is taken, or on stop.
    changed: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'a> Prefetcher<'a> {
    /// Runs `walk` with a prefetcher over `inner` that expects `keys`, in
    /// order; the helpers stop when `walk` returns.
    pub fn run<T>(
        inner: &'a dyn ReplicaStore,
        keys: Vec<String>,
        walk: impl FnOnce(&Prefetcher<'a>) -> T,
    ) -> T {
        let p = Prefetcher {
            inner,
            state: Mutex::new(State {
                queue: keys.into(),
                ..Default::default()
            }),
            changed: Condvar::new(),
        };
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| p.help());
            }
            let out = walk(&p);
            lock(&p.state).stop = true;
            p.changed.notify_all();
            out
        })
    }

    /// A helper: takes the next expected key when there is room, fetches
    /// it, and leaves it for the walk.
    fn help(&self) {
        loop {
            let key = {
                let mut st = lock(&self.state);
                loop {
                    if st.stop || st.queue.is_empty() {
                        return;
                    }
                    if st.room() {
                        break;
                    }
                    st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                let Some(key) = st.queue.pop_front() else {
                    return;
                };
                st.slots.insert(key.clone(), Slot::Fetching);
                key
            };
            let got = self.inner.get(&key);
            let mut st = lock(&self.state);
            st.ready += 1;
            st.ready_bytes += got
                .as_ref()
                .ok()
                .and_then(|o| o.as_ref())
                .map_or(0, |o| o.bytes.len() as u64);
            st.slots.insert(key, Slot::Ready(got));
            self.changed.notify_all();
        }
    }

    /// The prefetched answer for `key`, waiting for a helper fetching it;
    /// `None` when the key was not fetched ahead (nor will be: it leaves
    /// the queue).
    fn take(&self, key: &str) -> Option<Result<Option<Object>>> {
        let mut st = lock(&self.state);
        st.queue.retain(|k| k != key);
        loop {
            match st.slots.get(key) {
                None => return None,
                Some(Slot::Fetching) => {
                    st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                Some(Slot::Ready(_)) => break,
            }
        }
        let Some(Slot::Ready(got)) = st.slots.remove(key) else {
            return None;
        };
        st.ready -= 1;
        st.ready_bytes -= got
            .as_ref()
            .ok()
            .and_then(|o| o.as_ref())
            .map_or(0, |o| o.bytes.len() as u64);
        self.changed.notify_all();
        Some(got)
    }
}

impl StoreLayer for Prefetcher<'_> {
    fn lower(&self) -> &dyn ReplicaStore {
        self.inner
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        match self.take(key) {
            Some(Ok(got)) => Ok(got),
            // Failed ahead: the walk's own fetch decides, as without a
            // prefetcher.
            Some(Err(_)) | None => self.inner.get(key),
        }
    }
}

/// The keys of the segments a restore walk from `first` is expected to
/// fetch, in order, from one listing: in each position's epoch (the
/// history's), the segment starting there, else the first of the next log
/// file. A guess only: the walk checks every segment itself, and a wrong
/// guess costs a wasted fetch, never a wrong answer.
pub fn expected_segments(
    store: &dyn ReplicaStore,
    epochs: &Epochs,
    first: Lsn,
) -> Result<Vec<String>> {
    let listed: Vec<Listed> = segment::list_from(store, first.file)?;
    let by_start: HashMap<(u64, Lsn), &Listed> = listed.iter().map(|l| ((l.0, l.1), l)).collect();
    let mut keys = Vec::new();
    let mut at = first;
    while let Some(e) = epochs.at(at) {
        let next_file = Lsn::new(at.file.saturating_add(1), 0);
        let Some(l) = by_start
            .get(&(e, at))
            .or_else(|| by_start.get(&(e, next_file)))
        else {
            break;
        };
        if l.2 <= at || keys.len() > listed.len() {
            break;
        }
        keys.push(l.3.clone());
        at = l.2;
    }
    Ok(keys)
}
