//! Bookkeeping of bulk mode (DESIGN.md section 4): which pages a bulk
//! transaction wrote straight to a data file instead of the log.
//!
//! * [`SpillSet`]: the pages one open bulk transaction has already
//!   written to one file (*spilled*) before its commit, so that it holds
//!   only a bounded number of pages in memory. All of them lie past the
//!   file's committed last page, where no committed state can see them
//!   until the commit's meta page does; the transaction reads them back
//!   from the file.
//! * [`BulkPages`]: per file, the page ranges committed bulk transactions
//!   wrote straight to it since the last checkpoint. No image of them is
//!   in the log, so their next change is logged as a full image (a torn
//!   write of it stays repairable). Ranges, not a set of pages: a load of
//!   millions of pages keeps this a few bytes.

use crate::engine::cache::PageKey;
use crate::types::{FileId, PageNo};
use std::collections::HashMap;

/// Pages spilled to one file, a bitmap from the first page past the
/// file's committed end.
#[derive(Debug, Clone)]
pub struct SpillSet {
    /// The first page number that may be spilled (committed last + 1).
    base: u32,
    bits: Vec<u64>,
    /// Smallest and largest page spilled, when any.
    span: Option<(PageNo, PageNo)>,
}

impl SpillSet {
    pub fn new(base: PageNo) -> SpillSet {
        SpillSet {
            base: base.0,
            bits: Vec::new(),
            span: None,
        }
    }

    /// Whether `no` is past the committed end: only such pages may spill.
    pub fn may_spill(&self, no: PageNo) -> bool {
        no.0 >= self.base && !no.is_none()
    }

    /// The first page past the committed end.
    pub fn base(&self) -> PageNo {
        PageNo(self.base)
    }

    pub fn insert(&mut self, no: PageNo) {
        if !self.may_spill(no) {
            return;
        }
        let i = (no.0 - self.base) as usize;
        if self.bits.len() <= i / 64 {
            self.bits.resize(i / 64 + 1, 0);
        }
        self.bits[i / 64] |= 1 << (i % 64);
        self.span = Some(match self.span {
            None => (no, no),
            Some((a, b)) => (a.min(no), b.max(no)),
        });
    }

    pub fn contains(&self, no: PageNo) -> bool {
        if !self.may_spill(no) {
            return false;
        }
        let i = (no.0 - self.base) as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Smallest and largest page spilled, if any.
    pub fn span(&self) -> Option<(PageNo, PageNo)> {
        self.span
    }
}

/// Page ranges written by committed bulk transactions since the last
/// checkpoint (see the module comment).
#[derive(Debug, Default)]
pub struct BulkPages(HashMap<FileId, Vec<(PageNo, PageNo)>>);

impl BulkPages {
    /// Records `first..=last` of `file`.
    pub fn insert_range(&mut self, file: FileId, first: PageNo, last: PageNo) {
        self.0.entry(file).or_default().push((first, last));
    }

    pub fn contains(&self, key: &PageKey) -> bool {
        self.0
            .get(&key.0)
            .is_some_and(|v| v.iter().any(|(a, b)| *a <= key.1 && key.1 <= *b))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Whether a lease is held in the region of the environment at `home`: a
/// replication master or a hot backup is copying its log, and a bulk
/// transaction committing now is logged in full (its pages as images,
/// no marker) so the copy needs nothing the log does not carry. A region
/// whose lock another process holds right now counts as leased: the
/// owner never waits for that lock, and logging in full is always safe.
pub(crate) fn lease_held(vfs: &crate::storage::vfs::SharedVfs, home: &std::path::Path) -> bool {
    let region = crate::engine::region::Region::at(vfs, home);
    if !vfs.exists(region.path()) {
        return false;
    }
    match region.try_read() {
        Some(st) => !st.live_leases(crate::types::now_secs()).is_empty(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_set_and_ranges() {
        let mut s = SpillSet::new(PageNo(5));
        assert!(!s.may_spill(PageNo(4)) && s.may_spill(PageNo(5)));
        s.insert(PageNo(4));
        assert_eq!(s.span(), None);
        for p in [7u32, 200, 5] {
            s.insert(PageNo(p));
        }
        assert!(s.contains(PageNo(7)) && s.contains(PageNo(200)) && s.contains(PageNo(5)));
        assert!(!s.contains(PageNo(6)) && !s.contains(PageNo(201)) && !s.contains(PageNo(4)));
        assert_eq!(s.span(), Some((PageNo(5), PageNo(200))));
        let mut b = BulkPages::default();
        b.insert_range(FileId(1), PageNo(3), PageNo(9));
        assert!(b.contains(&(FileId(1), PageNo(3))) && b.contains(&(FileId(1), PageNo(9))));
        assert!(!b.contains(&(FileId(1), PageNo(10))) && !b.contains(&(FileId(2), PageNo(5))));
        b.clear();
        assert!(!b.contains(&(FileId(1), PageNo(3))));
    }
}
