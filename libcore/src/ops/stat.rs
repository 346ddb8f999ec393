//! The figures `db_stat` prints: a database's tree (`db`), the log (`log`),
//! transactions and checkpoints (`txn`) and the environment as a whole
//! (`env`). Everything is read without writing a byte and without the
//! owner lock, so it works beside a live owner: the log and the region are
//! read directly, databases through a read-only view that is reopened when
//! the owner moves it (`Error::SnapshotMoved`).
//!
//! Figures Berkeley DB keeps in shared memory since the region was created
//! (records written, I/O counts) have no counterpart here; what the log
//! and the region say is reported instead.

use crate::btree::{self, Stats};
use crate::engine::env::{Env, EnvOptions};
use crate::engine::owner::live_owner;
use crate::engine::region::{Region, RegionState, REGION_SIZE};
use crate::error::{Error, Result};
use crate::storage::layout::Layout;
use crate::storage::page;
use crate::storage::vfs::{OsVfs, SharedVfs};
use crate::types::{Lsn, TxnId};
use crate::wal::{self, LogCursor, Record};
use std::path::Path;

/// How often a read-only view is reopened when the owner keeps moving it.
const RETRIES: usize = 20;

/// Runs `f` on a fresh read-only view until it is not overtaken by the
/// owner.
fn with_view<T>(home: &Path, mut f: impl FnMut(&Env) -> Result<T>) -> Result<T> {
    let mut last = Error::SnapshotMoved;
    for _ in 0..RETRIES {
        let env = Env::open(home, EnvOptions::read_only())?;
        match f(&env) {
            Err(Error::SnapshotMoved) => last = Error::SnapshotMoved,
            other => return other,
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(last)
}

/// The figures of one database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStat {
    /// The magic number of our database files (`DB_MAGIC`), as
    /// `db_stat -d` prints it.
    pub magic: u32,
    /// The database file format version this build reads and writes.
    pub version: u32,
    /// The database's page size in bytes.
    pub page_size: u32,
    /// Key count kept in the meta page.
    pub nkeys: u64,
    /// The walk of the tree; `None` for a fast (meta page only) look.
    pub tree: Option<Stats>,
}

/// Statistics of the database `name` (relative to the data directory) of
/// the environment at `home`. `fast` reads only what the meta page keeps.
pub fn db(home: &Path, name: &str, fast: bool) -> Result<DbStat> {
    with_view(home, |env| {
        let db = env.open_db(name)?;
        env.read(&db, |s| {
            let tree = btree::stats(s)?;
            Ok(DbStat {
                magic: page::DB_MAGIC,
                version: page::DB_VERSION,
                page_size: tree.page_size,
                nkeys: tree.nkeys,
                tree: if fast { None } else { Some(tree) },
            })
        })
    })
}

/// The figures of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStat {
    /// The magic number of our log files, as `db_stat -l` prints it.
    pub magic: u32,
    /// The log file format version this build reads and writes.
    pub version: u32,
    /// The configured maximum size of a log file.
    pub lg_max: u32,
    /// Permission bits of the current log file.
    pub file_mode: u32,
    /// The number of the oldest log file present (0 when there is none).
    pub first_file: u32,
    /// How many log files are present.
    pub files: usize,
    /// Bytes in all present log files.
    pub total_bytes: u64,
    /// The end of the valid log on disk: where the next record goes.
    pub end: Lsn,
    /// The last checkpoint record and its time, if any.
    pub last_ckp: Option<(Lsn, u64)>,
    /// Log bytes written after the last checkpoint record (all of the log
    /// when there is none).
    pub bytes_since_ckp: u64,
}

/// The layout and log files of the environment at `home` (none for an
/// environment in which nothing was ever committed).
fn open_log(home: &Path) -> Result<(SharedVfs, Layout, Vec<u32>)> {
    let vfs = OsVfs::shared();
    let layout = Layout::resolve(&vfs, home)?;
    let files = layout.env_log(&vfs)?.unwrap_or_default();
    Ok((vfs, layout, files))
}

/// The figures of a log that has no file yet.
fn no_log(layout: &Layout) -> LogStat {
    LogStat {
        magic: wal::LOG_MAGIC,
        version: wal::LOG_VERSION,
        lg_max: layout.config.lg_max.unwrap_or(wal::DEFAULT_LG_MAX),
        file_mode: 0,
        first_file: 0,
        files: 0,
        total_bytes: 0,
        end: Lsn::ZERO,
        last_ckp: None,
        bytes_since_ckp: 0,
    }
}

/// Statistics of the log of the environment at `home`.
pub fn log(home: &Path) -> Result<LogStat> {
    let (vfs, layout, files) = open_log(home)?;
    if files.is_empty() {
        return Ok(no_log(&layout));
    }
    let mut cur = LogCursor::open(vfs.clone(), &layout.log_dir)?;
    let end = cur.end()?;
    let ckp = wal::last_checkpoint(&vfs, &layout.log_dir)?;
    let mut sizes = Vec::with_capacity(files.len());
    // The newest file is preallocated: its bytes are its records, up to
    // the end of the log, not its size.
    for &n in &files {
        let len = match n == end.file {
            true => u64::from(end.offset),
            false => vfs.metadata(&layout.log_path(n))?.len,
        };
        sizes.push((n, len));
    }
    let file_mode = vfs
        .metadata(&layout.log_path(end.file.max(files[0])))
        .map(|m| m.mode)
        .unwrap_or(0);
    // Bytes from `from` to the end of the valid log.
    let from = match &ckp {
        Some((lsn, c)) => {
            let len = Record::Checkpoint(c.clone()).encoded_len() as u32;
            Lsn::new(lsn.file, lsn.offset.saturating_add(len))
        }
        None => Lsn::new(files[0], wal::FIRST_RECORD_OFFSET),
    };
    let mut since = 0u64;
    for &(n, len) in &sizes {
        let hi = if n == end.file {
            u64::from(end.offset)
        } else {
            len
        };
        let lo = if n == from.file {
            u64::from(from.offset)
        } else {
            u64::from(wal::FIRST_RECORD_OFFSET)
        };
        if n >= from.file && n <= end.file {
            since += hi.saturating_sub(lo);
        }
    }
    Ok(LogStat {
        magic: wal::LOG_MAGIC,
        version: wal::LOG_VERSION,
        lg_max: created_lg_max(&vfs, &layout, end.file.max(files[0]))
            .or(layout.config.lg_max)
            .unwrap_or(wal::DEFAULT_LG_MAX),
        file_mode,
        first_file: files[0],
        files: files.len(),
        total_bytes: sizes.iter().map(|&(_, l)| l).sum(),
        end,
        last_ckp: ckp.map(|(l, c)| (l, c.timestamp)),
        bytes_since_ckp: since,
    })
}

/// Transactions and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnStat {
    /// The last checkpoint record and its time, if any.
    pub last_ckp: Option<(Lsn, u64)>,
    /// Where recovery would start redo.
    pub redo_lsn: Lsn,
    /// The highest transaction id in the log.
    pub max_txn: TxnId,
    /// Commit records after the last checkpoint's redo point.
    pub commits_since_ckp: u64,
    /// The time of the last commit in the log (unix seconds); `None` when
    /// redo met no commit.
    pub last_commit_time: Option<u64>,
    /// Commits by the current (or last) owner since it opened the
    /// environment, as of its last checkpoint (the region is updated then;
    /// a clean close checkpoints). `None` without a sound region file.
    pub region_commits: Option<u64>,
}

/// Transaction figures of the environment at `home`.
pub fn txn(home: &Path) -> Result<TxnStat> {
    let region = Region::at(&OsVfs::shared(), home).read();
    with_view(home, |env| {
        let o = env.recovery_outcome();
        Ok(TxnStat {
            last_ckp: o.last_ckp.as_ref().map(|(l, c)| (*l, c.timestamp)),
            redo_lsn: o
                .last_ckp
                .as_ref()
                .map(|(_, c)| c.redo_lsn)
                .unwrap_or(Lsn::ZERO),
            max_txn: o.max_txn,
            commits_since_ckp: o.commits,
            last_commit_time: o.last_commit_time,
            region_commits: region.as_ref().map(|r| r.commits),
        })
    })
}

/// The environment as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvStat {
    /// The region file's contents, when it is there and sound.
    pub region: Option<RegionState>,
    /// The region file's size in bytes (fixed for this build).
    pub region_size: usize,
    /// The pid of the live owner, if one holds the environment.
    pub owner: Option<u32>,
    /// The environment id of the log files.
    pub env_id: u64,
    /// Database files, sorted.
    pub databases: Vec<String>,
    /// The log's figures (as `log` gives them).
    pub log: LogStat,
    /// The transaction figures (as `txn` gives them).
    pub txn: TxnStat,
}

/// Everything `db_stat -e` shows for the environment at `home`.
pub fn env(home: &Path) -> Result<EnvStat> {
    let log = log(home)?;
    let txn = txn(home)?;
    let (vfs, layout, files) = open_log(home)?;
    let env_id = match files.is_empty() {
        true => 0,
        false => LogCursor::open(vfs.clone(), &layout.log_dir)?
            .env_id()
            .unwrap_or(0),
    };
    let databases = layout.db_files(&vfs)?.into_iter().map(|f| f.name).collect();
    Ok(EnvStat {
        region: Region::at(&vfs, home).read(),
        region_size: REGION_SIZE,
        owner: live_owner(&vfs, home),
        env_id,
        databases,
        log,
        txn,
    })
}

/// The file size limit the log file `n` was created with, from its header
/// (as Berkeley DB reports the size its log was created with).
fn created_lg_max(vfs: &crate::storage::vfs::SharedVfs, layout: &Layout, n: u32) -> Option<u32> {
    let path = layout.log_path(n);
    let h = vfs.open(&path, crate::storage::vfs::OpenMode::Read).ok()?;
    let mut b = [0u8; wal::FILE_HEADER_SIZE];
    h.read_at(&mut b, 0).ok()?;
    let hdr = wal::FileHeader::decode(&path, &b, n).ok()?;
    (hdr.lg_max != 0).then_some(hdr.lg_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_what_was_written() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::open(d.path(), EnvOptions::create()).unwrap();
        let db = {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", None).unwrap();
            t.commit().unwrap();
            db
        };
        for i in 0..500u32 {
            let mut t = env.begin().unwrap();
            t.put(&db, format!("k{i:06}").as_bytes(), &[b'v'; 100])
                .unwrap();
            t.commit().unwrap();
        }
        // A live owner: the figures come from the log and a read-only view.
        let s = super::db(d.path(), "a.db", false).unwrap();
        assert_eq!(s.nkeys, 500);
        let tree = s.tree.unwrap();
        assert_eq!(tree.entries, 500);
        assert!(tree.levels >= 2 && tree.leaf_pages > 1);
        let t = txn(d.path()).unwrap();
        assert!(t.max_txn.0 >= 501);
        assert_eq!(t.commits_since_ckp, 501);
        let ckp = env.checkpoint().unwrap();
        assert_eq!(txn(d.path()).unwrap().region_commits, Some(501));
        let l = log(d.path()).unwrap();
        assert_eq!(l.last_ckp.map(|c| c.0), Some(ckp));
        assert_eq!(l.bytes_since_ckp, 0);
        assert_eq!(l.end, env.log_end());
        env.close().unwrap();
        let e = super::env(d.path()).unwrap();
        assert_eq!(e.owner, None);
        assert_eq!(e.databases, ["a.db"]);
        assert!(super::db(d.path(), "b.db", false).is_err());
    }

    #[test]
    fn a_directory_without_a_log_is_not_an_environment() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(log(d.path()), Err(Error::NotEnvironment { .. })));
        assert!(matches!(
            super::db(d.path(), "a.db", false),
            Err(Error::NotEnvironment { .. })
        ));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
