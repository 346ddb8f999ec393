//! Stopping a long operation when the operator asks (Ctrl-C, `kill`): a
//! tool's signal handler raises a flag, and [`StopVfs`], the file system
//! the operation runs on, fails every operation that reads or writes file
//! data from then on with `EINTR`, naming the file. The operation unwinds
//! through its ordinary error path, as after any failed read or write.
//! Removals, renames, listings and directory fsyncs still work, so the
//! caller can clean up what it made (and finish a step that must not stop
//! half way) before it reports. libcore never installs a signal handler
//! itself: it never prints and never exits.

use crate::error::{Error, Result};
use crate::storage::vfs::{OpenMode, SharedVfs, VFile, Vfs};
use crate::storage::vfs_layer::{FileLayer, VfsLayer};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Raised (made non-zero, usually the signal number) to stop.
pub type StopFlag = Arc<AtomicUsize>;

/// errno of an interrupted call (Linux).
const EINTR: i32 = 4;

/// True once `flag` is raised.
pub fn raised(flag: &AtomicUsize) -> bool {
    flag.load(Ordering::SeqCst) != 0
}

/// A `Vfs` whose data operations fail once its flag is raised.
pub struct StopVfs {
    inner: SharedVfs,
    flag: StopFlag,
}

impl StopVfs {
    pub fn shared(inner: SharedVfs, flag: StopFlag) -> SharedVfs {
        Arc::new(StopVfs { inner, flag })
    }
}

fn check(flag: &AtomicUsize, path: &Path, op: &'static str) -> Result<()> {
    if raised(flag) {
        return Err(Error::io(
            path,
            op,
            std::io::Error::from_raw_os_error(EINTR),
        ));
    }
    Ok(())
}

struct StopFile {
    inner: Box<dyn VFile>,
    flag: StopFlag,
}

// Locks, metadata, permission bits and times are not file data, and
// neither are removals, renames, listings and directory fsyncs: they pass,
// so cleaning up (and giving back a lease) still works.
impl FileLayer for StopFile {
    fn lower(&self) -> &dyn VFile {
        &*self.inner
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        check(&self.flag, self.inner.path(), "read")?;
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        check(&self.flag, self.inner.path(), "write")?;
        self.inner.write_at(buf, off)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        check(&self.flag, self.inner.path(), "truncate")?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<()> {
        check(&self.flag, self.inner.path(), "fsync")?;
        self.inner.sync()
    }
}

impl VfsLayer for StopVfs {
    fn lower(&self) -> &dyn Vfs {
        &*self.inner
    }

    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        check(&self.flag, path, "open")?;
        Ok(Box::new(StopFile {
            inner: self.inner.open(path, mode)?,
            flag: self.flag.clone(),
        }))
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        check(&self.flag, path, "mkdir")?;
        self.inner.create_dir(path, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::OsVfs;

    #[test]
    fn data_operations_fail_once_raised_and_cleanup_still_works() {
        let d = tempfile::tempdir().unwrap();
        let flag = StopFlag::default();
        let vfs = StopVfs::shared(OsVfs::shared(), flag.clone());
        let p = d.path().join("f");
        let f = vfs.open(&p, OpenMode::CreateNew(0o600)).unwrap();
        f.write_at(b"abc", 0).unwrap();
        flag.store(2, Ordering::SeqCst);
        let e = f.write_at(b"d", 3).unwrap_err();
        assert!(matches!(&e, Error::Io { source, .. } if source.raw_os_error() == Some(EINTR)));
        assert!(vfs.open(&p, OpenMode::Read).is_err());
        assert!(f.sync().is_err());
        drop(f);
        vfs.remove(&p).unwrap();
        vfs.sync_dir(d.path()).unwrap();
        assert!(!vfs.exists(&p));
    }
}
