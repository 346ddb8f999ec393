//! The owner lock `__db.lock`: one writing process per environment. The
//! file holds an exclusive `flock` for as long as the owner lives and its pid
//! as text, so a second writer can say who is in the way. The kernel drops the
//! lock when the owner dies, however it dies, so a stale lock is impossible.

use crate::error::{Error, Result};
use fs2::FileExt;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const LOCK_FILE: &str = "__db.lock";

/// Held for the owner's lifetime; dropping it releases the lock.
#[derive(Debug)]
pub struct OwnerLock {
    file: fs::File,
    path: PathBuf,
}

impl OwnerLock {
    /// Takes the lock, waiting up to `timeout` for a current owner to leave.
    pub fn acquire(home: &Path, timeout: Duration) -> Result<OwnerLock> {
        let path = home.join(LOCK_FILE);
        let mut file = open_lock_file(&path)?;
        let start = Instant::now();
        loop {
            match file.try_lock_exclusive() {
                Ok(()) => break,
                Err(e) if is_contended(&e) => {
                    if start.elapsed() >= timeout {
                        return Err(Error::Locked {
                            path: home.to_path_buf(),
                            pid: read_pid(&mut file),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(&path, "lock", e)),
            }
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, "write", e))?;
        Ok(OwnerLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// The pid of a live owner, or `None` when nobody holds the lock. Never
/// creates the lock file (read-only tools must not change the home).
pub fn live_owner(home: &Path) -> Option<u32> {
    let path = home.join(LOCK_FILE);
    let mut file = fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = FileExt::unlock(&file);
            None
        }
        Err(_) => Some(read_pid(&mut file)),
    }
}

fn open_lock_file(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, "open", e))
}

fn is_contended(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

fn read_pid(file: &mut fs::File) -> u32 {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    s.trim().parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_times_out_naming_the_first() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(live_owner(d.path()), None);
        let first = OwnerLock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(live_owner(d.path()), Some(std::process::id()));
        match OwnerLock::acquire(d.path(), Duration::from_millis(50)) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert_eq!(live_owner(d.path()), None);
        OwnerLock::acquire(d.path(), Duration::from_millis(50)).unwrap();
    }
}
