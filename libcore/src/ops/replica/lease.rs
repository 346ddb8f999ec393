//! The store's lease (issue 13): which master may ship into the store.
//!
//! `lease` (framed `LEAS`) holds an epoch, a holder (a random id for the
//! master process, the home's tenure, pid, process start time, host name
//! and boot id), an expiry and whether the holder released it. It is only
//! ever written with conditional writes:
//!
//! * taken with `create` when there is none, else with `replace` (CAS on
//!   the version just read) when it is of an older epoch (a promotion
//!   fences the old primary), or of the same epoch and released, expired
//!   (by more than a clock-skew allowance) or held by a process of this
//!   very host that is gone; a live holder of the same epoch, or any
//!   holder of a newer one, is a `Fenced` error naming it;
//! * renewed (CAS) every third of its duration; the holder counts its
//!   lease valid until the start of its last successful renewal plus the
//!   duration, by its own monotonic clock, and ships nothing after that;
//! * a CAS that fails because the lease changed, or a confirmation that
//!   finds another holder, is a `Fenced` error: the master stops at once.
//!
//! The trait's `replace` does not return the new version, so after each
//! successful write the lease is read back; finding another holder there
//! means it was taken meanwhile.

use super::epoch::host_name;
use super::framed::{self, Kind};
use super::store::{ReplicaStore, Version};
use crate::engine::region::{own_start_time, process_running};
use crate::error::{Error, Result, StoreFault};
use crate::storage::codec::{Reader, Writer};
use crate::types::now_ms;
use std::time::{Duration, Instant};

/// The lease's key in the store.
pub const LEASE_KEY: &str = "lease";
/// The frame kind of the lease object.
pub const KIND_LEASE: Kind = Kind(*b"LEAS");
/// The default lease duration (`repl_lease_secs`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// This host's boot id: with the host name, it tells whether a holder's
/// pid can be checked here.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Who holds a lease: enough to name the master in a `Fenced` error and,
/// on its own host, to tell whether its process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// A random id drawn by `Holder::this_process`, so two masters (even
    /// two in one process) are never the same holder.
    pub id: u64,
    /// The tenure (random id) of the home the master ships from.
    pub tenure: u64,
    /// The master's process id on `host`.
    pub pid: u32,
    /// That process's start time (clock ticks since boot, from
    /// `/proc/PID/stat`; 0 when unknown), so a reused pid is not taken
    /// for the holder.
    pub pid_start: u64,
    /// The holder's host name.
    pub host: String,
    /// The holder's host boot id ("" when unknown: then its pid is never
    /// checked from here).
    pub boot: String,
}

impl Holder {
    /// This process as a holder for the home's `tenure`.
    pub fn this_process(tenure: u64) -> Holder {
        Holder {
            id: super::epoch::random_id(),
            tenure,
            pid: std::process::id(),
            pid_start: own_start_time(),
            host: host_name(),
            boot: boot_id(),
        }
    }

    /// True when the holder is a process of this host (same name, same
    /// boot) that no longer runs, or this very process whose `Lease` was
    /// dropped without a release (a master that died inside a process
    /// that goes on, as in-process tests model a kill).
    fn gone_from_here(&self) -> bool {
        if self.boot.is_empty() || self.host != host_name() || self.boot != boot_id() {
            return false;
        }
        if self.pid == std::process::id() && self.pid_start == own_start_time() {
            return !live_holders().contains(&self.id);
        }
        !process_running(self.pid, self.pid_start)
    }
}

/// The lease object as stored: which master may ship, in which epoch,
/// until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The epoch the holder ships in; a lease of an older epoch is taken
    /// over by a newer master (that fences the old primary).
    pub epoch: u64,
    /// The master that holds it.
    pub holder: Holder,
    /// True once the holder gave it up (a clean stop): anyone of the same
    /// epoch may take it at once.
    pub released: bool,
    /// When the lease ends unless renewed (unix ms, by the holder's
    /// clock).
    pub expires_ms: u64,
    /// When it was taken or last renewed (unix ms, by the holder's clock);
    /// with `expires_ms` it gives the duration others allow skew by.
    pub renewed_ms: u64,
}

impl LeaseRecord {
    /// The record as the payload of its framed object (byte layout in
    /// man/db_format.5).
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.holder;
        let mut w = Writer::new();
        w.u64(self.epoch)
            .u64(h.id)
            .u64(h.tenure)
            .u32(h.pid)
            .u32(u32::from(self.released))
            .u64(h.pid_start)
            .u64(self.expires_ms)
            .u64(self.renewed_ms)
            .blob(h.host.as_bytes())
            .blob(h.boot.as_bytes());
        w.buf
    }

    /// The record from a framed object's payload; one too short for this
    /// version is an `Error::Store` (`Corrupt`) naming `location`.
    pub fn decode(location: &str, payload: &[u8]) -> Result<LeaseRecord> {
        let mut r = Reader::new(payload);
        let parsed = (|| {
            let epoch = r.u64()?;
            let id = r.u64()?;
            let tenure = r.u64()?;
            let pid = r.u32()?;
            let released = r.u32()? != 0;
            let pid_start = r.u64()?;
            let expires_ms = r.u64()?;
            let renewed_ms = r.u64()?;
            let host = String::from_utf8_lossy(r.blob()?).into_owned();
            let boot = String::from_utf8_lossy(r.blob()?).into_owned();
            Ok::<_, crate::storage::codec::Short>(LeaseRecord {
                epoch,
                holder: Holder {
                    id,
                    tenure,
                    pid,
                    pid_start,
                    host,
                    boot,
                },
                released,
                expires_ms,
                renewed_ms,
            })
        })();
        match parsed {
            Ok(l) if r.remaining() == 0 => Ok(l),
            _ => Err(Error::store(
                location,
                LEASE_KEY,
                StoreFault::Corrupt,
                "not a lease of this version",
            )),
        }
    }

    /// Who holds it, for messages.
    pub fn describe(&self, now_ms: u64) -> String {
        let h = &self.holder;
        let when = if self.released {
            "released".to_string()
        } else if now_ms >= self.expires_ms {
            format!("expired {} s ago", (now_ms - self.expires_ms) / 1000)
        } else {
            format!("expires in {} s", (self.expires_ms - now_ms).div_ceil(1000))
        };
        format!(
            "the master of epoch {} (pid {} on host {:?}; {when})",
            self.epoch, h.pid, h.host
        )
    }
}

/// The lease and its version; `None` when the store has none.
pub fn read(store: &dyn ReplicaStore) -> Result<Option<(LeaseRecord, Version)>> {
    let Some((p, v)) = framed::get_framed(store, LEASE_KEY, KIND_LEASE)? else {
        return Ok(None);
    };
    Ok(Some((LeaseRecord::decode(&store.describe(), &p)?, v)))
}

/// The holder ids of the `Lease`s alive in this process.
fn live_holders() -> std::sync::MutexGuard<'static, std::collections::HashSet<u64>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<u64>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn fenced(store: &dyn ReplicaStore, what: String) -> Error {
    Error::store(store.describe(), LEASE_KEY, StoreFault::Fenced, what)
}

/// A lease this process holds.
pub struct Lease {
    record: LeaseRecord,
    version: Version,
    duration: Duration,
    /// When the last successful renewal (or the take) began.
    renewed: Instant,
    /// The last renewal error, while renewing fails.
    renew_error: Option<String>,
}

impl Lease {
    /// Takes the lease for `epoch` on behalf of the home's `tenure` (see
    /// the module documentation for when it may be taken).
    pub fn take(
        store: &dyn ReplicaStore,
        epoch: u64,
        tenure: u64,
        duration: Duration,
    ) -> Result<Lease> {
        let me = Holder::this_process(tenure);
        // Alive from before its first write: a racer in this process must
        // see the holder live as soon as the lease names it.
        let mut alive = Alive(me.id);
        live_holders().insert(me.id);
        for _ in 0..8 {
            let started = Instant::now();
            let now = now_ms();
            let rec = LeaseRecord {
                epoch,
                holder: me.clone(),
                released: false,
                expires_ms: now + duration.as_millis() as u64,
                renewed_ms: now,
            };
            let bytes = framed::encode(KIND_LEASE, &rec.encode())?;
            let written = match read(store)? {
                None => store.create(LEASE_KEY, &bytes)?,
                Some((cur, version)) => {
                    if cur.epoch > epoch {
                        return Err(fenced(store, format!(
                            "the store's lease is held by {}, a newer epoch than this environment's {epoch}: this is an old primary, it must not ship",
                            cur.describe(now)
                        )));
                    }
                    // Clocks of two hosts may differ: the holder stops by
                    // its own clock, others wait a sixth of its duration
                    // more.
                    let skew = cur.expires_ms.saturating_sub(cur.renewed_ms) / 6;
                    let takeable = cur.epoch < epoch
                        || cur.released
                        || now > cur.expires_ms.saturating_add(skew)
                        || cur.holder.gone_from_here();
                    if !takeable {
                        return Err(fenced(
                            store,
                            format!(
                            "the store's lease is held by {}: another master ships into this store",
                            cur.describe(now)
                        ),
                        ));
                    }
                    store.replace(LEASE_KEY, &bytes, &version)?
                }
            };
            if !written {
                continue; // it changed under us: look again
            }
            let mut lease = Lease {
                record: rec,
                version: Version::new(""),
                duration,
                renewed: started,
                renew_error: None,
            };
            alive.0 = 0; // the lease keeps it alive from here
            lease.version = lease.read_back(store)?;
            return Ok(lease);
        }
        Err(Error::store(
            store.describe(),
            LEASE_KEY,
            StoreFault::Transient,
            "the lease kept changing while this master tried to take it",
        ))
    }

    /// The epoch this lease lets its holder ship in.
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// The lease as this holder last wrote it.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// The version of the lease just written, checking it is ours.
    fn read_back(&self, store: &dyn ReplicaStore) -> Result<Version> {
        match read(store)? {
            Some((cur, v)) if cur == self.record => Ok(v),
            Some((cur, _)) => Err(fenced(
                store,
                format!(
                    "the lease was taken by {} (this master stops shipping)",
                    cur.describe(now_ms())
                ),
            )),
            None => Err(fenced(
                store,
                "the lease was removed behind this master's back (it stops shipping)".into(),
            )),
        }
    }

    /// Whether the lease is still valid by this process's clock.
    pub fn valid(&self) -> bool {
        self.renewed.elapsed() < self.duration
    }

    /// An error unless the lease is still valid: checked before every
    /// write into the store.
    pub fn check(&self, store: &dyn ReplicaStore) -> Result<()> {
        if self.valid() {
            return Ok(());
        }
        Err(fenced(
            store,
            format!(
                "could not renew the lease of epoch {} before it expired{}: this master stops shipping",
                self.record.epoch,
                self.renew_error
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            ),
        ))
    }

    /// Renews when a third of the duration has passed since the last
    /// renewal. A failed write is retried at the next call until the lease
    /// runs out (then `check` fails); a lease that changed is `Fenced`.
    pub fn keep(&mut self, store: &dyn ReplicaStore) -> Result<()> {
        if self.renewed.elapsed() < self.duration / 3 {
            return Ok(());
        }
        match self.renew(store) {
            Ok(()) => Ok(()),
            Err(e) if e.store_fault() == Some(StoreFault::Fenced) => Err(e),
            Err(e) => {
                self.renew_error = Some(e.to_string());
                self.check(store)
            }
        }
    }

    fn renew(&mut self, store: &dyn ReplicaStore) -> Result<()> {
        let started = Instant::now();
        let now = now_ms();
        let mut rec = self.record.clone();
        rec.expires_ms = now + self.duration.as_millis() as u64;
        rec.renewed_ms = now;
        let bytes = framed::encode(KIND_LEASE, &rec.encode())?;
        if !store.replace(LEASE_KEY, &bytes, &self.version)? {
            // Either another holder, or our own last write whose version
            // could not be read back: then adopt it and go on.
            match read(store)? {
                Some((cur, v)) if cur == self.record => {
                    self.version = v;
                    if !store.replace(LEASE_KEY, &bytes, &self.version)? {
                        return self.changed(store);
                    }
                }
                _ => return self.changed(store),
            }
        }
        // Written: from here on the store holds `rec`, whatever happens
        // to the read-back.
        self.record = rec;
        self.version = self.read_back(store)?;
        self.renewed = started;
        self.renew_error = None;
        Ok(())
    }

    fn changed(&self, store: &dyn ReplicaStore) -> Result<()> {
        let who = match read(store) {
            Ok(Some((cur, _))) => cur.describe(now_ms()),
            Ok(None) => "nobody (it was removed)".into(),
            Err(e) => format!("an unknown holder ({e})"),
        };
        Err(fenced(
            store,
            format!("the lease changed: it is now held by {who}; this master stops shipping"),
        ))
    }

    /// Checks the lease in the store is still the one this master wrote
    /// (a cheap read): before anything is reported shipped, a base or a
    /// prune.
    pub fn confirm(&self, store: &dyn ReplicaStore) -> Result<()> {
        self.check(store)?;
        match read(store)? {
            Some((cur, v)) if v == self.version || cur == self.record => Ok(()),
            Some((cur, _)) => Err(fenced(
                store,
                format!(
                    "the lease was taken by {}; this master stops shipping",
                    cur.describe(now_ms())
                ),
            )),
            None => Err(fenced(
                store,
                "the lease was removed behind this master's back; it stops shipping".into(),
            )),
        }
    }

    /// Releases the lease (a clean stop): the next master of this epoch
    /// may take it at once. Best effort.
    pub fn release(self, store: &dyn ReplicaStore) {
        let mut rec = self.record.clone();
        rec.released = true;
        rec.expires_ms = now_ms();
        if let Ok(bytes) = framed::encode(KIND_LEASE, &rec.encode()) {
            let _ = store.replace(LEASE_KEY, &bytes, &self.version);
        }
    }
}

/// Removes a holder id from the live set unless the lease took it over.
struct Alive(u64);

impl Drop for Alive {
    fn drop(&mut self) {
        if self.0 != 0 {
            live_holders().remove(&self.0);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        live_holders().remove(&self.record.holder.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::replica::DirStore;
    use crate::storage::vfs::OsVfs;

    fn store() -> (tempfile::TempDir, DirStore) {
        let d = tempfile::tempdir().unwrap();
        let s = DirStore::open(OsVfs::shared(), d.path()).unwrap();
        (d, s)
    }

    const D: Duration = Duration::from_secs(30);

    #[test]
    fn one_live_holder_per_epoch_and_a_newer_epoch_fences_it() {
        let (_d, s) = store();
        let a = Lease::take(&s, 1, 10, D).unwrap();
        let e = Lease::take(&s, 1, 10, D).err().unwrap();
        assert_eq!(e.store_fault(), Some(StoreFault::Fenced));
        assert!(e.to_string().contains("another master"), "{e}");
        a.confirm(&s).unwrap();
        // A promotion takes it over; the old holder learns at once.
        let b = Lease::take(&s, 2, 20, D).unwrap();
        let e = a.confirm(&s).unwrap_err();
        assert_eq!(e.store_fault(), Some(StoreFault::Fenced));
        let e = Lease::take(&s, 1, 10, D).err().unwrap();
        assert!(e.to_string().contains("old primary"), "{e}");
        // Released: the next master of the epoch takes it.
        b.release(&s);
        let c = Lease::take(&s, 2, 20, D).unwrap();
        assert_eq!(c.epoch(), 2);
    }

    #[test]
    fn a_renewal_after_a_takeover_is_fenced_and_an_unrenewed_lease_runs_out() {
        let (_d, s) = store();
        let mut a = Lease::take(&s, 1, 10, Duration::from_millis(300)).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        a.keep(&s).unwrap();
        a.confirm(&s).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let e = a.check(&s).unwrap_err();
        assert!(e.to_string().contains("before it expired"), "{e}");
        // Expired (past the skew allowance): another master of epoch 1 takes it.
        let _b = Lease::take(&s, 1, 11, D).unwrap();
        let e = a.keep(&s).unwrap_err();
        assert_eq!(e.store_fault(), Some(StoreFault::Fenced));
        assert!(e.to_string().contains("lease changed"), "{e}");
    }
}
