//! Positioned reads: point lookup, the seek family, and `Scan`, the
//! sequential iterator that walks leaves through their right-sibling links
//! (what `db_dump` uses). Each call descends from the root, so no state is
//! kept between calls except in `Scan`, which holds one leaf image.

use super::fetch;
use super::read::{self, descend, leaf_kv, leaf_search, sibling, NodeRef, Target};
use crate::error::Result;
use crate::storage::page::Meta;
use crate::storage::pagestore::PageRead;

type Kv = (Vec<u8>, Vec<u8>);

pub(crate) fn get<S: PageRead + ?Sized>(s: &S, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::Key(key), None)?;
    let (i, found) = leaf_search(s, &m, &nd, key)?;
    if !found {
        return Ok(None);
    }
    let e = nd.leaf_ent(s, i)?;
    Ok(Some(read::item_bytes(s, &m, e.val)?))
}

/// Entry `i` of `nd`, or the first entry of the right sibling when `i` is
/// past the end.
fn at_or_right<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    nd: &NodeRef,
    i: usize,
) -> Result<Option<Kv>> {
    if i < nd.n {
        return leaf_kv(s, m, nd, i).map(Some);
    }
    let nx = nd.next();
    if nx.is_none() {
        return Ok(None);
    }
    let r = sibling(s, m, nd.pgno, nx, true)?;
    leaf_kv(s, m, &r, 0).map(Some)
}

/// Entry `i - 1` of `nd`, or the last entry of the left sibling when `i`
/// is 0.
fn before<S: PageRead + ?Sized>(s: &S, m: &Meta, nd: &NodeRef, i: usize) -> Result<Option<Kv>> {
    if i > 0 {
        return leaf_kv(s, m, nd, i - 1).map(Some);
    }
    let pv = nd.prev();
    if pv.is_none() {
        return Ok(None);
    }
    let l = sibling(s, m, nd.pgno, pv, false)?;
    leaf_kv(s, m, &l, l.n - 1).map(Some)
}

pub(crate) fn seek_ge<S: PageRead + ?Sized>(s: &S, key: &[u8]) -> Result<Option<Kv>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::Key(key), None)?;
    let (i, _) = leaf_search(s, &m, &nd, key)?;
    at_or_right(s, &m, &nd, i)
}

pub(crate) fn next_after<S: PageRead + ?Sized>(s: &S, key: &[u8]) -> Result<Option<Kv>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::Key(key), None)?;
    let (i, found) = leaf_search(s, &m, &nd, key)?;
    at_or_right(s, &m, &nd, if found { i + 1 } else { i })
}

pub(crate) fn prev_before<S: PageRead + ?Sized>(s: &S, key: &[u8]) -> Result<Option<Kv>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::Key(key), None)?;
    let (i, _) = leaf_search(s, &m, &nd, key)?;
    before(s, &m, &nd, i)
}

pub(crate) fn first<S: PageRead + ?Sized>(s: &S) -> Result<Option<Kv>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::First, None)?;
    at_or_right(s, &m, &nd, 0)
}

pub(crate) fn last<S: PageRead + ?Sized>(s: &S) -> Result<Option<Kv>> {
    let m = fetch::meta(s)?;
    let nd = descend(s, &m, Target::Last, None)?;
    before(s, &m, &nd, nd.n)
}

/// A forward iterator over the tree in key order, from the first key or
/// from the smallest key >= `from`. It follows right-sibling links, so a
/// full scan reads each leaf once. The tree must not change during a scan.
///
/// A damaged sibling chain cannot make it run forever: each leaf's keys
/// must increase, and each new leaf must link back to the one before and
/// start above the last key returned, so the keys returned always increase
/// and a cycle shows up as a `Corrupt` error at the first repeated page.
pub struct Scan {
    meta: Meta,
    cur: Option<NodeRef>,
    idx: usize,
}

impl Scan {
    pub fn new<S: PageRead + ?Sized>(s: &S, from: Option<&[u8]>) -> Result<Scan> {
        let meta = fetch::meta(s)?;
        let (nd, idx) = match from {
            Some(k) => {
                let nd = descend(s, &meta, Target::Key(k), None)?;
                let (i, _) = leaf_search(s, &meta, &nd, k)?;
                (nd, i)
            }
            None => (descend(s, &meta, Target::First, None)?, 0),
        };
        read::check_leaf_order(s, &meta, &nd)?;
        Ok(Scan {
            meta,
            cur: Some(nd),
            idx,
        })
    }

    /// The next pair, or None at the end. After an error the scan is over
    /// (further calls return None), so a careless caller cannot spin.
    #[allow(clippy::should_implement_trait)]
    pub fn next<S: PageRead + ?Sized>(&mut self, s: &S) -> Result<Option<Kv>> {
        let r = self.step(s);
        if r.is_err() {
            self.cur = None;
        }
        r
    }

    fn step<S: PageRead + ?Sized>(&mut self, s: &S) -> Result<Option<Kv>> {
        let Some(nd) = &self.cur else {
            return Ok(None);
        };
        if self.idx < nd.n {
            let kv = leaf_kv(s, &self.meta, nd, self.idx)?;
            self.idx += 1;
            return Ok(Some(kv));
        }
        let nx = nd.next();
        if nx.is_none() {
            self.cur = None;
            return Ok(None);
        }
        let r = sibling(s, &self.meta, nd.pgno, nx, true)?;
        read::check_leaf_order(s, &self.meta, &r)?;
        if nd.n > 0 {
            let last = nd.leaf_ent(s, nd.n - 1)?.key;
            let last = read::item_bytes(s, &self.meta, last)?;
            let first = r.leaf_ent(s, 0)?.key;
            if read::item_cmp(s, &self.meta, first, &last)? != std::cmp::Ordering::Greater {
                return Err(fetch::corrupt(
                    s,
                    nx,
                    "keys out of order across sibling leaves",
                ));
            }
        }
        let kv = leaf_kv(s, &self.meta, &r, 0)?;
        self.cur = Some(r);
        self.idx = 1;
        Ok(Some(kv))
    }

    /// The leaf the scan is on (for the tests).
    #[cfg(test)]
    pub fn page(&self) -> Option<crate::types::PageNo> {
        self.cur.as_ref().map(|n| n.pgno)
    }
}
