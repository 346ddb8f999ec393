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
///
/// A layer that counts the files opened for writing, under the real file
/// system, handed to an environment as its file system:
///
/// ```rust
/// use libcore::{Env, EnvOptions, OpenMode, OsVfs, SharedVfs, VFile, Vfs, VfsLayer};
/// use std::path::Path;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// struct CountWriters {
///     lower: SharedVfs,
///     opened_for_write: AtomicU64,
/// }
///
/// impl VfsLayer for CountWriters {
///     fn lower(&self) -> &dyn Vfs {
///         self.lower.as_ref()
///     }
///     // The one operation this layer changes; every other passes down.
///     fn open(&self, path: &Path, mode: OpenMode) -> libcore::Result<Box<dyn VFile>> {
///         if mode != OpenMode::Read {
///             self.opened_for_write.fetch_add(1, Ordering::Relaxed);
///         }
///         self.lower.open(path, mode)
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let counter = Arc::new(CountWriters {
///     lower: OsVfs::shared(),
///     opened_for_write: AtomicU64::new(0),
/// });
/// let opts = EnvOptions {
///     vfs: Some(counter.clone()),
///     ..EnvOptions::create()
/// };
/// let env = Env::open(dir.path(), opts).unwrap();
/// env.close().unwrap();
/// assert!(counter.opened_for_write.load(Ordering::Relaxed) > 0);
/// ```
pub trait VfsLayer: Send + Sync {
    /// The file system under this one.
    fn lower(&self) -> &dyn Vfs;

    /// As [`Vfs::open`]; passes straight down unless overridden.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        self.lower().open(path, mode)
    }
    /// As [`Vfs::remove`]; passes straight down unless overridden.
    fn remove(&self, path: &Path) -> Result<()> {
        self.lower().remove(path)
    }
    /// As [`Vfs::rename`]; passes straight down unless overridden.
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.lower().rename(from, to)
    }
    /// As [`Vfs::sync_dir`]; passes straight down unless overridden.
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.lower().sync_dir(dir)
    }
    /// As [`Vfs::list`]; passes straight down unless overridden.
    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        self.lower().list(dir)
    }
    /// As [`Vfs::exists`]; passes straight down unless overridden.
    fn exists(&self, path: &Path) -> bool {
        self.lower().exists(path)
    }
    /// As [`Vfs::is_dir`]; passes straight down unless overridden.
    fn is_dir(&self, path: &Path) -> bool {
        self.lower().is_dir(path)
    }
    /// As [`Vfs::create_dir`]; passes straight down unless overridden.
    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        self.lower().create_dir(path, mode)
    }
    /// As [`Vfs::remove_dir`]; passes straight down unless overridden.
    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.lower().remove_dir(path)
    }
    /// As [`Vfs::hard_link`]; passes straight down unless overridden.
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        self.lower().hard_link(from, to)
    }
    /// As [`Vfs::metadata`]; passes straight down unless overridden.
    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        self.lower().metadata(path)
    }
    /// As [`Vfs::symlink_metadata`]; passes straight down unless overridden.
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

    /// As [`VFile::read_at`]; passes straight down unless overridden.
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.lower().read_at(buf, off)
    }
    /// As [`VFile::write_at`]; passes straight down unless overridden.
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.lower().write_at(buf, off)
    }
    /// As [`VFile::len`]; passes straight down unless overridden.
    fn len(&self) -> Result<u64> {
        self.lower().len()
    }
    /// As [`VFile::set_len`]; passes straight down unless overridden.
    fn set_len(&self, len: u64) -> Result<()> {
        self.lower().set_len(len)
    }
    /// As [`VFile::sync`]; passes straight down unless overridden.
    fn sync(&self) -> Result<()> {
        self.lower().sync()
    }
    /// As [`VFile::path`]; passes straight down unless overridden.
    fn path(&self) -> &Path {
        self.lower().path()
    }
    /// As [`VFile::try_lock`]; passes straight down unless overridden.
    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        self.lower().try_lock(kind)
    }
    /// As [`VFile::unlock`]; passes straight down unless overridden.
    fn unlock(&self) -> Result<()> {
        self.lower().unlock()
    }
    /// As [`VFile::meta`]; passes straight down unless overridden.
    fn meta(&self) -> Result<FileMeta> {
        self.lower().meta()
    }
    /// As [`VFile::set_mode`]; passes straight down unless overridden.
    fn set_mode(&self, mode: u32) -> Result<()> {
        self.lower().set_mode(mode)
    }
    /// As [`VFile::set_times`]; passes straight down unless overridden.
    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        self.lower().set_times(accessed, modified)
    }
    /// As [`VFile::write_behind`]; passes straight down unless overridden.
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
