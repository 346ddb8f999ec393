//! The replica store: where replication keeps what a standby or a restore
//! needs (bases, log segments, the lease), behind one synchronous trait so
//! master, client and restore never care whether it is a directory
//! (`DirStore`) or an object store (`s3store::S3Store`).
//!
//! The namespace is flat: keys are `/`-separated relative names, each part
//! made of `[A-Za-z0-9._-]` and not starting with `.` (backends keep their
//! own bookkeeping under dot names; a key is also a safe file name and a
//! safe object name). Every implementation promises:
//!
//! * `put`/`put_file` are atomically visible: a reader sees the whole new
//!   object, or the old one (or none), never a part;
//! * `create` is create-only: of any number of concurrent creators of one
//!   key (threads, processes, hosts) exactly one gets `true`, and an object
//!   `create` returned `true` for is durable;
//! * `replace` is compare-and-swap against the `Version` a `get` returned:
//!   of concurrent replacers holding the same version at most one wins;
//! * `list` is sorted by key and never shows a half-written object;
//! * every error is one `Error::Store` line naming the store and the key,
//!   whose `StoreFault` says whether a retry can help; no credential is
//!   ever part of an error, of `describe()` or of `Debug`.
//!
//! Integrity is not the backends' job: objects carry their own framing
//! (`framed`), and big files are checked against the size and CRC-32 that
//! `put_file`/`get_to_file` compute while they stream (`FileSum`), recorded
//! by the caller elsewhere (a base manifest).

use crate::error::{Error, Result, StoreFault};
use crate::storage::vfs::{OpenMode, VFile, Vfs};
use std::fmt;
use std::path::Path;

/// An opaque tag that changes whenever an object's content is replaced;
/// `replace` compares it. Only meaningful to the store that returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// A version from a backend's own tag (an ETag, a content hash); only a
    /// `ReplicaStore` implementation makes one.
    pub fn new(tag: impl Into<String>) -> Version {
        Version(tag.into())
    }

    /// The backend's tag, for the backend that made it (a conditional
    /// request's header, say).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole object as `get` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object's whole content.
    pub bytes: Vec<u8>,
    /// The version of that content, for a later `replace`.
    pub version: Version,
}

/// One entry of `list`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectMeta {
    /// The object's full key (prefix included).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Size and CRC-32 of a file's bytes as they streamed through
/// `put_file` or `get_to_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSum {
    /// How many bytes went through.
    pub size: u64,
    /// The CRC-32 (IEEE) of those bytes.
    pub crc: u32,
}

impl fmt::Display for FileSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, crc {:08x}", self.size, self.crc)
    }
}

impl FileSum {
    /// Checks a transferred file against the sum recorded for it (a base
    /// manifest's entry); a mismatch is a `Corrupt` error naming the key.
    pub fn verify(&self, location: &str, key: &str, expected: FileSum) -> Result<()> {
        if *self == expected {
            return Ok(());
        }
        Err(Error::store(
            location,
            key,
            StoreFault::Corrupt,
            format!("content does not match its manifest: {self}, expected {expected}"),
        ))
    }
}

/// Computes a `FileSum` over bytes fed in order.
#[derive(Default)]
pub struct Summer {
    crc: crc32fast::Hasher,
    size: u64,
}

impl Summer {
    /// A sum of no bytes yet.
    pub fn new() -> Summer {
        Summer::default()
    }

    /// Adds `bytes`, which follow every byte added before.
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The sum of every byte added so far (more may still be added).
    pub fn sum(&self) -> FileSum {
        FileSum {
            size: self.size,
            crc: self.crc.clone().finalize(),
        }
    }
}

/// The chunk size of streamed transfers: memory stays bounded by a few of
/// these whatever the file size.
pub const CHUNK: usize = 1 << 20;

/// Streams the file at `path` through `sink` in chunks of at most `chunk`
/// bytes, returning what went through. Only the bytes present when each
/// chunk is read are sent: a caller that needs a stable file copies a
/// stable file.
pub fn stream_file(
    vfs: &dyn Vfs,
    path: &Path,
    chunk: usize,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<FileSum> {
    let f = vfs.open(path, OpenMode::Read)?;
    let mut buf = vec![0u8; chunk.max(1)];
    let mut summer = Summer::new();
    loop {
        let n = f.read_at(&mut buf, summer.size)?;
        if n == 0 {
            return Ok(summer.sum());
        }
        summer.update(&buf[..n]);
        sink(&buf[..n])?;
    }
}

/// Writes a file from chunks in order, summing them; `finish` makes it
/// durable (fdatasync). The file is created or truncated.
pub struct SummingWriter {
    file: Box<dyn VFile>,
    summer: Summer,
}

impl SummingWriter {
    /// Creates the file `path` (mode 0600), or empties it if it exists.
    pub fn create(vfs: &dyn Vfs, path: &Path) -> Result<SummingWriter> {
        let file = vfs.open(path, OpenMode::Create(0o600))?;
        file.set_len(0)?;
        Ok(SummingWriter {
            file,
            summer: Summer::new(),
        })
    }

    /// Appends `bytes` after everything written so far.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_at(bytes, self.summer.size)?;
        self.summer.update(bytes);
        Ok(())
    }

    /// Makes the file durable (its data; its name is durable once its
    /// directory is synced) and returns the sum of what was written.
    pub fn finish(self) -> Result<FileSum> {
        self.file.sync()?;
        Ok(self.summer.sum())
    }
}

/// A place replication keeps its objects. See the module documentation for
/// the promises every implementation keeps.
///
/// The directory store, used as any store is: create-only writes and
/// compare-and-swap on the version a `get` returned:
///
/// ```rust
/// use libcore::replica::{DirStore, ReplicaStore};
/// use libcore::OsVfs;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = DirStore::open(OsVfs::shared(), dir.path()).unwrap();
///
/// // Of any number of creators of one key, exactly one gets `true`.
/// assert!(store.create("lease", b"held by A").unwrap());
/// assert!(!store.create("lease", b"held by B").unwrap());
///
/// // A replace holding the version just read wins once; a second one
/// // holding the same (now stale) version loses and changes nothing.
/// let seen = store.get("lease").unwrap().unwrap();
/// assert!(store.replace("lease", b"renewed by A", &seen.version).unwrap());
/// assert!(!store.replace("lease", b"taken by B", &seen.version).unwrap());
/// assert_eq!(store.get("lease").unwrap().unwrap().bytes, b"renewed by A");
///
/// // Listing is by whole key parts, sorted.
/// store.put("segments/1", b"x").unwrap();
/// store.put("segmentsX", b"y").unwrap();
/// let keys: Vec<String> = store.list("segments").unwrap().into_iter().map(|m| m.key).collect();
/// assert_eq!(keys, ["segments/1"]);
/// ```
pub trait ReplicaStore: Send + Sync {
    /// Where the store is, for messages: a path or `s3://bucket/prefix`
    /// (never a credential).
    fn describe(&self) -> String;

    /// The whole object, or `None` if there is none under `key`.
    fn get(&self, key: &str) -> Result<Option<Object>>;

    /// Streams the object into the file `path` (created or truncated,
    /// fsynced) through `vfs`, in bounded memory. `None` (and no file
    /// written) if there is no object under `key`. The caller compares the
    /// returned sum with the one it recorded.
    fn get_to_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<Option<FileSum>>;

    /// Stores `bytes` under `key`, replacing any object there; atomically
    /// visible and durable once it returns.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Stores the file `path` (read through `vfs`) under `key`, streamed in
    /// bounded memory (multipart on object stores); atomically visible.
    /// Returns the sum of the bytes stored.
    fn put_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum>;

    /// Stores `bytes` under `key` only if no object is there: `true` if this
    /// call created it, `false` if the key already existed (then nothing is
    /// changed). Exactly one of concurrent creators gets `true`.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool>;

    /// Replaces the object under `key` with `bytes` only if it still has
    /// version `expected`: `true` if replaced, `false` if it changed or is
    /// gone (then nothing is changed).
    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<bool>;

    /// Every object whose key is `prefix` followed by `/` and more (whole
    /// key parts: `seg` lists `seg/1`, not `segment/1`), or every object
    /// when `prefix` is empty; sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes the object under `key`; removing a missing one is no error.
    fn delete(&self, key: &str) -> Result<()>;
}

/// A store over another one that changes a few operations (prefetches
/// reads, injects faults in tests): it names the store under it with
/// `lower` and overrides only what it changes; every other call passes
/// straight down, and every `StoreLayer` is a [`ReplicaStore`] (as
/// `VfsLayer` is for file systems).
pub trait StoreLayer: Send + Sync {
    /// The store under this one.
    fn lower(&self) -> &dyn ReplicaStore;

    /// As [`ReplicaStore::describe`]; passes straight down unless overridden.
    fn describe(&self) -> String {
        self.lower().describe()
    }
    /// As [`ReplicaStore::get`]; passes straight down unless overridden.
    fn get(&self, key: &str) -> Result<Option<Object>> {
        self.lower().get(key)
    }
    /// As [`ReplicaStore::get_to_file`]; passes straight down unless overridden.
    fn get_to_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<Option<FileSum>> {
        self.lower().get_to_file(key, vfs, path)
    }
    /// As [`ReplicaStore::put`]; passes straight down unless overridden.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.lower().put(key, bytes)
    }
    /// As [`ReplicaStore::put_file`]; passes straight down unless overridden.
    fn put_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum> {
        self.lower().put_file(key, vfs, path)
    }
    /// As [`ReplicaStore::create`]; passes straight down unless overridden.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        self.lower().create(key, bytes)
    }
    /// As [`ReplicaStore::replace`]; passes straight down unless overridden.
    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<bool> {
        self.lower().replace(key, bytes, expected)
    }
    /// As [`ReplicaStore::list`]; passes straight down unless overridden.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.lower().list(prefix)
    }
    /// As [`ReplicaStore::delete`]; passes straight down unless overridden.
    fn delete(&self, key: &str) -> Result<()> {
        self.lower().delete(key)
    }
}

impl<T: StoreLayer> ReplicaStore for T {
    fn describe(&self) -> String {
        StoreLayer::describe(self)
    }
    fn get(&self, key: &str) -> Result<Option<Object>> {
        StoreLayer::get(self, key)
    }
    fn get_to_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<Option<FileSum>> {
        StoreLayer::get_to_file(self, key, vfs, path)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        StoreLayer::put(self, key, bytes)
    }
    fn put_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum> {
        StoreLayer::put_file(self, key, vfs, path)
    }
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        StoreLayer::create(self, key, bytes)
    }
    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<bool> {
        StoreLayer::replace(self, key, bytes, expected)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        StoreLayer::list(self, prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        StoreLayer::delete(self, key)
    }
}

/// Refuses a key outside the store's namespace (see the module
/// documentation) with an `Invalid` error naming it.
pub fn check_key(location: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::store(
            location,
            "",
            StoreFault::Invalid,
            "empty object key",
        ));
    }
    check_parts(location, key)
}

/// Like `check_key`, but the empty prefix (the whole store) is allowed.
pub fn check_prefix(location: &str, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_parts(location, prefix)
}

fn check_parts(location: &str, key: &str) -> Result<()> {
    let bad_part = key.split('/').find(|p| !valid_part(p));
    match bad_part {
        None => Ok(()),
        Some(p) => Err(Error::store(
            location,
            key.escape_debug().to_string(),
            StoreFault::Invalid,
            format!(
                "invalid object key: part {:?} (parts are non-empty, of A-Z a-z 0-9 . _ -, not starting with a dot)",
                p
            ),
        )),
    }
}

fn valid_part(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('.')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_names_of_safe_parts() {
        for good in ["a", "seg/0000000001", "base/2/a.db", "x-y_z.1"] {
            check_key("loc", good).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", ".tmp", "a/.x", "a b", "a\\b", "é",
        ] {
            let e = check_key("loc", bad).unwrap_err();
            assert_eq!(e.store_fault(), Some(StoreFault::Invalid), "{bad:?}");
            assert!(!e.to_string().contains('\n'));
        }
        check_prefix("loc", "").unwrap();
        assert!(check_prefix("loc", "a/").is_err());
    }

    #[test]
    fn sums_stream_and_verify() {
        let mut s = Summer::new();
        s.update(b"hello ");
        s.update(b"world");
        let sum = s.sum();
        assert_eq!(
            sum,
            FileSum {
                size: 11,
                crc: crc32fast::hash(b"hello world")
            }
        );
        sum.verify("loc", "k", sum).unwrap();
        let e = sum
            .verify("/store", "base/a.db", FileSum { size: 11, crc: 0 })
            .unwrap_err();
        assert_eq!(e.store_fault(), Some(StoreFault::Corrupt));
        assert!(e.to_string().starts_with("/store/base/a.db: "), "{e}");
    }
}
