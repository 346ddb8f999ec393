//! One B-tree page as a slotted page: the access-method header, the slot
//! array and the entry heap, and the operations that stay inside one page
//! (find an entry, insert one, remove one, rebuild from a list).
//!
//! Layout (offsets derived from the constants below; `layout_is_pinned`
//! checks them; all integers little-endian):
//!
//! ```text
//! offset size  field                      leaf / internal      overflow          free
//!   0    17    common header (page.rs: crc, LSN, page number, type)
//!  17     1    OFF_LEVEL                  1 = leaf, n+1 above  0                 0
//!  18     2    OFF_NENT                   number of entries    0                 0
//!  20     4    OFF_HI                     start of entry heap  bytes of data     0
//!  24     4    OFF_NEXT                   right sibling leaf   next chain page   next free page
//!  28     4    OFF_PREV                   left sibling leaf    unused (NONE)     unused (NONE)
//!  32   2*n    slot array: u16 offset of entry i, in key order
//!   .     .    free space
//!  hi     .    entry heap, growing down from the end of the page
//! ```
//!
//! Internal pages do not use the sibling fields (NONE). An overflow page's
//! data sits at 32..32+len.
//!
//! Entries (`flags` bit 0: key is in an overflow chain, bit 1: value is):
//!
//! ```text
//! leaf:      flags u8 | key item | value item
//! internal:  flags u8 | child page u32 | key item
//! item:      inline:   len u16 | bytes
//!            overflow: total len u32 | first page u32
//! ```
//!
//! Invariants: `32 + 2*n <= hi <= page_size`; every slot points into
//! `[hi, page_size)` and its entry ends inside the page; entries do not
//! overlap (removal may leave holes in the heap, reclaimed by compaction when
//! an insert needs them). Keys in slot order are strictly increasing. Entry 0
//! of an internal page has an empty inline key that stands for "minus
//! infinity": child i holds keys in `[key i, key i+1)`. No entry (slot
//! included) is larger than a third of the usable page, so a split of a
//! full page plus one new entry always yields two pages that fit.
//!
//! Everything here takes untrusted bytes: functions that read entries return
//! `Err(&'static str)` describing the damage; the caller adds file and page.

use crate::storage::codec::{get_u16, get_u32, put_u16, put_u32};
use crate::storage::page::{self, PageType, LSN_END};
use crate::types::PageNo;

/// First byte of the access-method header (page.rs owns 0..17).
pub const AM_HEADER: usize = 17;
pub const OFF_LEVEL: usize = AM_HEADER;
pub const OFF_NENT: usize = OFF_LEVEL + 1;
pub const OFF_HI: usize = OFF_NENT + 2;
pub const OFF_NEXT: usize = OFF_HI + 4;
pub const OFF_PREV: usize = OFF_NEXT + 4;
/// Start of the slot array (and of overflow data).
pub const DATA: usize = OFF_PREV + 4;
pub const SLOT: usize = 2;

pub const F_KEY_OVF: u8 = 1;
pub const F_VAL_OVF: u8 = 2;
/// Size of an overflow item reference: total length u32 + first page u32.
pub const OVF_REF: usize = 8;
/// Inline items carry a u16 length.
pub const INLINE_LEN: usize = 2;
/// Level of a leaf page; internal pages count up from here.
pub const LEAF_LEVEL: u8 = 1;
/// Deepest tree we accept: bounds descent on damaged pages.
pub const MAX_LEVEL: u8 = 64;

pub type NResult<T> = std::result::Result<T, &'static str>;

/// Largest entry (slot included) a page of this size accepts inline.
pub fn max_entry(page_size: usize) -> usize {
    (page_size - DATA) / 3
}

/// Bytes of overflow data one chain page carries.
pub fn ovf_capacity(page_size: usize) -> usize {
    page_size - DATA
}

pub fn level(b: &[u8]) -> u8 {
    b[OFF_LEVEL]
}
pub fn nent(b: &[u8]) -> usize {
    get_u16(b, OFF_NENT) as usize
}
pub fn hi(b: &[u8]) -> usize {
    get_u32(b, OFF_HI) as usize
}
pub fn next(b: &[u8]) -> PageNo {
    PageNo(get_u32(b, OFF_NEXT))
}
pub fn prev(b: &[u8]) -> PageNo {
    PageNo(get_u32(b, OFF_PREV))
}
pub fn set_nent(b: &mut [u8], n: usize) {
    put_u16(b, OFF_NENT, n as u16);
}
pub fn set_hi(b: &mut [u8], v: usize) {
    put_u32(b, OFF_HI, v as u32);
}
pub fn set_next(b: &mut [u8], p: PageNo) {
    put_u32(b, OFF_NEXT, p.0);
}
pub fn set_prev(b: &mut [u8], p: PageNo) {
    put_u32(b, OFF_PREV, p.0);
}

/// Starts a page of type `ty` at `level`, empty, with no links. Bytes
/// 0..LSN_END (crc and LSN) are left as they were: the cache and recovery
/// own them, and a reused page keeps its history.
pub fn format(b: &mut [u8], no: PageNo, ty: PageType, lvl: u8) {
    let mut keep = [0u8; LSN_END];
    keep.copy_from_slice(&b[..LSN_END]);
    page::init(b, no, ty);
    b[..LSN_END].copy_from_slice(&keep);
    b[OFF_LEVEL] = lvl;
    set_nent(b, 0);
    let end = if matches!(ty, PageType::Leaf | PageType::Internal) {
        b.len()
    } else {
        0
    };
    set_hi(b, end);
    set_next(b, PageNo::NONE);
    set_prev(b, PageNo::NONE);
}

/// Checks the header of a leaf or internal page; returns the entry count.
pub fn check_header(b: &[u8]) -> NResult<usize> {
    let n = nent(b);
    let h = hi(b);
    if DATA + SLOT * n > b.len() {
        return Err("entry count larger than the page can hold");
    }
    if h < DATA + SLOT * n || h > b.len() {
        return Err("entry heap pointer out of bounds");
    }
    Ok(n)
}

/// A key or value as stored: inline bytes or a reference to a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Inline(&'a [u8]),
    Ovf { len: usize, pgno: PageNo },
}

impl Item<'_> {
    fn is_ovf(&self) -> bool {
        matches!(self, Item::Ovf { .. })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Item::Inline(b) => {
                out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                out.extend_from_slice(b);
            }
            Item::Ovf { len, pgno } => {
                out.extend_from_slice(&(len as u32).to_le_bytes());
                out.extend_from_slice(&pgno.0.to_le_bytes());
            }
        }
    }

    /// The overflow chain this item owns, if any.
    pub fn chain(&self) -> Option<(PageNo, usize)> {
        match *self {
            Item::Ovf { len, pgno } => Some((pgno, len)),
            Item::Inline(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LeafEnt<'a> {
    pub key: Item<'a>,
    pub val: Item<'a>,
}

#[derive(Debug, Clone, Copy)]
pub struct BranchEnt<'a> {
    pub child: PageNo,
    pub key: Item<'a>,
}

pub fn encode_leaf(key: Item, val: Item, out: &mut Vec<u8>) {
    out.clear();
    let flags = if key.is_ovf() { F_KEY_OVF } else { 0 } | if val.is_ovf() { F_VAL_OVF } else { 0 };
    out.push(flags);
    key.encode(out);
    val.encode(out);
}

pub fn encode_branch(child: PageNo, key: Item, out: &mut Vec<u8>) {
    out.clear();
    out.push(if key.is_ovf() { F_KEY_OVF } else { 0 });
    out.extend_from_slice(&child.0.to_le_bytes());
    key.encode(out);
}

/// Bytes (slot included) a leaf entry takes with these items.
pub fn leaf_entry_size(key: usize, key_ovf: bool, val: usize, val_ovf: bool) -> usize {
    let k = if key_ovf { OVF_REF } else { INLINE_LEN + key };
    let v = if val_ovf { OVF_REF } else { INLINE_LEN + val };
    SLOT + 1 + k + v
}

/// Bytes (slot included) an internal entry takes with this key.
pub fn branch_entry_size(key: usize, key_ovf: bool) -> usize {
    SLOT + 1 + 4 + if key_ovf { OVF_REF } else { INLINE_LEN + key }
}

fn parse_item(b: &[u8], pos: usize, ovf: bool) -> NResult<(Item<'_>, usize)> {
    if ovf {
        let end = pos + OVF_REF;
        if end > b.len() {
            return Err("overflow reference runs past the end of the page");
        }
        let len = get_u32(b, pos) as usize;
        let pgno = PageNo(get_u32(b, pos + 4));
        Ok((Item::Ovf { len, pgno }, end))
    } else {
        if pos + INLINE_LEN > b.len() {
            return Err("item length runs past the end of the page");
        }
        let len = get_u16(b, pos) as usize;
        let start = pos + INLINE_LEN;
        let end = start + len;
        if end > b.len() {
            return Err("item runs past the end of the page");
        }
        Ok((Item::Inline(&b[start..end]), end))
    }
}

/// Offset of entry `i`, checked to lie in the heap. `n` from `check_header`.
pub fn slot(b: &[u8], n: usize, i: usize) -> NResult<usize> {
    if i >= n {
        return Err("slot index out of range");
    }
    let off = get_u16(b, DATA + SLOT * i) as usize;
    if off < hi(b) || off >= b.len() {
        return Err("slot offset outside the entry heap");
    }
    Ok(off)
}

/// Parses the leaf entry at `off`; returns it and its end offset.
pub fn leaf_at_off(b: &[u8], off: usize) -> NResult<(LeafEnt<'_>, usize)> {
    let flags = *b.get(off).ok_or("entry offset out of bounds")?;
    if flags & !(F_KEY_OVF | F_VAL_OVF) != 0 {
        return Err("unknown entry flags");
    }
    let (key, p) = parse_item(b, off + 1, flags & F_KEY_OVF != 0)?;
    let (val, end) = parse_item(b, p, flags & F_VAL_OVF != 0)?;
    Ok((LeafEnt { key, val }, end))
}

pub fn branch_at_off(b: &[u8], off: usize) -> NResult<(BranchEnt<'_>, usize)> {
    let flags = *b.get(off).ok_or("entry offset out of bounds")?;
    if flags & !F_KEY_OVF != 0 {
        return Err("unknown entry flags");
    }
    if off + 5 > b.len() {
        return Err("entry runs past the end of the page");
    }
    let child = PageNo(get_u32(b, off + 1));
    let (key, end) = parse_item(b, off + 5, flags & F_KEY_OVF != 0)?;
    Ok((BranchEnt { child, key }, end))
}

pub fn leaf_at(b: &[u8], n: usize, i: usize) -> NResult<LeafEnt<'_>> {
    let off = slot(b, n, i)?;
    Ok(leaf_at_off(b, off)?.0)
}

/// Only the key of leaf entry `i`: what a search needs, without parsing
/// the value.
pub fn leaf_key_at(b: &[u8], n: usize, i: usize) -> NResult<Item<'_>> {
    let off = slot(b, n, i)?;
    let flags = b[off];
    if flags & !(F_KEY_OVF | F_VAL_OVF) != 0 {
        return Err("unknown entry flags");
    }
    Ok(parse_item(b, off + 1, flags & F_KEY_OVF != 0)?.0)
}

pub fn branch_at(b: &[u8], n: usize, i: usize) -> NResult<BranchEnt<'_>> {
    let off = slot(b, n, i)?;
    Ok(branch_at_off(b, off)?.0)
}

/// Byte range of entry `i`.
pub fn entry_range(b: &[u8], n: usize, i: usize, leaf: bool) -> NResult<(usize, usize)> {
    let off = slot(b, n, i)?;
    let end = if leaf {
        leaf_at_off(b, off)?.1
    } else {
        branch_at_off(b, off)?.1
    };
    Ok((off, end))
}

/// Inserts `entry` as entry `i`, compacting the heap if holes make room.
/// Returns false (page unchanged) when it does not fit: the caller splits.
pub fn insert(b: &mut [u8], i: usize, entry: &[u8], leaf: bool) -> NResult<bool> {
    let n = check_header(b)?;
    if i > n {
        return Err("insert position out of range");
    }
    let need = entry.len() + SLOT;
    let mut h = hi(b);
    if h - (DATA + SLOT * n) < need {
        let used = used_bytes(b, n, leaf)?;
        if b.len() - DATA < used + need {
            return Ok(false);
        }
        compact(b, leaf)?;
        h = hi(b);
        if h - (DATA + SLOT * n) < need {
            return Err("entries overlap");
        }
    }
    let off = h - entry.len();
    b[off..h].copy_from_slice(entry);
    let s = DATA + SLOT * i;
    b.copy_within(s..DATA + SLOT * n, s + SLOT);
    put_u16(b, s, off as u16);
    set_nent(b, n + 1);
    set_hi(b, off);
    Ok(true)
}

/// Removes entry `i`. Its bytes become a hole unless they sit at the start
/// of the heap, in which case the heap simply shrinks.
pub fn remove(b: &mut [u8], i: usize, leaf: bool) -> NResult<()> {
    let n = check_header(b)?;
    let (off, end) = entry_range(b, n, i, leaf)?;
    let s = DATA + SLOT * i;
    b.copy_within(s + SLOT..DATA + SLOT * n, s);
    set_nent(b, n - 1);
    if off == hi(b) {
        set_hi(b, end);
    }
    Ok(())
}

/// Sum of entry sizes plus slots.
pub fn used_bytes(b: &[u8], n: usize, leaf: bool) -> NResult<usize> {
    let mut used = SLOT * n;
    for i in 0..n {
        let (s, e) = entry_range(b, n, i, leaf)?;
        used += e - s;
    }
    Ok(used)
}

/// Moves all entries to the end of the page, closing holes.
fn compact(b: &mut [u8], leaf: bool) -> NResult<()> {
    let old = b.to_vec();
    let n = check_header(&old)?;
    let mut ranges = Vec::with_capacity(n);
    for i in 0..n {
        ranges.push(entry_range(&old, n, i, leaf)?);
    }
    rebuild(b, ranges.iter().map(|&(s, e)| &old[s..e]))
}

/// Replaces the page's entries with `entries`, in order. The page must be
/// formatted already (header fields other than count and heap are kept).
pub fn rebuild<'a>(b: &mut [u8], entries: impl ExactSizeIterator<Item = &'a [u8]>) -> NResult<()> {
    let n = entries.len();
    let floor = DATA + SLOT * n;
    if floor > b.len() {
        return Err("too many entries for one page");
    }
    let mut h = b.len();
    for (i, e) in entries.enumerate() {
        if h < floor + e.len() {
            return Err("entries do not fit in one page");
        }
        h -= e.len();
        b[h..h + e.len()].copy_from_slice(e);
        put_u16(b, DATA + SLOT * i, h as u16);
    }
    set_nent(b, n);
    set_hi(b, h);
    Ok(())
}

/// Binary search over entries `lo..hi` whose keys increase: the first
/// index whose key is >= the probe, and whether it is equal. `cmp(i)` gives
/// the order of key i relative to the probe.
pub fn lower_bound<E>(
    lo: usize,
    hi: usize,
    mut cmp: impl FnMut(usize) -> std::result::Result<std::cmp::Ordering, E>,
) -> std::result::Result<(usize, bool), E> {
    use std::cmp::Ordering;
    let (mut l, mut h) = (lo, hi);
    let mut found = false;
    while l < h {
        let m = l + (h - l) / 2;
        match cmp(m)? {
            Ordering::Less => l = m + 1,
            Ordering::Equal => {
                found = true;
                h = m;
            }
            Ordering::Greater => h = m,
        }
    }
    Ok((l, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::page::PAGE_HEADER_SIZE;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(OFF_LEVEL, 17);
        assert_eq!(OFF_NENT, 18);
        assert_eq!(OFF_HI, 20);
        assert_eq!(OFF_NEXT, 24);
        assert_eq!(OFF_PREV, 28);
        assert_eq!(DATA, PAGE_HEADER_SIZE);
        // The type byte page.rs writes sits just before our header.
        let mut p = vec![0u8; 512];
        page::init(&mut p, PageNo(3), PageType::Overflow);
        assert_eq!(p[AM_HEADER - 1], PageType::Overflow as u8);
        assert!(p[AM_HEADER..].iter().all(|&x| x == 0));
        // A 64 KiB page's largest heap offset still fits a u16 slot.
        assert!(crate::storage::page::MAX_PAGE_SIZE - 1 <= u16::MAX as usize);
        assert!(max_entry(crate::storage::page::MAX_PAGE_SIZE) <= u16::MAX as usize);
    }

    #[test]
    fn insert_remove_compact_and_search() {
        let mut p = vec![0u8; 512];
        p[..LSN_END].fill(0xAB);
        format(&mut p, PageNo(1), PageType::Leaf, LEAF_LEVEL);
        assert!(p[..LSN_END].iter().all(|&x| x == 0xAB));
        let mut e = Vec::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut i = 0u32;
        loop {
            let k = format!("k{:05}", i * 7 % 1000).into_bytes();
            let n = nent(&p);
            let (pos, found) = lower_bound(0, n, |j| {
                let ent = leaf_at(&p, n, j)?;
                match ent.key {
                    Item::Inline(x) => Ok::<_, &str>(x.cmp(&k[..])),
                    Item::Ovf { .. } => Err("ovf"),
                }
            })
            .unwrap();
            assert!(!found);
            encode_leaf(Item::Inline(&k), Item::Inline(b"value"), &mut e);
            if !insert(&mut p, pos, &e, true).unwrap() {
                break;
            }
            keys.insert(pos, k);
            i += 1;
        }
        assert!(keys.len() > 10);
        // Remove every other entry, then the holes must be reusable.
        let n0 = keys.len();
        for j in (0..n0).rev().step_by(2) {
            remove(&mut p, j, true).unwrap();
            keys.remove(j);
        }
        encode_leaf(Item::Inline(b"zz"), Item::Inline(b"value"), &mut e);
        let mut added = 0;
        loop {
            let at = nent(&p);
            if !insert(&mut p, at, &e, true).unwrap() {
                break;
            }
            added += 1;
            e[4] = e[4].wrapping_add(1);
        }
        assert!(added >= n0 / 2 - 1);
        let n = nent(&p);
        for (j, k) in keys.iter().enumerate() {
            assert_eq!(leaf_at(&p, n, j).unwrap().key, Item::Inline(&k[..]));
        }
    }
}
