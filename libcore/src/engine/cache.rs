//! The buffer cache: committed page images shared by every reader of an
//! open environment. Pages are immutable `Arc`s; a commit installs new
//! images by swapping the `Arc`s (see txn.rs), so a reader holding one keeps
//! a consistent copy.
//!
//! Invariant (write-ahead rule): a dirty page reaches its data file only
//! after the log is durable up to that page's LSN. The cache itself does no
//! I/O; `env.rs` performs write-back through `take_victims` and
//! `dirty_pages`, flushing the log first.

use crate::storage::page;
use crate::storage::pagestore::PageBuf;
use crate::types::{FileId, Lsn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub(crate) use crate::storage::pagestore::PageKey;

#[derive(Debug)]
struct Slot {
    buf: PageBuf,
    dirty: bool,
    /// Second-chance bit for eviction. Atomic, as are the hit counts, so
    /// a lookup needs only the pool's read lock: snapshot readers look up
    /// pages side by side without queuing (pool.rs).
    referenced: AtomicBool,
}

#[derive(Debug)]
pub struct Cache {
    pages: HashMap<PageKey, Slot>,
    bytes: usize,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            pages: HashMap::new(),
            bytes: 0,
            capacity: capacity.max(64 * 1024),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Bytes the cache keeps before it evicts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn get(&self, key: PageKey) -> Option<PageBuf> {
        match self.pages.get(&key) {
            Some(s) => {
                // Stored only when clear: a hot page's cache line is then
                // read, not written, by every lookup.
                if !s.referenced.load(Ordering::Relaxed) {
                    s.referenced.store(true, Ordering::Relaxed);
                }
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(s.buf.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// (hits, misses) since the cache was made.
    pub fn hit_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The image of `key` if it is cached, without counting a hit or
    /// marking it used (keeping a snapshot's pre-image is not a use).
    pub fn peek(&self, key: PageKey) -> Option<PageBuf> {
        self.pages.get(&key).map(|s| s.buf.clone())
    }

    /// Adds a clean page just read from disk (unless a newer one is there).
    pub fn insert_clean(&mut self, key: PageKey, buf: PageBuf) {
        if self.pages.contains_key(&key) {
            return;
        }
        self.bytes += buf.len();
        self.pages.insert(
            key,
            Slot {
                buf,
                dirty: false,
                referenced: AtomicBool::new(true),
            },
        );
    }

    /// Installs a committed page image; it is dirty until written back.
    pub fn install(&mut self, key: PageKey, buf: PageBuf) {
        let len = buf.len();
        if let Some(old) = self.pages.insert(
            key,
            Slot {
                buf,
                dirty: true,
                referenced: AtomicBool::new(true),
            },
        ) {
            self.bytes -= old.buf.len();
        }
        self.bytes += len;
    }

    /// Drops every page of a removed file, dirty or not.
    pub fn forget_file(&mut self, file: FileId) {
        let mut freed = 0;
        self.pages.retain(|k, s| {
            let keep = k.0 != file;
            if !keep {
                freed += s.buf.len();
            }
            keep
        });
        self.bytes -= freed;
    }

    pub fn over_capacity(&self) -> bool {
        self.bytes > self.capacity
    }

    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn dirty_count(&self) -> usize {
        self.pages.values().filter(|s| s.dirty).count()
    }

    /// Evicts clean, not recently used pages until the cache is at 3/4 of
    /// its capacity. Returns dirty pages that must be written back before
    /// they can go (with the highest LSN among them, for the log flush).
    pub fn evict(&mut self) -> (Vec<(PageKey, PageBuf)>, Lsn) {
        let target = self.capacity / 4 * 3;
        let mut gone = Vec::new();
        for pass in 0..2 {
            for (k, s) in self.pages.iter_mut() {
                if self.bytes <= target {
                    break;
                }
                if s.dirty {
                    continue;
                }
                if *s.referenced.get_mut() && pass == 0 {
                    *s.referenced.get_mut() = false;
                    continue;
                }
                self.bytes -= s.buf.len();
                gone.push(*k);
            }
            for k in gone.drain(..) {
                self.pages.remove(&k);
            }
        }
        if self.bytes <= target {
            return (Vec::new(), Lsn::ZERO);
        }
        // Not enough clean pages: hand back dirty ones to write.
        let mut out = Vec::new();
        let mut max = Lsn::ZERO;
        let mut need = self.bytes - target;
        for (k, s) in self.pages.iter() {
            if need == 0 {
                break;
            }
            if s.dirty {
                max = max.max(page::lsn(&s.buf));
                need = need.saturating_sub(s.buf.len());
                out.push((*k, s.buf.clone()));
            }
        }
        (out, max)
    }

    /// Every dirty page, sorted by file and page number (for checkpoints).
    pub fn dirty_pages(&self) -> Vec<(PageKey, PageBuf)> {
        let mut v: Vec<_> = self
            .pages
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(k, s)| (*k, s.buf.clone()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Keys of every dirty page, sorted (a checkpoint's snapshot).
    pub fn dirty_keys(&self) -> Vec<PageKey> {
        let mut v: Vec<PageKey> = self
            .pages
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(k, _)| *k)
            .collect();
        v.sort();
        v
    }

    /// The image of `key` if it is cached and dirty (without counting a hit:
    /// write-back is not a use).
    pub fn dirty_image(&self, key: PageKey) -> Option<PageBuf> {
        self.pages
            .get(&key)
            .filter(|s| s.dirty)
            .map(|s| s.buf.clone())
    }

    /// Marks a page clean after write-back, unless a newer image was
    /// installed meanwhile (its Arc differs).
    pub fn mark_clean(&mut self, key: PageKey, written: &PageBuf) {
        if let Some(s) = self.pages.get_mut(&key) {
            if std::sync::Arc::ptr_eq(&s.buf, written) {
                s.dirty = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PageNo;
    use std::sync::Arc;

    fn page(lsn: u32) -> PageBuf {
        let mut b = vec![0u8; 4096];
        page::set_lsn(&mut b, Lsn::new(1, lsn));
        Arc::new(b)
    }

    #[test]
    fn eviction_prefers_clean_pages_and_returns_dirty_ones_with_their_max_lsn() {
        let mut c = Cache::new(64 * 1024); // 16 pages
        for i in 0..10 {
            c.install((FileId(1), PageNo(i)), page(100 + i));
        }
        for i in 10..20 {
            c.insert_clean((FileId(1), PageNo(i)), page(1));
        }
        assert!(c.over_capacity());
        let (dirty, max) = c.evict();
        assert!(dirty.is_empty(), "clean pages were enough");
        assert_eq!(max, Lsn::ZERO);
        assert_eq!(c.dirty_count(), 10);
        for i in 20..40 {
            c.install((FileId(2), PageNo(i)), page(200 + i));
        }
        let (dirty, max) = c.evict();
        assert!(!dirty.is_empty());
        assert!(max >= Lsn::new(1, 100));
        let (k, b) = &dirty[0];
        c.mark_clean(*k, b);
        assert!(c.dirty_count() < 30);
        c.forget_file(FileId(2));
        assert!(c.dirty_pages().iter().all(|(k, _)| k.0 == FileId(1)));
    }
}
