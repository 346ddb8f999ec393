//! Redo recovery: normal (from the last checkpoint's redo LSN), catastrophic
//! (from the first log file present), from a given LSN (incremental backup
//! update), and to a point in time. DESIGN.md section 5 is the contract:
//!
//! * a transaction's records are applied only when its commit record is
//!   read, so a batch cut short by a crash leaves no trace, and the end of
//!   the log is the end of the last complete batch (what follows is cut);
//! * a page is changed by a record only if the record is newer than the
//!   page; a torn or never-written page counts as older than everything;
//! * a byte-range change applies only to a page whose LSN is the record's
//!   "LSN before"; an older page waits for a later full image, and a page
//!   still waiting when the log ends is a log sequence error naming the
//!   file, the page and the missing LSN;
//! * recovery never touches a file outside the data directory, whatever
//!   name a log record carries (`layout::check_db_name`);
//! * a file create that gives an id another name or another page size
//!   starts the id afresh: nothing redo held for its old binding (replayed
//!   pages, pages waiting for a record) carries over, so every page redo
//!   holds has its file's page size;
//! * a CRC-valid record may still say anything: one no log of ours holds (a
//!   change to a page that was never written, an image of another size
//!   than its file's pages, a change outside the page) is `Error::Corrupt`
//!   naming the log file and the record's offset, never a panic; and redo
//!   holds no page that a record did not carry or a data file did not hold.
//!
//! The same code runs with `write: false` for read-only views: the
//! replayed pages stay in memory (`RecoveryOutcome::overlay`) and nothing
//! on disk changes.

mod batch;
pub mod bulkcheck;
mod pages;
mod syncer;

use crate::error::{Error, Location, Result};
use crate::progress::{self, Phase, Progress, Stepper};
use crate::storage::layout::{check_db_name, Layout};
use crate::storage::page::{self, Meta, PageCheck};
use crate::storage::pagestore::PageBuf;
use crate::storage::pagestore::PageKey;
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::{FileId, Lsn, PageNo, TxnId};
use crate::wal::{self, Checkpoint, LogCursor, OnBadRecord, PageRecord, Record};
use batch::{Batch, Pending};
use pages::{PageTable, RFile};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use syncer::Syncer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// From the redo LSN of the last checkpoint.
    #[default]
    Normal,
    /// From the first record of the first log file present.
    Catastrophic,
    /// From this LSN (an incremental update of a backup that already
    /// replayed everything before it).
    From(Lsn),
}

/// Mode of files recovery creates.
const DB_FILE_MODE: u32 = 0o660;
/// Replayed pages kept in memory before they are written out (write mode).
/// Small enough that the background sync (`sync_behind`) overlaps most of
/// redo; a hot page rewritten at every write-back costs little.
const BUFFER_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Default)]
pub struct RecoveryOptions<'a> {
    pub mode: RecoveryMode,
    /// Write pages to the data files and cut the log's torn tail; without
    /// it nothing on disk changes and pages stay in `overlay`.
    pub write: bool,
    /// Stop before the first commit later than this time (unix seconds),
    /// and cut the log there.
    pub until: Option<u64>,
    /// Called with a percentage as redo goes on (`db_recover -f`).
    pub feedback: Option<&'a mut dyn FnMut(u32)>,
    /// Told of the redo phase: the log bytes from `start` on, advanced
    /// per `progress::STEP` replayed.
    pub progress: Option<&'a dyn Progress>,
    /// Fsync data files on a helper thread after each intermediate
    /// write-back (`syncer.rs`). Off by default: the order of file
    /// operations then depends on timing, which tests on a simulated
    /// power loss must not.
    pub sync_behind: bool,
}

#[derive(Debug, Default, Clone)]
pub struct RecoveryOutcome {
    pub env_id: Option<u64>,
    /// First file of the log, and where redo began (`None`: no log).
    pub first_file: u32,
    pub start: Option<Lsn>,
    /// End of the last complete transaction: where the next record goes.
    pub end: Lsn,
    /// The end of the valid log as found (before anything was cut).
    pub found_end: Lsn,
    /// The last valid record of the log as found, when redo read up to
    /// the end (`None` when it stopped at `until`, or read nothing).
    pub last_record: Option<Lsn>,
    pub max_txn: TxnId,
    pub last_ckp: Option<(Lsn, Checkpoint)>,
    /// Database file names by id, as of the end of redo.
    pub files: HashMap<FileId, String>,
    pub max_file_id: FileId,
    /// Read-only views: the replayed pages.
    pub overlay: HashMap<PageKey, PageBuf>,
    pub records: u64,
    pub commits: u64,
    pub pages_applied: u64,
    /// LSNs of bulk-mode markers replayed.
    pub bulk_markers: Vec<Lsn>,
    pub last_commit_time: Option<u64>,
    /// Recovery stopped at `until` before the end of the log.
    pub stopped_at_time: bool,
    /// Things worth telling an operator that did not stop recovery.
    pub warnings: Vec<String>,
    /// Transactions too big to hold whose records redo read again from the
    /// log at their commit (batch.rs).
    pub spilled: u64,
    /// The most bytes redo held at once in record payloads and replayed
    /// pages (an upper bound: the two peaks added), for tests of its
    /// memory bound; in write mode at most `HOLD_LIMIT + BUFFER_LIMIT`
    /// and one page.
    pub held_peak: usize,
}

struct Redo<'a> {
    vfs: &'a SharedVfs,
    layout: &'a Layout,
    write: bool,
    files: HashMap<FileId, RFile>,
    pages: PageTable,
    waiting: BTreeMap<PageKey, Lsn>,
    applied: u64,
    /// Records for files recovery knows nothing about (id -> first LSN).
    unknown: BTreeMap<FileId, Lsn>,
    /// Background syncs of written files, when `sync_behind`.
    syncer: Option<Syncer>,
    /// The files the last write-back wrote to.
    written: Vec<FileId>,
}

pub fn recover(
    vfs: &SharedVfs,
    layout: &Layout,
    mut opts: RecoveryOptions<'_>,
) -> Result<RecoveryOutcome> {
    let mut out = RecoveryOutcome::default();
    let all = layout.log_files(vfs)?;
    let Some(&first) = all.first() else {
        return Ok(out);
    };
    let ckp = wal::last_checkpoint(vfs, &layout.log_dir)?;
    // A backup's data files are as far as its manifest says, which may be
    // behind its log's last checkpoint (an update that copied log and then
    // failed): normal recovery of a backup starts at the manifest's end.
    if opts.mode == RecoveryMode::Normal {
        if let Some(m) = crate::wal::manifest::Manifest::read(vfs, &layout.home)? {
            opts.mode = RecoveryMode::From(m.end);
        }
    }
    // Normal recovery and updates read only from where they start, so a
    // file missing before that (removed by hand, or archived) is no gap for
    // them; catastrophic recovery reads everything and checks everything.
    let from_file = match (opts.mode, &ckp) {
        (RecoveryMode::Normal, Some((_, c))) => c.redo_lsn.file,
        (RecoveryMode::From(l), _) => l.file,
        _ => first,
    };
    if from_file < first || !all.contains(&from_file) {
        return Err(Error::LogGap {
            path: layout.log_path(from_file),
        });
    }
    let mut cur = LogCursor::open_from(
        vfs.clone(),
        &layout.log_dir,
        OnBadRecord::EndOfLog,
        from_file,
    )?;
    let first = from_file;
    out.first_file = all[0];
    out.env_id = cur.env_id();
    let log_start = Lsn::new(first, wal::FIRST_RECORD_OFFSET);
    let start = match opts.mode {
        RecoveryMode::Catastrophic => log_start,
        RecoveryMode::From(l) => l.max(log_start),
        RecoveryMode::Normal => match &ckp {
            Some((_, c)) => c.redo_lsn.max(log_start),
            None => log_start,
        },
    };
    out.start = Some(start);
    out.last_ckp = ckp.clone();

    let mut redo = Redo {
        vfs,
        layout,
        write: opts.write,
        files: HashMap::new(),
        pages: PageTable::default(),
        waiting: BTreeMap::new(),
        applied: 0,
        unknown: BTreeMap::new(),
        syncer: opts.sync_behind.then(Syncer::default),
        written: Vec::new(),
    };
    redo.load_file_table(ckp.as_ref().map(|c| &c.1))?;

    // Sizes of the files from `start` on, for progress percentages; the
    // newest one's up to the end of its records (it is preallocated).
    let log_end = cur.end()?;
    let sizes: Vec<(u32, u64)> = cur
        .files()
        .iter()
        .filter(|&&n| n >= start.file)
        .map(|&n| {
            let len = match n == log_end.file {
                true => Ok(u64::from(log_end.offset)),
                false => vfs
                    .open(&layout.log_path(n), OpenMode::Read)
                    .and_then(|h| h.len()),
            };
            (n, len.unwrap_or(0))
        })
        .collect();
    let total: u64 = sizes.iter().map(|s| s.1).sum::<u64>().max(1);
    let mut positions = LogPositions::new(sizes);
    let mut position = |lsn: Lsn| positions.at(lsn);
    let mut last_pct = u32::MAX;
    let from = position(start);
    progress::start(opts.progress, Phase::Redo, Some(total.saturating_sub(from)));
    let mut stepper = Stepper::new(opts.progress, from);

    cur.seek(start)?;
    let mut pending = Batch::default();
    let mut end = start;
    let mut complete = false;
    let mut last_record = None;
    // Reads spilled batches again (batch.rs), opened at the first one.
    let mut reread: Option<LogCursor> = None;
    while let Some(raw) = cur.next_raw()? {
        let (lsn, txn, ty, payload) = (raw.lsn, raw.txn, raw.ty, raw.payload);
        let size = payload.len();
        // Page records are held raw (see batch.rs); only the others are
        // decoded into a `Record` here.
        let rec = if PageRecord::is_page_type(ty) {
            if txn != pending.txn {
                // A new transaction: anything pending had no commit
                // (cannot happen in a log we wrote; be safe).
                pending.clear();
                pending.txn = txn;
            }
            pending.push_page(lsn, ty, payload).map(|()| None)
        } else {
            Record::decode(ty, payload).map(Some)
        };
        let rec = rec.map_err(|e| cur.corrupt_at(lsn, e.0))?;
        last_record = Some(lsn);
        if complete {
            end = lsn;
            complete = false;
        }
        out.records += 1;
        if stepper.listening() {
            stepper.reach(position(lsn));
        }
        if let Some(p) = opts.feedback.as_mut() {
            let pct = ((position(lsn) * 100) / total).min(100) as u32;
            if pct != last_pct {
                p(pct);
                last_pct = pct;
            }
        }
        match rec {
            None => out.max_txn = out.max_txn.max(txn),
            Some(Record::Checkpoint(c)) => {
                pending.clear();
                out.last_ckp = Some((lsn, c));
                complete = true;
            }
            // Outside any transaction, like a checkpoint: nothing to redo.
            Some(Record::Epoch { .. }) => {
                pending.clear();
                complete = true;
            }
            Some(Record::Commit { timestamp }) => {
                if opts.until.is_some_and(|t| timestamp > t) {
                    out.stopped_at_time = true;
                    last_record = None;
                    break;
                }
                if txn != pending.txn {
                    pending.clear();
                }
                if let Some(first) = pending.spilled_from() {
                    redo.replay_spilled(&mut reread, first, lsn, txn, &mut out)?;
                    pending.clear();
                    out.spilled += 1;
                } else {
                    pending.drain(|p| redo.apply(p, &mut out), |l, e| cur.corrupt_at(l, e.0))?;
                }
                out.commits += 1;
                out.max_txn = out.max_txn.max(txn);
                out.last_commit_time = Some(timestamp);
                complete = true;
            }
            Some(r) => {
                if txn != pending.txn {
                    pending.clear();
                    pending.txn = txn;
                }
                out.max_txn = out.max_txn.max(txn);
                pending.push(lsn, r, size);
            }
        }
    }
    out.held_peak = pending.peak + redo.pages.peak;
    out.found_end = cur.end()?;
    out.last_record = last_record;
    if complete {
        end = out.found_end;
    }
    out.end = end;
    // Redo replayed up to here: the end of the valid log, or the stop at
    // a time.
    stepper.flush(position(match out.stopped_at_time {
        true => end,
        false => out.found_end,
    }));
    if let Some(p) = opts.feedback.as_mut() {
        if last_pct != 100 {
            p(100);
        }
    }
    if let Some((key, missing)) = redo.waiting.iter().next() {
        let path = redo
            .files
            .get(&key.0)
            .map(|f| f.path.clone())
            .unwrap_or_else(|| layout.home.join(format!("file-id-{}", key.0)));
        return Err(Error::LogSequence {
            path,
            page: key.1,
            missing: *missing,
        });
    }
    for (id, lsn) in &redo.unknown {
        out.warnings.push(format!(
            "log record at {lsn} changes database file id {id}, which is not in the environment (removed by hand?)"
        ));
    }
    out.pages_applied = redo.applied;
    out.files = redo
        .files
        .iter()
        .map(|(id, f)| (*id, f.name.clone()))
        .collect();
    out.max_file_id = redo.files.keys().copied().max().unwrap_or_default();
    if opts.write {
        // Before anything replayed is written: a refused recovery to a time
        // leaves the data files as they were (unless redo already had to
        // write some out to bound its memory, which is harmless: those
        // pages are older than the point).
        if opts.until.is_some() {
            redo.check_not_newer_than(end)?;
        }
        redo.flush()?;
        redo.cut_stale_pages()?;
        if let Some(s) = redo.syncer.as_mut() {
            s.wait()?;
        }
        redo.sync()?;
        cut_log(vfs, layout, end)?;
    } else {
        out.overlay = redo
            .pages
            .take_replayed()
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
    }
    Ok(out)
}

/// Where an LSN is in the log counted as one run of bytes over its files
/// (from the first file listed), for progress: the sum of the earlier
/// files' sizes is kept for the file last asked about, so asking in log
/// order costs nothing per record.
struct LogPositions {
    /// Each file from where redo starts, and its size.
    sizes: Vec<(u32, u64)>,
    /// The file last asked about and the bytes of the files before it.
    file: u32,
    before: u64,
}

impl LogPositions {
    fn new(sizes: Vec<(u32, u64)>) -> LogPositions {
        LogPositions {
            file: sizes.first().map(|s| s.0).unwrap_or(0),
            sizes,
            before: 0,
        }
    }

    fn at(&mut self, lsn: Lsn) -> u64 {
        if lsn.file != self.file {
            self.file = lsn.file;
            self.before = self
                .sizes
                .iter()
                .take_while(|s| s.0 < lsn.file)
                .map(|s| s.1)
                .sum();
        }
        self.before + u64::from(lsn.offset)
    }
}

/// Removes everything after `end`: every log file after `end`'s file (a
/// batch that never got its commit, a torn creation), then the torn tail
/// of `end`'s file. The files go from the last one down, each removal
/// durable before the next: a power loss may keep any of several unsynced
/// removals, and one that kept the removal of a file but not of a later
/// one would leave a gap no recovery gets past.
fn cut_log(vfs: &SharedVfs, layout: &Layout, end: Lsn) -> Result<()> {
    let later: Vec<u32> = layout
        .all_log_files(vfs)?
        .into_iter()
        .filter(|&n| n > end.file)
        .collect();
    for n in later.into_iter().rev() {
        vfs.remove(&layout.log_path(n))?;
        vfs.sync_dir(&layout.log_dir)?;
    }
    let p = layout.log_path(end.file);
    if vfs.exists(&p) {
        let h = vfs.open(&p, OpenMode::ReadWrite)?;
        if h.len()? > u64::from(end.offset) {
            h.set_len(u64::from(end.offset))?;
            h.sync()?;
        }
    }
    Ok(())
}

impl Redo<'_> {
    /// Files known before redo starts: the checkpoint's list, then every
    /// database file in the data directories (by the id in its meta page).
    fn load_file_table(&mut self, ckp: Option<&Checkpoint>) -> Result<()> {
        if let Some(c) = ckp {
            for (id, name) in &c.files {
                let Ok(name) = String::from_utf8(name.clone()) else {
                    continue;
                };
                if check_db_name(&name).is_err() {
                    continue;
                }
                let path = self.layout.db_path(self.vfs, &name);
                self.bind(*id, name, path, None)?;
            }
        }
        for info in self.layout.db_files(self.vfs)? {
            if self.files.values().any(|f| f.name == info.name) {
                continue;
            }
            let h = self.vfs.open(&info.path, OpenMode::Read)?;
            let mut buf = vec![0u8; info.meta_page_size as usize];
            h.read_at(&mut buf, 0)?;
            if page::check(&buf, PageNo::META) != PageCheck::Ok {
                continue;
            }
            if let Ok(m) = Meta::decode(&buf) {
                self.bind(m.file_id, info.name, info.path, Some(m.page_size as usize))?;
            }
        }
        Ok(())
    }

    fn bind(
        &mut self,
        id: FileId,
        name: String,
        path: PathBuf,
        page_size: Option<usize>,
    ) -> Result<()> {
        let exists = self.vfs.exists(&path);
        let handle = if exists {
            let mode = if self.write {
                OpenMode::ReadWrite
            } else {
                OpenMode::Read
            };
            Some(self.vfs.open(&path, mode)?)
        } else {
            None
        };
        let page_size = match page_size {
            Some(p) => p,
            None => crate::storage::layout::probe_db(self.vfs, &path)
                .map(|p| p as usize)
                .unwrap_or(0),
        };
        self.files
            .insert(id, RFile::new(name, path, page_size, handle)?);
        Ok(())
    }

    /// Applies one record of a committed transaction, then writes the
    /// replayed pages back if they outgrew `BUFFER_LIMIT` (also in the
    /// middle of a transaction: its commit is in the log, so its pages
    /// may reach the files in any order, and a recovery struck again
    /// replays them from the same log).
    fn apply(&mut self, p: Pending<'_>, out: &mut RecoveryOutcome) -> Result<()> {
        self.apply_record(p, out)?;
        if self.write && self.pages.buffered() > BUFFER_LIMIT {
            self.flush()?;
            self.sync_behind()?;
        }
        Ok(())
    }

    /// Applies the records of a spilled batch of transaction `txn`: read
    /// again from the log, from its first record at `first` up to its
    /// commit record at `commit`, which redo read before (so they are
    /// there and sound unless the log changed under recovery, which is
    /// `Error::Corrupt`).
    fn replay_spilled(
        &mut self,
        reread: &mut Option<LogCursor>,
        first: Lsn,
        commit: Lsn,
        txn: TxnId,
        out: &mut RecoveryOutcome,
    ) -> Result<()> {
        let cur = match reread {
            Some(c) => c,
            None => reread.insert(LogCursor::open_from(
                self.vfs.clone(),
                &self.layout.log_dir,
                OnBadRecord::EndOfLog,
                first.file,
            )?),
        };
        cur.seek(first)?;
        loop {
            let at = |lsn: Lsn, what: String| {
                Error::corrupt(
                    self.layout.log_path(lsn.file),
                    Location::Offset(u64::from(lsn.offset)),
                    what,
                )
            };
            let changed = |lsn: Lsn| at(lsn, "log changed while recovery read it".into());
            let Some(raw) = cur.next_raw()? else {
                return Err(changed(commit));
            };
            let lsn = raw.lsn;
            if lsn == commit {
                return Ok(());
            }
            if lsn > commit || raw.txn != txn {
                return Err(changed(lsn));
            }
            let p = if PageRecord::is_page_type(raw.ty) {
                PageRecord::decode(raw.ty, raw.payload).map(|r| Pending::Page(lsn, r))
            } else {
                Record::decode(raw.ty, raw.payload).map(|r| Pending::Other(lsn, r))
            };
            let p = p.map_err(|e| at(lsn, e.0))?;
            self.apply(p, out)?;
        }
    }

    fn apply_record(&mut self, p: Pending<'_>, out: &mut RecoveryOutcome) -> Result<()> {
        let (lsn, rec) = match p {
            Pending::Page(
                lsn,
                PageRecord::Image {
                    file_id,
                    pgno,
                    image,
                },
            ) => return self.image(lsn, file_id, pgno, image),
            Pending::Page(
                lsn,
                PageRecord::Delta {
                    file_id,
                    pgno,
                    prev_lsn,
                    ranges,
                },
            ) => return self.delta(lsn, file_id, pgno, prev_lsn, ranges),
            Pending::Other(lsn, rec) => (lsn, rec),
        };
        match rec {
            Record::FileCreate {
                file_id,
                page_size,
                name,
            } => self.create(lsn, file_id, page_size, &name),
            Record::FileRemove { file_id, .. } => self.remove(file_id),
            Record::FileRename { file_id, new, .. } => self.rename(lsn, file_id, &new),
            Record::PageImage {
                file_id,
                pgno,
                image,
            } => self.image(lsn, file_id, pgno, &image),
            Record::PageDelta {
                file_id,
                pgno,
                prev_lsn,
                ranges,
            } => self.delta(
                lsn,
                file_id,
                pgno,
                prev_lsn,
                ranges.iter().map(|(o, b)| (*o, b.as_slice())),
            ),
            Record::BulkMarker { .. } => {
                out.bulk_markers.push(lsn);
                Ok(())
            }
            Record::Commit { .. } | Record::Checkpoint(_) | Record::Epoch { .. } => Ok(()),
        }
    }

    fn record_name(&self, lsn: Lsn, name: &[u8]) -> Result<String> {
        let bad = || {
            Error::corrupt(
                self.layout.log_path(lsn.file),
                Location::Offset(u64::from(lsn.offset)),
                format!(
                    "log record names the file {:?}, which is not a plain name inside the data directory; refusing",
                    String::from_utf8_lossy(name)
                ),
            )
        };
        let s = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
        check_db_name(&s).map_err(|_| bad())?;
        Ok(s)
    }

    fn create(&mut self, lsn: Lsn, id: FileId, page_size: u32, name: &[u8]) -> Result<()> {
        let name = self.record_name(lsn, name)?;
        if !page::valid_page_size(page_size as usize) {
            return Err(Error::corrupt(
                self.layout.log_path(lsn.file),
                Location::Offset(u64::from(lsn.offset)),
                format!("file create record with page size {page_size}"),
            ));
        }
        let page_size = page_size as usize;
        // A file of that name bound to another id is an earlier
        // incarnation; this record's id takes the name over, and what redo
        // held for the old id goes with it.
        let earlier: Vec<FileId> = self
            .files
            .iter()
            .filter(|(fid, f)| **fid != id && f.name == name)
            .map(|(fid, _)| *fid)
            .collect();
        for old in earlier {
            self.files.remove(&old);
            self.forget(old);
        }
        let same = self
            .files
            .get(&id)
            .is_some_and(|f| f.name == name && (f.page_size == page_size || f.page_size == 0));
        if same {
            return self.recreate(id, page_size);
        }
        // The id now names another file, or the same name with another
        // page size: nothing redo knew of the id's pages (their bytes, their
        // size, the records they wait for) says anything about this one's.
        self.forget(id);
        let path = self.layout.db_path(self.vfs, &name);
        let handle = if self.write {
            Some(self.create_file(&path)?)
        } else if self.vfs.exists(&path) {
            Some(self.vfs.open(&path, OpenMode::Read)?)
        } else {
            None
        };
        self.files
            .insert(id, RFile::new(name, path, page_size, handle)?);
        Ok(())
    }

    /// The file bound to `id` is created again under the same name (redo
    /// started before its create, and a checkpoint or its meta page
    /// already named it): keep what redo knows of it, learn its page size
    /// if that was unknown, and create it on disk if it is missing there.
    fn recreate(&mut self, id: FileId, page_size: usize) -> Result<()> {
        let Some(f) = self.files.get(&id) else {
            return Ok(());
        };
        let learned = f.page_size == 0;
        let missing = f.handle.is_none() && self.write;
        let path = f.path.clone();
        let handle = if missing {
            Some(self.create_file(&path)?)
        } else {
            None
        };
        if let Some(f) = self.files.get_mut(&id) {
            f.page_size = page_size;
            if let Some(h) = handle {
                let h: Arc<dyn VFile> = Arc::from(h);
                f.disk_len = h.len()?;
                f.len_before = f.disk_len;
                f.handle = Some(h);
            }
        }
        if learned || missing {
            // Pages looked up while the size was unknown or the file was
            // missing read as never written; the disk may say otherwise.
            self.pages.forget_disk_pages(id);
        }
        Ok(())
    }

    /// Creates (never truncates: bulk-mode pages may already be in it) a
    /// data file and makes its name durable.
    fn create_file(&self, path: &std::path::Path) -> Result<Box<dyn VFile>> {
        let h = self.vfs.open(path, OpenMode::Create(DB_FILE_MODE))?;
        if let Some(dir) = path.parent() {
            self.vfs.sync_dir(dir)?;
        }
        Ok(h)
    }

    /// Drops every page of file `id` redo holds and every page of it
    /// waiting for a record.
    fn forget(&mut self, id: FileId) {
        self.pages.forget_file(id);
        self.waiting.retain(|k, _| k.0 != id);
    }

    fn remove(&mut self, id: FileId) -> Result<()> {
        self.forget(id);
        if let Some(f) = self.files.remove(&id) {
            if self.write && self.vfs.exists(&f.path) {
                self.vfs.remove(&f.path)?;
                if let Some(dir) = f.path.parent() {
                    self.vfs.sync_dir(dir)?;
                }
            }
        }
        Ok(())
    }

    fn rename(&mut self, lsn: Lsn, id: FileId, new: &[u8]) -> Result<()> {
        let new = self.record_name(lsn, new)?;
        let Some(f) = self.files.get_mut(&id) else {
            return Ok(());
        };
        let to = f
            .path
            .parent()
            .map(|d| d.join(&new))
            .unwrap_or_else(|| PathBuf::from(&new));
        if self.write && self.vfs.exists(&f.path) {
            self.vfs.rename(&f.path, &to)?;
            if let Some(dir) = to.parent() {
                self.vfs.sync_dir(dir)?;
            }
        }
        f.name = new;
        f.path = to;
        Ok(())
    }

    fn image(&mut self, lsn: Lsn, id: FileId, pgno: PageNo, image: &[u8]) -> Result<()> {
        let key = (id, pgno);
        let Some(f) = self.files.get_mut(&id) else {
            self.unknown.entry(id).or_insert(lsn);
            return Ok(());
        };
        // A file named by the checkpoint whose meta page cannot be read
        // (removed later in the log, so gone from disk) has no known page
        // size yet: the image tells it. Its later FileRemove drops it.
        if f.page_size == 0 && page::valid_page_size(image.len()) {
            f.page_size = image.len();
            // Its pages looked up so far could not be read: they can now.
            self.pages.forget_disk_pages(id);
        }
        let Some(f) = self.files.get(&id) else {
            return Ok(());
        };
        // (A size still unknown is 0, which no image may have either.)
        if image.len() != f.page_size || f.page_size == 0 {
            return Err(self.bad_record(lsn, "page image of the wrong size"));
        }
        // Only the LSN matters here: a newer page stays as it is.
        self.waiting.remove(&key);
        if self.pages.lsn(key, f)? >= lsn {
            return Ok(());
        }
        let mut buf = image.to_vec();
        page::set_lsn(&mut buf, lsn);
        self.pages.put(key, buf);
        self.applied += 1;
        Ok(())
    }

    fn delta<'r>(
        &mut self,
        lsn: Lsn,
        id: FileId,
        pgno: PageNo,
        prev: Lsn,
        ranges: impl Iterator<Item = (u32, &'r [u8])> + Clone,
    ) -> Result<()> {
        let key = (id, pgno);
        // Our writer logs a change only against a page that has an LSN
        // (a new page goes out whole): a delta from nothing would make up
        // a whole page out of a few bytes of log.
        if prev.is_zero() {
            return Err(self.bad_record(lsn, "page change to a page that was never written"));
        }
        let Some(f) = self.files.get(&id) else {
            self.unknown.entry(id).or_insert(lsn);
            return Ok(());
        };
        let cur = self.pages.lsn(key, f)?;
        if cur >= lsn || self.waiting.contains_key(&key) {
            return Ok(());
        }
        if cur != prev {
            self.waiting.insert(key, prev);
            return Ok(());
        }
        // Checked before the page is touched: a bad record changes nothing.
        let len = f.page_size;
        for (off, bytes) in ranges.clone() {
            let off = off as usize;
            if off < page::LSN_END || off.saturating_add(bytes.len()) > len {
                return Err(self.bad_record(lsn, "page change outside the page"));
            }
        }
        let buf = self.pages.bytes_mut(key, f)?;
        // Every held page of a file has its page size (a new binding
        // forgets the old one's pages); checked so a slip is an error.
        if buf.len() != len {
            return Err(self.bad_record(lsn, "page change to a page of another size"));
        }
        for (off, bytes) in ranges {
            let off = off as usize;
            buf[off..off + bytes.len()].copy_from_slice(bytes);
        }
        page::set_lsn(buf, lsn);
        self.applied += 1;
        Ok(())
    }

    fn bad_record(&self, lsn: Lsn, what: &str) -> Error {
        Error::corrupt(
            self.layout.log_path(lsn.file),
            Location::Offset(u64::from(lsn.offset)),
            what,
        )
    }

    fn flush(&mut self) -> Result<()> {
        self.written = self.pages.flush(&mut self.files)?;
        Ok(())
    }

    /// Starts the background sync of the files the last write-back wrote.
    fn sync_behind(&mut self) -> Result<()> {
        let Some(s) = self.syncer.as_mut() else {
            return Ok(());
        };
        let handles = self
            .written
            .iter()
            .filter_map(|id| self.files.get(id).and_then(|f| f.handle.clone()))
            .collect();
        s.start(handles)
    }

    /// Cuts every database file after the last page its (now current)
    /// meta page counts. Pages there belong to no committed state: a bulk
    /// commit lost in a crash leaves its new pages behind, stamped with the
    /// LSN its marker would have had. Later commits reuse those page
    /// numbers, logged at LSNs that can be smaller (the lost commit's log
    /// is gone), and a later redo would take the stale pages for newer
    /// ones and skip the records.
    fn cut_stale_pages(&self) -> Result<()> {
        for f in self.files.values() {
            let Some(h) = &f.handle else { continue };
            if f.page_size == 0 {
                continue;
            }
            let mut buf = vec![0u8; f.page_size];
            if h.read_at(&mut buf, 0)? < f.page_size
                || page::check(&buf, PageNo::META) != PageCheck::Ok
            {
                continue;
            }
            let Ok(m) = Meta::decode(&buf) else { continue };
            let keep = (u64::from(m.last_pgno.0) + 1) * f.page_size as u64;
            if h.len()? > keep {
                h.set_len(keep)?;
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        for f in self.files.values() {
            if let Some(h) = &f.handle {
                h.sync()?;
            }
        }
        Ok(())
    }

    /// After recovery to a time: no page may be newer than the point it
    /// stopped at, or the result would mix two states. Only the pages the
    /// files had before redo are read: what write-back added is older than
    /// the point, and a log naming a far page number can make a file
    /// sparse and huge.
    fn check_not_newer_than(&self, end: Lsn) -> Result<()> {
        for f in self.files.values() {
            let Some(h) = &f.handle else { continue };
            let ps = f.page_size;
            if ps == 0 {
                continue;
            }
            let n = h.len()?.min(f.len_before) / ps as u64;
            let mut buf = vec![0u8; ps];
            for p in 0..n {
                h.read_at(&mut buf, p * ps as u64)?;
                if page::check(&buf, PageNo(p as u32)) == PageCheck::Ok && page::lsn(&buf) > end {
                    return Err(Error::corrupt(
                        &f.path,
                        Location::Page(PageNo(p as u32)),
                        format!(
                            "page is newer ({}) than the recovery point {end}; recover from an older copy of the databases",
                            page::lsn(&buf)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
