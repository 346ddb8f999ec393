//! Automatic upkeep of an owner (`EnvOptions::upkeep`): when a checkpoint
//! is due (by log size, by time), and removing the log files no longer
//! needed, as `db_archive -d` does too: oldest first, each removal durable
//! before the next, never one a live lease in the region covers (a
//! running hot backup, a replication master), read under the region's
//! lock. The owner's housekeeping thread (env.rs) runs it; it holds the
//! environment weakly and stops when the last handle closes. Its failures
//! are not lost: a failed checkpoint puts the environment in the failed
//! state, which the application's next call reports.

use crate::error::Result;
use crate::storage::layout::Layout;
use crate::storage::logfiles::run_below;
use crate::storage::vfs::SharedVfs;
use crate::types::Lsn;
use std::path::PathBuf;
use std::time::Duration;

/// Automatic upkeep an owner does by itself (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Checkpoint once this many bytes of log were written since the last
    /// checkpoint (bounds recovery time and the log kept on disk).
    pub checkpoint_log_bytes: Option<u64>,
    /// Checkpoint at least this often while transactions commit.
    pub checkpoint_interval: Option<Duration>,
    /// After each automatic checkpoint, remove the log files no longer
    /// needed for recovery (as `db_archive -d`), but any a live lease
    /// (a hot backup, a replication master) still needs.
    pub remove_unused_logs: bool,
}

impl Upkeep {
    /// Anything to do at all.
    pub(crate) fn any(&self) -> bool {
        self.checkpoint_log_bytes.is_some() || self.checkpoint_interval.is_some()
    }
}

/// Where the environment stands, for `Upkeep::due`.
pub(crate) struct Standing {
    pub(crate) last_checkpoint: Lsn,
    pub(crate) log_end: Lsn,
    pub(crate) lg_max: u32,
    /// Commits now and at the last automatic checkpoint.
    pub(crate) commits: u64,
    pub(crate) commits_then: u64,
    pub(crate) since_last_auto: Duration,
}

impl Upkeep {
    /// Whether an automatic checkpoint is due: enough log since the last
    /// one, or its interval passed with commits since the last automatic
    /// one.
    pub(crate) fn due(&self, st: &Standing) -> bool {
        if let Some(bytes) = self.checkpoint_log_bytes {
            if log_bytes_between(st.last_checkpoint, st.log_end, st.lg_max) >= bytes {
                return true;
            }
        }
        if let Some(every) = self.checkpoint_interval {
            if st.commits != st.commits_then && st.since_last_auto >= every {
                return true;
            }
        }
        false
    }
}

/// About how many bytes of log lie between two positions (files before
/// the last counted at the log's file size).
fn log_bytes_between(from: Lsn, to: Lsn, lg_max: u32) -> u64 {
    if from.is_zero() {
        return u64::from(to.file.saturating_sub(1)) * u64::from(lg_max) + u64::from(to.offset);
    }
    if to.file == from.file {
        return u64::from(to.offset.saturating_sub(from.offset));
    }
    let whole = u64::from(to.file - from.file - 1) * u64::from(lg_max);
    whole + u64::from(lg_max.saturating_sub(from.offset)) + u64::from(to.offset)
}

/// The log files numbered below `below` that recovery no longer needs:
/// the unbroken run of files just below it (never the newest file).
pub(crate) fn unused_below(vfs: &SharedVfs, layout: &Layout, below: u32) -> Result<Vec<u32>> {
    let Some(files) = layout.env_log(vfs)? else {
        return Ok(Vec::new());
    };
    let last = files.last().copied().unwrap_or(0);
    Ok(run_below(&files, below.min(last)))
}

/// Removes the log files `unused` (ascending, no longer needed for
/// recovery), but any a live lease in the region covers: oldest first,
/// each removal durable before the next, so a power loss never leaves a
/// gap among the files kept (catastrophic recovery of this directory, or
/// of a copy, would refuse it). The leases are read and the files removed
/// under the region's lock: a lease taken in between would otherwise not
/// protect what it names. What `db_archive -d` runs too.
pub(crate) fn remove_logs(
    vfs: &SharedVfs,
    layout: &Layout,
    unused: Vec<u32>,
) -> Result<Vec<PathBuf>> {
    if unused.is_empty() {
        return Ok(Vec::new());
    }
    super::region::Region::at(vfs, &layout.home).while_leases_held(|state| {
        let floor = state
            .and_then(|s| s.lowest_live_lease(crate::types::now_secs()))
            .map(|l| l.first_log);
        let mut removed = Vec::new();
        for n in unused {
            if floor.is_some_and(|f| n >= f) {
                continue;
            }
            let p = layout.log_path(n);
            vfs.remove(&p)?;
            vfs.sync_dir(&layout.log_dir)?;
            removed.push(p);
        }
        Ok(removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bytes_count_whole_files_between() {
        let l = |f, o| Lsn::new(f, o);
        assert_eq!(log_bytes_between(l(3, 100), l(3, 900), 1000), 800);
        assert_eq!(
            log_bytes_between(l(3, 900), l(5, 50), 1000),
            100 + 1000 + 50
        );
        assert_eq!(log_bytes_between(Lsn::ZERO, l(2, 10), 1000), 1010);
    }
}
