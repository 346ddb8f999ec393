//! `db_recover` as one call: recovery of an environment that no process
//! has open, written to its data files.
//!
//! What it guarantees beyond `recovery::recover`:
//! * it refuses while an owner holds the environment (`Error::Locked`), and
//!   holds the owner lock itself while it runs, so no owner can start and no
//!   second `db_recover` can run at the same time (Berkeley DB checks
//!   neither);
//! * a directory with nothing of ours is not an environment: nothing is
//!   created in it, not even the lock file (Berkeley DB creates a log
//!   there); one whose creation a crash interrupted (a `DB_CONFIG` or a file
//!   of ours, but no log: `Holds::NothingCommitted`) had nothing committed,
//!   so its recovery succeeds at once, says so (`Report::nothing_committed`)
//!   and changes nothing;
//! * nothing is appended to the log (DESIGN.md section 5): at most a torn
//!   tail, or with `until` everything after the recovery point, is cut, so
//!   the log of a recovered copy stays a byte prefix of its source's;
//! * `until` must be reachable: normal recovery starts at the last
//!   checkpoint, so a point before a commit that the checkpoint already
//!   covers is refused, and `recovery::recover` refuses data pages newer
//!   than the point;
//! * a bulk load redo replayed whose pages are missing or older in a
//!   database file (a copy taken before the load: those pages are not in
//!   the log) fails the recovery, naming the database
//!   (`bulkcheck::damaged_bulk_loads`);
//! * a cut of committed records (recovery to a time, or log files after
//!   the end removed) gives the log a new history id, so hot backups of
//!   the old history refuse to update from it (`history.rs`);
//! * the region file `__db.001` is removed, as Berkeley DB removes stale
//!   regions, or with `keep_region` rewritten with the recovered facts. The
//!   lock file `__db.lock` is never removed.

use crate::bdbtext::timespec;
use crate::engine::owner::OwnerLock;
use crate::engine::region::Region;
use crate::error::{Error, Result};
use crate::progress::{self, Progress};
use crate::recovery::{self, RecoveryMode, RecoveryOptions};
use crate::storage::layout::{Holds, Layout};
use crate::storage::vfs::{OsVfs, SharedVfs};
use crate::types::{Lsn, TxnId};
use crate::wal::{self, LogCursor, OnBadRecord, Record};
use std::path::Path;
use std::time::Duration;

/// What to recover and how.
pub struct RecoverEnvOptions<'a> {
    /// From the first log file present instead of the last checkpoint.
    pub catastrophic: bool,
    /// Stop before the first commit later than this time (seconds since
    /// the epoch) and cut the log there.
    pub until: Option<i64>,
    /// Keep `__db.001`, refreshed with the recovered facts.
    pub keep_region: bool,
    /// How long to wait for the owner lock.
    pub lock_timeout: Duration,
    /// Called with a percentage as redo goes on (`db_recover -f`).
    pub feedback: Option<&'a mut dyn FnMut(u32)>,
    /// Told of redo's progress (`Phase::Redo`: the log bytes replayed).
    pub progress: Option<&'a dyn Progress>,
}

impl Default for RecoverEnvOptions<'_> {
    fn default() -> Self {
        RecoverEnvOptions {
            catastrophic: false,
            until: None,
            keep_region: false,
            lock_timeout: Duration::from_secs(1),
            feedback: None,
            progress: None,
        }
    }
}

/// What recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The last valid record of the log as found (its end when it holds
    /// none), before anything was cut.
    pub last_valid: Lsn,
    /// Where redo began, when there was anything to redo.
    pub start: Option<Lsn>,
    /// The end of the log afterwards: where the next record goes.
    pub end: Lsn,
    /// The largest transaction id redo met.
    pub max_txn: TxnId,
    /// The last checkpoint left in the log.
    pub checkpoint: Option<Lsn>,
    /// How many log records redo read.
    pub records: u64,
    /// How many commit records redo read (the transactions it kept).
    pub commits: u64,
    /// How many page changes (images and deltas) redo applied; a change a
    /// page already held is skipped and not counted.
    pub pages_applied: u64,
    /// Recovery stopped at `until` before the end of the log.
    pub stopped_at_time: bool,
    /// Things worth telling an operator that did not stop recovery.
    pub warnings: Vec<String>,
    /// When recovery finished (seconds since the epoch).
    pub finished_at: i64,
    /// The environment has no log: its creation was interrupted before
    /// anything could be committed, and there was nothing to do.
    pub nothing_committed: bool,
}

/// Every log file and its size, a file whose first record header is all
/// zeros (a preallocated file nothing was written into) counted as a
/// bare header: it holds no records.
fn log_sizes(vfs: &SharedVfs, layout: &Layout) -> Result<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    for n in layout.log_files(vfs)? {
        let h = vfs.open(&layout.log_path(n), crate::storage::vfs::OpenMode::Read)?;
        let mut first = [0u8; wal::RECORD_HEADER_SIZE];
        let got = h.read_at(&mut first, u64::from(wal::FIRST_RECORD_OFFSET))?;
        let len = match got > 0 && first[..got].iter().all(|&b| b == 0) {
            true => u64::from(wal::FIRST_RECORD_OFFSET),
            false => h.len()?,
        };
        out.push((n, len));
    }
    Ok(out)
}

/// Whether recovery cut committed history off the log: a stop before a
/// later commit (`until`), or whole log files with records in them after
/// the end removed (the log ended early, at damage). Then the records that
/// come next take LSNs an earlier copy of this log holds other records at,
/// and the log gets a new history id (`history.rs`). A torn tail of the
/// last file, or an empty file started by the crash, cuts nothing that
/// was committed.
fn cut_history(before: &[(u32, u64)], outcome: &crate::recovery::RecoveryOutcome) -> bool {
    outcome.stopped_at_time
        || before
            .iter()
            .any(|&(n, len)| n > outcome.end.file && len > wal::FILE_HEADER_SIZE as u64)
}

/// Recovers the environment at `home` in place.
pub fn recover_env(home: &Path, opts: RecoverEnvOptions<'_>) -> Result<Report> {
    recover_env_on(&OsVfs::shared(), home, opts)
}

/// `recover_env` on any file system (tests put a power-losing one under it).
///
/// Of a backup (a directory with a backup manifest), catastrophic recovery
/// starts where the manifest says (`backup_target::recovery_start`), so
/// log files older than those it lists, left by an interrupted trim, are
/// never read; and a new backup that an interrupted `db_hotbackup` left
/// half moved into place is moved the rest of the way first.
pub fn recover_env_on(vfs: &SharedVfs, home: &Path, opts: RecoverEnvOptions<'_>) -> Result<Report> {
    let vfs = vfs.clone();
    crate::ops::backup_target::finish_interrupted(&vfs, home, opts.lock_timeout)?;
    let layout = Layout::resolve(&vfs, home)?;
    match layout.holds(&vfs)? {
        Holds::Log(_) => {}
        Holds::NothingCommitted => return nothing_committed(&vfs, home),
        Holds::DatabasesWithoutLog => {
            return Err(Error::invalid(format!(
            "{}: database files but no log files: nothing to recover from (copy the log files too)",
            layout.log_dir.display()
        )))
        }
    }
    let _lock = OwnerLock::acquire(&vfs, home, opts.lock_timeout)?;
    // Looked at again under the lock: an owner may have been creating
    // the log meanwhile (its first commit cannot have happened before the
    // header was durable, so an unfinished log is still nothing).
    if layout.log_files(&vfs)?.is_empty() {
        return nothing_committed(&vfs, home);
    }

    // Recovery to a time cuts the log before it could see its end, so
    // that one looks first; otherwise redo reads the whole log anyway and
    // tells (walking the last files once more costs as much as redo's
    // own reading of them).
    let last_valid_before = match opts.until {
        Some(_) => Some(last_valid_record(&vfs, &layout)?),
        None => None,
    };
    if let (Some(t), false) = (opts.until, opts.catastrophic) {
        check_reachable(&vfs, &layout, t)?;
    }
    let logs_before = log_sizes(&vfs, &layout)?;
    let mode = match opts.catastrophic {
        true => match crate::ops::backup_target::recovery_start(&vfs, &layout)? {
            Some(start) => RecoveryMode::From(start),
            None => RecoveryMode::Catastrophic,
        },
        false => RecoveryMode::Normal,
    };
    let outcome = recovery::recover(
        &vfs,
        &layout,
        RecoveryOptions {
            mode,
            write: true,
            until: opts.until.map(|t| t.max(0) as u64),
            feedback: opts.feedback,
            progress: opts.progress,
            // The real file system, and nothing observes the order of
            // its operations: let the disk work while redo reads.
            sync_behind: true,
        },
    )?;

    // Recorded whatever follows: the log is cut already.
    if cut_history(&logs_before, &outcome) {
        crate::wal::history::record_cut(&vfs, home, outcome.end)?;
    }
    // Redo cannot restore pages a bulk load wrote straight to a database
    // file: a copy whose file predates the load must be refused, or it is
    // a broken database that recovery called good.
    if let Some(d) =
        crate::recovery::bulkcheck::damaged_bulk_loads(&vfs, &layout, &outcome)?.first()
    {
        return Err(d.to_error());
    }

    let last_valid = match (last_valid_before, outcome.last_record) {
        (Some(l), _) | (None, Some(l)) => l,
        // Redo read nothing: the log holds nothing after its start, and
        // only a torn tail was cut.
        (None, None) => last_valid_record(&vfs, &layout)?,
    };
    // After a cut to a time, the last checkpoint may be gone with it: read
    // the log. Otherwise only a torn tail or an unfinished batch was cut,
    // never a checkpoint (a batch is one transaction's records), so the
    // last one redo saw is the last one there.
    let ckp = match opts.until {
        Some(_) => wal::last_checkpoint(&vfs, &layout.log_dir)?,
        None => outcome.last_ckp.clone(),
    };
    let region = Region::at(&vfs, home);
    if opts.keep_region {
        region.update(true, |s| {
            s.owner_pid = 0;
            s.clean_shutdown = true;
            s.env_id = outcome.env_id.unwrap_or(0);
            s.last_ckp = ckp.as_ref().map(|c| c.0).unwrap_or(Lsn::ZERO);
            s.ckp_redo = ckp.as_ref().map(|c| c.1.redo_lsn).unwrap_or(Lsn::ZERO);
            s.ckp_time = ckp.as_ref().map(|c| c.1.timestamp).unwrap_or(0);
            s.log_end = outcome.end;
            s.commits = 0;
        })?;
    } else if vfs.exists(region.path()) {
        vfs.remove(region.path())?;
    }

    progress::finish(opts.progress);
    // Nothing to redo: no record after the start but the checkpoint there.
    let idle = outcome.records == 0
        || (outcome.records == 1 && outcome.last_ckp.as_ref().map(|c| c.0) == outcome.start);
    Ok(Report {
        last_valid,
        start: if idle { None } else { outcome.start },
        end: outcome.end,
        max_txn: outcome.max_txn,
        checkpoint: ckp.map(|c| c.0),
        records: outcome.records,
        commits: outcome.commits,
        pages_applied: outcome.pages_applied,
        stopped_at_time: outcome.stopped_at_time,
        warnings: outcome.warnings,
        finished_at: timespec::now(),
        nothing_committed: false,
    })
}

/// The report for an environment without a log: nothing to recover,
/// nothing touched. An owner creating it right now is still in the way,
/// as for any recovery.
fn nothing_committed(vfs: &SharedVfs, home: &Path) -> Result<Report> {
    if let Some(pid) = crate::engine::owner::live_owner(vfs, home) {
        if pid != std::process::id() {
            return Err(Error::Locked {
                path: home.to_path_buf(),
                pid,
            });
        }
    }
    Ok(Report {
        nothing_committed: true,
        finished_at: timespec::now(),
        ..Report::default()
    })
}

/// The LSN of the last valid record (the end of the log when there is
/// none).
/// Only the last two files are read: older ones (and gaps among them) do
/// not matter here.
fn last_valid_record(vfs: &SharedVfs, layout: &Layout) -> Result<Lsn> {
    let files = layout.log_files(vfs)?;
    let Some(&last) = files.last() else {
        return Ok(Lsn::ZERO);
    };
    let from = if files.contains(&last.saturating_sub(1)) {
        last - 1
    } else {
        last
    };
    let mut cur = LogCursor::open_from(vfs.clone(), &layout.log_dir, OnBadRecord::EndOfLog, from)?;
    let end = cur.end()?;
    cur.seek(end)?;
    Ok(cur.prev()?.map(|(lsn, _, _)| lsn).unwrap_or(end))
}

/// Normal recovery to a time starts at the last checkpoint, whose data
/// pages already hold every commit before its redo point: if the last of
/// those is later than `until`, the point cannot be reached from here.
fn check_reachable(vfs: &SharedVfs, layout: &Layout, until: i64) -> Result<()> {
    let Some((_, ckp)) = wal::last_checkpoint(vfs, &layout.log_dir)? else {
        return Ok(());
    };
    let mut cur = LogCursor::open(vfs.clone(), &layout.log_dir)?;
    cur.seek(ckp.redo_lsn)?;
    // (This one reads backwards from the checkpoint, so it does need the
    // older files.)
    while let Some((_, _, rec)) = cur.prev()? {
        if let Record::Commit { timestamp } = rec {
            if i64::try_from(timestamp).unwrap_or(i64::MAX) > until {
                return Err(Error::invalid(format!(
                    "{}: recovery time {} is before the last checkpoint, which already holds a commit of {}: normal recovery cannot go back that far; restore database files copied before that time and use catastrophic recovery (-c)",
                    layout.home.display(),
                    timespec::ctime(until),
                    timespec::ctime(i64::try_from(timestamp).unwrap_or(i64::MAX)),
                )));
            }
            break;
        }
    }
    Ok(())
}
