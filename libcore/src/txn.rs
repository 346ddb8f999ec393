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
//!
//! Bulk mode (DESIGN.md section 4): pages new to a file (past its committed
//! last page) bypass the log: they are written straight to the file,
//! fsynced before a `BulkMarker` naming their range is logged, and only
//! the marker and the meta page go to the log. So that a bulk transaction
//! of any size holds a bounded number of pages, it writes such pages out
//! early (*spills* them, `bulk::SpillSet`) once it holds half the cache
//! size, and a bottom-up build (`btree::build`, for loads) hands each
//! finished page straight to the file. A file it creates gets a marker
//! beside it until the commit is durable (`dbfile::create_marker`), so
//! the pages a lost bulk create leaves do not block the name.
//!
//! While a lease is held in the region (a replication master or a hot
//! backup copies the log: `bulk::lease_held`, asked at commit), a bulk
//! transaction is *logged in full*: it still builds and spills the same
//! way, but its commit logs every page it wrote, the spilled ones read
//! back from the file, as page images, and no marker; so the log alone
//! carries the load to a standby or a backup. The images go in the same
//! contiguous batch (several appends under one appender lock, the
//! spilled images in chunks so memory stays bounded).
//!
//! Nothing committed can see a spilled page (the
//! committed meta page ends before it), and the log's end cannot move while
//! the transaction holds the writer lock (checkpoints take it too), so the
//! LSN spilled pages are stamped with is at most the marker's and below
//! every later record.

use crate::btree;
use crate::btree::build::{Builder, PageSink};
use crate::bulk::SpillSet;
use crate::cache::PageKey;
use crate::dbfile::{self, Db, DbFile};
use crate::env::{now_secs, Env, Pair, WriterState};
use crate::error::{Error, Result};
use crate::layout::check_new_db_name;
use crate::log::Record;
use crate::page::{self, Meta};
use crate::pagestore::{PageBuf, PageRead, PageWrite};
use crate::reentry::{self, Hold, Mark};
use crate::types::{FileId, Lsn, PageNo, TxnId};
use crate::vfs::OpenMode;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// Mode of database files we create (masked by the umask).
const DB_FILE_MODE: u32 = 0o660;

/// Bytes of private pages a bulk transaction holds before it spills the
/// ones new to their file, as a share of the cache size: the same budget
/// an operator sets for pages in memory (16 MiB by default).
const SPILL_SHARE: usize = 2;

pub struct Txn<'e> {
    env: &'e Env,
    _writer: MutexGuard<'e, WriterState>,
    /// This thread holds the writer lock (reentry.rs).
    _mark: Mark,
    id: TxnId,
    pages: BTreeMap<PageKey, PageBuf>,
    created: HashMap<FileId, Arc<DbFile>>,
    /// Markers of files a bulk transaction creates (`dbfile::create_marker`).
    markers: Vec<std::path::PathBuf>,
    removed: Vec<Arc<DbFile>>,
    bulk: bool,
    /// Bulk mode: pages already written straight to each file.
    spilled: HashMap<FileId, SpillSet>,
    /// Bytes held in `pages` (counted as pages are added; recounted at
    /// each spill), and the count that triggers the next spill.
    held: usize,
    spill_at: usize,
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
        env.inner.refuse_self_wait("begin")?;
        let mut w = env.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mark = Mark::new(env.inner.key(), Hold::Writer);
        let id = TxnId(w.next_txn);
        w.next_txn = w.next_txn.checked_add(1).ok_or_else(|| {
            Error::invalid(format!(
                "{}: transaction ids are used up; dump and reload the databases into a new environment",
                env.inner.layout.home.display()
            ))
        })?;
        Ok(Txn {
            env,
            _writer: w,
            _mark: mark,
            id,
            pages: BTreeMap::new(),
            created: HashMap::new(),
            markers: Vec::new(),
            removed: Vec::new(),
            bulk,
            spilled: HashMap::new(),
            held: 0,
            spill_at: spill_budget(env),
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
            spilled: self.spilled.get(&file.id),
            held: &mut self.held,
            file,
        })
    }

    /// The last page of `file` as committed; `None` for a file this
    /// transaction creates (or whose meta page cannot be read: every page
    /// counts as new then, as the commit has always treated it).
    fn committed_last(&self, file: &DbFile) -> Result<Option<PageNo>> {
        if self.created.contains_key(&file.id) {
            return Ok(None);
        }
        Ok(match self.env.inner.committed_page(file, PageNo::META)? {
            Some(m) => Meta::decode(&m).ok().map(|m| m.last_pgno),
            None => None,
        })
    }

    /// Makes sure `file` has its spill set.
    fn spill_set(&mut self, file: &DbFile) -> Result<()> {
        if !self.spilled.contains_key(&file.id) {
            let base = match self.committed_last(file)? {
                Some(last) => PageNo(last.0.saturating_add(1)),
                None => PageNo(1),
            };
            self.spilled.insert(file.id, SpillSet::new(base));
        }
        Ok(())
    }

    /// Bulk mode: writes every held page that is new to its file straight
    /// to the file, and forgets it (see the module comment).
    fn spill(&mut self) -> Result<()> {
        let inner = self.env.inner.clone();
        let stamp = inner.log()?.end();
        let keys: Vec<PageKey> = self
            .pages
            .keys()
            .copied()
            .filter(|k| k.1 != PageNo::META)
            .collect();
        for key in keys {
            let file = self.file(&Db {
                id: key.0,
                name: String::new(),
            })?;
            self.spill_set(&file)?;
            let Some(set) = self.spilled.get_mut(&key.0) else {
                continue;
            };
            if !set.may_spill(key.1) {
                continue;
            }
            if let Some(buf) = self.pages.remove(&key) {
                write_direct(&inner, &file, key.1, &buf, stamp)?;
                set.insert(key.1);
            }
        }
        self.held = self.pages.values().map(|p| p.len()).sum();
        self.spill_at = spill_budget(self.env).max(2 * self.held);
        Ok(())
    }

    /// Spills when a bulk transaction holds too much (between operations,
    /// never inside one).
    fn maybe_spill(&mut self) -> Result<()> {
        if self.bulk && self.held >= self.spill_at {
            let r = self.spill();
            self.note(r)?;
        }
        Ok(())
    }

    /// Starts building the empty database `db` bottom-up from pairs in
    /// ascending key order (`btree::build`), its pages going straight to
    /// the file. `None` unless this is a bulk transaction and `db` is
    /// empty as a new database is: then put pair by pair.
    pub fn bulk_builder(&mut self, db: &Db) -> Result<Option<BulkBuild>> {
        if !self.bulk {
            return Ok(None);
        }
        let b = {
            let s = self.store(db)?;
            Builder::start(&s)?
        };
        let Some(b) = b else { return Ok(None) };
        let file = self.file(db)?;
        self.spill_set(&file)?;
        // Fixed for the whole transaction: see the module comment.
        let stamp = self.env.inner.log()?.end();
        Ok(Some(BulkBuild {
            db: db.clone(),
            file,
            stamp,
            b,
        }))
    }

    /// Adds the next pair to a build; `key` must be accepted
    /// ([`BulkBuild::accepts`]).
    pub fn build_push(&mut self, bb: &mut BulkBuild, key: &[u8], val: &[u8]) -> Result<()> {
        btree::check_size("key", key.len())?;
        btree::check_size("value", val.len())?;
        let r = match self.spilled.get_mut(&bb.file.id) {
            Some(spill) => {
                let mut sink = BuildSink {
                    inner: &self.env.inner,
                    pages: &mut self.pages,
                    held: &mut self.held,
                    spill,
                    file: &bb.file,
                    stamp: bb.stamp,
                };
                bb.b.push(&mut sink, key, val)
            }
            None => Err(Error::invalid("spill set vanished from transaction")),
        };
        self.note(r)
    }

    /// Ends a build: the tree is complete in the transaction, and puts
    /// (for pairs out of order) may follow.
    pub fn build_finish(&mut self, bb: BulkBuild) -> Result<()> {
        let r = self.build_finish_inner(bb);
        self.note(r)
    }

    fn build_finish_inner(&mut self, bb: BulkBuild) -> Result<()> {
        let BulkBuild { db, file, stamp, b } = bb;
        let Some(spill) = self.spilled.get_mut(&file.id) else {
            return Err(Error::invalid("spill set vanished from transaction"));
        };
        let mut sink = BuildSink {
            inner: &self.env.inner,
            pages: &mut self.pages,
            held: &mut self.held,
            spill,
            file: &file,
            stamp,
        };
        if let Some(m) = b.finish(&mut sink)? {
            let mut s = self.store(&db)?;
            m.encode(s.page_mut(PageNo::META)?);
        }
        Ok(())
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
        let found = self.note(r)?;
        self.maybe_spill()?;
        Ok(found)
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
        let found = self.note(r)?;
        self.maybe_spill()?;
        Ok(found)
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
        check_new_db_name(name)?;
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
        // A file left by a transaction that never committed (empty, or
        // with the pages of a bulk transaction and its marker) is not a
        // database: reuse its name.
        let marker = dbfile::create_marker(&path);
        let mut leftover = false;
        if inner.vfs.exists(&path) {
            let h = inner.vfs.open(&path, OpenMode::Read)?;
            leftover = h.len()? != 0;
            if !dbfile::is_uncommitted_leftover(&inner.vfs, &*h, &path)? {
                return Err(Error::invalid(format!(
                    "{}: file exists and is not a database of this environment",
                    path.display()
                )));
            }
        }
        if self.bulk {
            drop(inner.vfs.open(&marker, OpenMode::Create(DB_FILE_MODE))?);
        }
        if self.bulk || inner.vfs.exists(&marker) {
            self.markers.push(marker);
        }
        let handle = inner.vfs.open(&path, OpenMode::Create(DB_FILE_MODE))?;
        if leftover {
            // Its stale pages must not come back under the new database.
            handle.set_len(0)?;
            handle.sync()?;
        }
        // Both names durable before any page of ours reaches the file.
        inner.vfs.sync_dir(&inner.layout.create_dir)?;
        let id = inner
            .next_file_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .map(FileId)
            .map_err(|_| {
                Error::invalid(format!(
                    "{}: database file ids are used up; dump and reload the databases into a new environment",
                    inner.layout.home.display()
                ))
            })?;
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
        self.spilled.remove(&db.id);
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
        // Spilled pages past an existing file's committed end are garbage
        // nothing can see (recovery would cut them too); cut them now.
        // Best effort: the abort stands whatever happens here.
        for (id, set) in std::mem::take(&mut self.spilled) {
            if set.span().is_none() || self.created.contains_key(&id) {
                continue;
            }
            if let Some(f) = self.env.inner.file(id) {
                if let Some(h) = &f.handle {
                    let _ = h.set_len(u64::from(set.base().0) * f.page_size as u64);
                }
            }
        }
        for f in self.created.values() {
            let _ = self.env.inner.vfs.remove(&f.path);
        }
        self.created.clear();
        for m in std::mem::take(&mut self.markers) {
            let _ = self.env.inner.vfs.remove(&m);
        }
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
        let redo = *inner.redo_point.lock().unwrap_or_else(|p| p.into_inner());
        let logged = self.bulk && crate::bulk::lease_held(&inner.layout.home);

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
            direct_files.push(self.file(&Db {
                id: *id,
                name: String::new(),
            })?);
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
        let spilled_pages: Vec<(Arc<DbFile>, PageNo)> = if logged {
            self.spilled_pages(&removed_ids)?
        } else {
            Vec::new()
        };
        let creates = self.created.len();

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
                for f in &direct_files {
                    if let Some(h) = &f.handle {
                        h.sync().map_err(|e| inner.fail(e))?;
                    }
                }
                for m in &markers {
                    all.push((self.id, m));
                }
            }
            if spilled_pages.is_empty() {
                for r in &recs {
                    all.push((self.id, r));
                }
                app.append(&all).map_err(|e| inner.fail(e))?
            } else {
                // Logged in full: creations, then the spilled pages'
                // images, then the rest, as one contiguous batch.
                let head: Vec<(TxnId, &Record)> =
                    recs[..creates].iter().map(|r| (self.id, r)).collect();
                let mut lsns = app.append(&head).map_err(|e| inner.fail(e))?;
                for chunk in spilled_pages.chunks(IMAGE_CHUNK) {
                    let mut images = Vec::with_capacity(chunk.len());
                    for (f, no) in chunk {
                        images.push(Record::PageImage {
                            file_id: f.id,
                            pgno: *no,
                            image: inner.read_from_disk(f, *no)?,
                        });
                    }
                    let batch: Vec<(TxnId, &Record)> =
                        images.iter().map(|r| (self.id, r)).collect();
                    app.append(&batch).map_err(|e| inner.fail(e))?;
                }
                let rest: Vec<(TxnId, &Record)> =
                    recs[creates..].iter().map(|r| (self.id, r)).collect();
                lsns.extend(app.append(&rest).map_err(|e| inner.fail(e))?);
                lsns
            }
        };
        let commit_lsn = lsns.last().copied().unwrap_or(Lsn::ZERO);
        let skip = markers.len();
        for (i, key) in &page_rec {
            if let (Some(buf), Some(lsn)) = (self.pages.get_mut(key), lsns.get(skip + i)) {
                page::set_lsn(Arc::make_mut(buf).as_mut_slice(), *lsn);
            }
        }

        let created_ids: Vec<FileId> = self.created.keys().copied().collect();
        // Until its files are unlinked, no checkpoint may pick a redo
        // point past this removal (env.rs, PendingRemovals). Taken while
        // the writer lock still keeps every checkpoint out.
        let _removing = (!self.removed.is_empty()).then(|| inner.removals.start());
        // 3. Install.
        {
            let _w = inner.commit_lock.write().unwrap_or_else(|p| p.into_inner());
            *inner.installed.lock().unwrap_or_else(|p| p.into_inner()) = commit_lsn;
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
            let direct_keys: HashSet<PageKey> = direct.iter().map(|(f, p)| (f.id, *p)).collect();
            {
                let mut bp = inner.bulk_pages.lock().unwrap_or_else(|p| p.into_inner());
                for (id, first, last) in &bulk_files {
                    bp.insert_range(*id, *first, *last);
                }
            }
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
        let markers = std::mem::take(&mut self.markers);

        // 4. Durability, outside the writer lock so commits can group.
        drop(self);
        if !inner.nosync || !removed.is_empty() || !created_ids.is_empty() {
            log.flush(commit_lsn).map_err(|e| inner.fail(e))?;
        }
        if !created_ids.is_empty() {
            inner.write_back_files(&created_ids)?;
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

impl Txn<'_> {
    /// The pages this bulk transaction spilled to files it does not
    /// remove, in file and page order.
    fn spilled_pages(&self, removed: &HashSet<FileId>) -> Result<Vec<(Arc<DbFile>, PageNo)>> {
        let mut out = Vec::new();
        let mut ids: Vec<FileId> = self.spilled.keys().copied().collect();
        ids.sort();
        for id in ids.into_iter().filter(|id| !removed.contains(id)) {
            let Some((first, last)) = self.spilled.get(&id).and_then(|s| s.span()) else {
                continue;
            };
            let file = self.file(&Db {
                id,
                name: String::new(),
            })?;
            for no in first.0..=last.0 {
                if self
                    .spilled
                    .get(&id)
                    .is_some_and(|s| s.contains(PageNo(no)))
                {
                    out.push((file.clone(), PageNo(no)));
                }
            }
        }
        Ok(out)
    }
}

/// Spilled pages read back and logged per append when a bulk
/// transaction is logged in full.
const IMAGE_CHUNK: usize = 256;

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

fn spill_budget(env: &Env) -> usize {
    let cache = env.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
    cache.capacity() / SPILL_SHARE
}

/// Writes a page new to its file straight to the file, stamped with
/// `stamp` (see the module comment).
fn write_direct(
    inner: &crate::env::Inner,
    file: &DbFile,
    no: PageNo,
    page: &[u8],
    stamp: Lsn,
) -> Result<()> {
    let mut b = page.to_vec();
    page::set_lsn(&mut b, stamp);
    inner.write_page(file, no, &b)
}

/// A bottom-up build in a bulk transaction ([`Txn::bulk_builder`]).
pub struct BulkBuild {
    db: Db,
    file: Arc<DbFile>,
    /// The LSN its pages are stamped with (the log's end: see the module
    /// comment).
    stamp: Lsn,
    b: Builder,
}

impl BulkBuild {
    /// Whether `key` may come next (above every key so far).
    pub fn accepts(&self, key: &[u8]) -> bool {
        self.b.accepts(key)
    }

    /// Pairs built so far.
    pub fn pushed(&self) -> u64 {
        self.b.pushed()
    }
}

/// Where a build's finished pages go: pages new to the file straight to
/// it, the others (an existing empty database's root page) into the
/// transaction to be logged.
struct BuildSink<'t> {
    inner: &'t crate::env::Inner,
    pages: &'t mut BTreeMap<PageKey, PageBuf>,
    held: &'t mut usize,
    spill: &'t mut SpillSet,
    file: &'t DbFile,
    stamp: Lsn,
}

impl PageSink for BuildSink<'_> {
    fn put_page(&mut self, no: PageNo, page: &[u8]) -> Result<()> {
        let key = (self.file.id, no);
        if page.len() != self.file.page_size {
            return Err(Error::invalid("built page has the wrong size"));
        }
        if self.spill.may_spill(no) {
            // A copy held from before (the new root leaf of a created
            // file) must not overwrite the built page at commit.
            self.pages.remove(&key);
            write_direct(self.inner, self.file, no, page, self.stamp)?;
            self.spill.insert(no);
        } else {
            *self.held += page.len();
            self.pages.insert(key, Arc::new(page.to_vec()));
        }
        Ok(())
    }
}

/// A transaction's view of one file: its own changed pages over the
/// committed ones (and, in bulk mode, over the pages it spilled).
pub struct TxnStore<'t> {
    inner: &'t crate::env::Inner,
    pages: &'t mut BTreeMap<PageKey, PageBuf>,
    spilled: Option<&'t SpillSet>,
    held: &'t mut usize,
    file: Arc<DbFile>,
}

/// A page as the transaction last left it, when it holds no copy: one it
/// spilled, read around the shared cache (no one else may see it), or the
/// committed one.
fn base_page(
    inner: &crate::env::Inner,
    file: &DbFile,
    spilled: Option<&SpillSet>,
    no: PageNo,
) -> Result<PageBuf> {
    if spilled.is_some_and(|s| s.contains(no)) {
        return Ok(Arc::new(inner.read_from_disk(file, no)?));
    }
    inner.read_page(file, no)
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
        base_page(self.inner, &self.file, self.spilled, no)
    }
}

impl PageWrite for TxnStore<'_> {
    fn page_mut(&mut self, no: PageNo) -> Result<&mut [u8]> {
        // One lookup per call: this runs for every page a put changes.
        let buf = match self.pages.entry((self.file.id, no)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let base = base_page(self.inner, &self.file, self.spilled, no)?;
                *self.held += base.len();
                // Shared with the cache: make_mut below copies it once.
                v.insert(base)
            }
        };
        Ok(Arc::make_mut(buf).as_mut_slice())
    }

    fn page_new(&mut self, no: PageNo) -> Result<&mut [u8]> {
        *self.held += self.file.page_size;
        let fresh = Arc::new(vec![0u8; self.file.page_size]);
        let buf = match self.pages.entry((self.file.id, no)) {
            Entry::Occupied(mut e) => {
                e.insert(fresh);
                e.into_mut()
            }
            Entry::Vacant(v) => v.insert(fresh),
        };
        Ok(Arc::make_mut(buf).as_mut_slice())
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
