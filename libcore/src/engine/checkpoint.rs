//! The checkpointer of an open environment: one checkpoint at a time, the
//! redo point, the last checkpoint record, and the pages bulk transactions
//! wrote straight to their files since then.
//!
//! The checkpoint rule (docs/DESIGN.md, "Write-back and checkpoints"): a
//! checkpoint record naming redo LSN R is appended only after every change
//! logged before R is in its file and fsynced, with the directories of the
//! data files. The sequence ([`Checkpointer::run`]):
//!
//! 1. the cut, under the writer lock (so no write transaction is in
//!    flight and every record before R is installed in the cache): wait
//!    until no committed removal waits for its unlink (files.rs), take
//!    R = the end of the log, forget the bulk-written pages (every page's
//!    next change is logged as a full image from R on), note the dirty
//!    pages and the file list;
//! 2. with commits running again: write those pages back (each as its
//!    current image, which holds the changes before R and maybe later ones,
//!    whose records are durable by then: pool.rs), fsync every data file
//!    written since its last fsync and the data directories;
//! 3. append the checkpoint record, make it durable, and only then make it
//!    the last checkpoint (log headers and the region name it).
//!
//! A commit after R logs a full image for any page whose LSN is below R
//! (commit.rs), so redo from R never needs a change older than R.

use super::bulk::BulkPages;
use super::cache::PageKey;
use super::failure::Failure;
use super::files::FileTable;
use super::lock;
use super::pool::{Pool, WriteBack};
use super::region::OwnerRegion;
use crate::error::Result;
use crate::storage::vfs::SharedVfs;
use crate::types::{now_secs, FileId, Lsn, PageNo, TxnId};
use crate::wal::{Checkpoint, Log, Record};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub(crate) struct Checkpointer {
    /// One checkpoint at a time (they hold the writer lock only for the
    /// cut).
    running: Mutex<()>,
    /// Pages whose LSN is older than this get a full image when next
    /// logged.
    redo_point: Mutex<Lsn>,
    /// The last checkpoint record.
    last: Mutex<Lsn>,
    /// Pages a bulk transaction wrote straight to their file since the
    /// last checkpoint: no image of them is in the log, so their next
    /// change is logged as a full image (a torn write of it stays
    /// repairable).
    bulk_pages: Mutex<BulkPages>,
}

/// What a checkpoint works on: the parts of the open environment.
pub(crate) struct Parts<'a, W> {
    pub(crate) log: &'a Log,
    /// The writer lock (held for the cut only).
    pub(crate) writer: &'a Mutex<W>,
    pub(crate) files: &'a FileTable,
    pub(crate) pool: &'a Pool,
    pub(crate) failure: &'a Failure,
    pub(crate) vfs: &'a SharedVfs,
    pub(crate) data_dirs: &'a [PathBuf],
    pub(crate) region: &'a OwnerRegion,
    /// Transactions committed since the owner opened (for the region).
    pub(crate) commits: &'a AtomicU64,
}

impl Checkpointer {
    /// As recovery left things: the last checkpoint and its redo point.
    pub(crate) fn new(redo_point: Lsn, last: Lsn) -> Checkpointer {
        Checkpointer {
            running: Mutex::new(()),
            redo_point: Mutex::new(redo_point),
            last: Mutex::new(last),
            bulk_pages: Mutex::new(BulkPages::default()),
        }
    }

    pub(crate) fn redo_point(&self) -> Lsn {
        *lock(&self.redo_point)
    }

    pub(crate) fn last(&self) -> Lsn {
        *lock(&self.last)
    }

    /// Whether a bulk transaction wrote this page straight to its file
    /// since the last checkpoint.
    pub(crate) fn bulk_written(&self, key: &PageKey) -> bool {
        lock(&self.bulk_pages).contains(key)
    }

    /// Records the page ranges a committed bulk transaction wrote straight
    /// to their files (at its install).
    pub(crate) fn note_bulk_written(&self, ranges: &[(FileId, PageNo, PageNo)]) {
        let mut bp = lock(&self.bulk_pages);
        for (id, first, last) in ranges {
            bp.insert_range(*id, *first, *last);
        }
    }

    /// Takes a checkpoint (the sequence of the module comment) and returns
    /// the LSN of its record.
    pub(crate) fn run<W>(&self, p: &Parts<'_, W>) -> Result<Lsn> {
        let _one = lock(&self.running);
        // 1. The cut.
        let (redo, keys, files) = {
            let _w = lock(p.writer);
            p.files.wait_no_removals();
            p.failure.check()?;
            let redo = p.log.end();
            *lock(&self.redo_point) = redo;
            lock(&self.bulk_pages).clear();
            // The files as of the redo point: creations and removals after
            // it are in the log that redo reads from there.
            (redo, p.pool.dirty_keys(), p.files.listing())
        };
        // 2. Write back, commits running meanwhile. A page cleaned by an
        // eviction since the cut was written (and queued for the fsync
        // below) under the write-back lock already.
        let wb = WriteBack {
            log: p.log,
            files: p.files,
            failure: p.failure,
        };
        p.pool.write_back_keys(&keys, &wb)?;
        p.pool.sync_files(p.files, p.failure)?;
        for d in p.data_dirs {
            p.vfs.sync_dir(d).map_err(|e| p.failure.fail(e))?;
        }
        // 3. Only now may the log say that redo can start at `redo`.
        let prev = self.last();
        let now = now_secs();
        let rec = Record::Checkpoint(Checkpoint {
            redo_lsn: redo,
            last_ckp: prev,
            timestamp: now,
            files,
        });
        let lsn = {
            let mut app = p.log.lock();
            let v = app
                .append(&[(TxnId(0), &rec)])
                .map_err(|e| p.failure.fail(e))?;
            v.first().copied().unwrap_or(redo)
        };
        p.log.flush(lsn).map_err(|e| p.failure.fail(e))?;
        p.log.set_last_ckp(lsn);
        *lock(&self.last) = lsn;
        let end = p.log.end();
        let commits = p.commits.load(Ordering::Relaxed);
        // Never waits: see `OwnerRegion`.
        p.region.publish(move |s| {
            s.last_ckp = lsn;
            s.ckp_redo = redo;
            s.ckp_time = now;
            s.log_end = end;
            s.commits = commits;
        })?;
        Ok(lsn)
    }
}
