//! Write transactions. A transaction keeps every page it changes private
//! (copy on write) until commit, so readers never see its work in progress
//! and an abort is simply dropping the copies: the log is redo-only and an
//! aborted transaction never reaches it.
//!
//! The commit protocol is commit.rs; this file is the transaction's
//! private state, what it reads through (`TxnStore`), and its API.
//!
//! Bulk mode (docs/DESIGN.md, "Transactions and commit"): pages new to a file (past its committed
//! last page) bypass the log: they are written straight to the file,
//! fsynced before a `BulkMarker` naming their range is logged, and only
//! the marker and the meta page go to the log. So that a bulk transaction
//! of any size holds a bounded number of pages, it writes such pages out
//! early (*spills* them, `bulk::SpillSet`) once it holds half the cache
//! size, and a bottom-up build (`btree::build`, for loads) hands each
//! finished page straight to the file. A file it creates gets a marker
//! beside it until the commit is durable (`dbfile::create_marker`), so
//! the pages a lost bulk create leaves do not block the name. Nothing
//! committed can see a spilled page (the
//! committed meta page ends before it), and the log's end cannot move while
//! the transaction holds the writer lock (checkpoints take it too), so the
//! LSN spilled pages are stamped with is at most the marker's and below
//! every later record.

use super::bulk::SpillSet;
use super::cache::PageKey;
use super::env::{Env, Inner, WriterState};
use super::reader::Pair;
use super::reentry::{Hold, Mark};
use crate::btree;
use crate::btree::build::{Builder, PageSink};
use crate::error::{Error, Result};
use crate::storage::dbfile::{self, Db, DbFile};
use crate::storage::layout::check_new_db_name;
use crate::storage::page::{self, Meta};
use crate::storage::pagestore::{PageBuf, PageRead, PageWrite};
use crate::storage::vfs::OpenMode;
use crate::types::{FileId, Lsn, PageNo, TxnId};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, MutexGuard};

/// Mode of database files we create (masked by the umask).
const DB_FILE_MODE: u32 = 0o660;

/// Bytes of private pages a bulk transaction holds before it spills the
/// ones new to their file, as a share of the cache size: the same budget
/// an operator sets for pages in memory (16 MiB by default).
const SPILL_SHARE: usize = 2;

/// Whether a commit waits for its log records to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The commit returns once its records are on disk (fdatasync, shared
    /// with the commits around it): it survives a crash or power loss.
    Sync,
    /// The commit returns at once; a crash or power loss may lose it (and
    /// any later nosync commit), never part of it, and never an earlier
    /// sync commit. Other readers see it at once. It becomes durable with
    /// the next sync commit, [`Env::flush`], or a checkpoint.
    NoSync,
}

/// A write transaction. Its fields are the transaction's private state;
/// commit.rs turns them into log records and installs them.
pub struct Txn<'e> {
    pub(super) env: &'e Env,
    _writer: MutexGuard<'e, WriterState>,
    /// This thread holds the writer lock (reentry.rs).
    _mark: Mark,
    pub(super) id: TxnId,
    /// The pages it changed: private copies until commit.
    pub(super) pages: BTreeMap<PageKey, PageBuf>,
    pub(super) created: HashMap<FileId, Arc<DbFile>>,
    /// Markers of files a bulk transaction creates (`dbfile::create_marker`).
    pub(super) markers: Vec<std::path::PathBuf>,
    pub(super) removed: Vec<Arc<DbFile>>,
    pub(super) bulk: bool,
    /// Bulk mode: pages already written straight to each file.
    pub(super) spilled: HashMap<FileId, SpillSet>,
    /// Bytes held in `pages` (counted as pages are added; recounted at
    /// each spill), and the count that triggers the next spill.
    held: usize,
    spill_at: usize,
    /// Set by `set_durability`; the environment's mode otherwise.
    pub(super) durability: Option<Durability>,
    /// Committed or rolled back: nothing left to undo when dropped.
    pub(super) finished: bool,
    /// The first change that failed: its pages may hold half of it (a
    /// B-tree split cut short by a read error), so the transaction can
    /// only be aborted.
    pub(super) failed: Option<String>,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("id", &self.id)
            .field("bulk", &self.bulk)
            .field("pages", &self.pages.len())
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Begins the one write transaction (waits for the current one; fails
    /// with `Error::Misuse` if this thread holds it or is inside a read).
    pub fn begin(&self) -> Result<Txn<'_>> {
        Txn::begin(self, false)
    }

    /// Begins a bulk-mode transaction: pages it adds to the end of a file
    /// are written straight to the data file at commit and only a marker
    /// goes to the log (see the module comment). An incremental backup
    /// copies the database it wrote again.
    pub fn begin_bulk(&self) -> Result<Txn<'_>> {
        Txn::begin(self, true)
    }
}

impl<'e> Txn<'e> {
    fn begin(env: &'e Env, bulk: bool) -> Result<Txn<'e>> {
        env.inner.check_failed()?;
        env.inner.log()?;
        env.inner.refuse_self_wait("begin")?;
        let mut w = super::lock(&env.inner.writer);
        let mark = Mark::new(env.inner.key(), Hold::Writer);
        let id = TxnId(w.next_txn);
        w.next_txn = w.next_txn.checked_add(1).ok_or_else(|| {
            Error::Exhausted(format!(
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
            durability: None,
            finished: false,
            failed: None,
        })
    }

    /// This transaction's id, as its log records carry it (ids start
    /// again after a clean reopen: not a sequence number across opens).
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// Chooses whether this transaction's commit waits for the disk; the
    /// default is the environment's (`EnvOptions::nosync`, `DB_CONFIG`'s
    /// `set_flags DB_TXN_NOSYNC`).
    pub fn set_durability(&mut self, d: Durability) {
        self.durability = Some(d);
    }

    /// The file of `db` as this transaction sees it (created, removed).
    pub(super) fn file(&self, db: &Db) -> Result<Arc<DbFile>> {
        self.env.inner.check_owner(db)?;
        self.file_by_id(db.id, &db.name)
    }

    /// The file with id `id` as this transaction sees it; `name` is what an
    /// error calls it.
    pub(super) fn file_by_id(&self, id: FileId, name: &str) -> Result<Arc<DbFile>> {
        if let Some(f) = self.created.get(&id) {
            return Ok(f.clone());
        }
        if self.removed.iter().any(|f| f.id == id) {
            return Err(Error::NotFound(format!("{name}: database was removed")));
        }
        self.env
            .inner
            .file(id)
            .ok_or_else(|| Error::NotFound(format!("{name}: database was removed")))
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
    pub(super) fn committed_last(&self, file: &DbFile) -> Result<Option<PageNo>> {
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
            let file = self.file_by_id(key.0, "")?;
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
            None => Err(Error::internal("spill set vanished from transaction")),
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
            return Err(Error::internal("spill set vanished from transaction"));
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

    /// Sets `key` to `val` in `db`. Returns whether the key was there
    /// before (its old value is replaced). A key or value over the size
    /// limit is refused with nothing changed; any other failure leaves the
    /// transaction able only to abort (its commit returns the error).
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

    /// The value of `key` as this transaction sees it: its own changes
    /// over every commit before it began.
    pub fn get(&mut self, db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let s = self.store(db)?;
        btree::get(&s, key)
    }

    /// Removes `key` from `db`. Returns whether it was there.
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

    /// The smallest pair of `db` as this transaction sees it.
    pub fn first(&mut self, db: &Db) -> Result<Option<Pair>> {
        let s = self.store(db)?;
        btree::first(&s)
    }

    /// The first pair whose key is greater than `key`, as this
    /// transaction sees it.
    pub fn next_after(&mut self, db: &Db, key: &[u8]) -> Result<Option<Pair>> {
        let s = self.store(db)?;
        btree::next_after(&s, key)
    }

    /// Creates a database file (an error if one of that name exists). The
    /// file appears on disk now, empty; it becomes a database at commit.
    pub fn create_db(&mut self, name: &str, page_size: Option<usize>) -> Result<Db> {
        check_new_db_name(name)?;
        let inner = &self.env.inner;
        let exists =
            inner.files.find(name).is_some() || self.created.values().any(|f| f.name == name);
        if exists {
            return Err(Error::Exists(format!(
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
                return Err(Error::Exists(format!(
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
        let id = inner.files.allocate_id(&inner.layout.home)?;
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
            owner: self.env.inner.open_id,
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

    /// Drops every change of the transaction (dropping it does the same):
    /// nothing of it reached the log, so there is nothing to undo.
    pub fn abort(mut self) {
        self.rollback();
    }

    pub(super) fn rollback(&mut self) {
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
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.rollback();
        }
    }
}

fn spill_budget(env: &Env) -> usize {
    env.inner.pool.capacity() / SPILL_SHARE
}

/// Writes a page new to its file straight to the file, stamped with
/// `stamp` (see the module comment).
fn write_direct(inner: &Inner, file: &DbFile, no: PageNo, page: &[u8], stamp: Lsn) -> Result<()> {
    let mut b = page.to_vec();
    page::set_lsn(&mut b, stamp);
    inner.pool.write_past_end(file, no, &b, &inner.failure)
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
    inner: &'t Inner,
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
            return Err(Error::internal("built page has the wrong size"));
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
    inner: &'t Inner,
    pages: &'t mut BTreeMap<PageKey, PageBuf>,
    spilled: Option<&'t SpillSet>,
    held: &'t mut usize,
    file: Arc<DbFile>,
}

/// A page as the transaction last left it, when it holds no copy: one it
/// spilled, read around the shared cache (no one else may see it), or the
/// committed one.
fn base_page(
    inner: &Inner,
    file: &DbFile,
    spilled: Option<&SpillSet>,
    no: PageNo,
) -> Result<PageBuf> {
    if spilled.is_some_and(|s| s.contains(no)) {
        return Ok(Arc::new(inner.pool.read_uncached(file, no)?));
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
