//! Bottom-up construction of a tree from pairs in strictly ascending key
//! order: what a load into an empty database does instead of one put per
//! pair (a descent, a search and a copy-on-write page per pair).
//!
//! Only the rightmost page of each level is held here. Every other page is
//! handed to a [`PageSink`] the moment it is complete and never touched
//! again, so memory stays a few pages per tree level whatever the input
//! size, and the sink may write pages straight to their file.
//!
//! The pages built are byte for byte those that the same pairs put one by
//! one would give (bytes 0..LSN_END aside, which the sink owns): leaves
//! fill until the next entry does not fit, then the append split of
//! `write` happens here in the same order, allocating the same page
//! numbers (overflow chains of the entry, the new leaf, a separator chain,
//! new internal pages bottom-up, a new root). So a load that starts here
//! and falls back to puts when a key is out of order (after
//! [`Builder::finish`]) ends exactly as if it had put every pair, and the
//! tests compare the two page by page.

use super::fetch;
use super::node::{self, Item};
use super::read;
use super::write::{overflow_choice, separator};
use super::FIRST_ROOT;
use crate::error::{Error, Location, Result};
use crate::storage::page::{Meta, PageType};
use crate::storage::pagestore::PageRead;
use crate::types::PageNo;
use std::path::PathBuf;

/// Where finished pages go.
pub trait PageSink {
    /// The final bytes of page `no` (its crc and LSN bytes are the sink's
    /// to set). The builder hands each page over once.
    fn put_page(&mut self, no: PageNo, page: &[u8]) -> Result<()>;
}

/// A tree being built; see the module comment.
pub struct Builder {
    path: PathBuf,
    ps: usize,
    meta: Meta,
    /// The rightmost leaf and its page number.
    leaf: Vec<u8>,
    leaf_no: PageNo,
    /// The last key pushed: the order check and the next separator.
    last_key: Vec<u8>,
    pushed: u64,
    /// The rightmost internal page of each level above the leaves, the
    /// lowest first; the last one is the root.
    levels: Vec<(PageNo, Vec<u8>)>,
    entry: Vec<u8>,
    scratch: Vec<u8>,
}

impl Builder {
    /// A builder for the tree in `store` if that tree is empty in the way
    /// a new database is (a root leaf at page 1 without entries, nothing
    /// else allocated); `None` otherwise (the caller puts pair by pair).
    pub fn start(store: &impl PageRead) -> Result<Option<Builder>> {
        let m = fetch::meta(store)?;
        if m.nkeys != 0
            || m.root != FIRST_ROOT
            || m.last_pgno != FIRST_ROOT
            || !m.free_head.is_none()
        {
            return Ok(None);
        }
        let root = read::node(store, &m, FIRST_ROOT, None)?;
        if !root.leaf || root.n != 0 {
            return Ok(None);
        }
        let ps = m.page_size as usize;
        let mut leaf = vec![0u8; ps];
        node::format(&mut leaf, FIRST_ROOT, PageType::Leaf, node::LEAF_LEVEL);
        Ok(Some(Builder {
            path: store.path().to_path_buf(),
            ps,
            meta: m,
            leaf,
            leaf_no: FIRST_ROOT,
            last_key: Vec::new(),
            pushed: 0,
            levels: Vec::new(),
            entry: Vec::new(),
            scratch: vec![0u8; ps],
        }))
    }

    /// Whether `key` may come next: it must be above every key so far.
    pub fn accepts(&self, key: &[u8]) -> bool {
        self.pushed == 0 || key > self.last_key.as_slice()
    }

    /// Pairs pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Adds a pair; `key` must be accepted ([`Builder::accepts`]) and both
    /// items within `MAX_ITEM` (checked by the caller, before anything).
    pub fn push(&mut self, sink: &mut impl PageSink, key: &[u8], val: &[u8]) -> Result<()> {
        if !self.accepts(key) {
            return Err(Error::invalid("bulk build: key out of order"));
        }
        self.meta.nkeys = self.meta.nkeys.saturating_add(1);
        let (kovf, vovf) = overflow_choice(self.ps, key.len(), val.len());
        let k = if kovf {
            Item::Ovf {
                len: key.len(),
                pgno: self.write_chain(sink, key)?,
            }
        } else {
            Item::Inline(key)
        };
        let v = if vovf {
            Item::Ovf {
                len: val.len(),
                pgno: self.write_chain(sink, val)?,
            }
        } else {
            Item::Inline(val)
        };
        let mut entry = std::mem::take(&mut self.entry);
        node::encode_leaf(k, v, &mut entry);
        let n = node::nent(&self.leaf);
        let r = node::insert(&mut self.leaf, n, &entry, true);
        let fits = self.chk(self.leaf_no, r)?;
        let r = if fits {
            Ok(())
        } else {
            self.split_leaf(sink, key, &entry)
        };
        self.entry = entry;
        r?;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.pushed += 1;
        Ok(())
    }

    /// Hands the rightmost pages over and returns the meta page contents
    /// of the finished tree; `None` when nothing was pushed (the tree is
    /// left as it was).
    pub fn finish(self, sink: &mut impl PageSink) -> Result<Option<Meta>> {
        if self.pushed == 0 {
            return Ok(None);
        }
        sink.put_page(self.leaf_no, &self.leaf)?;
        for (no, buf) in &self.levels {
            sink.put_page(*no, buf)?;
        }
        Ok(Some(self.meta))
    }

    fn chk<T>(&self, pg: PageNo, r: node::NResult<T>) -> Result<T> {
        r.map_err(|w| Error::corrupt(&self.path, Location::Page(pg), w))
    }

    fn alloc(&mut self) -> Result<PageNo> {
        let pg = PageNo(self.meta.last_pgno.0.wrapping_add(1));
        if pg.is_none() || pg.0 == 0 {
            return Err(Error::corrupt(
                &self.path,
                Location::Page(PageNo::META),
                "database file is full",
            ));
        }
        self.meta.last_pgno = pg;
        Ok(pg)
    }

    /// Writes `data` to a new overflow chain as `overflow::write` does
    /// (all its pages allocated first, in order); returns the first page.
    fn write_chain(&mut self, sink: &mut impl PageSink, data: &[u8]) -> Result<PageNo> {
        let cap = node::ovf_capacity(self.ps);
        let first = PageNo(self.meta.last_pgno.0.wrapping_add(1));
        let count = data.len().div_ceil(cap);
        for _ in 0..count {
            self.alloc()?;
        }
        for (i, c) in data.chunks(cap).enumerate() {
            let pg = PageNo(first.0 + i as u32);
            let next = if i + 1 == count {
                PageNo::NONE
            } else {
                PageNo(pg.0 + 1)
            };
            let b = &mut self.scratch;
            b.fill(0);
            node::format(b, pg, PageType::Overflow, 0);
            b[node::DATA..node::DATA + c.len()].copy_from_slice(c);
            node::set_hi(b, c.len());
            node::set_next(b, next);
            sink.put_page(pg, b)?;
        }
        Ok(first)
    }

    /// The append split of a full rightmost leaf: `entry` (for `key`)
    /// starts a new leaf, and the separator goes up.
    fn split_leaf(&mut self, sink: &mut impl PageSink, key: &[u8], entry: &[u8]) -> Result<()> {
        let right = self.alloc()?;
        let sep = separator(&self.last_key, key).to_vec();
        let max = node::max_entry(self.ps);
        let item = if node::branch_entry_size(sep.len(), false) <= max {
            Item::Inline(&sep)
        } else {
            Item::Ovf {
                len: sep.len(),
                pgno: self.write_chain(sink, &sep)?,
            }
        };
        let mut up = Vec::new();
        node::encode_branch(right, item, &mut up);
        let left = self.leaf_no;
        node::set_next(&mut self.leaf, right);
        sink.put_page(left, &self.leaf)?;
        self.leaf.fill(0);
        node::format(&mut self.leaf, right, PageType::Leaf, node::LEAF_LEVEL);
        let r = node::insert(&mut self.leaf, 0, entry, true);
        if !self.chk(right, r)? {
            return Err(corrupt_entry(&self.path, right));
        }
        node::set_prev(&mut self.leaf, left);
        self.leaf_no = right;
        self.post(sink, 0, left, up)
    }

    /// Adds `up` (a new right page and its separator) to the rightmost
    /// page of level `idx` (0: just above the leaves), whose left
    /// neighbour below is `left`; splits upward or grows a root as `write`
    /// does for an insert at the end of the rightmost page.
    fn post(
        &mut self,
        sink: &mut impl PageSink,
        mut idx: usize,
        mut left: PageNo,
        mut up: Vec<u8>,
    ) -> Result<()> {
        loop {
            let level = u8::try_from(idx + 2)
                .ok()
                .filter(|l| *l <= node::MAX_LEVEL)
                .ok_or_else(|| corrupt_deep(&self.path, left))?;
            if idx == self.levels.len() {
                let root = self.alloc()?;
                let mut buf = vec![0u8; self.ps];
                node::format(&mut buf, root, PageType::Internal, level);
                let mut first = Vec::new();
                node::encode_branch(left, Item::Inline(&[]), &mut first);
                let r = node::rebuild(&mut buf, [&first[..], &up[..]].into_iter());
                self.chk(root, r)?;
                self.levels.push((root, buf));
                self.meta.root = root;
                return Ok(());
            }
            let (no, _) = self.levels[idx];
            let n = node::nent(&self.levels[idx].1);
            let r = node::insert(&mut self.levels[idx].1, n, &up, false);
            if self.chk(no, r)? {
                return Ok(());
            }
            let right = self.alloc()?;
            let (child, key) = {
                let e = self.chk(no, node::branch_at_off(&up, 0))?.0;
                let mut k = Vec::new();
                node::encode_branch(right, e.key, &mut k);
                (e.child, k)
            };
            let mut first = Vec::new();
            node::encode_branch(child, Item::Inline(&[]), &mut first);
            let mut buf = vec![0u8; self.ps];
            node::format(&mut buf, right, PageType::Internal, level);
            let r = node::rebuild(&mut buf, std::iter::once(&first[..]));
            self.chk(right, r)?;
            let old = std::mem::replace(&mut self.levels[idx], (right, buf));
            sink.put_page(old.0, &old.1)?;
            left = old.0;
            up = key;
            idx += 1;
        }
    }
}

fn corrupt_entry(path: &std::path::Path, pg: PageNo) -> Error {
    Error::corrupt(path, Location::Page(pg), "entry does not fit an empty page")
}

fn corrupt_deep(path: &std::path::Path, pg: PageNo) -> Error {
    Error::corrupt(path, Location::Page(pg), "tree too deep")
}
