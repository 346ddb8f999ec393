//! Checked access to pages for every B-tree operation: the meta page, a
//! tree page with its type, level and header validated, and the helper that
//! turns a page-local complaint into `Error::Corrupt` naming file and page.
//! Nothing past this module trusts a page number it did not get from here.

use super::node::{self, NResult};
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

/// A validated leaf or internal page.
pub(crate) struct NodeRef {
    pub pgno: PageNo,
    pub buf: PageBuf,
    pub n: usize,
    pub leaf: bool,
    pub level: u8,
}

/// Loads a tree page; `level` is what the parent implies (None at the root).
pub(crate) fn node<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    pg: PageNo,
    level: Option<u8>,
) -> Result<NodeRef> {
    let buf = load(s, m, pg)?;
    let leaf = match page::page_type(&buf) {
        Some(PageType::Leaf) => true,
        Some(PageType::Internal) => false,
        t => {
            return Err(corrupt(
                s,
                pg,
                format!(
                    "expected a btree page, found a {} page",
                    t.map_or("unknown", |t| t.name())
                ),
            ))
        }
    };
    let lvl = node::level(&buf);
    let ok = if leaf {
        lvl == node::LEAF_LEVEL
    } else {
        lvl > node::LEAF_LEVEL && lvl <= node::MAX_LEVEL
    };
    if !ok || level.is_some_and(|l| l != lvl) {
        return Err(corrupt(s, pg, format!("bad btree level {lvl}")));
    }
    let n = at(s, pg, node::check_header(&buf))?;
    Ok(NodeRef {
        pgno: pg,
        buf,
        n,
        leaf,
        level: lvl,
    })
}

impl NodeRef {
    pub fn leaf_ent<S: PageRead + ?Sized>(&self, s: &S, i: usize) -> Result<node::LeafEnt<'_>> {
        at(s, self.pgno, node::leaf_at(&self.buf, self.n, i))
    }

    pub fn branch_ent<S: PageRead + ?Sized>(&self, s: &S, i: usize) -> Result<node::BranchEnt<'_>> {
        at(s, self.pgno, node::branch_at(&self.buf, self.n, i))
    }

    pub fn next(&self) -> PageNo {
        node::next(&self.buf)
    }

    pub fn prev(&self) -> PageNo {
        node::prev(&self.buf)
    }
}

/// The full bytes of a stored key or value.
pub(crate) fn item_bytes<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    it: node::Item<'_>,
) -> Result<Vec<u8>> {
    match it {
        node::Item::Inline(b) => Ok(b.to_vec()),
        node::Item::Ovf { len, pgno } => super::overflow::read(s, m, pgno, len),
    }
}

/// Order of a stored key relative to `key`.
pub(crate) fn item_cmp<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    it: node::Item<'_>,
    key: &[u8],
) -> Result<std::cmp::Ordering> {
    match it {
        node::Item::Inline(b) => Ok(b.cmp(key)),
        node::Item::Ovf { len, pgno } => super::overflow::cmp(s, m, pgno, len, key),
    }
}

/// Where a descent goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'k> {
    Key(&'k [u8]),
    First,
    Last,
}

/// One internal page passed on the way down: which child was taken, and
/// whether the page is the rightmost of its level (for append splits).
pub(crate) struct Step {
    pub pgno: PageNo,
    pub idx: usize,
    pub rightmost: bool,
}

/// Index of the child of internal page `nd` whose range holds `key`:
/// the last entry whose key is <= key (entry 0 stands for minus infinity).
pub(crate) fn child_index<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    nd: &NodeRef,
    key: &[u8],
) -> Result<usize> {
    let (i, found) = node::lower_bound(1, nd.n, |j| item_cmp(s, m, nd.branch_ent(s, j)?.key, key))?;
    Ok(if found { i } else { i - 1 })
}

/// Descends from the root to the leaf for `t`, recording the internal
/// pages passed in `path` when given. Levels must fall by one per step,
/// which bounds the walk even on a damaged tree.
pub(crate) fn descend<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    t: Target<'_>,
    mut path: Option<&mut Vec<Step>>,
) -> Result<NodeRef> {
    let mut nd = node(s, m, m.root, None)?;
    let mut rightmost = true;
    while !nd.leaf {
        if nd.n == 0 {
            return Err(corrupt(s, nd.pgno, "internal page has no entries"));
        }
        let idx = match t {
            Target::Key(k) => child_index(s, m, &nd, k)?,
            Target::First => 0,
            Target::Last => nd.n - 1,
        };
        let child = nd.branch_ent(s, idx)?.child;
        if let Some(p) = path.as_deref_mut() {
            p.push(Step {
                pgno: nd.pgno,
                idx,
                rightmost,
            });
        }
        rightmost = rightmost && idx + 1 == nd.n;
        nd = node(s, m, child, Some(nd.level - 1))?;
    }
    Ok(nd)
}

/// Position of `key` in leaf `nd`: first index >= key, and whether equal.
pub(crate) fn leaf_search<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    nd: &NodeRef,
    key: &[u8],
) -> Result<(usize, bool)> {
    node::lower_bound(0, nd.n, |j| {
        let k = at(s, nd.pgno, node::leaf_key_at(&nd.buf, nd.n, j))?;
        item_cmp(s, m, k, key)
    })
}

/// Key and value of entry `i` of leaf `nd`.
pub(crate) fn leaf_kv<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    nd: &NodeRef,
    i: usize,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = nd.leaf_ent(s, i)?;
    Ok((item_bytes(s, m, e.key)?, item_bytes(s, m, e.val)?))
}

/// The sibling leaf `pg` reached from leaf `from`: a leaf whose back link
/// points at `from` and that holds entries (only the root leaf may be empty).
pub(crate) fn sibling<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    from: PageNo,
    pg: PageNo,
    rightward: bool,
) -> Result<NodeRef> {
    let nd = node(s, m, pg, Some(node::LEAF_LEVEL))?;
    let back = if rightward { nd.prev() } else { nd.next() };
    if back != from {
        return Err(corrupt(
            s,
            pg,
            format!("sibling link back to page {back}, expected {from}"),
        ));
    }
    if nd.n == 0 {
        return Err(corrupt(s, pg, "empty leaf in the sibling chain"));
    }
    Ok(nd)
}

/// Checks that the keys of leaf `nd` strictly increase. Scans use it so
/// that the keys they return always increase, which rules out cycles.
pub(crate) fn check_leaf_order<S: PageRead + ?Sized>(s: &S, m: &Meta, nd: &NodeRef) -> Result<()> {
    let mut prev: Option<node::Item<'_>> = None;
    for i in 0..nd.n {
        let k = nd.leaf_ent(s, i)?.key;
        if let Some(p) = prev {
            let ord = match (p, k) {
                (node::Item::Inline(a), node::Item::Inline(b)) => a.cmp(b),
                (p, k) => item_bytes(s, m, p)?.as_slice().cmp(&item_bytes(s, m, k)?),
            };
            if ord != std::cmp::Ordering::Less {
                return Err(corrupt(
                    s,
                    nd.pgno,
                    format!("keys out of order at entry {i}"),
                ));
            }
        }
        prev = Some(k);
    }
    Ok(())
}
