//! Epochs: the numbered primaries of one store's history (issue 13).
//!
//! The store holds `epochs/<16 hex epoch>` (framed `EPOC`, written
//! create-only, never changed): the LSN where that epoch's history begins,
//! the epoch it continues, and the *tenure* (a random id) of the home that
//! began it. The first master of a store begins epoch 1 where its first
//! chain starts; a promotion begins epoch S+1 at the standby's consistency
//! point X, continuing S. The history of the store is then: epoch 1's log
//! up to where epoch 2 begins, epoch 2's up to where epoch 3 begins, and
//! so on; a byte of an older epoch past the point its successor began is
//! not part of it, and a reader that meets one rejects it.
//!
//! The home records its own epoch durably in `__db.epoch` (framed `EPCH`,
//! written by temporary name, fsync, rename, directory fsync): the epoch,
//! where it began, the epoch it continued, the tenure, and whether a
//! promotion to it is still under way. A master whose home's epoch is
//! older than the store's newest is an old primary back from the dead.

use super::framed::{self, Kind};
use super::store::ReplicaStore;
use crate::error::{Error, Location, Result, StoreFault};
use crate::storage::codec::{Reader, Writer};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use std::path::{Path, PathBuf};

/// The store's folder of epoch records.
pub const EPOCHS: &str = "epochs";
/// The frame kind of an epoch record in the store.
pub const KIND_EPOCH: Kind = Kind(*b"EPOC");
/// The frame kind of a home's own epoch file.
pub const KIND_HOME_EPOCH: Kind = Kind(*b"EPCH");
/// The name of a home's epoch file, in its home directory.
pub const HOME_FILE: &str = "__db.epoch";

/// The store key of `epoch`'s record: `epochs/` and 16 hex digits, so
/// keys sort as the epochs do.
pub fn epoch_key(epoch: u64) -> String {
    format!("{EPOCHS}/{epoch:016x}")
}

fn parse_epoch_key(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(EPOCHS)?.strip_prefix('/')?;
    (rest.len() == 16)
        .then(|| u64::from_str_radix(rest, 16).ok())
        .flatten()
}

/// A random 64-bit value (the standard library seeds `RandomState` from
/// the OS for each instance).
pub fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() | 1
}

/// The host name, for messages (`/proc/sys/kernel/hostname`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One `epochs/<e>` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRecord {
    /// The epoch's number (1 for the store's first; its key names it too).
    pub epoch: u64,
    /// Where this epoch's history begins (its first segment starts here,
    /// or in the next log file at offset 0).
    pub begins: Lsn,
    /// The epoch it continues (0 for the first of the store).
    pub continues: u64,
    /// The tenure of the home that began it.
    pub tenure: u64,
    /// Unix seconds when it began.
    pub created: u64,
    /// The host that began it, for messages.
    pub host: String,
}

impl EpochRecord {
    /// The record as the payload of its framed object (byte layout in
    /// man/db_format.5).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.epoch)
            .u64(self.begins.to_u64())
            .u64(self.continues)
            .u64(self.tenure)
            .u64(self.created)
            .blob(self.host.as_bytes());
        w.buf
    }

    /// The record from the payload of the object at `key`: an
    /// `Error::Store` (`Corrupt`) naming `location` and `key` when it is
    /// not of this version or is not the epoch `key` names.
    pub fn decode(location: &str, key: &str, payload: &[u8]) -> Result<EpochRecord> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            Ok::<_, crate::storage::codec::Short>(EpochRecord {
                epoch: r.u64()?,
                begins: Lsn::from_u64(r.u64()?),
                continues: r.u64()?,
                tenure: r.u64()?,
                created: r.u64()?,
                host: String::from_utf8_lossy(r.blob()?).into_owned(),
            })
        })();
        match parsed {
            Ok(e) if r.remaining() == 0 && parse_epoch_key(key) == Some(e.epoch) => Ok(e),
            _ => Err(Error::store(
                location,
                key,
                StoreFault::Corrupt,
                "not an epoch record of this version (or not the epoch its name says)",
            )),
        }
    }
}

/// The store's epochs, oldest first: the history's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Epochs {
    /// Every epoch record, in epoch order.
    pub list: Vec<EpochRecord>,
}

impl Epochs {
    /// Reads every epoch record of the store.
    pub fn read(store: &dyn ReplicaStore) -> Result<Epochs> {
        let mut nums: Vec<u64> = store
            .list(EPOCHS)?
            .iter()
            .filter_map(|m| parse_epoch_key(&m.key))
            .collect();
        nums.sort_unstable();
        let mut list = Vec::new();
        for n in nums {
            if let Some(e) = read_one(store, n)? {
                list.push(e);
            }
        }
        Ok(Epochs { list })
    }

    /// The newest epoch, the one the current primary ships in; `None`
    /// when no master has begun one yet.
    pub fn newest(&self) -> Option<&EpochRecord> {
        self.list.last()
    }

    /// The record of `epoch`; `None` when the store has none.
    pub fn get(&self, epoch: u64) -> Option<&EpochRecord> {
        self.list.iter().find(|e| e.epoch == epoch)
    }

    /// Where `epoch`'s part of the history ends: where its successor
    /// begins (`None`: it is the newest, its history goes on).
    pub fn end_of(&self, epoch: u64) -> Option<Lsn> {
        self.list.iter().find(|e| e.epoch > epoch).map(|e| e.begins)
    }

    /// The epoch whose segments hold the history at `at`: the newest that
    /// began at or before it.
    pub fn at(&self, at: Lsn) -> Option<u64> {
        self.list
            .iter()
            .rev()
            .find(|e| e.begins <= at)
            .map(|e| e.epoch)
            .or_else(|| self.list.first().map(|e| e.epoch))
    }

    /// The epoch whose segment ends at `end` (the history just before it).
    pub fn before(&self, end: Lsn) -> Option<u64> {
        self.list
            .iter()
            .rev()
            .find(|e| e.begins < end)
            .map(|e| e.epoch)
            .or_else(|| self.list.first().map(|e| e.epoch))
    }

    /// Whether a segment of `epoch` ending at `end` is part of the history:
    /// it ends no later than where the epoch's successor began.
    pub fn holds(&self, epoch: u64, end: Lsn) -> bool {
        self.end_of(epoch).is_none_or(|x| end <= x)
    }
}

/// The record of epoch `n`, `None` when there is none.
pub fn read_one(store: &dyn ReplicaStore, n: u64) -> Result<Option<EpochRecord>> {
    let key = epoch_key(n);
    match framed::get_framed(store, &key, KIND_EPOCH)? {
        Some((p, _)) => EpochRecord::decode(&store.describe(), &key, &p).map(Some),
        None => Ok(None),
    }
}

/// Creates `epochs/<e>` (create-only). `Ok(rec)` when it is there and
/// began by this tenure (created now, or by an earlier attempt of this
/// home); a `Fenced` error naming the other when another home began it.
pub fn begin(store: &dyn ReplicaStore, rec: &EpochRecord) -> Result<EpochRecord> {
    let key = epoch_key(rec.epoch);
    framed::create_framed(store, &key, KIND_EPOCH, &rec.encode())?;
    let found = read_one(store, rec.epoch)?.ok_or_else(|| {
        Error::store(
            store.describe(),
            &key,
            StoreFault::Failed,
            "the epoch record vanished right after it was written",
        )
    })?;
    if found.tenure != rec.tenure {
        return Err(Error::store(
            store.describe(),
            key,
            StoreFault::Fenced,
            format!(
                "epoch {} was begun by another copy of this environment (on host {:?}, at {}): this one is not its primary",
                found.epoch, found.host, found.begins
            ),
        ));
    }
    Ok(found)
}

/// A home's own record of its epoch (`__db.epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeEpoch {
    /// The epoch this home ships in (or is being promoted to).
    pub epoch: u64,
    /// Where that epoch's history begins.
    pub begins: Lsn,
    /// The epoch it continues (0 for a store's first).
    pub continues: u64,
    /// This home's tenure: a random id that tells its epochs from those
    /// of another home.
    pub tenure: u64,
    /// A promotion to `epoch` is under way (the home is still a standby).
    pub promoting: bool,
}

impl HomeEpoch {
    /// Where the epoch file of the home `home` is.
    pub fn path(home: &Path) -> PathBuf {
        home.join(HOME_FILE)
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.epoch)
            .u64(self.begins.to_u64())
            .u64(self.continues)
            .u64(self.tenure)
            .u32(u32::from(self.promoting))
            .u32(0);
        w.buf
    }

    fn decode(payload: &[u8]) -> Option<HomeEpoch> {
        let mut r = Reader::new(payload);
        let e = HomeEpoch {
            epoch: r.u64().ok()?,
            begins: Lsn::from_u64(r.u64().ok()?),
            continues: r.u64().ok()?,
            tenure: r.u64().ok()?,
            promoting: r.u32().ok()? != 0,
        };
        r.u32().ok()?;
        (r.remaining() == 0).then_some(e)
    }

    /// The home's epoch; `None` when it never was a master's.
    pub fn read(vfs: &SharedVfs, home: &Path) -> Result<Option<HomeEpoch>> {
        let path = HomeEpoch::path(home);
        let f = match vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.len()?.min(4096) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, 0)?;
        buf.truncate(n);
        let bad = || {
            Error::corrupt(
                &path,
                Location::Whole,
                "not an epoch file of this version (damaged?)",
            )
        };
        let payload = framed::decode(&path.display().to_string(), "", KIND_HOME_EPOCH, &buf)
            .map_err(|_| bad())?;
        HomeEpoch::decode(payload).map(Some).ok_or_else(bad)
    }

    /// Writes it durably: temporary name, fsync, rename, directory fsync.
    pub fn write(&self, vfs: &SharedVfs, home: &Path) -> Result<()> {
        let path = HomeEpoch::path(home);
        let tmp = home.join(format!(".tmp.{HOME_FILE}.{}", std::process::id()));
        if vfs.exists(&tmp) {
            vfs.remove(&tmp)?;
        }
        let bytes = framed::encode(KIND_HOME_EPOCH, &self.encode())?;
        let h = vfs.open(&tmp, OpenMode::CreateNew(0o600))?;
        let done = h
            .write_at(&bytes, 0)
            .and_then(|_| h.sync())
            .and_then(|_| vfs.rename(&tmp, &path));
        drop(h);
        if done.is_err() {
            let _ = vfs.remove(&tmp);
        }
        done?;
        vfs.sync_dir(home)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: u64, begins: Lsn) -> EpochRecord {
        EpochRecord {
            epoch,
            begins,
            continues: epoch - 1,
            tenure: 7,
            created: 1,
            host: "h".into(),
        }
    }

    #[test]
    fn the_chain_says_which_epoch_holds_each_position() {
        let c = Epochs {
            list: vec![rec(1, Lsn::new(1, 0)), rec(2, Lsn::new(3, 500))],
        };
        assert_eq!(c.at(Lsn::new(2, 9)), Some(1));
        assert_eq!(c.at(Lsn::new(3, 500)), Some(2));
        assert_eq!(c.before(Lsn::new(3, 500)), Some(1));
        assert_eq!(c.before(Lsn::new(3, 501)), Some(2));
        assert!(c.holds(1, Lsn::new(3, 500)));
        assert!(!c.holds(1, Lsn::new(3, 501)), "past where epoch 2 began");
        assert!(c.holds(2, Lsn::new(9, 0)));
        assert_eq!(c.end_of(1), Some(Lsn::new(3, 500)));
        let r = rec(2, Lsn::new(3, 500));
        let key = epoch_key(2);
        assert_eq!(EpochRecord::decode("l", &key, &r.encode()).unwrap(), r);
        assert!(EpochRecord::decode("l", &epoch_key(3), &r.encode()).is_err());
    }

    #[test]
    fn the_home_epoch_round_trips_and_damage_is_named() {
        let d = tempfile::tempdir().unwrap();
        let vfs = crate::storage::vfs::OsVfs::shared();
        assert_eq!(HomeEpoch::read(&vfs, d.path()).unwrap(), None);
        let e = HomeEpoch {
            epoch: 3,
            begins: Lsn::new(4, 40),
            continues: 2,
            tenure: 99,
            promoting: true,
        };
        e.write(&vfs, d.path()).unwrap();
        assert_eq!(HomeEpoch::read(&vfs, d.path()).unwrap(), Some(e));
        std::fs::write(HomeEpoch::path(d.path()), b"junk").unwrap();
        let err = HomeEpoch::read(&vfs, d.path()).unwrap_err();
        assert!(err.to_string().contains(HOME_FILE), "{err}");
    }
}
