//! The commit protocol, in one place (docs/DESIGN.md, "Transactions and
//! commit"). A transaction keeps every page it changes private until
//! here; [`Txn::commit`] then, in order:
//!
//! 1. **records**: builds the log records in the order recovery must apply
//!    them: file creations, a full page image for a page first changed
//!    since the checkpointer's redo point (or new, or written by a bulk
//!    transaction since the last checkpoint), otherwise the changed byte
//!    ranges with the LSN the page had before; file removals; the commit
//!    record. In bulk mode, pages new to a file are not logged: a
//!    `BulkMarker` names their range instead; but while a lease is held in
//!    the region (a replication master or a hot backup copies the log:
//!    `bulk::lease_held`, asked here), a bulk transaction is *logged in
//!    full*: every page it wrote, the spilled ones read back from their
//!    files, as page images, and no marker, so the log alone carries the
//!    load to a standby or a backup;
//! 2. **append**: bulk pages go straight to their files, stamped with the
//!    LSN their marker will get, and the files are fsynced; then the
//!    markers and the records are appended in one contiguous batch, and
//!    each logged page takes its record's LSN;
//! 3. **install**, under the commit lock, so a reader sees all of the
//!    transaction or none of it: the file table's creations and removals,
//!    the pages into the buffer pool (dirty, but the bulk pages, which are
//!    on disk), the bulk ranges to the checkpointer. A removal first takes
//!    a ticket (files.rs) that keeps every checkpoint's redo point behind
//!    it until its file is unlinked: taken while the writer lock still
//!    keeps checkpoints out;
//! 4. **durability**: releases the writer lock, then waits for the log
//!    fsync, so other committers' records share it (group commit). Skipped
//!    for a nosync commit (the environment's mode or the transaction's
//!    `Durability`), but for one that creates or removes a database;
//! 5. **files**: the pages of created databases are written back and
//!    fsynced (a new database is a database on disk from its commit on),
//!    their bulk markers removed; removed databases are unlinked, and their
//!    directory fsynced;
//! 6. **upkeep**: the cache is kept within its size (committed pages come
//!    in dirty, and otherwise only a cache miss would ever evict).
//!
//! A failed append, fsync, page write or unlink puts the environment in
//! the failed state (failure.rs): the commit returns the error and no
//! reader ever sees it.

use super::cache::PageKey;
use super::env::Inner;
use super::reentry::{self, Hold};
use super::txn::{Durability, Txn};
use crate::error::{Error, Result};
use crate::storage::dbfile::DbFile;
use crate::storage::page;
use crate::types::{now_secs, FileId, Lsn, PageNo, TxnId};
use crate::wal::{Log, Record};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A transaction's log records, as step 1 builds them.
struct Batch {
    /// The records, in order, the commit record last.
    recs: Vec<Record>,
    /// For each logged page: the index of its record in `recs`.
    page_rec: Vec<(usize, PageKey)>,
    /// Bulk mode: pages new to their file, written straight to it.
    direct: Vec<(Arc<DbFile>, PageNo)>,
    /// Bulk mode: per file, the range of pages written straight to it
    /// (direct and spilled).
    bulk_files: Vec<(FileId, PageNo, PageNo)>,
    /// The files of `bulk_files`.
    direct_files: Vec<Arc<DbFile>>,
    /// One `BulkMarker` per entry of `bulk_files` (none when logged in
    /// full).
    markers: Vec<Record>,
    /// Logged in full: the pages the transaction spilled to its files, to
    /// be read back and logged as images after the creations.
    spilled_pages: Vec<(Arc<DbFile>, PageNo)>,
    /// How many records at the head of `recs` are file creations.
    creates: usize,
}

/// Spilled pages read back and logged per append when a bulk
/// transaction is logged in full (memory stays bounded).
const IMAGE_CHUNK: usize = 256;

impl<'e> Txn<'e> {
    /// Commits: makes the transaction visible and, with
    /// [`Durability::Sync`] (the default unless the environment is opened
    /// nosync), durable before it returns. Returns the LSN of its commit
    /// record. A commit that creates or removes a database is always
    /// durable when it returns.
    ///
    /// On an error the transaction is not committed (nothing of it is
    /// visible); after a failed log write or fsync the environment is in
    /// the failed state ([`Error::Failed`]) until it is reopened.
    pub fn commit(mut self) -> Result<Lsn> {
        if let Some(why) = self.failed.take() {
            self.rollback();
            return Err(Error::invalid(format!(
                "transaction aborted, not committed: a change in it failed ({why})"
            )));
        }
        let inner = self.env.inner.clone();
        if reentry::holds(inner.key(), Hold::Reader) {
            // Installing needs the reader lock this thread holds.
            self.rollback();
            return Err(Error::misuse(format!(
                "{}: commit inside a read (Env::read, scan) would wait for the read itself; transaction aborted",
                inner.layout.home.display()
            )));
        }
        self.finished = true;
        inner.check_failed()?;
        let log = inner.log()?;
        let spilled_any = self.spilled.values().any(|s| s.span().is_some());
        if self.pages.is_empty()
            && self.created.is_empty()
            && self.removed.is_empty()
            && !spilled_any
        {
            return Ok(log.end());
        }
        let batch = self.records(&inner)?;
        let commit_lsn = self.append(&inner, log, &batch)?;
        let created_ids: Vec<FileId> = self.created.keys().copied().collect();
        let _removing = (!self.removed.is_empty()).then(|| inner.files.start_removal());
        let sync = match self.durability {
            Some(d) => d == Durability::Sync,
            None => !inner.nosync,
        } || !self.removed.is_empty()
            || !created_ids.is_empty();
        self.install(&inner, commit_lsn, &batch, sync);
        inner.commits.fetch_add(1, Ordering::Relaxed);
        let removed = std::mem::take(&mut self.removed);
        let markers = std::mem::take(&mut self.markers);

        // 4. Durability, outside the writer lock so commits can group.
        drop(self);
        if sync {
            let waited = std::time::Instant::now();
            log.flush(commit_lsn).map_err(|e| inner.fail(e))?;
            inner.commit_wait.record(waited.elapsed());
        }
        finish_files(&inner, &created_ids, markers, removed)?;
        // 6. Keep the cache within its size. The commit is done; a failed
        // write-back puts the environment in the failed state, which the
        // next operation reports.
        if inner.pool.over_capacity() {
            let _ = inner.evict();
        }
        Ok(commit_lsn)
    }

    /// Step 1: the log records, in the order recovery must apply them.
    fn records(&self, inner: &Inner) -> Result<Batch> {
        let redo = inner.checkpointer.redo_point();
        let logged = self.bulk && super::bulk::lease_held(&inner.vfs, &inner.layout.home);
        let mut recs: Vec<Record> = Vec::new();
        let mut page_rec: Vec<(usize, PageKey)> = Vec::new();
        let mut direct: Vec<(Arc<DbFile>, PageNo)> = Vec::new();
        let mut bulk_files: Vec<(FileId, PageNo, PageNo)> = Vec::new();
        for f in self.created.values() {
            recs.push(Record::FileCreate {
                file_id: f.id,
                page_size: f.page_size as u32,
                name: f.name.as_bytes().to_vec(),
            });
        }
        let mut last_committed: HashMap<FileId, Option<PageNo>> = HashMap::new();
        let keys: Vec<PageKey> = self.pages.keys().copied().collect();
        for key in keys {
            let file = self.file_by_id(key.0, "")?;
            let committed_last = match last_committed.get(&key.0) {
                Some(v) => *v,
                None => {
                    let v = self.committed_last(&file)?;
                    last_committed.insert(key.0, v);
                    v
                }
            };
            let new_page = match committed_last {
                None => true,
                Some(last) => key.1 > last,
            };
            if self.bulk && !logged && new_page && key.1 != PageNo::META {
                direct.push((file, key.1));
                continue;
            }
            let Some(buf) = self.pages.get(&key) else {
                continue;
            };
            let base = if new_page {
                None
            } else {
                inner.committed_page(&file, key.1)?
            };
            let bulk_written = inner.checkpointer.bulk_written(&key);
            let rec = match base {
                Some(b) if page::lsn(&b) >= redo && !page::lsn(&b).is_zero() && !bulk_written => {
                    let ranges = diff_ranges(&b, buf);
                    if ranges.is_empty() {
                        continue;
                    }
                    Record::PageDelta {
                        file_id: key.0,
                        pgno: key.1,
                        prev_lsn: page::lsn(&b),
                        ranges,
                    }
                }
                _ => Record::PageImage {
                    file_id: key.0,
                    pgno: key.1,
                    image: buf.to_vec(),
                },
            };
            page_rec.push((recs.len(), key));
            recs.push(rec);
        }
        for f in &self.removed {
            recs.push(Record::FileRemove {
                file_id: f.id,
                name: f.name.as_bytes().to_vec(),
            });
        }
        let removed_ids: HashSet<FileId> = self.removed.iter().map(|f| f.id).collect();
        let spans = self
            .spilled
            .iter()
            .filter(|(id, _)| !removed_ids.contains(id))
            .filter_map(|(id, s)| s.span().map(|(a, b)| (*id, a, b)));
        let pages = direct.iter().map(|(f, p)| (f.id, *p, *p));
        for (id, first, last) in pages.chain(spans) {
            match bulk_files.iter_mut().find(|b| b.0 == id) {
                Some(b) => {
                    b.1 = b.1.min(first);
                    b.2 = b.2.max(last);
                }
                None => bulk_files.push((id, first, last)),
            }
        }
        // Every file holding pages written straight to it: fsynced before
        // the marker that makes them part of the database is logged.
        let mut direct_files: Vec<Arc<DbFile>> = Vec::new();
        for (id, _, _) in &bulk_files {
            direct_files.push(self.file_by_id(*id, "")?);
        }
        let markers: Vec<Record> = bulk_files
            .iter()
            .filter(|_| !logged)
            .map(|(id, first, last)| Record::BulkMarker {
                file_id: *id,
                first_new: *first,
                last: *last,
            })
            .collect();
        recs.push(Record::Commit {
            timestamp: now_secs(),
        });
        let spilled_pages = if logged {
            self.spilled_pages(&removed_ids)?
        } else {
            Vec::new()
        };
        Ok(Batch {
            recs,
            page_rec,
            direct,
            bulk_files,
            direct_files,
            markers,
            spilled_pages,
            creates: self.created.len(),
        })
    }

    /// Step 2: appends the batch (bulk pages first go straight to their files,
    /// stamped with the LSN their marker will get) and stamps each logged
    /// page with its record's LSN. Returns the commit record's LSN.
    fn append(&mut self, inner: &Inner, log: &Log, batch: &Batch) -> Result<Lsn> {
        let lsns = {
            let mut app = log.lock();
            let mut all: Vec<(TxnId, &Record)> = Vec::new();
            if !batch.markers.is_empty() {
                let mlen = batch.markers[0].encoded_len();
                let mlsn = app.peek_lsn(mlen);
                for (f, p) in &batch.direct {
                    let Some(buf) = self.pages.get_mut(&(f.id, *p)) else {
                        continue;
                    };
                    let b = Arc::make_mut(buf);
                    page::set_lsn(b, mlsn);
                    inner.pool.write_past_end(f, *p, b, &inner.failure)?;
                }
                for f in &batch.direct_files {
                    if let Some(h) = &f.handle {
                        h.sync().map_err(|e| inner.fail(e))?;
                    }
                }
                for m in &batch.markers {
                    all.push((self.id, m));
                }
            }
            if batch.spilled_pages.is_empty() {
                for r in &batch.recs {
                    all.push((self.id, r));
                }
                app.append(&all).map_err(|e| inner.fail(e))?
            } else {
                // Logged in full: creations, then the spilled pages'
                // images, then the rest, as one contiguous batch.
                let (head, rest) = batch.recs.split_at(batch.creates);
                let head: Vec<(TxnId, &Record)> = head.iter().map(|r| (self.id, r)).collect();
                let mut lsns = app.append(&head).map_err(|e| inner.fail(e))?;
                for chunk in batch.spilled_pages.chunks(IMAGE_CHUNK) {
                    let mut images = Vec::with_capacity(chunk.len());
                    for (f, no) in chunk {
                        images.push(Record::PageImage {
                            file_id: f.id,
                            pgno: *no,
                            image: inner.pool.read_uncached(f, *no)?,
                        });
                    }
                    let images: Vec<(TxnId, &Record)> =
                        images.iter().map(|r| (self.id, r)).collect();
                    app.append(&images).map_err(|e| inner.fail(e))?;
                }
                let rest: Vec<(TxnId, &Record)> = rest.iter().map(|r| (self.id, r)).collect();
                lsns.extend(app.append(&rest).map_err(|e| inner.fail(e))?);
                lsns
            }
        };
        let commit_lsn = lsns.last().copied().unwrap_or(Lsn::ZERO);
        let skip = batch.markers.len();
        for (i, key) in &batch.page_rec {
            if let (Some(buf), Some(lsn)) = (self.pages.get_mut(key), lsns.get(skip + i)) {
                page::set_lsn(Arc::make_mut(buf).as_mut_slice(), *lsn);
            }
        }
        Ok(commit_lsn)
    }

    /// The pages this bulk transaction spilled to files it does not
    /// remove, in file and page order.
    fn spilled_pages(&self, removed: &HashSet<FileId>) -> Result<Vec<(Arc<DbFile>, PageNo)>> {
        let mut out = Vec::new();
        let mut ids: Vec<FileId> = self.spilled.keys().copied().collect();
        ids.sort();
        for id in ids.into_iter().filter(|id| !removed.contains(id)) {
            let Some(set) = self.spilled.get(&id) else {
                continue;
            };
            let Some((first, last)) = set.span() else {
                continue;
            };
            let file = self.file_by_id(id, "")?;
            for no in (first.0..=last.0)
                .map(PageNo)
                .filter(|no| set.contains(*no))
            {
                out.push((file.clone(), no));
            }
        }
        Ok(out)
    }

    /// Step 3: installs the transaction for readers, under the commit lock.
    /// A `sync` commit is seen by readers (in a sync environment) once it
    /// is durable; a nosync one at once.
    fn install(&mut self, inner: &Inner, commit_lsn: Lsn, batch: &Batch, sync: bool) {
        let _w = super::write(&inner.commit_lock);
        let on_disk: HashSet<PageKey> = batch.direct.iter().map(|(f, p)| (f.id, *p)).collect();
        inner.checkpointer.note_bulk_written(&batch.bulk_files);
        let removed: Vec<FileId> = self.removed.iter().map(|f| f.id).collect();
        inner.pool.install(
            commit_lsn,
            std::mem::take(&mut self.pages),
            &on_disk,
            &removed,
            &inner.files,
            sync,
        );
        inner.files.apply(self.created.drain(), &self.removed);
    }
}

/// Step 5: the files of a durable commit: created databases written back and
/// fsynced, their markers removed; removed databases unlinked.
fn finish_files(
    inner: &Inner,
    created: &[FileId],
    markers: Vec<std::path::PathBuf>,
    removed: Vec<Arc<DbFile>>,
) -> Result<()> {
    if !created.is_empty() {
        if let Some(wb) = inner.write_back() {
            inner.pool.write_back_files(created, &wb)?;
        }
    }
    // The databases are committed and on disk: their markers go. Best
    // effort: a marker left over (or revived by a power loss) beside a
    // committed database changes nothing.
    for m in markers {
        let _ = inner.vfs.remove(&m);
    }
    for f in removed {
        let dir = f.path.parent().unwrap_or(Path::new("."));
        match inner.vfs.remove(&f.path) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(inner.fail(e)),
        }
        inner.vfs.sync_dir(dir).map_err(|e| inner.fail(e))?;
    }
    Ok(())
}

/// Byte ranges (outside the crc+LSN prefix) where `new` differs from
/// `old`. Runs closer than a small gap are merged: each range costs 8 bytes
/// of framing in the log.
pub fn diff_ranges(old: &[u8], new: &[u8]) -> Vec<(u32, Vec<u8>)> {
    const GAP: usize = 8;
    const SKIP: usize = 64;
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    let n = old.len().min(new.len());
    let mut i = page::LSN_END;
    while i < n {
        // Most of a page is unchanged: skip equal blocks with one slice
        // compare (memcmp) each instead of byte by byte, which was a third
        // of a nosync commit's CPU time.
        while i + SKIP <= n && old[i..i + SKIP] == new[i..i + SKIP] {
            i += SKIP;
        }
        if i >= n {
            break;
        }
        if old[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < n {
            if old[j] != new[j] {
                end = j + 1;
                j += 1;
            } else if j - end >= GAP {
                break;
            } else {
                j += 1;
            }
        }
        out.push((start as u32, new[start..end].to_vec()));
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_changed_runs_and_skips_the_lsn_prefix() {
        let old = vec![0u8; 128];
        let mut new = old.clone();
        new[0] = 9; // crc: ignored
        new[5] = 9; // lsn: ignored
        new[20] = 1;
        new[23] = 2; // merged with 20 (gap < 8)
        new[100] = 3;
        let r = diff_ranges(&old, &new);
        assert_eq!(r, vec![(20, vec![1, 0, 0, 2]), (100, vec![3])]);
        assert!(diff_ranges(&old, &old).is_empty());
    }

    /// The byte-by-byte version the block skip must agree with.
    fn diff_ranges_bytewise(old: &[u8], new: &[u8]) -> Vec<(u32, Vec<u8>)> {
        const GAP: usize = 8;
        let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
        let n = old.len().min(new.len());
        let mut i = page::LSN_END;
        while i < n {
            if old[i] == new[i] {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            let mut j = end;
            while j < n {
                if old[j] != new[j] {
                    end = j + 1;
                    j += 1;
                } else if j - end >= GAP {
                    break;
                } else {
                    j += 1;
                }
            }
            out.push((start as u32, new[start..end].to_vec()));
            i = end;
        }
        out
    }

    #[test]
    fn block_skipping_diff_equals_the_bytewise_one() {
        let mut rng = crate::test_support::Rng::new(7);
        for round in 0..2000 {
            let len = [512usize, 4096, 100, 70][round % 4];
            let old = rng.bytes(len);
            let mut new = old.clone();
            for _ in 0..rng.below(12) {
                let at = rng.below(len as u64) as usize;
                let run = 1 + rng.below(80) as usize;
                for b in new.iter_mut().skip(at).take(run) {
                    *b = b.wrapping_add(1 + rng.below(255) as u8);
                }
            }
            assert_eq!(
                diff_ranges(&old, &new),
                diff_ranges_bytewise(&old, &new),
                "round {round}"
            );
        }
    }
}
