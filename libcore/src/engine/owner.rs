//! The owner lock `__db.lock`: one writing process per environment. The
//! file holds an exclusive `flock` for as long as the owner lives and its pid
//! as text, so a second writer can say who is in the way. The kernel drops the
//! lock when the owner dies, however it dies, so a stale lock is impossible.
//!
//! Inside one process `flock` cannot tell a second owner from the first (a
//! second open file conflicts with the first like another process's), so
//! waiting would only time out and name our own pid. The process keeps the
//! set of lock files it holds, and a second acquire in the same process
//! fails at once with `Error::Misuse`.

use crate::error::{Error, Result};
use fs2::FileExt;
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lock files (device, inode) this process holds.
static HELD: Mutex<Option<HashSet<(u64, u64)>>> = Mutex::new(None);

fn held() -> std::sync::MutexGuard<'static, Option<HashSet<(u64, u64)>>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

pub const LOCK_FILE: &str = "__db.lock";

/// Held for the owner's lifetime; dropping it releases the lock.
#[derive(Debug)]
pub struct OwnerLock {
    file: fs::File,
    key: (u64, u64),
}

impl OwnerLock {
    /// Takes the lock, waiting up to `timeout` for a current owner to leave.
    pub fn acquire(home: &Path, timeout: Duration) -> Result<OwnerLock> {
        let path = home.join(LOCK_FILE);
        let mut file = open_lock_file(&path)?;
        let meta = file.metadata().map_err(|e| Error::io(&path, "stat", e))?;
        let key = (meta.dev(), meta.ino());
        let start = Instant::now();
        loop {
            if held().as_ref().is_some_and(|h| h.contains(&key)) {
                return Err(Error::misuse(format!(
                    "{}: already open in this process (pid {}); share that handle instead of opening it again",
                    home.display(),
                    std::process::id()
                )));
            }
            match file.try_lock_exclusive() {
                Ok(()) => {
                    held().get_or_insert_with(HashSet::new).insert(key);
                    break;
                }
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
        let pid = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, "write", e));
        if let Err(e) = pid {
            forget(key);
            let _ = FileExt::unlock(&file);
            return Err(e);
        }
        Ok(OwnerLock { file, key })
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
        forget(self.key);
    }
}

fn forget(key: (u64, u64)) {
    if let Some(h) = held().as_mut() {
        h.remove(&key);
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

    /// A second owner in the same process waited out the whole timeout
    /// (10 s for an `Env::open`) and then named its own pid as the owner in
    /// the way: it must fail at once and say what happened.
    #[test]
    fn a_second_owner_in_the_same_process_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(live_owner(d.path()), None);
        let first = OwnerLock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(live_owner(d.path()), Some(std::process::id()));
        let t = Instant::now();
        match OwnerLock::acquire(d.path(), Duration::from_secs(30)) {
            Err(Error::Misuse(m)) => assert!(m.contains("already open in this process"), "{m}"),
            other => panic!("expected Misuse, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(5), "it waited");
        drop(first);
        assert_eq!(live_owner(d.path()), None);
        OwnerLock::acquire(d.path(), Duration::from_millis(50)).unwrap();
    }
}
