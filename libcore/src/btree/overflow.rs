//! Overflow chains: keys and values too large to sit in a tree page are
//! stored in a chain of overflow pages, each carrying `page_size - 32` bytes
//! (the last one the remainder) at offset 32, its data length in the header
//! field `OFF_HI` and the next page in `OFF_NEXT` (NONE at the end).
//!
//! The owning entry stores the total length and the first page. Every chain
//! has exactly `ceil(len / capacity)` pages, each full except the last, so
//! a walk is bounded by the length the entry claims (itself at most
//! `MAX_ITEM`), never by links read from disk. A chain is owned by exactly
//! one entry: separators copied into internal pages get their own chain.

use super::alloc::Writer;
use super::fetch::{corrupt, load};
use super::node;
use super::MAX_ITEM;
use crate::error::Result;
use crate::storage::page::{Meta, PageType};
use crate::storage::pagestore::{PageRead, PageWrite};
use crate::types::PageNo;
use std::cmp::Ordering;

/// Walks the chain `first` of `len` bytes, handing each page's data to `f`
/// until `f` returns false. Checks types, lengths and the terminating link.
pub(crate) fn walk<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    first: PageNo,
    len: usize,
    mut f: impl FnMut(PageNo, &[u8]) -> bool,
) -> Result<()> {
    if len == 0 || len > MAX_ITEM {
        return Err(corrupt(
            s,
            first,
            format!("overflow item length {len} is invalid"),
        ));
    }
    let cap = node::ovf_capacity(m.page_size as usize);
    let mut pg = first;
    let mut left = len;
    while left > 0 {
        let b = load(s, m, pg)?;
        if crate::storage::page::page_type(&b) != Some(PageType::Overflow) {
            return Err(corrupt(s, pg, "expected an overflow page"));
        }
        let here = node::hi(&b);
        if here != left.min(cap) {
            return Err(corrupt(
                s,
                pg,
                format!(
                    "overflow page holds {here} bytes, chain needs {}",
                    left.min(cap)
                ),
            ));
        }
        left -= here;
        let nx = node::next(&b);
        if (left == 0) != nx.is_none() {
            return Err(corrupt(
                s,
                pg,
                "overflow chain link does not match its length",
            ));
        }
        if !f(pg, &b[node::DATA..node::DATA + here]) {
            return Ok(());
        }
        pg = nx;
    }
    Ok(())
}

/// The whole item.
pub(crate) fn read<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    first: PageNo,
    len: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(MAX_ITEM));
    walk(s, m, first, len, |_, d| {
        out.extend_from_slice(d);
        true
    })?;
    Ok(out)
}

/// Orders the stored item against `key` (memcmp, shorter prefix first),
/// reading only as many pages as it takes to decide.
pub(crate) fn cmp<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    first: PageNo,
    len: usize,
    key: &[u8],
) -> Result<Ordering> {
    let mut pos = 0usize;
    let mut res = Ordering::Equal;
    walk(s, m, first, len, |_, d| {
        let rest = &key[pos.min(key.len())..];
        let k = &rest[..rest.len().min(d.len())];
        res = d[..k.len()].cmp(k);
        if res == Ordering::Equal && k.len() < d.len() {
            // The key ran out inside the stored item: stored is longer.
            res = Ordering::Greater;
        }
        pos += d.len();
        res == Ordering::Equal
    })?;
    if res == Ordering::Equal && key.len() > len {
        res = Ordering::Less;
    }
    Ok(res)
}

/// The pages of a chain, validated, in order.
pub(crate) fn pages<S: PageRead + ?Sized>(
    s: &S,
    m: &Meta,
    first: PageNo,
    len: usize,
) -> Result<Vec<PageNo>> {
    let mut v = Vec::new();
    walk(s, m, first, len, |p, _| {
        v.push(p);
        true
    })?;
    Ok(v)
}

/// Writes `data` (non-empty) to a new chain; returns its first page.
pub(crate) fn write<S: PageWrite>(w: &mut Writer<'_, S>, data: &[u8]) -> Result<PageNo> {
    let cap = node::ovf_capacity(w.meta.page_size as usize);
    let chunks: Vec<&[u8]> = data.chunks(cap).collect();
    let mut pgs = Vec::with_capacity(chunks.len());
    for _ in 0..chunks.len() {
        pgs.push(w.alloc(PageType::Overflow, 0)?);
    }
    for (i, c) in chunks.iter().enumerate() {
        let b = w.page_mut(pgs[i])?;
        b[node::DATA..node::DATA + c.len()].copy_from_slice(c);
        node::set_hi(b, c.len());
        node::set_next(b, pgs.get(i + 1).copied().unwrap_or(PageNo::NONE));
    }
    Ok(pgs.first().copied().unwrap_or(PageNo::NONE))
}

/// Returns every page of the chain to the free list.
pub(crate) fn free<S: PageWrite>(w: &mut Writer<'_, S>, first: PageNo, len: usize) -> Result<()> {
    let meta = w.meta;
    for p in pages(&*w.s, &meta, first, len)? {
        w.free(p)?;
    }
    Ok(())
}
