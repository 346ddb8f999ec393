//! Snapshots: read transactions that see the state of one commit for
//! their whole life, and the key-range iterators over them.
//!
//! A snapshot is taken under the commit lock's read side (so between two
//! installs), and then holds no lock: it records the pool's generation
//! (the install it sees) and the file table of that moment, and registers
//! in the version map (versions.rs). Every later install keeps the page
//! images it replaces while the snapshot is alive; the snapshot reads a
//! page as the pre-image of the first install after it that replaced it,
//! else as the current committed page. So it never blocks a commit and a
//! commit blocks it only for the install's swap.
//!
//! Reading the current page races an install that replaces it: the
//! version map is looked at again after the read, and a pre-image found
//! then wins (an install keeps its pre-images before its new images are
//! visible, so a newer image read means its pre-image is there; a page
//! torn by a write-back under a lock-free read shows up the same way).
//!
//! What it sees: in the default (sync) mode, as every reader, only
//! durable commits: taking one registers it at the newest install, then,
//! without the lock, waits for the log fsync of that install's commit
//! (the committer's: reader.rs); in nosync mode every commit
//! returned. A
//! database removed after the snapshot stays readable through it: the
//! snapshot holds the file's open handle (the name is unlinked, the
//! space freed when the snapshot ends), and the removal keeps the file's
//! dirty pages as pre-images. A database created after it is not in it
//! (`Error::NotFound`). A B-tree read only follows pages up to its meta
//! page's last page, so pages new since the snapshot (also bulk pages
//! written straight to files) are never read. Once the environment fails
//! (failure.rs), every read of a live snapshot fails too.

use super::env::{Env, Inner};
use super::reader::Pair;
use super::reentry::{self, Hold};
use super::versions::PreImage;
pub use super::versions::SnapshotStats;
use crate::btree;
use crate::error::{Error, Location, Result};
use crate::storage::dbfile::{Db, DbFile};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::types::{FileId, PageNo};
use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

/// A read transaction: a consistent view of the environment as of one
/// commit, for as long as it lives. Commits go on meanwhile and it never
/// sees them; it never blocks them. Cheap to take; drop it when done
/// (while it lives, the pages commits replace are kept for it in memory:
/// see [`Env::snapshot_stats`]).
///
/// ```
/// # fn main() -> libcore::Result<()> {
/// use libcore::{Env, EnvOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let env = Env::open(dir.path(), EnvOptions::create())?;
/// let mut t = env.begin()?;
/// let db = t.create_db("accounts.db", None)?;
/// t.put(&db, b"alice", b"10")?;
/// t.commit()?;
///
/// let snap = env.snapshot()?;
/// let mut t = env.begin()?; // writers go on while the snapshot lives
/// t.put(&db, b"alice", b"0")?;
/// t.commit()?;
/// assert_eq!(snap.get(&db, b"alice")?, Some(b"10".to_vec()));
/// assert_eq!(env.snapshot()?.get(&db, b"alice")?, Some(b"0".to_vec()));
/// # Ok(()) }
/// ```
pub struct Snapshot<'e> {
    env: &'e Env,
    /// The install it sees (the pool's generation when it was taken).
    seq: u64,
    /// The databases as of that install.
    files: HashMap<FileId, Arc<DbFile>>,
}

impl Env {
    /// Takes a snapshot of the newest commit a reader may see (in sync
    /// mode the newest durable one: this may wait for the log fsync of a
    /// commit in flight). It holds no lock: a write transaction may begin
    /// and commit in the same thread while it lives.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// let snap = env.snapshot()?;
    /// let mut t = env.begin()?;
    /// let db = t.create_db("new.db", None)?;
    /// t.commit()?;
    /// assert!(snap.open_db("new.db").is_err(), "created after the snapshot");
    /// # Ok(()) }
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let inner = &self.inner;
        let (snap, need) = {
            let _r = commit_lock_unless_held(inner);
            inner.check_failed()?;
            let seq = inner.pool.generation();
            inner.pool.versions().register(seq);
            let snap = Snapshot {
                env: self,
                seq,
                files: inner.files.all(),
            };
            (snap, inner.pool.installed())
        };
        // Registered: every later install keeps what it replaces for this
        // snapshot, so its commit may be made durable without the lock
        // (holding it across the fsync would hold the next install).
        match &inner.log {
            Some(log) if !inner.nosync && !need.is_zero() && log.durable() <= need => {
                super::reader::await_commit_durable(inner, log, need)?;
            }
            _ => {}
        }
        Ok(snap)
    }

    /// How many snapshots are alive and how many replaced page images
    /// (and bytes) are kept for them. A snapshot kept for a long time
    /// while commits go on holds one image per page they replace.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// let snap = env.snapshot()?;
    /// assert_eq!(env.snapshot_stats().live, 1);
    /// drop(snap);
    /// assert_eq!(env.snapshot_stats().pre_images, 0);
    /// # Ok(()) }
    /// ```
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.inner.pool.versions().stats()
    }
}

/// The commit lock's read side for taking a snapshot, unless this thread
/// holds it already (inside an `Env::read` closure: a second read lock
/// could wait behind a waiting install, which waits for the first).
fn commit_lock_unless_held(inner: &Inner) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
    if reentry::holds(inner.key(), Hold::Reader) {
        return None;
    }
    Some(super::read(&inner.commit_lock))
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.env.inner.pool.versions().release(self.seq);
    }
}

impl<'e> Snapshot<'e> {
    /// Names of the databases in the snapshot, sorted.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// assert!(env.snapshot()?.db_names().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn db_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.files.values().map(|f| f.name.clone()).collect();
        v.sort();
        v
    }

    /// A handle on a database of the snapshot (`Error::NotFound` if it
    /// did not exist at its commit).
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// # let mut t = env.begin()?; t.create_db("a.db", None)?; t.commit()?;
    /// let db = env.snapshot()?.open_db("a.db")?;
    /// assert_eq!(db.name(), "a.db");
    /// # Ok(()) }
    /// ```
    pub fn open_db(&self, name: &str) -> Result<Db> {
        self.files
            .values()
            .find(|f| f.name == name)
            .map(|f| Db {
                id: f.id,
                name: f.name.clone(),
                owner: self.env.inner.open_id,
            })
            .ok_or_else(|| Error::NotFound(format!("{name}: no such database in the snapshot")))
    }

    /// The value of `key` in `db` as of the snapshot.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// # let mut t = env.begin()?; let db = t.create_db("a.db", None)?;
    /// # t.put(&db, b"k", b"v")?; t.commit()?;
    /// let snap = env.snapshot()?;
    /// assert_eq!(snap.get(&db, b"k")?, Some(b"v".to_vec()));
    /// assert_eq!(snap.get(&db, b"absent")?, None);
    /// # Ok(()) }
    /// ```
    pub fn get(&self, db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let store = self.store(db)?;
        store.inner.check_failed()?;
        btree::get(&store, key)
    }

    /// Every pair of `db` in key order (forwards, or backwards with
    /// `.rev()`): `range(db, ..)` without naming a key type.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// # let mut t = env.begin()?; let db = t.create_db("a.db", None)?;
    /// # t.put(&db, b"a", b"1")?; t.put(&db, b"b", b"2")?; t.commit()?;
    /// let snap = env.snapshot()?;
    /// let keys: Vec<Vec<u8>> = snap.iter(&db)?.rev().map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, [b"b".to_vec(), b"a".to_vec()]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self, db: &Db) -> Result<Range<'_>> {
        self.range::<[u8], _>(db, ..)
    }

    /// The pairs of `db` whose keys lie in `range` (byte order, as the
    /// B-tree sorts them), as an iterator of `Result<(key, value)>`,
    /// forwards and, with `.rev()` or `next_back`, backwards; both ends
    /// may be used on one iterator and they meet without overlap. Keys
    /// can be given as anything that is bytes: `&[u8]`, `&str`, `Vec<u8>`,
    /// or a `(Bound<&[u8]>, Bound<&[u8]>)` pair. An empty or reversed
    /// range gives nothing (where `BTreeMap::range` would panic). After
    /// an error the iterator ends.
    ///
    /// ```
    /// # fn main() -> libcore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let env = libcore::Env::open(dir.path(), libcore::EnvOptions::create())?;
    /// # let mut t = env.begin()?; let db = t.create_db("a.db", None)?;
    /// for k in ["apple", "banana", "cherry", "date"] {
    ///     t.put(&db, k.as_bytes(), b"")?;
    /// }
    /// t.commit()?;
    /// let snap = env.snapshot()?;
    /// let keys = |r: libcore::Range| -> libcore::Result<Vec<String>> {
    ///     r.map(|p| p.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())).collect()
    /// };
    /// assert_eq!(keys(snap.range(&db, "b".."d")?)?, ["banana", "cherry"]);
    /// assert_eq!(keys(snap.range(&db, "banana"..="date")?)?, ["banana", "cherry", "date"]);
    /// let back: Vec<_> = snap.range(&db, "c"..)?.rev().collect::<libcore::Result<_>>()?;
    /// assert_eq!(back[0].0, b"date");
    /// # Ok(()) }
    /// ```
    pub fn range<K, R>(&self, db: &Db, range: R) -> Result<Range<'_>>
    where
        K: AsRef<[u8]> + ?Sized,
        R: RangeBounds<K>,
    {
        let owned = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(Range {
            store: self.store(db)?,
            lo: owned(range.start_bound()),
            hi: owned(range.end_bound()),
            scan: None,
            done: false,
        })
    }

    fn store(&self, db: &Db) -> Result<SnapStore<'_>> {
        self.env.inner.check_owner(db)?;
        let file = self.files.get(&db.id).cloned().ok_or_else(|| {
            Error::NotFound(format!("{}: no such database in the snapshot", db.name))
        })?;
        Ok(SnapStore {
            inner: &self.env.inner,
            file,
            seq: self.seq,
        })
    }
}

/// The pages of one database as a snapshot sees them (see the module
/// comment).
struct SnapStore<'s> {
    inner: &'s Inner,
    file: Arc<DbFile>,
    seq: u64,
}

impl SnapStore<'_> {
    /// The page as its snapshot sees it, from the version map alone.
    fn kept(&self, no: PageNo) -> Option<Result<PageBuf>> {
        let pre = self
            .inner
            .pool
            .versions()
            .lookup((self.file.id, no), self.seq)?;
        Some(match pre {
            PreImage::Image(b) => Ok(b),
            PreImage::Absent => Err(Error::corrupt(
                &self.file.path,
                Location::Page(no),
                "page is past the end of the database as of the snapshot",
            )),
            PreImage::Unreadable(why) => Err(Error::corrupt(
                &self.file.path,
                Location::Page(no),
                format!("the snapshot's image of the page could not be kept: {why}"),
            )),
        })
    }

    /// The current committed page: through the cache while the file is
    /// the environment's, straight from the kept handle once removed.
    fn current(&self, no: PageNo) -> Result<PageBuf> {
        let live = self
            .inner
            .file(self.file.id)
            .is_some_and(|f| Arc::ptr_eq(&f, &self.file));
        if live {
            return self.inner.read_page(&self.file, no);
        }
        if let Some(b) = self.inner.pool.cached((self.file.id, no)) {
            return Ok(b);
        }
        Ok(Arc::new(self.inner.pool.read_uncached(&self.file, no)?))
    }
}

impl PageRead for SnapStore<'_> {
    fn page_size(&self) -> usize {
        self.file.page_size
    }

    fn path(&self) -> &Path {
        &self.file.path
    }

    fn page(&self, no: PageNo) -> Result<PageBuf> {
        if let Some(r) = self.kept(no) {
            return r;
        }
        let current = self.current(no);
        self.kept(no).unwrap_or(current)
    }
}

/// An iterator over a key range of a snapshot ([`Snapshot::range`]):
/// items `Result<(key, value)>`, forwards and backwards.
pub struct Range<'s> {
    store: SnapStore<'s>,
    /// What is left: above `lo`, below `hi`; each end moves past the
    /// pairs returned from it.
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    /// Forwards: a leaf-chain scan, started at the first call.
    scan: Option<btree::Scan>,
    done: bool,
}

fn above(key: &[u8], lo: &Bound<Vec<u8>>) -> bool {
    match lo {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    }
}

fn below(key: &[u8], hi: &Bound<Vec<u8>>) -> bool {
    match hi {
        Bound::Included(h) => key <= h.as_slice(),
        Bound::Excluded(h) => key < h.as_slice(),
        Bound::Unbounded => true,
    }
}

impl Range<'_> {
    fn front(&mut self) -> Result<Option<Pair>> {
        self.store.inner.check_failed()?;
        if self.scan.is_none() {
            let from = match &self.lo {
                Bound::Included(k) | Bound::Excluded(k) => Some(k.as_slice()),
                Bound::Unbounded => None,
            };
            self.scan = Some(btree::Scan::new(&self.store, from)?);
        }
        let Some(scan) = self.scan.as_mut() else {
            return Ok(None);
        };
        while let Some((k, v)) = scan.next(&self.store)? {
            if !above(&k, &self.lo) {
                continue; // the excluded start key itself
            }
            if !below(&k, &self.hi) {
                return Ok(None);
            }
            self.lo = Bound::Excluded(k.clone());
            return Ok(Some((k, v)));
        }
        Ok(None)
    }

    fn back(&mut self) -> Result<Option<Pair>> {
        self.store.inner.check_failed()?;
        let found = match &self.hi {
            Bound::Unbounded => btree::last(&self.store)?,
            Bound::Excluded(k) => btree::prev_before(&self.store, k)?,
            Bound::Included(k) => match btree::get(&self.store, k)? {
                Some(v) => Some((k.clone(), v)),
                None => btree::prev_before(&self.store, k)?,
            },
        };
        let Some((k, v)) = found else { return Ok(None) };
        if !above(&k, &self.lo) {
            return Ok(None);
        }
        self.hi = Bound::Excluded(k.clone());
        Ok(Some((k, v)))
    }

    /// Ends the iterator at its first `None` or error.
    fn fuse(&mut self, r: Result<Option<Pair>>) -> Option<Result<Pair>> {
        match r {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for Range<'_> {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.front();
        self.fuse(r)
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.back();
        self.fuse(r)
    }
}

impl std::iter::FusedIterator for Range<'_> {}
