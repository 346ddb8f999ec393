//! The pairs of a load that come out of key order, put in key order: they
//! are gathered in a chunk of at most `CHUNK_BYTES`, sorted by key, and
//! put one by one. A put in key order finds the pages of the one before
//! it in the cache and touches each page once per chunk; in input order a
//! put goes wherever its key falls, and a shuffled million keys took six
//! times as long.
//!
//! The result is the one of putting every pair in input order, whatever
//! the duplicates: chunks go in input order, and inside a chunk the sort
//! is stable, so the pairs of one key stay in input order. Without
//! `no_overwrite` the last of them is put (each one counts as loaded,
//! as its put would); with it the first is put unless the key exists, and
//! every other is skipped and reported, in input line order.

use crate::engine::txn::Txn;
use crate::error::Result;
use crate::storage::dbfile::Db;
use std::ops::Range;

/// Key and value bytes (and their index entries) a chunk holds at most.
pub(super) const CHUNK_BYTES: usize = 32 << 20;

/// A pair held: where its key and value are in `Chunk::bytes`, and the
/// input line of its key.
struct Entry {
    at: usize,
    klen: usize,
    vlen: usize,
    line: usize,
}

impl Entry {
    fn key(&self) -> Range<usize> {
        self.at..self.at + self.klen
    }

    fn val(&self) -> Range<usize> {
        self.at + self.klen..self.at + self.klen + self.vlen
    }
}

/// What putting a chunk did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Put {
    pub loaded: u64,
    pub existed: u64,
}

#[derive(Default)]
pub(super) struct Chunk {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Chunk {
    pub fn push(&mut self, key: &[u8], val: &[u8], line: usize) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(val);
        self.entries.push(Entry {
            at,
            klen: key.len(),
            vlen: val.len(),
            line,
        });
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() + self.entries.len() * std::mem::size_of::<Entry>() >= CHUNK_BYTES
    }

    /// Puts the pairs held in key order (see the module comment) and
    /// empties the chunk; `skipped` hears of each key skipped under
    /// `no_overwrite`, with its line, in line order.
    pub fn put_all(
        &mut self,
        txn: &mut Txn<'_>,
        db: &Db,
        no_overwrite: bool,
        skipped: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<Put> {
        let bytes = &self.bytes;
        self.entries
            .sort_by(|a, b| bytes[a.key()].cmp(&bytes[b.key()]));
        let mut done = Put::default();
        let mut skips: Vec<&Entry> = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            let key = &bytes[self.entries[i].key()];
            let run = self.entries[i..]
                .iter()
                .take_while(|e| &bytes[e.key()] == key)
                .count();
            let same = &self.entries[i..i + run];
            i += run;
            if !no_overwrite {
                let last = &same[run - 1];
                txn.put(db, key, &bytes[last.val()])?;
                done.loaded += run as u64;
                continue;
            }
            let first = &same[0];
            if txn.get(db, key)?.is_some() {
                skips.push(first);
            } else {
                txn.put(db, key, &bytes[first.val()])?;
                done.loaded += 1;
            }
            skips.extend(&same[1..]);
        }
        skips.sort_by_key(|e| e.line);
        for e in &skips {
            skipped(e.line, &bytes[e.key()]);
        }
        done.existed = skips.len() as u64;
        self.bytes.clear();
        self.entries.clear();
        Ok(done)
    }
}
