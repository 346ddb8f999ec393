//! An open environment: the owner lock, normal recovery at open, the file
//! table, the buffer cache, readers, checkpoints and close.
//!
//! Two ways to open:
//! * as the *owner* (`EnvOptions::default()`): takes `__db.lock`, runs normal
//!   recovery on disk, and may write;
//! * *read-only* (`EnvOptions::read_only()`): takes no lock and writes
//!   nothing. It replays the log since the last checkpoint into memory, so a
//!   tool sees every committed transaction even while a live owner keeps
//!   dirty pages in its own cache. If the owner writes a page newer than the
//!   snapshot while the tool reads, reads fail with `Error::SnapshotMoved`
//!   and the tool reopens.
//!
//! Concurrency inside one process: one write transaction at a time (the
//! `writer` mutex); readers take `commit_lock` for reading for the span of
//! one operation, and a commit installs its pages under the write side, so no
//! reader sees half of a transaction. Write-back and checkpoints live in
//! writeback.rs; a checkpoint holds `writer` only to pick its redo point.
//!
//! What a reader (`Env::read`, `get`, `Cursor`, `scan`) may see: every
//! commit installed so far, and in the default (sync) mode only once it is
//! durable. A commit installs its pages before its log fsync (so the next
//! transaction can build on them while the fsync runs, and commits group),
//! so a reader first makes sure the log is durable up to the newest
//! installed commit record, joining that fsync. If the fsync fails the
//! environment enters the failed state and every later read fails too: no
//! reader ever sees a commit that did not become durable. In nosync mode a
//! reader sees a commit as soon as it returns. A write transaction sees
//! every commit installed before it, durable or not: its own commit comes
//! later in the log, so it can never become durable without them.
//!
//! Calls that would wait for their own thread (a checkpoint or a second
//! `begin` while this thread's `Txn` is alive, a commit inside a read
//! closure) fail with `Error::Misuse` at once: see reentry.rs.

use crate::btree;
use crate::engine::cache::{Cache, PageKey};
use crate::engine::owner::OwnerLock;
use crate::engine::reentry::{self, Hold, Mark};
use crate::engine::region::{OwnerRegion, Region};
use crate::error::{Error, Location, Result};
use crate::recovery::{self, RecoveryMode, RecoveryOptions, RecoveryOutcome};
use crate::storage::config::Config;
use crate::storage::dbfile::{Db, DbFile};
use crate::storage::layout::{Holds, Layout};
use crate::storage::page::{self, Meta, PageCheck};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::storage::vfs::{OpenMode, OsVfs, SharedVfs};
use crate::types::{FileId, Lsn, PageNo};
use crate::wal::Log;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_LG_MAX: u32 = 10 * 1024 * 1024;
pub const DEFAULT_CACHE_SIZE: usize = 32 * 1024 * 1024;

/// How to open an environment.
#[derive(Clone)]
pub struct EnvOptions {
    /// Create the environment if the directory holds none.
    pub create: bool,
    /// Open without the owner lock and without writing anything.
    pub read_only: bool,
    /// How long to wait for another owner to close.
    pub lock_timeout: Duration,
    /// Commit without fsync (overrides DB_CONFIG's set_flags).
    pub nosync: Option<bool>,
    /// Page size for new databases (overrides DB_CONFIG's set_pagesize).
    pub page_size: Option<usize>,
    /// Log file size (overrides DB_CONFIG's set_lg_max).
    pub lg_max: Option<u32>,
    pub cache_size: Option<usize>,
    /// The file system underneath (tests plug in faulty ones).
    pub vfs: Option<SharedVfs>,
    /// Answer checkpoint requests of other processes posted in the region.
    pub serve_requests: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            create: false,
            read_only: false,
            lock_timeout: Duration::from_secs(10),
            nosync: None,
            page_size: None,
            lg_max: None,
            cache_size: None,
            vfs: None,
            serve_requests: true,
        }
    }
}

impl EnvOptions {
    pub fn create() -> Self {
        EnvOptions {
            create: true,
            ..Default::default()
        }
    }

    pub fn read_only() -> Self {
        EnvOptions {
            read_only: true,
            serve_requests: false,
            ..Default::default()
        }
    }
}

pub(crate) struct WriterState {
    pub next_txn: u64,
}

pub(crate) struct Inner {
    pub layout: Layout,
    pub vfs: SharedVfs,
    pub log: Option<Log>,
    pub read_only: bool,
    pub nosync: bool,
    pub page_size: usize,
    pub files: RwLock<HashMap<FileId, Arc<DbFile>>>,
    pub cache: Mutex<Cache>,
    /// Read-only views: pages replayed from the log since the checkpoint.
    pub overlay: HashMap<PageKey, PageBuf>,
    /// Read-only views: the end of the log the overlay reflects.
    pub snapshot_end: Lsn,
    pub writer: Mutex<WriterState>,
    /// Held by whoever writes dirty pages back (writeback.rs): a page is
    /// captured and written inside it, so an older image never lands on
    /// disk after a newer one.
    pub writeback: Mutex<()>,
    /// One checkpoint at a time (they no longer hold `writer` throughout).
    pub checkpointing: Mutex<()>,
    pub commit_lock: RwLock<()>,
    /// The commit record of the newest commit installed for readers: in
    /// sync mode a reader waits until the log is durable past it.
    pub installed: Mutex<Lsn>,
    /// Committed database removals whose files are not unlinked yet.
    pub removals: PendingRemovals,
    /// Live `Env` handles: the last one to `close` closes.
    pub handles: Mutex<usize>,
    pub generation: AtomicU64,
    /// Pages whose LSN is older than this get a full image when next logged.
    pub redo_point: Mutex<Lsn>,
    pub last_ckp: Mutex<Lsn>,
    pub next_file_id: AtomicU32,
    /// Pages a bulk transaction wrote straight to their file since the last
    /// checkpoint: no image of them is in the log, so their next change is
    /// logged as a full image (a torn write of it stays repairable).
    pub bulk_pages: Mutex<crate::engine::bulk::BulkPages>,
    /// Files written since their last fsync (checkpoint fsyncs them).
    pub unsynced: Mutex<HashSet<FileId>>,
    pub failed: Mutex<Option<String>>,
    pub region: OwnerRegion,
    pub env_id: u64,
    pub commits: AtomicU64,
    pub stop: AtomicBool,
    pub recovered: RecoveryOutcome,
    _lock: Option<OwnerLock>,
}

/// An open environment. Cheap to clone; all clones share one state, and
/// the environment closes when the last clone is closed.
pub struct Env {
    pub(crate) inner: Arc<Inner>,
    /// Set by `close`, which has already given up this handle's count.
    released: bool,
}

impl Clone for Env {
    fn clone(&self) -> Env {
        *lock(&self.inner.handles) += 1;
        Env {
            inner: self.inner.clone(),
            released: false,
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.released {
            let mut n = lock(&self.inner.handles);
            *n = n.saturating_sub(1);
        }
    }
}

/// Committed database removals whose files are not unlinked yet. A
/// checkpoint waits until there are none before it picks its redo point:
/// a redo point past a removal's log record with the file still on disk
/// would let recovery adopt the file again, stale contents and all.
#[derive(Default)]
pub(crate) struct PendingRemovals {
    count: Mutex<usize>,
    done: Condvar,
}

impl PendingRemovals {
    /// Registers one removal; it ends when the ticket is dropped (the file
    /// is gone, or the environment failed trying).
    pub(crate) fn start(&self) -> RemovalTicket<'_> {
        *lock(&self.count) += 1;
        RemovalTicket(self)
    }

    /// Waits until no removal is in flight.
    pub(crate) fn wait_none(&self) {
        let mut n = lock(&self.count);
        while *n > 0 {
            n = self.done.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub(crate) struct RemovalTicket<'a>(&'a PendingRemovals);

impl Drop for RemovalTicket<'_> {
    fn drop(&mut self) {
        let mut n = lock(&self.0.count);
        *n = n.saturating_sub(1);
        self.0.done.notify_all();
    }
}

/// The reader lock as `Env::read` holds it: none when this thread already
/// holds it (a read inside a read), and the mark that makes a commit in
/// the closure fail instead of waiting for itself.
pub(crate) struct ReadGuard<'a> {
    _lock: Option<RwLockReadGuard<'a, ()>>,
    _mark: Option<Mark>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread while holding the lock leaves data we still
    // trust (every update is a single assignment), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_env_id() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

impl Env {
    pub fn open(home: &Path, opts: EnvOptions) -> Result<Env> {
        let vfs = opts.vfs.clone().unwrap_or_else(OsVfs::shared);
        let layout = Layout::resolve(&vfs, home)?;
        for d in layout.data_dirs.iter().chain([&layout.log_dir]) {
            if !vfs.is_dir(d) {
                return Err(Error::io(d, "open", std::io::Error::from_raw_os_error(2)));
            }
        }
        let mut logs = layout.log_files(&vfs)?;
        if logs.is_empty() && (opts.read_only || !opts.create) {
            // No log: nothing was ever committed here. A read-only view of
            // an environment whose creation was interrupted is an empty
            // one; an owner needs `create` to finish creating it, and
            // without it writes nothing.
            let empty = opts.read_only && layout.holds(&vfs)? == Holds::NothingCommitted;
            if !empty {
                return Err(Error::NotEnvironment {
                    path: home.to_path_buf(),
                });
            }
        }
        let owner_lock = if opts.read_only {
            None
        } else {
            let l = OwnerLock::acquire(home, opts.lock_timeout)?;
            // Looked at again under the lock (the log may have changed).
            logs = layout.log_files(&vfs)?;
            if logs.is_empty() && !opts.create {
                return Err(Error::NotEnvironment {
                    path: home.to_path_buf(),
                });
            }
            Some(l)
        };
        let cfg: &Config = &layout.config;
        let lg_max = opts.lg_max.or(cfg.lg_max).unwrap_or(DEFAULT_LG_MAX);
        let page_size = opts
            .page_size
            .or(cfg.page_size.map(|p| p as usize))
            .unwrap_or(page::DEFAULT_PAGE_SIZE);
        if !page::valid_page_size(page_size) {
            return Err(Error::invalid(format!(
                "page size {page_size} is not a power of two from 512 to 65536"
            )));
        }
        let cache_size = opts
            .cache_size
            .or(cfg.cache_size.map(|c| c as usize))
            .unwrap_or(DEFAULT_CACHE_SIZE);
        let nosync = opts.nosync.unwrap_or(cfg.nosync);

        let (log, outcome, env_id) = if logs.is_empty() && !opts.read_only {
            if !layout.db_files(&vfs)?.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: holds database files but no log files; refusing to start a new log over them",
                    home.display()
                )));
            }
            remove_unfinished_log(&vfs, &layout)?;
            let env_id = new_env_id();
            let log = Log::create(vfs.clone(), &layout.log_dir, env_id, lg_max)?;
            (Some(log), RecoveryOutcome::default(), env_id)
        } else {
            let ropts = RecoveryOptions {
                mode: RecoveryMode::Normal,
                write: !opts.read_only,
                ..Default::default()
            };
            let outcome = recovery::recover(&vfs, &layout, ropts)?;
            let env_id = outcome.env_id.unwrap_or(0);
            let log = if opts.read_only {
                None
            } else {
                Some(Log::open_at(
                    vfs.clone(),
                    &layout.log_dir,
                    env_id,
                    lg_max,
                    outcome.end,
                    outcome.last_ckp.as_ref().map(|c| c.0).unwrap_or(Lsn::ZERO),
                )?)
            };
            (log, outcome, env_id)
        };

        // A backup opened by an owner is a failover: its log so far is a
        // copy of the old primary's, so the new owner's records start in a
        // file of their own, and the directory stops being a backup that
        // `db_hotbackup -u` could extend.
        if let Some(log) = &log {
            if vfs.exists(&crate::wal::manifest::Manifest::path(home)) {
                log.new_file()?;
                crate::wal::manifest::Manifest::remove(&vfs, home)?;
            }
        }
        let files = open_files(&vfs, &layout, &outcome, opts.read_only)?;
        let max_file = files.keys().map(|f| f.0).max().unwrap_or(0);
        let max_file = max_file.max(outcome.max_file_id.0);
        // A log can name the largest id there is (it is only bytes): an
        // owner could give no new one, so it refuses to open rather than
        // wrap around onto ids in use. A read-only view gives none.
        let next_txn = outcome.max_txn.0.checked_add(1);
        let next_file_id = max_file.checked_add(1);
        if !opts.read_only && (next_txn.is_none() || next_file_id.is_none()) {
            return Err(Error::invalid(format!(
                "{}: the log uses the largest transaction or database file id there is; no new one can be given",
                home.display()
            )));
        }
        let redo_point = outcome
            .last_ckp
            .as_ref()
            .map(|c| c.1.redo_lsn)
            .unwrap_or(Lsn::ZERO);
        let last_ckp = outcome.last_ckp.as_ref().map(|c| c.0).unwrap_or(Lsn::ZERO);
        let region = OwnerRegion::new(Region::at(home));
        let inner = Inner {
            log,
            read_only: opts.read_only,
            nosync,
            page_size,
            files: RwLock::new(files),
            cache: Mutex::new(Cache::new(cache_size)),
            overlay: outcome.overlay.clone(),
            snapshot_end: outcome.end,
            writer: Mutex::new(WriterState {
                next_txn: next_txn.unwrap_or(u64::MAX),
            }),
            writeback: Mutex::new(()),
            checkpointing: Mutex::new(()),
            commit_lock: RwLock::new(()),
            installed: Mutex::new(Lsn::ZERO),
            removals: PendingRemovals::default(),
            handles: Mutex::new(1),
            generation: AtomicU64::new(0),
            redo_point: Mutex::new(redo_point),
            last_ckp: Mutex::new(last_ckp),
            next_file_id: AtomicU32::new(next_file_id.unwrap_or(u32::MAX)),
            unsynced: Mutex::new(HashSet::new()),
            bulk_pages: Mutex::new(crate::engine::bulk::BulkPages::default()),
            failed: Mutex::new(None),
            region,
            env_id,
            commits: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            recovered: RecoveryOutcome {
                overlay: HashMap::new(),
                ..outcome
            },
            vfs,
            layout,
            _lock: owner_lock,
        };
        let env = Env {
            inner: Arc::new(inner),
            released: false,
        };
        if !opts.read_only {
            let i = &env.inner;
            let end = i.log.as_ref().map(|l| l.end()).unwrap_or(Lsn::ZERO);
            i.region.publish(move |s| {
                s.owner_pid = std::process::id();
                s.clean_shutdown = false;
                s.env_id = env_id;
                s.last_ckp = last_ckp;
                s.ckp_redo = redo_point;
                s.log_end = end;
                s.commits = 0;
            })?;
            if opts.serve_requests {
                spawn_request_server(Arc::downgrade(&env.inner));
            }
        }
        Ok(env)
    }

    pub fn home(&self) -> &Path {
        &self.inner.layout.home
    }

    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub fn vfs(&self) -> &SharedVfs {
        &self.inner.vfs
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub fn env_id(&self) -> u64 {
        self.inner.env_id
    }

    /// Page size given to databases created without an explicit one.
    pub fn default_page_size(&self) -> usize {
        self.inner.page_size
    }

    /// What recovery did when this environment was opened.
    pub fn recovery_outcome(&self) -> &RecoveryOutcome {
        &self.inner.recovered
    }

    /// The end of the log (where the next record goes), or for a read-only
    /// view the end of the log it reflects.
    pub fn log_end(&self) -> Lsn {
        match &self.inner.log {
            Some(l) => l.end(),
            None => self.inner.snapshot_end,
        }
    }

    pub fn last_checkpoint(&self) -> Lsn {
        *lock(&self.inner.last_ckp)
    }

    pub fn redo_point(&self) -> Lsn {
        *lock(&self.inner.redo_point)
    }

    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// (hits, misses, pages, dirty pages) of the buffer cache.
    pub fn cache_stats(&self) -> (u64, u64, usize, usize) {
        let c = lock(&self.inner.cache);
        (c.hits, c.misses, c.len(), c.dirty_count())
    }

    /// Names of the databases, sorted.
    pub fn db_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|f| f.name.clone())
            .collect();
        v.sort();
        v
    }

    /// A handle on an existing database.
    pub fn open_db(&self, name: &str) -> Result<Db> {
        let files = self.inner.files.read().unwrap_or_else(|p| p.into_inner());
        files
            .values()
            .find(|f| f.name == name)
            .map(|f| Db {
                id: f.id,
                name: f.name.clone(),
            })
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}: no such database",
                    self.inner.layout.db_path(&self.inner.vfs, name).display()
                ))
            })
    }

    pub(crate) fn file(&self, db: &Db) -> Result<Arc<DbFile>> {
        self.inner
            .file(db.id)
            .ok_or_else(|| Error::NotFound(format!("{}: database was removed", db.name)))
    }

    /// Reads one value.
    pub fn get(&self, db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(db, |s| btree::get(s, key))
    }

    /// Runs a read-only B-tree operation on one consistent state.
    pub fn read<T>(&self, db: &Db, f: impl FnOnce(&ReadStore<'_>) -> Result<T>) -> Result<T> {
        let file = self.file(db)?;
        let _r = self.inner.read_lock()?;
        let store = ReadStore {
            inner: &self.inner,
            file: &file,
        };
        f(&store)
    }

    /// A cursor over `db` in key order. Each step sees one committed state;
    /// between steps other transactions may commit, and the cursor carries
    /// on from the last key it returned.
    pub fn cursor(&self, db: &Db) -> Cursor {
        Cursor {
            env: self.clone(),
            db: db.clone(),
            last: None,
        }
    }

    /// Begins the one write transaction (waits for the current one; fails
    /// with `Error::Misuse` if this thread holds it or is inside a read).
    pub fn begin(&self) -> Result<crate::engine::txn::Txn<'_>> {
        crate::engine::txn::Txn::begin(self, false)
    }

    /// Begins a bulk-mode transaction: pages it adds to the end of a file
    /// are written straight to the data file at commit and only a marker
    /// goes to the log (see DESIGN.md section 4). An incremental backup
    /// copies the database it wrote again.
    pub fn begin_bulk(&self) -> Result<crate::engine::txn::Txn<'_>> {
        crate::engine::txn::Txn::begin(self, true)
    }

    /// Writes back every dirty page and records a checkpoint in the log and
    /// the region. Waits for the current write transaction to finish.
    pub fn checkpoint(&self) -> Result<Lsn> {
        self.inner.refuse_self_wait("checkpoint")?;
        self.inner.checkpoint()
    }

    /// Gives up this handle. The last handle to close checkpoints and
    /// marks the shutdown clean; closing any other clone leaves the
    /// environment open for the clones still alive. Dropping the last
    /// handle without `close` is like a crash of the process: nothing is
    /// lost, the next open runs recovery.
    pub fn close(mut self) -> Result<()> {
        self.inner.refuse_self_wait("close")?;
        let last = {
            let mut n = lock(&self.inner.handles);
            *n = n.saturating_sub(1);
            self.released = true;
            *n == 0
        };
        // A failed environment says so to every handle that closes.
        self.inner.check_failed()?;
        if !last {
            return Ok(());
        }
        self.inner.stop.store(true, Ordering::Relaxed);
        if self.inner.read_only {
            return Ok(());
        }
        self.inner.checkpoint()?;
        self.inner.region.publish(|s| {
            s.owner_pid = 0;
            s.clean_shutdown = true;
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Removes a first log file whose creation a crash interrupted (it holds
/// nothing: see `log::live_log_files`), so the environment's creation can
/// start over.
fn remove_unfinished_log(vfs: &SharedVfs, layout: &Layout) -> Result<()> {
    let unfinished = layout.all_log_files(vfs)?;
    for &n in &unfinished {
        vfs.remove(&layout.log_path(n))?;
    }
    if !unfinished.is_empty() {
        vfs.sync_dir(&layout.log_dir)?;
    }
    Ok(())
}

/// The owner polls the region for checkpoint requests from other processes
/// (`db_checkpoint`, `db_hotbackup -c`) and answers them.
fn spawn_request_server(weak: Weak<Inner>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(inner) = weak.upgrade() else { return };
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        // Never waits for the region's lock: a tool stopped while holding
        // it delays the answer, not the owner.
        let _ = inner.region.flush();
        let Some(st) = inner.region.try_read() else {
            continue;
        };
        if st.ckp_requested > st.ckp_done && inner.checkpoint().is_ok() {
            let want = st.ckp_requested;
            let _ = inner
                .region
                .publish(move |s| s.ckp_done = s.ckp_done.max(want));
        }
    });
}

/// Opens every database file: those in the data directories, plus (for a
/// read-only view) those that exist so far only in the replayed log.
fn open_files(
    vfs: &SharedVfs,
    layout: &Layout,
    outcome: &RecoveryOutcome,
    read_only: bool,
) -> Result<HashMap<FileId, Arc<DbFile>>> {
    let mut out = HashMap::new();
    let mode = if read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    let mut seen = HashSet::new();
    for info in layout.db_files(vfs)? {
        let id = match outcome.files.iter().find(|(_, n)| **n == info.name) {
            Some((id, _)) => *id,
            None => {
                let handle = vfs.open(&info.path, OpenMode::Read)?;
                let mut buf = vec![0u8; info.meta_page_size as usize];
                handle.read_at(&mut buf, 0)?;
                match Meta::decode(&buf) {
                    Ok(m) => m.file_id,
                    Err(_) => continue,
                }
            }
        };
        let handle = vfs.open(&info.path, mode)?;
        seen.insert(info.name.clone());
        out.insert(
            id,
            Arc::new(DbFile {
                id,
                name: info.name,
                path: info.path,
                page_size: info.meta_page_size as usize,
                handle: Some(handle),
            }),
        );
    }
    if read_only {
        for (id, name) in &outcome.files {
            if seen.contains(name) {
                continue;
            }
            let Some(meta) = outcome.overlay.get(&(*id, PageNo::META)) else {
                continue;
            };
            let Ok(m) = Meta::decode(meta) else { continue };
            // The meta page is only in the log so far, but other pages may
            // be on disk already (bulk-mode pages, evicted pages).
            let path = layout.db_path(vfs, name);
            let handle = vfs.open(&path, OpenMode::Read).ok();
            out.insert(
                *id,
                Arc::new(DbFile {
                    id: *id,
                    name: name.clone(),
                    path,
                    page_size: m.page_size as usize,
                    handle,
                }),
            );
        }
    }
    Ok(out)
}

impl Inner {
    pub fn file(&self, id: FileId) -> Option<Arc<DbFile>> {
        self.files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// A key naming this environment in per-thread marks (reentry.rs).
    pub(crate) fn key(&self) -> usize {
        self as *const Inner as usize
    }

    /// Refuses `what` (which takes the writer lock) when this thread holds
    /// the writer or reader lock: it would wait for itself.
    pub(crate) fn refuse_self_wait(&self, what: &str) -> Result<()> {
        let home = self.layout.home.display();
        if reentry::holds(self.key(), Hold::Writer) {
            return Err(Error::misuse(format!(
                "{home}: {what} while this thread's write transaction is open: commit or abort it first"
            )));
        }
        if reentry::holds(self.key(), Hold::Reader) {
            return Err(Error::misuse(format!(
                "{home}: {what} inside a read (Env::read, scan): it would wait for the read itself"
            )));
        }
        Ok(())
    }

    /// Takes the reader lock once every installed commit may be seen (see
    /// the module comment): in sync mode the log must be durable past the
    /// newest installed commit record. Waits for that fsync without the
    /// lock (commits go on meanwhile) and checks again; after a few rounds
    /// under a steady stream of commits it waits holding the lock.
    pub(crate) fn read_lock(&self) -> Result<ReadGuard<'_>> {
        if reentry::holds(self.key(), Hold::Reader) {
            return Ok(ReadGuard {
                _lock: None,
                _mark: None,
            });
        }
        let mut rounds = 0;
        loop {
            self.check_failed()?;
            let guard = self.commit_lock.read().unwrap_or_else(|p| p.into_inner());
            let need = *lock(&self.installed);
            let log = match &self.log {
                Some(l) if !self.nosync && !need.is_zero() => l,
                _ => return Ok(self.read_guard(guard)),
            };
            if log.durable() > need {
                return Ok(self.read_guard(guard));
            }
            rounds += 1;
            if rounds >= 3 {
                log.flush(need).map_err(|e| self.fail(e))?;
                return Ok(self.read_guard(guard));
            }
            drop(guard);
            log.flush(need).map_err(|e| self.fail(e))?;
        }
    }

    fn read_guard<'a>(&self, lock: RwLockReadGuard<'a, ()>) -> ReadGuard<'a> {
        ReadGuard {
            _lock: Some(lock),
            _mark: Some(Mark::new(self.key(), Hold::Reader)),
        }
    }

    pub fn check_failed(&self) -> Result<()> {
        if let Some(why) = lock(&self.failed).clone() {
            return Err(Error::Failed {
                path: self.layout.home.clone(),
                why,
            });
        }
        Ok(())
    }

    /// Puts the environment in the failed state after a write or fsync
    /// error: nothing more is written until recovery runs.
    pub fn fail(&self, e: Error) -> Error {
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e.to_string());
        }
        e
    }

    pub fn log(&self) -> Result<&Log> {
        self.log.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "{}: opened read-only; cannot write",
                self.layout.home.display()
            ))
        })
    }

    /// The committed image of a page: overlay, cache, then disk.
    pub fn read_page(&self, file: &DbFile, no: PageNo) -> Result<PageBuf> {
        let key = (file.id, no);
        if let Some(b) = self.overlay.get(&key) {
            return Ok(b.clone());
        }
        if let Some(b) = lock(&self.cache).get(key) {
            return Ok(b);
        }
        let buf = self.read_from_disk(file, no)?;
        let buf = Arc::new(buf);
        let over = {
            let mut c = lock(&self.cache);
            c.insert_clean(key, buf.clone());
            c.over_capacity()
        };
        if over {
            self.evict()?;
        }
        Ok(buf)
    }

    /// The committed image of a page, or `None` for a page past the end of
    /// the file that nobody has written yet.
    pub fn committed_page(&self, file: &DbFile, no: PageNo) -> Result<Option<PageBuf>> {
        let key = (file.id, no);
        if let Some(b) = self.overlay.get(&key) {
            return Ok(Some(b.clone()));
        }
        if let Some(b) = lock(&self.cache).get(key) {
            return Ok(Some(b));
        }
        let Some(h) = &file.handle else {
            return Ok(None);
        };
        let end = h.len()?;
        if (u64::from(no.0) + 1) * file.page_size as u64 > end {
            return Ok(None);
        }
        self.read_page(file, no).map(Some)
    }

    pub(crate) fn read_from_disk(&self, file: &DbFile, no: PageNo) -> Result<Vec<u8>> {
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
        if self.read_only && crate::engine::owner::live_owner(&self.layout.home).is_some() {
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
        if self.read_only && crate::engine::owner::live_owner(&self.layout.home).is_some() {
            return Error::SnapshotMoved;
        }
        Error::corrupt(&file.path, Location::Page(no), what)
    }

    /// Writes one page image to its file (sealing the checksum on a copy).
    pub fn write_page(&self, file: &DbFile, no: PageNo, buf: &[u8]) -> Result<()> {
        let Some(h) = &file.handle else {
            return Err(Error::invalid("write to a file without a handle"));
        };
        let mut out = buf.to_vec();
        page::seal(&mut out);
        h.write_at(&out, u64::from(no.0) * file.page_size as u64)
            .map_err(|e| self.fail(e))?;
        lock(&self.unsynced).insert(file.id);
        Ok(())
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

pub type Pair = (Vec<u8>, Vec<u8>);

#[allow(clippy::should_implement_trait)] // fallible steps: not an Iterator
impl Cursor {
    fn remember(&mut self, r: Option<Pair>) -> Option<Pair> {
        if let Some((k, _)) = &r {
            self.last = Some(k.clone());
        }
        r
    }

    pub fn first(&mut self) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::first(s))?;
        Ok(self.remember(r))
    }

    pub fn last(&mut self) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::last(s))?;
        Ok(self.remember(r))
    }

    /// Positions at the smallest key >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Pair>> {
        let r = self.env.read(&self.db, |s| btree::seek_ge(s, key))?;
        Ok(self.remember(r))
    }

    pub fn next(&mut self) -> Result<Option<Pair>> {
        let r = match self.last.clone() {
            None => self.env.read(&self.db, |s| btree::first(s))?,
            Some(k) => self.env.read(&self.db, |s| btree::next_after(s, &k))?,
        };
        Ok(self.remember(r))
    }

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
        let _r = env.inner.read_lock()?;
        let store = ReadStore {
            inner: &env.inner,
            file: &file,
        };
        let gen = env.inner.generation.load(Ordering::Acquire);
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
