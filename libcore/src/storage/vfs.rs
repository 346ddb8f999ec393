//! Every file operation of libcore goes through the `Vfs` trait, so tests can
//! put a faulty or power-loss-simulating file system underneath the engine
//! (no global fail points: each environment carries its own `Vfs`).
//!
//! `OsVfs` is the real one. Errors come back as `Error::Io` naming the path.
//!
//! Besides data and names, the trait carries what the owner lock, the
//! region and the copies need: advisory whole-file locks (`flock`: held by
//! an open file, released when it closes or the process dies), a file's
//! metadata (size, permission bits, times, identity) and setting its
//! permission bits and times. So those files, too, run under the test
//! file systems (faults, power loss).

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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

/// An advisory whole-file lock (`flock(2)`): any number of shared ones, or
/// one exclusive one. It belongs to the open file that took it (a second
/// open of the same file, even in the same process, conflicts with it) and
/// goes when that file is closed or its process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Readers' lock: any number of open files may hold one at once, and
    /// none while an exclusive one is held.
    Shared,
    /// Owner's lock: held by one open file only, and only while no shared
    /// one is held.
    Exclusive,
}

/// What a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only `symlink_metadata` reports one; `metadata`
    /// follows it).
    Symlink,
    /// Anything else: a device, a FIFO, a socket.
    Other,
}

/// A file's metadata (`stat(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// What the name is: a file, a directory, a link or something else.
    pub file_type: FileType,
    /// The size in bytes (`st_size`).
    pub len: u64,
    /// Permission bits (`st_mode & 07777`).
    pub mode: u32,
    /// The last access time (`st_atime`; the Unix epoch when the file
    /// system does not keep it).
    pub accessed: SystemTime,
    /// The last modification time (`st_mtime`; the Unix epoch when the
    /// file system does not keep it).
    pub modified: SystemTime,
    /// The device the file lives on: with `ino`, two names with the same
    /// pair are one file.
    pub dev: u64,
    /// The inode number on `dev`.
    pub ino: u64,
}

impl FileMeta {
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type == FileType::File
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Dir
    }

    /// True when both describe the same file (device and inode).
    pub fn same_file(&self, other: &FileMeta) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// An open file. Reads and writes are positional so one handle can be shared
/// between threads.
#[allow(clippy::len_without_is_empty)]
pub trait VFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `off`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize>;
    /// Writes all of `buf` at `off`.
    fn write_at(&self, buf: &[u8], off: u64) -> Result<()>;
    /// The file's current size in bytes.
    fn len(&self) -> Result<u64>;
    /// Truncates or extends (with zeros) the file to `len` bytes; durable
    /// only after `sync`.
    fn set_len(&self, len: u64) -> Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync(&self) -> Result<()>;
    /// The path the file was opened by, for error messages.
    fn path(&self) -> &Path;
    /// Takes the lock without waiting: `Ok(false)` when another open file
    /// holds a conflicting one (waiting, with a bound, is the caller's
    /// loop). Taking the other kind while holding one converts it.
    fn try_lock(&self, kind: LockKind) -> Result<bool>;
    /// Releases this file's lock (closing the file does too).
    fn unlock(&self) -> Result<()>;
    /// The open file's metadata (`fstat`).
    fn meta(&self) -> Result<FileMeta>;
    /// Sets the permission bits (`fchmod`).
    fn set_mode(&self, mode: u32) -> Result<()>;
    /// Sets the access and modification times.
    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()>;
    /// Advice, never needed for correctness: starts writing the `len`
    /// bytes at `off` (already written with `write_at`) to disk without
    /// waiting for them, and lets the cache drop those of them already on
    /// disk. A copy calls it behind its writes so its dirty data stays
    /// small (the final `sync` is cheap, and a primary's fsync on the same
    /// disk never waits behind a flood of it) and so it does not push the
    /// primary's pages out of the cache. The data is durable only after
    /// `sync`, exactly as without it. Does nothing unless a file system
    /// has such a tool.
    fn write_behind(&self, off: u64, len: u64) -> Result<()> {
        let _ = (off, len);
        Ok(())
    }
}

/// A file system: names, directories and opening files. The engine, the
/// tools' operations and the replica directory store do all their file I/O
/// through one, so a test can swap in a faulty or power-loss-simulating
/// one (see `VfsLayer` for wrapping one). Every error is an `Error::Io`
/// naming the path; a missing name gives one whose `is_not_found()` is
/// true.
pub trait Vfs: Send + Sync {
    /// Opens (or creates, as `mode` says) the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>>;
    /// Removes the name `path` (not a directory); durable once its
    /// directory is synced.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Renames `from` to `to` atomically, replacing `to` if it exists;
    /// durable once the directories are synced.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Makes creations, removals and renames inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Names of the entries of `dir` (not sorted).
    fn list(&self, dir: &Path) -> Result<Vec<OsString>>;
    /// True when `path` names anything (a dangling symbolic link too);
    /// false also when it cannot be looked up.
    fn exists(&self, path: &Path) -> bool;
    /// True when `path` is a directory or a link to one; false also when
    /// it cannot be looked up.
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates the directory `path` (its parent must exist) with the
    /// permission bits `mode`.
    fn create_dir(&self, path: &Path, mode: u32) -> Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> Result<()>;
    /// Gives the file `from` a second name `to` (which must not exist), in
    /// the same file system: `EEXIST` if `to` names another file, even one
    /// another host creates at the same moment on a shared file system
    /// (the create-only primitive of `replica::DirStore`). Durable once
    /// `to`'s directory is synced.
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()>;
    /// The metadata of the file `path` names, following symbolic links.
    fn metadata(&self, path: &Path) -> Result<FileMeta>;
    /// The metadata of `path` itself (a symbolic link is not followed).
    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta>;
}

/// A file system shared by every handle of an environment (and its
/// threads): what `EnvOptions` and the tool operations take.
pub type SharedVfs = Arc<dyn Vfs>;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsVfs;

impl OsVfs {
    /// The real file system, ready to hand to an environment or a tool
    /// operation.
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

    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        let r = match kind {
            LockKind::Shared => fs2::FileExt::try_lock_shared(&self.file),
            LockKind::Exclusive => fs2::FileExt::try_lock_exclusive(&self.file),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if is_contended(&e) => Ok(false),
            Err(e) => Err(Error::io(&self.path, "lock", e)),
        }
    }

    fn unlock(&self) -> Result<()> {
        fs2::FileExt::unlock(&self.file).map_err(|e| Error::io(&self.path, "unlock", e))
    }

    fn meta(&self) -> Result<FileMeta> {
        self.file
            .metadata()
            .map(|m| file_meta(&m))
            .map_err(|e| Error::io(&self.path, "stat", e))
    }

    fn set_mode(&self, mode: u32) -> Result<()> {
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&self.path, "chmod", e))
    }

    fn write_behind(&self, off: u64, len: u64) -> Result<()> {
        // posix_fadvise(DONTNEED) starts an asynchronous write-out of the
        // range's dirty pages and drops its clean ones (Linux mm/fadvise.c);
        // rustix wraps it safely (libcore has no unsafe code).
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        rustix::fs::fadvise(&self.file, off, Some(len), rustix::fs::Advice::DontNeed)
            .map_err(|e| Error::io(&self.path, "fadvise", e.into()))
    }

    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        let times = fs::FileTimes::new()
            .set_accessed(accessed)
            .set_modified(modified);
        self.file
            .set_times(times)
            .map_err(|e| Error::io(&self.path, "utimes", e))
    }
}

/// True when a lock attempt failed only because another file holds it.
fn is_contended(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

fn file_meta(m: &fs::Metadata) -> FileMeta {
    let t = m.file_type();
    let file_type = if t.is_file() {
        FileType::File
    } else if t.is_dir() {
        FileType::Dir
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Other
    };
    FileMeta {
        file_type,
        len: m.len(),
        mode: m.mode() & 0o7777,
        accessed: m.accessed().unwrap_or(SystemTime::UNIX_EPOCH),
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        dev: m.dev(),
        ino: m.ino(),
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

    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        fs::metadata(path)
            .map(|m| file_meta(&m))
            .map_err(|e| Error::io(path, "stat", e))
    }

    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        fs::symlink_metadata(path)
            .map(|m| file_meta(&m))
            .map_err(|e| Error::io(path, "stat", e))
    }
}

/// True when both paths name the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}
