//! The proof that a standby equals its primary: a SHA-256 digest of every
//! database's logical content at one log position. Equal digests at the
//! same position mean equal databases, whatever the pages look like.
//!
//! The digest covers, for each database in name order, the name and then
//! every key/value pair in key order, each as a u32 length and the bytes
//! (so no two different contents hash the same stream), and a count of
//! pairs closing each database. It is taken on a read-only view, which
//! replays the log to its end: the position is that end, a transaction
//! boundary, and taking it never stops the primary.
//!
//! The master posts `digests/<position>` (framed kind `DGST`: position
//! u64, then the 32 bytes) and ships a segment ending exactly there; a
//! client whose applied log reaches that position takes its own and
//! records whether they are equal.

use super::framed::Kind;
use crate::engine::env::{Env, EnvOptions};
use crate::engine::reader::scan;
use crate::error::{Error, Result};
use crate::storage::codec::{Reader, Writer};
use crate::types::Lsn;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The frame kind of a posted digest.
pub const KIND_DIGEST: Kind = Kind(*b"DGST");

/// How many times a view whose owner moved under it is opened again.
const TRIES: u32 = 20;

/// The digest of the content an open environment shows, and the log
/// position it is at.
pub fn of_env(env: &Env) -> Result<(Lsn, [u8; 32])> {
    let mut h = Sha256::new();
    for name in env.db_names() {
        let db = env.open_db(&name)?;
        h.update((name.len() as u32).to_le_bytes());
        h.update(name.as_bytes());
        let mut pairs = 0u64;
        scan(env, &db, |k, v| {
            h.update((k.len() as u32).to_le_bytes());
            h.update(k);
            h.update((v.len() as u32).to_le_bytes());
            h.update(v);
            pairs += 1;
            Ok(())
        })?;
        h.update(pairs.to_le_bytes());
    }
    Ok((env.log_end(), h.finalize().into()))
}

/// The digest of the environment at `home` through a read-only view
/// (beside a running owner, or on a standby whose client is stopped or
/// running). `at` is told the position as soon as the view is open,
/// before the (longer) scan.
pub fn of_home(home: &Path, at: &mut dyn FnMut(Lsn)) -> Result<(Lsn, [u8; 32])> {
    let mut last = None;
    for _ in 0..TRIES {
        let env = Env::open(home, EnvOptions::read_only())?;
        at(env.log_end());
        match of_env(&env) {
            Err(Error::SnapshotMoved) => last = Some(Error::SnapshotMoved),
            r => return r,
        }
    }
    Err(last.unwrap_or(Error::SnapshotMoved))
}

/// The digest as 64 lowercase hex digits, for messages.
pub fn hex(sum: &[u8; 32]) -> String {
    sum.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload of a posted digest: the position `at`, then the 32 bytes.
pub fn encode(at: Lsn, sum: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(at.to_u64()).bytes(sum);
    w.buf
}

/// The position and digest of a posted digest's payload; `None` when it is
/// not exactly that.
pub fn decode(payload: &[u8]) -> Option<(Lsn, [u8; 32])> {
    let mut r = Reader::new(payload);
    let at = Lsn::from_u64(r.u64().ok()?);
    let sum: [u8; 32] = r.bytes(32).ok()?.try_into().ok()?;
    (r.remaining() == 0).then_some((at, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_equal_digest_and_any_change_shows() {
        let mk = |extra: bool| {
            let d = tempfile::tempdir().unwrap();
            let env = Env::open(d.path(), EnvOptions::create()).unwrap();
            let mut t = env.begin().unwrap();
            let a = t.create_db("a.db", Some(512)).unwrap();
            for i in 0..300u32 {
                t.put(&a, &i.to_be_bytes(), &[7u8; 40]).unwrap();
            }
            if extra {
                t.put(&a, b"k", b"").unwrap();
            }
            t.commit().unwrap();
            env.close().unwrap();
            let (at, sum) = of_home(d.path(), &mut |_| {}).unwrap();
            (d, at, sum)
        };
        let (_d1, at1, s1) = mk(false);
        let (_d2, _, s2) = mk(false);
        let (_d3, _, s3) = mk(true);
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        assert!(!at1.is_zero());
        assert_eq!(decode(&encode(at1, &s1)), Some((at1, s1)));
        assert_eq!(hex(&s1).len(), 64);
    }
}
