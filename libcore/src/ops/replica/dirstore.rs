//! `DirStore`: the replica store in a directory, on a local disk or on a
//! network file system mounted on several hosts. Every file operation goes
//! through the `Vfs`, so the fault and power-loss models cover it; the one
//! exception is the lock file (below), like the environment's owner lock.
//!
//! An object is a plain file at `root/key` (its bytes exactly, so an
//! operator can read a store with `cat` and `cp`); key parts are
//! directories. Names starting with a dot are the store's own and never
//! listed: `.lock`, and the temporary names `.tmp-SECS-RANDOM` of writes
//! under way (SECS is when the write began).
//!
//! * put / put_file: write a temporary name created exclusively in the
//!   key's directory, fsync it, rename it over the key, fsync the
//!   directory. A reader sees the old or the new file, never a part; after
//!   a power loss the key holds one of them whole.
//! * create: write and fsync a temporary name, then link(2) it to the key:
//!   link fails with EEXIST if the key exists, atomically even against a
//!   creator on another host of a shared file system (unlike an
//!   exists-check then rename, or O_EXCL over old NFS). The directory is
//!   fsynced before `true` is returned, so a created object stays created.
//! * replace: compare-and-swap under an exclusive flock of `root/.lock`:
//!   the version is a hash of the content (`content_version`), checked and
//!   renamed over while the lock is held; put and delete take the lock for
//!   their rename or removal too, so a replace never overwrites a put it
//!   did not see. On a network file system this needs working file locks
//!   (NFSv4, or NFSv3 with lockd). Threads of one process are serialised
//!   by a mutex as well, since NFS locks are per process.
//! * Leftovers of a killed writer (temporary names) are never listed;
//!   `sweep_leftovers` removes those older than a given age (a writer on
//!   another host may still be writing a young one).
//! * A key cannot be both an object and a directory of other keys here
//!   (`a` and `a/b`); replication's key scheme never does that.
//!
//! The directory must exist: a store that is missing (an unmounted network
//! file system) is a `Missing` error, never silently created.

use super::store::{
    check_key, check_prefix, stream_file, FileSum, Object, ObjectMeta, ReplicaStore, Summer,
    SummingWriter, Version, CHUNK,
};
use crate::error::{strip_os_suffix, Error, Result, StoreFault};
use crate::storage::vfs::{LockKind, OpenMode, SharedVfs, VFile, Vfs};
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LOCK_NAME: &str = ".lock";
const TEMP_PREFIX: &str = ".tmp-";
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Serialises the lock holders of this process (flock over NFS is a POSIX
/// lock, which does not exclude threads of one process).
static PROCESS_LOCK: Mutex<()> = Mutex::new(());

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A replica store in a directory: a local disk, or a network file system
/// mounted on every host that uses the store. It keeps every promise of
/// `ReplicaStore` (see the module comment for how), and does its file
/// I/O through a `Vfs`, so the fault models see it.
pub struct DirStore {
    vfs: SharedVfs,
    root: PathBuf,
    location: String,
    lock_wait: Duration,
    /// Directories whose entry in their parent this handle made durable.
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl std::fmt::Debug for DirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirStore({})", self.location)
    }
}

/// The version of an object in a `DirStore`: a hash of its bytes (FNV-1a
/// 64, CRC-32 and the length), so it is the same from every host and every
/// build, and changes whenever the content does.
pub fn content_version(bytes: &[u8]) -> Version {
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        fnv ^= u64::from(b);
        fnv = fnv.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Version::new(format!(
        "{:016x}{:08x}-{}",
        fnv,
        crc32fast::hash(bytes),
        bytes.len()
    ))
}

fn is_kind(e: &Error, kind: io::ErrorKind) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == kind)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 64-bit value (the standard library seeds `RandomState` from
/// the OS), so temporary names of writers on different hosts differ.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

/// A temporary file being written; its name is removed on drop unless it
/// was renamed into place.
struct Temp<'a> {
    vfs: &'a dyn Vfs,
    path: PathBuf,
    file: Option<Box<dyn VFile>>,
    summer: Summer,
    written: u64,
    renamed: bool,
}

impl<'a> Temp<'a> {
    fn create(vfs: &'a dyn Vfs, dir: &Path) -> Result<Temp<'a>> {
        loop {
            let path = dir.join(format!("{TEMP_PREFIX}{}-{:016x}", now_secs(), random_u64()));
            match vfs.open(&path, OpenMode::CreateNew(FILE_MODE)) {
                Ok(file) => {
                    return Ok(Temp {
                        vfs,
                        path,
                        file: Some(file),
                        summer: Summer::new(),
                        written: 0,
                        renamed: false,
                    })
                }
                Err(e) if is_kind(&e, io::ErrorKind::AlreadyExists) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(f) = &self.file {
            f.write_at(bytes, self.written)?;
            crate::ops::copy::write_behind(&**f, self.written, bytes.len() as u64);
        }
        self.summer.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Makes the content durable and closes the file.
    fn sync(&mut self) -> Result<FileSum> {
        if let Some(f) = self.file.take() {
            f.sync()?;
        }
        Ok(self.summer.sum())
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        self.file = None;
        if self.renamed {
            return;
        }
        // Best effort: a name left behind is a leftover `sweep_leftovers`
        // removes; it is never listed.
        let _ = self.vfs.remove(&self.path);
    }
}

/// Held while a compare-and-swap, a put's rename or a removal runs (the
/// file lock goes when the file is closed).
struct StoreLock {
    _file: Box<dyn VFile>,
    _process: MutexGuard<'static, ()>,
}

impl DirStore {
    /// The store in the existing directory `root`.
    pub fn open(vfs: SharedVfs, root: &Path) -> Result<DirStore> {
        let location = root.display().to_string();
        if !vfs.is_dir(root) {
            let what = if vfs.exists(root) {
                "replica store is not a directory"
            } else {
                "replica store directory does not exist"
            };
            return Err(Error::store(location, "", StoreFault::Missing, what));
        }
        Ok(DirStore {
            vfs,
            root: root.to_path_buf(),
            location,
            lock_wait: Duration::from_secs(30),
            durable_dirs: Mutex::new(HashSet::new()),
        })
    }

    /// How long a writer waits for the store lock before giving up with a
    /// `Transient` error (30 s by default).
    pub fn with_lock_wait(mut self, wait: Duration) -> DirStore {
        self.lock_wait = wait;
        self
    }

    /// The directory the store is in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary names of writes that began at least `min_age`
    /// ago (writers killed or cut off by a power loss); returns how many.
    pub fn sweep_leftovers(&self, min_age: Duration) -> Result<usize> {
        let cutoff = now_secs().saturating_sub(min_age.as_secs());
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut here = 0;
            for name in self.vfs.list(&dir).map_err(|e| self.fail("", e))? {
                let Some(name) = name.to_str() else { continue };
                let path = dir.join(name);
                if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
                    let began = rest.split('-').next().and_then(|s| s.parse::<u64>().ok());
                    if began.is_some_and(|t| t <= cutoff) {
                        match self.vfs.remove(&path) {
                            Ok(()) => here += 1,
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(self.fail("", e)),
                        }
                    }
                } else if !name.starts_with('.') && self.vfs.is_dir(&path) {
                    dirs.push(path);
                }
            }
            if here > 0 {
                self.vfs.sync_dir(&dir).map_err(|e| self.fail("", e))?;
                removed += here;
            }
        }
        Ok(removed)
    }

    /// A libcore error from the `Vfs` as a store error naming `key`, its
    /// fault kind from the errno.
    fn fail(&self, key: &str, e: Error) -> Error {
        self.fail_on(key, None, e)
    }

    /// As `fail`, for an error on a file other than the key's own (the
    /// store's lock file), which the message then names.
    fn fail_on(&self, key: &str, file: Option<&str>, e: Error) -> Error {
        match e {
            Error::Io { op, source, .. } => {
                let fault = self.errno_fault(&source);
                let what = match file {
                    Some(f) => format!("{op} {f}"),
                    None => op.to_string(),
                };
                Error::store(
                    &self.location,
                    key,
                    fault,
                    format!("{what}: {}", strip_os_suffix(&source)),
                )
            }
            other => other,
        }
    }

    fn errno_fault(&self, e: &io::Error) -> StoreFault {
        const TRANSIENT: [i32; 13] = [
            4,   // EINTR
            5,   // EIO
            11,  // EAGAIN
            12,  // ENOMEM
            16,  // EBUSY
            23,  // ENFILE
            24,  // EMFILE
            28,  // ENOSPC
            37,  // ENOLCK
            110, // ETIMEDOUT
            112, // EHOSTDOWN
            116, // ESTALE
            122, // EDQUOT
        ];
        const DENIED: [i32; 3] = [1, 13, 30]; // EPERM, EACCES, EROFS
        match e.raw_os_error() {
            Some(n) if TRANSIENT.contains(&n) => StoreFault::Transient,
            Some(n) if DENIED.contains(&n) => StoreFault::Denied,
            _ if e.kind() == io::ErrorKind::NotFound && !self.vfs.is_dir(&self.root) => {
                StoreFault::Missing
            }
            _ => StoreFault::Failed,
        }
    }

    /// The directory and the file of `key`.
    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let file = self.root.join(key);
        let dir = file.parent().unwrap_or(&self.root).to_path_buf();
        (dir, file)
    }

    /// Creates `dir` and its missing parents under the root, each entry
    /// made durable in its parent (also for a directory another writer
    /// created and may not have synced before it died).
    fn ensure_dir(&self, key: &str, dir: &Path) -> Result<()> {
        if lock_ignoring_poison(&self.durable_dirs).contains(dir) {
            return Ok(());
        }
        let rel = dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut cur = self.root.clone();
        for part in rel.components() {
            let parent = cur.clone();
            cur.push(part);
            if lock_ignoring_poison(&self.durable_dirs).contains(&cur) {
                continue;
            }
            if !self.vfs.is_dir(&cur) {
                match self.vfs.create_dir(&cur, DIR_MODE) {
                    Ok(()) => {}
                    Err(_) if self.vfs.is_dir(&cur) => {} // a concurrent creator
                    Err(e) => return Err(self.fail(key, e)),
                }
            }
            self.vfs.sync_dir(&parent).map_err(|e| self.fail(key, e))?;
            lock_ignoring_poison(&self.durable_dirs).insert(cur.clone());
        }
        Ok(())
    }

    fn lock(&self, key: &str) -> Result<StoreLock> {
        let process = PROCESS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.root.join(LOCK_NAME);
        let file = self
            .vfs
            .open(&path, OpenMode::Create(FILE_MODE))
            .map_err(|e| self.fail_on(key, Some(LOCK_NAME), e))?;
        let start = Instant::now();
        loop {
            if file
                .try_lock(LockKind::Exclusive)
                .map_err(|e| self.fail_on(key, Some(LOCK_NAME), e))?
            {
                return Ok(StoreLock {
                    _file: file,
                    _process: process,
                });
            }
            if start.elapsed() >= self.lock_wait {
                return Err(Error::store(
                    &self.location,
                    key,
                    StoreFault::Transient,
                    format!(
                        "the store lock {LOCK_NAME} is held by another writer (waited {} s)",
                        self.lock_wait.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes `bytes` to a new temporary file next to `key`, durably.
    fn temp_with(&self, key: &str, dir: &Path, bytes: &[u8]) -> Result<Temp<'_>> {
        self.ensure_dir(key, dir)?;
        let mut t = Temp::create(&*self.vfs, dir).map_err(|e| self.fail(key, e))?;
        t.write(bytes).map_err(|e| self.fail(key, e))?;
        t.sync().map_err(|e| self.fail(key, e))?;
        Ok(t)
    }

    /// Renames `tmp` over `file` and makes it durable, under the lock.
    fn install(&self, key: &str, dir: &Path, tmp: &mut Temp, file: &Path) -> Result<()> {
        let _lock = self.lock(key)?;
        self.rename_into_place(key, dir, tmp, file)
    }

    fn rename_into_place(&self, key: &str, dir: &Path, tmp: &mut Temp, file: &Path) -> Result<()> {
        self.vfs
            .rename(&tmp.path, file)
            .map_err(|e| self.fail(key, e))?;
        tmp.renamed = true;
        self.vfs.sync_dir(dir).map_err(|e| self.fail(key, e))
    }

    /// The current bytes under `key`, `None` if there is no object.
    fn read(&self, key: &str, file: &Path) -> Result<Option<Vec<u8>>> {
        let f = match self.vfs.open(file, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() || is_not_dir(&e) => return Ok(None),
            Err(e) => return Err(self.fail(key, e)),
        };
        let len = f.len().map_err(|e| self.fail(key, e))?;
        let mut buf = vec![0u8; len as usize];
        let n = f.read_at(&mut buf, 0).map_err(|e| self.fail(key, e))?;
        buf.truncate(n);
        Ok(Some(buf))
    }

    fn list_into(&self, dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<()> {
        let names = match self.vfs.list(dir) {
            Ok(n) => n,
            Err(e) if e.is_not_found() || is_not_dir(&e) => return Ok(()),
            Err(e) => return Err(self.fail(prefix, e)),
        };
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let key = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let path = dir.join(name);
            if self.vfs.is_dir(&path) {
                self.list_into(&path, &key, out)?;
                continue;
            }
            match self.vfs.open(&path, OpenMode::Read) {
                Ok(f) => {
                    let size = f.len().map_err(|e| self.fail(&key, e))?;
                    out.push(ObjectMeta { key, size });
                }
                Err(e) if e.is_not_found() => {} // removed while we listed
                Err(e) => return Err(self.fail(&key, e)),
            }
        }
        Ok(())
    }
}

fn is_not_dir(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(20)) // ENOTDIR
}

impl ReplicaStore for DirStore {
    fn describe(&self) -> String {
        self.location.clone()
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        check_key(&self.location, key)?;
        let (_, file) = self.paths(key);
        Ok(self.read(key, &file)?.map(|bytes| Object {
            version: content_version(&bytes),
            bytes,
        }))
    }

    fn get_to_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<Option<FileSum>> {
        check_key(&self.location, key)?;
        let (_, file) = self.paths(key);
        let src = match self.vfs.open(&file, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() || is_not_dir(&e) => return Ok(None),
            Err(e) => return Err(self.fail(key, e)),
        };
        let mut out = SummingWriter::create(vfs, path)?;
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        loop {
            let n = src.read_at(&mut buf, off).map_err(|e| self.fail(key, e))?;
            if n == 0 {
                break;
            }
            out.write(&buf[..n])?;
            off += n as u64;
        }
        out.finish().map(Some)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        check_key(&self.location, key)?;
        let (dir, file) = self.paths(key);
        let mut tmp = self.temp_with(key, &dir, bytes)?;
        self.install(key, &dir, &mut tmp, &file)
    }

    fn put_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum> {
        check_key(&self.location, key)?;
        let (dir, file) = self.paths(key);
        self.ensure_dir(key, &dir)?;
        let mut tmp = Temp::create(&*self.vfs, &dir).map_err(|e| self.fail(key, e))?;
        // An error reading the source names the source file itself.
        let sum = stream_file(vfs, path, CHUNK, |chunk| {
            tmp.write(chunk).map_err(|e| self.fail(key, e))
        })?;
        tmp.sync().map_err(|e| self.fail(key, e))?;
        self.install(key, &dir, &mut tmp, &file)?;
        Ok(sum)
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        check_key(&self.location, key)?;
        let (dir, file) = self.paths(key);
        let tmp = self.temp_with(key, &dir, bytes)?;
        match self.vfs.hard_link(&tmp.path, &file) {
            Ok(()) => {}
            Err(e) if is_kind(&e, io::ErrorKind::AlreadyExists) => return Ok(false),
            Err(e) => return Err(self.fail(key, e)),
        }
        self.vfs.sync_dir(&dir).map_err(|e| self.fail(key, e))?;
        Ok(true)
    }

    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<bool> {
        check_key(&self.location, key)?;
        let (dir, file) = self.paths(key);
        if !self.vfs.is_dir(&dir) {
            return Ok(false);
        }
        let mut tmp = self.temp_with(key, &dir, bytes)?;
        let _lock = self.lock(key)?;
        match self.read(key, &file)? {
            Some(current) if content_version(&current) == *expected => {}
            _ => return Ok(false),
        }
        self.rename_into_place(key, &dir, &mut tmp, &file)?;
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_prefix(&self.location, prefix)?;
        let mut out = Vec::new();
        let dir = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix)
        };
        if prefix.is_empty() || self.vfs.is_dir(&dir) {
            self.list_into(&dir, prefix, &mut out)?;
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(&self.location, key)?;
        let (dir, file) = self.paths(key);
        let _lock = self.lock(key)?;
        match self.vfs.remove(&file) {
            Ok(()) => {}
            Err(e) if e.is_not_found() || is_not_dir(&e) => return Ok(()),
            Err(e) => return Err(self.fail(key, e)),
        }
        self.vfs.sync_dir(&dir).map_err(|e| self.fail(key, e))
    }
}
