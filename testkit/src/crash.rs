//! [`CrashVfs`]: a `Vfs` that wraps `OsVfs` on a real directory and
//! remembers what a power loss could keep. [`CrashVfs::power_loss`] then
//! rewrites the directory to one such outcome, drawn from a seed, and the
//! environment can be reopened with the plain `OsVfs` (or with the same
//! `CrashVfs`, to cut the power again during recovery).
//!
//! # The power-loss model of `CrashVfs`
//!
//! This section is the authority the power-loss tests rely on.
//!
//! Files are *inodes* with names, as in POSIX. For every inode the model
//! keeps its *durable content* and its *pending data operations* (every
//! write and `set_len` since its last sync, in order); for the directories
//! under the root it keeps the *durable names* (name -> inode) and the
//! *pending namespace operations* (every creation, removal and rename since
//! the last sync of the directory it changes, in order).
//!
//! * `VFile::sync` (fdatasync) makes the inode's whole current content
//!   (size included) durable and empties its pending list. The real fsync
//!   is not called: nothing real is ever lost, the model observes the sync.
//! * `Vfs::sync_dir(dir)` makes the pending namespace operations of `dir`
//!   durable.
//! * Nothing else makes anything durable: a file sync does not make the
//!   file's name durable, a directory sync does not make any content
//!   durable (POSIX promises neither; `fsync(2)` says so).
//!
//! At a power loss ([`CrashVfs::power_loss_with`]) every modelled file is
//! rewritten to what survives, as the [`CrashModel`] chooses:
//!
//! * [`CrashModel::Strong`], the default of [`CrashVfs::power_loss`]:
//!   - *Names*: the durable names, with a random subset of the pending
//!     namespace operations applied to them in their original order, each
//!     as it was made: a creation binds its name to its (new) inode, a
//!     removal unbinds its name, a rename inside one directory unbinds the
//!     old name and binds the new one to the renamed inode, both halves or
//!     neither (rename is atomic); a rename between two directories is one
//!     operation in each. So any unsynced creation, removal or rename may
//!     be kept or lost independently of the others: of two unlinks in one
//!     directory either one may survive; a rename or a creation may be
//!     durable without its directory fsync; a removal may be undone.
//!   - *Data*: every inode a surviving name reaches gets its durable
//!     content with a random subset of its pending operations applied in
//!     their original order: a later write may survive while an earlier one
//!     is lost. A kept write may be *torn*, any number of them: either a
//!     random byte prefix of it reaches the disk, or a random subset of its
//!     512-byte sectors (aligned on file offsets). A write past the end
//!     extends the file; bytes never written read as zeros. A new file's
//!     durable content is empty, so a durable name whose data was never
//!     synced holds 0 bytes, a prefix of its data, or its data with holes
//!     (a name made durable before its data, as ext4's delayed allocation
//!     does).
//!   - *How much*: drawn once per power loss from the seed. The chance to
//!     keep a pending namespace operation and the chance to keep a pending
//!     write are each one of 0, 1/4, 1/2, 3/4 and 1; the chance that a kept
//!     write is torn one of 0, 1/8, 1/2 and 1. So one power loss keeps
//!     everything (what a process crash leaves), another nothing (as
//!     `Untorn`), most a mix.
//! * [`CrashModel::LastWriteTorn`], the narrower model the first tests were
//!   written against: every pending namespace and data operation is lost,
//!   except the last write (the highest over all inodes reachable through
//!   a durable name), of which a random byte prefix, from none to all of
//!   it, reaches the disk.
//! * [`CrashModel::Untorn`]: every pending operation is lost whole; what
//!   survives is exactly what was synced.
//!
//! In every model an inode that no surviving name reaches is gone with its
//! data, and the outcome depends only on the seed and on the sequence of
//! operations made through the `CrashVfs`: a single-threaded workload
//! replays exactly from its seed. [`PowerLoss`] reports what was kept,
//! lost and torn.
//!
//! More rules:
//! * Directories made with `create_dir` are durable at once (the engine
//!   creates none while it runs; tests make them first), and so is the
//!   removal of an empty directory with `remove_dir`: names under it that
//!   were removed without a directory sync go with it (a journaling file
//!   system commits the unlinks before the rmdir that needed them). A hard
//!   link is a namespace operation like a creation, binding its new name
//!   to the linked inode.
//! * A file the model has not seen yet (it existed before the `CrashVfs`
//!   was made, or was written outside it) is taken as durable, as found,
//!   the first time it is opened for writing, locked, removed or renamed
//!   through the `CrashVfs`. Files never touched that way are left alone
//!   by a power loss. Files outside the root pass through, untouched by a
//!   power loss. The owner lock (`__db.lock`) and the region (`__db.001`)
//!   go through the `Vfs` like every other file, so they are ordinary
//!   modelled files: the region, never fsynced, may come back missing,
//!   old or torn.
//! * *Locks* (`VFile::try_lock`) on modelled files are kept in memory, not
//!   taken on the real file, with `flock`'s rules: any number of shared
//!   or one exclusive, held by the open file that took it, converted when
//!   its holder asks for the other kind, released by `unlock` or when the
//!   file is dropped. A power loss drops every lock, as a reboot does.
//!   Files outside the root take real locks.
//! * *Identity*: `meta` and `metadata` of a modelled file report the
//!   model's inode and a device number of this `CrashVfs` and of the
//!   current boot (it changes at each power loss), so the owner lock's
//!   in-process registry sees a new file after a power loss, as a new
//!   process after a reboot would. Size, permission bits and times are the
//!   real file's (not modelled: a power loss keeps them as they are).
//! * A handle opened before a power loss belongs to a process that died
//!   with it: every operation on it fails with `EIO`, and dropping it
//!   releases nothing of the new boot's.
//! * [`CrashVfs::crash_after`] stops the machine: after that many
//!   *mutating* operations (write, set_len, sync, sync_dir, create,
//!   remove, rename) every further operation fails with `EIO`, so a
//!   workload stops at an exact point, possibly inside a commit, a
//!   checkpoint or a recovery. Then drop the environment and call
//!   `power_loss`. After a power loss the model starts afresh from what
//!   survived (everything durable), so the same `CrashVfs` can run the
//!   recovery and lose power again in the middle of it.
//!
//! Drop the environment before a power loss (its handles fail after it).
//! Files are read whole at each sync and pending writes
//! are kept in memory, so keep them small (tests use small `lg_max` and few
//! pages).

use crate::faulty::{injected, lock, EIO};
use crate::rng::Rng;
use libcore::{Error, FileMeta, LockKind, OpenMode, OsVfs, Result, VFile, Vfs};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

type Ino = u64;

/// What a power loss keeps of what was not made durable; see the module
/// documentation for the exact rules of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrashModel {
    /// Any subset of the unsynced namespace and data operations survives,
    /// in order, any number of kept writes torn.
    #[default]
    Strong,
    /// Everything unsynced is lost but a prefix of the last write.
    LastWriteTorn,
    /// Everything unsynced is lost whole.
    Untorn,
}

/// A pending change to an inode's content.
#[derive(Debug, Clone)]
enum DataOp {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// Changes not covered by a sync yet: (sequence, change), in order.
    pending: Vec<(u64, DataOp)>,
}

/// A pending change to the names of one directory.
#[derive(Debug, Clone)]
enum NameOp {
    Bind(PathBuf, Ino),
    Unbind(PathBuf),
    /// A rename inside one directory: both halves or neither.
    Rename(PathBuf, PathBuf, Ino),
}

impl NameOp {
    fn apply(&self, names: &mut BTreeMap<PathBuf, Ino>) {
        match self {
            NameOp::Bind(p, i) => {
                names.insert(p.clone(), *i);
            }
            NameOp::Unbind(p) => {
                names.remove(p);
            }
            NameOp::Rename(from, to, i) => {
                names.remove(from);
                names.insert(to.clone(), *i);
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            NameOp::Bind(p, _) => format!("create {}", p.display()),
            NameOp::Unbind(p) => format!("remove {}", p.display()),
            NameOp::Rename(f, t, _) => format!("rename {} -> {}", f.display(), t.display()),
        }
    }
}

/// Who holds the lock of one inode (`flock` rules).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Shared(BTreeSet<u64>),
    Exclusive(u64),
}

#[derive(Debug, Default)]
struct CrashState {
    inodes: BTreeMap<Ino, Inode>,
    /// Locks of modelled inodes, by the handle (open file) holding them.
    locks: BTreeMap<Ino, Held>,
    /// The last handle number given to an open file.
    handles: u64,
    next_ino: Ino,
    /// Names as the running system sees them.
    live: BTreeMap<PathBuf, Ino>,
    /// Names that survive a power loss for sure.
    durable: BTreeMap<PathBuf, Ino>,
    /// Namespace changes not covered by a directory sync yet:
    /// (sequence, directory, change), in order.
    names_pending: Vec<(u64, PathBuf, NameOp)>,
    /// Sequence number of the last operation (data or namespace).
    seq: u64,
    mutations: u64,
    syncs: u64,
    crash_after: Option<u64>,
    power_losses: u64,
}

impl CrashState {
    fn new_inode(&mut self, durable: Vec<u8>) -> Ino {
        self.next_ino += 1;
        self.inodes.insert(
            self.next_ino,
            Inode {
                durable,
                pending: Vec::new(),
            },
        );
        self.next_ino
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Fails once the machine has stopped; counts a mutating operation
    /// otherwise.
    fn gate(&mut self, path: &Path, op: &'static str, mutating: bool) -> Result<()> {
        if self.crash_after.is_some_and(|c| self.mutations >= c) {
            return Err(injected(path, op, EIO));
        }
        if mutating {
            self.mutations += 1;
        }
        Ok(())
    }

    fn name_op(&mut self, dir: PathBuf, op: NameOp) {
        let seq = self.next_seq();
        self.names_pending.push((seq, dir, op));
    }

    /// The inode behind `p`, adopting a file the model has not seen yet as
    /// durable with its current content.
    fn adopt(&mut self, p: &Path) -> Option<Ino> {
        if let Some(&i) = self.live.get(p) {
            return Some(i);
        }
        let content = std::fs::read(p).ok()?;
        let ino = self.new_inode(content);
        self.live.insert(p.to_path_buf(), ino);
        self.durable.insert(p.to_path_buf(), ino);
        Some(ino)
    }

    /// `flock` without waiting: true when `handle` now holds `kind`.
    fn try_lock(&mut self, ino: Ino, handle: u64, kind: LockKind) -> bool {
        let now = match (self.locks.get(&ino), kind) {
            (None, LockKind::Exclusive) => Held::Exclusive(handle),
            (None, LockKind::Shared) => Held::Shared(BTreeSet::from([handle])),
            (Some(Held::Exclusive(h)), _) if *h != handle => return false,
            (Some(Held::Exclusive(_)), LockKind::Exclusive) => return true,
            (Some(Held::Exclusive(_)), LockKind::Shared) => Held::Shared(BTreeSet::from([handle])),
            (Some(Held::Shared(hs)), LockKind::Shared) => {
                let mut hs = hs.clone();
                hs.insert(handle);
                Held::Shared(hs)
            }
            (Some(Held::Shared(hs)), LockKind::Exclusive) => {
                if hs.iter().any(|h| *h != handle) {
                    return false;
                }
                Held::Exclusive(handle)
            }
        };
        self.locks.insert(ino, now);
        true
    }

    /// Releases whatever lock `handle` holds.
    fn unlock(&mut self, handle: u64) {
        self.locks.retain(|_, held| match held {
            Held::Exclusive(h) => *h != handle,
            Held::Shared(hs) => {
                hs.remove(&handle);
                !hs.is_empty()
            }
        });
    }

    fn data_op(&mut self, ino: Ino, op: DataOp) {
        let seq = self.next_seq();
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.pending.push((seq, op));
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The power-loss simulating file system; see the module documentation for
/// the exact model.
pub struct CrashVfs {
    root: PathBuf,
    os: OsVfs,
    /// Unique among the `CrashVfs`s of this process: part of the device
    /// number modelled files report, so two models never share an identity
    /// (the owner lock's registry is process-wide).
    instance: u64,
    st: Arc<Mutex<CrashState>>,
}

/// The last `CrashVfs` instance number given.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// The device number of modelled files of `instance` during `boot` (power
/// losses so far): far from any real device number.
fn model_dev(instance: u64, boot: u64) -> u64 {
    (1 << 62) | (instance << 24) | (boot & 0xff_ffff)
}

/// Lexically normal form of a path (no `.` parts, no trailing slash), so
/// the same file always has the same key.
fn norm(p: &Path) -> PathBuf {
    p.components().collect()
}

/// A write that reached the disk only in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornWrite {
    /// The file (a name it survived under).
    pub path: PathBuf,
    /// Offset and length of the write.
    pub offset: u64,
    pub len: usize,
    /// The byte ranges of the write (relative to its start) that reached
    /// the disk; the rest did not.
    pub kept: Vec<std::ops::Range<usize>>,
}

impl TornWrite {
    /// Bytes of the write that reached the disk.
    pub fn kept_bytes(&self) -> usize {
        self.kept.iter().map(|r| r.len()).sum()
    }
}

/// What `power_loss` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLoss {
    pub model: CrashModel,
    /// Writes that reached the disk in part.
    pub torn: Vec<TornWrite>,
    /// Pending writes and `set_len`s of surviving files: kept (torn ones
    /// included) and lost.
    pub kept_writes: usize,
    pub lost_writes: usize,
    /// Pending namespace operations kept and lost (as "create NAME",
    /// "remove NAME", "rename OLD -> NEW").
    pub kept_names: Vec<String>,
    pub lost_names: Vec<String>,
    /// Names the running system had that are gone.
    pub vanished: Vec<PathBuf>,
    /// Names the running system did not have that are back (a removal
    /// lost, or the old name of a lost rename).
    pub revived: Vec<PathBuf>,
}

/// How likely the `Strong` model keeps and tears things in one power loss.
#[derive(Debug, Clone, Copy)]
struct Mix {
    /// Chance (in quarters) to keep a pending namespace operation.
    names: u64,
    /// Chance (in quarters) to keep a pending write or `set_len`.
    writes: u64,
    /// Chance (in eighths) to tear a kept write.
    tears: u64,
}

impl Mix {
    fn draw(rng: &mut Rng) -> Mix {
        Mix {
            names: rng.below(5),
            writes: rng.below(5),
            tears: [0, 1, 4, 8][rng.below(4) as usize],
        }
    }
}

/// Sector size for tearing: a disk writes 512-byte sectors, each whole or
/// not at all.
const SECTOR: u64 = 512;

/// The first `keep` bytes of a write, as kept ranges.
fn prefix(keep: usize) -> Vec<std::ops::Range<usize>> {
    std::iter::once(0..keep).filter(|r| !r.is_empty()).collect()
}

/// Which parts of a write of `len` bytes at `off` reach the disk when it is
/// torn: a byte prefix, or a subset of its sectors.
fn tear(rng: &mut Rng, off: u64, len: usize) -> Vec<std::ops::Range<usize>> {
    if rng.chance(1, 2) {
        let keep = rng.below(len as u64 + 1) as usize;
        return prefix(keep);
    }
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut at = 0usize;
    while at < len {
        let abs = off + at as u64;
        let next = ((abs / SECTOR + 1) * SECTOR - off).min(len as u64) as usize;
        if rng.chance(1, 2) {
            match kept.last_mut() {
                Some(r) if r.end == at => r.end = next,
                _ => kept.push(at..next),
            }
        }
        at = next;
    }
    kept
}

fn write_into(content: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    if content.len() < off + data.len() {
        content.resize(off + data.len(), 0);
    }
    content[off..off + data.len()].copy_from_slice(data);
}

impl CrashVfs {
    /// A crash-simulating file system for the files under `root` (which
    /// must exist). Files outside `root` pass through untouched.
    pub fn new(root: &Path) -> Arc<CrashVfs> {
        Arc::new(CrashVfs {
            root: norm(root),
            os: OsVfs,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed) + 1,
            st: Arc::new(Mutex::new(CrashState::default())),
        })
    }

    /// Every operation after `n` more mutating operations fails with EIO
    /// (the machine stops there).
    pub fn crash_after(&self, n: u64) {
        let mut s = lock(&self.st);
        s.crash_after = Some(s.mutations + n);
    }

    /// Mutating operations so far (write, set_len, sync, sync_dir, create,
    /// remove, rename): the unit `crash_after` counts in.
    pub fn mutations(&self) -> u64 {
        lock(&self.st).mutations
    }

    /// File and directory syncs so far.
    pub fn syncs(&self) -> u64 {
        lock(&self.st).syncs
    }

    /// Power losses so far.
    pub fn power_losses(&self) -> u64 {
        lock(&self.st).power_losses
    }

    /// True once `crash_after` stopped the machine.
    pub fn is_stopped(&self) -> bool {
        let s = lock(&self.st);
        s.crash_after.is_some_and(|c| s.mutations >= c)
    }

    fn modelled(&self, p: &Path) -> bool {
        p.starts_with(&self.root) && p != self.root
    }

    /// The inode behind `p`, adopting a file the model has not seen yet.
    fn adopt(&self, s: &mut CrashState, p: &Path) -> Option<Ino> {
        s.adopt(p)
    }

    /// `meta` as the model reports it: a modelled file's identity is its
    /// inode in the model, on this instance's device of this boot.
    fn model_meta(&self, p: &Path, real: FileMeta) -> FileMeta {
        let s = lock(&self.st);
        match s.live.get(&norm(p)) {
            Some(&ino) if self.modelled(&norm(p)) => FileMeta {
                dev: model_dev(self.instance, s.power_losses),
                ino,
                ..real
            },
            _ => real,
        }
    }

    /// Simulates a power loss with the strong model: rewrites every
    /// modelled file under the root to an outcome drawn from `seed` (see
    /// the module documentation). The environment must have been dropped.
    /// The model starts afresh from the result.
    pub fn power_loss(&self, seed: u64) -> Result<PowerLoss> {
        self.power_loss_with(seed, CrashModel::Strong)
    }

    /// A power loss that tears nothing and keeps nothing unsynced (a test
    /// that needs to know exactly what is durable).
    pub fn power_loss_untorn(&self) -> Result<PowerLoss> {
        self.power_loss_with(0, CrashModel::Untorn)
    }

    /// A power loss under `model`, its choices drawn from `seed`.
    pub fn power_loss_with(&self, seed: u64, model: CrashModel) -> Result<PowerLoss> {
        let mut s = lock(&self.st);
        let mut rng = Rng::new(seed);
        let mut report = PowerLoss {
            model,
            ..PowerLoss::default()
        };
        let mix = match model {
            CrashModel::Strong => Some(Mix::draw(&mut rng)),
            _ => None,
        };
        let names = surviving_names(&s, mix, &mut rng, &mut report);
        let reachable: BTreeSet<Ino> = names.values().copied().collect();
        let mut contents = match mix {
            Some(mix) => strong_contents(&s, &names, &reachable, mix, &mut rng, &mut report),
            None => durable_contents(&s, &reachable),
        };
        if model == CrashModel::LastWriteTorn {
            tear_last_write(&s, &names, &mut contents, &mut rng, &mut report);
        }
        rewrite(&s, &names, &contents, &mut report)?;
        // The surviving state is the new baseline.
        s.inodes.retain(|i, _| reachable.contains(i));
        for (i, n) in s.inodes.iter_mut() {
            n.durable = contents.remove(i).unwrap_or_default();
            n.pending.clear();
        }
        s.live = names.clone();
        s.durable = names;
        s.names_pending.clear();
        // A reboot: every lock goes with the processes that held them.
        s.locks.clear();
        s.crash_after = None;
        s.power_losses += 1;
        Ok(report)
    }
}

/// The names after a power loss: the durable ones, plus the pending
/// namespace operations the strong model keeps.
fn surviving_names(
    s: &CrashState,
    mix: Option<Mix>,
    rng: &mut Rng,
    report: &mut PowerLoss,
) -> BTreeMap<PathBuf, Ino> {
    let mut names = s.durable.clone();
    for (_, _, op) in &s.names_pending {
        if mix.is_some_and(|m| rng.chance(m.names, 4)) {
            op.apply(&mut names);
            report.kept_names.push(op.describe());
        } else {
            report.lost_names.push(op.describe());
        }
    }
    names
}

fn durable_contents(s: &CrashState, reachable: &BTreeSet<Ino>) -> BTreeMap<Ino, Vec<u8>> {
    reachable
        .iter()
        .filter_map(|i| s.inodes.get(i).map(|n| (*i, n.durable.clone())))
        .collect()
}

/// A name `ino` survives under, for reports.
fn name_of(names: &BTreeMap<PathBuf, Ino>, ino: Ino) -> PathBuf {
    names
        .iter()
        .find(|(_, i)| **i == ino)
        .map(|(p, _)| p.clone())
        .unwrap_or_default()
}

/// The strong model's contents: each surviving inode's durable content
/// with a random subset of its pending operations applied in order, kept
/// writes torn at random.
fn strong_contents(
    s: &CrashState,
    names: &BTreeMap<PathBuf, Ino>,
    reachable: &BTreeSet<Ino>,
    mix: Mix,
    rng: &mut Rng,
    report: &mut PowerLoss,
) -> BTreeMap<Ino, Vec<u8>> {
    let mut out = BTreeMap::new();
    for &ino in reachable {
        let Some(n) = s.inodes.get(&ino) else {
            continue;
        };
        let mut c = n.durable.clone();
        for (_, op) in &n.pending {
            if !rng.chance(mix.writes, 4) {
                report.lost_writes += 1;
                continue;
            }
            report.kept_writes += 1;
            match op {
                DataOp::SetLen(len) => c.resize(*len as usize, 0),
                DataOp::Write { off, data } if rng.chance(mix.tears, 8) => {
                    let kept = tear(rng, *off, data.len());
                    for r in &kept {
                        write_into(&mut c, off + r.start as u64, &data[r.clone()]);
                    }
                    report.torn.push(TornWrite {
                        path: name_of(names, ino),
                        offset: *off,
                        len: data.len(),
                        kept,
                    });
                }
                DataOp::Write { off, data } => write_into(&mut c, *off, data),
            }
        }
        out.insert(ino, c);
    }
    out
}

/// The narrow model's one torn write: a prefix of the last pending write
/// over all surviving inodes.
fn tear_last_write(
    s: &CrashState,
    names: &BTreeMap<PathBuf, Ino>,
    contents: &mut BTreeMap<Ino, Vec<u8>>,
    rng: &mut Rng,
    report: &mut PowerLoss,
) {
    let last = contents
        .keys()
        .filter_map(|i| s.inodes.get(i).map(|n| (i, n)))
        .flat_map(|(i, n)| n.pending.iter().map(move |(seq, op)| (*seq, *i, op)))
        .filter(|(_, _, op)| matches!(op, DataOp::Write { .. }))
        .max_by_key(|(seq, _, _)| *seq);
    let Some((_, ino, DataOp::Write { off, data })) = last else {
        return;
    };
    let keep = (rng.next() % (data.len() as u64 + 1)) as usize;
    if let Some(c) = contents.get_mut(&ino) {
        write_into(c, *off, &data[..keep]);
    }
    report.torn.push(TornWrite {
        path: name_of(names, ino),
        offset: *off,
        len: data.len(),
        kept: prefix(keep),
    });
}

/// Makes the directory hold exactly `names` with `contents`.
fn rewrite(
    s: &CrashState,
    names: &BTreeMap<PathBuf, Ino>,
    contents: &BTreeMap<Ino, Vec<u8>>,
    report: &mut PowerLoss,
) -> Result<()> {
    let known: BTreeSet<&PathBuf> = s
        .live
        .keys()
        .chain(s.durable.keys())
        .chain(names.keys())
        .collect();
    for p in known {
        match names.get(p) {
            Some(i) => {
                if !s.live.contains_key(p) {
                    report.revived.push(p.clone());
                }
                let c = contents.get(i).map(|v| v.as_slice()).unwrap_or(&[]);
                // A fresh file per name: writing through a real hard link
                // would change the other names of the inode too.
                let _ = std::fs::remove_file(p);
                std::fs::write(p, c).map_err(|e| Error::io(p, "write", e))?;
            }
            None => {
                if s.live.contains_key(p) {
                    report.vanished.push(p.clone());
                }
                match std::fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(p, "remove", e)),
                }
            }
        }
    }
    Ok(())
}

struct CrashFile {
    inner: Box<dyn VFile>,
    /// `None`: a file outside the model (passes through), or one under the
    /// root not adopted yet (only read so far).
    ino: Option<Ino>,
    /// Under the root (adopted when it is locked).
    modelled: bool,
    /// This open file's number (what holds its locks).
    handle: u64,
    /// Power losses when it was opened: once another one happens, the
    /// process that opened it is gone and the handle is dead.
    boot: u64,
    /// The device number modelled files report during `boot`.
    dev: u64,
    st: Arc<Mutex<CrashState>>,
}

impl CrashFile {
    fn gate(&self, op: &'static str, mutating: bool) -> Result<()> {
        let mut s = lock(&self.st);
        self.alive(&s, op)?;
        s.gate(self.inner.path(), op, mutating)
    }

    /// Fails on a handle of a previous boot.
    fn alive(&self, s: &CrashState, op: &'static str) -> Result<()> {
        if s.power_losses != self.boot {
            return Err(injected(self.inner.path(), op, EIO));
        }
        Ok(())
    }

    /// The model's inode of this file, adopting it if `adopt` (a file only
    /// read so far has none yet).
    fn model_ino(&self, s: &mut CrashState, adopt: bool) -> Option<Ino> {
        if !self.modelled {
            return None;
        }
        let p = norm(self.inner.path());
        match self.ino.or_else(|| s.live.get(&p).copied()) {
            Some(i) => Some(i),
            None if adopt => s.adopt(&p),
            None => None,
        }
    }
}

impl Drop for CrashFile {
    fn drop(&mut self) {
        // Closing a file releases its lock (a dead handle holds none).
        let mut s = lock(&self.st);
        if s.power_losses == self.boot {
            s.unlock(self.handle);
        }
    }
}

impl VFile for CrashFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.gate("read", false)?;
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        // The real write happens under the model's lock, so the pending
        // list is in the order the writes reached the file.
        let mut s = lock(&self.st);
        self.alive(&s, "write")?;
        s.gate(self.inner.path(), "write", true)?;
        self.inner.write_at(buf, off)?;
        if let Some(ino) = self.ino {
            let data = buf.to_vec();
            s.data_op(ino, DataOp::Write { off, data });
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.gate("stat", false)?;
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut s = lock(&self.st);
        self.alive(&s, "truncate")?;
        s.gate(self.inner.path(), "truncate", true)?;
        self.inner.set_len(len)?;
        if let Some(ino) = self.ino {
            s.data_op(ino, DataOp::SetLen(len));
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        // The real fsync is not needed: the model records what it promises.
        // The content is read under the model's lock: two threads syncing
        // one file at once (a group-commit leader and a log rotation) used
        // to be able to finish in the other order, so the sync that read
        // the file first stored its older content last and "un-synced"
        // records the engine had been promised durable. A real fsync never
        // makes data less durable; under the lock, the later sync reads
        // the later content.
        let mut s = lock(&self.st);
        self.alive(&s, "fsync")?;
        s.gate(self.inner.path(), "fsync", true)?;
        let Some(ino) = self.ino else {
            drop(s);
            return self.inner.sync();
        };
        let len = self.inner.len()?;
        let mut content = vec![0u8; len as usize];
        let n = self.inner.read_at(&mut content, 0)?;
        content.truncate(n);
        s.syncs += 1;
        if let Some(node) = s.inodes.get_mut(&ino) {
            node.durable = content;
            node.pending.clear();
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        let mut s = lock(&self.st);
        self.alive(&s, "lock")?;
        s.gate(self.inner.path(), "lock", false)?;
        match self.model_ino(&mut s, true) {
            Some(ino) => Ok(s.try_lock(ino, self.handle, kind)),
            None => {
                drop(s);
                self.inner.try_lock(kind)
            }
        }
    }

    fn unlock(&self) -> Result<()> {
        let mut s = lock(&self.st);
        self.alive(&s, "unlock")?;
        if self.model_ino(&mut s, false).is_some() {
            s.unlock(self.handle);
            return Ok(());
        }
        drop(s);
        self.inner.unlock()
    }

    fn meta(&self) -> Result<FileMeta> {
        let mut s = lock(&self.st);
        self.alive(&s, "stat")?;
        s.gate(self.inner.path(), "stat", false)?;
        let ino = self.model_ino(&mut s, false);
        drop(s);
        let real = self.inner.meta()?;
        Ok(match ino {
            Some(ino) => FileMeta {
                dev: self.dev,
                ino,
                ..real
            },
            None => real,
        })
    }

    fn set_mode(&self, mode: u32) -> Result<()> {
        self.gate("chmod", false)?;
        self.inner.set_mode(mode)
    }

    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        self.gate("utimes", false)?;
        self.inner.set_times(accessed, modified)
    }
}

impl Vfs for CrashVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        let p = norm(path);
        let creating = matches!(mode, OpenMode::Create(_) | OpenMode::CreateNew(_));
        let mut s = lock(&self.st);
        let existed = self.os.exists(&p);
        s.gate(&p, "open", creating && !existed)?;
        let inner = self.os.open(path, mode)?;
        let ino = if self.modelled(&p) {
            match s.live.get(&p) {
                Some(&i) => Some(i),
                None if !existed => {
                    let i = s.new_inode(Vec::new());
                    s.live.insert(p.clone(), i);
                    s.name_op(parent(&p), NameOp::Bind(p.clone(), i));
                    Some(i)
                }
                None if mode != OpenMode::Read => self.adopt(&mut s, &p),
                None => None,
            }
        } else {
            None
        };
        s.handles += 1;
        Ok(Box::new(CrashFile {
            inner,
            ino,
            modelled: self.modelled(&p),
            handle: s.handles,
            boot: s.power_losses,
            dev: model_dev(self.instance, s.power_losses),
            st: self.st.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let p = norm(path);
        let mut s = lock(&self.st);
        s.gate(&p, "remove", true)?;
        if self.modelled(&p) {
            self.adopt(&mut s, &p);
            self.os.remove(&p)?;
            if s.live.remove(&p).is_some() {
                s.name_op(parent(&p), NameOp::Unbind(p.clone()));
            }
            return Ok(());
        }
        self.os.remove(&p)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (norm(from), norm(to));
        let mut s = lock(&self.st);
        s.gate(&f, "rename", true)?;
        if self.modelled(&f) && self.modelled(&t) {
            self.adopt(&mut s, &f);
            self.adopt(&mut s, &t);
            self.os.rename(&f, &t)?;
            if let Some(i) = s.live.remove(&f) {
                s.live.insert(t.clone(), i);
                let (fd, td) = (parent(&f), parent(&t));
                if fd == td {
                    s.name_op(fd, NameOp::Rename(f, t, i));
                } else {
                    s.name_op(fd, NameOp::Unbind(f));
                    s.name_op(td, NameOp::Bind(t, i));
                }
            }
            return Ok(());
        }
        self.os.rename(&f, &t)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = norm(dir);
        let mut s = lock(&self.st);
        s.gate(&d, "fsync directory", true)?;
        if !(self.modelled(&d) || d == self.root) {
            drop(s);
            return self.os.sync_dir(&d);
        }
        s.syncs += 1;
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.names_pending)
            .into_iter()
            .partition(|(_, in_dir, _)| *in_dir == d);
        for (_, _, op) in now {
            op.apply(&mut s.durable);
        }
        s.names_pending = later;
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        lock(&self.st).gate(dir, "read directory", false)?;
        self.os.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.os.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.os.is_dir(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        lock(&self.st).gate(path, "mkdir", true)?;
        self.os.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let d = norm(path);
        let mut s = lock(&self.st);
        s.gate(&d, "remove directory", true)?;
        self.os.remove_dir(&d)?;
        if self.modelled(&d) {
            // Durable at once, and with it the unlinks that emptied it.
            s.durable.retain(|p, _| !p.starts_with(&d));
            s.live.retain(|p, _| !p.starts_with(&d));
            s.names_pending.retain(|(_, dir, _)| !dir.starts_with(&d));
        }
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (norm(from), norm(to));
        let mut s = lock(&self.st);
        s.gate(&t, "link", true)?;
        self.os.hard_link(&f, &t)?;
        if self.modelled(&f) && self.modelled(&t) {
            if let Some(i) = self.adopt(&mut s, &f) {
                s.live.insert(t.clone(), i);
                s.name_op(parent(&t), NameOp::Bind(t, i));
            }
        }
        Ok(())
    }

    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        lock(&self.st).gate(path, "stat", false)?;
        let real = self.os.metadata(path)?;
        Ok(self.model_meta(path, real))
    }

    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        lock(&self.st).gate(path, "stat", false)?;
        let real = self.os.symlink_metadata(path)?;
        Ok(self.model_meta(path, real))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faulty::{is_errno, FaultyVfs, Op, ENOSPC};

    fn read(p: &Path) -> Option<Vec<u8>> {
        std::fs::read(p).ok()
    }

    #[test]
    fn power_loss_keeps_synced_data_and_durable_names_only() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let vfs = CrashVfs::new(root);
        let a = root.join("a");
        let f = vfs.open(&a, OpenMode::CreateNew(0o600)).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        vfs.sync_dir(root).unwrap();
        f.write_at(b"HELLO world", 0).unwrap(); // unsynced, last write: torn
        let b = root.join("b");
        let g = vfs.open(&b, OpenMode::CreateNew(0o600)).unwrap();
        g.write_at(b"x", 0).unwrap();
        g.sync().unwrap(); // synced, but its name never was
        drop((f, g));
        let r = vfs.power_loss_with(7, CrashModel::LastWriteTorn).unwrap();
        assert_eq!(r.vanished, vec![b.clone()]);
        assert!(read(&b).is_none());
        let got = read(&a).unwrap();
        let t = &r.torn[0];
        assert_eq!((t.offset, t.len), (0, 11));
        let keep = t.kept_bytes();
        let mut want = b"HELLO world"[..keep].to_vec();
        if keep < 5 {
            want.extend_from_slice(&b"hello"[keep..]);
        }
        assert_eq!(got, want);

        // A removal without a directory sync comes back; with one it stays.
        vfs.remove(&a).unwrap();
        assert!(read(&a).is_none());
        let r = vfs.power_loss_with(1, CrashModel::LastWriteTorn).unwrap();
        assert_eq!(r.revived, vec![a.clone()]);
        assert_eq!(read(&a).unwrap(), got);
        vfs.remove(&a).unwrap();
        vfs.sync_dir(root).unwrap();
        vfs.power_loss_with(2, CrashModel::LastWriteTorn).unwrap();
        assert!(read(&a).is_none());
    }

    #[test]
    fn only_the_last_unsynced_write_is_torn_and_renames_need_a_dir_sync() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("old"), b"0123456789").unwrap();
        let vfs = CrashVfs::new(root);
        let f = vfs.open(&root.join("old"), OpenMode::ReadWrite).unwrap();
        f.write_at(b"ab", 0).unwrap(); // lost: not the last
        f.write_at(b"cd", 4).unwrap(); // last: torn
        drop(f);
        vfs.rename(&root.join("old"), &root.join("new")).unwrap();
        let r = vfs.power_loss_with(3, CrashModel::LastWriteTorn).unwrap();
        assert!(read(&root.join("new")).is_none(), "rename not durable");
        let got = read(&root.join("old")).unwrap();
        let keep = r.torn[0].kept_bytes();
        let mut want = b"0123456789".to_vec();
        want[4..4 + keep].copy_from_slice(&b"cd"[..keep]);
        assert_eq!(got, want);
    }

    #[test]
    fn crash_after_stops_every_later_operation() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let vfs = CrashVfs::new(root);
        let f = vfs
            .open(&root.join("a"), OpenMode::CreateNew(0o600))
            .unwrap();
        vfs.crash_after(2);
        f.write_at(b"1", 0).unwrap();
        f.sync().unwrap();
        assert!(vfs.is_stopped());
        let e = f.write_at(b"2", 1).unwrap_err();
        assert!(is_errno(&e, EIO));
        assert!(f.read_at(&mut [0u8; 1], 0).is_err());
        drop(f);
        vfs.power_loss_untorn().unwrap();
        // The name was never made durable.
        assert!(read(&root.join("a")).is_none());
    }

    /// What the directory holds: name -> content.
    type Listing = BTreeMap<String, Vec<u8>>;

    fn listing(root: &Path) -> Listing {
        std::fs::read_dir(root)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect()
    }

    /// Runs `scenario` on a fresh directory, loses power under the strong
    /// model with `seed`, and returns what survived.
    fn strong_outcome(seed: u64, scenario: &dyn Fn(&CrashVfs, &Path)) -> (Listing, PowerLoss) {
        let d = tempfile::tempdir().unwrap();
        let vfs = CrashVfs::new(d.path());
        scenario(&vfs, d.path());
        let r = vfs.power_loss(seed).unwrap();
        (listing(d.path()), r)
    }

    /// Every distinct outcome of `scenario` over many seeds.
    fn outcomes(scenario: &dyn Fn(&CrashVfs, &Path)) -> BTreeSet<Listing> {
        (0..400).map(|s| strong_outcome(s, scenario).0).collect()
    }

    fn create(vfs: &CrashVfs, p: &Path, data: &[u8], sync: bool) {
        let f = vfs.open(p, OpenMode::CreateNew(0o600)).unwrap();
        f.write_at(data, 0).unwrap();
        if sync {
            f.sync().unwrap();
        }
    }

    fn with(files: &[(&str, &[u8])]) -> Listing {
        files
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_vec()))
            .collect()
    }

    #[test]
    fn strong_a_durable_name_may_hold_none_or_part_of_its_unsynced_data() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8 + 1).collect();
        let got = outcomes(&|vfs, root| {
            let f = vfs
                .open(&root.join("log"), OpenMode::CreateNew(0o600))
                .unwrap();
            vfs.sync_dir(root).unwrap(); // the name is durable, the data not
            for (i, chunk) in data.chunks(500).enumerate() {
                f.write_at(chunk, i as u64 * 500).unwrap();
            }
        });
        let mut empty = false;
        let mut prefix = false;
        let mut holes = false;
        for l in &got {
            let c = &l["log"]; // the name always survives
            assert!(c.len() <= data.len());
            for (i, b) in c.iter().enumerate() {
                assert!(*b == 0 || *b == data[i], "byte {i}: never written");
            }
            empty |= c.is_empty();
            let kept = c.iter().take_while(|b| **b != 0).count();
            prefix |= kept > 0 && kept < data.len() && c.len() == kept;
            holes |= c.contains(&0) && c.last().is_some_and(|b| *b != 0);
        }
        assert!(empty && prefix && holes, "{empty} {prefix} {holes}");
        assert!(got.contains(&with(&[("log", &data)])), "all of it");
    }

    #[test]
    fn strong_creations_renames_and_removals_survive_without_a_dir_sync_in_any_combination() {
        // The atomic-replace pattern without its directory fsync: the
        // rename may survive or not, the new name may point at the data.
        let got = outcomes(&|vfs, root| {
            create(vfs, &root.join("tmp"), b"new", true);
            vfs.rename(&root.join("tmp"), &root.join("final")).unwrap();
        });
        let want = [
            with(&[]),
            with(&[("tmp", b"new")]),
            with(&[("final", b"new")]),
        ];
        assert_eq!(got, want.into_iter().collect());

        // Two unlinks in one directory: either one may survive.
        let got = outcomes(&|vfs, root| {
            create(vfs, &root.join("a"), b"A", true);
            create(vfs, &root.join("b"), b"B", true);
            vfs.sync_dir(root).unwrap();
            vfs.remove(&root.join("a")).unwrap();
            vfs.remove(&root.join("b")).unwrap();
        });
        let want = [
            with(&[]),
            with(&[("a", b"A")]),
            with(&[("b", b"B")]),
            with(&[("a", b"A"), ("b", b"B")]),
        ];
        assert_eq!(got, want.into_iter().collect());

        // A rename over an existing name: the old file or the new, never
        // a mix, and a synced, durable file never loses its data.
        let got = outcomes(&|vfs, root| {
            create(vfs, &root.join("x"), b"old", true);
            vfs.sync_dir(root).unwrap();
            create(vfs, &root.join("x.tmp"), b"new", true);
            vfs.rename(&root.join("x.tmp"), &root.join("x")).unwrap();
        });
        let want = [
            with(&[("x", b"old")]),
            with(&[("x", b"new")]),
            with(&[("x", b"old"), ("x.tmp", b"new")]),
        ];
        assert_eq!(got, want.into_iter().collect());
    }

    #[test]
    fn strong_a_later_write_may_survive_an_earlier_lost_one() {
        let got = outcomes(&|vfs, root| {
            create(vfs, &root.join("f"), b"..........", true);
            vfs.sync_dir(root).unwrap();
            let f = vfs.open(&root.join("f"), OpenMode::ReadWrite).unwrap();
            f.write_at(b"1", 1).unwrap();
            f.write_at(b"2", 2).unwrap();
        });
        assert!(got.contains(&with(&[("f", b"..2.......")])), "{got:?}");
        assert!(got.contains(&with(&[("f", b".1........")])));
        assert!(got.contains(&with(&[("f", b".12.......")])));
        assert!(got.contains(&with(&[("f", b"..........")])));
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn strong_tears_more_than_one_page_and_replays_from_its_seed() {
        let pages = |vfs: &CrashVfs, root: &Path| {
            create(vfs, &root.join("db"), &[0u8; 8192], true);
            vfs.sync_dir(root).unwrap();
            let f = vfs.open(&root.join("db"), OpenMode::ReadWrite).unwrap();
            for p in 0..8u8 {
                f.write_at(&[p + 1; 1024], u64::from(p) * 1024).unwrap();
            }
            f.set_len(9000).unwrap();
        };
        let mut most = 0;
        let mut sectors = false;
        for seed in 0..200 {
            let (l, r) = strong_outcome(seed, &pages);
            let (l2, r2) = strong_outcome(seed, &pages);
            let torn = |r: &PowerLoss| -> Vec<_> {
                r.torn.iter().map(|t| (t.offset, t.kept.clone())).collect()
            };
            assert!(
                l == l2 && torn(&r) == torn(&r2),
                "seed {seed} replays differently"
            );
            most = most.max(r.torn.len());
            // A prefix tear always starts at the write's first byte.
            sectors |= r
                .torn
                .iter()
                .any(|t| t.kept.first().is_some_and(|k| k.start > 0));
            assert_eq!(r.kept_writes + r.lost_writes, 9);
        }
        assert!(most >= 2, "at most {most} torn writes at once");
        assert!(sectors, "no write torn at sector boundaries");
    }

    #[test]
    fn strong_never_loses_what_was_synced() {
        for seed in 0..300 {
            let (l, _) = strong_outcome(seed, &|vfs, root| {
                create(vfs, &root.join("kept"), b"durable", true);
                vfs.sync_dir(root).unwrap();
                create(vfs, &root.join("other"), b"x", false);
                let f = vfs.open(&root.join("kept"), OpenMode::ReadWrite).unwrap();
                f.write_at(b"DURABLE!", 0).unwrap();
                f.sync().unwrap();
                f.write_at(b"later", 20).unwrap();
                vfs.remove(&root.join("other")).unwrap();
            });
            let c = &l["kept"];
            assert_eq!(&c[..8], b"DURABLE!", "seed {seed}");
            assert!(c.len() == 8 || c.len() <= 25, "seed {seed}");
        }
    }

    #[test]
    fn the_same_crash_vfs_recovers_and_loses_power_again() {
        // After a power loss the survivors are durable: a second power loss
        // right away changes nothing.
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let vfs = CrashVfs::new(root);
        create(&vfs, &root.join("a"), b"aaaa", false);
        create(&vfs, &root.join("b"), b"bbbb", false);
        vfs.power_loss(11).unwrap();
        let first = listing(root);
        let r = vfs.power_loss(12).unwrap();
        assert_eq!(listing(root), first);
        assert_eq!((r.kept_writes, r.lost_writes), (0, 0));
        assert!(r.kept_names.is_empty() && r.lost_names.is_empty());
        assert_eq!(vfs.power_losses(), 2);
    }

    #[test]
    fn faulty_vfs_fails_the_chosen_operations() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let v = FaultyVfs::os();
        v.set_filter(|p| p.file_name().is_some_and(|n| n == "f"));
        v.fail_nth(Op::Sync, 2);
        v.short_write_nth(3, 2);
        let f = v.open(&p, OpenMode::Create(0o600)).unwrap();
        f.write_at(b"aaaa", 0).unwrap();
        f.sync().unwrap();
        assert!(is_errno(&f.sync().unwrap_err(), EIO));
        f.sync().unwrap();
        f.write_at(b"bbbb", 4).unwrap();
        assert!(is_errno(&f.write_at(b"cccc", 8).unwrap_err(), EIO));
        assert_eq!(std::fs::read(&p).unwrap(), b"aaaabbbbcc");
        v.enospc_after(12);
        assert!(is_errno(&f.write_at(b"dddd", 10).unwrap_err(), ENOSPC));
        assert!(is_errno(&f.write_at(b"e", 0).unwrap_err(), ENOSPC));
        assert_eq!(std::fs::read(&p).unwrap(), b"aaaabbbbccdd");
        let c = v.counts();
        assert_eq!((c.writes, c.syncs, c.injected), (5, 3, 4));
        v.heal();
        v.fail_from(Op::Read, c.reads + 2);
        let mut b = [0u8; 1];
        f.read_at(&mut b, 0).unwrap();
        assert!(f.read_at(&mut b, 0).is_err());
        assert!(f.read_at(&mut b, 0).is_err());
    }
}
