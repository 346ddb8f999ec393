//! The B-tree access method: one sorted key/value map per database file,
//! stored in the pages of a `PageStore`. Keys compare bytewise (memcmp,
//! a shorter prefix first), like Berkeley DB's default comparator.
//!
//! Page 0 is the meta page (`page::Meta`: root, free list head, last page,
//! key count). Tree pages are slotted pages (layout in `node`), leaves at
//! level 1 doubly linked in key order; keys and values longer than fit a
//! third of a page live in overflow chains (`overflow`); pages freed by deletes
//! go on a free list that allocation drains before growing the file
//! (`alloc`). `verify` checks all of it; `stats` counts it.
//!
//! Every function reads pages through `PageRead`/`PageWrite` and trusts
//! nothing it reads: damage gives `Error::Corrupt` naming file and page,
//! never a panic, an endless loop or deep recursion (descent is bounded by
//! levels that must fall by one per step, chains by the length their owner
//! claims, sibling walks by keys that must keep increasing).
//!
//! Submodules: `node` (one page), `build` (bottom-up construction from
//! sorted pairs, for loads), `fetch` (checked page access), `read` (tree
//! pages, descent),
//! `overflow`, `alloc`, `write` (put/delete, splits), `cursor` (lookups,
//! seeks, `Scan`), `verify`, `stats`.

mod alloc;
pub mod build;
mod cursor;
mod fetch;
pub mod node;
mod overflow;
mod read;
mod stats;
mod verify;
mod write;

#[cfg(test)]
mod tests;

pub use cursor::Scan;
pub use stats::Stats;
pub use verify::Problem;

use crate::error::{Error, Result};
use crate::storage::page::{self, Meta, PageType};
use crate::storage::pagestore::{PageRead, PageWrite};
use crate::types::{FileId, PageNo};

/// Largest key or value, in bytes.
pub const MAX_ITEM: usize = 16 << 20;

/// The root page of a new tree.
const FIRST_ROOT: PageNo = PageNo(1);

/// Writes the meta page (page 0) and an empty root leaf (page 1) into an
/// empty store.
pub fn create(store: &mut impl PageWrite, file_id: FileId) -> Result<()> {
    let ps = store.page_size();
    if !page::valid_page_size(ps) {
        return Err(Error::invalid(format!(
            "page size {ps} is not a power of two between {} and {}",
            page::MIN_PAGE_SIZE,
            page::MAX_PAGE_SIZE
        )));
    }
    let meta = Meta {
        page_size: ps as u32,
        file_id,
        root: FIRST_ROOT,
        free_head: PageNo::NONE,
        last_pgno: FIRST_ROOT,
        nkeys: 0,
    };
    let b = store.page_new(PageNo::META)?;
    page::init(b, PageNo::META, PageType::Meta);
    meta.encode(b);
    let b = store.page_new(FIRST_ROOT)?;
    node::format(b, FIRST_ROOT, PageType::Leaf, node::LEAF_LEVEL);
    Ok(())
}

/// Refuses a key or value over `MAX_ITEM`. Callers may check before an
/// operation: the refusal changes nothing.
pub fn check_size(what: &str, n: usize) -> Result<()> {
    if n > MAX_ITEM {
        return Err(Error::invalid(format!(
            "{what} of {n} bytes is larger than the limit of {MAX_ITEM} bytes"
        )));
    }
    Ok(())
}

/// The value stored under `key`.
pub fn get(store: &impl PageRead, key: &[u8]) -> Result<Option<Vec<u8>>> {
    check_size("key", key.len())?;
    cursor::get(store, key)
}

/// Inserts or overwrites; true if a value was replaced.
pub fn put(store: &mut impl PageWrite, key: &[u8], val: &[u8]) -> Result<bool> {
    check_size("key", key.len())?;
    check_size("value", val.len())?;
    write::put(store, key, val)
}

/// Removes `key`; true if it existed.
pub fn delete(store: &mut impl PageWrite, key: &[u8]) -> Result<bool> {
    check_size("key", key.len())?;
    write::delete(store, key)
}

/// The smallest pair.
pub fn first(store: &impl PageRead) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    cursor::first(store)
}

/// The largest pair.
pub fn last(store: &impl PageRead) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    cursor::last(store)
}

/// The pair with the smallest key >= `key`.
pub fn seek_ge(store: &impl PageRead, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    check_size("key", key.len())?;
    cursor::seek_ge(store, key)
}

/// The pair with the smallest key > `key`.
pub fn next_after(store: &impl PageRead, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    check_size("key", key.len())?;
    cursor::next_after(store, key)
}

/// The pair with the largest key < `key`.
pub fn prev_before(store: &impl PageRead, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    check_size("key", key.len())?;
    cursor::prev_before(store, key)
}

/// Page counts, levels and space use of the tree.
pub fn stats(store: &impl PageRead) -> Result<Stats> {
    stats::stats(store)
}

/// Checks every page and the tree structure; an empty list means sound.
pub fn verify(store: &impl PageRead) -> Result<Vec<Problem>> {
    verify::verify(store)
}
