//! Checked access to tree pages for every B-tree operation: a tree page
//! with its type, level and header validated (pages themselves are fetched
//! and checked in `fetch`), descent, sibling walks and item comparison.

use super::fetch::{at, corrupt, load};
use super::node;
use crate::error::Result;
use crate::storage::page::{self, Meta, PageType};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::types::PageNo;

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
