//! Writing committed pages back to their files: eviction, new files, and
//! checkpoints.
//!
//! Rules kept here (DESIGN.md sections 4 and 6):
//! * write-ahead: a page reaches its file only after the log is durable up
//!   to the end of what was appended when the page was captured (every
//!   installed page's commit record was appended before its install);
//! * no regression: pages are captured from the cache and written while
//!   holding `Inner::writeback`, so two writers of one page cannot land an
//!   older image after a newer one (the cache only moves forward);
//! * redo point: a checkpoint record naming redo LSN R is appended only
//!   after every change logged before R is in its file and fsynced.
//!
//! A checkpoint holds the writer lock only while it picks R: with no write
//! transaction in flight every record before R is installed in the cache,
//! so the dirty pages at that instant are exactly the pages whose changes
//! before R may be missing on disk. It then writes them (each as its
//! current image, which holds those changes and maybe later ones whose
//! records are also durable by then) while commits go on. A commit after R
//! logs a full image for any page whose LSN is below R (txn.rs), so redo
//! from R never needs a change older than R.

use crate::engine::cache::PageKey;
use crate::engine::env::{lock, Inner};
use crate::error::Result;
use crate::storage::pagestore::PageBuf;
use crate::types::now_secs;
use crate::types::{FileId, Lsn, TxnId};
use crate::wal::{Checkpoint, Record};
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

/// Proof that the caller holds `Inner::writeback`.
type WritebackGuard<'a> = MutexGuard<'a, ()>;

impl Inner {
    /// Writes back pages captured under `_held`, log first.
    fn write_back(&self, _held: &WritebackGuard<'_>, pages: Vec<(PageKey, PageBuf)>) -> Result<()> {
        if pages.is_empty() {
            return Ok(());
        }
        // Up to the end of what is written, not just the pages' LSNs: redo
        // applies a page record only with its transaction's commit record,
        // which comes later and may sit in a newer log file than every
        // page record of its batch (the older file counts as durable at
        // rotation, so flushing to the highest page LSN would not sync the
        // newer one). The commit of every installed page is written:
        // append precedes install.
        let log = self.log()?;
        log.flush(log.end()).map_err(|e| self.fail(e))?;
        for (key, buf) in &pages {
            if let Some(f) = self.file(key.0) {
                self.write_page(&f, key.1, buf)?;
            }
        }
        let mut c = lock(&self.cache);
        for (key, buf) in &pages {
            c.mark_clean(*key, buf);
        }
        Ok(())
    }

    /// Writes the committed pages of newly created files to disk at once,
    /// so a new database is a database on disk (its meta page readable by
    /// `db_archive -s` and copies) from its commit on, not from the next
    /// checkpoint.
    pub fn write_back_files(&self, ids: &[FileId]) -> Result<()> {
        {
            let held = lock(&self.writeback);
            let pages: Vec<(PageKey, PageBuf)> = lock(&self.cache)
                .dirty_pages()
                .into_iter()
                .filter(|(k, _)| ids.contains(&k.0))
                .collect();
            self.write_back(&held, pages)?;
        }
        for id in ids {
            if let Some(f) = self.file(*id) {
                if let Some(h) = &f.handle {
                    h.sync().map_err(|e| self.fail(e))?;
                }
            }
        }
        Ok(())
    }

    /// Shrinks the cache. Dirty pages are written only if no checkpoint is
    /// writing back right now: this runs inside transactions (on a cache
    /// miss), and waiting for a checkpoint's write-back here would stall
    /// the writer for its whole length. The checkpoint cleans pages, so the
    /// next eviction finds them clean.
    pub(crate) fn evict(&self) -> Result<()> {
        if self.read_only {
            lock(&self.cache).evict();
            return Ok(());
        }
        let Ok(held) = self.writeback.try_lock() else {
            lock(&self.cache).evict();
            return Ok(());
        };
        let (dirty, _) = lock(&self.cache).evict();
        if dirty.is_empty() {
            return Ok(());
        }
        self.write_back(&held, dirty)?;
        drop(held);
        lock(&self.cache).evict();
        Ok(())
    }

    pub fn sync_files(&self) -> Result<()> {
        let ids: Vec<FileId> = lock(&self.unsynced).drain().collect();
        for id in ids {
            if let Some(f) = self.file(id) {
                if let Some(h) = &f.handle {
                    h.sync().map_err(|e| self.fail(e))?;
                }
            }
        }
        Ok(())
    }

    pub fn checkpoint(&self) -> Result<Lsn> {
        self.check_failed()?;
        let log = self.log()?;
        let _one = lock(&self.checkpointing);
        // 1. The cut, under the writer lock (see the module comment).
        let (redo, keys, files) = {
            let _w = lock(&self.writer);
            // A removal committed but not yet unlinked would be behind the
            // redo point with its file still on disk (env.rs,
            // PendingRemovals).
            self.removals.wait_none();
            self.check_failed()?;
            let redo = log.end();
            *lock(&self.redo_point) = redo;
            // Every page's next change is an image again from here on.
            lock(&self.bulk_pages).clear();
            let keys = lock(&self.cache).dirty_keys();
            // The files as of the redo point: creations and removals after
            // it are in the log that redo reads from there.
            let mut files: Vec<(FileId, Vec<u8>)> = self
                .files
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .map(|f| (f.id, f.name.as_bytes().to_vec()))
                .collect();
            files.sort();
            (redo, keys, files)
        };
        // 2. Write back, commits running meanwhile. A page cleaned by an
        // eviction since the cut was written (and queued for the fsync
        // below) under the writeback lock already.
        {
            let held = lock(&self.writeback);
            let pages: Vec<(PageKey, PageBuf)> = {
                let c = lock(&self.cache);
                keys.iter()
                    .filter_map(|k| c.dirty_image(*k).map(|b| (*k, b)))
                    .collect()
            };
            self.write_back(&held, pages)?;
        }
        self.sync_files()?;
        for d in &self.layout.data_dirs {
            self.vfs.sync_dir(d).map_err(|e| self.fail(e))?;
        }
        // 3. Only now may the log say that redo can start at `redo`.
        let prev = *lock(&self.last_ckp);
        let now = now_secs();
        let rec = Record::Checkpoint(Checkpoint {
            redo_lsn: redo,
            last_ckp: prev,
            timestamp: now,
            files,
        });
        let lsn = {
            let mut app = log.lock();
            let v = app.append(&[(TxnId(0), &rec)]).map_err(|e| self.fail(e))?;
            v.first().copied().unwrap_or(redo)
        };
        log.flush(lsn).map_err(|e| self.fail(e))?;
        log.set_last_ckp(lsn);
        *lock(&self.last_ckp) = lsn;
        let end = log.end();
        let commits = self.commits.load(Ordering::Relaxed);
        // Never waits: see `OwnerRegion`.
        self.region.publish(move |s| {
            s.last_ckp = lsn;
            s.ckp_redo = redo;
            s.ckp_time = now;
            s.log_end = end;
            s.commits = commits;
        })?;
        Ok(lsn)
    }
}
