//! The manifest `db_hotbackup` writes into a backup: which environment it
//! copies, the checkpoint it started from, the exact consistency point it
//! was recovered to, where the source's log stood, and a checksum per
//! file. A text file, one `key value` line each (format in
//! man/db_format.5):
//!
//! ```text
//! bdbtools-backup 2
//! env_id 5a17c0ffee0000d1
//! created 1795610749
//! updated 1795610812
//! checkpoint 3/1234
//! start 3/40
//! end 5/9876
//! last_commit 1795610810
//! history 0000000000000000
//! last_record 5/9840 1c2d3e4f
//! file 9f3a11c2 1048576 a.db
//! file - 1048576 b.db
//! ```
//!
//! `start` is where redo began (the checkpoint's redo LSN), `end` is the
//! consistency point: the backup holds exactly the transactions committed
//! before it. A `-` checksum marks a data file changed by an incremental
//! update after the checksum was taken (page checksums still cover it:
//! `db_verify`). A backup directory without a manifest is incomplete.
//!
//! `history` is the source's log history id (`history.rs`) when the backup
//! last copied its log, and `last_record` the position of the last record
//! the backup holds with a checksum of it: an update refuses a source whose
//! history id changed (its log was cut since) or whose record there is not
//! the same (its log diverged another way). Version 1 manifests, without
//! these two lines, are still read; their next update writes version 2.

use crate::error::{Error, Location, Result};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use crate::wal::{LogCursor, OnBadRecord};
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "__db.manifest";
const MAGIC_LINE: &str = "bdbtools-backup 2";
/// The first line of manifests written before `history` and `last_record`.
const MAGIC_LINE_V1: &str = "bdbtools-backup 1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the backup directory.
    pub name: String,
    pub size: u64,
    /// `None` when the file changed after its checksum was taken.
    pub crc: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub env_id: u64,
    pub created: u64,
    pub updated: u64,
    pub checkpoint: Lsn,
    pub start: Lsn,
    pub end: Lsn,
    pub last_commit: u64,
    /// The source's log history id when its log was last copied (`None`
    /// in a version 1 manifest).
    pub history: Option<u64>,
    /// The last record the backup's log holds: its LSN and the checksum of
    /// its type, transaction id and payload (`record_crc`).
    pub last_record: Option<(Lsn, u32)>,
    pub files: Vec<FileEntry>,
}

fn lsn_text(l: Lsn) -> String {
    format!("{}/{}", l.file, l.offset)
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(MAGIC_LINE);
        s.push('\n');
        s.push_str(&format!("env_id {:016x}\n", self.env_id));
        s.push_str(&format!("created {}\n", self.created));
        s.push_str(&format!("updated {}\n", self.updated));
        s.push_str(&format!("checkpoint {}\n", lsn_text(self.checkpoint)));
        s.push_str(&format!("start {}\n", lsn_text(self.start)));
        s.push_str(&format!("end {}\n", lsn_text(self.end)));
        s.push_str(&format!("last_commit {}\n", self.last_commit));
        if let Some(h) = self.history {
            s.push_str(&format!("history {h:016x}\n"));
        }
        if let Some((lsn, crc)) = self.last_record {
            s.push_str(&format!("last_record {} {crc:08x}\n", lsn_text(lsn)));
        }
        for f in &self.files {
            let crc = f
                .crc
                .map(|c| format!("{c:08x}"))
                .unwrap_or_else(|| "-".into());
            s.push_str(&format!("file {} {} {}\n", crc, f.size, f.name));
        }
        s
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let bad = |line: usize, what: &str| {
            Error::corrupt(
                path,
                Location::Offset(line as u64),
                format!("manifest line {line}: {what}"),
            )
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l == MAGIC_LINE || l == MAGIC_LINE_V1 => {}
            _ => return Err(bad(1, "not a backup manifest of this version")),
        }
        let mut m = Manifest::default();
        for (i, line) in lines {
            let n = i + 1;
            let (key, rest) = line.split_once(' ').ok_or_else(|| bad(n, "no value"))?;
            let num = |s: &str| s.parse::<u64>().map_err(|_| bad(n, "bad number"));
            let lsn = |s: &str| Lsn::parse_cli(s).ok_or_else(|| bad(n, "bad LSN"));
            match key {
                "env_id" => {
                    m.env_id = u64::from_str_radix(rest, 16).map_err(|_| bad(n, "bad env_id"))?
                }
                "created" => m.created = num(rest)?,
                "updated" => m.updated = num(rest)?,
                "checkpoint" => m.checkpoint = lsn(rest)?,
                "start" => m.start = lsn(rest)?,
                "end" => m.end = lsn(rest)?,
                "last_commit" => m.last_commit = num(rest)?,
                "history" => {
                    m.history =
                        Some(u64::from_str_radix(rest, 16).map_err(|_| bad(n, "bad history id"))?)
                }
                "last_record" => {
                    let (at, crc) = rest
                        .split_once(' ')
                        .ok_or_else(|| bad(n, "last_record needs an LSN and a crc"))?;
                    let crc = u32::from_str_radix(crc, 16).map_err(|_| bad(n, "bad crc"))?;
                    m.last_record = Some((lsn(at)?, crc));
                }
                "file" => {
                    let mut p = rest.splitn(3, ' ');
                    let (Some(c), Some(sz), Some(name)) = (p.next(), p.next(), p.next()) else {
                        return Err(bad(n, "file line needs crc, size and name"));
                    };
                    let crc = if c == "-" {
                        None
                    } else {
                        Some(u32::from_str_radix(c, 16).map_err(|_| bad(n, "bad crc"))?)
                    };
                    m.files.push(FileEntry {
                        name: name.to_string(),
                        size: num(sz)?,
                        crc,
                    });
                }
                _ => return Err(bad(n, "unknown key")),
            }
        }
        Ok(m)
    }

    /// Reads the manifest of `dir`; `Ok(None)` when there is none.
    pub fn read(vfs: &SharedVfs, dir: &Path) -> Result<Option<Manifest>> {
        let path = Manifest::path(dir);
        if !vfs.exists(&path) {
            return Ok(None);
        }
        let h = vfs.open(&path, OpenMode::Read)?;
        let len = h.len()?;
        if len > 64 << 20 {
            return Err(Error::corrupt(
                &path,
                Location::Whole,
                "manifest is implausibly large",
            ));
        }
        let mut buf = vec![0u8; len as usize];
        h.read_at(&mut buf, 0)?;
        let text = String::from_utf8(buf)
            .map_err(|_| Error::corrupt(&path, Location::Whole, "manifest is not text"))?;
        Manifest::parse(&path, &text).map(Some)
    }

    /// Writes atomically: temporary file, fsync, rename, directory fsync.
    pub fn write(&self, vfs: &SharedVfs, dir: &Path) -> Result<()> {
        let path = Manifest::path(dir);
        let tmp = dir.join(format!(".tmp.{}.{}", MANIFEST_FILE, std::process::id()));
        if vfs.exists(&tmp) {
            vfs.remove(&tmp)?;
        }
        let h = vfs.open(&tmp, OpenMode::CreateNew(0o600))?;
        let done = h
            .write_at(self.to_text().as_bytes(), 0)
            .and_then(|_| h.sync())
            .and_then(|_| vfs.rename(&tmp, &path));
        if done.is_err() {
            let _ = vfs.remove(&tmp);
        }
        done?;
        vfs.sync_dir(dir)
    }

    pub fn remove(vfs: &SharedVfs, dir: &Path) -> Result<()> {
        let path = Manifest::path(dir);
        if vfs.exists(&path) {
            vfs.remove(&path)?;
            vfs.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The checksum `last_record` carries: CRC-32 of the record's type code,
/// transaction id (8 bytes, little-endian) and payload; `Ok(None)` when no
/// record starts at `lsn` in the log of `dir` (or its file is not there).
pub fn record_crc(vfs: &SharedVfs, dir: &Path, lsn: Lsn) -> Result<Option<u32>> {
    if !vfs.exists(&crate::wal::log_path(dir, lsn.file)) {
        return Ok(None);
    }
    let mut cur = open_live(vfs, dir, lsn.file)?;
    if cur.seek(lsn).is_err() {
        return Ok(None);
    }
    Ok(match cur.next_raw() {
        Ok(Some(r)) if r.lsn == lsn => Some(crate::storage::codec::crc32_parts(&[
            &[r.ty],
            &r.txn.0.to_le_bytes(),
            r.payload,
        ])),
        _ => None,
    })
}

/// A cursor over the log files of `dir` from `first` on, in a log an owner
/// may be writing. Listing a directory while files are created in it can
/// return a later new file without an earlier one (the earlier name went
/// into a part of the directory the listing had passed), which the cursor
/// takes for a gap: a gap whose file exists is listed again.
pub(crate) fn open_live(vfs: &SharedVfs, dir: &Path, first: u32) -> Result<LogCursor> {
    let mut tries = 0;
    loop {
        match LogCursor::open_from(vfs.clone(), dir, OnBadRecord::EndOfLog, first) {
            Err(Error::LogGap { path }) if vfs.exists(&path) && tries < 10 => tries += 1,
            r => return r,
        }
    }
}

/// The LSN and `record_crc` of the last record before `end` in the log of
/// `dir`; `None` when there is none in the files present.
pub fn last_record(vfs: &SharedVfs, dir: &Path, end: Lsn) -> Result<Option<(Lsn, u32)>> {
    let mut cur = LogCursor::open(vfs.clone(), dir)?;
    if cur.files().is_empty() {
        return Ok(None);
    }
    cur.seek(end)?;
    let Some((lsn, _, _)) = cur.prev()? else {
        return Ok(None);
    };
    Ok(record_crc(vfs, dir, lsn)?.map(|c| (lsn, c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::{OsVfs, Vfs};
    use std::ffi::OsString;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The real file system, whose first directory listing leaves out the
    /// log file before the last, as a listing racing the creation of two
    /// log files can.
    struct RacyListing(AtomicBool);

    impl crate::storage::vfs_layer::VfsLayer for RacyListing {
        fn lower(&self) -> &dyn Vfs {
            &OsVfs
        }

        fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
            let mut names = OsVfs.list(dir)?;
            if self.0.swap(false, Ordering::SeqCst) {
                let logs = crate::wal::list_log_files(&OsVfs::shared(), dir)?;
                let skip = OsString::from(crate::wal::log_name(logs[logs.len() - 2]));
                names.retain(|n| *n != skip);
            }
            Ok(names)
        }
    }

    /// A listing of a live log that misses a file the owner just created
    /// (while it lists a later one) is no gap: the record is still found.
    #[test]
    fn a_listing_that_races_a_new_log_file_is_taken_again() {
        let d = tempfile::tempdir().unwrap();
        let mut o = crate::engine::env::EnvOptions::create();
        o.lg_max = Some(4096);
        let env = crate::engine::env::Env::open(d.path(), o).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        for i in 0..200u32 {
            t.put(&a, &i.to_be_bytes(), &[1u8; 100]).unwrap();
        }
        t.commit().unwrap();
        let os = OsVfs::shared();
        let end = crate::wal::LogCursor::open(os.clone(), d.path())
            .unwrap()
            .end()
            .unwrap();
        let (lsn, crc) = last_record(&os, d.path(), end).unwrap().unwrap();
        let first = crate::wal::list_log_files(&os, d.path()).unwrap()[0];
        assert!(lsn.file > first + 1, "several log files");
        let racy: SharedVfs = std::sync::Arc::new(RacyListing(AtomicBool::new(true)));
        let first_rec = Lsn::new(first, crate::wal::FIRST_RECORD_OFFSET);
        assert!(record_crc(&racy, d.path(), first_rec).unwrap().is_some());
        let racy: SharedVfs = std::sync::Arc::new(RacyListing(AtomicBool::new(true)));
        assert_eq!(record_crc(&racy, d.path(), lsn).unwrap(), Some(crc));
    }

    #[test]
    fn manifest_round_trips_and_rejects_garbage() {
        let m = Manifest {
            env_id: 0xabc,
            created: 1,
            updated: 2,
            checkpoint: Lsn::new(3, 1234),
            start: Lsn::new(3, 40),
            end: Lsn::new(5, 9876),
            last_commit: 7,
            history: Some(0x1234_5678_9abc_def0),
            last_record: Some((Lsn::new(5, 9800), 0xfeed_f00d)),
            files: vec![
                FileEntry {
                    name: "a.db".into(),
                    size: 4096,
                    crc: Some(0xdead_beef),
                },
                FileEntry {
                    name: "data/b c.db".into(),
                    size: 0,
                    crc: None,
                },
            ],
        };
        let p = Path::new("m");
        assert_eq!(Manifest::parse(p, &m.to_text()).unwrap(), m);
        assert!(m.to_text().starts_with("bdbtools-backup 2\n"));
        // Version 1: no history, no last record.
        let v1 = "bdbtools-backup 1\nenv_id 0000000000000abc\nend 5/9876\nfile - 0 a.db\n";
        let old = Manifest::parse(p, v1).unwrap();
        assert_eq!(
            (old.history, old.last_record, old.end),
            (None, None, Lsn::new(5, 9876))
        );
        assert!(Manifest::parse(p, "bdbtools-backup 2\nlast_record 1/40\n").is_err());
        assert!(Manifest::parse(p, "hello\n").is_err());
        assert!(Manifest::parse(p, "bdbtools-backup 1\nend 1x2\n").is_err());
        assert!(Manifest::parse(p, "bdbtools-backup 1\nfile 12 3\n").is_err());
    }
}
