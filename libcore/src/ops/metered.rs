//! A `Vfs` that tells a [`Progress`] about every byte written through it:
//! how a restore shows the base files a replica store streams into the
//! home (the store writes them; it knows nothing of progress). Everything
//! else passes straight through, so the fault models under it see the
//! same operations.

use crate::error::Result;
use crate::progress::Progress;
use crate::storage::vfs::{FileMeta, LockKind, OpenMode, SharedVfs, VFile, Vfs};
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Writes through it advance `progress` by their length.
pub struct WriteMeter {
    inner: SharedVfs,
    progress: Arc<dyn Progress>,
}

impl WriteMeter {
    pub fn new(inner: SharedVfs, progress: Arc<dyn Progress>) -> WriteMeter {
        WriteMeter { inner, progress }
    }
}

struct MeteredFile {
    inner: Box<dyn VFile>,
    progress: Arc<dyn Progress>,
}

impl VFile for MeteredFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.inner.write_at(buf, off)?;
        crate::progress::advance(Some(&*self.progress), buf.len() as u64);
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        self.inner.try_lock(kind)
    }

    fn unlock(&self) -> Result<()> {
        self.inner.unlock()
    }

    fn meta(&self) -> Result<FileMeta> {
        self.inner.meta()
    }

    fn set_mode(&self, mode: u32) -> Result<()> {
        self.inner.set_mode(mode)
    }

    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        self.inner.set_times(accessed, modified)
    }
}

impl Vfs for WriteMeter {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        Ok(Box::new(MeteredFile {
            inner: self.inner.open(path, mode)?,
            progress: self.progress.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.inner.sync_dir(dir)
    }

    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        self.inner.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.inner.remove_dir(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.hard_link(from, to)
    }

    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        self.inner.metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        self.inner.symlink_metadata(path)
    }
}
