//! A log segment: the bytes `[start, end)` of one log file of the
//! primary, as the master ships them and clients and restores apply them.
//!
//! Framed (kind `SEGM`), the payload is a 48-byte header then the bytes
//! (little-endian; man/db_format.5):
//!
//! ```text
//! 0  env_id     8  the primary's environment id
//! 8  epoch      8  the epoch of the master that shipped it (its key's)
//! 16 start      8  Lsn::to_u64 of the first byte
//! 24 end        8  Lsn::to_u64 past the last byte (same file)
//! 32 prev_crc   4  CRC-32 of the previous segment's log bytes (the chain)
//! 36 flags      4  bit 0: `end` closes a transaction or checkpoint;
//!                  bit 1: the first segment of a chain (prev_crc is 0)
//! 40 bytes_crc  4  CRC-32 of this segment's log bytes
//! 44 reserved   4  0
//! 48 bytes         end.offset - start.offset bytes of the log file
//! ```
//!
//! A segment never spans two log files; the first segment of a file
//! starts at offset 0 and so carries the file's header. The frame's
//! checksum covers header and bytes; `bytes_crc` is what the next segment
//! chains to, so a reader checks contiguity (its start is the previous
//! end) and the chain (its `prev_crc` is the previous `bytes_crc`) before
//! it applies anything.

use super::framed::{self, Kind};
use super::layout;
use super::store::ReplicaStore;
use crate::error::{Error, Result, StoreFault};
use crate::storage::codec::{crc32, Reader, Writer};
use crate::types::Lsn;

/// The framing kind of a segment object.
pub const KIND_SEGMENT: Kind = Kind(*b"SEGM");
/// `end` is the end of a complete transaction (or a checkpoint record):
/// redo up to it leaves no transaction half read.
pub const FLAG_BOUNDARY: u32 = 1;
/// The first segment of a chain: of the first base, or after a gap the
/// master could not ship (a log file removed by hand).
pub const FLAG_CHAIN_START: u32 = 2;
const HEADER: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A run of the primary's log bytes as shipped into the store: one
/// object, chained to the previous one by its checksum.
pub struct Segment {
    /// The environment whose log it is.
    pub env_id: u64,
    /// The epoch (primary) that shipped it.
    pub epoch: u64,
    /// Where its bytes start in the log.
    pub start: Lsn,
    /// Where they end (the next segment's start).
    pub end: Lsn,
    /// The checksum of the previous segment's bytes (0 for a chain start):
    /// a reader that follows the chain finds a missing or foreign segment.
    pub prev_crc: u32,
    /// `FLAG_BOUNDARY`, `FLAG_CHAIN_START`.
    pub flags: u32,
    /// The log bytes, `start` to `end`, all in `start`'s log file.
    pub bytes: Vec<u8>,
}

impl Segment {
    /// Its key in the store (`segments/<epoch>/<start>-<end>`).
    pub fn key(&self) -> String {
        layout::segment_key(self.epoch, self.start, self.end)
    }

    /// The checksum of its bytes: what the next segment's `prev_crc` holds.
    pub fn bytes_crc(&self) -> u32 {
        crc32(&self.bytes)
    }

    /// Whether it ends at a transaction boundary (`FLAG_BOUNDARY`).
    pub fn is_boundary(&self) -> bool {
        self.flags & FLAG_BOUNDARY != 0
    }

    /// Whether it starts a chain (`FLAG_CHAIN_START`).
    pub fn starts_chain(&self) -> bool {
        self.flags & FLAG_CHAIN_START != 0
    }

    /// The framed object.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.u64(self.env_id)
            .u64(self.epoch)
            .u64(self.start.to_u64())
            .u64(self.end.to_u64())
            .u32(self.prev_crc)
            .u32(self.flags)
            .u32(self.bytes_crc())
            .u32(0)
            .bytes(&self.bytes);
        framed::encode(KIND_SEGMENT, &w.buf)
    }

    /// Decodes and checks the object stored under `key`: its frame, that
    /// it is the segment the key names, and its bytes' checksum. Every
    /// failure is one `Corrupt` line naming the store and the key.
    pub fn decode(location: &str, key: &str, object: &[u8]) -> Result<Segment> {
        let payload = framed::decode(location, key, KIND_SEGMENT, object)?;
        let bad = |what: String| Error::store(location, key, StoreFault::Corrupt, what);
        if payload.len() < HEADER {
            return Err(bad("segment header is truncated".into()));
        }
        let mut r = Reader::new(payload);
        let field = |r: &mut Reader| r.u64().unwrap_or(0);
        let env_id = field(&mut r);
        let epoch = field(&mut r);
        let start = Lsn::from_u64(field(&mut r));
        let end = Lsn::from_u64(field(&mut r));
        let word = |r: &mut Reader| r.u32().unwrap_or(0);
        let prev_crc = word(&mut r);
        let flags = word(&mut r);
        let bytes_crc = word(&mut r);
        word(&mut r);
        let bytes = r.rest().to_vec();
        if layout::parse_segment_key(key) != Some((epoch, start, end)) {
            return Err(bad(format!(
                "holds the log bytes {start}..{end} of epoch {epoch}, which is not what its name says"
            )));
        }
        if bytes.len() as u64 != u64::from(end.offset - start.offset) {
            return Err(bad(format!(
                "holds {} log bytes for the range {start}..{end}",
                bytes.len()
            )));
        }
        if crc32(&bytes) != bytes_crc {
            return Err(bad("log bytes checksum mismatch".into()));
        }
        Ok(Segment {
            env_id,
            epoch,
            start,
            end,
            prev_crc,
            flags,
            bytes,
        })
    }

    /// Reads the segment under `key`; `None` when it is gone (pruned).
    pub fn get(store: &dyn ReplicaStore, key: &str) -> Result<Option<Segment>> {
        let Some(obj) = store.get(key)? else {
            return Ok(None);
        };
        Segment::decode(&store.describe(), key, &obj.bytes).map(Some)
    }
}

/// One segment as listed: its epoch, start, end and key.
pub type Listed = (u64, Lsn, Lsn, String);

/// Every segment of the store (all epochs) from log file `from_file` on,
/// in (epoch, log) order.
pub fn list_from(store: &dyn ReplicaStore, from_file: u32) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for m in store.list(layout::SEGMENTS)? {
        if let Some((e, s, end)) = layout::parse_segment_key(&m.key) {
            if s.file >= from_file {
                out.push((e, s, end, m.key));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The segments of one log file in one epoch, in order.
pub fn list_file(store: &dyn ReplicaStore, epoch: u64, file: u32) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = store
        .list(&layout::segment_dir(epoch, file))?
        .into_iter()
        .filter_map(|m| layout::parse_segment_key(&m.key).map(|(e, s, end)| (e, s, end, m.key)))
        .collect();
    out.sort();
    Ok(out)
}

/// Listings of (epoch, file) directories, kept while a follower walks
/// them: the walk lists each directory once, and again only when what it
/// looks for is not in the listing it has (it may have come since).
#[derive(Default)]
pub struct Finder {
    cache: std::collections::HashMap<(u64, u32), Vec<Listed>>,
}

impl Finder {
    fn dir(
        &mut self,
        store: &dyn ReplicaStore,
        epoch: u64,
        file: u32,
        fresh: bool,
    ) -> Result<&[Listed]> {
        if fresh || !self.cache.contains_key(&(epoch, file)) {
            let l = list_file(store, epoch, file)?;
            self.cache.insert((epoch, file), l);
        }
        Ok(self
            .cache
            .get(&(epoch, file))
            .map(|v| v.as_slice())
            .unwrap_or(&[]))
    }

    /// The segment of `epoch` that starts at `at`: in `at`'s file, or,
    /// when `at` is the end of its file, the first of the next file
    /// (offset 0).
    pub fn find_at(
        &mut self,
        store: &dyn ReplicaStore,
        epoch: u64,
        at: Lsn,
    ) -> Result<Option<Listed>> {
        for fresh in [false, true] {
            if let Some(s) = self
                .dir(store, epoch, at.file, fresh)?
                .iter()
                .find(|s| s.1 == at)
            {
                return Ok(Some(s.clone()));
            }
            let next = Lsn::new(at.file.saturating_add(1), 0);
            if let Some(s) = self
                .dir(store, epoch, next.file, fresh)?
                .iter()
                .find(|s| s.1 == next)
            {
                return Ok(Some(s.clone()));
            }
        }
        Ok(None)
    }

    /// The next segment of `epoch` after `at`, fetched: the one starting
    /// at `at`, else the first of the next log file. A listing is a
    /// moment's: the next file's first segment may be listed while the
    /// end of `at`'s file was not yet when it was listed; so one that does
    /// not chain to `crc` (when given) sends the walk back to `at`'s file,
    /// listed again, and is returned (for the caller to refuse) only if
    /// nothing starts at `at` even then.
    pub fn next(
        &mut self,
        store: &dyn ReplicaStore,
        epoch: u64,
        at: Lsn,
        crc: Option<u32>,
    ) -> Result<Option<(String, Segment)>> {
        let here = |f: &mut Finder, fresh: bool| -> Result<Option<String>> {
            Ok(f.dir(store, epoch, at.file, fresh)?
                .iter()
                .find(|s| s.1 == at)
                .map(|s| s.3.clone()))
        };
        let fetch = |key: String| -> Result<Option<(String, Segment)>> {
            Ok(Segment::get(store, &key)?.map(|seg| (key, seg)))
        };
        // A walk never goes back: listings of files behind it go.
        self.cache.retain(|&(_, f), _| f >= at.file);
        for fresh in [false, true] {
            if let Some(key) = here(self, fresh)? {
                return fetch(key);
            }
        }
        let next = Lsn::new(at.file.saturating_add(1), 0);
        for fresh in [false, true] {
            let Some(key) = self
                .dir(store, epoch, next.file, fresh)?
                .iter()
                .find(|s| s.1 == next)
                .map(|s| s.3.clone())
            else {
                continue;
            };
            let Some((key, seg)) = fetch(key)? else {
                return Ok(None);
            };
            if crc.is_none_or(|c| seg.prev_crc == c) || seg.starts_chain() {
                return Ok(Some((key, seg)));
            }
            if let Some(k) = here(self, true)? {
                return fetch(k);
            }
            return Ok(Some((key, seg)));
        }
        Ok(None)
    }

    /// The segment of `epoch` that ends at `end`.
    pub fn ending_at(
        &mut self,
        store: &dyn ReplicaStore,
        epoch: u64,
        end: Lsn,
    ) -> Result<Option<Listed>> {
        for fresh in [false, true] {
            if let Some(s) = self
                .dir(store, epoch, end.file, fresh)?
                .iter()
                .find(|s| s.2 == end)
            {
                return Ok(Some(s.clone()));
            }
        }
        Ok(None)
    }

    /// Forgets every listing (after the store changed under a walk).
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

/// The segment of `epoch` that starts at `at` (see `Finder::find_at`).
pub fn find_at(store: &dyn ReplicaStore, epoch: u64, at: Lsn) -> Result<Option<Listed>> {
    Finder::default().find_at(store, epoch, at)
}

/// The last segment `epoch` shipped (its master's shipped position).
pub fn last(store: &dyn ReplicaStore, epoch: u64) -> Result<Option<Listed>> {
    let mut dirs: Vec<u32> = store
        .list(&layout::segment_epoch_dir(epoch))?
        .iter()
        .filter_map(|m| layout::parse_segment_key(&m.key).map(|(_, s, _)| s.file))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    for f in dirs.into_iter().rev() {
        if let Some(l) = list_file(store, epoch, f)?.pop() {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg() -> Segment {
        Segment {
            env_id: 9,
            epoch: 3,
            start: Lsn::new(2, 40),
            end: Lsn::new(2, 50),
            prev_crc: 7,
            flags: FLAG_BOUNDARY,
            bytes: b"0123456789".to_vec(),
        }
    }

    #[test]
    fn a_segment_round_trips_and_is_checked_against_its_key() {
        let s = seg();
        let enc = s.encode().unwrap();
        assert_eq!(Segment::decode("/st", &s.key(), &enc).unwrap(), s);
        for other in [
            layout::segment_key(3, Lsn::new(2, 40), Lsn::new(2, 51)),
            layout::segment_key(4, Lsn::new(2, 40), Lsn::new(2, 50)),
        ] {
            let e = Segment::decode("/st", &other, &enc).unwrap_err();
            assert!(e.to_string().contains("not what its name says"), "{e}");
        }
        for cut in [0, 30, enc.len() - 1] {
            let e = Segment::decode("/st", &s.key(), &enc[..cut]).unwrap_err();
            assert_eq!(e.store_fault(), Some(StoreFault::Corrupt));
            assert!(
                e.to_string()
                    .starts_with("/st/segments/0000000000000003/00000002/"),
                "{e}"
            );
        }
    }
}
