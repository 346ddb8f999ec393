//! `db_hotbackup`: a hot backup of a live environment in one call, and its
//! incremental update. DESIGN.md section 5 and shared/hot-failover.md are
//! the contract; what the backup directory may hold, and how a new full
//! backup replaces an old one, is `backup_target`'s.
//!
//! Full backup:
//! 1. note the last checkpoint's redo LSN (the start point) and hold a
//!    lease in the source region so no log file from there on is removed;
//! 2. refuse a target that holds anything but a backup of this source (or
//!    nothing), before anything is created;
//! 3. in a staging directory inside the target, beside the previous backup
//!    (which stays whole): copy the database files with page-verified
//!    reads, then every log file from the start point's file to the last
//!    one (a file that vanished is an error naming it);
//! 4. run redo on the copy from the start point, cutting at most a torn
//!    tail: the copy's log stays a byte prefix of the source's;
//! 5. write the manifest with the exact consistency point, then trim;
//! 6. replace the previous backup with the new one (`backup_target::replace`).
//!
//! A failure or an interruption before step 6 removes the staging
//! directory and leaves the target as it was; one in step 6 is finished by
//! the next `db_hotbackup` or `db_recover`.
//!
//! Update (`-u`): take the backup's lock (then read its manifest); check
//! the backup's log is a prefix of the source's (log history, last record,
//! last file); append the new log bytes; copy again every database a
//! bulk-mode transaction in the new log wrote (its pages are not in the
//! log: `recopy_bulk_loaded`); redo from the manifest's end (or the
//! source's checkpoint before such a copy); check every replayed bulk
//! load's pages are there. Its cost grows with the new log (and the
//! databases bulk loads wrote) only. It never moves or deletes the source's
//! logs (Berkeley DB moves them).

use crate::engine::owner::OwnerLock;
use crate::engine::region::Region;
use crate::error::{Error, Location, Result};
use crate::ops::archive;
use crate::ops::backup_target::{self, Holds};
use crate::ops::copy::{copy_file, total_size, CopyOptions, Pacer};
use crate::ops::interrupt::{raised, StopFlag, StopVfs};
use crate::ops::request_checkpoint;
use crate::progress::{self, Phase, Progress};
use crate::recovery::{self, RecoveryMode, RecoveryOptions, RecoveryOutcome};
use crate::storage::config::Config;
use crate::storage::layout::Layout;
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::{FileId, Lsn, TxnId};
use crate::wal::manifest::{FileEntry, Manifest};
use crate::wal::{
    self, parse_log_name, records_end, LogCursor, OnBadRecord, Record, FILE_HEADER_SIZE,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a lease lasts if the backup process is stuck (a dead process
/// loses its lease at once: archive checks the pid).
const LEASE_SECS: u64 = 6 * 3600;
/// Bytes compared to check that the backup's log is a prefix of the source's.
const PREFIX_CHECK: u64 = 64 * 1024;

/// How `hot_backup` runs: `db_hotbackup`'s flags and the caller's hooks.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// `-u`: update an existing backup with the new log only.
    pub update: bool,
    /// `-c`: checkpoint the source first.
    pub checkpoint: bool,
    /// `-D`: keep the source's DB_CONFIG directory layout (and copy DB_CONFIG).
    pub config_dirs: bool,
    /// `-d`: the source's data directories, as given (relative to the cwd).
    pub data_dirs: Vec<PathBuf>,
    /// `-l`: the source's log directory, relative to its home.
    pub log_dir: Option<PathBuf>,
    /// `-g`: keep every log file in the backup.
    pub keep_logs: bool,
    /// `-F`: plain file reads.
    pub plain: bool,
    /// `-r`: at most this many bytes a second copied (`None`: as fast as
    /// the disks go).
    pub max_rate: Option<u64>,
    /// Raised (by a signal handler) to stop: the copy and redo stop at
    /// their next read or write, what the run made is removed, and the
    /// error says what the target holds.
    pub interrupt: Option<StopFlag>,
    /// Told of each phase: a full backup's `CopyDatabases`, `CopyLogs`
    /// and `Redo`; an update's `CopyLogs` (and `CopyDatabases` for a
    /// database a bulk load wrote) and `Redo`.
    pub progress: Option<Arc<dyn Progress>>,
}

/// What a backup made: the target's new manifest and what it took.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The manifest now in the target: its consistency point, the log
    /// range it holds and its database files.
    pub manifest: Manifest,
    /// How many database files the backup holds (an update copies only
    /// those a bulk load wrote, but counts them all).
    pub files_copied: usize,
    /// Bytes copied by this run, database and log files together.
    pub bytes_copied: u64,
    /// The number of the oldest log file the backup keeps.
    pub lowest_log: Option<u32>,
    /// What redo did in the target to make it consistent.
    pub recovery: RecoveryOutcome,
}

/// Progress lines for `-v`; each is one message without the program name.
pub type Say<'a> = &'a mut dyn FnMut(String);

/// Backs up the environment at `home` into `target` while it runs
/// (`db_hotbackup`): a full backup, or with `opts.update` the new log of
/// an existing one, then redo in the target, so that it equals the source
/// at one commit point at or after the start. The source is never
/// changed (but a checkpoint with `opts.checkpoint`). `say` hears the
/// `-v` lines. What a failure or an interruption leaves in the target is
/// in the module comment.
pub fn hot_backup(
    vfs: &SharedVfs,
    home: &Path,
    target: &Path,
    opts: &BackupOptions,
    say: Say<'_>,
) -> Result<BackupReport> {
    let src = source_layout(vfs, home, opts)?;
    if opts.config_dirs {
        let c = &src.config;
        for d in c
            .data_dirs
            .iter()
            .chain(c.lg_dir.iter())
            .chain(c.create_dir.iter())
        {
            if d.is_absolute() || d.components().any(|x| x == std::path::Component::ParentDir) {
                return Err(Error::invalid(format!(
                    "-D: DB_CONFIG names the directory {}, which is not inside the home; the layout cannot be rebuilt in the backup",
                    d.display()
                )));
            }
        }
    }
    check_apart(&src, &[target.to_path_buf()])?;
    if src.env_log(vfs)?.is_none() {
        return Err(Error::invalid(format!(
            "{}: nothing was ever committed in this environment (its creation did not finish): nothing to back up",
            home.display()
        )));
    }
    say(format!(
        "hot backup started at {}",
        crate::bdbtext::timefmt::ctime_now()
    ));
    if opts.checkpoint {
        say(format!("{}: force checkpoint", home.display()));
        request_checkpoint::checkpoint(home, Duration::from_secs(60))?;
    }
    let work = match &opts.interrupt {
        Some(flag) => StopVfs::shared(vfs.clone(), flag.clone()),
        None => vfs.clone(),
    };
    let result = if opts.update {
        prepare_update(vfs, &src, target, say)
            .and_then(|()| update(vfs, &work, &src, target, opts, say))
    } else {
        full_backup(vfs, &work, &src, target, opts, say)
    };
    match (result, opts.interrupt.as_deref().is_some_and(raised)) {
        (Err(_), true) => Err(interrupted(vfs, target, opts.update)),
        (r, _) => {
            if r.is_ok() {
                progress::finish(opts.progress.as_deref());
            }
            r
        }
    }
}

/// The error of a run stopped by `interrupt`: what the target holds now.
fn interrupted(vfs: &SharedVfs, target: &Path, update: bool) -> Error {
    let holds = backup_target::survey(vfs, target, &[]).map(|s| s.holds);
    let what = match holds {
        Ok(Holds::Backup(m)) if update => format!(
            "it holds a usable backup, recovered to {} (db_hotbackup -u again finishes the update)",
            m.end
        ),
        Ok(Holds::Backup(m)) => format!(
            "it still holds the previous backup (consistency point {}); the new one was discarded",
            m.end
        ),
        Ok(Holds::Moving) => "the new backup was being moved into place; db_hotbackup or db_recover finishes the move".into(),
        _ => "it holds no backup; the unfinished one was removed".into(),
    };
    Error::invalid(format!("{}: interrupted: {what}", target.display()))
}

/// The environment id of the source's log.
fn source_env_id(vfs: &SharedVfs, src: &Layout) -> Result<u64> {
    // The owner may be creating log files while they are listed.
    Ok(crate::wal::manifest::open_live(vfs, &src.log_dir, 0)?
        .env_id()
        .unwrap_or(0))
}

/// Before an update: the target must hold a backup of this source; what an
/// interrupted run left there is finished or removed first.
fn prepare_update(vfs: &SharedVfs, src: &Layout, target: &Path, say: Say<'_>) -> Result<()> {
    let sv = backup_target::survey(vfs, target, &[])?;
    backup_target::check_update(&sv, target, &src.home, source_env_id(vfs, src)?)?;
    let _lock = OwnerLock::acquire(vfs, target, Duration::from_secs(10))?;
    backup_target::settle(vfs, target, say)
}

/// A full backup (module documentation): refuse a target that is not ours
/// to replace, build the new backup in its staging directory (on `work`,
/// which stops when interrupted) and move it into place (on `vfs`).
fn full_backup(
    vfs: &SharedVfs,
    work: &SharedVfs,
    src: &Layout,
    target: &Path,
    opts: &BackupOptions,
    say: Say<'_>,
) -> Result<BackupReport> {
    let final_layout = target_layout(src, target, opts.config_dirs);
    let mut dirs = vec![target.to_path_buf()];
    for d in final_layout.data_dirs.iter().chain([&final_layout.log_dir]) {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    check_apart(src, &dirs)?;
    let src_env = source_env_id(vfs, src)?;
    // Refuse before anything is created, then again under the lock.
    let sv = backup_target::survey(vfs, target, &dirs)?;
    backup_target::check_full(&sv, target, &src.home, src_env)?;
    make_dir(vfs, target)?;
    let _target_lock = OwnerLock::acquire(vfs, target, Duration::from_secs(10))?;
    backup_target::settle(vfs, target, say)?;
    let sv = backup_target::survey(vfs, target, &dirs)?;
    backup_target::check_full(&sv, target, &src.home, src_env)?;
    let replacing = matches!(sv.holds, Holds::Backup(_));
    let mut attempt = 1;
    let (built, manifest) = loop {
        let staging = backup_target::fresh_staging(vfs, target)?;
        let built = full(vfs, work, src, target, &staging, opts, say);
        match built {
            Ok(Full::Done(b)) => break *b,
            Ok(Full::BulkDuringCopy(lsn)) if attempt < FULL_ATTEMPTS => {
                say(format!(
                    "a bulk-mode transaction committed at {lsn} while the databases were copied; copying again"
                ));
                attempt += 1;
            }
            Ok(Full::BulkDuringCopy(lsn)) => {
                let _ = backup_target::discard_staging(vfs, target);
                return Err(Error::invalid(format!(
                    "bulk-mode transactions (the last at {lsn}) committed during each of {FULL_ATTEMPTS} copies of the databases; their pages are not in the log, so no copy is consistent: run db_hotbackup again when the bulk loads are done"
                )));
            }
            Err(e) => {
                // The previous backup was never touched; an unfinished
                // copy that cannot be removed now goes at the next run.
                let _ = backup_target::discard_staging(vfs, target);
                return Err(e);
            }
        }
    };
    if replacing {
        say(format!(
            "{}: replacing the previous backup",
            target.display()
        ));
    }
    let config = opts.config_dirs && vfs.exists(&src.home.join("DB_CONFIG"));
    backup_target::replace(vfs, target, config)?;
    Ok(completed(manifest, built, say))
}

/// How many times a full backup copies the databases when bulk-mode
/// transactions keep committing under it.
const FULL_ATTEMPTS: u32 = 3;

/// The outcome of one full-backup attempt.
enum Full {
    /// Built, sealed in the staging directory, not yet in place.
    Done(Box<(Built, Manifest)>),
    /// A bulk-mode transaction (its pages go to the data files, only a
    /// marker to the log) committed after the database copy began: the
    /// copy may lack its pages and redo cannot bring them back, so the
    /// attempt wrote no manifest and must start over.
    BulkDuringCopy(Lsn),
}

/// A position no earlier than every log record already written and no
/// later than any record written after this moment: the end of the
/// records of the last log file now (not its size: the newest file is
/// preallocated, its records end at its zero tail). A bulk transaction
/// fsyncs its pages before appending its marker, so a marker below this
/// mark had its pages on disk before this moment.
fn log_mark(vfs: &SharedVfs, src: &Layout) -> Result<Lsn> {
    let logs = src.log_files(vfs)?;
    let Some(&last) = logs.last() else {
        return Ok(Lsn::ZERO);
    };
    Ok(Lsn::new(last, records_end(vfs, &src.log_path(last))?))
}

/// The source's directories: DB_CONFIG's, overridden by `-d`/`-l`.
fn source_layout(vfs: &SharedVfs, home: &Path, opts: &BackupOptions) -> Result<Layout> {
    let mut layout = Layout::resolve(vfs, home)?;
    if !opts.data_dirs.is_empty() {
        for d in &opts.data_dirs {
            if !vfs.is_dir(d) {
                return Err(Error::io(d, "open", std::io::Error::from_raw_os_error(2)));
            }
        }
        layout.data_dirs = opts.data_dirs.clone();
        layout.create_dir = opts.data_dirs[0].clone();
    }
    if let Some(l) = &opts.log_dir {
        layout.log_dir = home.join(l);
    }
    Ok(layout)
}

/// A directory as the kernel resolves it (symlinks and `..` gone); for
/// one that does not exist yet, its parent's resolution plus its name.
/// `std::fs::canonicalize`, not the `Vfs`: it reads no file, only how
/// directory names resolve, which no test file system changes.
fn resolved(p: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(p) {
        Ok(c) => Ok(c),
        Err(_) => {
            let parent = p
                .parent()
                .filter(|q| !q.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Ok(resolved(parent)?.join(p.file_name().unwrap_or_default()))
        }
    }
}

/// Every directory the backup writes or clears must be apart from every
/// directory of the source: not the same, not inside one, not holding one.
/// Otherwise cleaning the target could delete the source's files.
fn check_apart(src: &Layout, target_dirs: &[PathBuf]) -> Result<()> {
    let mut source_dirs = vec![src.home.clone(), src.log_dir.clone()];
    source_dirs.extend(src.data_dirs.iter().cloned());
    let source_dirs: Vec<PathBuf> = source_dirs
        .iter()
        .map(|d| resolved(d))
        .collect::<Result<_>>()?;
    for t in target_dirs {
        let rt = resolved(t)?;
        for (s, rs) in [&src.home, &src.log_dir]
            .into_iter()
            .chain(src.data_dirs.iter())
            .zip(&source_dirs)
        {
            if rt.starts_with(rs) || rs.starts_with(&rt) {
                return Err(Error::invalid(format!(
                    "{}: the backup must not be written in or around a directory of the environment ({}); nothing was changed",
                    t.display(),
                    s.display()
                )));
            }
        }
    }
    Ok(())
}

/// This backup's own lease in the source region: log files from
/// `first_log` on stay while it lives. Other backups hold leases of their
/// own beside it; dropping this one removes only this one (by its id).
struct Lease {
    held: Option<(Region, u64)>,
    /// Keeps the lease from expiring while this process runs (a backup of
    /// a large environment may take longer than `LEASE_SECS`); a stopped or
    /// hung process stops renewing, and its lease then expires.
    renewer: Option<Renewer>,
}

/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(300);

struct Renewer {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewer {
    fn start(region: Region, id: u64) -> Renewer {
        Renewer::every(region, id, RENEW_EVERY, LEASE_SECS)
    }

    fn every(region: Region, id: u64, every: Duration, lease_secs: u64) -> Renewer {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (m, cv) = &*flag;
            let mut stopped = m.lock().unwrap_or_else(|p| p.into_inner());
            // The stop may come before this thread first waits.
            while !*stopped {
                let (g, timeout) = cv
                    .wait_timeout(stopped, every)
                    .unwrap_or_else(|p| p.into_inner());
                stopped = g;
                if !*stopped && timeout.timed_out() {
                    let expires = crate::types::now_secs() + lease_secs;
                    // A failure (region locked for too long) is retried at
                    // the next round; the lease is good for hours.
                    let _ = region.update(false, |s| s.renew_lease(id, expires));
                }
            }
        });
        Renewer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Lease {
    fn take(vfs: &SharedVfs, home: &Path, first_log: u32) -> Result<Lease> {
        let region = Region::at(vfs, home);
        if !vfs.exists(region.path()) {
            // No region: no owner has run here since it was removed, and
            // nothing removes logs but db_archive -d, which then has no
            // lease to honour either. Creating one would change the source.
            return Ok(Lease {
                held: None,
                renewer: None,
            });
        }
        let (me, start) = (std::process::id(), crate::engine::region::own_start_time());
        let now = crate::types::now_secs();
        let stale = abandoned_in(&region);
        let taken = match region.update(false, |s| {
            for id in &stale {
                s.remove_lease(*id);
            }
            s.add_lease(me, start, first_log, now + LEASE_SECS, now)
                .ok_or_else(|| s.live_leases(now))
        }) {
            Ok(t) => {
                forget_abandoned(&region, &stale);
                t
            }
            // A backup run by a user who may read the source but not write
            // its region goes without a lease, as Berkeley DB's would: a
            // log file removed under it is then a gap error, never a
            // silently wrong copy.
            Err(Error::Io { ref source, .. }) if cannot_write(source) => {
                return Ok(Lease {
                    held: None,
                    renewer: None,
                })
            }
            Err(e) => return Err(e),
        };
        match taken {
            Ok(lease) => Ok(Lease {
                renewer: Some(Renewer::start(region.clone(), lease.id)),
                held: Some((region, lease.id)),
            }),
            Err(others) => Err(Error::invalid(format!(
                "{}: every backup lease slot is held by a running backup (pids {}); try again when one is done",
                region.path().display(),
                others
                    .iter()
                    .map(|l| l.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A region this process may not write (permissions, read-only mount).
fn cannot_write(e: &std::io::Error) -> bool {
    const EROFS: i32 = 30;
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(EROFS)
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.take();
        if let Some((r, id)) = &self.held {
            // If this fails (the region locked for too long, or not
            // writable right now) the lease would stay live as long as this
            // process lives: the next lease this process takes in the same
            // region removes it.
            if r.update(false, |s| s.remove_lease(*id)).is_err() {
                lock_abandoned().push((r.path().to_path_buf(), *id));
            }
        }
    }
}

/// Leases this process failed to give back, by region file. A process
/// that runs many backups (a library user, the tests) would otherwise
/// pile them up: each stays live while the process does, keeps its log
/// files from `db_archive -d`, and once every slot is taken every backup
/// is refused.
static ABANDONED: std::sync::Mutex<Vec<(PathBuf, u64)>> = std::sync::Mutex::new(Vec::new());

fn lock_abandoned() -> std::sync::MutexGuard<'static, Vec<(PathBuf, u64)>> {
    ABANDONED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ids of this process's abandoned leases in `region`.
fn abandoned_in(region: &Region) -> Vec<u64> {
    lock_abandoned()
        .iter()
        .filter(|(p, _)| p == region.path())
        .map(|(_, id)| *id)
        .collect()
}

/// Forgets the abandoned leases `ids` of `region` (removed now).
fn forget_abandoned(region: &Region, ids: &[u64]) {
    lock_abandoned().retain(|(p, id)| !(p == region.path() && ids.contains(id)));
}

/// Where things go in the backup.
fn target_layout(src: &Layout, target: &Path, config_dirs: bool) -> Layout {
    if !config_dirs {
        return Layout::with_config(target, Config::default());
    }
    Layout::with_config(target, src.config.clone())
}

fn relative<'a>(base: &Path, p: &'a Path) -> &'a Path {
    p.strip_prefix(base).unwrap_or(Path::new(""))
}

fn make_dir(vfs: &SharedVfs, dir: &Path) -> Result<()> {
    if !vfs.exists(dir) {
        vfs.create_dir(dir, 0o700)?;
        if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            vfs.sync_dir(p)?;
        }
    }
    Ok(())
}

/// Where the source says redo must start for a copy taken now.
fn start_point(vfs: &SharedVfs, src: &Layout) -> Result<(Lsn, Lsn)> {
    let st = archive::log_state(vfs, src)?;
    Ok(match (st.ckp_redo, st.ckp_lsn) {
        (Some(r), Some(c)) => (r, c),
        _ => (Lsn::new(st.first, wal::FIRST_RECORD_OFFSET), Lsn::ZERO),
    })
}

/// One attempt of a full backup, built in `staging` (empty) for `target`,
/// on `vfs` (which stops when interrupted); the lease on `base` (which
/// does not, so an interrupted backup still gives its lease back).
fn full(
    base: &SharedVfs,
    vfs: &SharedVfs,
    src: &Layout,
    target: &Path,
    staging: &Path,
    opts: &BackupOptions,
    say: Say<'_>,
) -> Result<Full> {
    // The lease goes in after the start point is read; a `db_archive -d`
    // racing in between can only have removed files before a newer
    // checkpoint, so on a vanished start file read the start point again.
    let mut tries = 0;
    // The log's history as the copy begins (see history.rs).
    let history = crate::wal::history::read(vfs, &src.home)?;
    let (start, ckp, _lease) = loop {
        let (start, ckp) = start_point(vfs, src)?;
        let lease = Lease::take(base, &src.home, start.file)?;
        if vfs.exists(&src.log_path(start.file)) {
            break (start, ckp, lease);
        }
        tries += 1;
        if tries >= 5 {
            return Err(Error::LogGap {
                path: src.log_path(start.file),
            });
        }
    };
    let dst = target_layout(src, staging, opts.config_dirs);
    for d in dst.data_dirs.iter().chain([&dst.log_dir]) {
        make_dir(vfs, d)?;
    }
    // Progress lines name where the files will be, not the staging copy.
    let shown = |p: &Path| target.join(relative(staging, p));
    let created = crate::types::now_secs();
    let mut copied_crc: HashMap<PathBuf, u32> = HashMap::new();
    let mut bytes = 0u64;
    let pacer = Pacer::for_env(vfs, &src.home, opts.max_rate);
    let copy = CopyOptions {
        plain: opts.plain,
        pace: Some(&pacer),
        progress: opts.progress.as_deref(),
    };
    if opts.config_dirs {
        let cfg = src.home.join("DB_CONFIG");
        if vfs.exists(&cfg) {
            let to = staging.join("DB_CONFIG");
            say(format!(
                "copying {} to {}",
                cfg.display(),
                shown(&to).display()
            ));
            copy_config(vfs, &cfg, &to)?;
        }
    }
    // 1. Databases.
    let copy_began = log_mark(vfs, src)?;
    let dbs = src.db_files(vfs)?;
    if copy.progress.is_some() {
        let paths: Vec<&Path> = dbs.iter().map(|f| f.path.as_path()).collect();
        let total = total_size(vfs, &paths);
        progress::start(copy.progress, Phase::CopyDatabases, Some(total));
    }
    for f in dbs {
        let dir = if opts.config_dirs {
            let rel = f
                .path
                .parent()
                .map(|p| relative(&src.home, p).to_path_buf())
                .unwrap_or_default();
            staging.join(rel)
        } else {
            staging.to_path_buf()
        };
        let to = dir.join(&f.name);
        say(format!(
            "copying database {} to {}",
            f.path.display(),
            shown(&to).display()
        ));
        match copy_file(vfs, &f.path, &to, copy) {
            Ok(r) => {
                bytes += r.bytes;
                copied_crc.insert(to, r.crc);
            }
            // Removed since the listing: only a committed removal (logged
            // before its unlink, so in the log copied next, and redo
            // applies it) or an uncommitted creation takes a database file
            // away.
            Err(e) if e.is_not_found() && !vfs.exists(&f.path) => {
                say(format!("{}: removed while it was copied", f.path.display()));
            }
            Err(e) => return Err(e),
        }
    }
    // 2. Logs, from the start point's file to the last one present now.
    let logs = src.log_files(vfs)?;
    let last = logs.last().copied().unwrap_or(start.file);
    if copy.progress.is_some() {
        let paths: Vec<PathBuf> = (start.file..=last).map(|n| src.log_path(n)).collect();
        let total = total_size(vfs, &paths);
        progress::start(copy.progress, Phase::CopyLogs, Some(total));
    }
    bytes += copy_logs(vfs, src, &dst, start.file, last, copy, &mut |line| {
        say(line.replace(
            &staging.display().to_string(),
            &target.display().to_string(),
        ))
    })?;
    say(format!("lowest numbered log file copied: {}", start.file));
    drop(_lease);
    // 3. Redo on the copy.
    say(format!("{}: run catastrophic recovery", target.display()));
    let outcome = recovery::recover(
        vfs,
        &dst,
        RecoveryOptions {
            mode: RecoveryMode::From(start),
            write: true,
            // The copy is offline: fsync written pages behind redo.
            sync_behind: true,
            progress: copy.progress,
            ..Default::default()
        },
    )?;
    report_recovery(&outcome, say);
    if let Some(&lsn) = outcome.bulk_markers.iter().find(|&&m| m >= copy_began) {
        return Ok(Full::BulkDuringCopy(lsn));
    }
    check_complete(vfs, &dst)?;
    refuse_missing_dbs(vfs, src, &dst, &outcome, target)?;
    let env_id = outcome.env_id.unwrap_or(0);
    // 4. The manifest (listing the databases as redo left them, and the
    // log files that stay), then the trim, all still in the staging
    // directory. A database's checksum from its copy holds only if redo
    // wrote no page (page checksums cover it either way).
    let mut entries = Vec::new();
    for f in dst.db_files(vfs)? {
        let crc = copied_crc
            .get(&f.path)
            .copied()
            .filter(|_| outcome.pages_applied == 0);
        let size = vfs.open(&f.path, OpenMode::Read)?.len()?;
        entries.push(entry(staging, &f.path, size, crc));
    }
    let trim = trim_plan(vfs, &dst, &outcome, opts.keep_logs)?;
    entries.extend(log_entries(vfs, &dst, staging, &trim)?);
    let now = crate::types::now_secs();
    let manifest = Manifest {
        env_id,
        created,
        updated: now,
        checkpoint: ckp,
        start,
        end: outcome.end,
        last_commit: outcome.last_commit_time.unwrap_or(0),
        history: Some(history.id()),
        last_record: crate::wal::manifest::last_record(vfs, &dst.log_dir, outcome.end)?,
        files: entries,
    };
    seal(vfs, &dst, &manifest, &trim, &mut |_| {})?;
    let built = Built {
        bytes,
        lowest_log: start.file,
        outcome,
    };
    Ok(Full::Done(Box::new((built, manifest))))
}

/// Copies the source's DB_CONFIG into the backup, durably (a backup
/// whose manifest says complete must not have an empty one after a power
/// loss: it decides the layout at failover).
fn copy_config(vfs: &SharedVfs, from: &Path, to: &Path) -> Result<()> {
    let input = vfs.open(from, OpenMode::Read)?;
    let len = input.len()?;
    let mut text = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = input.read_at(&mut text, 0)?;
    text.truncate(n);
    let mode = vfs.metadata(from).map(|m| m.mode & 0o777).unwrap_or(0o600);
    let out = vfs.open(to, OpenMode::CreateNew(mode))?;
    out.write_at(&text, 0)?;
    out.sync()?;
    match to.parent() {
        Some(dir) => vfs.sync_dir(dir),
        None => Ok(()),
    }
}

/// An incremental update on `vfs` (which stops when interrupted); the
/// lease on `base` (which does not).
fn update(
    base: &SharedVfs,
    vfs: &SharedVfs,
    src: &Layout,
    target: &Path,
    opts: &BackupOptions,
    say: Say<'_>,
) -> Result<BackupReport> {
    // The lock first: a manifest read before it could be one that another
    // update is about to replace (and whose log files it trims).
    let _target_lock = lock_backup(vfs, target)?;
    let Some(mut manifest) = Manifest::read(vfs, target)? else {
        return Err(no_manifest(target));
    };
    let dst = if opts.config_dirs {
        Layout::resolve(vfs, target)?
    } else {
        Layout::with_config(target, Config::default())
    };
    let mut dirs = vec![target.to_path_buf(), dst.log_dir.clone()];
    dirs.extend(dst.data_dirs.iter().cloned());
    check_apart(src, &dirs)?;
    let src_logs = src.log_files(vfs)?;
    let bk_logs = dst.log_files(vfs)?;
    let Some(&b) = bk_logs.last() else {
        return Err(Error::invalid(format!(
            "{}: backup holds no log files; run a full backup",
            target.display()
        )));
    };
    if !src_logs.contains(&b) {
        return Err(Error::LogGap {
            path: src.log_path(b),
        });
    }
    // The source's file the backup continues says which environment it
    // is (not a cursor over every log file: the live log's listing races
    // with the files its owner creates, and costs a header read per file).
    let src_env = log_header(vfs, src, b)?.env_id;
    if src_env != manifest.env_id {
        return Err(Error::invalid(format!(
            "{}: is a backup of another environment (id {:016x}, source {:016x}); run a full backup",
            target.display(),
            manifest.env_id,
            src_env
        )));
    }
    let _lease = Lease::take(base, &src.home, b)?;
    let bk_path = dst.log_path(b);
    // Where the backup's records end, not its size: a copied newest file
    // may hold its source's zero tail (or a torn record) after them.
    let bk_len = u64::from(records_end(vfs, &bk_path)?);
    let history = crate::wal::history::read(vfs, &src.home)?;
    let bk_end = Lsn::new(b, u32::try_from(bk_len).unwrap_or(u32::MAX));
    check_history(vfs, src, &manifest, &history, bk_end)?;
    check_prefix(vfs, &src.log_path(b), &bk_path, bk_len)?;

    let pacer = Pacer::for_env(vfs, &src.home, opts.max_rate);
    let copy = CopyOptions {
        plain: opts.plain,
        pace: Some(&pacer),
        progress: opts.progress.as_deref(),
    };
    let mut bytes = append_log(vfs, src, &dst, copy, say)?;
    let (from, recopied) = recopy_bulk_loaded(vfs, src, &dst, &mut manifest, copy, say)?;
    bytes += recopied.iter().map(|r| r.bytes).sum::<u64>();
    say(format!("{}: run recovery from {}", target.display(), from));
    let outcome = recovery::recover(
        vfs,
        &dst,
        RecoveryOptions {
            mode: RecoveryMode::From(from),
            write: true,
            // The copy is offline: fsync written pages behind redo.
            sync_behind: true,
            progress: copy.progress,
            ..Default::default()
        },
    )?;
    report_recovery(&outcome, say);
    // Every bulk load replayed must have its pages in the backup now; one
    // that does not means the source's own file lacked them.
    if let Some(d) = crate::recovery::bulkcheck::damaged_bulk_loads(vfs, &dst, &outcome)?.first() {
        return Err(Error::corrupt(
            &d.path,
            Location::Page(d.page),
            format!(
                "{} ({} of pages {}-{} wrong), though the bulk load committed at {} wrote them to the source's file before this update copied it; check the source with db_verify, then run db_hotbackup -u again",
                d.problem, d.bad_pages, d.first, d.last, d.marker
            ),
        ));
    }
    // The new manifest goes in before any log file leaves: a failure in
    // between leaves a backup whose manifest matches its files.
    let trim = trim_plan(vfs, &dst, &outcome, opts.keep_logs)?;
    // Data files redo may have changed (or that were copied again) lose
    // their whole-file checksum; log entries are rewritten.
    let mut entries: Vec<FileEntry> = Vec::new();
    for mut e in manifest.files.drain(..) {
        if parse_log_name(
            Path::new(&e.name)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(""),
        )
        .is_some()
        {
            continue;
        }
        if outcome.pages_applied > 0 || !recopied.is_empty() {
            e.crc = None;
            if let Ok(m) = vfs.metadata(&target.join(&e.name)) {
                e.size = m.len;
            }
        }
        entries.push(e);
    }
    entries.extend(log_entries(vfs, &dst, target, &trim)?);
    manifest.files = entries;
    manifest.end = outcome.end;
    manifest.updated = crate::types::now_secs();
    manifest.history = Some(history.id());
    manifest.last_record = crate::wal::manifest::last_record(vfs, &dst.log_dir, manifest.end)?;
    if let Some(t) = outcome.last_commit_time {
        manifest.last_commit = t;
    }
    finish(vfs, &dst, manifest, &trim, bytes, b, outcome, say)
}

/// The header of log file `n` of `layout`.
fn log_header(vfs: &SharedVfs, layout: &Layout, n: u32) -> Result<wal::FileHeader> {
    let path = layout.log_path(n);
    let h = vfs.open(&path, OpenMode::Read)?;
    let mut b = [0u8; FILE_HEADER_SIZE];
    let got = h.read_at(&mut b, 0)?;
    wal::FileHeader::decode(&path, &b[..got], n)
}

/// How long `-u` waits for another process holding the backup.
const TARGET_WAIT: Duration = Duration::from_secs(10);

/// Takes the backup's lock (`__db.lock`), waiting up to [`TARGET_WAIT`] for
/// another `db_hotbackup` writing it; an error naming the holder's pid
/// after that. A directory that does not exist, or holds no manifest, is
/// refused first, without creating anything in it.
fn lock_backup(vfs: &SharedVfs, target: &Path) -> Result<OwnerLock> {
    if !vfs.exists(target) {
        return Err(Error::invalid(format!(
            "{}: no such directory; make the backup with a full db_hotbackup first",
            target.display()
        )));
    }
    if !vfs.is_dir(target) {
        return Err(Error::invalid(format!(
            "{}: not a directory",
            target.display()
        )));
    }
    if !vfs.exists(&Manifest::path(target)) {
        return Err(no_manifest(target));
    }
    match OwnerLock::acquire(vfs, target, TARGET_WAIT) {
        Err(Error::Locked { pid, .. }) => Err(Error::invalid(format!(
            "{}: in use by pid {pid} (another db_hotbackup writing this backup, or an application that opened it) for more than {} s; nothing was changed",
            target.display(),
            TARGET_WAIT.as_secs()
        ))),
        r => r,
    }
}

fn no_manifest(target: &Path) -> Error {
    Error::invalid(format!(
        "{}: not a complete backup (no manifest); run a full db_hotbackup first",
        target.display()
    ))
}

/// The backup's log, which ends at `bk_end`, must continue the source's:
/// no recovery cut the source's log before that point since the history
/// the backup recorded (a cut after it changes nothing the backup holds),
/// and the source holds, where the backup's last record is, the same
/// record.
fn check_history(
    vfs: &SharedVfs,
    src: &Layout,
    m: &Manifest,
    history: &crate::wal::history::History,
    bk_end: Lsn,
) -> Result<()> {
    // A version 1 manifest knows no history: every recorded cut counts.
    let since = m.history.unwrap_or(0);
    let cut = match history.cuts_since(since) {
        Some(cuts) => cuts.iter().find(|c| c.at < bk_end).map(|c| c.at),
        None => Some(Lsn::ZERO),
    };
    if let Some(at) = cut {
        let when = if at.is_zero() {
            String::from("more often than the history file remembers")
        } else {
            format!("at {at}")
        };
        return Err(Error::invalid(format!(
            "{}: the source's log was cut since this backup was made ({when}, by a point-in-time or catastrophic recovery), before the end of the backup's log {bk_end}; the backup's log is not a prefix of the source's: run a full db_hotbackup",
            src.home.display()
        )));
    }
    let Some((lsn, crc)) = m.last_record else {
        return Ok(());
    };
    let path = src.log_path(lsn.file);
    if !vfs.exists(&path) {
        return Ok(()); // archived: the prefix check of the last file remains
    }
    if crate::wal::manifest::record_crc(vfs, &src.log_dir, lsn)? != Some(crc) {
        return Err(Error::invalid(format!(
            "{}: the source's record at {lsn} is not the last record this backup copied there: the source's log diverged from the backup's (was it recovered to an earlier point, or restored?); run a full db_hotbackup",
            path.display()
        )));
    }
    Ok(())
}

/// Appends the source's new log to the backup's: the rest of the backup's
/// last file (as long as the source's file is now), then every later file.
/// Returns the bytes copied.
fn append_log(
    vfs: &SharedVfs,
    src: &Layout,
    dst: &Layout,
    copy: CopyOptions<'_>,
    say: Say<'_>,
) -> Result<u64> {
    let Some(&b) = dst.log_files(vfs)?.last() else {
        return Err(Error::invalid(format!(
            "{}: backup holds no log files; run a full backup",
            dst.home.display()
        )));
    };
    let from = src.log_path(b);
    let bk_path = dst.log_path(b);
    let src_h = match vfs.open(&from, OpenMode::Read) {
        Ok(h) => h,
        Err(e) if e.is_not_found() => return Err(Error::LogGap { path: from }),
        Err(e) => return Err(e),
    };
    let out = vfs.open(&bk_path, OpenMode::ReadWrite)?;
    // Append after the backup's records, over any zeros or torn bytes a
    // copy left after them (cut first: none may follow what is copied),
    // and copy the source's records only, not its zero tail.
    let bk_len = u64::from(records_end(vfs, &bk_path)?);
    if out.len()? > bk_len {
        out.set_len(bk_len)?;
    }
    let until = u64::from(records_end(vfs, &from)?);
    if copy.progress.is_some() {
        let later: Vec<PathBuf> = src
            .log_files(vfs)?
            .into_iter()
            .filter(|&n| n > b)
            .map(|n| src.log_path(n))
            .collect();
        let total = until.saturating_sub(bk_len) + total_size(vfs, &later);
        progress::start(copy.progress, Phase::CopyLogs, Some(total));
    }
    let mut off = bk_len;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while off < until {
        let want = buf.len().min((until - off) as usize);
        let n = src_h.read_at(&mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        out.write_at(&buf[..n], off)?;
        copy.chunk_done(n as u64);
        off += n as u64;
        bytes += n as u64;
    }
    out.sync()?;
    if off > bk_len {
        say(format!(
            "copying {} to {} (bytes {bk_len}..{off})",
            from.display(),
            bk_path.display()
        ));
    }
    let last = src.log_files(vfs)?.last().copied().unwrap_or(b);
    if last > b {
        bytes += copy_logs(vfs, src, dst, b + 1, last, copy, say)?;
    }
    Ok(bytes)
}

/// How many rounds of copying bulk-loaded databases again an update makes
/// while bulk loads keep committing under it.
const UPDATE_ATTEMPTS: u32 = 3;

/// A database copied again by an update because a bulk load wrote pages
/// straight to it.
struct Recopied {
    file_id: FileId,
    /// Where the source's log ended before the copy began: a bulk load
    /// whose marker comes later may have been caught half written.
    mark: Lsn,
    bytes: u64,
}

/// Bulk loads in the new log wrote pages straight to database files, so
/// the log cannot bring them to the backup: copies each such database
/// from the source again, then the log written meanwhile, until the
/// backup's log holds no bulk load whose pages the backup lacks. Returns
/// where redo must start, and what was copied.
///
/// A consistent result needs: (1) a file copied after its bulk load's
/// marker (whose pages were on disk before the marker was logged), and
/// before any later one; (2) the log copied after the file, so that it
/// reaches every change the copy holds; (3) redo from no later than the
/// source's last checkpoint's redo point when the file was copied (changes
/// after it may not be in the file yet). So redo starts at the lower of
/// the manifest's end and that point, and the manifest says so before the
/// first file is replaced (redo from an earlier point changes nothing
/// already applied); each copy goes to a temporary name and is renamed
/// into place only after the log that covers it is in the backup.
fn recopy_bulk_loaded(
    vfs: &SharedVfs,
    src: &Layout,
    dst: &Layout,
    manifest: &mut Manifest,
    copy: CopyOptions<'_>,
    say: Say<'_>,
) -> Result<(Lsn, Vec<Recopied>)> {
    let mut from = manifest.end;
    let mut scan = BulkScan::new(vfs, dst, from)?;
    let mut done: Vec<Recopied> = Vec::new();
    for attempt in 1.. {
        scan.read_on(vfs, dst)?;
        let need = scan.lacking(&done);
        if need.is_empty() {
            break;
        }
        if attempt > UPDATE_ATTEMPTS {
            let (lsn, _, name) = &need[0];
            return Err(Error::invalid(format!(
                "{}: bulk loads kept writing pages straight to {name} (the last at {lsn}) during each of {UPDATE_ATTEMPTS} copies of it; their pages are not in the log: run db_hotbackup -u again when the bulk loads are done",
                dst.home.display()
            )));
        }
        let (redo, _) = start_point(vfs, src)?;
        if redo < from {
            if !dst.log_files(vfs)?.contains(&redo.file) {
                return Err(Error::LogGap {
                    path: dst.log_path(redo.file),
                });
            }
            from = redo;
            let restart = Manifest {
                end: from,
                ..manifest.clone()
            };
            restart.write(vfs, &dst.home)?;
        }
        let mark = log_mark(vfs, src)?;
        if copy.progress.is_some() {
            let paths: Vec<PathBuf> = need.iter().map(|n| src.db_path(vfs, &n.2)).collect();
            let total = total_size(vfs, &paths);
            progress::start(copy.progress, Phase::CopyDatabases, Some(total));
        }
        let mut staged = Vec::new();
        for (lsn, id, name) in &need {
            say(format!(
                "a bulk load at {lsn} wrote pages straight to {name}; copying it again"
            ));
            if let Some(s) = stage_copy(vfs, src, dst, *id, name, copy)? {
                staged.push((s, *id));
            }
        }
        append_log(vfs, src, dst, copy, say)?;
        for ((tmp, to, bytes), id) in staged {
            vfs.rename(&tmp, &to)?;
            if let Some(dir) = to.parent() {
                vfs.sync_dir(dir)?;
            }
            done.retain(|r| r.file_id != id);
            done.push(Recopied {
                file_id: id,
                mark,
                bytes,
            });
        }
    }
    Ok((from, done))
}

/// Copies the source's database `name` (file id `id`) to a temporary name
/// beside where the backup keeps it. Returns (temporary path, final path,
/// bytes), or `None` when the source no longer has it (a later removal
/// the log copied next will show).
fn stage_copy(
    vfs: &SharedVfs,
    src: &Layout,
    dst: &Layout,
    id: FileId,
    name: &str,
    copy: CopyOptions<'_>,
) -> Result<Option<(PathBuf, PathBuf, u64)>> {
    let from = src.db_path(vfs, name);
    if !vfs.exists(&from) {
        return Ok(None);
    }
    let to = dst.db_path(vfs, name);
    let dir = to.parent().unwrap_or(Path::new(".")).to_path_buf();
    make_dir(vfs, &dir)?;
    let tmp = dir.join(format!(".tmp.{name}.{}", std::process::id()));
    if vfs.exists(&tmp) {
        vfs.remove(&tmp)?;
    }
    let r = copy_file(vfs, &from, &tmp, copy)?;
    if db_file_id(vfs, &tmp)? != Some(id) {
        let _ = vfs.remove(&tmp);
        return Err(Error::invalid(format!(
            "{}: is no longer the database the log names {name} (file id {id}): renamed or replaced since; run db_hotbackup -u again",
            from.display()
        )));
    }
    Ok(Some((tmp, to, r.bytes)))
}

/// The file id in a database file's meta page (`None`: not readable).
fn db_file_id(vfs: &SharedVfs, path: &Path) -> Result<Option<FileId>> {
    let Some(ps) = crate::storage::layout::probe_db(vfs, path) else {
        return Ok(None);
    };
    let h = vfs.open(path, OpenMode::Read)?;
    let mut meta = vec![0u8; ps as usize];
    let n = h.read_at(&mut meta, 0)?;
    Ok(crate::storage::page::Meta::decode(&meta[..n])
        .ok()
        .map(|m| m.file_id))
}

/// The bulk markers of the transactions committed in the backup's log
/// from a point on, with the name each one's database has at the end of
/// what was read. A transaction counts only once its commit record is
/// read: the tail of a copied log may hold part of one that never commits
/// there.
struct BulkScan {
    /// Where reading goes on.
    pos: Lsn,
    names: HashMap<FileId, String>,
    markers: Vec<(Lsn, FileId)>,
    /// Records of transactions whose commit is not read yet.
    open: HashMap<TxnId, Vec<(Lsn, Record)>>,
}

impl BulkScan {
    /// Names from the backup's database files (their meta pages).
    fn new(vfs: &SharedVfs, dst: &Layout, from: Lsn) -> Result<BulkScan> {
        let mut names = HashMap::new();
        for f in dst.db_files(vfs)? {
            if let Some(id) = db_file_id(vfs, &f.path)? {
                names.insert(id, f.name);
            }
        }
        Ok(BulkScan {
            pos: from,
            names,
            markers: Vec::new(),
            open: HashMap::new(),
        })
    }

    /// Reads the backup's log from where it stopped to its end.
    fn read_on(&mut self, vfs: &SharedVfs, dst: &Layout) -> Result<()> {
        let mut cur = LogCursor::open_from(
            vfs.clone(),
            &dst.log_dir,
            OnBadRecord::EndOfLog,
            self.pos.file,
        )?;
        cur.seek(self.pos)?;
        while let Some(r) = cur.next_raw()? {
            if crate::wal::PageRecord::is_page_type(r.ty) {
                continue;
            }
            let (lsn, txn) = (r.lsn, r.txn);
            let rec = Record::decode(r.ty, r.payload).map_err(|e| cur.corrupt_at(lsn, e.0))?;
            match rec {
                Record::Commit { .. } => {
                    for (at, rec) in self.open.remove(&txn).unwrap_or_default() {
                        self.apply(at, rec);
                    }
                }
                Record::Checkpoint(_) | Record::Epoch { .. } => {}
                other => self.open.entry(txn).or_default().push((lsn, other)),
            }
        }
        self.pos = cur.position();
        Ok(())
    }

    /// A record of a committed transaction.
    fn apply(&mut self, lsn: Lsn, rec: Record) {
        match rec {
            Record::BulkMarker { file_id, .. } => self.markers.push((lsn, file_id)),
            Record::FileCreate { file_id, name, .. }
            | Record::FileRename {
                file_id, new: name, ..
            } => {
                self.names
                    .insert(file_id, String::from_utf8_lossy(&name).into_owned());
            }
            Record::FileRemove { file_id, .. } => {
                self.names.remove(&file_id);
            }
            _ => {}
        }
    }

    /// One marker per database whose pages the backup lacks: a bulk load
    /// on a database not copied again since (or copied before the marker
    /// could have been complete), which still exists.
    fn lacking(&self, done: &[Recopied]) -> Vec<(Lsn, FileId, String)> {
        let mut out: Vec<(Lsn, FileId, String)> = Vec::new();
        for &(lsn, id) in &self.markers {
            let covered = done.iter().any(|r| r.file_id == id && lsn < r.mark);
            if covered || out.iter().any(|o| o.1 == id) {
                continue;
            }
            if let Some(name) = self.names.get(&id) {
                out.push((lsn, id, name.clone()));
            }
        }
        out
    }
}

/// What a run did besides its manifest.
struct Built {
    bytes: u64,
    lowest_log: u32,
    outcome: RecoveryOutcome,
}

/// Writes the manifest (the backup is complete from this moment), removes
/// the log files it no longer lists, and reports.
#[allow(clippy::too_many_arguments)]
fn finish(
    vfs: &SharedVfs,
    dst: &Layout,
    manifest: Manifest,
    trim: &[u32],
    bytes: u64,
    lowest_log: u32,
    outcome: RecoveryOutcome,
    say: Say<'_>,
) -> Result<BackupReport> {
    seal(vfs, dst, &manifest, trim, say)?;
    let built = Built {
        bytes,
        lowest_log,
        outcome,
    };
    Ok(completed(manifest, built, say))
}

/// Writes the manifest into `dst`, then removes the log files it no
/// longer lists.
fn seal(
    vfs: &SharedVfs,
    dst: &Layout,
    manifest: &Manifest,
    trim: &[u32],
    say: Say<'_>,
) -> Result<()> {
    manifest.write(vfs, &dst.home)?;
    remove_logs(vfs, dst, trim, say)
}

/// The last progress lines and the report of a backup now in place.
fn completed(manifest: Manifest, built: Built, say: Say<'_>) -> BackupReport {
    say(consistency_line(&manifest));
    say(format!(
        "hot backup completed at {}",
        crate::bdbtext::timefmt::ctime_now()
    ));
    BackupReport {
        files_copied: manifest.files.len(),
        manifest,
        bytes_copied: built.bytes,
        lowest_log: Some(built.lowest_log),
        recovery: built.outcome,
    }
}

/// Every database the log says exists at the backup's consistency point
/// (redo's file table at its end) must be a database in the copy. One
/// whose meta page the listing could not read (damaged, or another format
/// version) was left out of the copy; a backup silently without it would
/// be found out only at failover. Databases created or removed while the
/// backup ran are in the log, and redo made or removed them in the copy.
fn refuse_missing_dbs(
    vfs: &SharedVfs,
    src: &Layout,
    dst: &Layout,
    outcome: &RecoveryOutcome,
    target: &Path,
) -> Result<()> {
    let present: Vec<String> = dst.db_files(vfs)?.into_iter().map(|f| f.name).collect();
    let mut names: Vec<&String> = outcome.files.values().collect();
    names.sort();
    for name in names {
        if present.contains(name) || crate::storage::layout::check_db_name(name).is_err() {
            continue;
        }
        let path = src.db_path(vfs, name);
        if !vfs.exists(&path) {
            return Err(Error::corrupt(
                &path,
                Location::Whole,
                format!(
                    "the log says this database exists, but its file is missing from the source; not backed up to {}",
                    target.display()
                ),
            ));
        }
        // An open that fails says why better than the meta page can.
        vfs.open(&path, OpenMode::Read)?;
        return Err(Error::corrupt(
            &path,
            Location::Page(crate::types::PageNo::META),
            format!(
                "the log names it as a database, but its meta page is not one this program reads (damaged, or another format version); not backed up to {}",
                target.display()
            ),
        ));
    }
    Ok(())
}

/// Copies whole log files `from..=to` of the source into the backup; a
/// file missing on the way is a gap, named.
fn copy_logs(
    vfs: &SharedVfs,
    src: &Layout,
    dst: &Layout,
    from: u32,
    to: u32,
    copy: CopyOptions<'_>,
    say: Say<'_>,
) -> Result<u64> {
    let mut bytes = 0;
    for n in from..=to {
        let f = src.log_path(n);
        let t = dst.log_path(n);
        say(format!("copying {} to {}", f.display(), t.display()));
        match copy_file(vfs, &f, &t, copy) {
            Ok(r) => bytes += r.bytes,
            Err(e) if e.is_not_found() => return Err(Error::LogGap { path: f }),
            Err(e) => return Err(e),
        }
    }
    Ok(bytes)
}

/// Manifest entries for every log file the backup holds.
fn log_entries(
    vfs: &SharedVfs,
    dst: &Layout,
    target: &Path,
    skip: &[u32],
) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    for n in dst
        .log_files(vfs)?
        .into_iter()
        .filter(|n| !skip.contains(n))
    {
        let p = dst.log_path(n);
        let (size, crc) = file_crc(vfs, &p)?;
        out.push(entry(target, &p, size, Some(crc)));
    }
    Ok(out)
}

/// The backup's last log file must be a byte prefix of the source's file
/// of the same number: otherwise the backup was opened on its own (failed
/// over) or the source was rebuilt, and appending would mix two histories.
fn check_prefix(vfs: &SharedVfs, src: &Path, bk: &Path, bk_len: u64) -> Result<()> {
    let s = vfs.open(src, OpenMode::Read)?;
    if u64::from(records_end(vfs, src)?) < bk_len {
        return Err(Error::invalid(format!(
            "{}: is longer in the backup than in the source; the backup's log is not a prefix of the source's (take a full backup)",
            src.display()
        )));
    }
    let b = vfs.open(bk, OpenMode::Read)?;
    let check = |from: u64, to: u64| -> Result<()> {
        let n = (to - from) as usize;
        let mut x = vec![0u8; n];
        let mut y = vec![0u8; n];
        s.read_at(&mut x, from)?;
        b.read_at(&mut y, from)?;
        if x != y {
            return Err(Error::invalid(format!(
                "{}: differs from the source's {} at bytes {from}..{to}: the backup's log is not a prefix of the source's (was the backup opened as an environment?); take a full backup",
                bk.display(),
                src.display()
            )));
        }
        Ok(())
    };
    check(0, (FILE_HEADER_SIZE as u64).min(bk_len))?;
    check(bk_len.saturating_sub(PREFIX_CHECK), bk_len)
}

/// Backup log files wholly before the file holding the redo LSN of the
/// last checkpoint the backup replayed (never the last file): no longer
/// needed, removed once the manifest no longer lists them.
fn trim_plan(
    vfs: &SharedVfs,
    dst: &Layout,
    outcome: &RecoveryOutcome,
    keep: bool,
) -> Result<Vec<u32>> {
    let Some((_, c)) = &outcome.last_ckp else {
        return Ok(Vec::new());
    };
    if keep {
        return Ok(Vec::new());
    }
    let logs = dst.log_files(vfs)?;
    let last = logs.last().copied().unwrap_or(0);
    Ok(logs
        .into_iter()
        .filter(|&n| n < c.redo_lsn.file && n < last)
        .collect())
}

fn remove_logs(vfs: &SharedVfs, dst: &Layout, plan: &[u32], say: Say<'_>) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    say(format!(
        "{}: remove unnecessary log files",
        dst.home.display()
    ));
    // Oldest first, each removal durable before the next: unlinks reach
    // the disk in any order without a directory fsync between them, and
    // a power loss in between must leave the old files that remain a
    // contiguous run just below the ones the manifest lists, never a gap.
    let mut plan = plan.to_vec();
    plan.sort_unstable();
    for n in plan {
        vfs.remove(&dst.log_path(n))?;
        vfs.sync_dir(&dst.log_dir)?;
    }
    Ok(())
}

/// After recovery every database of the backup must be as long as its
/// meta page says: a source file truncated at rest copies short, and no log
/// record brings back pages written before the checkpoint the backup
/// started from, so such a backup would look fine until it is used.
fn check_complete(vfs: &SharedVfs, dst: &Layout) -> Result<()> {
    for f in dst.db_files(vfs)? {
        let h = vfs.open(&f.path, OpenMode::Read)?;
        let ps = u64::from(f.meta_page_size);
        let mut meta = vec![0u8; ps as usize];
        if h.read_at(&mut meta, 0)? < meta.len() {
            continue; // db_files only lists readable meta pages
        }
        let Ok(m) = crate::storage::page::Meta::decode(&meta) else {
            continue;
        };
        let need = (u64::from(m.last_pgno.0) + 1) * ps;
        let len = h.len()?;
        if len < need {
            return Err(Error::corrupt(
                &f.path,
                Location::Whole,
                format!(
                    "the copy is {len} bytes but its meta page needs {need}: the source file is truncated (pages before the last checkpoint are not in the log, so recovery cannot restore them)"
                ),
            ));
        }
    }
    Ok(())
}

fn consistency_line(m: &Manifest) -> String {
    if m.last_commit == 0 {
        format!("consistency point {}", m.end)
    } else {
        format!(
            "consistency point {} (last commit replayed at {})",
            m.end,
            crate::bdbtext::timefmt::ctime(m.last_commit)
        )
    }
}

fn report_recovery(o: &RecoveryOutcome, say: Say<'_>) {
    say(format!(
        "Finding last valid log LSN: file: {} offset {}",
        o.found_end.file, o.found_end.offset
    ));
    if o.records > 0 {
        if let Some(s) = o.start {
            say(format!("Recovery starting from {s}"));
        }
    }
    say(format!(
        "Recovery complete at {}",
        crate::bdbtext::timefmt::ctime_now()
    ));
    for w in &o.warnings {
        say(format!("warning: {w}"));
    }
}

fn entry(base: &Path, p: &Path, size: u64, crc: Option<u32>) -> FileEntry {
    FileEntry {
        name: relative(base, p).display().to_string(),
        size,
        crc,
    }
}

fn file_crc(vfs: &SharedVfs, p: &Path) -> Result<(u64, u32)> {
    let h = vfs.open(p, OpenMode::Read)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let mut c = crc32fast::Hasher::new();
    loop {
        let n = h.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        c.update(&buf[..n]);
        off += n as u64;
    }
    Ok((off, c.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease was taken for `LEASE_SECS` (6 h) and never renewed, so a
    /// backup running longer lost its protection and `db_archive -d` could
    /// remove a log file it still needed. A running backup renews it.
    #[test]
    fn a_held_lease_is_renewed_while_the_backup_runs() {
        let d = tempfile::tempdir().unwrap();
        let region = Region::at(&crate::storage::vfs::OsVfs::shared(), d.path());
        let now = crate::types::now_secs();
        let lease = region
            .update(true, |s| {
                s.add_lease(std::process::id(), 0, 1, now + 1, now)
            })
            .unwrap()
            .unwrap();
        let renewer = Renewer::every(region.clone(), lease.id, Duration::from_millis(20), 3600);
        std::thread::sleep(Duration::from_millis(300));
        drop(renewer);
        let st = region.read().unwrap();
        let l = st.leases.iter().find(|l| l.id == lease.id).unwrap();
        assert!(
            l.expires >= now + 3000,
            "not renewed: expires {}",
            l.expires
        );
    }

    /// Regression: a renewer stopped before its thread first waited missed
    /// the wake-up and slept its whole period (5 minutes) inside the drop
    /// of the lease, so a short backup hung at its end.
    #[test]
    fn a_renewer_stopped_at_once_ends_at_once() {
        let d = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let region = Region::at(&crate::storage::vfs::OsVfs::shared(), d.path());
        std::thread::spawn(move || {
            for _ in 0..50 {
                drop(Renewer::every(
                    region.clone(),
                    1,
                    Duration::from_secs(3600),
                    1,
                ));
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("dropping a renewer waited for its period");
    }
}
