//! Promotion (issue 13): `db_replicate -M` on a standby's home makes it
//! the primary of the next epoch of the store's history.
//!
//! 1. Open the standby as its client would (this takes its owner lock: a
//!    client or an application still running on it is refused).
//! 2. Take the store's lease for epoch S+1, S being the store's newest:
//!    a newer epoch takes over a live lease of an older one, so the old
//!    master is fenced from here on (it stops at its next renewal or
//!    confirmation, and reports nothing more shipped).
//! 3. Catch up with everything the store holds (the old master may have
//!    shipped more than the standby applied), renewing the lease; the
//!    standby's consistency point X is then where S+1 begins.
//! 4. Record the promotion in the home (`__db.epoch`, marked as under
//!    way), then create `epochs/<S+1>` (create-only: of two standbys
//!    promoted at once, the lease let one through, and this is the
//!    check).
//! 5. Open the home as an owner (its log goes on in a new file, the
//!    backup manifest goes), append an epoch record to its log, close it;
//!    mark the promotion done and remove the standby state.
//!
//! The master then ships the home's log from X as epoch S+1, its first
//! segment chained to the segment of epoch S that ends at X. Every step
//! can be run again after a crash: a home whose `__db.epoch` names an
//! epoch record of its own tenure finishes that promotion.

use super::client::{Client, ClientOptions, Step};
use super::epoch::{self, EpochRecord, Epochs, HomeEpoch};
use super::layout;
use super::lease::Lease;
use super::status::STATE_FILE;
use super::store::ReplicaStore;
use crate::engine::env::{Env, EnvOptions};
use crate::error::{Error, Result, StoreFault};
use crate::storage::layout::Layout;
use crate::storage::vfs::SharedVfs;
use crate::types::Lsn;
use crate::wal::manifest::Manifest;
use crate::wal::{LogCursor, OnBadRecord, PageRecord, Record};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How many idle looks in a row end the catch-up.
const IDLE_LOOKS: u32 = 3;

/// Promotes the standby at `home` (steps 1-5): the lease and the record
/// of its new epoch.
pub fn promote(
    vfs: &SharedVfs,
    home: &Path,
    store: &Arc<dyn ReplicaStore>,
    env_id: u64,
    lease_for: Duration,
    say: &mut dyn FnMut(String),
) -> Result<(Lease, EpochRecord)> {
    if Manifest::read(vfs, home)?.is_none() {
        return Err(Error::invalid(format!(
            "{}: was a standby, and was opened as an environment since without a promotion: it cannot be promoted now; promote a standby before the application opens it, or make this one a standby again (db_replicate on an empty home)",
            home.display()
        )));
    }
    layout::check_store(&**store, env_id, false)?;
    let opts = ClientOptions {
        check_digests: false,
        ..Default::default()
    };
    let mut client = Client::open(vfs, home, store.clone(), &opts, say)?;
    let epochs = Epochs::read(&**store)?;
    let Some(newest) = epochs.newest().cloned() else {
        return Err(Error::store(
            store.describe(),
            "",
            StoreFault::Invalid,
            "the store has no epoch record: no master of this layout ever shipped into it",
        ));
    };
    if let Some(mine) = HomeEpoch::read(vfs, home)?.filter(|m| m.promoting) {
        if let Some(rec) = epochs.get(mine.epoch).filter(|r| r.tenure == mine.tenure) {
            // An earlier run got as far as the epoch record: finish it.
            let rec = rec.clone();
            let lease = Lease::take(&**store, rec.epoch, rec.tenure, lease_for)?;
            drop(client);
            finish(vfs, home, &rec, say)?;
            return Ok((lease, rec));
        }
    }
    let epoch = newest.epoch + 1;
    let tenure = epoch::random_id();
    let mut lease = Lease::take(&**store, epoch, tenure, lease_for)?;
    say(format!(
        "promoting {}: took the store's lease for epoch {epoch} (the master of epoch {} is fenced); catching up with the store",
        home.display(),
        newest.epoch
    ));
    let x = catch_up(&mut client, &mut lease, &**store, say)?;
    if x < newest.begins {
        return Err(Error::store(
            store.describe(),
            epoch::epoch_key(newest.epoch),
            StoreFault::Fenced,
            format!(
                "{}: the standby is consistent at {x}, before epoch {} began ({}): it cannot be promoted past that epoch's primary",
                home.display(),
                newest.epoch,
                newest.begins
            ),
        ));
    }
    HomeEpoch {
        epoch,
        begins: x,
        continues: newest.epoch,
        tenure,
        promoting: true,
    }
    .write(vfs, home)?;
    let rec = epoch::begin(
        &**store,
        &EpochRecord {
            epoch,
            begins: x,
            continues: newest.epoch,
            tenure,
            created: crate::types::now_secs(),
            host: epoch::host_name(),
        },
    )?;
    drop(client);
    finish(vfs, home, &rec, say)?;
    Ok((lease, rec))
}

/// Applies what the store holds until it has nothing more; the standby's
/// consistency point then.
fn catch_up(
    client: &mut Client,
    lease: &mut Lease,
    store: &dyn ReplicaStore,
    say: &mut dyn FnMut(String),
) -> Result<Lsn> {
    let mut idle = 0;
    while idle < IDLE_LOOKS {
        lease.keep(store)?;
        match client.step(say) {
            Ok(Step::Applied(_)) | Ok(Step::Restored(_)) => idle = 0,
            Ok(Step::Idle) => {
                idle += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.is_transient() => {
                say(format!("{e}; retrying"));
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(client.consistent())
}

/// Whether the home's log from `rec.begins` on holds the epoch record of
/// `rec` (appended by an earlier run of this promotion).
fn marked(vfs: &SharedVfs, home: &Path, rec: &EpochRecord) -> Result<bool> {
    let layout = Layout::resolve(vfs, home)?;
    let mut cur = LogCursor::open_from(
        vfs.clone(),
        &layout.log_dir,
        OnBadRecord::EndOfLog,
        rec.begins.file,
    )?;
    cur.seek(rec.begins)?;
    while let Some(r) = cur.next_raw()? {
        if PageRecord::is_page_type(r.ty) {
            continue;
        }
        if let Ok(Record::Epoch { epoch, .. }) = Record::decode(r.ty, r.payload) {
            if epoch == rec.epoch {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Step 5: the home becomes a primary of epoch `rec`: opened by an owner
/// (its log goes on in a new file, the backup manifest goes), the epoch
/// marked in its log, closed.
fn finish(
    vfs: &SharedVfs,
    home: &Path,
    rec: &EpochRecord,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let env = Env::open(home, EnvOptions::default())?;
    if !marked(vfs, home, rec)? {
        let at = env.mark_epoch(rec.epoch, rec.begins, rec.continues)?;
        say(format!("epoch {} marked in the log at {at}", rec.epoch));
    }
    env.close()?;
    HomeEpoch {
        epoch: rec.epoch,
        begins: rec.begins,
        continues: rec.continues,
        tenure: rec.tenure,
        promoting: false,
    }
    .write(vfs, home)?;
    let state = home.join(STATE_FILE);
    if vfs.exists(&state) {
        vfs.remove(&state)?;
        vfs.sync_dir(home)?;
    }
    say(format!(
        "promoted {}: it is the primary of epoch {}, which begins at {}",
        home.display(),
        rec.epoch,
        rec.begins
    ));
    Ok(())
}
