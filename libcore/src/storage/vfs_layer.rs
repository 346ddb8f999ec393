//! File systems stacked on another one: a wrapper that changes a few
//! operations (fails them on a signal, counts the bytes written, injects a
//! fault, calls a test's hook) implements [`VfsLayer`] and [`FileLayer`],
//! names the file system under it with `lower`, and overrides only what it
//! changes. Every other operation passes straight down, so a new `Vfs`
//! operation is added here once, not in every wrapper, and a wrapper
//! cannot forget to pass one on.

use super::vfs::{FileMeta, LockKind, OpenMode, VFile, Vfs};
use crate::error::Result;
use std::ffi::OsString;
use std::path::Path;
use std::time::SystemTime;

/// A `Vfs` over another one (see the module comment). Every type that
/// implements it is a `Vfs`.
pub trait VfsLayer: Send + Sync {
    /// The file system under this one.
    fn lower(&self) -> &dyn Vfs;

    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        self.lower().open(path, mode)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.lower().remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.lower().rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.lower().sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        self.lower().list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.lower().exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.lower().is_dir(path)
    }
    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        self.lower().create_dir(path, mode)
    }
    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.lower().remove_dir(path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        self.lower().hard_link(from, to)
    }
    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        self.lower().metadata(path)
    }
    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        self.lower().symlink_metadata(path)
    }
}

impl<T: VfsLayer> Vfs for T {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        VfsLayer::open(self, path, mode)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        VfsLayer::remove(self, path)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        VfsLayer::rename(self, from, to)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        VfsLayer::sync_dir(self, dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        VfsLayer::list(self, dir)
    }
    fn exists(&self, path: &Path) -> bool {
        VfsLayer::exists(self, path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        VfsLayer::is_dir(self, path)
    }
    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        VfsLayer::create_dir(self, path, mode)
    }
    fn remove_dir(&self, path: &Path) -> Result<()> {
        VfsLayer::remove_dir(self, path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        VfsLayer::hard_link(self, from, to)
    }
    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        VfsLayer::metadata(self, path)
    }
    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        VfsLayer::symlink_metadata(self, path)
    }
}

/// A `VFile` over another one (see the module comment). Every type that
/// implements it is a `VFile`.
#[allow(clippy::len_without_is_empty)] // as VFile: a length, never "empty"
pub trait FileLayer: Send + Sync {
    /// The open file under this one.
    fn lower(&self) -> &dyn VFile;

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.lower().read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.lower().write_at(buf, off)
    }
    fn len(&self) -> Result<u64> {
        self.lower().len()
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.lower().set_len(len)
    }
    fn sync(&self) -> Result<()> {
        self.lower().sync()
    }
    fn path(&self) -> &Path {
        self.lower().path()
    }
    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        self.lower().try_lock(kind)
    }
    fn unlock(&self) -> Result<()> {
        self.lower().unlock()
    }
    fn meta(&self) -> Result<FileMeta> {
        self.lower().meta()
    }
    fn set_mode(&self, mode: u32) -> Result<()> {
        self.lower().set_mode(mode)
    }
    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        self.lower().set_times(accessed, modified)
    }
    fn write_behind(&self, off: u64, len: u64) -> Result<()> {
        self.lower().write_behind(off, len)
    }
}

impl<T: FileLayer> VFile for T {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        FileLayer::read_at(self, buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        FileLayer::write_at(self, buf, off)
    }
    fn len(&self) -> Result<u64> {
        FileLayer::len(self)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        FileLayer::set_len(self, len)
    }
    fn sync(&self) -> Result<()> {
        FileLayer::sync(self)
    }
    fn path(&self) -> &Path {
        FileLayer::path(self)
    }
    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        FileLayer::try_lock(self, kind)
    }
    fn unlock(&self) -> Result<()> {
        FileLayer::unlock(self)
    }
    fn meta(&self) -> Result<FileMeta> {
        FileLayer::meta(self)
    }
    fn set_mode(&self, mode: u32) -> Result<()> {
        FileLayer::set_mode(self, mode)
    }
    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        FileLayer::set_times(self, accessed, modified)
    }
    fn write_behind(&self, off: u64, len: u64) -> Result<()> {
        FileLayer::write_behind(self, off, len)
    }
}
