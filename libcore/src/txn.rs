//! Write transactions. A transaction keeps every page it changes private
//! (copy on write) until commit, so readers never see its work in progress
//! and an abort is simply dropping the copies: the log is redo-only and an
//! aborted transaction never reaches it.
//!
//! Commit, in order:
//! 1. build the log records: a full page image for a page first changed
//!    since the last checkpoint's redo point (or new), otherwise the changed
//!    byte ranges with the LSN the page had before (DESIGN.md section 4);
//! 2. append them and a commit record in one contiguous batch;
//! 3. install the new page images in the cache (under the commit lock, so
//!    readers see all of the transaction or none of it);
//! 4. release the writer, then wait for the log fsync (group commit: other
//!    committers' records share it). In nosync mode step 4 is skipped.

use crate::btree;
use crate::cache::PageKey;
use crate::dbfile::{Db, DbFile};
use crate::env::{now_secs, Env, Pair, WriterState};
use crate::error::{Error, Result};
use crate::layout::check_db_name;
use crate::log::Record;
use crate::page::{self, Meta};
use crate::pagestore::{PageBuf, PageRead, PageWrite};
use crate::types::{FileId, Lsn, PageNo, TxnId};
use crate::vfs::OpenMode;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// Mode of database files we create (masked by the umask).
const DB_FILE_MODE: u32 = 0o660;

pub struct Txn<'e> {
    env: &'e Env,
    _writer: MutexGuard<'e, WriterState>,
    id: TxnId,
    pages: BTreeMap<PageKey, PageBuf>,
    created: HashMap<FileId, Arc<DbFile>>,
    removed: Vec<Arc<DbFile>>,
    bulk: bool,
    finished: bool,
    /// The first change that failed: its pages may hold half of it (a
    /// B-tree split cut short by a read error), so the transaction can
    /// only be aborted.
    failed: Option<String>,
}

impl<'e> Txn<'e> {
    pub(crate) fn begin(env: &'e Env, bulk: bool) -> Result<Txn<'e>> {
        env.inner.check_failed()?;
        env.inner.log()?;
        let mut w = env.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let id = TxnId(w.next_txn);
        w.next_txn += 1;
        Ok(Txn {
            env,
            _writer: w,
            id,
            pages: BTreeMap::new(),
            created: HashMap::new(),
            removed: Vec::new(),
            bulk,
            finished: false,
            failed: None,
        })
    }

    pub fn id(&self) -> TxnId {
        self.id
    }

    fn file(&self, db: &Db) -> Result<Arc<DbFile>> {
        if let Some(f) = self.created.get(&db.id) {
            return Ok(f.clone());
        }
        if self.removed.iter().any(|f| f.id == db.id) {
            return Err(Error::NotFound(format!(
                "{}: database was removed",
                db.name
            )));
        }
        self.env.file(db)
    }

    fn store(&mut self, db: &Db) -> Result<TxnStore<'_>> {
        let file = self.file(db)?;
        Ok(TxnStore {
            inner: &self.env.inner,
            pages: &mut self.pages,
            file,
        })
    }

    /// Remembers a failed change (see `failed`).
    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let (Err(e), None) = (&r, &self.failed) {
            self.failed = Some(e.to_string());
        }
        r
    }

    pub fn put(&mut self, db: &Db, key: &[u8], val: &[u8]) -> Result<bool> {
        // An item over the limit is refused before anything changes, so it
        // does not spoil the transaction.
        btree::check_size("key", key.len())?;
        btree::check_size("value", val.len())?;
        let r = {
            let mut s = self.store(db)?;
            btree::put(&mut s, key, val)
        };
        self.note(r)
    }

    pub fn get(&mut self, db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let s = self.store(db)?;
        btree::get(&s, key)
    }

    pub fn delete(&mut self, db: &Db, key: &[u8]) -> Result<bool> {
        btree::check_size("key", key.len())?;
        let r = {
            let mut s = self.store(db)?;
            btree::delete(&mut s, key)
        };
        self.note(r)
    }

    pub fn first(&mut self, db: &Db) -> Result<Option<Pair>> {
        let s = self.store(db)?;
        btree::first(&s)
    }

    pub fn next_after(&mut self, db: &Db, key: &[u8]) -> Result<Option<Pair>> {
        let s = self.store(db)?;
        btree::next_after(&s, key)
    }

    /// Creates a database file (an error if one of that name exists). The
    /// file appears on disk now, empty; it becomes a database at commit.
    pub fn create_db(&mut self, name: &str, page_size: Option<usize>) -> Result<Db> {
        check_db_name(name)?;
        let inner = &self.env.inner;
        let exists = inner
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|f| f.name == name)
            || self.created.values().any(|f| f.name == name);
        if exists {
            return Err(Error::invalid(format!(
                "{}: database already exists",
                inner.layout.db_path(&inner.vfs, name).display()
            )));
        }
        let ps = page_size.unwrap_or(inner.page_size);
        if !page::valid_page_size(ps) {
            return Err(Error::invalid(format!(
                "page size {ps} is not a power of two from 512 to 65536"
            )));
        }
        let path = inner.layout.create_dir.join(name);
        // A zero-length file left by a transaction that never committed is
        // not a database: reuse its name.
        if inner.vfs.exists(&path) {
            let h = inner.vfs.open(&path, OpenMode::Read)?;
            if h.len()? != 0 {
                return Err(Error::invalid(format!(
                    "{}: file exists and is not a database of this environment",
                    path.display()
                )));
            }
        }
        let handle = inner.vfs.open(&path, OpenMode::Create(DB_FILE_MODE))?;
        inner.vfs.sync_dir(&inner.layout.create_dir)?;
        let id = FileId(inner.next_file_id.fetch_add(1, Ordering::Relaxed));
        let file = Arc::new(DbFile {
            id,
            name: name.to_string(),
            path,
            page_size: ps,
            handle: Some(handle),
        });
        self.created.insert(id, file.clone());
        let db = Db {
            id,
            name: name.to_string(),
        };
        let r = {
            let mut s = self.store(&db)?;
            btree::create(&mut s, id)
        };
        self.note(r)?;
        Ok(db)
    }

    /// Removes a database; the file goes at commit.
    pub fn remove_db(&mut self, db: &Db) -> Result<()> {
        if let Some(f) = self.created.remove(&db.id) {
            self.pages.retain(|k, _| k.0 != db.id);
            let _ = self.env.inner.vfs.remove(&f.path);
            return Ok(());
        }
        let f = self.env.file(db)?;
        self.pages.retain(|k, _| k.0 != db.id);
        self.removed.push(f);
        Ok(())
    }

    pub fn abort(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        self.finished = true;
        self.pages.clear();
        for f in self.created.values() {
            let _ = self.env.inner.vfs.remove(&f.path);
        }
        self.created.clear();
    }

    /// Makes the transaction durable (unless the environment is nosync)
    /// and visible. Returns the LSN of its commit record.
    pub fn commit(mut self) -> Result<Lsn> {
        if let Some(why) = self.failed.take() {
            self.rollback();
            return Err(Error::invalid(format!(
                "transaction aborted, not committed: a change in it failed ({why})"
            )));
        }
        self.finished = true;
        let inner = self.env.inner.clone();
        inner.check_failed()?;
        let log = inner.log()?;
        if self.pages.is_empty() && self.created.is_empty() && self.removed.is_empty() {
            return Ok(log.end());
        }
        let redo = *inner.redo_point.lock().unwrap_or_else(|p| p.into_inner());

        // 1. Records, in the order recovery must apply them.
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
            let file = self.file(&Db {
                id: key.0,
                name: String::new(),
            })?;
            let committed_last = match last_committed.get(&key.0) {
                Some(v) => *v,
                None => {
                    let v = if self.created.contains_key(&key.0) {
                        None
                    } else {
                        match inner.committed_page(&file, PageNo::META)? {
                            Some(m) => Meta::decode(&m).ok().map(|m| m.last_pgno),
                            None => None,
                        }
                    };
                    last_committed.insert(key.0, v);
                    v
                }
            };
            let new_page = match committed_last {
                None => true,
                Some(last) => key.1 > last,
            };
            if self.bulk && new_page && key.1 != PageNo::META {
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
            let bulk_written = inner
                .bulk_pages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key);
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
        if !direct.is_empty() {
            for (f, p) in &direct {
                match bulk_files.iter_mut().find(|b| b.0 == f.id) {
                    Some(b) => {
                        b.1 = b.1.min(*p);
                        b.2 = b.2.max(*p);
                    }
                    None => bulk_files.push((f.id, *p, *p)),
                }
            }
        }
        let markers: Vec<Record> = bulk_files
            .iter()
            .map(|(id, first, last)| Record::BulkMarker {
                file_id: *id,
                first_new: *first,
                last: *last,
            })
            .collect();
        recs.push(Record::Commit {
            timestamp: now_secs(),
        });

        // 2. Append (bulk pages first go straight to their files, stamped
        // with the LSN their marker will get).
        let lsns = {
            let mut app = log.lock();
            let mut all: Vec<(TxnId, &Record)> = Vec::new();
            if !markers.is_empty() {
                let mlen = markers[0].encoded_len();
                let mlsn = app.peek_lsn(mlen);
                for (f, p) in &direct {
                    let Some(buf) = self.pages.get_mut(&(f.id, *p)) else {
                        continue;
                    };
                    let b = Arc::make_mut(buf);
                    page::set_lsn(b, mlsn);
                    inner.write_page(f, *p, b)?;
                }
                for (f, _) in &direct {
                    if let Some(h) = &f.handle {
                        h.sync().map_err(|e| inner.fail(e))?;
                    }
                }
                for m in &markers {
                    all.push((self.id, m));
                }
            }
            for r in &recs {
                all.push((self.id, r));
            }
            app.append(&all).map_err(|e| inner.fail(e))?
        };
        let commit_lsn = lsns.last().copied().unwrap_or(Lsn::ZERO);
        let skip = markers.len();
        for (i, key) in &page_rec {
            if let (Some(buf), Some(lsn)) = (self.pages.get_mut(key), lsns.get(skip + i)) {
                page::set_lsn(Arc::make_mut(buf).as_mut_slice(), *lsn);
            }
        }

        let created_ids: Vec<FileId> = self.created.keys().copied().collect();
        // 3. Install.
        {
            let _w = inner.commit_lock.write().unwrap_or_else(|p| p.into_inner());
            let mut files = inner.files.write().unwrap_or_else(|p| p.into_inner());
            for (id, f) in self.created.drain() {
                files.insert(id, f);
            }
            for f in &self.removed {
                files.remove(&f.id);
            }
            drop(files);
            let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            for f in &self.removed {
                cache.forget_file(f.id);
            }
            let direct_keys: Vec<PageKey> = direct.iter().map(|(f, p)| (f.id, *p)).collect();
            inner
                .bulk_pages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(direct_keys.iter().copied());
            for (key, buf) in std::mem::take(&mut self.pages) {
                if direct_keys.contains(&key) {
                    cache.insert_clean(key, buf);
                } else {
                    cache.install(key, buf);
                }
            }
            inner.generation.fetch_add(1, Ordering::Release);
        }
        inner.commits.fetch_add(1, Ordering::Relaxed);
        let removed = std::mem::take(&mut self.removed);

        // 4. Durability, outside the writer lock so commits can group.
        drop(self);
        if !inner.nosync || !removed.is_empty() || !created_ids.is_empty() {
            log.flush(commit_lsn).map_err(|e| inner.fail(e))?;
        }
        if !created_ids.is_empty() {
            inner.write_back_files(&created_ids)?;
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
        // 5. Keep the cache within its size: committed pages come in dirty,
        // and otherwise only a cache miss would ever evict (a process that
        // wrote all its pages itself grew without bound). The commit is
        // done; a failed write-back puts the environment in the failed
        // state, which the next operation reports.
        let over = inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .over_capacity();
        if over {
            let _ = inner.evict();
        }
        Ok(commit_lsn)
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.rollback();
        }
    }
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

/// A transaction's view of one file: its own changed pages over the
/// committed ones.
pub struct TxnStore<'t> {
    inner: &'t crate::env::Inner,
    pages: &'t mut BTreeMap<PageKey, PageBuf>,
    file: Arc<DbFile>,
}

impl PageRead for TxnStore<'_> {
    fn page_size(&self) -> usize {
        self.file.page_size
    }

    fn path(&self) -> &Path {
        &self.file.path
    }

    fn page(&self, no: PageNo) -> Result<PageBuf> {
        if let Some(p) = self.pages.get(&(self.file.id, no)) {
            return Ok(p.clone());
        }
        self.inner.read_page(&self.file, no)
    }
}

impl PageWrite for TxnStore<'_> {
    fn page_mut(&mut self, no: PageNo) -> Result<&mut [u8]> {
        let key = (self.file.id, no);
        if !self.pages.contains_key(&key) {
            let base = self.inner.read_page(&self.file, no)?;
            self.pages.insert(key, Arc::new(base.as_ref().clone()));
        }
        match self.pages.get_mut(&key) {
            Some(p) => Ok(Arc::make_mut(p).as_mut_slice()),
            None => Err(Error::invalid("page vanished from transaction")),
        }
    }

    fn page_new(&mut self, no: PageNo) -> Result<&mut [u8]> {
        let key = (self.file.id, no);
        self.pages
            .insert(key, Arc::new(vec![0u8; self.file.page_size]));
        match self.pages.get_mut(&key) {
            Some(p) => Ok(Arc::make_mut(p).as_mut_slice()),
            None => Err(Error::invalid("page vanished from transaction")),
        }
    }
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
        let mut rng = crate::faultfs::Rng::new(7);
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
