//! `db_stat`-style numbers for a tree: levels, pages of each kind, keys and
//! bytes in use. One pass over the reachable pages and the free list; a page
//! met twice is reported as corruption (that also bounds the walk).

use super::fetch::{self, corrupt};
use super::node;
use super::overflow;
use super::read;
use crate::error::Result;
use crate::storage::page::{self, PageType};
use crate::storage::pagestore::PageRead;
use std::collections::HashSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub page_size: u32,
    /// Height of the tree: 1 when the root is a leaf.
    pub levels: u32,
    pub internal_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
    pub free_pages: u64,
    /// Pages the file has (meta page included): `last_pgno + 1`.
    pub total_pages: u64,
    /// Key count kept in the meta page.
    pub nkeys: u64,
    /// Key/value pairs found in the leaves (equals `nkeys` in a sound tree).
    pub entries: u64,
    /// Bytes in use (page header, slots, entries) on each kind of page;
    /// divide by pages * page_size for the fill factor.
    pub internal_bytes: u64,
    pub leaf_bytes: u64,
    pub overflow_bytes: u64,
}

pub(crate) fn stats<S: PageRead + ?Sized>(s: &S) -> Result<Stats> {
    let m = fetch::meta(s)?;
    let mut st = Stats {
        page_size: m.page_size,
        nkeys: m.nkeys,
        total_pages: u64::from(m.last_pgno.0) + 1,
        ..Stats::default()
    };
    let mut seen: HashSet<u32> = HashSet::new();
    let mut stack = vec![(m.root, None)];
    while let Some((pg, level)) = stack.pop() {
        let nd = read::node(s, &m, pg, level)?;
        if level.is_none() {
            st.levels = u32::from(nd.level);
        }
        if !seen.insert(nd.pgno.0) {
            return Err(corrupt(s, nd.pgno, "page reachable twice"));
        }
        let used = node::DATA as u64
            + fetch::at(s, nd.pgno, node::used_bytes(&nd.buf, nd.n, nd.leaf))? as u64;
        let mut chains = Vec::new();
        if nd.leaf {
            st.leaf_pages += 1;
            st.leaf_bytes += used;
            st.entries += nd.n as u64;
            for i in 0..nd.n {
                let e = nd.leaf_ent(s, i)?;
                chains.extend([e.key.chain(), e.val.chain()].into_iter().flatten());
            }
        } else {
            st.internal_pages += 1;
            st.internal_bytes += used;
            for i in 0..nd.n {
                let e = nd.branch_ent(s, i)?;
                chains.extend(e.key.chain());
                stack.push((e.child, Some(nd.level - 1)));
            }
        }
        for (first, len) in chains {
            for p in overflow::pages(s, &m, first, len)? {
                if !seen.insert(p.0) {
                    return Err(corrupt(s, p, "overflow page reachable twice"));
                }
                st.overflow_pages += 1;
            }
            st.overflow_bytes += len as u64
                + node::DATA as u64
                    * (len as u64).div_ceil(node::ovf_capacity(m.page_size as usize) as u64);
        }
    }
    let mut pg = m.free_head;
    while !pg.is_none() {
        let b = fetch::load(s, &m, pg)?;
        if page::page_type(&b) != Some(PageType::Free) {
            return Err(corrupt(s, pg, "page on the free list is not free"));
        }
        if !seen.insert(pg.0) {
            return Err(corrupt(s, pg, "free page also in use or listed twice"));
        }
        st.free_pages += 1;
        pg = node::next(&b);
    }
    Ok(st)
}
