//! The history of an environment's log, in `home/__db.history`: every time
//! recovery cuts committed records off the log (a point-in-time recovery,
//! or a catastrophic one that removed log files), the log gets a new
//! history id, and the file records it with the point of the cut. Records
//! written after a cut take LSNs that an earlier copy of the log holds other
//! records at; a hot backup records the id in its manifest, and an update
//! refuses a source one of whose later cuts lies before the end of the
//! backup's log (the backup's log is then no prefix of the source's,
//! whatever its bytes look like). A cut after it changes nothing the backup
//! holds.
//!
//! No file means the history id 0 with no cuts: the history the log was
//! created with. Format (little-endian; man/db_format.5), written to a
//! temporary name, fsynced and renamed into place, the directory fsynced:
//!
//! ```text
//! offset size field
//!   0    4   magic "HST1"
//!   4    4   version (1)
//!   8    4   N, the number of cuts recorded
//!  12   16*N each cut: the history id it began (8), the LSN it cut at (8)
//! 12+16N 4   crc32 of every byte before it
//! ```
//!
//! The current history id is the last cut's (0 without cuts). Only the
//! newest `MAX_CUTS` cuts are kept: a backup older than all of them is
//! refused as of an unknown history.

use crate::error::{Error, Location, Result};
use crate::storage::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use std::path::{Path, PathBuf};

pub const HISTORY_FILE: &str = "__db.history";
const MAGIC: u32 = 0x3154_5348; // "HST1"
const VERSION: u32 = 1;
const HEADER: usize = 12;
const CUT: usize = 16;
/// Cuts kept in the file.
pub const MAX_CUTS: usize = 1000;

/// One cut of the log: the history id it began, and where it cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub id: u64,
    pub at: Lsn,
}

/// The cuts of a log, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub cuts: Vec<Cut>,
}

impl History {
    /// The current history id.
    pub fn id(&self) -> u64 {
        self.cuts.last().map(|c| c.id).unwrap_or(0)
    }

    /// The cuts made since the history `id` began, oldest first; `None`
    /// when `id` is not one this log has had (or its record was dropped).
    pub fn cuts_since(&self, id: u64) -> Option<&[Cut]> {
        if id == 0 {
            // The first history: every cut came after it, unless the
            // oldest ones were dropped.
            return (self.cuts.len() < MAX_CUTS).then_some(&self.cuts[..]);
        }
        let i = self.cuts.iter().position(|c| c.id == id)?;
        Some(&self.cuts[i + 1..])
    }
}

fn path(home: &Path) -> PathBuf {
    home.join(HISTORY_FILE)
}

/// The history of the log of the environment at `home` (no cuts without
/// the file); an error naming the file when it is there but damaged.
pub fn read(vfs: &SharedVfs, home: &Path) -> Result<History> {
    let p = path(home);
    if !vfs.exists(&p) {
        return Ok(History::default());
    }
    let h = vfs.open(&p, OpenMode::Read)?;
    let len = h.len()?;
    let bad = || {
        Error::corrupt(
            &p,
            Location::Whole,
            "not a log history file of this version (damaged?)",
        )
    };
    if len > (HEADER + MAX_CUTS * CUT + 4) as u64 {
        return Err(bad());
    }
    let mut b = vec![0u8; len as usize];
    h.read_at(&mut b, 0)?;
    if b.len() < HEADER + 4 || get_u32(&b, 0) != MAGIC || get_u32(&b, 4) != VERSION {
        return Err(bad());
    }
    let n = get_u32(&b, 8) as usize;
    let end = HEADER + n.min(MAX_CUTS) * CUT;
    if n > MAX_CUTS || b.len() != end + 4 || get_u32(&b, end) != crc32(&b[..end]) {
        return Err(bad());
    }
    let cuts = (0..n)
        .map(|i| HEADER + i * CUT)
        .map(|at| Cut {
            id: get_u64(&b, at),
            at: Lsn::from_u64(get_u64(&b, at + 8)),
        })
        .collect();
    Ok(History { cuts })
}

/// Records that recovery cut the log of `home` at `at`: a new history id,
/// different from every one recorded. Returns it.
pub fn record_cut(vfs: &SharedVfs, home: &Path, at: Lsn) -> Result<u64> {
    let mut hist = read(vfs, home).unwrap_or_default();
    let id = loop {
        let id = new_id();
        if hist.cuts.iter().all(|c| c.id != id) {
            break id;
        }
    };
    hist.cuts.push(Cut { id, at });
    if hist.cuts.len() > MAX_CUTS {
        hist.cuts.remove(0);
    }
    write(vfs, home, &hist)?;
    Ok(id)
}

fn write(vfs: &SharedVfs, home: &Path, hist: &History) -> Result<()> {
    let end = HEADER + hist.cuts.len() * CUT;
    let mut b = vec![0u8; end + 4];
    put_u32(&mut b, 0, MAGIC);
    put_u32(&mut b, 4, VERSION);
    put_u32(&mut b, 8, hist.cuts.len() as u32);
    for (i, c) in hist.cuts.iter().enumerate() {
        put_u64(&mut b, HEADER + i * CUT, c.id);
        put_u64(&mut b, HEADER + i * CUT + 8, c.at.to_u64());
    }
    let c = crc32(&b[..end]);
    put_u32(&mut b, end, c);
    let p = path(home);
    let tmp = home.join(format!(".tmp.{HISTORY_FILE}.{}", std::process::id()));
    if vfs.exists(&tmp) {
        vfs.remove(&tmp)?;
    }
    let h = vfs.open(&tmp, OpenMode::CreateNew(0o644))?;
    let done = h
        .write_at(&b, 0)
        .and_then(|_| h.sync())
        .and_then(|_| vfs.rename(&tmp, &p));
    if done.is_err() {
        let _ = vfs.remove(&tmp);
    }
    done?;
    vfs.sync_dir(home)
}

/// A random nonzero id.
fn new_id() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::OsVfs;

    #[test]
    fn cuts_are_recorded_in_order_and_damage_is_named() {
        let d = tempfile::tempdir().unwrap();
        let vfs = OsVfs::shared();
        let h = read(&vfs, d.path()).unwrap();
        assert_eq!((h.id(), h.cuts_since(0)), (0, Some(&[][..])));
        let a = record_cut(&vfs, d.path(), Lsn::new(3, 100)).unwrap();
        let b = record_cut(&vfs, d.path(), Lsn::new(2, 50)).unwrap();
        assert_ne!(a, b);
        let h = read(&vfs, d.path()).unwrap();
        assert_eq!(h.id(), b);
        let since = |id| {
            h.cuts_since(id)
                .map(|c| c.iter().map(|c| c.at).collect::<Vec<_>>())
        };
        assert_eq!(since(0), Some(vec![Lsn::new(3, 100), Lsn::new(2, 50)]));
        assert_eq!(since(a), Some(vec![Lsn::new(2, 50)]));
        assert_eq!(since(b), Some(vec![]));
        assert_eq!(since(12345), None);
        let p = path(d.path());
        let mut raw = std::fs::read(&p).unwrap();
        raw[13] ^= 1;
        std::fs::write(&p, raw).unwrap();
        let e = read(&vfs, d.path()).unwrap_err().to_string();
        assert!(e.contains(HISTORY_FILE), "{e}");
    }
}
