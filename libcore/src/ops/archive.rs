//! What `db_archive` answers: the log files no longer in use, all log
//! files, the database files; and the removal of unused logs (`-d`).
//!
//! "No longer in use" means wholly before the file that holds the redo LSN
//! of the last checkpoint. The answer comes from the region (O(1)) when it
//! is valid and belongs to these logs, otherwise from the last log file
//! (`wal::last_checkpoint`), never from a scan of every log file. Counting
//! goes down from that file and stops at the first missing one, as
//! Berkeley DB does.
//!
//! Removal honours the leases running hot backups hold in the region: a
//! file from the lowest live lease's file on is kept even if no longer in
//! use, and a region whose leases cannot be read (its lock held by a
//! stopped process) stops the removal with an error rather than a guess.

use crate::engine::region::Region;
use crate::error::{Error, Result};
use crate::storage::layout::Layout;
use crate::storage::logfiles::run_below;
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use crate::wal::{self, FileHeader, FILE_HEADER_SIZE};
use std::path::PathBuf;

/// Which files `list` names, as `db_archive`'s flags choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveMode {
    /// Log files no longer in use (no flag).
    Unused,
    /// Every log file (`-l`).
    AllLogs,
    /// Every database file (`-s`).
    Databases,
}

/// Facts about an environment's log that archive decisions rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Present log files, lowest and highest number.
    pub first: u32,
    pub last: u32,
    /// Redo LSN of the last checkpoint (`None`: no checkpoint yet).
    pub ckp_redo: Option<Lsn>,
    /// LSN of the last checkpoint record.
    pub ckp_lsn: Option<Lsn>,
}

/// Reads the log state: region first, the last log file otherwise.
pub fn log_state(vfs: &SharedVfs, layout: &Layout) -> Result<LogState> {
    log_state_of(vfs, layout, &layout.log_files(vfs)?)
}

/// [`log_state`] given the present log files (ascending), so a caller that
/// needs the listing too reads the directory once.
fn log_state_of(vfs: &SharedVfs, layout: &Layout, files: &[u32]) -> Result<LogState> {
    let (Some(&first), Some(&last)) = (files.first(), files.last()) else {
        return Err(Error::NotEnvironment {
            path: layout.home.clone(),
        });
    };
    // The owner may be creating the last file right now (no header yet):
    // the one before it tells the environment just as well.
    let env_id = match read_header(vfs, layout, last) {
        Ok(h) => h.env_id,
        Err(e) if last > first => match read_header(vfs, layout, last - 1) {
            Ok(h) => h.env_id,
            Err(_) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    if let Some(st) = Region::at(vfs, &layout.home).read() {
        if st.env_id == env_id && !st.last_ckp.is_zero() && st.ckp_redo.file <= last {
            return Ok(LogState {
                first,
                last,
                ckp_redo: Some(st.ckp_redo),
                ckp_lsn: Some(st.last_ckp),
            });
        }
    }
    let ckp = wal::last_checkpoint_in(vfs, &layout.log_dir, files)?;
    Ok(LogState {
        first,
        last,
        ckp_redo: ckp.as_ref().map(|c| c.1.redo_lsn),
        ckp_lsn: ckp.as_ref().map(|c| c.0),
    })
}

fn read_header(vfs: &SharedVfs, layout: &Layout, n: u32) -> Result<FileHeader> {
    let path = layout.log_path(n);
    let h = vfs.open(&path, OpenMode::Read)?;
    let mut b = [0u8; FILE_HEADER_SIZE];
    let got = h.read_at(&mut b, 0)?;
    FileHeader::decode(&path, &b[..got], n)
}

/// Numbers of the log files no longer in use, ascending.
///
/// The directory is read once and the count down to the first missing file
/// uses that listing, not a `stat` per file: with 10,000 log files the
/// stats alone took 40 ms (bench row 7), the listing takes about 3.
pub fn unused_logs(vfs: &SharedVfs, layout: &Layout) -> Result<Vec<u32>> {
    // An environment with nothing committed has no log to archive.
    let Some(files) = layout.env_log(vfs)? else {
        return Ok(Vec::new());
    };
    let st = log_state_of(vfs, layout, &files)?;
    let Some(redo) = st.ckp_redo else {
        return Ok(Vec::new());
    };
    Ok(run_below(&files, redo.file.min(st.last)))
}

/// Every log file, counting down from the last to the first missing one.
pub fn all_logs(vfs: &SharedVfs, layout: &Layout) -> Result<Vec<u32>> {
    let files = layout.env_log(vfs)?.unwrap_or_default();
    let Some(&last) = files.last() else {
        return Ok(Vec::new());
    };
    let mut out = run_below(&files, last);
    out.push(last);
    Ok(out)
}

/// The paths `db_archive` prints for `mode`: basenames, or with
/// `absolute` the current directory joined with the path through the home
/// as given (not normalised, as Berkeley DB prints it). Sorted by byte
/// order of what is printed.
pub fn list(
    vfs: &SharedVfs,
    layout: &Layout,
    mode: ArchiveMode,
    absolute: bool,
) -> Result<Vec<PathBuf>> {
    let cwd = if absolute {
        std::env::current_dir().map_err(|e| Error::io(".", "getcwd", e))?
    } else {
        PathBuf::new()
    };
    let show = |full: PathBuf| -> PathBuf {
        if absolute {
            cwd.join(full)
        } else {
            PathBuf::from(full.file_name().unwrap_or_default())
        }
    };
    // A log's printed path without a join per file: with 10,000 logs the
    // joins were most of db_archive's time.
    let log_prefix = if absolute {
        cwd.join(&layout.log_dir)
    } else {
        PathBuf::new()
    };
    let show_log = |n: u32| log_prefix.join(crate::wal::log_name(n));
    let mut out: Vec<PathBuf> = match mode {
        ArchiveMode::Unused => unused_logs(vfs, layout)?
            .into_iter()
            .map(show_log)
            .collect(),
        ArchiveMode::AllLogs => all_logs(vfs, layout)?.into_iter().map(show_log).collect(),
        // An environment in which nothing was ever committed has no
        // database (and a directory that is no environment is an error).
        ArchiveMode::Databases if layout.env_log(vfs)?.is_none() => Vec::new(),
        ArchiveMode::Databases => {
            // An environment is recognised by its logs, even for -s.
            log_state(vfs, layout)?;
            let mut files: Vec<PathBuf> =
                layout.db_files(vfs)?.into_iter().map(|f| f.path).collect();
            // A database the log names but whose meta page is damaged (or
            // of another format version) is not recognised by its bytes.
            // List it anyway: `db_archive -s | xargs db_copy` then fails on
            // it loudly instead of leaving it out of the copy.
            if let Some((_, ckp)) = crate::wal::last_checkpoint(vfs, &layout.log_dir)? {
                for (_, name) in &ckp.files {
                    let Ok(name) = std::str::from_utf8(name) else {
                        continue;
                    };
                    if crate::storage::layout::check_db_name(name).is_err() {
                        continue;
                    }
                    let p = layout.db_path(vfs, name);
                    if vfs.exists(&p) && !files.contains(&p) {
                        files.push(p);
                    }
                }
            }
            files.into_iter().map(show).collect()
        }
    };
    // Log names are zero-padded numbers, already in byte order; only the
    // database names need sorting.
    if mode == ArchiveMode::Databases {
        out.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    }
    Ok(out)
}

/// Removes the log files no longer in use, except those from the lowest
/// live backup lease's file on. Returns what was removed.
pub fn remove_unused(vfs: &SharedVfs, layout: &Layout) -> Result<Vec<PathBuf>> {
    crate::engine::upkeep::remove_logs(vfs, layout, unused_logs(vfs, layout)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::{Env, EnvOptions};
    use crate::storage::vfs::OsVfs;

    #[test]
    fn run_below_stops_at_the_first_gap() {
        assert_eq!(run_below(&[1, 2, 3, 5, 6, 7, 8], 8), vec![5, 6, 7]);
        assert_eq!(run_below(&[1, 2, 3, 5, 6, 7, 8], 5), Vec::<u32>::new());
        assert_eq!(run_below(&[1, 2, 3, 5, 6, 7, 8], 4), vec![1, 2, 3]);
        assert_eq!(run_below(&[1, 2, 3], 9), Vec::<u32>::new());
        assert_eq!(run_below(&[2, 3, 4], 4), vec![2, 3]);
        assert_eq!(run_below(&[4], 4), Vec::<u32>::new());
        assert_eq!(run_below(&[], 1), Vec::<u32>::new());
    }

    #[test]
    fn unused_logs_are_those_before_the_checkpoint_redo_file() {
        let d = tempfile::tempdir().unwrap();
        let mut o = EnvOptions::create();
        o.lg_max = Some(8 * 1024);
        let env = Env::open(d.path(), o).unwrap();
        let vfs = OsVfs::shared();
        let layout = Layout::resolve(&vfs, d.path()).unwrap();
        {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", Some(512)).unwrap();
            for i in 0..400u32 {
                t.put(&db, &i.to_be_bytes(), &[1u8; 100]).unwrap();
            }
            t.commit().unwrap();
        }
        // No checkpoint yet: nothing is unused.
        assert!(unused_logs(&vfs, &layout).unwrap().is_empty());
        let all = all_logs(&vfs, &layout).unwrap();
        assert!(all.len() > 3, "{all:?}");
        env.checkpoint().unwrap();
        let unused = unused_logs(&vfs, &layout).unwrap();
        assert_eq!(unused.len(), all.len() - 1, "all but the last file");
        let names = list(&vfs, &layout, ArchiveMode::Databases, false).unwrap();
        assert_eq!(names, vec![PathBuf::from("a.db")]);
        // Leases keep what the backups need: the lowest one counts.
        let now = crate::types::now_secs();
        let me = std::process::id();
        let start = crate::engine::region::own_start_time();
        Region::at(&vfs, d.path())
            .update(false, |s| {
                s.add_lease(me, start, 3, now + 60, now);
                s.add_lease(me, start, 2, now + 60, now);
            })
            .unwrap();
        let removed = remove_unused(&vfs, &layout).unwrap();
        assert_eq!(removed, vec![layout.log_path(1)]);
        assert_eq!(all_logs(&vfs, &layout).unwrap().first(), Some(&2));
    }
}
