//! Bases: the database files of the primary copied into the store with
//! page-verified reads, and the manifest that makes them a base, written
//! last (a base without its manifest does not exist). Restoring a base
//! means fetching its files, then the segments from its `start` on, and
//! redo from `start` at least to `consistent_from`.
//!
//! The manifest (framed kind `BASE`; man/db_format.5):
//!
//! ```text
//! number u64, env_id u64, history u64, start u64, checkpoint u64,
//! copy_began u64, consistent_from u64, created u64,
//! count u32, count x (index u32, size u64, crc u32, name blob)
//! ```
//!
//! `start` is the redo point of the checkpoint before the copy began,
//! `copy_began` where the log ended when the first file was read,
//! `consistent_from` where it ended after the last one: the copy holds
//! every change before `copy_began` and none after `consistent_from`,
//! so replay from `start` through `consistent_from` makes it consistent.
//! A bulk load whose marker falls after `copy_began` may have written
//! pages the copy lacks: such a copy is made again.

use super::framed::{self, Kind};
use super::layout;
use super::store::{FileSum, ReplicaStore};
use crate::error::{Error, Result, StoreFault};
use crate::ops::copy::{settle_page, total_size};
use crate::ops::pacing::Pacer;
use crate::progress::{self, Phase, Progress};
use crate::storage::codec::{Reader, Writer};
use crate::storage::layout::Layout;
use crate::storage::vfs::{OpenMode, SharedVfs, VFile, Vfs};
use crate::storage::vfs_layer::{FileLayer, VfsLayer};
use crate::types::{Lsn, PageNo};
use crate::wal::{LogCursor, OnBadRecord, PageRecord, Record};
use std::path::Path;
use std::sync::Arc;

/// The frame kind of a base manifest.
pub const KIND_BASE: Kind = Kind(*b"BASE");

/// One database file of a base, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    /// The number in the file's store key (`layout::base_file_key`); names
    /// cannot be keys, so files are stored by number.
    pub index: u32,
    /// The database's name (relative to its data directory).
    pub name: String,
    /// The size and checksum of the copy in the store, checked when it is
    /// fetched.
    pub sum: FileSum,
}

/// A base's manifest (see the module comment): what the base holds and
/// from where the log must be replayed to make it consistent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseManifest {
    /// The base's number (the epoch of its master in the top bits,
    /// `layout::base_number`); its key names it too.
    pub number: u64,
    /// The id of the environment the files were copied from.
    pub env_id: u64,
    /// The primary's log history id when the copy was made.
    pub history: u64,
    /// Where replay begins: the redo point of the checkpoint before the
    /// copy began.
    pub start: Lsn,
    /// That checkpoint's own position in the log (ZERO when the log
    /// held none: then `start` is the first record of the oldest log).
    pub checkpoint: Lsn,
    /// Where the log ended when the first file was read: the copy holds
    /// every change before it.
    pub copy_began: Lsn,
    /// Where the log ended after the last file was read: the copy holds no
    /// change after it, so replay through it makes the copy consistent.
    pub consistent_from: Lsn,
    /// Unix seconds when `consistent_from` was read: every commit the base
    /// holds happened before.
    pub created: u64,
    /// The database files of the base.
    pub files: Vec<BaseFile>,
}

impl BaseManifest {
    /// The manifest as the payload of its framed object (the layout in the
    /// module comment).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.number)
            .u64(self.env_id)
            .u64(self.history)
            .u64(self.start.to_u64())
            .u64(self.checkpoint.to_u64())
            .u64(self.copy_began.to_u64())
            .u64(self.consistent_from.to_u64())
            .u64(self.created)
            .u32(self.files.len() as u32);
        for f in &self.files {
            w.u32(f.index)
                .u64(f.sum.size)
                .u32(f.sum.crc)
                .blob(f.name.as_bytes());
        }
        w.buf
    }

    /// The manifest from the payload of the object at `key`: an
    /// `Error::Store` (`Corrupt`) naming `location` and `key` when it is not
    /// of this version, names another base than `key`, or names a file
    /// outside the environment.
    pub fn decode(location: &str, key: &str, payload: &[u8]) -> Result<BaseManifest> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            let mut m = BaseManifest {
                number: r.u64()?,
                env_id: r.u64()?,
                history: r.u64()?,
                start: Lsn::from_u64(r.u64()?),
                checkpoint: Lsn::from_u64(r.u64()?),
                copy_began: Lsn::from_u64(r.u64()?),
                consistent_from: Lsn::from_u64(r.u64()?),
                created: r.u64()?,
                files: Vec::new(),
            };
            let n = r.u32()?;
            for _ in 0..n {
                let index = r.u32()?;
                let size = r.u64()?;
                let crc = r.u32()?;
                let name = String::from_utf8_lossy(r.blob()?).into_owned();
                m.files.push(BaseFile {
                    index,
                    name,
                    sum: FileSum { size, crc },
                });
            }
            Ok::<_, crate::storage::codec::Short>(m)
        })();
        let bad = |what: &str| Error::store(location, key, StoreFault::Corrupt, what);
        let m = match parsed {
            Ok(m) if r.remaining() == 0 => m,
            _ => return Err(bad("not a base manifest of this version")),
        };
        if layout::parse_base_number(key) != Some(m.number) {
            return Err(bad("the manifest names another base than its key"));
        }
        for f in &m.files {
            if crate::storage::layout::check_db_name(&f.name).is_err() {
                return Err(bad("the manifest names a file outside the environment"));
            }
        }
        Ok(m)
    }
}

/// The base numbers in the store, each with its manifest if it has one
/// (complete), ascending.
pub fn list(store: &dyn ReplicaStore) -> Result<Vec<(u64, Option<BaseManifest>)>> {
    let mut nums: Vec<u64> = store
        .list(layout::BASES)?
        .iter()
        .filter_map(|m| layout::parse_base_number(&m.key))
        .collect();
    nums.sort_unstable();
    nums.dedup();
    let mut out = Vec::new();
    for n in nums {
        out.push((n, read(store, n)?));
    }
    Ok(out)
}

/// The manifest of base `n`, `None` when it has none (not complete).
pub fn read(store: &dyn ReplicaStore, n: u64) -> Result<Option<BaseManifest>> {
    let key = layout::base_manifest_key(n);
    let Some((payload, _)) = framed::get_framed(store, &key, KIND_BASE)? else {
        return Ok(None);
    };
    BaseManifest::decode(&store.describe(), &key, &payload).map(Some)
}

/// The complete bases, oldest first.
pub fn complete(store: &dyn ReplicaStore) -> Result<Vec<BaseManifest>> {
    Ok(list(store)?.into_iter().filter_map(|(_, m)| m).collect())
}

/// Reads that check every page's checksum (re-reading a page that raced
/// its owner's write, as `db_copy` does) and stop at the last whole page:
/// what `put_file` streams a database file through, so a base is
/// page-verified without a local copy.
struct PageChecked {
    inner: SharedVfs,
    page_size: usize,
    /// Told of the whole pages each read returns (what is stored).
    progress: Option<Arc<dyn Progress>>,
    /// Slows the reads (and so the store's writes) while the primary's
    /// commits wait behind them (ops/pacing.rs).
    pace: Arc<Pacer>,
}

struct PageCheckedFile {
    file: Box<dyn VFile>,
    page_size: usize,
    progress: Option<Arc<dyn Progress>>,
    pace: Arc<Pacer>,
}

impl FileLayer for PageCheckedFile {
    fn lower(&self) -> &dyn VFile {
        &*self.file
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        let ps = self.page_size;
        let n = self.file.read_at(buf, off)?;
        let whole = n / ps * ps;
        for (i, page) in buf[..whole].chunks_mut(ps).enumerate() {
            let at = off + (i * ps) as u64;
            settle_page(&*self.file, page, PageNo((at / ps as u64) as u32), at)?;
        }
        progress::advance(self.progress.as_deref(), whole as u64);
        self.pace.pace(whole as u64);
        Ok(whole)
    }

    fn write_at(&self, _: &[u8], _: u64) -> Result<()> {
        Err(Error::invalid("a page-checked read is read only"))
    }

    fn set_len(&self, _: u64) -> Result<()> {
        Err(Error::invalid("a page-checked read is read only"))
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

impl VfsLayer for PageChecked {
    fn lower(&self) -> &dyn Vfs {
        &*self.inner
    }

    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        let file = self.inner.open(path, mode)?;
        Ok(Box::new(PageCheckedFile {
            file,
            page_size: self.page_size,
            progress: self.progress.clone(),
            pace: self.pace.clone(),
        }))
    }
}

/// Where the source says redo must start for a copy taken now, and the
/// checkpoint that says so.
pub fn start_point(vfs: &SharedVfs, src: &Layout) -> Result<(Lsn, Lsn)> {
    let st = crate::ops::archive::log_state(vfs, src)?;
    Ok(match (st.ckp_redo, st.ckp_lsn) {
        (Some(r), Some(c)) => (r, c),
        _ => (
            Lsn::new(st.first, crate::wal::FIRST_RECORD_OFFSET),
            Lsn::ZERO,
        ),
    })
}

/// A position no earlier than every record already written and no later
/// than any record written after this moment: where the records of the
/// last log file end now (its zero tail, not its preallocated size). A
/// bulk load fsyncs its pages before its marker is appended, so a marker
/// below this mark had its pages on disk before.
pub fn log_mark(vfs: &SharedVfs, src: &Layout) -> Result<Lsn> {
    let logs = src.log_files(vfs)?;
    let Some(&last) = logs.last() else {
        return Ok(Lsn::ZERO);
    };
    let end = crate::wal::records_end(vfs, &src.log_path(last))?;
    Ok(Lsn::new(last, end))
}

/// Bulk markers in the source's log between `from` and `to`: loads whose
/// pages are in the data files only.
pub fn bulk_markers(vfs: &SharedVfs, src: &Layout, from: Lsn, to: Lsn) -> Result<Vec<Lsn>> {
    let mut cur =
        LogCursor::open_from(vfs.clone(), &src.log_dir, OnBadRecord::EndOfLog, from.file)?;
    cur.seek(from.max(Lsn::new(from.file, crate::wal::FIRST_RECORD_OFFSET)))?;
    let mut out = Vec::new();
    while let Some(r) = cur.next_raw()? {
        if r.lsn >= to {
            break;
        }
        if PageRecord::is_page_type(r.ty) {
            continue;
        }
        if let Ok(Record::BulkMarker { .. }) = Record::decode(r.ty, r.payload) {
            out.push(r.lsn);
        }
    }
    Ok(out)
}

/// How many times a base is copied again when bulk loads keep committing
/// under the copy.
const ATTEMPTS: u32 = 3;

/// Writes base `number` of the environment `src` into `store`: the
/// database files (streamed with page checks), then the manifest. The
/// caller ships the log from at most the returned manifest's `start` on.
/// `progress` hears a `Phase::WriteBase` per copy of the files.
pub fn write(
    vfs: &SharedVfs,
    src: &Layout,
    store: &dyn ReplicaStore,
    number: u64,
    env_id: u64,
    progress: Option<Arc<dyn Progress>>,
    say: &mut dyn FnMut(String),
) -> Result<BaseManifest> {
    for attempt in 1..=ATTEMPTS {
        let m = copy_files(vfs, src, store, number, env_id, progress.clone(), say)?;
        let bulk = bulk_markers(vfs, src, m.copy_began, m.consistent_from)?;
        match bulk.first() {
            None => {
                let key = layout::base_manifest_key(number);
                if !framed::create_framed(store, &key, KIND_BASE, &m.encode())? {
                    return Err(Error::store(
                        store.describe(),
                        key,
                        StoreFault::Invalid,
                        "another master wrote this base at the same time",
                    ));
                }
                progress::finish(progress.as_deref());
                return Ok(m);
            }
            Some(lsn) if attempt < ATTEMPTS => say(format!(
                "a bulk load committed at {lsn} while base {number} was copied (its pages are not in the log); copying again"
            )),
            Some(lsn) => {
                return Err(Error::invalid(format!(
                    "bulk loads (the last at {lsn}) committed during each of {ATTEMPTS} copies of base {number}; their pages are not in the log: the master tries again later"
                )))
            }
        }
    }
    Err(Error::invalid("unreachable: base attempts exhausted"))
}

fn copy_files(
    vfs: &SharedVfs,
    src: &Layout,
    store: &dyn ReplicaStore,
    number: u64,
    env_id: u64,
    progress: Option<Arc<dyn Progress>>,
    say: &mut dyn FnMut(String),
) -> Result<BaseManifest> {
    let history = crate::wal::history::read(vfs, &src.home)?.id();
    let (start, checkpoint) = start_point(vfs, src)?;
    let copy_began = log_mark(vfs, src)?;
    let mut files = Vec::new();
    let dbs = src.db_files(vfs)?;
    if let Some(p) = &progress {
        let paths: Vec<&Path> = dbs.iter().map(|f| f.path.as_path()).collect();
        p.start(Phase::WriteBase, Some(total_size(vfs, &paths)));
    }
    let pace = Arc::new(Pacer::for_env(vfs, &src.home, None));
    for (index, f) in dbs.into_iter().enumerate() {
        let key = layout::base_file_key(number, index as u32);
        let checked = PageChecked {
            inner: vfs.clone(),
            page_size: f.meta_page_size as usize,
            progress: progress.clone(),
            pace: pace.clone(),
        };
        say(format!(
            "copying database {} to {}/{key}",
            f.path.display(),
            store.describe()
        ));
        match store.put_file(&key, &checked, &f.path) {
            Ok(sum) => files.push(BaseFile {
                index: index as u32,
                name: f.name,
                sum,
            }),
            // Removed since the listing: a committed removal is in the
            // log, and redo of the base applies it.
            Err(e) if e.is_not_found() && !vfs.exists(&f.path) => {
                say(format!("{}: removed while it was copied", f.path.display()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(BaseManifest {
        number,
        env_id,
        history,
        start,
        checkpoint,
        copy_began,
        consistent_from: log_mark(vfs, src)?,
        created: crate::types::now_secs(),
        files,
    })
}

/// Removes base `n` from the store: its manifest first, so that what a
/// failure leaves is an incomplete base, never a complete one without
/// its files.
pub fn delete(store: &dyn ReplicaStore, n: u64) -> Result<()> {
    store.delete(&layout::base_manifest_key(n))?;
    for m in store.list(&layout::base_prefix(n))? {
        store.delete(&m.key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_refuses_names_outside() {
        let m = BaseManifest {
            number: 3,
            env_id: 9,
            history: 0,
            start: Lsn::new(1, 40),
            checkpoint: Lsn::new(1, 900),
            copy_began: Lsn::new(2, 100),
            consistent_from: Lsn::new(2, 300),
            created: 77,
            files: vec![BaseFile {
                index: 0,
                name: "a b.db".into(),
                sum: FileSum { size: 4096, crc: 5 },
            }],
        };
        let key = layout::base_manifest_key(3);
        assert_eq!(BaseManifest::decode("l", &key, &m.encode()).unwrap(), m);
        let e = BaseManifest::decode("l", &layout::base_manifest_key(4), &m.encode());
        assert!(e.is_err());
        let mut evil = m.clone();
        evil.files[0].name = "../x.db".into();
        assert!(BaseManifest::decode("l", &key, &evil.encode()).is_err());
    }
}
