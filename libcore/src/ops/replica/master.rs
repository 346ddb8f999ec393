//! The master (`db_replicate -M`): beside a running primary, it ships
//! every log byte into the replica store as soon as it is durable, writes
//! bases, prunes what no kept base needs, posts its status and, now and
//! then, a digest of the primary's content. It never writes the
//! primary's log or data files, and never blocks a commit.
//!
//! Shipping, every tick (a twentieth of the lag bound):
//! 1. fdatasync the primary's newest log file through a read-only handle
//!    (whoever wrote them, the bytes below its length are then durable,
//!    so nothing shipped can be lost by a crash of the primary and then
//!    written differently);
//! 2. read the records from the shipped position to that length and find
//!    the end of the last complete transaction or checkpoint: bytes after
//!    it belong to a batch recovery could still cut, and are not shipped;
//! 3. put the bytes up to it as segments (one per log file, at most
//!    `MAX_SEGMENT` bytes each, cut at record ends), each chained to the
//!    previous by its checksum, with create-only writes.
//!
//! Fencing (issue 13): the master ships only while it holds the store's
//! lease (`lease`) for its environment's epoch (`epoch`): it checks the
//! lease is still valid before every segment, renews it, and confirms it
//! is still its own before it posts a status (so nothing is reported
//! shipped after a promotion fenced it), writes a base or prunes. A lease
//! lost, or a newer epoch, stops it at once with one line. A home whose
//! epoch is older than the store's is an old primary: refused before it
//! writes anything. A standby's home is promoted (`promote`) first.
//!
//! A store that fails makes the shipped position stay where it is (lag
//! grows and is reported); the next tick tries again, with backoff. The
//! master holds a lease in the primary's region on the oldest log file it
//! has not shipped, so `db_archive -d` keeps it; a log file removed by
//! hand anyway is a gap: named, then a new chain starts after it with a
//! new base. A bulk load whose pages are not in the log (its marker in
//! the shipped log) gets a new base too, which standbys restore from.

use super::base::{self, BaseManifest};
use super::digest;
use super::epoch::{self, EpochRecord, Epochs, HomeEpoch};
use super::framed;
use super::layout;
use super::lease::Lease;
use super::restore;
use super::segment::{self, Segment, FLAG_BOUNDARY, FLAG_CHAIN_START};
use super::status::{now_ms, ClientState, MasterStatus};
use super::store::ReplicaStore;
use crate::engine::region::Region;
use crate::error::{Error, Result, StoreFault};
use crate::ops::interrupt::{raised, StopFlag};
use crate::progress::Progress;
use crate::storage::layout::Layout;
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use crate::wal::{LogCursor, OnBadRecord, PageRecord, Record, RECORD_HEADER_SIZE};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest segment the master writes.
pub const MAX_SEGMENT: u64 = 8 << 20;
/// The most log one tick reads past the shipped position.
const SCAN_LIMIT: u64 = 64 << 20;
/// Default bytes of log shipped after the newest base before a new one.
pub const DEFAULT_BASE_BYTES: u64 = 256 << 20;
/// Complete bases kept in the store.
pub const KEEP_BASES: usize = 2;
/// How long the master's lease lasts without renewal.
const LEASE_SECS: u64 = 3600;
const RENEW_EVERY: Duration = Duration::from_secs(60);
/// How often the status object is written.
const STATUS_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
/// How a master runs (`db_replicate -M` flags and DB_CONFIG).
pub struct MasterOptions {
    /// The lag bound (`-t`): the master looks for new log twenty times
    /// per bound.
    pub lag_bound: Duration,
    /// Bytes of log after the newest base before a new one (`None`: the
    /// DB_CONFIG `repl_base_size`, else the larger of 256 MiB and the
    /// databases' size).
    pub base_bytes: Option<u64>,
    /// How often a digest of the primary is posted (`None`: never).
    pub digest_every: Option<Duration>,
    /// Raised to stop: the master ships what is durable, writes its
    /// status and returns.
    pub stop: StopFlag,
    /// How long the store's lease lasts unrenewed (`repl_lease_secs`);
    /// renewed every third of it.
    pub lease: Duration,
    /// Told of each base copy (`Phase::WriteBase`).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for MasterOptions {
    fn default() -> Self {
        MasterOptions {
            lag_bound: Duration::from_secs(1),
            base_bytes: None,
            digest_every: Some(Duration::from_secs(60)),
            stop: StopFlag::default(),
            lease: super::lease::DEFAULT_LEASE,
            progress: None,
        }
    }
}

/// The master's hold on the primary's log files (see region.rs): one
/// lease, moved forward as the log is shipped and renewed as it runs.
struct MasterLease {
    held: Option<(Region, u64)>,
    first: u32,
    renewed: Instant,
}

impl MasterLease {
    fn take(vfs: &SharedVfs, home: &Path, first: u32) -> Result<MasterLease> {
        let region = Region::at(vfs, home);
        let none = MasterLease {
            held: None,
            first,
            renewed: Instant::now(),
        };
        if !vfs.exists(region.path()) {
            // No owner has run since the region went: nothing removes
            // logs but db_archive -d, which has no lease to honour either.
            return Ok(none);
        }
        let (me, start) = (std::process::id(), crate::engine::region::own_start_time());
        let now = crate::types::now_secs();
        let taken = region.update(false, |s| {
            s.add_lease(me, start, first, now + LEASE_SECS, now)
        })?;
        match taken {
            Some(l) => Ok(MasterLease {
                held: Some((region, l.id)),
                first,
                renewed: Instant::now(),
            }),
            None => Err(Error::invalid(format!(
                "{}: every lease slot is held by a running backup or master; try again when one is done",
                region.path().display()
            ))),
        }
    }

    /// Moves the lease to `first` (forward only) and renews it when due.
    fn keep(&mut self, vfs: &SharedVfs, home: &Path, first: u32) -> Result<()> {
        let due = self.renewed.elapsed() >= RENEW_EVERY;
        if first <= self.first && !due {
            return Ok(());
        }
        let Some((region, id)) = &self.held else {
            self.first = first;
            return Ok(());
        };
        let now = crate::types::now_secs();
        let (id, target) = (*id, first.max(self.first));
        let alive = region.update(false, |s| s.advance_lease(id, target, now + LEASE_SECS))?;
        self.first = target;
        self.renewed = Instant::now();
        if !alive {
            // Dropped as void (it expired while this process was stopped).
            *self = MasterLease::take(vfs, home, target)?;
        }
        Ok(())
    }
}

impl Drop for MasterLease {
    fn drop(&mut self) {
        if let Some((r, id)) = &self.held {
            let _ = r.update(false, |s| s.remove_lease(*id));
        }
    }
}

/// One piece of log found shippable by a scan.
struct Scan {
    /// Ends of the records read, with whether each closes a transaction
    /// or checkpoint.
    ends: Vec<(Lsn, bool)>,
    /// The primary's durable end: where the records of its newest log file
    /// ended when it was fsynced (not the file's size: it is preallocated).
    durable: Lsn,
    /// Bulk markers read.
    bulk: Vec<Lsn>,
}

/// A job on a helper thread: a base or a digest.
struct Job<T> {
    handle: JoinHandle<Result<T>>,
}

impl<T> Job<T> {
    fn done(&self) -> bool {
        self.handle.is_finished()
    }

    fn join(self) -> Result<T> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::invalid("a replication helper thread panicked")))
    }
}

/// A digest being computed: where it will be taken (sent first), then the
/// digest.
struct DigestJob {
    at: mpsc::Receiver<Lsn>,
    job: Job<(Lsn, [u8; 32])>,
}

/// A running master: what it shipped, its lease on the store, its jobs
/// (bases, digests) and its status. [`Master::tick`] does one round.
pub struct Master {
    vfs: SharedVfs,
    src: Layout,
    store: Arc<dyn ReplicaStore>,
    env_id: u64,
    epoch: u64,
    /// The store's lease for `epoch`.
    fence: Lease,
    shipped: Lsn,
    chain_crc: u32,
    /// The next segment starts a new chain (first base, or after a gap).
    chain_start: bool,
    lease: MasterLease,
    status: MasterStatus,
    /// (durable end, when first seen) of what was not shipped when seen.
    seen: VecDeque<(Lsn, u64)>,
    base_job: Option<(u64, Job<BaseManifest>)>,
    newest_base: Option<BaseManifest>,
    base_bytes: u64,
    shipped_since_base: u64,
    /// Positions a segment must end at (a digest's).
    cuts: Vec<Lsn>,
    digest_job: Option<DigestJob>,
    digest_every: Option<Duration>,
    last_digest: Instant,
    last_status: Option<Instant>,
    /// Backoff after a failure: no shipping before this.
    retry_at: Option<Instant>,
    failures: u32,
    progress: Option<Arc<dyn Progress>>,
}

/// What the master did in one tick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Segments put into the store this tick.
    pub segments: usize,
    /// Log bytes they carried.
    pub bytes: u64,
}

/// The environment id of the log at `src` (from its newest file's header).
pub fn source_env_id(vfs: &SharedVfs, src: &Layout) -> Result<u64> {
    let cur = crate::wal::manifest::open_live(vfs, &src.log_dir, 0)?;
    cur.env_id().ok_or_else(|| Error::NotEnvironment {
        path: src.home.clone(),
    })
}

impl Master {
    /// Starts a master for the primary at `home`: checks the store belongs
    /// to it (creating the store record in an empty store), promotes a
    /// standby's home, takes the store's lease for the home's epoch
    /// (refusing an old primary), finds where shipping stopped and checks
    /// the primary's log still continues it, and takes the region lease.
    pub fn open(
        vfs: &SharedVfs,
        home: &Path,
        store: Arc<dyn ReplicaStore>,
        opts: &MasterOptions,
        say: &mut dyn FnMut(String),
    ) -> Result<Master> {
        let src = Layout::resolve(vfs, home)?;
        if src.env_log(vfs)?.is_none() {
            return Err(Error::invalid(format!(
                "{}: nothing was ever committed in this environment: nothing to replicate",
                home.display()
            )));
        }
        let env_id = source_env_id(vfs, &src)?;
        let (fence, rec) = if ClientState::read(vfs, home)?.is_some() {
            super::promote::promote(vfs, home, &store, env_id, opts.lease, say)?
        } else {
            layout::check_store(&*store, env_id, true)?;
            claim(vfs, &src, &*store, opts.lease, say)?
        };
        let epoch = rec.epoch;
        let history = crate::wal::history::read(vfs, home)?;
        let (shipped, chain_crc, chain_start) = match segment::last(&*store, epoch)? {
            Some((_, _, end, key)) => {
                let seg = Segment::get(&*store, &key)?.ok_or_else(|| {
                    Error::invalid(format!(
                        "{}/{key}: the last segment vanished while the master started",
                        store.describe()
                    ))
                })?;
                check_continues(vfs, &src, &store, &seg, Some(&history))?;
                (end, seg.bytes_crc(), false)
            }
            None if rec.continues == 0 => (rec.begins, 0, true),
            None => match chain_before(&*store, rec.begins)? {
                Some(seg) => {
                    check_continues(vfs, &src, &store, &seg, None)?;
                    (rec.begins, seg.bytes_crc(), false)
                }
                None => (rec.begins, 0, true),
            },
        };
        let lease = MasterLease::take(vfs, home, shipped.file)?;
        let bases = restore::valid_bases(&*store, &Epochs::read(&*store)?)?;
        let newest_base = bases.last().cloned();
        let base_bytes = match opts.base_bytes {
            Some(b) => b,
            None => default_base_bytes(vfs, &src)?,
        };
        let status = MasterStatus {
            env_id,
            epoch,
            pid: std::process::id(),
            shipped,
            history: history.id(),
            newest_base: newest_base.as_ref().map(|b| b.number).unwrap_or(0),
            newest_base_created: newest_base.as_ref().map(|b| b.created).unwrap_or(0),
            ..Default::default()
        };
        say(format!(
            "master of {} (epoch {epoch}) shipping to {} from {shipped}",
            home.display(),
            store.describe()
        ));
        Ok(Master {
            vfs: vfs.clone(),
            src,
            store,
            env_id,
            epoch,
            fence,
            shipped,
            chain_crc,
            chain_start,
            lease,
            status,
            seen: VecDeque::new(),
            base_job: None,
            newest_base,
            base_bytes,
            shipped_since_base: 0,
            cuts: Vec::new(),
            digest_job: None,
            digest_every: opts.digest_every,
            last_digest: Instant::now(),
            last_status: None,
            retry_at: None,
            failures: 0,
            progress: opts.progress.clone(),
        })
    }

    /// The epoch it ships for (the store's lease is held for it).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Where the store's log ends.
    pub fn shipped(&self) -> Lsn {
        self.shipped
    }

    /// Its status as last posted to the store (`db_stat -r` reads it).
    pub fn status(&self) -> &MasterStatus {
        &self.status
    }

    /// One round: collect finished jobs, ship, start jobs that are due,
    /// keep the lease, post the status.
    pub fn tick(&mut self, say: &mut dyn FnMut(String)) -> Result<Tick> {
        self.fence.keep(&*self.store)?;
        self.collect_jobs(say);
        let shipped = match self.retry_at {
            Some(t) if Instant::now() < t => Ok(Tick::default()),
            _ => self.ship(say),
        };
        let tick = match shipped {
            Ok(t) => {
                self.failures = 0;
                self.retry_at = None;
                t
            }
            Err(e) => {
                self.fail(&e);
                let fenced = e.store_fault() == Some(StoreFault::Fenced);
                if fenced
                    || (!e.is_transient()
                        && e.store_fault().is_none()
                        && !matches!(e, Error::Io { .. }))
                {
                    return Err(e);
                }
                say(format!("{e}; retrying"));
                Tick::default()
            }
        };
        self.start_jobs(say);
        let first = self
            .base_job
            .as_ref()
            .map(|_| self.shipped.file)
            .unwrap_or(self.shipped.file);
        self.lease.keep(&self.vfs, &self.src.home, first)?;
        self.post_status(false)?;
        Ok(tick)
    }

    /// Ships what is durable once more, waits for the jobs running, and
    /// posts a final status: a clean stop.
    pub fn finish(mut self, say: &mut dyn FnMut(String)) -> Result<()> {
        self.fence.keep(&*self.store)?;
        let shipped = self.ship(say);
        if let Err(e) = &shipped {
            if e.store_fault() == Some(StoreFault::Fenced) {
                return shipped.map(|_| ());
            }
        }
        if let Some((_, job)) = self.base_job.take() {
            match job.join() {
                Ok(m) => self.base_done(m, say),
                Err(e) => self.fail(&e),
            }
        }
        self.digest_job = None;
        if let Err(e) = &shipped {
            self.fail(e);
        }
        self.status.stopped = true;
        self.last_status = None;
        self.post_status(true)?;
        self.fence.release(&*self.store);
        shipped.map(|_| ())
    }

    fn fail(&mut self, e: &Error) {
        self.failures = self.failures.saturating_add(1);
        let backoff = Duration::from_millis(100u64 << self.failures.min(6));
        self.retry_at = Some(Instant::now() + backoff);
        self.status.last_error = e.to_string();
        self.status.last_error_ms = now_ms();
    }

    /// Posts the status (at most once a second unless `force`), after
    /// confirming the lease is still this master's: a fenced master
    /// reports nothing more shipped, and stops.
    fn post_status(&mut self, force: bool) -> Result<()> {
        if !force && self.last_status.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return Ok(());
        }
        match self.fence.confirm(&*self.store) {
            Ok(()) => {}
            Err(e) if e.store_fault() == Some(StoreFault::Fenced) => return Err(e),
            // The store cannot be read now: no status this time.
            Err(_) => return Ok(()),
        }
        self.status.updated_ms = now_ms();
        self.status.shipped = self.shipped;
        self.status.behind_since_ms = self.seen.front().map(|s| s.1).unwrap_or(0);
        // A failure here shows as a stale status; shipping goes on.
        if self.status.write(&*self.store).is_ok() {
            self.last_status = Some(Instant::now());
        }
        Ok(())
    }

    /// Notes the durable end seen now, and forgets what is shipped.
    fn note_durable(&mut self, durable: Lsn) {
        self.status.durable = durable;
        if durable > self.shipped && self.seen.back().is_none_or(|s| s.0 < durable) {
            self.seen.push_back((durable, now_ms()));
        }
        while self.seen.front().is_some_and(|s| s.0 <= self.shipped) {
            self.seen.pop_front();
        }
    }

    /// Steps 1-3 of the module documentation.
    fn ship(&mut self, say: &mut dyn FnMut(String)) -> Result<Tick> {
        let scan = match self.scan() {
            Ok(s) => s,
            Err(Error::LogGap { path }) => return self.restart_after_gap(&path, say),
            Err(e) => return Err(e),
        };
        self.note_durable(scan.durable);
        let mut tick = Tick::default();
        let pieces = self.pieces(&scan);
        for (a, b, boundary) in pieces {
            let bytes = self.read_log(a, b)?;
            let mut flags = if boundary { FLAG_BOUNDARY } else { 0 };
            if self.chain_start {
                flags |= FLAG_CHAIN_START;
            }
            let seg = Segment {
                env_id: self.env_id,
                epoch: self.epoch,
                start: a,
                end: b,
                prev_crc: if self.chain_start { 0 } else { self.chain_crc },
                flags,
                bytes,
            };
            self.fence.check(&*self.store)?;
            put_segment(&*self.store, &seg)?;
            self.chain_crc = seg.bytes_crc();
            self.chain_start = false;
            self.shipped = b;
            self.shipped_since_base += seg.bytes.len() as u64;
            tick.segments += 1;
            tick.bytes += seg.bytes.len() as u64;
            self.note_durable(scan.durable);
        }
        self.cuts.retain(|&c| c > self.shipped);
        if let Some(&m) = scan.bulk.iter().find(|&&m| m < self.shipped) {
            if self.base_job.is_none() {
                say(format!(
                    "a bulk load at {m} wrote pages the log does not carry; writing a new base for the standbys"
                ));
                self.start_base(say);
            }
        }
        Ok(tick)
    }

    /// Reads the primary's log from the shipped position (see `Scan`).
    fn scan(&mut self) -> Result<Scan> {
        let logs = self.src.log_files(&self.vfs)?;
        let Some(&last) = logs.last() else {
            return Err(Error::NotEnvironment {
                path: self.src.home.clone(),
            });
        };
        if !logs.contains(&self.shipped.file) {
            if self.shipped.file > last {
                return Ok(Scan {
                    ends: Vec::new(),
                    durable: Lsn::new(last, 0),
                    bulk: Vec::new(),
                });
            }
            return Err(Error::LogGap {
                path: self.src.log_path(self.shipped.file),
            });
        }
        // Records are read first and the newest file fsynced after: every
        // record read was in the file before that fsync, so it is durable.
        let newest_path = self.src.log_path(last);
        let newest = self.vfs.open(&newest_path, OpenMode::Read)?;
        let mut cur = LogCursor::open_from(
            self.vfs.clone(),
            &self.src.log_dir,
            OnBadRecord::EndOfLog,
            self.shipped.file,
        )?;
        if cur.env_id().is_some_and(|id| id != self.env_id) {
            return Err(Error::invalid(format!(
                "{}: the primary's log now belongs to another environment (id {:016x}, the store's {:016x})",
                self.src.log_path(self.shipped.file).display(),
                cur.env_id().unwrap_or(0),
                self.env_id
            )));
        }
        cur.seek(self.shipped)?;
        let mut ends = Vec::new();
        let mut bulk = Vec::new();
        let limit = self.shipped;
        let mut walked_to_end = false;
        loop {
            let Some(r) = cur.next_raw()? else {
                walked_to_end = true;
                break;
            };
            let end = Lsn::new(
                r.lsn.file,
                r.lsn.offset + (RECORD_HEADER_SIZE + r.payload.len()) as u32,
            );
            // A file created since the listing: not covered by the fsync.
            if end.file > last {
                break;
            }
            let closes = if PageRecord::is_page_type(r.ty) {
                false
            } else {
                match Record::decode(r.ty, r.payload) {
                    Ok(Record::Commit { .. })
                    | Ok(Record::Checkpoint(_))
                    | Ok(Record::Epoch { .. }) => true,
                    Ok(Record::BulkMarker { .. }) => {
                        bulk.push(r.lsn);
                        false
                    }
                    _ => false,
                }
            };
            ends.push((end, closes));
            if distance(limit, end) > SCAN_LIMIT && closes {
                break;
            }
        }
        let durable = match cur.position() {
            p if walked_to_end && p.file == last => p,
            _ => Lsn::new(last, crate::wal::records_end(&self.vfs, &newest_path)?),
        };
        newest.sync()?;
        Ok(Scan {
            ends,
            durable,
            bulk,
        })
    }

    /// The segments to put for a scan: up to the last record that closes a
    /// transaction, split at file ends, at digest positions and every
    /// `MAX_SEGMENT` bytes (at record ends).
    fn pieces(&self, scan: &Scan) -> Vec<(Lsn, Lsn, bool)> {
        let Some(stop) = scan.ends.iter().rposition(|e| e.1) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut from = self.shipped;
        for (i, &(end, closes)) in scan.ends[..=stop].iter().enumerate() {
            if end.file != from.file {
                // The previous record ended the file `from` is in (none
                // when `from` was already at that file's end).
                if let Some(&prev) = i.checked_sub(1).and_then(|j| scan.ends.get(j)) {
                    if prev.0 > from {
                        out.push((from, prev.0, prev.1));
                    }
                }
                from = Lsn::new(end.file, 0);
            }
            let next_other_file = scan.ends.get(i + 1).is_some_and(|n| n.0.file != end.file);
            let cut = i == stop
                || next_other_file
                || self.cuts.contains(&end)
                || u64::from(end.offset - from.offset) >= MAX_SEGMENT;
            if cut {
                out.push((from, end, closes));
                from = end;
            }
        }
        out.retain(|p| p.0 < p.1);
        out
    }

    fn read_log(&self, a: Lsn, b: Lsn) -> Result<Vec<u8>> {
        let path = self.src.log_path(a.file);
        let f = match self.vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Err(Error::LogGap { path }),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; (b.offset - a.offset) as usize];
        let n = f.read_at(&mut buf, u64::from(a.offset))?;
        if n < buf.len() {
            return Err(Error::invalid(format!(
                "{}: shrank while it was shipped (bytes {}..{})",
                path.display(),
                a.offset,
                b.offset
            )));
        }
        Ok(buf)
    }

    /// A log file the store needs is gone: name it, and start a new chain
    /// from the primary's current start point with a new base.
    fn restart_after_gap(&mut self, path: &Path, say: &mut dyn FnMut(String)) -> Result<Tick> {
        let e = Error::LogGap {
            path: path.to_path_buf(),
        };
        self.fail(&e);
        self.retry_at = None;
        say(format!(
            "{e}; the store's log stops at {}: starting a new chain with a new base",
            self.shipped
        ));
        let (mut start, _) = base::start_point(&self.vfs, &self.src)?;
        if !self.vfs.exists(&self.src.log_path(start.file)) {
            // The log a base would start from is gone too: a checkpoint
            // moves the start point past the gap.
            crate::ops::request_checkpoint::checkpoint(&self.src.home, Duration::from_secs(30))?;
            start = base::start_point(&self.vfs, &self.src)?.0;
        }
        self.shipped = Lsn::new(start.file, 0);
        self.chain_start = true;
        self.chain_crc = 0;
        self.seen.clear();
        self.lease.first = self.shipped.file.min(self.lease.first);
        self.base_job = None;
        self.start_base(say);
        Ok(Tick::default())
    }

    fn start_base(&mut self, say: &mut dyn FnMut(String)) {
        if self.base_job.is_some() {
            return;
        }
        let epoch = self.epoch;
        let number = match base::list(&*self.store) {
            Ok(l) => l
                .iter()
                .map(|b| b.0)
                .filter(|&n| layout::base_epoch(n) == epoch)
                .max()
                .map(|n| n + 1)
                .unwrap_or(layout::base_number(epoch, 1)),
            Err(e) => {
                self.fail(&e);
                return;
            }
        };
        say(format!("writing base {number}"));
        let (vfs, src, store, env_id, progress) = (
            self.vfs.clone(),
            self.src.clone(),
            self.store.clone(),
            self.env_id,
            self.progress.clone(),
        );
        let handle = std::thread::spawn(move || {
            base::write(&vfs, &src, &*store, number, env_id, progress, &mut |_| {})
        });
        self.shipped_since_base = 0;
        self.base_job = Some((number, Job { handle }));
    }

    fn base_done(&mut self, m: BaseManifest, say: &mut dyn FnMut(String)) {
        say(format!(
            "base {} complete (start {}, consistent from {})",
            m.number, m.start, m.consistent_from
        ));
        self.status.newest_base = m.number;
        self.status.newest_base_created = m.created;
        self.newest_base = Some(m);
        if let Err(e) = self.prune() {
            self.fail(&e);
        }
    }

    fn collect_jobs(&mut self, say: &mut dyn FnMut(String)) {
        if self.base_job.as_ref().is_some_and(|j| j.1.done()) {
            if let Some((n, job)) = self.base_job.take() {
                match job.join() {
                    Ok(m) => self.base_done(m, say),
                    Err(e) => {
                        crate::progress::finish(self.progress.as_deref());
                        say(format!("base {n}: {e}"));
                        self.fail(&e);
                        // Leave it for the next prune; try again later.
                        self.shipped_since_base = self.base_bytes;
                    }
                }
            }
        }
        if let Some(d) = &self.digest_job {
            while let Ok(at) = d.at.try_recv() {
                self.cuts.push(at);
            }
            if d.job.done() {
                if let Some(d) = self.digest_job.take() {
                    match d.job.join() {
                        Ok((at, sum)) => self.post_digest(at, sum),
                        Err(e) => self.fail(&e),
                    }
                }
            }
        }
    }

    fn post_digest(&mut self, at: Lsn, sum: [u8; 32]) {
        let r = framed::put_framed(
            &*self.store,
            &layout::digest_key(self.epoch, at),
            digest::KIND_DIGEST,
            &digest::encode(at, &sum),
        );
        match r {
            Ok(()) => self.status.digest_at = at,
            Err(e) => self.fail(&e),
        }
    }

    fn start_jobs(&mut self, say: &mut dyn FnMut(String)) {
        let no_base = self.newest_base.is_none();
        if self.base_job.is_none() && (no_base || self.shipped_since_base >= self.base_bytes) {
            self.start_base(say);
        }
        let due = self
            .digest_every
            .is_some_and(|d| self.last_digest.elapsed() >= d);
        if due && self.digest_job.is_none() {
            self.last_digest = Instant::now();
            let (tx, rx) = mpsc::channel();
            let home = self.src.home.clone();
            let handle = std::thread::spawn(move || {
                digest::of_home(&home, &mut |at| {
                    let _ = tx.send(at);
                })
            });
            self.digest_job = Some(DigestJob {
                at: rx,
                job: Job { handle },
            });
        }
    }

    /// Keeps the newest `KEEP_BASES` complete bases of the history and
    /// what they need: older bases, leftovers of unfinished ones, bases
    /// and segments a fenced master wrote past where its successor began,
    /// and segments and digests before the oldest kept base's start file
    /// go. Only while the lease is still this master's.
    fn prune(&mut self) -> Result<()> {
        self.fence.confirm(&*self.store)?;
        let epochs = Epochs::read(&*self.store)?;
        let all = base::list(&*self.store)?;
        let valid =
            |m: &BaseManifest| epochs.holds(layout::base_epoch(m.number), m.consistent_from);
        let complete: Vec<&BaseManifest> = all
            .iter()
            .filter_map(|b| b.1.as_ref())
            .filter(|m| valid(m))
            .collect();
        if complete.len() < KEEP_BASES {
            return Ok(());
        }
        let kept = &complete[complete.len() - KEEP_BASES..];
        let oldest = kept[0].clone();
        let running = self.base_job.as_ref().map(|j| j.0);
        for (n, m) in &all {
            let keep = kept.iter().any(|k| k.number == *n) || Some(*n) == running;
            let invalid = m.as_ref().is_some_and(|m| !valid(m));
            if !keep && (m.is_some() || *n < oldest.number || invalid) {
                base::delete(&*self.store, *n)?;
            }
        }
        for (e, s, end, key) in segment::list_from(&*self.store, 0)? {
            if s.file < oldest.start.file || !epochs.holds(e, end) {
                self.store.delete(&key)?;
            }
        }
        for m in self.store.list(layout::DIGESTS)? {
            if layout::parse_digest_key(&m.key).is_some_and(|(_, at)| at < oldest.start) {
                self.store.delete(&m.key)?;
            }
        }
        Ok(())
    }
}

/// The first epoch of a store, or this home's epoch of it: the lease for
/// it, and its record. Refuses (with a `Fenced` error, before writing
/// anything) a home that never was the store's primary, an old primary
/// whose epoch the store has moved past, and another copy of the
/// primary of the store's epoch.
fn claim(
    vfs: &SharedVfs,
    src: &Layout,
    store: &dyn ReplicaStore,
    lease_for: Duration,
    say: &mut dyn FnMut(String),
) -> Result<(Lease, EpochRecord)> {
    let home = &src.home;
    let mine = HomeEpoch::read(vfs, home)?;
    let epochs = Epochs::read(store)?;
    let fenced = |what: String| {
        Error::store(
            store.describe(),
            "",
            StoreFault::Fenced,
            format!("{}: {what}", home.display()),
        )
    };
    let Some(newest) = epochs.newest() else {
        // The first master of this store.
        let (epoch, tenure) = mine
            .map(|m| (m.epoch.max(1), m.tenure))
            .unwrap_or((1, epoch::random_id()));
        let lease = Lease::take(store, epoch, tenure, lease_for)?;
        let (start, _) = base::start_point(vfs, src)?;
        let begins = Lsn::new(start.file, 0);
        HomeEpoch {
            epoch,
            begins,
            continues: 0,
            tenure,
            promoting: false,
        }
        .write(vfs, home)?;
        let rec = epoch::begin(
            store,
            &EpochRecord {
                epoch,
                begins,
                continues: 0,
                tenure,
                created: crate::types::now_secs(),
                host: epoch::host_name(),
            },
        )?;
        say(format!("epoch {epoch} begins at {}", rec.begins));
        return Ok((lease, rec));
    };
    let Some(mine) = mine else {
        return Err(fenced(format!(
            "has no epoch of this store, which is at epoch {} (begun at {} on host {:?}): it never was the store's primary; a standby becomes the primary with db_replicate -M on its home, and this one can be made a standby (db_replicate on an empty home)",
            newest.epoch, newest.begins, newest.host
        )));
    };
    if mine.epoch < newest.epoch {
        return Err(fenced(format!(
            "was the primary of epoch {}, but the store has moved on to epoch {} (begun at {} on host {:?}): an old primary must not ship; make it a standby of the new primary (db_replicate on an empty home)",
            mine.epoch, newest.epoch, newest.begins, newest.host
        )));
    }
    let Some(rec) = epochs
        .get(mine.epoch)
        .filter(|_| mine.epoch == newest.epoch)
    else {
        return Err(fenced(format!(
            "is the primary of epoch {}, which this store (at epoch {}) does not have: is it the right store?",
            mine.epoch, newest.epoch
        )));
    };
    if rec.tenure != mine.tenure {
        return Err(fenced(format!(
            "epoch {} of the store was begun by another copy of this environment (on host {:?}): this one is not its primary",
            rec.epoch, rec.host
        )));
    }
    let lease = Lease::take(store, mine.epoch, mine.tenure, lease_for)?;
    Ok((lease, rec.clone()))
}

/// The segment that ends at `at` in the store's history (the chain a
/// promoted epoch continues), `None` when it is gone.
fn chain_before(store: &dyn ReplicaStore, at: Lsn) -> Result<Option<Segment>> {
    let epochs = Epochs::read(store)?;
    let Some(e) = epochs.before(at) else {
        return Ok(None);
    };
    match segment::Finder::default().ending_at(store, e, at)? {
        Some((_, _, _, key)) => Segment::get(store, &key),
        None => Ok(None),
    }
}

/// The default size of log between bases: the larger of 256 MiB and the
/// databases' size (a restore then replays at most about as much log as
/// it copies).
fn default_base_bytes(vfs: &SharedVfs, src: &Layout) -> Result<u64> {
    if let Some(mb) = src.config.repl_base_mb {
        return Ok(u64::from(mb) << 20);
    }
    let mut total = 0u64;
    for f in src.db_files(vfs)? {
        total += vfs.metadata(&f.path).map(|m| m.len).unwrap_or(0);
    }
    Ok(total.max(DEFAULT_BASE_BYTES))
}

/// Bytes from `a` to `b` when both are in one file, else a large number
/// per file crossed (an estimate is enough for a scan limit).
fn distance(a: Lsn, b: Lsn) -> u64 {
    if a.file == b.file {
        u64::from(b.offset.saturating_sub(a.offset))
    } else {
        u64::from(b.file - a.file) * (MAX_SEGMENT * 2) + u64::from(b.offset)
    }
}

/// Puts a segment create-only; one already there must be the same one
/// (a put whose answer was lost, then retried).
fn put_segment(store: &dyn ReplicaStore, seg: &Segment) -> Result<()> {
    let key = seg.key();
    if store.create(&key, &seg.encode()?)? {
        return Ok(());
    }
    match Segment::get(store, &key)? {
        Some(s) if s == *seg => Ok(()),
        _ => Err(Error::store(
            store.describe(),
            key,
            crate::error::StoreFault::Invalid,
            "the store already holds a different segment here (a second master on this store?)",
        )),
    }
}

/// Checks that the primary's log still continues the store's: no
/// recovery cut it before the shipped end since the history the master
/// last recorded, and its bytes where the last segment ends are the
/// segment's.
fn check_continues(
    vfs: &SharedVfs,
    src: &Layout,
    store: &Arc<dyn ReplicaStore>,
    last: &Segment,
    history: Option<&crate::wal::history::History>,
) -> Result<()> {
    // The status's history id is this home's only when the last status
    // was posted by a master of this epoch (after a promotion it is the
    // old primary's).
    let recorded = MasterStatus::read(&**store)?.filter(|s| s.epoch == last.epoch);
    let cut = match history {
        Some(history) => match history.cuts_since(recorded.map(|s| s.history).unwrap_or(0)) {
            Some(cuts) => cuts.iter().find(|c| c.at < last.end).map(|c| c.at),
            None => Some(Lsn::ZERO),
        },
        None => None,
    };
    let diverged = |why: String| {
        Error::invalid(format!(
            "{}: {why}; the primary's log no longer continues the store's (ending at {}): replicate into a fresh store",
            src.home.display(),
            last.end
        ))
    };
    if let Some(at) = cut {
        return Err(diverged(format!(
            "its log was cut at {at} by a point-in-time or catastrophic recovery"
        )));
    }
    let path = src.log_path(last.start.file);
    let f = match vfs.open(&path, OpenMode::Read) {
        Ok(f) => f,
        // Gone: shipping finds the gap and starts a new chain.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut here = vec![0u8; last.bytes.len()];
    let n = f.read_at(&mut here, u64::from(last.start.offset))?;
    if n < here.len() || here != last.bytes {
        return Err(diverged(format!(
            "{} does not hold the bytes the store's last segment has at {}",
            path.display(),
            last.start
        )));
    }
    Ok(())
}

/// Runs a master until `opts.stop` is raised.
pub fn run(
    vfs: &SharedVfs,
    home: &Path,
    store: Arc<dyn ReplicaStore>,
    opts: &MasterOptions,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let mut m = Master::open(vfs, home, store, opts, say)?;
    let tick = (opts.lag_bound / 20).clamp(Duration::from_millis(5), Duration::from_millis(250));
    while !raised(&opts.stop) {
        let began = Instant::now();
        let t = m.tick(say)?;
        // A tick that shipped less than a full segment took everything
        // that was durable: wait for the next one. Looking again at once
        // made a busy primary's log go out in a stream of tiny segments,
        // each with its fsyncs here, in the store and in every standby
        // (which then fell behind), and slowed the primary's own commits.
        if t.bytes < MAX_SEGMENT {
            std::thread::sleep(tick.saturating_sub(began.elapsed()));
        }
    }
    m.finish(say)
}
