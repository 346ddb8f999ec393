//! Checked fetching of single pages, the lowest step of every B-tree
//! operation: the meta page with its fields sanity-checked, a page by
//! number after checking the number, its size and its self-identification,
//! and the helpers that turn a page-local complaint into `Error::Corrupt`
//! naming file and page. Nothing past this module trusts a page number it
//! did not check here.

use super::node::NResult;
use crate::error::{Error, Location, Result};
use crate::storage::page::{self, Meta, MetaError, PageType};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::types::PageNo;

pub(crate) fn corrupt<S: PageRead + ?Sized>(s: &S, pg: PageNo, what: impl Into<String>) -> Error {
    Error::corrupt(s.path(), Location::Page(pg), what)
}

/// Adds file and page to a page-local error.
pub(crate) fn at<T, S: PageRead + ?Sized>(s: &S, pg: PageNo, r: NResult<T>) -> Result<T> {
    r.map_err(|w| corrupt(s, pg, w))
}

/// Reads and sanity-checks the meta page.
pub(crate) fn meta<S: PageRead + ?Sized>(s: &S) -> Result<Meta> {
    let b = s.page(PageNo::META)?;
    let m = match Meta::decode(&b) {
        Ok(m) => m,
        Err(MetaError::Version(v)) => {
            return Err(Error::Version {
                path: s.path().to_path_buf(),
                what: format!("database format version {v} is not supported"),
            })
        }
        Err(MetaError::NotADatabase) => {
            return Err(corrupt(s, PageNo::META, "not a database (bad magic)"))
        }
        Err(MetaError::BadPageSize(n)) => {
            return Err(corrupt(s, PageNo::META, format!("invalid page size {n}")))
        }
    };
    if page::page_type(&b) != Some(PageType::Meta) {
        return Err(corrupt(s, PageNo::META, "page 0 is not a meta page"));
    }
    if m.page_size as usize != s.page_size() || b.len() != s.page_size() {
        return Err(corrupt(
            s,
            PageNo::META,
            format!(
                "meta page says page size {}, file uses {}",
                m.page_size,
                s.page_size()
            ),
        ));
    }
    if m.last_pgno.is_none() || m.last_pgno.0 == 0 {
        return Err(corrupt(s, PageNo::META, "last page number is invalid"));
    }
    if !in_range(&m, m.root) {
        return Err(corrupt(
            s,
            PageNo::META,
            format!("root page {} out of range", m.root),
        ));
    }
    Ok(m)
}

/// A page number a tree link may name: not the meta page, not past the end.
pub(crate) fn in_range(m: &Meta, pg: PageNo) -> bool {
    pg.0 != 0 && pg.0 <= m.last_pgno.0 && !pg.is_none()
}

/// Fetches page `pg` after checking the number, size and self-identification.
pub(crate) fn load<S: PageRead + ?Sized>(s: &S, m: &Meta, pg: PageNo) -> Result<PageBuf> {
    if !in_range(m, pg) {
        return Err(corrupt(
            s,
            pg,
            format!("page number out of range (last page {})", m.last_pgno),
        ));
    }
    let b = s.page(pg)?;
    if b.len() != m.page_size as usize {
        return Err(corrupt(s, pg, "page has the wrong size"));
    }
    if page::pgno(&b) != pg {
        return Err(corrupt(
            s,
            pg,
            format!("page claims to be page {}", page::pgno(&b)),
        ));
    }
    Ok(b)
}
