//! An open environment: open (the owner lock, normal recovery, the file
//! table, the buffer pool, the checkpointer), the shared state every handle
//! and transaction works on (`Inner`), the failed state, and close.
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
//! `Inner` is the aggregate of the components (engine/mod.rs lists them and
//! the lock order); each keeps its own state private. What a reader may
//! see is reader.rs; write transactions are txn.rs and their commit
//! commit.rs; checkpoints checkpoint.rs.

use super::checkpoint::{Checkpointer, Parts};
use super::commit_wait::{self, CommitWait};
use super::failure::Failure;
use super::files::{open_files, FileTable};
use super::lock;
use super::owner::OwnerLock;
use super::pool::{Pool, WriteBack};
use super::reentry::{self, Hold};
use super::region::{OwnerRegion, Region};
use super::upkeep::{remove_logs, unused_below, Standing, Upkeep};
use crate::error::{Error, Result};
use crate::recovery::{self, RecoveryMode, RecoveryOptions, RecoveryOutcome};
use crate::storage::config::Config;
use crate::storage::dbfile::{Db, DbFile};
use crate::storage::layout::{Holds, Layout};
use crate::storage::page;
use crate::storage::pagestore::PageBuf;
use crate::storage::vfs::{OsVfs, SharedVfs};
use crate::types::{FileId, Lsn, PageNo};
use crate::wal::Log;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DEFAULT_CACHE_SIZE: usize = 32 * 1024 * 1024;

/// The next `Inner::open_id`.
static NEXT_OPEN_ID: AtomicU64 = AtomicU64::new(1);

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
    /// Bytes of committed pages kept in memory (overrides DB_CONFIG's
    /// set_cachesize; 32 MiB by default).
    pub cache_size: Option<usize>,
    /// The file system underneath (tests plug in faulty ones).
    pub vfs: Option<SharedVfs>,
    /// Answer checkpoint requests of other processes posted in the region.
    pub serve_requests: bool,
    /// Automatic checkpoints and log removal (upkeep.rs); off by default.
    pub upkeep: Upkeep,
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
            upkeep: Upkeep::default(),
        }
    }
}

impl EnvOptions {
    /// Options that create the environment if the directory holds none
    /// (the directory itself must exist).
    pub fn create() -> Self {
        EnvOptions {
            create: true,
            ..Default::default()
        }
    }

    /// Options for a read-only view: no owner lock, nothing written; it
    /// sees every commit made before it opened, even one a live owner has
    /// not written back yet (see the module comment).
    pub fn read_only() -> Self {
        EnvOptions {
            read_only: true,
            serve_requests: false,
            ..Default::default()
        }
    }
}

/// The writer lock's state: the next transaction id.
pub(crate) struct WriterState {
    pub(super) next_txn: u64,
}

/// The state every handle of one open environment shares: the components,
/// each with its own locks and invariants, and the few facts of the
/// environment itself.
pub(crate) struct Inner {
    pub(super) layout: Layout,
    pub(super) vfs: SharedVfs,
    pub(super) read_only: bool,
    pub(super) nosync: bool,
    /// Page size given to databases created without one.
    pub(super) page_size: usize,
    /// The log's file size (what upkeep counts log bytes in).
    pub(super) lg_max: u32,
    /// The log appender; `None` for a read-only view.
    pub(super) log: Option<Log>,
    pub(super) pool: Pool,
    pub(super) files: FileTable,
    pub(super) checkpointer: Checkpointer,
    /// One write transaction at a time (held by a `Txn` for its life, and
    /// by a checkpoint's cut).
    pub(super) writer: Mutex<WriterState>,
    /// Readers hold it for reading for one operation; a commit installs
    /// under the write side, so no reader sees half of a transaction.
    pub(super) commit_lock: RwLock<()>,
    pub(super) failure: Failure,
    pub(super) region: OwnerRegion,
    pub(super) env_id: u64,
    /// Unique to this open in this process: the `Db` handles it gives out
    /// carry it, so a handle used with another environment is caught.
    pub(crate) open_id: u64,
    /// Transactions committed since the owner opened.
    pub(super) commits: AtomicU64,
    /// How long synchronous commits waited for their flush, published in
    /// the region for backups to pace by.
    pub(super) commit_wait: CommitWait,
    /// Set when the last handle closes (stops the housekeeping thread).
    stop: AtomicBool,
    /// The housekeeping thread, joined by the last `close`: it holds the
    /// environment while it works, and an environment closed must be
    /// closed (reopenable in this process) when `close` returns.
    housekeeper: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Live `Env` handles: the last one to `close` closes.
    handles: Mutex<usize>,
    recovered: RecoveryOutcome,
    _lock: Option<OwnerLock>,
}

/// An open environment. Cheap to clone; all clones share one state, and
/// the environment closes when the last clone is closed.
pub struct Env {
    pub(super) inner: Arc<Inner>,
    /// Set by `close`, which has already given up this handle's count.
    released: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("home", &self.inner.layout.home)
            .field("read_only", &self.inner.read_only)
            .field("nosync", &self.inner.nosync)
            .finish_non_exhaustive()
    }
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

impl Env {
    /// Opens the environment in `home`: as its owner (one per environment:
    /// another process's owner is waited for up to `lock_timeout`, then
    /// [`Error::Locked`]; one in this process is [`Error::Misuse`]), after
    /// normal recovery, or as a read-only view. A directory that holds no
    /// environment is [`Error::NotEnvironment`] unless `opts.create`.
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
            let l = OwnerLock::acquire(&vfs, home, opts.lock_timeout)?;
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
        let lg_max = opts
            .lg_max
            .or(cfg.lg_max)
            .unwrap_or(crate::wal::DEFAULT_LG_MAX);
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
        let region = OwnerRegion::new(Region::at(&vfs, home));
        let inner = Inner {
            read_only: opts.read_only,
            nosync,
            page_size,
            lg_max,
            log,
            pool: Pool::new(
                cache_size,
                outcome.overlay.clone(),
                outcome.end,
                opts.read_only,
                vfs.clone(),
                home.to_path_buf(),
            ),
            files: FileTable::new(files, next_file_id.unwrap_or(u32::MAX)),
            checkpointer: Checkpointer::new(redo_point, last_ckp),
            writer: Mutex::new(WriterState {
                next_txn: next_txn.unwrap_or(u64::MAX),
            }),
            commit_lock: RwLock::new(()),
            failure: Failure::new(home.to_path_buf()),
            region,
            env_id,
            open_id: NEXT_OPEN_ID.fetch_add(1, Ordering::Relaxed),
            commits: AtomicU64::new(0),
            commit_wait: CommitWait::default(),
            stop: AtomicBool::new(false),
            housekeeper: Mutex::new(None),
            handles: Mutex::new(1),
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
            *lock(&i.housekeeper) = spawn_housekeeper(
                Arc::downgrade(&env.inner),
                opts.serve_requests,
                opts.upkeep.clone(),
            )
            .map_err(|e| Error::io(home, "start the housekeeping thread", e))?;
        }
        Ok(env)
    }

    /// The environment's directory, as given to `open`.
    pub fn home(&self) -> &Path {
        &self.inner.layout.home
    }

    /// Where its files are (data directories and log directory from
    /// DB_CONFIG).
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The file system it runs on (what to hand the tool operations, such
    /// as `backup::hot_backup`, so they see the same files).
    pub fn vfs(&self) -> &SharedVfs {
        &self.inner.vfs
    }

    /// Whether this is a read-only view (no writes, no owner lock).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The random id the environment got at creation, in every log file's
    /// header: copies of one environment share it.
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
            None => self.inner.pool.snapshot_end(),
        }
    }

    /// The LSN of the last checkpoint record ([`Lsn::ZERO`] if none yet).
    pub fn last_checkpoint(&self) -> Lsn {
        self.inner.checkpointer.last()
    }

    /// Where recovery would start now: the last checkpoint's redo point.
    /// Log files wholly before it are no longer needed.
    pub fn redo_point(&self) -> Lsn {
        self.inner.checkpointer.redo_point()
    }

    /// Transactions committed through this open (all handles).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// (hits, misses, pages, dirty pages) of the buffer cache.
    pub fn cache_stats(&self) -> (u64, u64, usize, usize) {
        self.inner.pool.stats()
    }

    /// Names of the databases, sorted.
    pub fn db_names(&self) -> Vec<String> {
        self.inner.files.names()
    }

    /// A handle on an existing database.
    pub fn open_db(&self, name: &str) -> Result<Db> {
        self.inner
            .files
            .find(name)
            .map(|f| Db {
                id: f.id,
                name: f.name.clone(),
                owner: self.inner.open_id,
            })
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}: no such database",
                    self.inner.layout.db_path(&self.inner.vfs, name).display()
                ))
            })
    }

    pub(crate) fn file(&self, db: &Db) -> Result<Arc<DbFile>> {
        self.inner.check_owner(db)?;
        self.inner
            .file(db.id)
            .ok_or_else(|| Error::NotFound(format!("{}: database was removed", db.name)))
    }

    /// Makes every transaction committed so far durable (one fdatasync of
    /// the log, shared with concurrent commits), without a checkpoint:
    /// what a nosync commit needs to survive a crash. Nothing to do on a
    /// read-only view.
    pub fn flush(&self) -> Result<()> {
        let i = &self.inner;
        i.check_failed()?;
        let Some(log) = &i.log else {
            return Ok(());
        };
        log.flush(log.end()).map_err(|e| i.fail(e))?;
        Ok(())
    }

    /// Writes back every dirty page and records a checkpoint in the log and
    /// the region. Waits for the current write transaction to finish.
    pub fn checkpoint(&self) -> Result<Lsn> {
        self.inner.refuse_self_wait("checkpoint")?;
        self.inner.checkpoint()
    }

    /// Appends an epoch record (a replica store's promotion, see
    /// `ops/replica/promote.rs`) outside any transaction, under the writer
    /// lock like a checkpoint's cut, and makes it durable; its LSN.
    pub(crate) fn mark_epoch(&self, epoch: u64, begins: Lsn, continues: u64) -> Result<Lsn> {
        self.inner.refuse_self_wait("mark an epoch")?;
        let i = &self.inner;
        let Some(log) = i.log.as_ref() else {
            return Err(Error::misuse("a read-only environment appends nothing"));
        };
        let rec = crate::wal::Record::Epoch {
            epoch,
            begins,
            continues,
        };
        let lsn = {
            let _w = lock(&i.writer);
            i.failure.check()?;
            let mut app = log.lock();
            let at = app
                .append(&[(crate::types::TxnId(0), &rec)])
                .map_err(|e| i.failure.fail(e))?;
            at.first().copied().unwrap_or(Lsn::ZERO)
        };
        log.flush(lsn).map_err(|e| i.failure.fail(e))?;
        Ok(lsn)
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
        if let Some(h) = lock(&self.inner.housekeeper).take() {
            // It finishes what it is doing (a checkpoint) and lets go.
            let _ = h.join();
        }
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
/// nothing: see `storage::logfiles::live_log_files`), so the environment's creation can
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

/// The housekeeping thread's name (what a debugger or `top -H` shows).
pub const HOUSEKEEPER: &str = "libcore-upkeep";

/// The owner's housekeeping thread: every tick (50 ms) it serves the
/// processes that share the region (`serve_region`) and does the upkeep
/// asked for (upkeep.rs). It holds the environment weakly and stops when
/// the last handle closes.
fn spawn_housekeeper(
    weak: Weak<Inner>,
    serve_requests: bool,
    upkeep: Upkeep,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if !serve_requests && !upkeep.any() {
        return Ok(None);
    }
    let thread = std::thread::Builder::new().name(HOUSEKEEPER.into());
    thread
        .spawn(move || {
            let mut last_auto = Instant::now();
            let mut commits_then = 0u64;
            let mut floor = commit_wait::Floor::default();
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let Some(inner) = weak.upgrade() else { return };
                if inner.stop.load(Ordering::Relaxed) {
                    return;
                }
                if serve_requests {
                    inner.serve_region(&mut floor);
                }
                let Some(log) = &inner.log else { continue };
                let standing = Standing {
                    last_checkpoint: inner.checkpointer.last(),
                    log_end: log.end(),
                    lg_max: inner.lg_max,
                    commits: inner.commits.load(Ordering::Relaxed),
                    commits_then,
                    since_last_auto: last_auto.elapsed(),
                };
                if upkeep.due(&standing) {
                    last_auto = Instant::now();
                    commits_then = standing.commits;
                    if inner.checkpoint().is_ok() && upkeep.remove_unused_logs {
                        let below = inner.checkpointer.redo_point().file;
                        let _ = unused_below(&inner.vfs, &inner.layout, below)
                            .and_then(|unused| remove_logs(&inner.vfs, &inner.layout, unused));
                    }
                }
            }
        })
        .map(Some)
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

impl Inner {
    pub(crate) fn file(&self, id: FileId) -> Option<Arc<DbFile>> {
        self.files.get(id)
    }

    /// Refuses a `Db` handle another open environment gave out.
    pub(crate) fn check_owner(&self, db: &Db) -> Result<()> {
        if db.owner == self.open_id {
            return Ok(());
        }
        Err(Error::misuse(format!(
            "{}: the database handle for {} belongs to another open environment; open it again with Env::open_db",
            self.layout.home.display(),
            db.name
        )))
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

    /// Serves the processes that share the region: answers a checkpoint
    /// request posted there (`db_checkpoint`, `db_hotbackup -c`) and, while
    /// a copy holds a lease (a backup, a replication master), publishes how
    /// long synchronous commits waited, for the copy to pace itself by
    /// (commit_wait.rs); without a lease the region is left alone, nobody
    /// reads the wait then. `floor` is carried between ticks.
    /// Never waits for the region's lock: a tool stopped while holding it
    /// delays the answer, not the owner.
    fn serve_region(&self, floor: &mut commit_wait::Floor) {
        let fresh = self.commit_wait.take_mean_us();
        let _ = self.region.flush();
        let st = self.region.try_read();
        let leased = st
            .as_ref()
            .is_some_and(|st| !st.live_leases(crate::types::now_secs()).is_empty());
        // The floor learns from every interval, slowly while leased.
        let sample = fresh.map(|mean| floor.next(mean, leased));
        let Some(st) = st else {
            return;
        };
        if let (Some(sample), true) = (sample, leased) {
            let commits = self.commits.load(Ordering::Relaxed);
            let _ = self.region.publish(move |s| {
                s.commit_wait = sample;
                s.commits = commits;
            });
        }
        if st.ckp_requested > st.ckp_done && self.checkpoint().is_ok() {
            let want = st.ckp_requested;
            let _ = self
                .region
                .publish(move |s| s.ckp_done = s.ckp_done.max(want));
        }
    }

    pub(crate) fn check_failed(&self) -> Result<()> {
        self.failure.check()
    }

    /// Puts the environment in the failed state after a write or fsync
    /// error (failure.rs).
    pub(crate) fn fail(&self, e: Error) -> Error {
        self.failure.fail(e)
    }

    pub(crate) fn log(&self) -> Result<&Log> {
        self.log.as_ref().ok_or_else(|| {
            Error::misuse(format!(
                "{}: opened read-only; cannot write",
                self.layout.home.display()
            ))
        })
    }

    /// What the pool's write-back needs; `None` for a read-only view,
    /// which writes nothing.
    pub(crate) fn write_back(&self) -> Option<WriteBack<'_>> {
        let log = self.log.as_ref()?;
        Some(WriteBack {
            log,
            files: &self.files,
            failure: &self.failure,
        })
    }

    /// The committed image of a page: overlay, cache, then disk (then the
    /// cache is kept within its size).
    pub(crate) fn read_page(&self, file: &DbFile, no: PageNo) -> Result<PageBuf> {
        let (buf, over) = self.pool.read(file, no)?;
        if over {
            self.evict()?;
        }
        Ok(buf)
    }

    /// The committed image of a page, or `None` for a page past the end of
    /// the file that nobody has written yet.
    pub(crate) fn committed_page(&self, file: &DbFile, no: PageNo) -> Result<Option<PageBuf>> {
        if let Some(b) = self.pool.cached((file.id, no)) {
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

    /// Shrinks the cache (pool.rs).
    pub(crate) fn evict(&self) -> Result<()> {
        self.pool.evict(self.write_back().as_ref())
    }

    /// Takes a checkpoint (checkpoint.rs).
    pub(crate) fn checkpoint(&self) -> Result<Lsn> {
        self.check_failed()?;
        let log = self.log()?;
        self.checkpointer.run(&Parts {
            log,
            writer: &self.writer,
            files: &self.files,
            pool: &self.pool,
            failure: &self.failure,
            vfs: &self.vfs,
            data_dirs: &self.layout.data_dirs,
            region: &self.region,
            commits: &self.commits,
        })
    }
}
