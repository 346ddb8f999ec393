//! An open environment, as components that each own their state (private
//! fields, their own locks, their invariants in their module comment):
//!
//! | component | file | owns |
//! | --- | --- | --- |
//! | `Env`, `Inner` | env.rs | open and close, the handles, the aggregate of the rest |
//! | readers | reader.rs | what a reader sees: `read`, `get`, `Cursor`, `scan` |
//! | snapshots | snapshot.rs (versions.rs) | read transactions on one commit, range iterators; the pre-images they need |
//! | transactions | txn.rs | a write transaction's private pages and its API |
//! | the commit | commit.rs | the commit protocol, step by step |
//! | the log | `wal::Log` | appending, group commit, the `Durable` proof |
//! | the buffer pool | pool.rs (cache.rs) | committed pages, reading them, the one write-back path |
//! | the file table | files.rs | database files by id, new ids, pending removals |
//! | the checkpointer | checkpoint.rs | the redo point, the last checkpoint, the checkpoint sequence |
//! | bulk bookkeeping | bulk.rs | pages bulk transactions wrote straight to files |
//! | the failed state | failure.rs | the first write error, after which nothing is written |
//! | the owner lock | owner.rs | one writing process per environment |
//! | the region | region.rs | the state shared with other processes |
//! | commit wait | commit_wait.rs | how long synchronous commits waited, for the region |
//! | re-entry marks | reentry.rs | what this thread holds, so self-waits fail at once |
//! | housekeeping | upkeep.rs | checkpoint requests, automatic checkpoints and log removal |
//!
//! # Lock order
//!
//! A thread that holds more than one takes them in this order (and never
//! the other way round), so the engine cannot deadlock:
//!
//! 1. the checkpointer's `running` (one checkpoint at a time);
//! 2. the writer lock (`Inner::writer`: a `Txn`, or a checkpoint's cut);
//! 3. the log's append lock (`Log::lock`, an `Appender`);
//! 4. the commit lock (`Inner::commit_lock`: readers share it, an install
//!    holds it exclusively);
//! 5. the pool's write-back lock;
//! 6. leaf mutexes, held briefly and never around another lock: the file
//!    table, the cache, the bulk pages, the redo point and last
//!    checkpoint, `installed`, the unsynced set, the failed state, the
//!    pending removals, the region's pending updates, the version map of
//!    snapshots (versions.rs);
//! 7. the log's sync state (`Log::flush`, never held across an fsync).
//!
//! A commit releases the writer lock before it waits for its fsync, and a
//! checkpoint holds the writer lock only for its cut, so neither blocks the
//! next transaction for long. Eviction only tries the write-back lock: it
//! runs inside transactions, and waiting there for a checkpoint's
//! write-back would stall the writer for its whole length.

pub mod bulk;
pub mod cache;
mod checkpoint;
mod commit;
pub(crate) mod commit_wait;
pub mod env;
mod failure;
mod files;
pub mod owner;
mod pool;
pub mod reader;
pub(crate) mod reentry;
pub mod region;
pub mod snapshot;
pub mod txn;
pub mod upkeep;
mod versions;

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks a mutex, ignoring poisoning: a panic in another thread while
/// holding one of the engine's locks leaves data we still trust (every
/// update is a single assignment or a whole insert), so the engine keeps
/// working instead of panicking in turn.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The read side of `m`, through a poisoned lock as `lock` does.
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// The write side of `m`, through a poisoned lock as `lock` does.
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
