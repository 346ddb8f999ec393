//! The region file `__db.001`: a small block of shared state that the owner
//! of an environment keeps current and other processes (the tools) read and,
//! for requests, write. Layout (little-endian, see man/db_format.5):
//!
//! ```text
//! offset size field
//!   0    4   magic "RGN1"
//!   4    4   version (1)
//!   8    4   owner pid (0: no live owner recorded)
//!  12    4   flags (bit 0: clean shutdown)
//!  16    8   environment id (same as in every log header)
//!  24    8   LSN of the last checkpoint record
//!  32    8   redo LSN of the last checkpoint
//!  40    8   time of the last checkpoint (unix seconds)
//!  48    8   checkpoints requested by other processes (counter)
//!  56    8   checkpoints done for those requests (counter)
//!  64    4   backup lease: pid of the backup (0: none)
//!  68    4   backup lease: first log file it still needs
//!  72    8   backup lease: expiry (unix seconds)
//!  80    8   transactions committed since the owner opened
//!  88    8   end of log when last written (LSN)
//!  96    4   crc32 of bytes 0..96
//! ```
//!
//! Every read-modify-write takes an exclusive `flock` on the file, so a tool
//! posting a request and the owner recording a checkpoint never lose each
//! other's update; readers take a shared lock and also check the crc. The
//! region is a cache of facts that can be rebuilt from the log: a missing or
//! damaged region is never an error for the tools, they read the log instead.

use crate::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
use crate::error::{Error, Result};
use crate::types::Lsn;
use fs2::FileExt;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const REGION_FILE: &str = "__db.001";
pub const REGION_SIZE: usize = 100;
const MAGIC: u32 = 0x314e_4752; // "RGN1"
const VERSION: u32 = 1;
const FLAG_CLEAN: u32 = 1;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupLease {
    pub pid: u32,
    pub first_log: u32,
    pub expires: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionState {
    pub owner_pid: u32,
    pub clean_shutdown: bool,
    pub env_id: u64,
    pub last_ckp: Lsn,
    pub ckp_redo: Lsn,
    pub ckp_time: u64,
    pub ckp_requested: u64,
    pub ckp_done: u64,
    pub lease: BackupLease,
    pub commits: u64,
    pub log_end: Lsn,
}

impl RegionState {
    fn encode(&self) -> [u8; REGION_SIZE] {
        let mut b = [0u8; REGION_SIZE];
        put_u32(&mut b, 0, MAGIC);
        put_u32(&mut b, 4, VERSION);
        put_u32(&mut b, 8, self.owner_pid);
        put_u32(&mut b, 12, if self.clean_shutdown { FLAG_CLEAN } else { 0 });
        put_u64(&mut b, 16, self.env_id);
        put_u64(&mut b, 24, self.last_ckp.to_u64());
        put_u64(&mut b, 32, self.ckp_redo.to_u64());
        put_u64(&mut b, 40, self.ckp_time);
        put_u64(&mut b, 48, self.ckp_requested);
        put_u64(&mut b, 56, self.ckp_done);
        put_u32(&mut b, 64, self.lease.pid);
        put_u32(&mut b, 68, self.lease.first_log);
        put_u64(&mut b, 72, self.lease.expires);
        put_u64(&mut b, 80, self.commits);
        put_u64(&mut b, 88, self.log_end.to_u64());
        let c = crc32(&b[..96]);
        put_u32(&mut b, 96, c);
        b
    }

    fn decode(b: &[u8]) -> Option<RegionState> {
        if b.len() < REGION_SIZE
            || get_u32(b, 0) != MAGIC
            || get_u32(b, 4) != VERSION
            || get_u32(b, 96) != crc32(&b[..96])
        {
            return None;
        }
        Some(RegionState {
            owner_pid: get_u32(b, 8),
            clean_shutdown: get_u32(b, 12) & FLAG_CLEAN != 0,
            env_id: get_u64(b, 16),
            last_ckp: Lsn::from_u64(get_u64(b, 24)),
            ckp_redo: Lsn::from_u64(get_u64(b, 32)),
            ckp_time: get_u64(b, 40),
            ckp_requested: get_u64(b, 48),
            ckp_done: get_u64(b, 56),
            lease: BackupLease {
                pid: get_u32(b, 64),
                first_log: get_u32(b, 68),
                expires: get_u64(b, 72),
            },
            commits: get_u64(b, 80),
            log_end: Lsn::from_u64(get_u64(b, 88)),
        })
    }
}

/// A handle on `home/__db.001`.
#[derive(Debug, Clone)]
pub struct Region {
    path: PathBuf,
}

impl Region {
    pub fn at(home: &Path) -> Region {
        Region {
            path: home.join(REGION_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current state, or `None` when there is no valid region file.
    /// Never an error: the region is only a cache of what the log says.
    pub fn read(&self) -> Option<RegionState> {
        let mut f = fs::File::open(&self.path).ok()?;
        f.lock_shared().ok()?;
        let mut b = [0u8; REGION_SIZE];
        let ok = f.read_exact(&mut b).is_ok();
        let _ = FileExt::unlock(&f);
        if ok {
            RegionState::decode(&b)
        } else {
            None
        }
    }

    /// Read-modify-write under an exclusive lock. A missing or invalid
    /// region starts from `RegionState::default()`; only the owner creates
    /// the file (`create`), other processes update an existing one.
    pub fn update<T>(&self, create: bool, f: impl FnOnce(&mut RegionState) -> T) -> Result<T> {
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true);
        if create {
            use std::os::unix::fs::OpenOptionsExt;
            opts.create(true).mode(0o600);
        }
        let mut file = opts
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open", e))?;
        file.lock_exclusive()
            .map_err(|e| Error::io(&self.path, "lock", e))?;
        let mut b = [0u8; REGION_SIZE];
        let mut st = match file.read_exact(&mut b) {
            Ok(()) => RegionState::decode(&b).unwrap_or_default(),
            Err(_) => RegionState::default(),
        };
        let out = f(&mut st);
        let enc = st.encode();
        let res = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&enc));
        let _ = FileExt::unlock(&file);
        res.map_err(|e| Error::io(&self.path, "write", e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_round_trips_and_damage_reads_as_absent() {
        let d = tempfile::tempdir().unwrap();
        let r = Region::at(d.path());
        assert_eq!(r.read(), None);
        r.update(true, |s| {
            s.owner_pid = 42;
            s.last_ckp = Lsn::new(3, 40);
            s.lease.first_log = 2;
        })
        .unwrap();
        let s = r.read().unwrap();
        assert_eq!(
            (s.owner_pid, s.last_ckp, s.lease.first_log),
            (42, Lsn::new(3, 40), 2)
        );
        let n = r.update(false, |s| {
            s.ckp_requested += 1;
            s.ckp_requested
        });
        assert_eq!(n.unwrap(), 1);
        let mut raw = fs::read(r.path()).unwrap();
        raw[30] ^= 1;
        fs::write(r.path(), raw).unwrap();
        assert_eq!(r.read(), None);
    }
}
