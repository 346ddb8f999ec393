//! The buffer pool: the committed page images every reader of an open
//! environment shares (the cache, cache.rs), how they are read from their
//! files, and the one way a cached page goes back to its file.
//!
//! Rules kept here (docs/DESIGN.md, "Write-back and checkpoints"):
//! * write-ahead: a cached page reaches its data file only through
//!   [`Pool::write_back`], which takes a [`Durable`], the proof `Log::flush`
//!   gives that the log is durable, and refuses a page whose LSN that proof
//!   does not cover. Callers flush up to the end of what was appended when
//!   the pages were captured (every installed page's commit record was
//!   appended before its install), not just to the pages' LSNs: redo
//!   applies a page record only with its transaction's commit record,
//!   which may sit in a newer log file than every page record of its
//!   batch;
//! * no regression: pages are captured from the cache and written while
//!   holding the write-back lock, so two writers of one page cannot land an
//!   older image after a newer one (the cache only moves forward);
//! * a failed page write or data-file fsync puts the environment in the
//!   failed state (failure.rs): the file may now be behind the cache.
//!
//! The only other writes to data files are bulk mode's pages past a
//! file's committed end ([`Pool::write_past_end`]), which no committed
//! state can see until a later logged meta page does (bulk.rs), and
//! recovery's redo, which runs before the pool exists.
//!
//! What is installed: a commit swaps its page images in under the commit
//! lock ([`Pool::install`]), notes its commit record (`installed`, what a
//! reader in sync mode waits to be durable) and bumps `generation` (how a
//! long scan sees that something changed between two batches, and the
//! sequence number snapshots are taken at). While a snapshot is alive, an
//! install first keeps the committed images it replaces in the version
//! map (versions.rs), from the cache or read from their files; they never
//! enter the cache, so they are never written back.

use super::cache::{Cache, PageKey};
use super::failure::Failure;
use super::files::FileTable;
use super::versions::{PreImage, Versions};
use super::{lock, read, write};
use crate::error::{Error, Location, Result};
use crate::storage::dbfile::DbFile;
use crate::storage::page::{self, PageCheck};
use crate::storage::pagestore::PageBuf;
use crate::storage::vfs::SharedVfs;
use crate::types::{FileId, Lsn, PageNo};
use crate::wal::{Durable, Log};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

/// Proof that the caller holds the pool's write-back lock.
pub(crate) type WritebackGuard<'a> = MutexGuard<'a, ()>;

/// What writing back needs besides the pool: the log to make durable
/// first, the file table to find each page's file, and the failed state a
/// write error puts the environment in.
pub(crate) struct WriteBack<'a> {
    pub(crate) log: &'a Log,
    pub(crate) files: &'a FileTable,
    pub(crate) failure: &'a Failure,
}

pub(crate) struct Pool {
    /// Read-locked for lookups (snapshot readers and the committer side
    /// by side), write-locked to change what is cached.
    cache: RwLock<Cache>,
    /// Read-only views: pages replayed from the log since the checkpoint,
    /// and the end of the log they reflect.
    overlay: HashMap<PageKey, PageBuf>,
    snapshot_end: Lsn,
    read_only: bool,
    /// The environment's file system and home, to ask whether an owner is
    /// live (a read-only view's damaged page may be one it is writing).
    vfs: SharedVfs,
    home: PathBuf,
    /// Held by whoever writes dirty pages back (see the module comment).
    writeback: Mutex<()>,
    /// Files written since their last fsync (a checkpoint fsyncs them).
    unsynced: Mutex<HashSet<FileId>>,
    /// The commit record of the newest commit installed for readers.
    installed: Mutex<Lsn>,
    /// Bumped by every install.
    generation: AtomicU64,
    /// Live snapshots and the page images they still need.
    versions: Versions,
}

impl Pool {
    pub(crate) fn new(
        capacity: usize,
        overlay: HashMap<PageKey, PageBuf>,
        snapshot_end: Lsn,
        read_only: bool,
        vfs: SharedVfs,
        home: PathBuf,
    ) -> Pool {
        Pool {
            cache: RwLock::new(Cache::new(capacity)),
            overlay,
            snapshot_end,
            read_only,
            vfs,
            home,
            writeback: Mutex::new(()),
            unsynced: Mutex::new(HashSet::new()),
            installed: Mutex::new(Lsn::ZERO),
            generation: AtomicU64::new(0),
            versions: Versions::default(),
        }
    }

    /// Live snapshots and their pre-images (versions.rs).
    pub(crate) fn versions(&self) -> &Versions {
        &self.versions
    }

    /// Read-only views: the end of the log the view reflects.
    pub(crate) fn snapshot_end(&self) -> Lsn {
        self.snapshot_end
    }

    /// (hits, misses, pages, dirty pages) of the cache.
    pub(crate) fn stats(&self) -> (u64, u64, usize, usize) {
        let c = read(&self.cache);
        let (hits, misses) = c.hit_counts();
        (hits, misses, c.len(), c.dirty_count())
    }

    /// Bytes the cache keeps before it evicts.
    pub(crate) fn capacity(&self) -> usize {
        read(&self.cache).capacity()
    }

    pub(crate) fn over_capacity(&self) -> bool {
        read(&self.cache).over_capacity()
    }

    /// The commit record of the newest installed commit.
    pub(crate) fn installed(&self) -> Lsn {
        *lock(&self.installed)
    }

    /// Changes with every install.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The committed image of a page: overlay, cache, then disk (kept in
    /// the cache). `true` beside it when the cache is now over its size:
    /// the caller evicts ([`Pool::evict`]), as it alone can write back.
    pub(crate) fn read(&self, file: &DbFile, no: PageNo) -> Result<(PageBuf, bool)> {
        let key = (file.id, no);
        if let Some(b) = self.overlay.get(&key) {
            return Ok((b.clone(), false));
        }
        let gen = {
            let c = read(&self.cache);
            if let Some(b) = c.get(key) {
                return Ok((b, false));
            }
            self.generation()
        };
        let buf = std::sync::Arc::new(self.read_uncached(file, no)?);
        let over = {
            let mut c = write(&self.cache);
            // A snapshot reads without the commit lock: an install, its
            // write-back and an eviction may have come and gone during the
            // file read, leaving the image read older than the committed
            // one. Cached only if no install ended meanwhile (an install
            // bumps the generation under the cache lock).
            if self.generation() == gen {
                c.insert_clean(key, buf.clone());
            }
            c.over_capacity()
        };
        Ok((buf, over))
    }

    /// The committed image of a page from the overlay or the cache alone;
    /// `None` when neither holds it.
    pub(crate) fn cached(&self, key: PageKey) -> Option<PageBuf> {
        if let Some(b) = self.overlay.get(&key) {
            return Some(b.clone());
        }
        read(&self.cache).get(key)
    }

    /// A page as its file holds it, checksum verified, around the cache.
    pub(crate) fn read_uncached(&self, file: &DbFile, no: PageNo) -> Result<Vec<u8>> {
        let ps = file.page_size;
        let Some(h) = &file.handle else {
            return Err(self.missing_page(file, no, "page is not in the file"));
        };
        let mut buf = vec![0u8; ps];
        // A read-only view may race the owner's write of this page: read
        // again a few times before calling it torn.
        let tries = if self.read_only { 4 } else { 1 };
        let mut last = PageCheck::Ok;
        for _ in 0..tries {
            let n = h.read_at(&mut buf, u64::from(no.0) * ps as u64)?;
            if n < ps {
                return Err(self.missing_page(file, no, "page is past the end of the file"));
            }
            last = page::check(&buf, no);
            if last == PageCheck::Ok {
                if self.read_only && page::lsn(&buf) > self.snapshot_end {
                    return Err(Error::SnapshotMoved);
                }
                return Ok(buf);
            }
        }
        if self.read_only && crate::engine::owner::live_owner(&self.vfs, &self.home).is_some() {
            return Err(Error::SnapshotMoved);
        }
        let what = match last {
            PageCheck::Unwritten => "page was never written (run db_recover)".to_string(),
            PageCheck::WrongNumber(n) => format!("page holds page {n} (misplaced write)"),
            _ => "checksum mismatch: torn or damaged page (run db_recover)".to_string(),
        };
        Err(Error::corrupt(&file.path, Location::Page(no), what))
    }

    fn missing_page(&self, file: &DbFile, no: PageNo, what: &str) -> Error {
        if self.read_only && crate::engine::owner::live_owner(&self.vfs, &self.home).is_some() {
            return Error::SnapshotMoved;
        }
        Error::corrupt(&file.path, Location::Page(no), what)
    }

    /// Installs a commit's pages (under the commit lock): every page is
    /// dirty until written back, but those in `on_disk`, which bulk mode
    /// wrote to their files already. Pages of `removed` files go. While a
    /// snapshot is alive the images replaced are kept for it first (`files`
    /// is the file table before this commit's changes). Readers of a sync
    /// environment wait for a `sync` commit to be durable before they see
    /// it (`installed`); a nosync one they see at once.
    pub(crate) fn install(
        &self,
        commit: Lsn,
        pages: BTreeMap<PageKey, PageBuf>,
        on_disk: &HashSet<PageKey>,
        removed: &[FileId],
        files: &FileTable,
        sync: bool,
    ) {
        let seq = self.generation.load(Ordering::Acquire) + 1;
        if let Some(newest) = self.versions.newest_live() {
            let pre = self.pre_images(&pages, on_disk, removed, files, newest);
            self.versions.keep(seq, pre);
        }
        if sync {
            *lock(&self.installed) = commit;
        }
        let mut cache = write(&self.cache);
        for f in removed {
            cache.forget_file(*f);
        }
        for (key, buf) in pages {
            if on_disk.contains(&key) {
                cache.insert_clean(key, buf);
            } else {
                cache.install(key, buf);
            }
        }
        // Bumped while the cache lock is held: `read` relies on it.
        self.generation.fetch_add(1, Ordering::Release);
        drop(cache);
    }

    /// The committed images an install is about to replace that a live
    /// snapshot (the newest at `newest`) may read: each changed page of a
    /// file that exists, and every dirty page of a removed file (its clean
    /// ones are in the file, which a snapshot keeps open).
    fn pre_images(
        &self,
        pages: &BTreeMap<PageKey, PageBuf>,
        on_disk: &HashSet<PageKey>,
        removed: &[FileId],
        files: &FileTable,
        newest: u64,
    ) -> Vec<(PageKey, PreImage)> {
        let mut out = Vec::new();
        for key in pages.keys() {
            let Some(file) = files.get(key.0) else {
                continue; // created by this commit: no snapshot has it
            };
            if !self.versions.wants(*key, newest) {
                continue;
            }
            let img = if on_disk.contains(key) {
                PreImage::Absent
            } else {
                self.current_image(&file, key.1)
            };
            out.push((*key, img));
        }
        if !removed.is_empty() {
            let dirty = read(&self.cache).dirty_pages();
            for (key, buf) in dirty {
                if removed.contains(&key.0) && self.versions.wants(key, newest) {
                    out.push((key, PreImage::Image(buf)));
                }
            }
        }
        out
    }

    /// The committed image of a page as a pre-image: from the cache, else
    /// its file (not cached: no reader but a snapshot needs it), absent
    /// past the file's end.
    fn current_image(&self, file: &DbFile, no: PageNo) -> PreImage {
        if let Some(b) = read(&self.cache).peek((file.id, no)) {
            return PreImage::Image(b);
        }
        let Some(h) = &file.handle else {
            return PreImage::Absent;
        };
        let past_end = match h.len() {
            Ok(len) => (u64::from(no.0) + 1) * file.page_size as u64 > len,
            Err(e) => return PreImage::Unreadable(e.to_string()),
        };
        if past_end {
            return PreImage::Absent;
        }
        match self.read_uncached(file, no) {
            Ok(b) => PreImage::Image(std::sync::Arc::new(b)),
            Err(e) => PreImage::Unreadable(e.to_string()),
        }
    }

    /// Takes the write-back lock.
    pub(crate) fn writeback_lock(&self) -> WritebackGuard<'_> {
        lock(&self.writeback)
    }

    /// Keys of every dirty page, sorted: what a checkpoint must write back
    /// for the changes logged before its redo point.
    pub(crate) fn dirty_keys(&self) -> Vec<PageKey> {
        read(&self.cache).dirty_keys()
    }

    /// Writes back the pages of `keys` still dirty (as their current
    /// images), log first.
    pub(crate) fn write_back_keys(&self, keys: &[PageKey], wb: &WriteBack<'_>) -> Result<()> {
        let held = self.writeback_lock();
        let pages: Vec<(PageKey, PageBuf)> = {
            let c = read(&self.cache);
            keys.iter()
                .filter_map(|k| c.dirty_image(*k).map(|b| (*k, b)))
                .collect()
        };
        self.flush_and_write_back(&held, pages, wb)
    }

    /// Writes the committed pages of newly created files to disk at once,
    /// and fsyncs the files, so a new database is a database on disk (its
    /// meta page readable by `db_archive -s` and copies) from its commit
    /// on, not from the next checkpoint.
    pub(crate) fn write_back_files(&self, ids: &[FileId], wb: &WriteBack<'_>) -> Result<()> {
        {
            let held = self.writeback_lock();
            let pages: Vec<(PageKey, PageBuf)> = read(&self.cache)
                .dirty_pages()
                .into_iter()
                .filter(|(k, _)| ids.contains(&k.0))
                .collect();
            self.flush_and_write_back(&held, pages, wb)?;
        }
        for id in ids {
            if let Some(f) = wb.files.get(*id) {
                if let Some(h) = &f.handle {
                    h.sync().map_err(|e| wb.failure.fail(e))?;
                }
            }
        }
        Ok(())
    }

    /// Shrinks the cache. Dirty pages are written only if no checkpoint is
    /// writing back right now: this runs inside transactions (on a cache
    /// miss), and waiting for a checkpoint's write-back here would stall
    /// the writer for its whole length. The checkpoint cleans pages, so the
    /// next eviction finds them clean. A read-only view (`wb` is `None`)
    /// only drops clean pages.
    pub(crate) fn evict(&self, wb: Option<&WriteBack<'_>>) -> Result<()> {
        let Some(wb) = wb else {
            write(&self.cache).evict();
            return Ok(());
        };
        let Ok(held) = self.writeback.try_lock() else {
            write(&self.cache).evict();
            return Ok(());
        };
        let (dirty, _) = write(&self.cache).evict();
        if dirty.is_empty() {
            return Ok(());
        }
        self.flush_and_write_back(&held, dirty, wb)?;
        drop(held);
        write(&self.cache).evict();
        Ok(())
    }

    /// Makes the log durable up to its end, then writes `pages` back.
    fn flush_and_write_back(
        &self,
        held: &WritebackGuard<'_>,
        pages: Vec<(PageKey, PageBuf)>,
        wb: &WriteBack<'_>,
    ) -> Result<()> {
        if pages.is_empty() {
            return Ok(());
        }
        let durable = wb.log.flush(wb.log.end()).map_err(|e| wb.failure.fail(e))?;
        self.write_back(held, &durable, pages, wb)
    }

    /// The one way a cached page goes back to its file: captured under
    /// `_held`, with the log `durable` past its LSN (see the module
    /// comment); marked clean unless a newer image was installed meanwhile.
    pub(crate) fn write_back(
        &self,
        _held: &WritebackGuard<'_>,
        durable: &Durable,
        pages: Vec<(PageKey, PageBuf)>,
        wb: &WriteBack<'_>,
    ) -> Result<()> {
        for (key, buf) in &pages {
            let Some(f) = wb.files.get(key.0) else {
                continue;
            };
            let lsn = page::lsn(buf);
            if !durable.covers(lsn) {
                return Err(wb.failure.fail(Error::misuse(format!(
                    "{}: page {} has LSN {lsn}, which the durable log (up to {}) does not cover; the write-ahead rule forbids writing it",
                    f.path.display(),
                    key.1,
                    durable.upto()
                ))));
            }
            self.write_page(&f, key.1, buf, wb.failure)?;
        }
        let mut c = write(&self.cache);
        for (key, buf) in &pages {
            c.mark_clean(*key, buf);
        }
        Ok(())
    }

    /// Bulk mode only: writes a page that lies past its file's committed
    /// end, which no committed state can see (bulk.rs), so the write-ahead
    /// rule does not apply: the marker that makes it part of the database
    /// is logged only after the file is fsynced. A write error fails the
    /// environment.
    pub(crate) fn write_past_end(
        &self,
        file: &DbFile,
        no: PageNo,
        buf: &[u8],
        failure: &Failure,
    ) -> Result<()> {
        self.write_page(file, no, buf, failure)
    }

    /// Writes one page image to its file (sealing the checksum on a copy);
    /// a failed write fails the environment.
    fn write_page(&self, file: &DbFile, no: PageNo, buf: &[u8], failure: &Failure) -> Result<()> {
        let Some(h) = &file.handle else {
            return Err(Error::internal("write to a file without a handle"));
        };
        let mut out = buf.to_vec();
        page::seal(&mut out);
        h.write_at(&out, u64::from(no.0) * file.page_size as u64)
            .map_err(|e| failure.fail(e))?;
        lock(&self.unsynced).insert(file.id);
        Ok(())
    }

    /// Fsyncs every file written since its last fsync.
    pub(crate) fn sync_files(&self, files: &FileTable, failure: &Failure) -> Result<()> {
        let ids: Vec<FileId> = lock(&self.unsynced).drain().collect();
        for id in ids {
            if let Some(f) = files.get(id) {
                if let Some(h) = &f.handle {
                    h.sync().map_err(|e| failure.fail(e))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::{OpenMode, OsVfs};
    use crate::types::TxnId;
    use crate::wal::Record;
    use std::sync::Arc;

    /// The write-ahead rule is a type: write-back takes the proof that
    /// `Log::flush` gives, and a page whose LSN the proof does not cover
    /// (its record could still be lost in a crash) is refused, and the
    /// environment fails, instead of reaching its file ahead of the log.
    #[test]
    fn write_back_refuses_a_page_the_durable_log_does_not_cover() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path();
        let vfs = OsVfs::shared();
        let log = Log::create(vfs.clone(), home, 1, 1 << 20).unwrap();
        let first = log
            .lock()
            .append(&[(TxnId(1), &Record::Commit { timestamp: 0 })])
            .unwrap()[0];
        let durable = log.flush(log.end()).unwrap();
        assert!(durable.covers(first) && !durable.covers(durable.upto()));
        let path = home.join("a.db");
        let handle = vfs.open(&path, OpenMode::Create(0o600)).unwrap();
        let file = Arc::new(DbFile {
            id: FileId(1),
            name: "a.db".into(),
            path: path.clone(),
            page_size: 512,
            handle: Some(handle),
        });
        let files = FileTable::new(HashMap::from([(FileId(1), file)]), 2);
        let failure = Failure::new(home.to_path_buf());
        let pool = Pool::new(
            64 * 1024,
            HashMap::new(),
            Lsn::ZERO,
            false,
            vfs.clone(),
            home.into(),
        );
        let wb = WriteBack {
            log: &log,
            files: &files,
            failure: &failure,
        };
        let page_at = |lsn: Lsn| {
            let mut b = vec![0u8; 512];
            page::set_lsn(&mut b, lsn);
            Arc::new(b)
        };
        let held = pool.writeback_lock();
        let covered = vec![((FileId(1), PageNo(0)), page_at(first))];
        pool.write_back(&held, &durable, covered, &wb).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 512);
        failure.check().unwrap();

        let ahead = vec![((FileId(1), PageNo(1)), page_at(durable.upto()))];
        let e = pool.write_back(&held, &durable, ahead, &wb).unwrap_err();
        assert!(matches!(e, Error::Misuse(_)), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 512, "not written");
        assert!(matches!(failure.check(), Err(Error::Failed { .. })));
    }
}
