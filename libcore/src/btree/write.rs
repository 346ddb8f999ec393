//! Insert, overwrite and delete, with leaf and internal splits, root growth,
//! freeing of emptied leaves (and of internal pages left with no child) and
//! root collapse.
//!
//! Invariants kept: every non-root leaf holds at least one entry; every
//! non-root internal page at least one child; an internal root at least
//! two; leaves are doubly linked in key order; `meta.nkeys` counts the
//! pairs; each overflow chain belongs to exactly one entry and is freed
//! with it.
//!
//! Splits move the upper part of a page to a new right sibling and post a
//! separator to the parent. An insert at the very end of the rightmost page
//! (or the start of the leftmost leaf) splits off just the new entry, as
//! Berkeley DB does, so sorted loads leave full pages behind. Leaf
//! separators are the shortest prefix of the right page's first key that is
//! above the left page's last key, which keeps internal pages wide.

use super::alloc::Writer;
use super::fetch::corrupt;
use super::node::{self, Item};
use super::overflow;
use super::read::{self, descend, leaf_search, Step, Target};
use crate::error::Result;
use crate::storage::page::PageType;
use crate::storage::pagestore::PageWrite;
use crate::types::PageNo;

pub(crate) fn put<S: PageWrite>(s: &mut S, key: &[u8], val: &[u8]) -> Result<bool> {
    let mut w = Writer::open(s)?;
    let m = w.meta;
    let mut path = Vec::new();
    let leaf = descend(&*w.s, &m, Target::Key(key), Some(&mut path))?;
    let (i, found) = leaf_search(&*w.s, &m, &leaf, key)?;
    let pg = leaf.pgno;
    if found {
        let e = leaf.leaf_ent(&*w.s, i)?;
        let chains = [e.key.chain(), e.val.chain()];
        // Release our image first so the store need not copy the page.
        drop(leaf);
        for (p, len) in chains.into_iter().flatten() {
            overflow::free(&mut w, p, len)?;
        }
        let r = node::remove(w.page_mut(pg)?, i, true);
        w.chk(pg, r)?;
    } else {
        drop(leaf);
        w.meta.nkeys = w.meta.nkeys.saturating_add(1);
    }
    let entry = leaf_entry(&mut w, key, val)?;
    insert_up(&mut w, path, pg, i, entry)?;
    w.finish()?;
    Ok(found)
}

/// Encodes a leaf entry, moving the larger item (then the other) to an
/// overflow chain until the entry fits a third of a page.
fn leaf_entry<S: PageWrite>(w: &mut Writer<'_, S>, key: &[u8], val: &[u8]) -> Result<Vec<u8>> {
    let (kl, vl) = (key.len(), val.len());
    let (kovf, vovf) = overflow_choice(w.meta.page_size as usize, kl, vl);
    let k = if kovf {
        Item::Ovf {
            len: kl,
            pgno: overflow::write(w, key)?,
        }
    } else {
        Item::Inline(key)
    };
    let v = if vovf {
        Item::Ovf {
            len: vl,
            pgno: overflow::write(w, val)?,
        }
    } else {
        Item::Inline(val)
    };
    let mut e = Vec::new();
    node::encode_leaf(k, v, &mut e);
    Ok(e)
}

/// Which items of a pair go to overflow chains (key, value): the larger
/// first, then the other, until the entry fits a third of a page.
pub(super) fn overflow_choice(page_size: usize, kl: usize, vl: usize) -> (bool, bool) {
    let max = node::max_entry(page_size);
    let (mut kovf, mut vovf) = (false, false);
    if node::leaf_entry_size(kl, false, vl, false) > max {
        if vl >= kl {
            vovf = true;
            kovf = node::leaf_entry_size(kl, false, vl, true) > max;
        } else {
            kovf = true;
            vovf = node::leaf_entry_size(kl, true, vl, false) > max;
        }
    }
    (kovf, vovf)
}

/// Inserts `entry` at `i` in page `pg` (a leaf first), splitting and
/// posting separators up `path` as far as needed.
fn insert_up<S: PageWrite>(
    w: &mut Writer<'_, S>,
    mut path: Vec<Step>,
    mut pg: PageNo,
    mut i: usize,
    mut entry: Vec<u8>,
) -> Result<()> {
    let mut leaf = true;
    let mut rightmost = false;
    loop {
        let r = node::insert(w.page_mut(pg)?, i, &entry, leaf);
        if w.chk(pg, r)? {
            return Ok(());
        }
        let up = split(w, pg, i, &entry, leaf, rightmost)?;
        match path.pop() {
            Some(st) => {
                pg = st.pgno;
                i = st.idx + 1;
                rightmost = st.rightmost;
                leaf = false;
                entry = up;
            }
            None => return grow_root(w, pg, &up),
        }
    }
}

/// Where to cut `sizes` (entry sizes, slot included) into two non-empty
/// halves of about equal bytes.
fn even_cut(sizes: &[usize]) -> usize {
    let total: usize = sizes.iter().sum();
    let mut acc = 0;
    let mut cut = sizes.len() - 1;
    for (j, s) in sizes.iter().enumerate() {
        if acc + s > total / 2 {
            // Put entry j left only if that leaves the halves closer.
            let with = acc + s;
            cut = if with - total / 2 < total / 2 - acc {
                j + 1
            } else {
                j
            };
            break;
        }
        acc += s;
    }
    cut.clamp(1, sizes.len() - 1)
}

/// Shortest prefix of `right` that is greater than `left` (`left < right`).
pub(super) fn separator<'a>(left: &[u8], right: &'a [u8]) -> &'a [u8] {
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    &right[..(common + 1).min(right.len())]
}

/// Splits page `pg`, which has no room for `entry` at `i`. Returns the
/// entry to insert into the parent (new right page plus separator).
fn split<S: PageWrite>(
    w: &mut Writer<'_, S>,
    pg: PageNo,
    i: usize,
    entry: &[u8],
    leaf: bool,
    rightmost: bool,
) -> Result<Vec<u8>> {
    let m = w.meta;
    let nd = read::node(&*w.s, &m, pg, None)?;
    let n = nd.n;
    let mut ents: Vec<&[u8]> = Vec::with_capacity(n + 1);
    for j in 0..n {
        let (a, b) = w.chk(pg, node::entry_range(&nd.buf, n, j, leaf))?;
        ents.push(&nd.buf[a..b]);
    }
    if i > n || n == 0 {
        return Err(corrupt(&*w.s, pg, "split of a page that should have room"));
    }
    ents.insert(i, entry);
    let cut = if leaf && i == n && nd.next().is_none() {
        n
    } else if leaf && i == 0 && nd.prev().is_none() {
        1
    } else if !leaf && i == n && rightmost {
        n
    } else {
        let sizes: Vec<usize> = ents.iter().map(|e| e.len() + node::SLOT).collect();
        even_cut(&sizes)
    };
    let max = node::max_entry(m.page_size as usize);
    let ty = if leaf {
        PageType::Leaf
    } else {
        PageType::Internal
    };
    let right = w.alloc(ty, nd.level)?;
    let mut up = Vec::new();
    let mut first = Vec::new();
    let right_ents: Vec<&[u8]> = if leaf {
        let lk = w.chk(pg, node::leaf_at_off(ents[cut - 1], 0))?.0.key;
        let rk = w.chk(pg, node::leaf_at_off(ents[cut], 0))?.0.key;
        let lk = read::item_bytes(&*w.s, &m, lk)?;
        let rk = read::item_bytes(&*w.s, &m, rk)?;
        let sep = separator(&lk, &rk);
        let item = if node::branch_entry_size(sep.len(), false) <= max {
            Item::Inline(sep)
        } else {
            Item::Ovf {
                len: sep.len(),
                pgno: overflow::write(w, sep)?,
            }
        };
        node::encode_branch(right, item, &mut up);
        ents[cut..].to_vec()
    } else {
        // The first key of the right half moves up as the separator (its
        // chain, if any, moves with it); the right page keeps the child
        // under an empty minus-infinity key.
        let e = w.chk(pg, node::branch_at_off(ents[cut], 0))?.0;
        node::encode_branch(right, e.key, &mut up);
        node::encode_branch(e.child, Item::Inline(&[]), &mut first);
        std::iter::once(&first[..])
            .chain(ents[cut + 1..].iter().copied())
            .collect()
    };
    let (old_prev, old_next) = (nd.prev(), nd.next());
    {
        let b = w.page_mut(right)?;
        let r = node::rebuild(b, right_ents.iter().copied());
        if leaf {
            node::set_prev(b, pg);
            node::set_next(b, old_next);
        }
        w.chk(right, r)?;
    }
    {
        let level = nd.level;
        let b = w.page_mut(pg)?;
        node::format(b, pg, ty, level);
        let r = node::rebuild(b, ents[..cut].iter().copied());
        if leaf {
            node::set_prev(b, old_prev);
            node::set_next(b, right);
        }
        w.chk(pg, r)?;
    }
    if leaf && !old_next.is_none() {
        let nx = read::node(&*w.s, &m, old_next, Some(node::LEAF_LEVEL))?;
        if nx.prev() != pg {
            return Err(corrupt(&*w.s, old_next, "left sibling link is wrong"));
        }
        drop(nx);
        node::set_prev(w.page_mut(old_next)?, right);
    }
    Ok(up)
}

/// The root split: a new root above the old one and its new sibling.
fn grow_root<S: PageWrite>(w: &mut Writer<'_, S>, old: PageNo, up: &[u8]) -> Result<()> {
    let level = read::node(&*w.s, &w.meta, old, None)?.level;
    if level >= node::MAX_LEVEL {
        return Err(corrupt(&*w.s, old, "tree too deep"));
    }
    let root = w.alloc(PageType::Internal, level + 1)?;
    let mut first = Vec::new();
    node::encode_branch(old, Item::Inline(&[]), &mut first);
    let r = node::rebuild(w.page_mut(root)?, [&first[..], up].into_iter());
    w.chk(root, r)?;
    w.meta.root = root;
    Ok(())
}

pub(crate) fn delete<S: PageWrite>(s: &mut S, key: &[u8]) -> Result<bool> {
    let mut w = Writer::open(s)?;
    let m = w.meta;
    let mut path = Vec::new();
    let leaf = descend(&*w.s, &m, Target::Key(key), Some(&mut path))?;
    let (i, found) = leaf_search(&*w.s, &m, &leaf, key)?;
    if !found {
        return Ok(false);
    }
    let pg = leaf.pgno;
    let e = leaf.leaf_ent(&*w.s, i)?;
    let chains = [e.key.chain(), e.val.chain()];
    let (n, prev, next) = (leaf.n, leaf.prev(), leaf.next());
    drop(leaf);
    for (p, len) in chains.into_iter().flatten() {
        overflow::free(&mut w, p, len)?;
    }
    let r = node::remove(w.page_mut(pg)?, i, true);
    w.chk(pg, r)?;
    w.meta.nkeys = w.meta.nkeys.saturating_sub(1);
    if n == 1 && !path.is_empty() {
        unlink(&mut w, pg, prev, next)?;
        w.free(pg)?;
        remove_child(&mut w, path)?;
        collapse_root(&mut w)?;
    }
    w.finish()?;
    Ok(true)
}

/// Takes leaf `pg` out of the sibling chain.
fn unlink<S: PageWrite>(
    w: &mut Writer<'_, S>,
    pg: PageNo,
    prev: PageNo,
    next: PageNo,
) -> Result<()> {
    let m = w.meta;
    if !prev.is_none() {
        let l = read::node(&*w.s, &m, prev, Some(node::LEAF_LEVEL))?;
        if l.next() != pg {
            return Err(corrupt(&*w.s, prev, "right sibling link is wrong"));
        }
        drop(l);
        node::set_next(w.page_mut(prev)?, next);
    }
    if !next.is_none() {
        let r = read::node(&*w.s, &m, next, Some(node::LEAF_LEVEL))?;
        if r.prev() != pg {
            return Err(corrupt(&*w.s, next, "left sibling link is wrong"));
        }
        drop(r);
        node::set_prev(w.page_mut(next)?, prev);
    }
    Ok(())
}

/// Removes the entry for a freed child from its parent (the last step of
/// `path`), freeing parents that lose their only child in turn.
fn remove_child<S: PageWrite>(w: &mut Writer<'_, S>, mut path: Vec<Step>) -> Result<()> {
    let m = w.meta;
    while let Some(st) = path.pop() {
        let nd = read::node(&*w.s, &m, st.pgno, None)?;
        let n = nd.n;
        if st.idx >= n {
            return Err(corrupt(&*w.s, st.pgno, "child index out of range"));
        }
        let gone = nd.branch_ent(&*w.s, st.idx)?.key.chain();
        if n == 1 {
            drop(nd);
            if let Some((p, len)) = gone {
                overflow::free(w, p, len)?;
            }
            if path.is_empty() {
                // An internal root with one child should have collapsed;
                // if it did not, the tree is now simply empty.
                node::format(
                    w.page_mut(st.pgno)?,
                    st.pgno,
                    PageType::Leaf,
                    node::LEAF_LEVEL,
                );
                return Ok(());
            }
            w.free(st.pgno)?;
            continue;
        }
        if st.idx == 0 {
            // Entry 1 becomes the minus-infinity entry: drop its key.
            let e1 = nd.branch_ent(&*w.s, 1)?;
            let (child1, chain1) = (e1.child, e1.key.chain());
            drop(nd);
            let mut first = Vec::new();
            node::encode_branch(child1, Item::Inline(&[]), &mut first);
            let b = w.page_mut(st.pgno)?;
            let r = node::remove(b, 0, false)
                .and_then(|_| node::remove(b, 0, false))
                .and_then(|_| node::insert(b, 0, &first, false));
            if !w.chk(st.pgno, r)? {
                return Err(corrupt(&*w.s, st.pgno, "no room for a smaller entry"));
            }
            for (p, len) in [gone, chain1].into_iter().flatten() {
                overflow::free(w, p, len)?;
            }
        } else {
            drop(nd);
            let r = node::remove(w.page_mut(st.pgno)?, st.idx, false);
            w.chk(st.pgno, r)?;
            if let Some((p, len)) = gone {
                overflow::free(w, p, len)?;
            }
        }
        return Ok(());
    }
    Ok(())
}

/// While the root is an internal page with a single child, that child
/// becomes the root.
fn collapse_root<S: PageWrite>(w: &mut Writer<'_, S>) -> Result<()> {
    for _ in 0..node::MAX_LEVEL {
        let m = w.meta;
        let nd = read::node(&*w.s, &m, m.root, None)?;
        if nd.leaf || nd.n != 1 {
            return Ok(());
        }
        let e = nd.branch_ent(&*w.s, 0)?;
        let (child, chain) = (e.child, e.key.chain());
        drop(nd);
        if let Some((p, len)) = chain {
            overflow::free(w, p, len)?;
        }
        w.free(m.root)?;
        w.meta.root = child;
    }
    Ok(())
}
