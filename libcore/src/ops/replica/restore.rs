//! Restoring from the store alone: a base's files, then the segments from
//! its start, written into log files at their offsets, then redo from the
//! base's start (at least to its `consistent_from`, or up to a time).
//! The segments follow the store's history (`epoch`): each epoch's up to
//! where the next one began. A base is only taken if it is part of that
//! history (its copy ends no later than where its epoch's successor
//! began). The
//! result is a backup directory (a `__db.manifest` names its consistency
//! point): `db_recover -c` works on it and an owner open fails it over.
//! A client restores its empty home this way before it follows.
//!
//! A restore marks the directory with `__db.restoring` before it writes
//! anything and removes the mark last: a directory with the mark holds an
//! unfinished restore, which the next restore (or client) wipes and does
//! again.

use super::base::{self, BaseManifest};
use super::epoch::Epochs;
use super::layout;
use super::prefetch::{self, Prefetcher};
use super::segment::{Finder, Segment};
use super::store::ReplicaStore;
use crate::engine::owner::LOCK_FILE;
use crate::error::{Error, Result, StoreFault};
use crate::ops::metered::WriteMeter;
use crate::progress::{Phase, Progress};
use crate::recovery::{self, RecoveryMode, RecoveryOptions, RecoveryOutcome};
use crate::storage::layout::Layout;
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use crate::wal::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The mark a restore leaves in the home until it is complete: a home
/// holding it is no environment to open, only to restore again.
pub const MARK_FILE: &str = "__db.restoring";

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The base it started from.
    pub base: BaseManifest,
    /// End of the last segment written into the log.
    pub applied: Lsn,
    /// Its bytes' checksum (the chain a follower continues).
    pub chain_crc: u32,
    /// The epoch whose history the restored log ends in.
    pub epoch: u64,
    /// What the recovery at its end did.
    pub outcome: RecoveryOutcome,
    /// The manifest left in the home (a follower continues from it).
    pub manifest: Manifest,
}

/// Which state to restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Target {
    /// Everything the store holds (up to its last complete transaction).
    #[default]
    Newest,
    /// The state at this time (unix seconds): transactions committed
    /// after it are left out, as `db_recover -t` does.
    At(u64),
    /// The newest state past a bulk load at this position: from a base
    /// whose copy began after it (a client whose log met such a load).
    After(Lsn),
}

/// Where `MARK_FILE` is for `home`.
pub fn mark_path(home: &Path) -> PathBuf {
    home.join(MARK_FILE)
}

/// Where the store's history ends: the last segment of its newest epoch,
/// or where that epoch began when it shipped nothing yet.
pub fn history_end(store: &dyn ReplicaStore, epochs: &Epochs) -> Result<Lsn> {
    let Some(newest) = epochs.newest() else {
        return Ok(Lsn::ZERO);
    };
    Ok(match super::segment::last(store, newest.epoch)? {
        Some(s) => s.2,
        None => newest.begins,
    })
}

/// The complete bases that are part of the store's history.
pub fn valid_bases(store: &dyn ReplicaStore, epochs: &Epochs) -> Result<Vec<BaseManifest>> {
    Ok(base::complete(store)?
        .into_iter()
        .filter(|b| epochs.holds(layout::base_epoch(b.number), b.consistent_from))
        .collect())
}

/// The base to restore for `target`, among the store's complete bases.
pub fn choose(store: &dyn ReplicaStore, target: Target) -> Result<Option<BaseManifest>> {
    let epochs = Epochs::read(store)?;
    let bases = valid_bases(store, &epochs)?;
    let log_end = history_end(store, &epochs)?;
    Ok(match target {
        Target::Newest => bases
            .iter()
            .rev()
            .find(|b| b.consistent_from <= log_end)
            .or(bases.last())
            .cloned(),
        Target::At(t) => bases.iter().rev().find(|b| b.created <= t).cloned(),
        Target::After(m) => bases.iter().rev().find(|b| b.copy_began > m).cloned(),
    })
}

/// Whether `home` holds nothing but a DB_CONFIG (and the restore mark,
/// and the owner lock file a client takes).
pub fn is_empty_home(vfs: &SharedVfs, home: &Path) -> Result<bool> {
    for name in vfs.list(home)? {
        let n = name.to_string_lossy();
        if n != "DB_CONFIG" && n != MARK_FILE && n != LOCK_FILE {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes what a restore or a standby put in `home`: databases, logs,
/// the manifest, the standby state and the mark last (never the owner
/// lock, which the client restoring holds).
pub fn wipe(vfs: &SharedVfs, layout: &Layout) -> Result<()> {
    for f in layout.db_files(vfs)? {
        vfs.remove(&f.path)?;
    }
    for n in layout.all_log_files(vfs)?.into_iter().rev() {
        vfs.remove(&layout.log_path(n))?;
    }
    for name in vfs.list(&layout.home)? {
        let n = name.to_string_lossy();
        let path = layout.home.join(&name);
        if (n.starts_with("__db.") || n.starts_with(".tmp."))
            && n != MARK_FILE
            && n != LOCK_FILE
            && !vfs.is_dir(&path)
        {
            vfs.remove(&path)?;
        }
    }
    for d in layout.data_dirs.iter().chain([&layout.log_dir]) {
        vfs.sync_dir(d)?;
    }
    Ok(())
}

fn make_dirs(vfs: &SharedVfs, dir: &Path) -> Result<()> {
    if vfs.is_dir(dir) {
        return Ok(());
    }
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dirs(vfs, p)?;
    }
    vfs.create_dir(dir, 0o700)?;
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        vfs.sync_dir(p)?;
    }
    Ok(())
}

/// Restores base `b` and the log after it into `home` (empty but for
/// DB_CONFIG, or holding an unfinished restore, which is wiped first).
/// `progress` hears `Phase::FetchBase`, `Phase::FetchLog` and
/// `Phase::Redo`.
pub fn restore(
    vfs: &SharedVfs,
    store: &dyn ReplicaStore,
    home: &Path,
    b: &BaseManifest,
    target: Target,
    progress: Option<Arc<dyn Progress>>,
    say: &mut dyn FnMut(String),
) -> Result<Restored> {
    let layout = Layout::resolve(vfs, home)?;
    for d in layout.data_dirs.iter().chain([&layout.log_dir]) {
        make_dirs(vfs, d)?;
    }
    let mark = mark_path(home);
    if vfs.exists(&mark) {
        wipe(vfs, &layout)?;
    } else {
        drop(vfs.open(&mark, OpenMode::Create(0o600))?);
        vfs.sync_dir(home)?;
    }
    say(format!(
        "restoring base {} (start {}, consistent from {}) from {}",
        b.number,
        b.start,
        b.consistent_from,
        store.describe()
    ));
    fetch_files(vfs, store, &layout, b, progress.clone(), say)?;
    let (applied, chain_crc, epoch) = fetch_log(vfs, store, &layout, b, progress.as_deref())?;
    let until = match target {
        Target::At(t) => Some(t),
        _ => None,
    };
    let outcome = recovery::recover(
        vfs,
        &layout,
        RecoveryOptions {
            mode: RecoveryMode::From(b.start),
            write: true,
            until,
            progress: progress.as_deref(),
            ..Default::default()
        },
    )?;
    if outcome.end < b.consistent_from {
        return Err(Error::store(
            store.describe(),
            layout::base_manifest_key(b.number),
            StoreFault::Transient,
            format!(
                "the store's log ends at {}, before base {} is consistent ({}): is the master shipping?",
                outcome.end, b.number, b.consistent_from
            ),
        ));
    }
    let now = crate::types::now_secs();
    let manifest = Manifest {
        env_id: b.env_id,
        created: now,
        updated: now,
        checkpoint: b.checkpoint,
        start: b.start,
        end: outcome.end,
        last_commit: outcome.last_commit_time.unwrap_or(0),
        history: Some(b.history),
        last_record: crate::wal::manifest::last_record(vfs, &layout.log_dir, outcome.end)?,
        files: Vec::new(),
    };
    manifest.write(vfs, home)?;
    crate::progress::finish(progress.as_deref());
    say(format!("restored to {}", outcome.end));
    Ok(Restored {
        base: b.clone(),
        applied: if until.is_some() {
            outcome.end
        } else {
            applied
        },
        chain_crc,
        epoch,
        outcome,
        manifest,
    })
}

/// Removes the restore mark: the directory is complete.
pub fn unmark(vfs: &SharedVfs, home: &Path) -> Result<()> {
    let mark = mark_path(home);
    if vfs.exists(&mark) {
        vfs.remove(&mark)?;
        vfs.sync_dir(home)?;
    }
    Ok(())
}

fn fetch_files(
    vfs: &SharedVfs,
    store: &dyn ReplicaStore,
    layout: &Layout,
    b: &BaseManifest,
    progress: Option<Arc<dyn Progress>>,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    // The store writes the files: a file system that counts its writes
    // tells the progress.
    let to: SharedVfs = match progress {
        Some(p) => {
            p.start(
                Phase::FetchBase,
                Some(b.files.iter().map(|f| f.sum.size).sum()),
            );
            Arc::new(WriteMeter::new(vfs.clone(), p))
        }
        None => vfs.clone(),
    };
    let mut jobs = Vec::new();
    for f in &b.files {
        let key = layout::base_file_key(b.number, f.index);
        let path = layout.create_dir.join(&f.name);
        if let Some(dir) = path.parent() {
            make_dirs(vfs, dir)?;
        }
        say(format!(
            "copying {}/{key} to {}",
            store.describe(),
            path.display()
        ));
        jobs.push((key, path, f.sum));
    }
    // A round trip per file adds up over many small databases: a few are
    // fetched at once. Each is checked against its manifest entry; the
    // first failure in the manifest's order is the one reported.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<()>>> = (0..jobs.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..BASE_FILES_AT_ONCE.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((key, path, sum)) = jobs.get(i) else {
                    return;
                };
                let r = fetch_file(store, &*to, b, key, path, *sum);
                let failed = r.is_err();
                done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                if failed {
                    // Nothing after a failure needs fetching.
                    next.store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    for r in results.into_iter().flatten() {
        r?;
    }
    vfs.sync_dir(&layout.create_dir)
}

/// Base files fetched at once by a restore.
const BASE_FILES_AT_ONCE: usize = 4;

/// Fetches one base file into `path` and checks it against its manifest
/// entry `want`.
fn fetch_file(
    store: &dyn ReplicaStore,
    to: &dyn crate::storage::vfs::Vfs,
    b: &BaseManifest,
    key: &str,
    path: &Path,
    want: super::store::FileSum,
) -> Result<()> {
    let Some(sum) = store.get_to_file(key, to, path)? else {
        return Err(Error::store(
            store.describe(),
            key,
            StoreFault::Transient,
            format!(
                "base {} lost this file (pruned while it was restored?)",
                b.number
            ),
        ));
    };
    sum.verify(&store.describe(), key, want)
}

/// Writes one segment's bytes into the log file it came from, durably.
pub fn write_segment(vfs: &SharedVfs, layout: &Layout, seg: &Segment) -> Result<()> {
    let path = layout.log_path(seg.start.file);
    let created = !vfs.exists(&path);
    let f = vfs.open(&path, OpenMode::Create(crate::wal::LOG_FILE_MODE))?;
    f.write_at(&seg.bytes, u64::from(seg.start.offset))?;
    f.sync()?;
    if created {
        vfs.sync_dir(&layout.log_dir)?;
    }
    Ok(())
}

/// A restore's log writer: segments go into their log files as a client's
/// do, but each file is made durable once, when the walk leaves it or
/// ends, not after every segment (a backlog of thousands of small
/// segments cost a flush each). Nothing before that relies on them: the
/// restore mark stays until the restore is complete, and `finish` runs
/// before recovery reads the log.
struct RestoreLog<'a> {
    vfs: &'a SharedVfs,
    layout: &'a Layout,
    open: Option<(u32, Box<dyn crate::storage::vfs::VFile>)>,
    created: bool,
}

impl<'a> RestoreLog<'a> {
    fn new(vfs: &'a SharedVfs, layout: &'a Layout) -> RestoreLog<'a> {
        RestoreLog {
            vfs,
            layout,
            open: None,
            created: false,
        }
    }

    fn write(&mut self, seg: &Segment) -> Result<()> {
        if self.open.as_ref().is_none_or(|o| o.0 != seg.start.file) {
            self.close_file()?;
            let path = self.layout.log_path(seg.start.file);
            self.created |= !self.vfs.exists(&path);
            let f = self
                .vfs
                .open(&path, OpenMode::Create(crate::wal::LOG_FILE_MODE))?;
            self.open = Some((seg.start.file, f));
        }
        if let Some((_, f)) = &self.open {
            f.write_at(&seg.bytes, u64::from(seg.start.offset))?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<()> {
        match self.open.take() {
            Some((_, f)) => f.sync(),
            None => Ok(()),
        }
    }

    /// Makes everything written durable (the files and their names).
    fn finish(mut self) -> Result<()> {
        self.close_file()?;
        if self.created {
            self.vfs.sync_dir(&self.layout.log_dir)?;
        }
        Ok(())
    }
}

/// Checks that `seg` continues a chain ending at `applied` with `crc`.
pub fn check_next(
    store: &dyn ReplicaStore,
    key: &str,
    seg: &Segment,
    env_id: u64,
    applied: Lsn,
    crc: u32,
    epoch: u64,
) -> Result<()> {
    let bad = |what: String| Error::store(store.describe(), key, StoreFault::Corrupt, what);
    if seg.env_id != env_id {
        return Err(bad(format!(
            "segment of another environment (id {:016x}, expected {env_id:016x})",
            seg.env_id
        )));
    }
    if seg.epoch < epoch {
        return Err(bad(format!(
            "segment of epoch {}, older than the epoch {epoch} already applied",
            seg.epoch
        )));
    }
    let contiguous = seg.start == applied || seg.start == Lsn::new(applied.file + 1, 0);
    if !contiguous {
        return Err(bad(format!(
            "segment starts at {}, not where the applied log ends ({applied})",
            seg.start
        )));
    }
    if seg.starts_chain() {
        return Err(bad(
            "segment starts a new chain: the store's log has a gap here".into(),
        ));
    }
    if seg.prev_crc != crc {
        return Err(bad(format!(
            "chain broken: segment says the previous one's checksum is {:08x}, the applied one's is {crc:08x}",
            seg.prev_crc
        )));
    }
    Ok(())
}

/// Fetches the segments from the base's start file on, following the
/// store's history, up to the last one that closes a transaction, into
/// the log. Returns the end, the chain checksum and the epoch there.
fn fetch_log(
    vfs: &SharedVfs,
    store: &dyn ReplicaStore,
    layout: &Layout,
    b: &BaseManifest,
    progress: Option<&dyn Progress>,
) -> Result<(Lsn, u32, u64)> {
    crate::progress::start(progress, Phase::FetchLog, None);
    let epochs = Epochs::read(store)?;
    let first = Lsn::new(b.start.file, 0);
    let expected = prefetch::expected_segments(store, &epochs, first)?;
    Prefetcher::run(store, expected, |ahead| {
        walk_log(vfs, ahead, layout, b, &epochs, progress)
    })
}

/// `fetch_log`'s walk, in order, over a store that may answer from
/// objects fetched ahead.
fn walk_log(
    vfs: &SharedVfs,
    store: &dyn ReplicaStore,
    layout: &Layout,
    b: &BaseManifest,
    epochs: &Epochs,
    progress: Option<&dyn Progress>,
) -> Result<(Lsn, u32, u64)> {
    let mut finder = Finder::default();
    let first = Lsn::new(b.start.file, 0);
    let mut applied = first;
    let mut crc = 0;
    let mut epoch = 0;
    let mut done = (first, 0, 0);
    let mut written: Vec<Segment> = Vec::new();
    let mut log = RestoreLog::new(vfs, layout);
    while let Some(e) = epochs.at(applied) {
        let crc_wanted = (applied != first).then_some(crc);
        let Some((key, seg)) = finder.next(store, e, applied, crc_wanted)? else {
            break; // the end, or pruned meanwhile: the log ends here for this restore
        };
        if !epochs.holds(seg.epoch, seg.end) {
            return Err(past_successor(store, &key, &seg, epochs));
        }
        if applied == first {
            // The base's first segment: what it chains to is before the
            // base, so only its environment is checked.
            check_next(store, &key, &seg, b.env_id, seg.start, seg.prev_crc, 0).or_else(|e| {
                if seg.starts_chain() && seg.env_id == b.env_id {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        } else if seg.starts_chain() {
            break; // a gap: the log this base can use ends before it
        } else {
            check_next(store, &key, &seg, b.env_id, applied, crc, epoch)?;
        }
        log.write(&seg)?;
        crate::progress::advance(progress, seg.bytes.len() as u64);
        applied = seg.end;
        crc = seg.bytes_crc();
        epoch = seg.epoch;
        if seg.is_boundary() {
            done = (applied, crc, epoch);
            written.clear();
        } else {
            written.push(seg);
        }
    }
    log.finish()?;
    if applied == first {
        return Err(Error::store(
            store.describe(),
            layout::segment_key(
                epochs.at(first).unwrap_or(0),
                first,
                Lsn::new(first.file, 1),
            ),
            StoreFault::Transient,
            format!(
                "no segment starts at {first}, where base {} needs the log from",
                b.number
            ),
        ));
    }
    // Bytes after the last complete transaction are fetched again by the
    // client that follows: cut them, as recovery would.
    if let Some(s) = written.first() {
        truncate_log(vfs, layout, s.start)?;
    }
    Ok(done)
}

/// The error for a segment of an older epoch that ends past where its
/// successor began (a master fenced by a promotion shipped it late): it
/// is not part of the history.
pub fn past_successor(
    store: &dyn ReplicaStore,
    key: &str,
    seg: &Segment,
    epochs: &Epochs,
) -> Error {
    Error::store(
        store.describe(),
        key,
        StoreFault::Corrupt,
        format!(
            "segment of epoch {} ends at {}, past where epoch {} began ({}): rejected (a fenced master shipped it)",
            seg.epoch,
            seg.end,
            seg.epoch + 1,
            epochs.end_of(seg.epoch).unwrap_or(Lsn::ZERO)
        ),
    )
}

/// Cuts the local log at `at`: later files go, `at`'s file is shortened.
pub fn truncate_log(vfs: &SharedVfs, layout: &Layout, at: Lsn) -> Result<()> {
    for n in layout.all_log_files(vfs)?.into_iter().rev() {
        if n > at.file || (n == at.file && at.offset == 0) {
            vfs.remove(&layout.log_path(n))?;
            vfs.sync_dir(&layout.log_dir)?;
        }
    }
    let p = layout.log_path(at.file);
    if at.offset > 0 && vfs.exists(&p) {
        let h = vfs.open(&p, OpenMode::ReadWrite)?;
        h.set_len(u64::from(at.offset))?;
        h.sync()?;
    }
    Ok(())
}
