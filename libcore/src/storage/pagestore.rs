//! The seam between the B-tree and the rest of the engine. The B-tree knows
//! page layouts; a `PageStore` knows where pages live (the shared cache, a
//! transaction's private copies, a recovery overlay, a plain `Vec` in unit
//! tests). Reads see committed pages (plus the caller's own changes inside a
//! transaction); writes are copy-on-write into the transaction.

use crate::error::Result;
use crate::types::{FileId, PageNo};
use std::sync::Arc;

/// An immutable page image shared between the cache and readers.
pub type PageBuf = Arc<Vec<u8>>;

/// A page of the environment: its database file and its number (the key of
/// the buffer pool, of a transaction's pages and of recovery's page table).
pub type PageKey = (FileId, PageNo);

pub trait PageRead {
    fn page_size(&self) -> usize;
    /// The database file these pages belong to, for error messages.
    fn path(&self) -> &std::path::Path;
    /// The page's current bytes. Its checksum has been verified by the
    /// store; its contents are still untrusted and must be bounds-checked.
    fn page(&self, no: PageNo) -> Result<PageBuf>;
}

pub trait PageWrite: PageRead {
    /// A private, writable copy of an existing page (made on first use).
    fn page_mut(&mut self, no: PageNo) -> Result<&mut [u8]>;
    /// A writable all-zero page for a page number beyond the old end of the
    /// file (the caller allocated it through the meta page).
    fn page_new(&mut self, no: PageNo) -> Result<&mut [u8]>;
}

/// An in-memory store for the B-tree's unit tests and the fuzz targets
/// (test machinery: compiled for them only).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct MemStore {
    pub page_size: usize,
    pub pages: Vec<Option<PageBuf>>,
}

#[cfg(any(test, feature = "testing"))]
impl MemStore {
    pub fn new(page_size: usize) -> MemStore {
        MemStore {
            page_size,
            pages: Vec::new(),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl PageRead for MemStore {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn path(&self) -> &std::path::Path {
        std::path::Path::new("<memory>")
    }

    fn page(&self, no: PageNo) -> Result<PageBuf> {
        match self.pages.get(no.0 as usize) {
            Some(Some(p)) => Ok(p.clone()),
            _ => Err(crate::error::Error::corrupt(
                "<memory>",
                crate::error::Location::Page(no),
                "page does not exist",
            )),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl PageWrite for MemStore {
    fn page_mut(&mut self, no: PageNo) -> Result<&mut [u8]> {
        let slot = self.pages.get_mut(no.0 as usize).ok_or_else(|| {
            crate::error::Error::corrupt(
                "<memory>",
                crate::error::Location::Page(no),
                "page does not exist",
            )
        })?;
        match slot {
            Some(p) => Ok(Arc::make_mut(p).as_mut_slice()),
            None => Err(crate::error::Error::corrupt(
                "<memory>",
                crate::error::Location::Page(no),
                "page does not exist",
            )),
        }
    }

    fn page_new(&mut self, no: PageNo) -> Result<&mut [u8]> {
        let i = no.0 as usize;
        if self.pages.len() <= i {
            self.pages.resize(i + 1, None);
        }
        self.pages[i] = Some(Arc::new(vec![0u8; self.page_size]));
        self.page_mut(no)
    }
}
