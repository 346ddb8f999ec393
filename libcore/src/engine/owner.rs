//! The owner lock `__db.lock`: one writing process per environment. The
//! file holds an exclusive `flock` for as long as the owner lives and its pid
//! as text, so a second writer can say who is in the way. The kernel drops the
//! lock when the owner dies, however it dies, so a stale lock is impossible.
//!
//! Inside one process `flock` cannot tell a second owner from the first (a
//! second open file conflicts with the first like another process's), so
//! waiting would only time out and name our own pid. The process keeps the
//! set of lock files it holds, and a second acquire in the same process
//! fails at once with `Error::Misuse`. The set is keyed by the lock
//! file's identity as the `Vfs` reports it (device, inode).
//!
//! Everything here goes through the environment's `Vfs` (opening the file,
//! the lock, its identity, the pid), so the fault and power-loss file
//! systems see the lock file too; the power-loss one drops every lock at a
//! power loss, as a real machine's reboot does.

use crate::error::{Error, Result};
use crate::storage::vfs::{LockKind, OpenMode, SharedVfs, VFile};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lock files (device, inode) this process holds.
static HELD: Mutex<Option<HashSet<(u64, u64)>>> = Mutex::new(None);

fn held() -> std::sync::MutexGuard<'static, Option<HashSet<(u64, u64)>>> {
    super::lock(&HELD)
}

pub const LOCK_FILE: &str = "__db.lock";

/// Held for the owner's lifetime; dropping it releases the lock.
pub struct OwnerLock {
    file: Box<dyn VFile>,
    key: (u64, u64),
}

impl std::fmt::Debug for OwnerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerLock")
            .field("path", &self.file.path())
            .finish()
    }
}

impl OwnerLock {
    /// Takes the lock, waiting up to `timeout` for a current owner to leave.
    pub fn acquire(vfs: &SharedVfs, home: &Path, timeout: Duration) -> Result<OwnerLock> {
        let path = home.join(LOCK_FILE);
        let file = vfs.open(&path, OpenMode::Create(0o600))?;
        let meta = file.meta()?;
        let key = (meta.dev, meta.ino);
        let start = Instant::now();
        loop {
            if held().as_ref().is_some_and(|h| h.contains(&key)) {
                return Err(Error::misuse(format!(
                    "{}: already open in this process (pid {}); share that handle instead of opening it again",
                    home.display(),
                    std::process::id()
                )));
            }
            if file.try_lock(LockKind::Exclusive)? {
                held().get_or_insert_with(HashSet::new).insert(key);
                break;
            }
            if start.elapsed() >= timeout {
                return Err(Error::Locked {
                    path: home.to_path_buf(),
                    pid: read_pid(file.as_ref()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = write_pid(file.as_ref()) {
            forget(key);
            let _ = file.unlock();
            return Err(e);
        }
        Ok(OwnerLock { file, key })
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
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
pub fn live_owner(vfs: &SharedVfs, home: &Path) -> Option<u32> {
    let path = home.join(LOCK_FILE);
    let file = vfs.open(&path, OpenMode::Read).ok()?;
    match file.try_lock(LockKind::Shared) {
        Ok(true) => {
            let _ = file.unlock();
            None
        }
        Ok(false) | Err(_) => Some(read_pid(file.as_ref())),
    }
}

/// Replaces the lock file's text with this process's pid.
fn write_pid(file: &dyn VFile) -> Result<()> {
    let pid = std::process::id().to_string();
    file.set_len(0)?;
    file.write_at(pid.as_bytes(), 0)
}

fn read_pid(file: &dyn VFile) -> u32 {
    let mut b = [0u8; 16];
    let n = file.read_at(&mut b, 0).unwrap_or(0);
    std::str::from_utf8(&b[..n])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::OsVfs;

    /// A second owner in the same process waited out the whole timeout
    /// (10 s for an `Env::open`) and then named its own pid as the owner in
    /// the way: it must fail at once and say what happened.
    #[test]
    fn a_second_owner_in_the_same_process_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        let vfs = OsVfs::shared();
        assert_eq!(live_owner(&vfs, d.path()), None);
        let first = OwnerLock::acquire(&vfs, d.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(live_owner(&vfs, d.path()), Some(std::process::id()));
        let t = Instant::now();
        match OwnerLock::acquire(&vfs, d.path(), Duration::from_secs(30)) {
            Err(Error::Misuse(m)) => assert!(m.contains("already open in this process"), "{m}"),
            other => panic!("expected Misuse, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(5), "it waited");
        drop(first);
        assert_eq!(live_owner(&vfs, d.path()), None);
        OwnerLock::acquire(&vfs, d.path(), Duration::from_millis(50)).unwrap();
    }
}
