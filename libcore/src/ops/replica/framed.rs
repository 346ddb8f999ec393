//! The framing every replication object is stored in, so a reader can tell
//! a whole object from a short, torn or foreign one whatever store it came
//! from (a directory on a file system that tears writes, an object store
//! whose upload was cut, a bucket edited by hand).
//!
//! Layout (little-endian), a 24-byte header then the payload:
//!
//! ```text
//! 0  magic        4  "bdRO"
//! 4  version      2  FORMAT_VERSION
//! 6  reserved     2  0
//! 8  kind         4  four ASCII bytes chosen by the caller ("SEGM", "LEAS")
//! 12 payload_len  4  bytes after the header
//! 16 payload_crc  4  CRC-32 of the payload
//! 20 header_crc   4  CRC-32 of bytes 0..20
//! ```
//!
//! The header has its own checksum so a damaged length is reported as a
//! damaged header, not as a torn payload. `decode` refuses anything that is
//! not exactly one whole frame of the expected kind, with one `Corrupt`
//! line naming the store and the key. Objects are small (segments, leases,
//! manifests): big files go through `put_file` and a `FileSum` instead.

use super::store::ReplicaStore;
use crate::error::{Error, Result, StoreFault};

/// The first four bytes of every framed object.
pub const MAGIC: [u8; 4] = *b"bdRO";
/// The frame format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The header's length in bytes; the payload follows it.
pub const HEADER_LEN: usize = 24;

/// What an object holds, as four ASCII bytes (`Kind(*b"SEGM")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub [u8; 4]);

impl Kind {
    fn name(self) -> String {
        String::from_utf8_lossy(&self.0).escape_debug().to_string()
    }
}

/// The framed form of `payload`.
pub fn encode(kind: Kind, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::invalid(format!(
            "replica object of {} bytes is too big to frame (use put_file)",
            payload.len()
        ))
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&kind.0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..20]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The payload of a framed object of kind `kind`, read from `key` of the
/// store at `location` (both only name it in errors).
pub fn decode<'a>(location: &str, key: &str, kind: Kind, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let bad = |what: String| Error::store(location, key, StoreFault::Corrupt, what);
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "torn object: {} bytes, shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..4] != MAGIC {
        return Err(bad("not a replica object (bad magic)".into()));
    }
    if crc32fast::hash(&bytes[..20]) != u32_at(bytes, 20) {
        return Err(bad("damaged object: header checksum mismatch".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "object format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    let found = Kind([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if found != kind {
        return Err(bad(format!(
            "object holds {:?}, expected {:?}",
            found.name(),
            kind.name()
        )));
    }
    let len = u32_at(bytes, 12) as usize;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(bad(format!(
            "torn object: header says {len} payload bytes, {} present",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != u32_at(bytes, 16) {
        return Err(bad("damaged object: payload checksum mismatch".into()));
    }
    Ok(payload)
}

/// Frames and stores `payload` under `key`.
pub fn put_framed(store: &dyn ReplicaStore, key: &str, kind: Kind, payload: &[u8]) -> Result<()> {
    store.put(key, &encode(kind, payload)?)
}

/// Frames and creates `key` (create-only; see `ReplicaStore::create`).
pub fn create_framed(
    store: &dyn ReplicaStore,
    key: &str,
    kind: Kind,
    payload: &[u8],
) -> Result<bool> {
    store.create(key, &encode(kind, payload)?)
}

/// Reads `key` and checks its frame: the payload and the object's version
/// (for a later `replace`), or `None` if there is no object.
pub fn get_framed(
    store: &dyn ReplicaStore,
    key: &str,
    kind: Kind,
) -> Result<Option<(Vec<u8>, super::store::Version)>> {
    let Some(obj) = store.get(key)? else {
        return Ok(None);
    };
    let payload = decode(&store.describe(), key, kind, &obj.bytes)?.to_vec();
    Ok(Some((payload, obj.version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: Kind = Kind(*b"SEGM");

    #[test]
    fn round_trip_and_empty_payload() {
        for p in [&b""[..], b"x", &[0u8; 1000][..]] {
            let f = encode(SEG, p).unwrap();
            assert_eq!(f.len(), HEADER_LEN + p.len());
            assert_eq!(decode("loc", "k", SEG, &f).unwrap(), p);
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_refused() {
        let f = encode(SEG, b"the payload of a segment").unwrap();
        for n in 0..f.len() {
            let e = decode("/st", "seg/1", SEG, &f[..n]).unwrap_err();
            assert_eq!(e.store_fault(), Some(StoreFault::Corrupt), "cut at {n}");
            assert!(e.to_string().starts_with("/st/seg/1: "), "{e}");
        }
        for i in 0..f.len() * 8 {
            let mut g = f.clone();
            g[i / 8] ^= 1 << (i % 8);
            let e = decode("/st", "seg/1", SEG, &g).unwrap_err();
            assert_eq!(e.store_fault(), Some(StoreFault::Corrupt), "bit {i}");
            assert!(!e.to_string().contains('\n'));
        }
        let mut long = f.clone();
        long.push(0);
        let e = decode("/st", "seg/1", SEG, &long).unwrap_err();
        assert!(e.to_string().contains("torn object"), "{e}");
    }

    #[test]
    fn the_wrong_kind_is_named() {
        let f = encode(Kind(*b"LEAS"), b"x").unwrap();
        let e = decode("/st", "lease", SEG, &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/st/lease: object holds \"LEAS\", expected \"SEGM\""
        );
    }
}
