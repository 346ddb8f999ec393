//! What a reader (`Env::read`, `get`, `Cursor`, `scan`) sees, and how.
//! (Snapshots, which hold no lock, are snapshot.rs; they share the
//! durability rule here, waiting for the fsync without the lock.)
//!
//! Concurrency inside one process: one write transaction at a time (the
//! writer lock); readers take the commit lock for reading for the span of
//! one operation, and a commit installs its pages under the write side
//! (commit.rs), so no reader sees half of a transaction.
//!
//! A reader may see every commit installed so far, and in the default
//! (sync) mode only once it is durable. A commit installs its pages before
//! its log fsync (so the next transaction can build on them while the
//! fsync runs, and commits group), so a reader first makes sure the log is
//! durable up to the newest installed commit record, waiting for the
//! committer's fsync (see `await_commit_durable`).
//! If the fsync fails the environment enters the failed state and every
//! later read fails too: no reader ever sees a commit that did not become
//! durable. In nosync mode a reader sees a commit as soon as it returns. A
//! write transaction sees every commit installed before it, durable or
//! not: its own commit comes later in the log, so it can never become
//! durable without them.
//!
//! Calls that would wait for their own thread (a checkpoint or a second
//! `begin` while this thread's `Txn` is alive, a commit inside a read
//! closure) fail with `Error::Misuse` at once: see reentry.rs.

use super::env::{Env, Inner};
use super::reentry::{self, Hold, Mark};
use crate::btree;
use crate::error::Result;
use crate::storage::dbfile::{Db, DbFile};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::types::PageNo;
use std::path::Path;
use std::sync::RwLockReadGuard;

/// The reader lock as `Env::read` holds it: none when this thread already
/// holds it (a read inside a read), and the mark that makes a commit in
/// the closure fail instead of waiting for itself.
pub(crate) struct ReadGuard<'a> {
    _lock: Option<RwLockReadGuard<'a, ()>>,
    _mark: Option<Mark>,
}

impl Env {
    /// Reads one value.
    pub fn get(&self, db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(db, |s| btree::get(s, key))
    }

    /// Runs a read-only B-tree operation on one consistent state.
    pub fn read<T>(&self, db: &Db, f: impl FnOnce(&ReadStore<'_>) -> Result<T>) -> Result<T> {
        let file = self.file(db)?;
        let _r = read_lock(&self.inner)?;
        let store = ReadStore {
            inner: &self.inner,
            file: &file,
        };
        f(&store)
    }

    /// A cursor over `db` in key order. Each step sees one committed state;
    /// between steps other transactions may commit, and the cursor carries
    /// on from the last key it returned. For one consistent state over many
    /// steps, iterate a [`crate::Snapshot`]'s `range` instead.
    pub fn cursor(&self, db: &Db) -> Cursor {
        Cursor {
            env: self.clone(),
            db: db.clone(),
            last: None,
        }
    }
}

/// Takes the reader lock once every installed commit may be seen (see the
/// module comment): in sync mode the log must be durable past the newest
/// installed commit record. Waits for that fsync without the lock (commits
/// go on meanwhile) and checks again; after a few rounds under a steady
/// stream of commits it waits holding the lock.
pub(crate) fn read_lock(inner: &Inner) -> Result<ReadGuard<'_>> {
    if reentry::holds(inner.key(), Hold::Reader) {
        return Ok(ReadGuard {
            _lock: None,
            _mark: None,
        });
    }
    let mut rounds = 0;
    loop {
        inner.check_failed()?;
        let guard = super::read(&inner.commit_lock);
        let need = inner.pool.installed();
        let log = match &inner.log {
            Some(l) if !inner.nosync && !need.is_zero() => l,
            _ => return Ok(read_guard(inner, guard)),
        };
        if log.durable() > need {
            return Ok(read_guard(inner, guard));
        }
        rounds += 1;
        if rounds >= 3 {
            await_commit_durable(inner, log, need)?;
            return Ok(read_guard(inner, guard));
        }
        drop(guard);
        await_commit_durable(inner, log, need)?;
    }
}

/// How long a reader waits for the committer's own fsync before it runs
/// one itself (a safety net: every sync commit flushes right after its
/// install, so the committer's fsync normally ends the wait).
const COMMITTER_FSYNC_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Returns once the log is durable past `need`, the newest installed sync
/// commit record, whose committer is about to flush it: the reader waits
/// for that fsync rather than running one itself. A reader-run fsync made
/// the committer's durability wait for the reader to be scheduled again
/// after it (measured: with 4 busy snapshot readers on 2 cores the writer
/// made a third of its commits). Runs the fsync itself only if none comes
/// within `COMMITTER_FSYNC_WAIT`.
pub(crate) fn await_commit_durable(
    inner: &Inner,
    log: &crate::wal::Log,
    need: crate::types::Lsn,
) -> Result<()> {
    if !log
        .await_durable(need, COMMITTER_FSYNC_WAIT)
        .map_err(|e| inner.fail(e))?
    {
        log.flush(need).map_err(|e| inner.fail(e))?;
    }
    Ok(())
}

fn read_guard<'a>(inner: &Inner, lock: RwLockReadGuard<'a, ()>) -> ReadGuard<'a> {
    ReadGuard {
        _lock: Some(lock),
        _mark: Some(Mark::new(inner.key(), Hold::Reader)),
    }
}

/// Committed pages of one file, for readers.
pub struct ReadStore<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) file: &'a DbFile,
}

impl PageRead for ReadStore<'_> {
    fn page_size(&self) -> usize {
        self.file.page_size
    }

    fn path(&self) -> &Path {
        &self.file.path
    }

    fn page(&self, no: PageNo) -> Result<PageBuf> {
        self.inner.read_page(self.file, no)
    }
}

/// A key-order cursor that survives commits between its steps.
pub struct Cursor {
    env: Env,
    db: Db,
    last: Option<Vec<u8>>,
}

/// A key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

#[allow(clippy::should_implement_trait)] // fallible steps: not an Iterator
impl Cursor {
    fn remember(&mut self, r: Option<Pair>) -> Option<Pair> {
        if let Some((k, _)) = &r {
            self.last = Some(k.clone());
        }
        r
    }

    /// Positions at the smallest key; `None` for an empty database.
    pub fn first(&mut self) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::first(s))?;
        Ok(self.remember(r))
    }

    /// Positions at the largest key; `None` for an empty database.
    pub fn last(&mut self) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::last(s))?;
        Ok(self.remember(r))
    }

    /// Positions at the smallest key >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::seek_ge(s, key))?;
        Ok(self.remember(r))
    }

    /// The pair after the last one returned (the first if none was);
    /// `None` past the end.
    pub fn next(&mut self) -> Result<Option<Pair>> {
        let r = match self.last.clone() {
            None => self.env.read(&self.db, |s| btree::first(s))?,
            Some(k) => self.env.read(&self.db, |s| btree::next_after(s, &k))?,
        };
        Ok(self.remember(r))
    }

    /// The pair before the last one returned (the last if none was);
    /// `None` before the start.
    pub fn prev(&mut self) -> Result<Option<Pair>> {
        let r = match self.last.clone() {
            None => self.env.read(&self.db, |s| btree::last(s))?,
            Some(k) => self.env.read(&self.db, |s| btree::prev_before(s, &k))?,
        };
        Ok(self.remember(r))
    }
}

/// Calls `f` for every pair of `db` in key order, fast: a sequential scan
/// of the leaves. The read lock is taken for batches of pairs, so writers
/// are not held up by a long scan; when a commit lands between two batches
/// the scan restarts after the last key it returned.
pub fn scan(env: &Env, db: &Db, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
    const BATCH: usize = 256;
    let file = env.file(db)?;
    let mut last: Option<Vec<u8>> = None;
    let mut kept: Option<(u64, btree::Scan)> = None;
    loop {
        let _r = read_lock(&env.inner)?;
        let store = ReadStore {
            inner: &env.inner,
            file: &file,
        };
        let gen = env.inner.pool.generation();
        let mut sc = match kept.take() {
            Some((g, sc)) if g == gen => sc,
            _ => btree::Scan::new(&store, last.as_deref())?,
        };
        for _ in 0..BATCH {
            let Some((k, v)) = sc.next(&store)? else {
                return Ok(());
            };
            if last.as_deref().is_some_and(|l| k.as_slice() <= l) {
                continue;
            }
            f(&k, &v)?;
            last = Some(k);
        }
        kept = Some((gen, sc));
    }
}
