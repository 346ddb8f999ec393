//! What replication says about itself: the master's status in the store
//! (`status/master`, for `db_stat -r` on the primary or the store, and
//! monitoring), and a standby's state in its home (`__db.replica`, what a
//! client resumes from). Both are framed (kinds `MSTA`, `CLNT`);
//! man/db_format.5 has the byte layouts.
//!
//! The standby's state is written after the log bytes it names are
//! durable in the standby's log: `applied` is the end of the last segment
//! applied and `chain_crc` its bytes' checksum, what the next segment must
//! chain to. Redo's own progress is the backup manifest's `end` beside it.

use super::framed::{self, Kind};
use super::layout;
use super::store::ReplicaStore;
use crate::error::{Error, Location, Result};
use crate::storage::codec::{Reader, Writer};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use std::path::{Path, PathBuf};

/// The frame kind of the master's status object in the store.
pub const KIND_MASTER: Kind = Kind(*b"MSTA");
/// The frame kind of a standby's state file in its home.
pub const KIND_CLIENT: Kind = Kind(*b"CLNT");
/// The name of a standby's state file, in its home directory.
pub const STATE_FILE: &str = "__db.replica";

pub use crate::types::now_ms;

fn text(r: &mut Reader) -> std::result::Result<String, crate::storage::codec::Short> {
    Ok(String::from_utf8_lossy(r.blob()?).into_owned())
}

/// The master's view, put in the store about once a second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterStatus {
    /// The primary environment's id (the one its region records), so a
    /// reader can tell which environment the store follows.
    pub env_id: u64,
    /// The epoch the master ships in.
    pub epoch: u64,
    /// The master process's id on its host.
    pub pid: u32,
    /// When this status was written (ms).
    pub updated_ms: u64,
    /// The primary's log end the master made durable and read last.
    pub durable: Lsn,
    /// The end of the last segment in the store.
    pub shipped: Lsn,
    /// Since when (ms) the primary has held durable log not yet shipped;
    /// 0 when everything durable is shipped.
    pub behind_since_ms: u64,
    /// The newest complete base's number (0: none yet).
    pub newest_base: u64,
    /// When that base was made (unix seconds).
    pub newest_base_created: u64,
    /// The master's log history id (history.rs) when it last shipped.
    pub history: u64,
    /// The master's last error, one line (empty: none).
    pub last_error: String,
    /// When that error happened (unix ms; 0 when none).
    pub last_error_ms: u64,
    /// The newest digest posted (`digests/`), ZERO when none.
    pub digest_at: Lsn,
    /// Set by a master that stopped cleanly.
    pub stopped: bool,
}

impl MasterStatus {
    /// The status as the payload of its framed object (byte layout in
    /// man/db_format.5).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.env_id)
            .u64(self.epoch)
            .u32(self.pid)
            .u32(u32::from(self.stopped))
            .u64(self.updated_ms)
            .u64(self.durable.to_u64())
            .u64(self.shipped.to_u64())
            .u64(self.behind_since_ms)
            .u64(self.newest_base)
            .u64(self.newest_base_created)
            .u64(self.history)
            .u64(self.last_error_ms)
            .u64(self.digest_at.to_u64())
            .blob(self.last_error.as_bytes());
        w.buf
    }

    /// The status from a framed object's payload; a payload too short
    /// for this version is an `Error::Store` (`Corrupt`) naming
    /// `location`, the store.
    pub fn decode(location: &str, payload: &[u8]) -> Result<MasterStatus> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            Ok::<_, crate::storage::codec::Short>(MasterStatus {
                env_id: r.u64()?,
                epoch: r.u64()?,
                pid: r.u32()?,
                stopped: r.u32()? != 0,
                updated_ms: r.u64()?,
                durable: Lsn::from_u64(r.u64()?),
                shipped: Lsn::from_u64(r.u64()?),
                behind_since_ms: r.u64()?,
                newest_base: r.u64()?,
                newest_base_created: r.u64()?,
                history: r.u64()?,
                last_error_ms: r.u64()?,
                digest_at: Lsn::from_u64(r.u64()?),
                last_error: text(&mut r)?,
            })
        })();
        parsed.map_err(|_| {
            Error::store(
                location,
                layout::MASTER_STATUS,
                crate::error::StoreFault::Corrupt,
                "not a master status of this version",
            )
        })
    }

    /// The status the master last put in `store`; `None` when no master
    /// has written one yet.
    pub fn read(store: &dyn ReplicaStore) -> Result<Option<MasterStatus>> {
        let Some((p, _)) = framed::get_framed(store, layout::MASTER_STATUS, KIND_MASTER)? else {
            return Ok(None);
        };
        MasterStatus::decode(&store.describe(), &p).map(Some)
    }

    /// Puts this status in `store`, replacing the one there.
    pub fn write(&self, store: &dyn ReplicaStore) -> Result<()> {
        framed::put_framed(store, layout::MASTER_STATUS, KIND_MASTER, &self.encode())
    }
}

/// A standby's own record of where it is (`home/__db.replica`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientState {
    /// The id of the primary environment the standby follows (the
    /// store's; a store of another environment is refused).
    pub env_id: u64,
    /// The base it was restored from.
    pub base: u64,
    /// End of the last segment applied to the standby's log.
    pub applied: Lsn,
    /// Checksum of that segment's bytes (the chain).
    pub chain_crc: u32,
    /// The epoch whose history `applied` is in (the standby's log
    /// follows that epoch's chain).
    pub epoch: u64,
    /// When this state was written (unix ms).
    pub updated_ms: u64,
    /// The primary's durable position as last seen in the store.
    pub primary_durable: Lsn,
    /// The client's last error, one line (empty: none).
    pub last_error: String,
    /// When that error happened (unix ms; 0 when none).
    pub last_error_ms: u64,
    /// Where the last digest comparison was made (ZERO: none yet).
    pub digest_at: Lsn,
    /// Whether the standby's databases matched the primary's digest there.
    pub digest_equal: bool,
    /// Whether the last digest comparison happened at all.
    pub digest_checked: bool,
}

impl ClientState {
    /// Where the state file of the standby at `home` is.
    pub fn path(home: &Path) -> PathBuf {
        home.join(STATE_FILE)
    }

    /// The state as the payload of its framed file (byte layout in
    /// man/db_format.5).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let flags = u32::from(self.digest_equal) | (u32::from(self.digest_checked) << 1);
        w.u64(self.env_id)
            .u64(self.base)
            .u64(self.applied.to_u64())
            .u32(self.chain_crc)
            .u32(flags)
            .u64(self.epoch)
            .u64(self.updated_ms)
            .u64(self.primary_durable.to_u64())
            .u64(self.last_error_ms)
            .u64(self.digest_at.to_u64())
            .blob(self.last_error.as_bytes());
        w.buf
    }

    fn decode(payload: &[u8]) -> Option<ClientState> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            let env_id = r.u64()?;
            let base = r.u64()?;
            let applied = Lsn::from_u64(r.u64()?);
            let chain_crc = r.u32()?;
            let flags = r.u32()?;
            Ok::<_, crate::storage::codec::Short>(ClientState {
                env_id,
                base,
                applied,
                chain_crc,
                digest_equal: flags & 1 != 0,
                digest_checked: flags & 2 != 0,
                epoch: r.u64()?,
                updated_ms: r.u64()?,
                primary_durable: Lsn::from_u64(r.u64()?),
                last_error_ms: r.u64()?,
                digest_at: Lsn::from_u64(r.u64()?),
                last_error: text(&mut r)?,
            })
        })();
        parsed.ok()
    }

    /// The state of the standby at `home`; `None` when there is none.
    pub fn read(vfs: &SharedVfs, home: &Path) -> Result<Option<ClientState>> {
        let path = ClientState::path(home);
        let f = match vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.len()?.min(1 << 20) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, 0)?;
        buf.truncate(n);
        let bad = |what: &str| Error::corrupt(&path, Location::Whole, what);
        let payload = framed::decode(&path.display().to_string(), "", KIND_CLIENT, &buf)
            .map_err(|_| bad("not a standby state file of this version (damaged?)"))?;
        ClientState::decode(payload)
            .map(Some)
            .ok_or_else(|| bad("not a standby state file of this version (damaged?)"))
    }

    /// Writes the state durably: temporary name, fsync, rename, directory
    /// fsync.
    pub fn write(&self, vfs: &SharedVfs, home: &Path) -> Result<()> {
        let path = ClientState::path(home);
        let tmp = home.join(format!(".tmp.{STATE_FILE}.{}", std::process::id()));
        if vfs.exists(&tmp) {
            vfs.remove(&tmp)?;
        }
        let bytes = framed::encode(KIND_CLIENT, &self.encode())?;
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

    #[test]
    fn statuses_round_trip() {
        let m = MasterStatus {
            env_id: 1,
            epoch: 5,
            pid: 2,
            updated_ms: 3,
            durable: Lsn::new(4, 5),
            shipped: Lsn::new(4, 4),
            behind_since_ms: 6,
            newest_base: 7,
            newest_base_created: 8,
            history: 9,
            last_error: "x: no".into(),
            last_error_ms: 10,
            digest_at: Lsn::new(3, 3),
            stopped: true,
        };
        assert_eq!(MasterStatus::decode("l", &m.encode()).unwrap(), m);
        let d = tempfile::tempdir().unwrap();
        let vfs = crate::storage::vfs::OsVfs::shared();
        assert_eq!(ClientState::read(&vfs, d.path()).unwrap(), None);
        let c = ClientState {
            env_id: 1,
            applied: Lsn::new(2, 3),
            digest_equal: true,
            digest_checked: true,
            last_error: "e".into(),
            ..Default::default()
        };
        c.write(&vfs, d.path()).unwrap();
        assert_eq!(ClientState::read(&vfs, d.path()).unwrap(), Some(c));
        std::fs::write(ClientState::path(d.path()), b"junk").unwrap();
        let e = ClientState::read(&vfs, d.path()).unwrap_err();
        assert!(e.to_string().contains("__db.replica"), "{e}");
    }
}

/// What `db_stat -r` reports, for a primary home (its master's status in
/// the store), a standby home (its own state, and the master's), or a
/// store directory.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// "master", "client" or "store".
    pub role: &'static str,
    /// The store's address (without credentials), as `db_stat -r` names it.
    pub store: String,
    /// The master's status from the store; `None` when none was written
    /// or the store could not be read.
    pub master: Option<MasterStatus>,
    /// A standby's own state; `None` for a primary or a store.
    pub client: Option<ClientState>,
    /// A standby's consistency point (its manifest's end).
    pub consistent: Option<Lsn>,
    /// The newest complete base and when it was made.
    pub newest_base: Option<(u64, u64)>,
    /// The store's newest epoch and where its history begins.
    pub epoch: Option<(u64, Lsn)>,
    /// The store's lease.
    pub lease: Option<super::lease::LeaseRecord>,
    /// Why the store could not be read, when it could not.
    pub store_error: Option<String>,
}

impl Report {
    /// Bytes between two positions, counting each whole log file crossed
    /// as `lg_max` bytes.
    pub fn distance(a: Lsn, b: Lsn, lg_max: u64) -> u64 {
        if b <= a {
            return 0;
        }
        if a.file == b.file {
            return u64::from(b.offset - a.offset);
        }
        lg_max.saturating_sub(u64::from(a.offset))
            + u64::from(b.file - a.file - 1) * lg_max
            + u64::from(b.offset)
    }

    /// Seconds the standby (client) or the store (master) is behind the
    /// primary's durable log: for the master, how long the oldest durable
    /// byte not shipped has waited; a standby behind the store adds the
    /// time since it last applied.
    pub fn lag_secs(&self, now_ms: u64) -> f64 {
        let mut lag = self
            .master
            .as_ref()
            .filter(|m| m.behind_since_ms != 0)
            .map(|m| now_ms.saturating_sub(m.behind_since_ms))
            .unwrap_or(0);
        if let (Some(c), Some(m)) = (&self.client, &self.master) {
            if c.applied < m.shipped {
                lag = lag.max(now_ms.saturating_sub(c.updated_ms));
            }
        }
        lag as f64 / 1000.0
    }
}

/// The report for `dir`: a store directory (it holds a `store` record), a
/// standby home (it holds `__db.replica`), else a primary home whose
/// DB_CONFIG names the store (a directory or an S3 address: `opener`
/// opens it).
pub fn report(vfs: &SharedVfs, dir: &Path, opener: super::StoreOpener<'_>) -> Result<Report> {
    if vfs.exists(&dir.join(layout::STORE_KEY)) && !vfs.is_dir(&dir.join(layout::STORE_KEY)) {
        let store = super::DirStore::open(vfs.clone(), dir)?;
        let mut r = Report {
            role: "store",
            store: store.describe(),
            ..Default::default()
        };
        fill_from_store(&store, &mut r)?;
        return Ok(r);
    }
    crate::storage::layout::Layout::resolve(vfs, dir)?;
    let client = ClientState::read(vfs, dir)?;
    let mut r = Report {
        role: if client.is_some() { "client" } else { "master" },
        consistent: crate::wal::manifest::Manifest::read(vfs, dir)?
            .filter(|_| client.is_some())
            .map(|m| m.end),
        client,
        ..Default::default()
    };
    match super::open_store(vfs, dir, opener) {
        Ok(store) => {
            r.store = store.describe();
            if let Err(e) = fill_from_store(&*store, &mut r) {
                r.store_error = Some(e.to_string());
            }
        }
        Err(e) if r.client.is_some() => r.store_error = Some(e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(r)
}

fn fill_from_store(store: &dyn ReplicaStore, r: &mut Report) -> Result<()> {
    r.master = MasterStatus::read(store)?;
    let epochs = super::epoch::Epochs::read(store)?;
    r.epoch = epochs.newest().map(|e| (e.epoch, e.begins));
    r.lease = super::lease::read(store)?.map(|(l, _)| l);
    r.newest_base = super::restore::valid_bases(store, &epochs)?
        .last()
        .map(|b| (b.number, b.created));
    Ok(())
}
