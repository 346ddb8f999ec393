//! Page allocation for one write operation. `Writer` holds the store and a
//! working copy of the meta page; pages come from the free list (linked
//! through each free page's `OFF_NEXT`, head in `meta.free_head`) before the
//! file grows past `meta.last_pgno`, and freed pages go back on its head.
//! `finish` writes the meta page once, and only if it changed, so a put
//! that neither splits nor frees costs one meta write (for `nkeys`).

use super::fetch::{self, corrupt, in_range};
use super::node;
use crate::error::Result;
use crate::storage::page::{self, Meta, PageType};
use crate::storage::pagestore::PageWrite;
use crate::types::PageNo;

pub(crate) struct Writer<'s, S: PageWrite> {
    pub s: &'s mut S,
    pub meta: Meta,
    orig: Meta,
}

impl<'s, S: PageWrite> Writer<'s, S> {
    pub fn open(s: &'s mut S) -> Result<Self> {
        let meta = fetch::meta(&*s)?;
        Ok(Writer {
            s,
            meta,
            orig: meta,
        })
    }

    /// A writable tree, overflow or free page, range-checked. Its length is
    /// the page size: the store hands out whole pages, and `load` (through
    /// which every existing page is first read) or `alloc` has checked it.
    pub fn page_mut(&mut self, pg: PageNo) -> Result<&mut [u8]> {
        if !in_range(&self.meta, pg) {
            return Err(corrupt(&*self.s, pg, "page number out of range"));
        }
        self.s.page_mut(pg)
    }

    /// A fresh page of type `ty`, formatted and empty.
    pub fn alloc(&mut self, ty: PageType, level: u8) -> Result<PageNo> {
        let pg = if self.meta.free_head.is_none() {
            let pg = PageNo(self.meta.last_pgno.0 + 1);
            if pg.is_none() {
                return Err(corrupt(&*self.s, PageNo::META, "database file is full"));
            }
            let b = self.s.page_new(pg)?;
            if b.len() != self.meta.page_size as usize {
                return Err(corrupt(&*self.s, pg, "page has the wrong size"));
            }
            self.meta.last_pgno = pg;
            pg
        } else {
            let pg = self.meta.free_head;
            let b = fetch::load(&*self.s, &self.meta, pg)?;
            if page::page_type(&b) != Some(PageType::Free) {
                return Err(corrupt(&*self.s, pg, "free list names a page in use"));
            }
            let nx = node::next(&b);
            if !nx.is_none() && !in_range(&self.meta, nx) {
                return Err(corrupt(&*self.s, pg, "free list link out of range"));
            }
            self.meta.free_head = nx;
            pg
        };
        let b = self.page_mut(pg)?;
        node::format(b, pg, ty, level);
        Ok(pg)
    }

    /// Puts `pg` on the free list. Its old contents are wiped so a stale
    /// entry can never be read back.
    pub fn free(&mut self, pg: PageNo) -> Result<()> {
        let head = self.meta.free_head;
        let b = self.page_mut(pg)?;
        node::format(b, pg, PageType::Free, 0);
        node::set_next(b, head);
        self.meta.free_head = pg;
        Ok(())
    }

    /// Writes the meta page if anything in it changed.
    pub fn finish(self) -> Result<()> {
        if self.meta != self.orig {
            let b = self.s.page_mut(PageNo::META)?;
            self.meta.encode(b);
        }
        Ok(())
    }
}

impl<S: PageWrite> Writer<'_, S> {
    /// Adds file and page to a page-local error.
    pub fn chk<T>(&self, pg: PageNo, r: node::NResult<T>) -> Result<T> {
        fetch::at(&*self.s, pg, r)
    }
}
