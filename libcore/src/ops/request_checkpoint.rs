//! Checkpoints asked for from outside the owner process (`db_checkpoint`,
//! `db_hotbackup -c`). When an owner holds the environment, the request is
//! posted in the region and the owner's housekeeping thread takes it (the owner
//! alone may write pages and log records); otherwise this process becomes
//! the owner for the length of one checkpoint.

use crate::engine::env::{Env, EnvOptions};
use crate::engine::owner::live_owner;
use crate::engine::region::Region;
use crate::error::{Error, Result};
use crate::storage::vfs::SharedVfs;
use crate::types::Lsn;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// By the live owner (its pid), on our request.
    ByOwner(u32),
    /// By this process, with no owner running.
    Here,
    /// Not at all: the environment has no log (its creation was
    /// interrupted before anything was committed), so there is nothing to
    /// checkpoint, and nothing is written.
    NothingCommitted,
}

/// Takes a checkpoint of the environment at `home` and returns its LSN.
/// Waits up to `timeout` for a live owner to answer.
pub fn checkpoint(home: &Path, timeout: Duration) -> Result<(Lsn, Taken)> {
    let vfs = crate::storage::vfs::OsVfs::shared();
    if let Some(pid) = live_owner(&vfs, home) {
        return request_from_owner(&vfs, home, pid, timeout).map(|l| (l, Taken::ByOwner(pid)));
    }
    if crate::storage::layout::Layout::resolve(&vfs, home)?
        .env_log(&vfs)?
        .is_none()
    {
        return Ok((Lsn::ZERO, Taken::NothingCommitted));
    }
    let opts = EnvOptions {
        serve_requests: false,
        lock_timeout: timeout,
        ..EnvOptions::default()
    };
    let env = match Env::open(home, opts) {
        Ok(e) => e,
        // An owner appeared between our look and our open: ask it.
        Err(Error::Locked { pid, .. }) => {
            return request_from_owner(&vfs, home, pid, timeout).map(|l| (l, Taken::ByOwner(pid)))
        }
        Err(e) => return Err(e),
    };
    let lsn = env.checkpoint()?;
    env.close()?;
    Ok((lsn, Taken::Here))
}

fn request_from_owner(vfs: &SharedVfs, home: &Path, pid: u32, timeout: Duration) -> Result<Lsn> {
    let region = Region::at(vfs, home);
    let ticket = region.update(false, |s| {
        s.ckp_requested += 1;
        s.ckp_requested
    })?;
    let start = Instant::now();
    loop {
        if let Some(s) = region.read() {
            if s.ckp_done >= ticket {
                return Ok(s.last_ckp);
            }
        }
        if live_owner(vfs, home).is_none() {
            return Err(Error::invalid(format!(
                "{}: the owner (pid {pid}) exited before taking the checkpoint",
                home.display()
            )));
        }
        if start.elapsed() > timeout {
            return Err(Error::invalid(format!(
                "{}: the owner (pid {pid}) did not take the checkpoint within {} s",
                home.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_is_taken_here_or_by_the_live_owner() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::open(d.path(), EnvOptions::create()).unwrap();
        {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", None).unwrap();
            t.put(&db, b"k", b"v").unwrap();
            t.commit().unwrap();
        }
        let before = env.last_checkpoint();
        let (lsn, how) = checkpoint(d.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(how, Taken::ByOwner(std::process::id()));
        assert!(lsn > before);
        assert_eq!(env.last_checkpoint(), lsn);
        env.close().unwrap();
        let (lsn2, how) = checkpoint(d.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(how, Taken::Here);
        assert!(lsn2 > lsn);
    }
}
