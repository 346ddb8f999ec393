//! The manifest `db_hotbackup` writes into a backup: which environment it
//! copies, the checkpoint it started from, the exact consistency point it
//! was recovered to, and a checksum per file. A text file, one `key value`
//! line each (format in man/db_format.5):
//!
//! ```text
//! bdbtools-backup 1
//! env_id 5a17c0ffee0000d1
//! created 1795610749
//! updated 1795610812
//! checkpoint 3/1234
//! start 3/40
//! end 5/9876
//! last_commit 1795610810
//! file 9f3a11c2 1048576 a.db
//! file - 1048576 b.db
//! ```
//!
//! `start` is where redo began (the checkpoint's redo LSN), `end` is the
//! consistency point: the backup holds exactly the transactions committed
//! before it. A `-` checksum marks a data file changed by an incremental
//! update after the checksum was taken (page checksums still cover it:
//! `db_verify`). A backup directory without a manifest is incomplete.

use crate::error::{Error, Location, Result};
use crate::types::Lsn;
use crate::vfs::{OpenMode, SharedVfs};
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "__db.manifest";
const MAGIC_LINE: &str = "bdbtools-backup 1";

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
            Some((_, l)) if l == MAGIC_LINE => {}
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Manifest::parse(p, "hello\n").is_err());
        assert!(Manifest::parse(p, "bdbtools-backup 1\nend 1x2\n").is_err());
        assert!(Manifest::parse(p, "bdbtools-backup 1\nfile 12 3\n").is_err());
    }
}
