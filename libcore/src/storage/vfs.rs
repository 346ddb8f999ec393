//! Every file operation of libcore goes through the `Vfs` trait, so tests can
//! put a faulty or power-loss-simulating file system underneath the engine
//! (no global fail points: each environment carries its own `Vfs`).
//!
//! `OsVfs` is the real one. Errors come back as `Error::Io` naming the path.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file with this Unix mode if missing.
    Create(u32),
    /// Read and write; the file must not exist yet.
    CreateNew(u32),
}

/// An open file. Reads and writes are positional so one handle can be shared
/// between threads.
#[allow(clippy::len_without_is_empty)]
pub trait VFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `off`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize>;
    /// Writes all of `buf` at `off`.
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()>;
    fn len(&self) -> Result<u64>;
    fn set_len(&self, len: u64) -> Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync(&self) -> Result<()>;
    fn path(&self) -> &Path;
}

pub trait Vfs: Send + Sync {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>>;
    fn remove(&self, path: &Path) -> Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Makes creations, removals and renames inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Names of the entries of `dir` (not sorted).
    fn list(&self, dir: &Path) -> Result<Vec<OsString>>;
    fn exists(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
    fn create_dir(&self, path: &Path, mode: u32) -> Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> Result<()>;
    /// Gives the file `from` a second name `to` (which must not exist), in
    /// the same file system: `EEXIST` if `to` names another file, even one
    /// another host creates at the same moment on a shared file system
    /// (the create-only primitive of `replica::DirStore`). Durable once
    /// `to`'s directory is synced.
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()>;
}

pub type SharedVfs = Arc<dyn Vfs>;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsVfs;

impl OsVfs {
    pub fn shared() -> SharedVfs {
        Arc::new(OsVfs)
    }
}

struct OsFile {
    file: fs::File,
    path: PathBuf,
}

impl VFile for OsFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, "read", e)),
            }
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.file
            .write_all_at(buf, off)
            .map_err(|e| Error::io(&self.path, "write", e))
    }

    fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(&self.path, "stat", e))
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io(&self.path, "truncate", e))
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, "fsync", e))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Vfs for OsVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        let mut o = fs::OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                o.write(true);
            }
            OpenMode::Create(m) => {
                o.write(true).create(true).mode(m);
            }
            OpenMode::CreateNew(m) => {
                o.write(true).create_new(true).mode(m);
            }
        }
        let file = o.open(path).map_err(|e| Error::io(path, "open", e))?;
        Ok(Box::new(OsFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io(path, "remove", e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(from, "rename", e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, "open directory", e))?;
        d.sync_all()
            .map_err(|e| Error::io(dir, "fsync directory", e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, "read directory", e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(dir, "read directory", e))?;
            out.push(ent.file_name());
        }
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn is_dir(&self, path: &Path) -> bool {
        fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        fs::create_dir(path).map_err(|e| Error::io(path, "mkdir", e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, "chmod", e))
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        fs::remove_dir(path).map_err(|e| Error::io(path, "remove directory", e))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        match fs::hard_link(from, to) {
            Ok(()) => Ok(()),
            // NFS: a LINK whose reply was lost is sent again and then
            // fails with EEXIST although the first one made the link. The
            // two names being one file tells (open(2) on O_EXCL over NFS).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && same_file(from, to) => {
                Ok(())
            }
            Err(e) => Err(Error::io(to, "link", e)),
        }
    }
}

/// True when both paths name the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}
