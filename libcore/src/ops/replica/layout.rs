//! Where replication keeps things in a replica store, and the store's
//! identity record every master, client and restore checks first. The
//! byte layouts are in man/db_format.5.
//!
//! Keys (all under the store root or prefix):
//!
//! ```text
//! store                                   STOR: layout version, env_id, created
//! lease                                   LEAS: which master may ship (lease.rs)
//! epochs/<16 hex epoch>                   EPOC: where that epoch's history
//!                                         begins (epoch.rs), create-only
//! bases/<16 hex number>/file-<6 digits>   a database file of base N (streamed)
//! bases/<16 hex number>/manifest          BASE: written last; a base without
//!                                         it does not exist
//! segments/<16 hex epoch>/<8 hex file>/<16 hex start>-<16 hex end>
//!                                         SEGM: bytes [start, end) of one log
//!                                         file, shipped in that epoch
//! status/master                           MSTA: the master's positions and errors
//! digests/<16 hex epoch>/<16 hex lsn>     DGST: the primary's content digest at lsn
//! ```
//!
//! Database files are stored under numbered keys, their names in the base
//! manifest: a name may hold any byte a file name may, a key may not. A
//! base number carries the epoch of the master that wrote it in its top
//! 24 bits (`base_number`), so masters of two epochs never write the same
//! base. Segments are keyed by epoch, so two masters can never write one
//! key (and a fenced master's late segments are told apart), and grouped
//! by log file so that a follower lists only the file it is in (a listing
//! of every segment grows with the store); LSNs are `Lsn::to_u64` in
//! fixed-width hex so keys sort in log order.
//!
//! Layout version 2 (fencing, issue 13) added the lease, the epochs and
//! the epoch in segment and digest keys; a store of version 1 is refused
//! by name (replicate into a fresh store).

use super::framed::{self, Kind};
use super::store::ReplicaStore;
use crate::error::{Error, Result, StoreFault};
use crate::storage::codec::{Reader, Writer};
use crate::types::Lsn;

/// The layout version this build writes and reads.
pub const LAYOUT_VERSION: u32 = 2;
/// The key of the store's identity record.
pub const STORE_KEY: &str = "store";
/// The folder of the bases (full copies of the databases).
pub const BASES: &str = "bases";
/// The folder of the shipped log segments.
pub const SEGMENTS: &str = "segments";
/// The folder of the primary's content digests.
pub const DIGESTS: &str = "digests";
/// The key of the master's status object.
pub const MASTER_STATUS: &str = "status/master";
/// The frame kind of the store's identity record.
pub const KIND_STORE: Kind = Kind(*b"STOR");

/// `segments/<epoch>`: the segments one epoch shipped.
pub fn segment_epoch_dir(epoch: u64) -> String {
    format!("{SEGMENTS}/{epoch:016x}")
}

/// `segments/<epoch>/<file>`: the segments of one log file in one epoch.
pub fn segment_dir(epoch: u64, file: u32) -> String {
    format!("{}/{file:08x}", segment_epoch_dir(epoch))
}

/// The key of the segment holding log bytes `[start, end)` shipped in
/// `epoch`; both ends must be in one log file.
pub fn segment_key(epoch: u64, start: Lsn, end: Lsn) -> String {
    format!(
        "{}/{:016x}-{:016x}",
        segment_dir(epoch, start.file),
        start.to_u64(),
        end.to_u64()
    )
}

fn hex(s: &str, n: usize) -> Option<u64> {
    (s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// The (epoch, start, end) a segment key names; `None` for any other key.
pub fn parse_segment_key(key: &str) -> Option<(u64, Lsn, Lsn)> {
    let rest = key.strip_prefix(SEGMENTS)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (epoch, dir, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (a, b) = name.split_once('-')?;
    let epoch = hex(epoch, 16)?;
    let file = hex(dir, 8)? as u32;
    let (start, end) = (Lsn::from_u64(hex(a, 16)?), Lsn::from_u64(hex(b, 16)?));
    (start.file == file && end.file == file && start < end).then_some((epoch, start, end))
}

/// The number of the `seq`th base written in `epoch`.
pub fn base_number(epoch: u64, seq: u64) -> u64 {
    (epoch << 40) | (seq & ((1 << 40) - 1))
}

/// The epoch whose master wrote base `number`.
pub fn base_epoch(number: u64) -> u64 {
    number >> 40
}

/// `bases/<number>`: the folder of base `number`'s objects.
pub fn base_prefix(number: u64) -> String {
    format!("{BASES}/{number:016x}")
}

/// The key of base `number`'s manifest, the object that, written last,
/// makes the base exist.
pub fn base_manifest_key(number: u64) -> String {
    format!("{}/manifest", base_prefix(number))
}

/// The key of the `index`th database file of base `number` (its name is
/// in the manifest).
pub fn base_file_key(number: u64, index: u32) -> String {
    format!("{}/file-{index:06}", base_prefix(number))
}

/// The base number a key under `bases/` belongs to.
pub fn parse_base_number(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(BASES)?.strip_prefix('/')?;
    let num = rest.split('/').next()?;
    (num.len() == 16)
        .then(|| u64::from_str_radix(num, 16).ok())
        .flatten()
}

/// `digests/<epoch>`: the digests posted in `epoch`.
pub fn digest_dir(epoch: u64) -> String {
    format!("{DIGESTS}/{epoch:016x}")
}

/// The key of the digest posted in `epoch` at log position `at`.
pub fn digest_key(epoch: u64, at: Lsn) -> String {
    format!("{}/{:016x}", digest_dir(epoch), at.to_u64())
}

/// The (epoch, position) of a digest key.
pub fn parse_digest_key(key: &str) -> Option<(u64, Lsn)> {
    let rest = key.strip_prefix(DIGESTS)?.strip_prefix('/')?;
    let (e, at) = rest.split_once('/')?;
    Some((hex(e, 16)?, Lsn::from_u64(hex(at, 16)?)))
}

/// The `store` object: which environment the store replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreInfo {
    /// The store's layout version (`LAYOUT_VERSION` when written by this
    /// build).
    pub version: u32,
    /// The id of the environment replicated into the store; masters and
    /// clients of another environment are refused.
    pub env_id: u64,
    /// Unix seconds when the first master created it.
    pub created: u64,
}

impl StoreInfo {
    /// The record as the payload of its framed object (byte layout in
    /// man/db_format.5).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.version)
            .u32(0)
            .u64(self.env_id)
            .u64(self.created);
        w.buf
    }

    /// The record from a framed object's payload; any other length is an
    /// `Error::Store` (`Corrupt`) naming `location`. The version is not
    /// checked here (`read_store_info` does).
    pub fn decode(location: &str, payload: &[u8]) -> Result<StoreInfo> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            let version = r.u32()?;
            r.u32()?;
            Ok::<_, crate::storage::codec::Short>(StoreInfo {
                version,
                env_id: r.u64()?,
                created: r.u64()?,
            })
        })();
        match parsed {
            Ok(i) if r.remaining() == 0 => Ok(i),
            _ => Err(Error::store(
                location,
                STORE_KEY,
                StoreFault::Corrupt,
                "not a store record of this version",
            )),
        }
    }
}

/// Reads the store's identity; `None` when the store holds none yet.
pub fn read_store_info(store: &dyn ReplicaStore) -> Result<Option<StoreInfo>> {
    let loc = store.describe();
    let Some((payload, _)) = framed::get_framed(store, STORE_KEY, KIND_STORE)? else {
        return Ok(None);
    };
    let info = StoreInfo::decode(&loc, &payload)?;
    if info.version != LAYOUT_VERSION {
        return Err(Error::store(
            loc,
            STORE_KEY,
            StoreFault::Invalid,
            format!(
                "store layout version {} is not supported (this build reads {LAYOUT_VERSION})",
                info.version
            ),
        ));
    }
    Ok(Some(info))
}

/// The store's identity, checked against the environment `env_id`: a store
/// of another environment is refused. With `create`, a store without one
/// gets it (create-only: of two masters starting at once, one writes it
/// and the other reads it back).
pub fn check_store(store: &dyn ReplicaStore, env_id: u64, create: bool) -> Result<StoreInfo> {
    let info = match read_store_info(store)? {
        Some(i) => i,
        None if create => {
            let info = StoreInfo {
                version: LAYOUT_VERSION,
                env_id,
                created: crate::types::now_secs(),
            };
            framed::create_framed(store, STORE_KEY, KIND_STORE, &info.encode())?;
            read_store_info(store)?.ok_or_else(|| {
                Error::store(
                    store.describe(),
                    STORE_KEY,
                    StoreFault::Failed,
                    "the store record vanished right after it was written",
                )
            })?
        }
        None => {
            return Err(Error::store(
                store.describe(),
                "",
                StoreFault::Invalid,
                "not a replica store (no store record): is it the right directory, and has a master (db_replicate -M) run?",
            ))
        }
    };
    if info.env_id != env_id {
        return Err(foreign(store, info.env_id, env_id));
    }
    Ok(info)
}

/// The error for a store that replicates another environment.
pub fn foreign(store: &dyn ReplicaStore, found: u64, ours: u64) -> Error {
    Error::store(
        store.describe(),
        STORE_KEY,
        StoreFault::Invalid,
        format!(
            "the store replicates another environment (id {found:016x}; this one is {ours:016x}); use a fresh store for it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_in_log_order() {
        let (a, b) = (Lsn::new(3, 40), Lsn::new(3, 9000));
        let k = segment_key(2, a, b);
        super::super::store::check_key("loc", &k).unwrap();
        assert_eq!(parse_segment_key(&k), Some((2, a, b)));
        assert!(segment_key(2, Lsn::new(3, 9000), Lsn::new(3, 9100)) > k);
        assert!(segment_key(2, Lsn::new(16, 0), Lsn::new(16, 40)) > k);
        assert_eq!(
            parse_segment_key("segments/0000000000000002/00000003/zz"),
            None
        );
        assert_eq!(
            parse_segment_key(&segment_key(2, Lsn::new(3, 40), Lsn::new(4, 40))),
            None,
            "a segment never spans two files"
        );
        assert_eq!(parse_base_number(&base_file_key(7, 2)), Some(7));
        assert_eq!(parse_base_number(&base_manifest_key(0x1234)), Some(0x1234));
        assert_eq!(base_epoch(base_number(3, 9)), 3);
        assert!(base_number(3, 1) > base_number(2, 900));
        assert_eq!(parse_digest_key(&digest_key(4, b)), Some((4, b)));
    }

    /// A store of layout version 1 (before fencing: no lease, no epochs,
    /// segments keyed without an epoch) is refused by name, not misread.
    #[test]
    fn a_store_of_another_layout_version_is_named() {
        let d = tempfile::tempdir().unwrap();
        let store =
            super::super::DirStore::open(crate::storage::vfs::OsVfs::shared(), d.path()).unwrap();
        let old = StoreInfo {
            version: 1,
            env_id: 7,
            created: 1,
        };
        framed::put_framed(&store, STORE_KEY, KIND_STORE, &old.encode()).unwrap();
        let e = read_store_info(&store).unwrap_err();
        assert!(
            e.to_string()
                .contains("store layout version 1 is not supported (this build reads 2)"),
            "{e}"
        );
    }

    #[test]
    fn the_store_record_names_its_environment() {
        let i = StoreInfo {
            version: LAYOUT_VERSION,
            env_id: 0xabc,
            created: 5,
        };
        assert_eq!(StoreInfo::decode("l", &i.encode()).unwrap(), i);
        assert!(StoreInfo::decode("l", &i.encode()[..10]).is_err());
    }
}
