//! The pages redo works on: for every page a record touched, either its
//! replayed bytes (not written yet) or just the LSN its on-disk copy has.
//!
//! Why a table of LSNs and not a cache of bytes: most records of a log
//! replayed over data files that are already at or past them change
//! nothing, and deciding that needs only the page's LSN. Each page is
//! therefore read from disk at most once per recovery (and again only
//! after the table forgot its file), and a page beyond the end of its file
//! on disk is not read at all: it is all zeroes, older than everything.
//!
//! Invariants:
//! * the LSN the table holds for a page is the one `current bytes` would
//!   give: the page LSN of replayed bytes, the checked LSN of the disk copy
//!   (`Lsn::ZERO` when torn, unwritten, short or past the end);
//! * a page written back becomes a plain LSN again, the LSN written; the
//!   disk copy then holds exactly those bytes;
//! * write-back goes in file and page order, runs of adjacent pages in one
//!   write, and each page is sealed (checksummed) once per write.

use crate::error::Result;
use crate::storage::page::{self, PageCheck};
use crate::storage::pagestore::PageKey;
use crate::storage::vfs::VFile;
use crate::types::{FileId, Lsn};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

/// A database file as redo sees it.
pub(super) struct RFile {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) page_size: usize,
    /// Shared with the background syncer.
    pub(super) handle: Option<Arc<dyn VFile>>,
    /// Length of the file on disk (kept up to date by write-back): pages
    /// at or past it need no read.
    pub(super) disk_len: u64,
    /// Length of the file when redo bound it: the pages recovery to a
    /// time checks (`check_not_newer_than`); write-back only adds pages
    /// older than the recovery point.
    pub(super) len_before: u64,
}

impl RFile {
    pub(super) fn new(
        name: String,
        path: PathBuf,
        page_size: usize,
        handle: Option<Box<dyn VFile>>,
    ) -> Result<RFile> {
        let handle: Option<Arc<dyn VFile>> = handle.map(Arc::from);
        let disk_len = match &handle {
            Some(h) => h.len()?,
            None => 0,
        };
        Ok(RFile {
            name,
            path,
            page_size,
            handle,
            disk_len,
            len_before: disk_len,
        })
    }
}

/// Largest single write of adjacent pages during write-back.
const MAX_RUN_BYTES: usize = 1 << 20;

/// A fast hash for page keys (two small integers). Redo looks a page up
/// for every record; SipHash's protection against chosen keys buys
/// nothing here (the keys come from our own log) and cost a tenth of redo.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl KeyHasher {
    /// FxHash's step: rotate, mix in, multiply by an odd constant.
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type KeyMap<V> = HashMap<PageKey, V, BuildHasherDefault<KeyHasher>>;

enum Slot {
    /// Not replayed: the disk copy has this effective LSN.
    Disk(Lsn),
    /// Replayed bytes, with their LSN in the page header.
    Replayed(Vec<u8>),
}

#[derive(Default)]
pub(super) struct PageTable {
    slots: KeyMap<Slot>,
    /// Bytes held in `Replayed` slots.
    buffered: usize,
    /// The disk copy of `scratch_key` as last read, so the record that
    /// needed its LSN and then changes it does not read it twice.
    scratch: Vec<u8>,
    scratch_key: Option<PageKey>,
    /// Pages read from disk (for tests and statistics).
    pub reads: u64,
    /// The most bytes held in `Replayed` slots at once.
    pub peak: usize,
}

impl PageTable {
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The page's effective LSN, reading it from disk the first time.
    pub fn lsn(&mut self, key: PageKey, f: &RFile) -> Result<Lsn> {
        match self.slots.get(&key) {
            Some(Slot::Disk(l)) => Ok(*l),
            Some(Slot::Replayed(b)) => Ok(page::lsn(b)),
            None => {
                let l = self.read(key, f)?;
                self.slots.insert(key, Slot::Disk(l));
                Ok(l)
            }
        }
    }

    /// The page's bytes to change in place (the page becomes replayed).
    pub fn bytes_mut(&mut self, key: PageKey, f: &RFile) -> Result<&mut Vec<u8>> {
        if !matches!(self.slots.get(&key), Some(Slot::Replayed(_))) {
            if self.scratch_key != Some(key) {
                self.read(key, f)?;
            }
            self.scratch_key = None;
            let buf = std::mem::take(&mut self.scratch);
            self.buffered += buf.len();
            self.peak = self.peak.max(self.buffered);
            self.slots.insert(key, Slot::Replayed(buf));
        }
        match self.slots.get_mut(&key) {
            Some(Slot::Replayed(b)) => Ok(b),
            // Inserted just above.
            _ => Err(crate::error::Error::invalid("redo page table lost a page")),
        }
    }

    /// Replaces the page with a full image.
    pub fn put(&mut self, key: PageKey, buf: Vec<u8>) {
        if self.scratch_key == Some(key) {
            self.scratch_key = None;
        }
        self.buffered += buf.len();
        if let Some(Slot::Replayed(old)) = self.slots.insert(key, Slot::Replayed(buf)) {
            self.buffered -= old.len();
        }
        self.peak = self.peak.max(self.buffered);
    }

    /// Forgets every page of a removed file.
    pub fn forget_file(&mut self, id: FileId) {
        let mut freed = 0;
        self.slots.retain(|k, s| {
            if k.0 != id {
                return true;
            }
            if let Slot::Replayed(b) = s {
                freed += b.len();
            }
            false
        });
        self.buffered -= freed;
        if self.scratch_key.is_some_and(|k| k.0 == id) {
            self.scratch_key = None;
        }
    }

    /// Forgets the disk LSNs of a file's pages (its id was bound to another
    /// file), keeping its replayed pages.
    pub fn forget_disk_pages(&mut self, id: FileId) {
        self.slots
            .retain(|k, s| k.0 != id || matches!(s, Slot::Replayed(_)));
        if self.scratch_key.is_some_and(|k| k.0 == id) {
            self.scratch_key = None;
        }
    }

    /// Reads the disk copy into `scratch` and returns its effective LSN.
    fn read(&mut self, key: PageKey, f: &RFile) -> Result<Lsn> {
        let ps = f.page_size;
        // Zeroed only when its size changes: a full read overwrites it.
        if self.scratch.len() != ps {
            self.scratch.clear();
            self.scratch.resize(ps, 0);
        }
        self.scratch_key = Some(key);
        let off = u64::from(key.1 .0) * ps as u64;
        let h = match &f.handle {
            Some(h) if ps > 0 && off < f.disk_len => h,
            _ => {
                self.scratch.fill(0);
                return Ok(Lsn::ZERO);
            }
        };
        self.reads += 1;
        let n = h.read_at(&mut self.scratch, off)?;
        if n < ps {
            self.scratch[n..].fill(0);
            return Ok(Lsn::ZERO);
        }
        Ok(if page::check(&self.scratch, key.1) == PageCheck::Ok {
            page::lsn(&self.scratch)
        } else {
            Lsn::ZERO
        })
    }

    /// Writes every replayed page of a known file with a handle back, in
    /// file and page order; each becomes a plain LSN. Pages of files
    /// without a handle (read-only, or gone) are dropped as before.
    /// Returns the files written to.
    pub fn flush(&mut self, files: &mut HashMap<FileId, RFile>) -> Result<Vec<FileId>> {
        let mut written = Vec::new();
        self.scratch_key = None;
        let mut keys: Vec<PageKey> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Replayed(_)))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        let mut run: Vec<u8> = Vec::new();
        let mut run_start: Option<(PageKey, u64)> = None;
        let mut next_key: Option<PageKey> = None;
        for key in keys {
            let Some(f) = files.get(&key.0) else {
                self.drop_slot(key);
                continue;
            };
            if f.handle.is_none() || f.page_size == 0 {
                self.drop_slot(key);
                continue;
            }
            let ps = f.page_size;
            let adjacent = next_key == Some(key) && run.len() + ps <= MAX_RUN_BYTES;
            if !adjacent {
                write_run(files, &mut run, run_start.take())?;
                if written.last() != Some(&key.0) {
                    written.push(key.0);
                }
                run_start = Some((key, u64::from(key.1 .0) * ps as u64));
            }
            let Some(Slot::Replayed(mut buf)) = self.slots.remove(&key) else {
                continue;
            };
            self.buffered -= buf.len();
            page::seal(&mut buf);
            run.extend_from_slice(&buf);
            self.slots.insert(key, Slot::Disk(page::lsn(&buf)));
            next_key = Some((key.0, crate::types::PageNo(key.1 .0.wrapping_add(1))));
        }
        write_run(files, &mut run, run_start)?;
        Ok(written)
    }

    fn drop_slot(&mut self, key: PageKey) {
        if let Some(Slot::Replayed(b)) = self.slots.remove(&key) {
            self.buffered -= b.len();
        }
    }

    /// The replayed pages, for read-only views.
    pub fn take_replayed(&mut self) -> HashMap<PageKey, Vec<u8>> {
        self.buffered = 0;
        self.slots
            .drain()
            .filter_map(|(k, s)| match s {
                Slot::Replayed(b) => Some((k, b)),
                Slot::Disk(_) => None,
            })
            .collect()
    }
}

/// Writes the pages gathered in `run` at `start` (its first page and byte
/// offset) and empties it.
fn write_run(
    files: &mut HashMap<FileId, RFile>,
    run: &mut Vec<u8>,
    start: Option<(PageKey, u64)>,
) -> Result<()> {
    let Some((key, off)) = start else {
        return Ok(());
    };
    if run.is_empty() {
        return Ok(());
    }
    if let Some(f) = files.get_mut(&key.0) {
        if let Some(h) = &f.handle {
            h.write_at(run, off)?;
            f.disk_len = f.disk_len.max(off + run.len() as u64);
        }
    }
    run.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The page table's I/O promises, counted through `FaultyVfs`: a page
    //! is read at most once, a page whose record needs its bytes right
    //! after its LSN is not read twice, a page past the end of its file is
    //! not read, and write-back writes adjacent pages in one write.

    use super::*;
    use crate::storage::page::PageType;
    use crate::storage::vfs::{OpenMode, Vfs};
    use crate::test_support::faulty::{FaultyVfs, Op};
    use crate::types::PageNo;

    const PS: usize = 4096;
    const ID: FileId = FileId(7);

    fn page_at(no: u32, lsn: Lsn) -> Vec<u8> {
        let mut p = vec![0u8; PS];
        page::init(&mut p, PageNo(no), PageType::Leaf);
        page::set_lsn(&mut p, lsn);
        page::seal(&mut p);
        p
    }

    /// A file of `pages` valid pages (page n at LSN (1, 100 + n)), opened
    /// for writing through a counting `FaultyVfs`.
    fn setup(
        dir: &std::path::Path,
        pages: u32,
    ) -> (std::sync::Arc<FaultyVfs>, HashMap<FileId, RFile>) {
        let path = dir.join("a.db");
        let mut bytes = Vec::new();
        for n in 0..pages {
            bytes.extend(page_at(n, Lsn::new(1, 100 + n)));
        }
        std::fs::write(&path, bytes).unwrap();
        let vfs = FaultyVfs::os();
        let h = vfs.open(&path, OpenMode::ReadWrite).unwrap();
        let f = RFile::new("a.db".into(), path, PS, Some(h)).unwrap();
        (vfs, HashMap::from([(ID, f)]))
    }

    #[test]
    fn a_page_is_read_once_however_many_records_touch_it() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, files) = setup(dir.path(), 4);
        let f = &files[&ID];
        let mut t = PageTable::default();
        for _ in 0..10 {
            assert_eq!(t.lsn((ID, PageNo(2)), f).unwrap(), Lsn::new(1, 102));
        }
        // The record that needed the LSN then changes the page: no re-read.
        let b = t.bytes_mut((ID, PageNo(2)), f).unwrap();
        assert_eq!(page::lsn(b), Lsn::new(1, 102));
        page::set_lsn(b, Lsn::new(2, 50));
        assert_eq!(t.lsn((ID, PageNo(2)), f).unwrap(), Lsn::new(2, 50));
        assert_eq!(vfs.counts().get(Op::Read), 1);
        assert_eq!(t.reads, 1);
    }

    #[test]
    fn a_page_past_the_end_of_its_file_is_not_read_and_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, files) = setup(dir.path(), 2);
        let f = &files[&ID];
        let mut t = PageTable::default();
        assert_eq!(t.lsn((ID, PageNo(5)), f).unwrap(), Lsn::ZERO);
        let b = t.bytes_mut((ID, PageNo(5)), f).unwrap();
        assert!(b.len() == PS && b.iter().all(|&x| x == 0));
        assert_eq!(vfs.counts().get(Op::Read), 0);
    }

    #[test]
    fn an_image_replaces_a_page_knowing_only_its_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, mut files) = setup(dir.path(), 3);
        let mut t = PageTable::default();
        // Page 1 is at (1, 101): an image logged before that changes
        // nothing, one after replaces it without reading its bytes again.
        assert!(t.lsn((ID, PageNo(1)), &files[&ID]).unwrap() >= Lsn::new(1, 90));
        t.put((ID, PageNo(1)), page_at(1, Lsn::new(3, 0)));
        assert_eq!(t.buffered(), PS);
        t.flush(&mut files).unwrap();
        assert_eq!(t.buffered(), 0);
        assert_eq!(vfs.counts().get(Op::Read), 1);
        let mut back = vec![0u8; PS];
        std::fs::File::open(dir.path().join("a.db"))
            .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, PS as u64))
            .unwrap();
        assert_eq!(page::check(&back, PageNo(1)), PageCheck::Ok);
        assert_eq!(page::lsn(&back), Lsn::new(3, 0));
    }

    #[test]
    fn write_back_writes_adjacent_pages_in_one_write_and_remembers_their_lsns() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, mut files) = setup(dir.path(), 2);
        let mut t = PageTable::default();
        // Pages 2..6 are new (past the end), 9 stands alone.
        for n in [2u32, 3, 4, 5, 9] {
            t.put((ID, PageNo(n)), page_at(n, Lsn::new(4, n)));
        }
        t.flush(&mut files).unwrap();
        let c = vfs.counts();
        assert_eq!(
            c.get(Op::Write),
            2,
            "one run of four pages, one single page"
        );
        assert_eq!(c.bytes_written, 5 * PS as u64);
        assert_eq!(files[&ID].disk_len, 10 * PS as u64);
        // Known after write-back: no read to learn them.
        for n in [2u32, 3, 4, 5, 9] {
            assert_eq!(t.lsn((ID, PageNo(n)), &files[&ID]).unwrap(), Lsn::new(4, n));
        }
        assert_eq!(vfs.counts().get(Op::Read), 0);
        // A written page changed again is read back (its bytes were let go).
        t.bytes_mut((ID, PageNo(3)), &files[&ID]).unwrap();
        assert_eq!(vfs.counts().get(Op::Read), 1);
    }

    #[test]
    fn a_rebound_file_id_has_its_disk_pages_read_again_and_keeps_replayed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, files) = setup(dir.path(), 3);
        let f = &files[&ID];
        let mut t = PageTable::default();
        t.lsn((ID, PageNo(1)), f).unwrap();
        t.put((ID, PageNo(2)), page_at(2, Lsn::new(6, 0)));
        t.forget_disk_pages(ID);
        assert_eq!(t.lsn((ID, PageNo(1)), f).unwrap(), Lsn::new(1, 101));
        assert_eq!(t.lsn((ID, PageNo(2)), f).unwrap(), Lsn::new(6, 0));
        assert_eq!(vfs.counts().get(Op::Read), 2);
        assert_eq!(t.buffered(), PS);
    }

    #[test]
    fn forgetting_a_file_drops_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (vfs, mut files) = setup(dir.path(), 2);
        let mut t = PageTable::default();
        t.put((ID, PageNo(1)), page_at(1, Lsn::new(5, 0)));
        t.forget_file(ID);
        assert_eq!(t.buffered(), 0);
        t.flush(&mut files).unwrap();
        assert_eq!(vfs.counts().get(Op::Write), 0);
        assert!(t.take_replayed().is_empty());
    }
}
