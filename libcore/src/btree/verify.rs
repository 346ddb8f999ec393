//! `db_verify` for a tree: checks every page reachable from the meta page
//! and lists what is wrong instead of stopping at the first problem.
//!
//! Checked: the meta page; each tree page's type, level, header, slots and
//! that entries lie inside the heap without overlapping; keys strictly
//! increasing within a page and inside the range its parent's separators
//! give it; entry 0 of internal pages empty; no empty non-root page; leaf
//! sibling links matching key order; overflow chains (types, per-page
//! lengths, total length, termination); the free list (types, cycles);
//! that no page is reached twice or is both used and free; that every page
//! up to `last_pgno` is accounted for; and `meta.nkeys`.
//!
//! The walk recurses once per level and levels must fall by one per step,
//! so depth is bounded by `node::MAX_LEVEL`; a page reached twice is not
//! entered again, so the work is bounded by the pages in the file.

use super::fetch;
use super::node::{self, Item};
use super::overflow;
use super::read::{self, NodeRef};
use crate::error::{Error, Location, Result};
use crate::storage::page::{self, Meta, PageType};
use crate::storage::pagestore::PageRead;
use crate::types::PageNo;
use std::cmp::Ordering;
use std::collections::HashMap;

/// One thing wrong with one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub page: PageNo,
    pub what: String,
}

/// Beyond this many pages the "unaccounted page" sweep only counts.
const SWEEP_LIMIT: u32 = 1 << 22;
/// Unaccounted pages listed one by one before summarising.
const LIST_LIMIT: usize = 20;

struct V<'a, S: PageRead + ?Sized> {
    s: &'a S,
    m: Meta,
    probs: Vec<Problem>,
    /// What each page was found to be, to catch pages used twice.
    owner: HashMap<u32, &'static str>,
    /// Leaves in key order: (page, prev link, next link).
    leaves: Vec<(PageNo, PageNo, PageNo)>,
    entries: u64,
}

pub(crate) fn verify<S: PageRead + ?Sized>(s: &S) -> Result<Vec<Problem>> {
    let m = match fetch::meta(s) {
        Ok(m) => m,
        Err(e @ (Error::Corrupt { .. } | Error::Version { .. })) => {
            return Ok(vec![Problem {
                page: PageNo::META,
                what: message(&e),
            }])
        }
        Err(e) => return Err(e),
    };
    let mut v = V {
        s,
        m,
        probs: Vec::new(),
        owner: HashMap::new(),
        leaves: Vec::new(),
        entries: 0,
    };
    v.owner.insert(0, "meta");
    v.tree(m.root, None, None, None)?;
    v.siblings();
    if v.entries != m.nkeys {
        v.problem(
            PageNo::META,
            format!(
                "meta page counts {} keys, leaves hold {}",
                m.nkeys, v.entries
            ),
        );
    }
    v.free_list()?;
    v.sweep();
    Ok(v.probs)
}

/// The error's sentence without the file name (the caller knows the file).
fn message(e: &Error) -> String {
    match e {
        Error::Corrupt { what, .. } => what.clone(),
        Error::Version { what, .. } => what.clone(),
        e => e.to_string(),
    }
}

impl<S: PageRead + ?Sized> V<'_, S> {
    fn problem(&mut self, page: PageNo, what: impl Into<String>) {
        self.probs.push(Problem {
            page,
            what: what.into(),
        });
    }

    /// Turns corruption into a problem (None); other errors (I/O) stop.
    fn soft<T>(&mut self, pg: PageNo, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(x) => Ok(Some(x)),
            Err(e @ Error::Corrupt { .. }) => {
                let at = match e {
                    Error::Corrupt {
                        at: Location::Page(p),
                        ..
                    } => p,
                    _ => pg,
                };
                self.problem(at, message(&e));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Records `pg` as `what`; false (and a problem) if it was already taken.
    fn claim(&mut self, pg: PageNo, what: &'static str) -> bool {
        if let Some(prev) = self.owner.insert(pg.0, what) {
            self.owner.insert(pg.0, prev);
            self.problem(pg, format!("page used as {what} is already used as {prev}"));
            return false;
        }
        true
    }

    /// Checks an overflow chain and claims its pages.
    fn chain(&mut self, owner: PageNo, first: PageNo, len: usize) -> Result<bool> {
        let r = overflow::pages(self.s, &self.m, first, len);
        let Some(pages) = self.soft(owner, r)? else {
            return Ok(false);
        };
        let mut ok = true;
        for p in pages {
            ok &= self.claim(p, "overflow");
        }
        Ok(ok)
    }

    /// The full bytes of a key, after checking its chain.
    fn key(&mut self, nd: &NodeRef, it: Item<'_>) -> Result<Option<Vec<u8>>> {
        match it {
            Item::Inline(b) => Ok(Some(b.to_vec())),
            Item::Ovf { len, pgno } => {
                if !self.chain(nd.pgno, pgno, len)? {
                    return Ok(None);
                }
                let r = overflow::read(self.s, &self.m, pgno, len);
                self.soft(nd.pgno, r)
            }
        }
    }

    /// Entries must lie in the heap and not overlap.
    fn layout(&mut self, nd: &NodeRef) -> bool {
        let mut ranges = Vec::with_capacity(nd.n);
        for i in 0..nd.n {
            match node::entry_range(&nd.buf, nd.n, i, nd.leaf) {
                Ok(r) => ranges.push(r),
                Err(w) => {
                    self.problem(nd.pgno, format!("entry {i}: {w}"));
                    return false;
                }
            }
        }
        ranges.sort_unstable();
        if ranges.windows(2).any(|w| w[0].1 > w[1].0) {
            self.problem(nd.pgno, "entries overlap");
            return false;
        }
        true
    }

    /// Checks the subtree at `pg`, whose keys must lie in `[lo, hi)`.
    fn tree(
        &mut self,
        pg: PageNo,
        level: Option<u8>,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<()> {
        let is_root = level.is_none();
        if !fetch::in_range(&self.m, pg) {
            self.problem(
                pg,
                format!("page number out of range (last page {})", self.m.last_pgno),
            );
            return Ok(());
        }
        if !self.claim(pg, "btree") {
            return Ok(());
        }
        let r = read::node(self.s, &self.m, pg, level);
        let Some(nd) = self.soft(pg, r)? else {
            return Ok(());
        };
        if !self.layout(&nd) {
            return Ok(());
        }
        if nd.n == 0 && !(is_root && nd.leaf) {
            self.problem(pg, "page has no entries");
        }
        if !nd.leaf && is_root && nd.n == 1 {
            self.problem(pg, "internal root has a single child");
        }
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(nd.n);
        let mut children = Vec::new();
        for i in 0..nd.n {
            let (k, child) = if nd.leaf {
                let Some(e) = self.soft(pg, nd.leaf_ent(self.s, i))? else {
                    return Ok(());
                };
                if let Some((p, len)) = e.val.chain() {
                    self.chain(pg, p, len)?;
                }
                (e.key, None)
            } else {
                let Some(e) = self.soft(pg, nd.branch_ent(self.s, i))? else {
                    return Ok(());
                };
                if i == 0 && e.key != Item::Inline(&[]) {
                    self.problem(pg, "first entry of an internal page has a key");
                }
                (e.key, Some(e.child))
            };
            let Some(k) = self.key(&nd, k)? else {
                return Ok(());
            };
            // Entry 0 of an internal page stands for the parent's bound.
            let bounded = nd.leaf || i > 0;
            if bounded {
                if let Some(prev) = keys.last() {
                    if (i > 1 || nd.leaf) && prev.as_slice().cmp(&k) != Ordering::Less {
                        self.problem(pg, format!("keys out of order at entry {i}"));
                    }
                }
                if lo.is_some_and(|lo| k.as_slice() < lo) {
                    self.problem(pg, format!("entry {i} is below its parent's separator"));
                }
                if hi.is_some_and(|hi| k.as_slice() >= hi) {
                    self.problem(pg, format!("entry {i} is not below the next separator"));
                }
            }
            keys.push(k);
            children.extend(child);
        }
        if nd.leaf {
            self.entries += nd.n as u64;
            self.leaves.push((pg, nd.prev(), nd.next()));
            return Ok(());
        }
        if !nd.prev().is_none() || !nd.next().is_none() {
            self.problem(pg, "internal page has sibling links");
        }
        let level = nd.level - 1;
        drop(nd);
        for (i, child) in children.into_iter().enumerate() {
            let clo = if i == 0 { lo } else { Some(keys[i].as_slice()) };
            let chi = keys.get(i + 1).map(|k| k.as_slice()).or(hi);
            self.tree(child, Some(level), clo, chi)?;
        }
        Ok(())
    }

    fn siblings(&mut self) {
        let leaves = std::mem::take(&mut self.leaves);
        for (i, &(pg, prev, next)) in leaves.iter().enumerate() {
            let want_prev = if i == 0 {
                PageNo::NONE
            } else {
                leaves[i - 1].0
            };
            let want_next = leaves.get(i + 1).map_or(PageNo::NONE, |l| l.0);
            if prev != want_prev {
                self.problem(
                    pg,
                    format!("left sibling link is {prev}, expected {want_prev}"),
                );
            }
            if next != want_next {
                self.problem(
                    pg,
                    format!("right sibling link is {next}, expected {want_next}"),
                );
            }
        }
    }

    fn free_list(&mut self) -> Result<()> {
        let mut pg = self.m.free_head;
        while !pg.is_none() {
            if !fetch::in_range(&self.m, pg) {
                self.problem(
                    PageNo::META,
                    format!("free list names page {pg}, out of range"),
                );
                return Ok(());
            }
            if !self.claim(pg, "free") {
                return Ok(());
            }
            let r = fetch::load(self.s, &self.m, pg);
            let Some(b) = self.soft(pg, r)? else {
                return Ok(());
            };
            if page::page_type(&b) != Some(PageType::Free) {
                self.problem(pg, "page on the free list is not a free page");
                return Ok(());
            }
            pg = node::next(&b);
        }
        Ok(())
    }

    /// Pages neither in the tree nor on the free list are lost space.
    fn sweep(&mut self) {
        let last = self.m.last_pgno.0;
        if last > SWEEP_LIMIT {
            let lost = (u64::from(last) + 1).saturating_sub(self.owner.len() as u64);
            if lost > 0 {
                self.problem(
                    PageNo::META,
                    format!("{lost} pages neither in use nor free"),
                );
            }
            return;
        }
        let lost: Vec<u32> = (1..=last).filter(|p| !self.owner.contains_key(p)).collect();
        for &p in lost.iter().take(LIST_LIMIT) {
            self.problem(PageNo(p), "page neither in use nor free");
        }
        if lost.len() > LIST_LIMIT {
            self.problem(
                PageNo::META,
                format!(
                    "{} more pages neither in use nor free",
                    lost.len() - LIST_LIMIT
                ),
            );
        }
    }
}
