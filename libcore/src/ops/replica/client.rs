//! The client (`db_replicate` without `-M`): keeps a standby home a
//! failover copy of the primary. An empty home is first restored from the
//! newest base (`restore`); then the client follows the store, applying
//! each new segment as it arrives:
//!
//! 1. check it before anything is written: its frame and bytes checksum
//!    (`Segment::decode`), environment, epoch, that it starts where the
//!    applied log ends and chains to its checksum; a segment that fails is
//!    one line naming it, and the client stops;
//!    the segment is looked up in the epoch that holds the history at the
//!    applied position (`epoch`), and just before it is applied the
//!    store is asked whether that epoch has a successor yet: a segment
//!    ending past where the successor began is rejected and reported (a
//!    master fenced by a promotion shipped it), and never applied;
//! 2. write its bytes into the standby's log file at their offset (the
//!    same bytes at the same place however often: idempotent) and fsync;
//! 3. if it closes a transaction: make sure no bulk load without its
//!    pages is in it (such a load makes the standby wait for a base
//!    copied after it and restore again), then redo from the manifest's
//!    end and move the manifest's end durably;
//! 4. record the segment's end and checksum in `__db.replica`.
//!
//! A `kill -9` anywhere resumes from the state file: bytes written past
//! it are written again identically, and redo is idempotent. After a
//! power loss, pages redo was writing may be torn: a client starting on a
//! standby redoes once from the manifest's start (`repair`), from where
//! every page comes with a full image. A store that lost segments the
//! standby had applied (a power loss took their names) gets them again
//! from a restarted master, cut elsewhere: the client goes on through the
//! new pieces when their bytes are its own (`realign`). The client holds
//! the standby's owner lock for its life. At every moment the home is a
//! backup directory whose manifest names a consistency point: stop the
//! client, `db_recover -c`, open it.
//!
//! A standby that applied an epoch's log past where its successor began
//! (it followed the old primary further than the promoted standby had)
//! has diverged: if its consistency point is not past that point, its log
//! is cut back to the consistency point and it follows the new epoch;
//! otherwise it restores from a base of the new history. Either is said
//! in one line.

use super::digest;
use super::epoch::{self, Epochs};
use super::framed;
use super::layout;
use super::restore::{self, Target};
use super::segment::{Finder, Segment};
use super::status::{now_ms, ClientState, MasterStatus};
use super::store::ReplicaStore;
use crate::engine::owner::OwnerLock;
use crate::error::{Error, Result, StoreFault};
use crate::ops::interrupt::{raised, StopFlag};
use crate::progress::Progress;
use crate::recovery::{self, RecoveryMode, RecoveryOptions};
use crate::storage::layout::Layout;
use crate::storage::vfs::SharedVfs;
use crate::types::Lsn;
use crate::wal::manifest::Manifest;
use crate::wal::{LogCursor, OnBadRecord, PageRecord, Record};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an idle client looks for a gap (a new chain) and reads the
/// master's status.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How a client runs (`db_replicate` without `-M`).
#[derive(Clone)]
pub struct ClientOptions {
    /// How long to wait between looks at the store when caught up.
    pub poll: Duration,
    /// Raised (by a tool's signal handler) to make `run` return between
    /// two steps, and a first restore give up.
    pub stop: StopFlag,
    /// Compare digests the master posts (default on).
    pub check_digests: bool,
    /// Told of each restore from a base (`restore::restore`).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            poll: Duration::from_millis(50),
            stop: StopFlag::default(),
            check_digests: true,
            progress: None,
        }
    }
}

/// A running client: one standby home, its owner lock held, following one
/// store a `step` at a time (see the module comment).
pub struct Client {
    /// The standby's owner lock (`__db.lock`), held for the client's
    /// life: one client at a time, and no `db_recover` or owner open of
    /// the standby while it applies.
    _lock: OwnerLock,
    vfs: SharedVfs,
    layout: Layout,
    store: Arc<dyn ReplicaStore>,
    state: ClientState,
    manifest: Manifest,
    last_look: Option<Instant>,
    /// Digest positions the master posted, not reached yet.
    digests: Vec<(u64, Lsn)>,
    check_digests: bool,
    progress: Option<Arc<dyn Progress>>,
    /// The store's history, as last read.
    epochs: Epochs,
    finder: Finder,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A segment was applied.
    Applied(Lsn),
    /// Nothing new in the store.
    Idle,
    /// The home was restored again (after a gap or a bulk load).
    Restored(Lsn),
}

impl Client {
    /// Opens the standby at `home`: resumes one, restores an empty home
    /// from the newest base (waiting for the master's first base unless
    /// `stop` is raised), refuses anything else.
    pub fn open(
        vfs: &SharedVfs,
        home: &Path,
        store: Arc<dyn ReplicaStore>,
        opts: &ClientOptions,
        say: &mut dyn FnMut(String),
    ) -> Result<Client> {
        let layout = Layout::resolve(vfs, home)?;
        let info = layout::read_store_info(&*store)?.ok_or_else(|| {
            Error::store(
                store.describe(),
                "",
                StoreFault::Invalid,
                "not a replica store (no store record): is it the right directory, and has a master (db_replicate -M) run?",
            )
        })?;
        let fresh = |vfs: &SharedVfs| -> Result<bool> {
            Ok(vfs.exists(&restore::mark_path(home)) || restore::is_empty_home(vfs, home)?)
        };
        if !fresh(vfs)? && ClientState::read(vfs, home)?.is_none() {
            return Err(not_a_standby(home));
        }
        let lock = lock_standby(vfs, home)?;
        if fresh(vfs)? {
            return Client::first_restore(vfs, home, store, info.env_id, opts, lock, say);
        }
        let Some(state) = ClientState::read(vfs, home)? else {
            return Err(not_a_standby(home));
        };
        if state.env_id != info.env_id {
            return Err(layout::foreign(&*store, info.env_id, state.env_id));
        }
        let Some(manifest) = Manifest::read(vfs, home)? else {
            return Err(Error::invalid(format!(
                "{}: was opened as an environment since it was a standby (failed over?): it is no longer a standby; give the client an empty directory",
                home.display()
            )));
        };
        let store_for_epochs = store.clone();
        let mut c = Client {
            _lock: lock,
            vfs: vfs.clone(),
            layout,
            store,
            state,
            manifest,
            last_look: None,
            digests: Vec::new(),
            check_digests: opts.check_digests,
            progress: opts.progress.clone(),
            epochs: Epochs::read(&*store_for_epochs)?,
            finder: Finder::default(),
        };
        c.repair()?;
        c.resume_point()?;
        say(format!(
            "standby {} resumes at {} (consistent at {})",
            home.display(),
            c.state.applied,
            c.manifest.end
        ));
        Ok(c)
    }

    fn first_restore(
        vfs: &SharedVfs,
        home: &Path,
        store: Arc<dyn ReplicaStore>,
        env_id: u64,
        opts: &ClientOptions,
        lock: OwnerLock,
        say: &mut dyn FnMut(String),
    ) -> Result<Client> {
        let mut waited = false;
        loop {
            match restore::choose(&*store, Target::Newest)? {
                Some(b) => match restore::restore(
                    vfs,
                    &*store,
                    home,
                    &b,
                    Target::Newest,
                    opts.progress.clone(),
                    say,
                ) {
                    Ok(r) => {
                        let state = ClientState {
                            env_id,
                            base: b.number,
                            applied: r.applied,
                            chain_crc: r.chain_crc,
                            epoch: r.epoch,
                            updated_ms: now_ms(),
                            ..Default::default()
                        };
                        state.write(vfs, home)?;
                        restore::unmark(vfs, home)?;
                        let epochs = Epochs::read(&*store)?;
                        return Ok(Client {
                            _lock: lock,
                            vfs: vfs.clone(),
                            layout: Layout::resolve(vfs, home)?,
                            store,
                            state,
                            manifest: r.manifest,
                            last_look: None,
                            digests: Vec::new(),
                            check_digests: opts.check_digests,
                            progress: opts.progress.clone(),
                            epochs,
                            finder: Finder::default(),
                        });
                    }
                    Err(e) if e.is_transient() => say(format!("{e}; trying again")),
                    Err(e) => return Err(e),
                },
                None if !waited => {
                    say("the store holds no base yet: waiting for the master's first".into());
                    waited = true;
                }
                None => {}
            }
            if raised(&opts.stop) {
                return Err(Error::invalid(format!(
                    "{}: stopped before the first restore was complete",
                    home.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The standby's state as last written to `__db.replica`.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// The consistency point of the standby (redo's end).
    pub fn consistent(&self) -> Lsn {
        self.manifest.end
    }

    /// The standby's log may be shorter than the state says (a recovery
    /// ran on it while the client was stopped): then the log from the
    /// manifest's end is fetched again, so the state goes back there.
    fn resume_point(&mut self) -> Result<()> {
        let path = self.layout.log_path(self.state.applied.file);
        // Where its records end, not its size: a log the engine opened is
        // preallocated with zeros after them.
        let len = match crate::wal::records_end(&self.vfs, &path) {
            Ok(end) => u64::from(end),
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        if len >= u64::from(self.state.applied.offset) {
            return Ok(());
        }
        let end = self.manifest.end;
        self.rewind_to(end).map_err(|_| {
            Error::invalid(format!(
                "{}: its log ends before what it applied ({}), and the store no longer holds the log from {end}: restore it again (empty the directory)",
                self.layout.home.display(),
                self.state.applied
            ))
        })
    }

    /// Takes the standby's log back to `end`, a segment end at or before
    /// its consistency point: the chain checksum of the segment ending
    /// there, read from the store, and the log cut there.
    /// When no segment ends exactly at `end` (a power loss left the
    /// consistency point inside one), the log goes back to the start of
    /// the segment holding it, whose bytes are then applied again.
    fn rewind_to(&mut self, end: Lsn) -> Result<()> {
        let epoch = self.epochs.before(end).unwrap_or(self.state.epoch);
        let (e, to, key, inside) = match self.finder.ending_at(&*self.store, epoch, end)? {
            Some((e, _, _, key)) => (e, end, key, false),
            None => {
                let holding = super::segment::list_file(&*self.store, epoch, end.file)?
                    .into_iter()
                    .find(|s| s.1 <= end && end < s.2);
                let Some((e, start, _, key)) = holding else {
                    return Err(Error::store(
                        self.store.describe(),
                        "",
                        StoreFault::Missing,
                        format!("no segment of epoch {epoch} ends at or holds {end}"),
                    ));
                };
                (e, start, key, true)
            }
        };
        let seg = Segment::get(&*self.store, &key)?
            .ok_or_else(|| Error::invalid(format!("{}/{key}: vanished", self.store.describe())))?;
        self.state.applied = to;
        self.state.chain_crc = if inside {
            seg.prev_crc
        } else {
            seg.bytes_crc()
        };
        self.state.epoch = e;
        restore::truncate_log(&self.vfs, &self.layout, self.state.applied)?;
        self.state.write(&self.vfs, &self.layout.home)
    }

    /// Applies the next segment if the store has it (steps 1-4).
    pub fn step(&mut self, say: &mut dyn FnMut(String)) -> Result<Step> {
        self.look(say)?;
        if let Some(x) = self.epochs.end_of(self.state.epoch) {
            if self.state.applied > x {
                return self.diverged(x, say);
            }
        }
        let Some(e) = self.epochs.at(self.state.applied) else {
            return Ok(Step::Idle);
        };
        let next = self.finder.next(
            &*self.store,
            e,
            self.state.applied,
            Some(self.state.chain_crc),
        )?;
        let Some((key, seg)) = next else {
            // A successor may have begun here: look before calling it a gap.
            self.epochs = Epochs::read(&*self.store)?;
            return self.gap_check(say);
        };
        if self.epochs.newest().is_some_and(|n| n.epoch == seg.epoch)
            && epoch::read_one(&*self.store, seg.epoch + 1)?.is_some()
        {
            self.epochs = Epochs::read(&*self.store)?;
            self.finder.clear();
        }
        if !self.epochs.holds(seg.epoch, seg.end) {
            let e = restore::past_successor(&*self.store, &key, &seg, &self.epochs);
            say(e.to_string());
            self.note_error(&e);
            return Ok(Step::Idle);
        }
        let s = &self.state;
        let checked = restore::check_next(
            &*self.store,
            &key,
            &seg,
            s.env_id,
            s.applied,
            s.chain_crc,
            s.epoch,
        );
        if let Err(e) = checked {
            // The segments the applied log ends with may have been shipped
            // again in other pieces (and the one found here is the next
            // file's first because none starts at the applied end): then
            // the chain goes through the piece over the applied end.
            let applied = self.state.applied;
            let over = super::segment::list_file(&*self.store, self.state.epoch, applied.file)?
                .into_iter()
                .find(|p| p.1 < applied && applied <= p.2);
            if let Some((_, _, _, prev)) = over {
                if let Some(step) = self.realign(&prev, say)? {
                    return Ok(step);
                }
            }
            return Err(e);
        }
        self.apply(seg, &key, say)
    }

    /// Steps 2-4 for a segment that passed its checks.
    fn apply(&mut self, seg: Segment, key: &str, say: &mut dyn FnMut(String)) -> Result<Step> {
        let before = self.state.applied;
        restore::write_segment(&self.vfs, &self.layout, &seg)?;
        if seg.is_boundary() {
            if let Some(m) = self.bulk_marker()? {
                restore::truncate_log(&self.vfs, &self.layout, before)?;
                return self.restore_after(m, key, say);
            }
            self.redo()?;
        }
        self.state.applied = seg.end;
        self.state.chain_crc = seg.bytes_crc();
        self.state.epoch = seg.epoch;
        self.state.updated_ms = now_ms();
        self.state.write(&self.vfs, &self.layout.home)?;
        if seg.is_boundary() {
            self.check_digest(say)?;
        }
        Ok(Step::Applied(seg.end))
    }

    /// The store's log holds the segment `key` over the standby's applied
    /// end (it starts before it and ends at or after it), but not the
    /// segments the standby applied there: the store lost them (a power
    /// loss took their names after the client had read them) and a
    /// restarted master shipped the same log again, cut in other places.
    /// When the segment's bytes up to the applied end are the standby's
    /// own, the standby's log is the store's: apply the segment, whose
    /// checksum the store's chain goes on from. `None` when it does not
    /// fit (then the caller's error stands).
    fn realign(&mut self, key: &str, say: &mut dyn FnMut(String)) -> Result<Option<Step>> {
        let Some(seg) = Segment::get(&*self.store, key)? else {
            return Ok(None);
        };
        let applied = self.state.applied;
        let fits = seg.env_id == self.state.env_id
            && seg.epoch >= self.state.epoch
            && seg.start.file == applied.file
            && seg.start < applied
            && applied <= seg.end;
        let changes = seg.end > applied || seg.bytes_crc() != self.state.chain_crc;
        if !fits || !changes {
            return Ok(None);
        }
        let n = (applied.offset - seg.start.offset) as usize;
        let mut mine = vec![0u8; n];
        let path = self.layout.log_path(applied.file);
        let read = match self.vfs.open(&path, crate::storage::vfs::OpenMode::Read) {
            Ok(f) => f.read_at(&mut mine, u64::from(seg.start.offset))?,
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        if read < n || mine[..] != seg.bytes[..n] {
            return Ok(None);
        }
        say(format!(
            "{}/{key}: the store holds the log up to {applied} in other segments than the standby applied (it lost some at a power loss?); the bytes are the same: going on from it",
            self.store.describe()
        ));
        self.apply(seg, key, say).map(Some)
    }

    /// The standby applied its epoch's log past `x`, where the next epoch
    /// began: cut its log back to its consistency point if that is not
    /// past `x`, else restore from a base of the new history.
    fn diverged(&mut self, x: Lsn, say: &mut dyn FnMut(String)) -> Result<Step> {
        let (applied, epoch) = (self.state.applied, self.state.epoch);
        let consistent = self.manifest.end;
        if consistent <= x {
            say(format!(
                "the standby applied epoch {epoch}'s log to {applied}, past where epoch {} began ({x}); its consistency point {consistent} is not: taking its log back there",
                epoch + 1
            ));
            self.rewind_to(consistent)?;
            return Ok(Step::Idle);
        }
        say(format!(
            "the standby holds epoch {epoch}'s transactions to {consistent}, past where epoch {} began ({x}): restoring from a base of the new history",
            epoch + 1
        ));
        self.restore_again(Target::Newest, true, say)
    }

    /// A bulk load in the log written since the manifest's end, whose
    /// pages the standby cannot have.
    fn bulk_marker(&self) -> Result<Option<Lsn>> {
        let from = self.manifest.end;
        let mut cur = LogCursor::open_from(
            self.vfs.clone(),
            &self.layout.log_dir,
            OnBadRecord::EndOfLog,
            from.file,
        )?;
        cur.seek(from)?;
        while let Some(r) = cur.next_raw()? {
            if PageRecord::is_page_type(r.ty) {
                continue;
            }
            if let Ok(Record::BulkMarker { .. }) = Record::decode(r.ty, r.payload) {
                return Ok(Some(r.lsn));
            }
        }
        Ok(None)
    }

    /// Redo from the manifest's start once, when a client starts on a
    /// standby it kept before: a power loss during its last redo may have
    /// torn pages that redo was writing, and the log from the manifest's
    /// end holds only deltas for them. From the start (the redo point of
    /// the last checkpoint redo passed, or the base's), every page changed
    /// since comes with a full image first, as in an owner's recovery.
    /// Also cuts what follows the last complete transaction of the log.
    fn repair(&mut self) -> Result<()> {
        self.redo_from(self.manifest.start)
    }

    fn redo(&mut self) -> Result<()> {
        self.redo_from(self.manifest.end)
    }

    fn redo_from(&mut self, from: Lsn) -> Result<()> {
        let outcome = recovery::recover(
            &self.vfs,
            &self.layout,
            RecoveryOptions {
                mode: RecoveryMode::From(from),
                write: true,
                ..Default::default()
            },
        )?;
        self.manifest.end = outcome.end;
        self.manifest.updated = crate::types::now_secs();
        if let Some(t) = outcome.last_commit_time {
            self.manifest.last_commit = t;
        }
        self.manifest.last_record =
            crate::wal::manifest::last_record(&self.vfs, &self.layout.log_dir, outcome.end)?;
        let keep_from = outcome
            .last_ckp
            .as_ref()
            .map(|(_, c)| c.redo_lsn.file.min(self.manifest.end.file));
        if let Some(k) = keep_from {
            // Catastrophic recovery of the standby starts at the
            // manifest's start: it moves past the files trimmed below
            // before they go.
            let first = Lsn::new(k, crate::wal::FIRST_RECORD_OFFSET);
            self.manifest.start = self.manifest.start.max(first);
        }
        self.manifest.write(&self.vfs, &self.layout.home)?;
        match keep_from {
            Some(k) => self.trim(k),
            None => Ok(()),
        }
    }

    /// Removes standby log files wholly before `keep_from`, the file of
    /// the last checkpoint's redo point (never the one redo starts from
    /// next): the databases hold everything in them.
    fn trim(&self, keep_from: u32) -> Result<()> {
        for n in self.layout.log_files(&self.vfs)? {
            if n >= keep_from {
                break;
            }
            self.vfs.remove(&self.layout.log_path(n))?;
            self.vfs.sync_dir(&self.layout.log_dir)?;
        }
        Ok(())
    }

    /// Reads the master's status now and then: its durable position (for
    /// the lag `db_stat -r` shows) and the digests it posted.
    fn look(&mut self, _say: &mut dyn FnMut(String)) -> Result<()> {
        if self.last_look.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return Ok(());
        }
        self.last_look = Some(Instant::now());
        self.epochs = Epochs::read(&*self.store)?;
        let newest = self.epochs.newest().map(|e| e.epoch);
        if let Some(m) = MasterStatus::read(&*self.store)?.filter(|m| Some(m.epoch) == newest) {
            self.state.primary_durable = m.durable;
        }
        if self.check_digests {
            self.digests = self
                .store
                .list(layout::DIGESTS)?
                .iter()
                .filter_map(|m| layout::parse_digest_key(&m.key))
                .filter(|&(_, at)| at >= self.state.applied)
                .collect();
        }
        Ok(())
    }

    /// At a position the master posted a digest for: compare.
    fn check_digest(&mut self, say: &mut dyn FnMut(String)) -> Result<()> {
        let at = self.state.applied;
        let epoch = self.state.epoch;
        if !self.digests.contains(&(epoch, at)) || self.manifest.end != at {
            return Ok(());
        }
        let key = layout::digest_key(epoch, at);
        let Some((p, _)) = framed::get_framed(&*self.store, &key, digest::KIND_DIGEST)? else {
            return Ok(());
        };
        let Some((_, theirs)) = digest::decode(&p) else {
            return Err(Error::store(
                self.store.describe(),
                key,
                StoreFault::Corrupt,
                "not a digest of this version",
            ));
        };
        let (mine_at, mine) = digest::of_home(&self.layout.home, &mut |_| {})?;
        if mine_at != at {
            return Ok(());
        }
        let equal = mine == theirs;
        self.state.digest_at = at;
        self.state.digest_equal = equal;
        self.state.digest_checked = true;
        if equal {
            say(format!(
                "digest {} at {at}: equal to the primary's",
                digest::hex(&mine)
            ));
        } else {
            let e = format!(
                "digest {} at {at} differs from the primary's {}: the standby does not equal the primary",
                digest::hex(&mine),
                digest::hex(&theirs)
            );
            say(e.clone());
            self.state.last_error = e;
            self.state.last_error_ms = now_ms();
        }
        self.state.write(&self.vfs, &self.layout.home)
    }

    /// Nothing at the applied end: when a segment the store shipped again
    /// covers it, go on from that one (`realign`); when the store's log
    /// goes on after a gap (a new chain) and a base covers it, restore
    /// from that base.
    fn gap_check(&mut self, say: &mut dyn FnMut(String)) -> Result<Step> {
        let applied = self.state.applied;
        let Some(from) = self.epochs.at(applied) else {
            return Ok(Step::Idle);
        };
        let listed: Vec<_> = super::segment::list_from(&*self.store, applied.file)?
            .into_iter()
            .filter(|s| s.0 >= from && self.epochs.holds(s.0, s.2))
            .collect();
        // What the last look missed may have come since: the next step
        // takes it (this listing came after the look, so it is no gap).
        let next_file = Lsn::new(applied.file.saturating_add(1), 0);
        if listed.iter().any(|s| s.1 == applied || s.1 == next_file) {
            self.finder.clear();
            return Ok(Step::Idle);
        }
        if let Some((_, _, _, over)) = listed.iter().find(|s| s.1 < applied && applied < s.2) {
            return match self.realign(over, say)? {
                Some(step) => Ok(step),
                None => Err(Error::store(
                    self.store.describe(),
                    over.clone(),
                    StoreFault::Corrupt,
                    format!(
                        "the segment over the standby's applied end ({applied}) does not hold the standby's log bytes: the store's log is not the one this standby followed"
                    ),
                )),
            };
        }
        let later = listed
            .into_iter()
            .filter(|s| s.1 > applied)
            .min_by_key(|s| s.1);
        let Some((_, s, _, key)) = later else {
            return Ok(Step::Idle);
        };
        let Some(seg) = Segment::get(&*self.store, &key)? else {
            return Ok(Step::Idle);
        };
        if !seg.starts_chain() {
            return Err(Error::store(
                self.store.describe(),
                key,
                StoreFault::Corrupt,
                format!(
                    "the store's log goes on at {s} but holds nothing at {applied}, where the standby's ends"
                ),
            ));
        }
        say(format!(
            "the store's log has a gap after {applied} (a new chain starts at {s}): restoring from a newer base"
        ));
        self.restore_again(Target::Newest, false, say)
    }

    fn restore_after(&mut self, m: Lsn, key: &str, say: &mut dyn FnMut(String)) -> Result<Step> {
        say(format!(
            "{}/{key}: a bulk load at {m} wrote pages its log does not carry: waiting for a base copied after it",
            self.store.describe()
        ));
        self.restore_again(Target::After(m), false, say)
    }

    /// Restores the home from the base `target` picks; unless `any_base`,
    /// only from one that starts past what the standby applied (an older
    /// one would not get it over a gap).
    fn restore_again(
        &mut self,
        target: Target,
        any_base: bool,
        say: &mut dyn FnMut(String),
    ) -> Result<Step> {
        let Some(b) = restore::choose(&*self.store, target)? else {
            return Ok(Step::Idle);
        };
        if matches!(target, Target::Newest) && !any_base && b.start <= self.state.applied {
            return Ok(Step::Idle);
        }
        let home = self.layout.home.clone();
        drop(self.vfs.open(
            &restore::mark_path(&home),
            crate::storage::vfs::OpenMode::Create(0o600),
        )?);
        self.vfs.sync_dir(&home)?;
        let r = restore::restore(
            &self.vfs,
            &*self.store,
            &home,
            &b,
            Target::Newest,
            self.progress.clone(),
            say,
        )?;
        self.state.base = b.number;
        self.state.applied = r.applied;
        self.state.chain_crc = r.chain_crc;
        self.state.epoch = r.epoch;
        self.state.updated_ms = now_ms();
        self.state.write(&self.vfs, &home)?;
        restore::unmark(&self.vfs, &home)?;
        self.manifest = r.manifest;
        self.finder.clear();
        Ok(Step::Restored(r.applied))
    }

    /// Notes an error in the state (for `db_stat -r`); best effort.
    pub fn note_error(&mut self, e: &Error) {
        self.state.last_error = e.to_string();
        self.state.last_error_ms = now_ms();
        let _ = self.state.write(&self.vfs, &self.layout.home);
    }
}

fn not_a_standby(home: &Path) -> Error {
    Error::invalid(format!(
        "{}: holds files but is not a standby kept by db_replicate (no {}): give the client an empty directory",
        home.display(),
        super::status::STATE_FILE
    ))
}

/// Takes the standby's owner lock, or names who holds it.
fn lock_standby(vfs: &SharedVfs, home: &Path) -> Result<OwnerLock> {
    match OwnerLock::acquire(vfs, home, Duration::from_secs(3)) {
        Err(Error::Locked { pid, .. }) => Err(Error::invalid(format!(
            "{}: in use by pid {pid} (another db_replicate client, or a db_recover or an application that opened it); nothing was changed",
            home.display()
        ))),
        r => r,
    }
}

/// Runs a client until `opts.stop` is raised: store failures that may
/// pass are retried; a segment that fails its checks stops it.
pub fn run(
    vfs: &SharedVfs,
    home: &Path,
    store: Arc<dyn ReplicaStore>,
    opts: &ClientOptions,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let mut c = Client::open(vfs, home, store, opts, say)?;
    let mut backoff = opts.poll;
    while !raised(&opts.stop) {
        match c.step(say) {
            Ok(Step::Applied(_)) | Ok(Step::Restored(_)) => backoff = opts.poll,
            Ok(Step::Idle) => std::thread::sleep(opts.poll),
            Err(e) if e.is_transient() || matches!(e.store_fault(), Some(StoreFault::Missing)) => {
                say(format!("{e}; retrying"));
                c.note_error(&e);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                c.note_error(&e);
                return Err(e);
            }
        }
    }
    Ok(())
}
