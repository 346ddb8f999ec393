//! Test infrastructure: file systems that misbehave on purpose, plugged in
//! through `EnvOptions::vfs` (no global fail points, so tests stay
//! parallel). Nothing in the engine uses this module; it is public so the
//! integration tests (`tests/powerloss.rs`, `tests/crash_matrix.rs`) and
//! the tools' tests can build on it.
//!
//! * [`FaultyVfs`] wraps another `Vfs` and fails chosen operations: the Nth
//!   read, write, fsync, ... (or every one from the Nth on) with `EIO`,
//!   writes past a byte budget with `ENOSPC` (the part that fits is
//!   written first: a short write), or the Nth write after writing only a
//!   prefix of it. Counters tell a test how many operations a workload does,
//!   so it can aim at each of them.
//! * [`CrashVfs`] wraps `OsVfs` on a real directory and remembers what a
//!   power loss would keep. [`CrashVfs::power_loss`] then rewrites the
//!   directory to exactly that, and the environment can be reopened with
//!   the plain `OsVfs`.
//!
//! # The power-loss model of `CrashVfs`
//!
//! Files are *inodes* with names, as in POSIX. For every inode the model
//! keeps its *durable content*; for every directory under the root it keeps
//! the *durable names* (name -> inode).
//!
//! * `VFile::sync` (fdatasync) makes the inode's whole current content
//!   (size included) durable. The real fsync is not called: nothing real is
//!   ever lost, the model observes the sync instead.
//! * `Vfs::sync_dir(dir)` makes the current names of `dir` durable: names
//!   created or renamed into it since the last sync of `dir` survive, names
//!   removed or renamed away are gone.
//! * A write, a `set_len`, a creation, a removal or a rename that was not
//!   followed by the matching sync is lost at a power loss, with one
//!   exception: the *last* write that was not synced yet (the highest write
//!   sequence number over all inodes still reachable through a durable
//!   name) is *torn*: a prefix of it, of random length from 0 to all of
//!   it, reaches the disk over the durable content. Page writes are not
//!   atomic; log appends are cut anywhere.
//! * An inode no durable name points to disappears. A file created and
//!   synced but whose name was never made durable is lost with its data; a
//!   file removed without a directory sync comes back with its durable
//!   content.
//! * Directories made with `create_dir` are durable at once (the engine
//!   creates none while it runs; tests make them first), and so is the
//!   removal of an empty directory with `remove_dir`: names under it that
//!   were removed without a directory sync go with it (a journaling file
//!   system commits the unlinks before the rmdir that needed them).
//! * A file the model has not seen yet (it existed before the `CrashVfs`
//!   was made, or was written outside it) is taken as durable, as found,
//!   the first time it is opened for writing, removed or renamed through
//!   the `CrashVfs`. Files never touched that way are left alone by a power
//!   loss: this is how the owner lock (`__db.lock`) and the region
//!   (`__db.001`), which use `std::fs` by design, keep working.
//! * [`CrashVfs::crash_after`] stops the machine: after that many
//!   *mutating* operations (write, set_len, sync, sync_dir, create,
//!   remove, rename) every further operation fails with `EIO`, so a
//!   workload stops at an exact point, possibly inside a commit or a
//!   checkpoint. Then drop the environment and call `power_loss`.
//!
//! Handles opened before a power loss must not be used after it: drop the
//! environment first. Files are read whole at each sync, so keep them
//! small (tests use small `lg_max` and few pages).

use crate::error::{Error, Result};
use crate::vfs::{OpenMode, OsVfs, SharedVfs, VFile, Vfs};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// errno of an I/O error (Linux).
pub const EIO: i32 = 5;
/// errno of a full disk (Linux).
pub const ENOSPC: i32 = 28;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn injected(path: &Path, op: &'static str, errno: i32) -> Error {
    Error::io(path, op, io::Error::from_raw_os_error(errno))
}

/// True if `e` is an I/O error with this errno (an injected fault).
pub fn is_errno(e: &Error, errno: i32) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(errno))
}

// ---------------------------------------------------------------------------
// FaultyVfs
// ---------------------------------------------------------------------------

/// The operations `FaultyVfs` counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Read,
    Write,
    /// `VFile::sync`.
    Sync,
    SyncDir,
    Open,
    Remove,
    Rename,
    SetLen,
}

/// Which occurrences of an operation fail (1-based, counted over the
/// operations the filter admits since the `FaultyVfs` was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Only the Nth.
    Nth(u64),
    /// The Nth and every later one.
    From(u64),
}

impl Trigger {
    fn hits(self, n: u64) -> bool {
        match self {
            Trigger::Nth(k) => n == k,
            Trigger::From(k) => n >= k,
        }
    }
}

/// Operation counters of a `FaultyVfs`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    pub reads: u64,
    pub writes: u64,
    pub syncs: u64,
    pub sync_dirs: u64,
    pub opens: u64,
    pub removes: u64,
    pub renames: u64,
    pub set_lens: u64,
    /// Bytes written (short writes count what was written).
    pub bytes_written: u64,
    /// Faults injected so far.
    pub injected: u64,
}

impl OpCounts {
    pub fn get(&self, op: Op) -> u64 {
        match op {
            Op::Read => self.reads,
            Op::Write => self.writes,
            Op::Sync => self.syncs,
            Op::SyncDir => self.sync_dirs,
            Op::Open => self.opens,
            Op::Remove => self.removes,
            Op::Rename => self.renames,
            Op::SetLen => self.set_lens,
        }
    }

    fn bump(&mut self, op: Op) -> u64 {
        let c = match op {
            Op::Read => &mut self.reads,
            Op::Write => &mut self.writes,
            Op::Sync => &mut self.syncs,
            Op::SyncDir => &mut self.sync_dirs,
            Op::Open => &mut self.opens,
            Op::Remove => &mut self.removes,
            Op::Rename => &mut self.renames,
            Op::SetLen => &mut self.set_lens,
        };
        *c += 1;
        *c
    }
}

/// Which paths a `FaultyVfs` counts and fails (for example only log files).
pub type PathFilter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

#[derive(Default)]
struct FaultState {
    counts: OpCounts,
    rules: Vec<(Op, Trigger)>,
    /// The Nth write writes only this many bytes, then fails with EIO.
    short: Option<(u64, usize)>,
    /// Writes fail with ENOSPC once this many bytes have been written.
    budget: Option<u64>,
    filter: Option<PathFilter>,
}

enum WriteFate {
    Full,
    Fail(i32),
    Short(usize, i32),
}

impl FaultState {
    fn admits(&self, path: &Path) -> bool {
        self.filter.as_ref().is_none_or(|f| f(path))
    }

    /// Counts the operation; `Some(errno)` if it is to fail.
    fn fate(&mut self, op: Op, path: &Path) -> Option<i32> {
        if !self.admits(path) {
            return None;
        }
        let n = self.counts.bump(op);
        if self.rules.iter().any(|(o, t)| *o == op && t.hits(n)) {
            self.counts.injected += 1;
            return Some(EIO);
        }
        None
    }

    fn write_fate(&mut self, path: &Path, len: usize) -> WriteFate {
        if !self.admits(path) {
            return WriteFate::Full;
        }
        if let Some(e) = self.fate(Op::Write, path) {
            return WriteFate::Fail(e);
        }
        let n = self.counts.writes;
        if let Some((k, keep)) = self.short {
            if k == n {
                self.counts.injected += 1;
                let keep = keep.min(len.saturating_sub(1));
                self.counts.bytes_written += keep as u64;
                return WriteFate::Short(keep, EIO);
            }
        }
        if let Some(b) = self.budget {
            let room = b.saturating_sub(self.counts.bytes_written);
            if (len as u64) > room {
                self.counts.injected += 1;
                self.counts.bytes_written += room;
                return if room == 0 {
                    WriteFate::Fail(ENOSPC)
                } else {
                    WriteFate::Short(room as usize, ENOSPC)
                };
            }
        }
        self.counts.bytes_written += len as u64;
        WriteFate::Full
    }
}

/// A `Vfs` that fails chosen operations of the one it wraps. All settings
/// take `&self`, so a test keeps an `Arc<FaultyVfs>` and changes the plan
/// while an environment runs on it.
pub struct FaultyVfs {
    inner: SharedVfs,
    st: Arc<Mutex<FaultState>>,
}

impl FaultyVfs {
    pub fn new(inner: SharedVfs) -> FaultyVfs {
        FaultyVfs {
            inner,
            st: Arc::new(Mutex::new(FaultState::default())),
        }
    }

    /// Over the real file system.
    pub fn os() -> Arc<FaultyVfs> {
        Arc::new(FaultyVfs::new(OsVfs::shared()))
    }

    /// Fails the `n`th `op` (1-based, counted from the start) with EIO.
    pub fn fail_nth(&self, op: Op, n: u64) {
        lock(&self.st).rules.push((op, Trigger::Nth(n)));
    }

    /// Fails the `n`th `op` and every later one with EIO.
    pub fn fail_from(&self, op: Op, n: u64) {
        lock(&self.st).rules.push((op, Trigger::From(n)));
    }

    /// The `n`th write writes its first `keep` bytes (at most all but one),
    /// then fails with EIO.
    pub fn short_write_nth(&self, n: u64, keep: usize) {
        lock(&self.st).short = Some((n, keep));
    }

    /// Once `bytes` bytes in all have been written, writes fail with
    /// ENOSPC; the write that crosses the budget writes what fits first.
    pub fn enospc_after(&self, bytes: u64) {
        lock(&self.st).budget = Some(bytes);
    }

    /// Counts and fails only operations on paths `f` accepts.
    pub fn set_filter(&self, f: impl Fn(&Path) -> bool + Send + Sync + 'static) {
        lock(&self.st).filter = Some(Arc::new(f));
    }

    /// Removes every fault (the filter and the counters stay).
    pub fn heal(&self) {
        let mut s = lock(&self.st);
        s.rules.clear();
        s.short = None;
        s.budget = None;
    }

    pub fn counts(&self) -> OpCounts {
        lock(&self.st).counts
    }

    fn fate(&self, op: Op, path: &Path) -> Result<()> {
        match lock(&self.st).fate(op, path) {
            Some(errno) => Err(injected(path, op_name(op), errno)),
            None => Ok(()),
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Write => "write",
        Op::Sync => "fsync",
        Op::SyncDir => "fsync directory",
        Op::Open => "open",
        Op::Remove => "remove",
        Op::Rename => "rename",
        Op::SetLen => "truncate",
    }
}

struct FaultyFile {
    inner: Box<dyn VFile>,
    st: Arc<Mutex<FaultState>>,
}

impl FaultyFile {
    fn fate(&self, op: Op) -> Result<()> {
        match lock(&self.st).fate(op, self.inner.path()) {
            Some(errno) => Err(injected(self.inner.path(), op_name(op), errno)),
            None => Ok(()),
        }
    }
}

impl VFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.fate(Op::Read)?;
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        let fate = lock(&self.st).write_fate(self.inner.path(), buf.len());
        match fate {
            WriteFate::Full => self.inner.write_at(buf, off),
            WriteFate::Fail(errno) => Err(injected(self.inner.path(), "write", errno)),
            WriteFate::Short(keep, errno) => {
                self.inner.write_at(&buf[..keep], off)?;
                Err(injected(self.inner.path(), "write", errno))
            }
        }
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.fate(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<()> {
        self.fate(Op::Sync)?;
        self.inner.sync()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

impl Vfs for FaultyVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        self.fate(Op::Open, path)?;
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(FaultyFile {
            inner,
            st: self.st.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.fate(Op::Remove, path)?;
        self.inner.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.fate(Op::Rename, from)?;
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.fate(Op::SyncDir, dir)?;
        self.inner.sync_dir(dir)
    }

    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        self.inner.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.fate(Op::Remove, path)?;
        self.inner.remove_dir(path)
    }
}

// ---------------------------------------------------------------------------
// CrashVfs
// ---------------------------------------------------------------------------

type Ino = u64;

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// The latest write not covered by a sync: (sequence, offset, bytes).
    pending: Option<(u64, u64, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct CrashState {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    /// Names as the running system sees them.
    live: HashMap<PathBuf, Ino>,
    /// Names that survive a power loss.
    durable: HashMap<PathBuf, Ino>,
    write_seq: u64,
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
                pending: None,
            },
        );
        self.next_ino
    }
}

/// The power-loss simulating file system; see the module documentation for
/// the exact model.
pub struct CrashVfs {
    root: PathBuf,
    os: OsVfs,
    st: Arc<Mutex<CrashState>>,
}

/// Lexically normal form of a path (no `.` parts, no trailing slash), so
/// the same file always has the same key.
fn norm(p: &Path) -> PathBuf {
    p.components().collect()
}

/// xorshift64*: the deterministic, dependency-free generator the tests
/// draw from, so a failing seed replays exactly. The state must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

#[allow(clippy::should_implement_trait)] // infinite, never `None`: not an Iterator
impl Rng {
    /// A generator from any seed (zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What `power_loss` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// The torn write: file, offset, length of the write, bytes kept.
    pub torn: Option<(PathBuf, u64, usize, usize)>,
    /// Files that vanished (never made durable by a directory sync).
    pub vanished: Vec<PathBuf>,
    /// Files that came back (removed without a directory sync).
    pub revived: Vec<PathBuf>,
}

impl CrashVfs {
    /// A crash-simulating file system for the files under `root` (which
    /// must exist). Files outside `root` pass through untouched.
    pub fn new(root: &Path) -> Arc<CrashVfs> {
        Arc::new(CrashVfs {
            root: norm(root),
            os: OsVfs,
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

    /// True once `crash_after` stopped the machine.
    pub fn is_stopped(&self) -> bool {
        let s = lock(&self.st);
        s.crash_after.is_some_and(|c| s.mutations >= c)
    }

    fn modelled(&self, p: &Path) -> bool {
        p.starts_with(&self.root) && p != self.root
    }

    fn gate(&self, path: &Path, op: &'static str, mutating: bool) -> Result<()> {
        gate(&self.st, path, op, mutating)
    }

    /// The inode behind `p`, adopting a file the model has not seen yet as
    /// durable with its current content.
    fn adopt(&self, s: &mut CrashState, p: &Path) -> Option<Ino> {
        if let Some(&i) = s.live.get(p) {
            return Some(i);
        }
        let content = std::fs::read(p).ok()?;
        let ino = s.new_inode(content);
        s.live.insert(p.to_path_buf(), ino);
        s.durable.insert(p.to_path_buf(), ino);
        Some(ino)
    }

    /// Simulates a power loss: rewrites every modelled file under the root
    /// to what the model says survives (see the module documentation). The
    /// environment must have been dropped. `seed` picks how much of the
    /// torn write survives. The model starts afresh from the result.
    pub fn power_loss(&self, seed: u64) -> Result<PowerLoss> {
        self.lose_power(Some(seed))
    }

    /// A power loss that tears nothing: every write not synced is lost
    /// whole (a test that needs to know exactly what is durable).
    pub fn power_loss_untorn(&self) -> Result<PowerLoss> {
        self.lose_power(None)
    }

    fn lose_power(&self, tear: Option<u64>) -> Result<PowerLoss> {
        let seed = tear.unwrap_or(0);
        let mut s = lock(&self.st);
        let mut rng = Rng::new(seed);
        let mut report = PowerLoss::default();
        let reachable: std::collections::HashSet<Ino> = s.durable.values().copied().collect();
        let last = s
            .inodes
            .iter()
            .filter(|(i, _)| reachable.contains(i))
            .filter_map(|(i, n)| n.pending.as_ref().map(|p| (p.0, *i)))
            .max();
        let mut contents: HashMap<Ino, Vec<u8>> = reachable
            .iter()
            .filter_map(|i| s.inodes.get(i).map(|n| (*i, n.durable.clone())))
            .collect();
        if let (Some((_, ino)), true) = (last, tear.is_some()) {
            if let (Some(c), Some(Some((_, off, data)))) = (
                contents.get_mut(&ino),
                s.inodes.get(&ino).map(|n| n.pending.as_ref()),
            ) {
                let keep = (rng.next() % (data.len() as u64 + 1)) as usize;
                let off = *off as usize;
                if keep > 0 {
                    if c.len() < off + keep {
                        c.resize(off + keep, 0);
                    }
                    c[off..off + keep].copy_from_slice(&data[..keep]);
                }
                let name = s
                    .durable
                    .iter()
                    .find(|(_, i)| **i == ino)
                    .map(|(p, _)| p.clone())
                    .unwrap_or_default();
                report.torn = Some((name, off as u64, data.len(), keep));
            }
        }
        for p in s.live.keys() {
            if !s.durable.contains_key(p) {
                report.vanished.push(p.clone());
                match std::fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(p, "remove", e)),
                }
            }
        }
        for (p, i) in &s.durable {
            if !s.live.contains_key(p) {
                report.revived.push(p.clone());
            }
            let c = contents.get(i).map(|v| v.as_slice()).unwrap_or(&[]);
            std::fs::write(p, c).map_err(|e| Error::io(p, "write", e))?;
        }
        report.vanished.sort();
        report.revived.sort();
        // The surviving state is the new baseline.
        let durable = s.durable.clone();
        s.inodes.retain(|i, _| reachable.contains(i));
        for (i, n) in s.inodes.iter_mut() {
            n.durable = contents.remove(i).unwrap_or_default();
            n.pending = None;
        }
        s.live = durable;
        s.crash_after = None;
        s.power_losses += 1;
        Ok(report)
    }
}

struct CrashFile {
    inner: Box<dyn VFile>,
    /// `None`: a file outside the model (passes through).
    ino: Option<Ino>,
    st: Arc<Mutex<CrashState>>,
}

impl CrashFile {
    fn gate(&self, op: &'static str, mutating: bool) -> Result<()> {
        gate(&self.st, self.inner.path(), op, mutating)
    }
}

/// Fails every operation once the machine has stopped; counts a mutating
/// one otherwise.
fn gate(st: &Mutex<CrashState>, path: &Path, op: &'static str, mutating: bool) -> Result<()> {
    let mut s = lock(st);
    if let Some(c) = s.crash_after {
        if s.mutations >= c {
            return Err(injected(path, op, EIO));
        }
    }
    if mutating {
        s.mutations += 1;
    }
    Ok(())
}

impl VFile for CrashFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.gate("read", false)?;
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> Result<()> {
        self.gate("write", true)?;
        self.inner.write_at(buf, off)?;
        if let Some(ino) = self.ino {
            let mut s = lock(&self.st);
            s.write_seq += 1;
            let seq = s.write_seq;
            if let Some(n) = s.inodes.get_mut(&ino) {
                n.pending = Some((seq, off, buf.to_vec()));
            }
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.gate("stat", false)?;
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.gate("truncate", true)?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<()> {
        self.gate("fsync", true)?;
        let Some(ino) = self.ino else {
            return self.inner.sync();
        };
        // The real fsync is not needed: the model records what it promises.
        // The content is read under the model's lock: two threads syncing
        // one file at once (a group-commit leader and a log rotation) used
        // to be able to finish in the other order, so the sync that read
        // the file first stored its older content last and "un-synced"
        // records the engine had been promised durable. A real fsync never
        // makes data less durable; under the lock, the later sync reads
        // the later content.
        let mut s = lock(&self.st);
        let len = self.inner.len()?;
        let mut content = vec![0u8; len as usize];
        let n = self.inner.read_at(&mut content, 0)?;
        content.truncate(n);
        s.syncs += 1;
        if let Some(node) = s.inodes.get_mut(&ino) {
            node.durable = content;
            node.pending = None;
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

impl Vfs for CrashVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        let p = norm(path);
        let creating = matches!(mode, OpenMode::Create(_) | OpenMode::CreateNew(_));
        let existed = self.os.exists(&p);
        self.gate(&p, "open", creating && !existed)?;
        let inner = self.os.open(path, mode)?;
        let ino = if self.modelled(&p) {
            let mut s = lock(&self.st);
            match s.live.get(&p) {
                Some(&i) => Some(i),
                None if !existed => {
                    let i = s.new_inode(Vec::new());
                    s.live.insert(p.clone(), i);
                    Some(i)
                }
                None if mode != OpenMode::Read => self.adopt(&mut s, &p),
                None => None,
            }
        } else {
            None
        };
        Ok(Box::new(CrashFile {
            inner,
            ino,
            st: self.st.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let p = norm(path);
        self.gate(&p, "remove", true)?;
        if self.modelled(&p) {
            let mut s = lock(&self.st);
            self.adopt(&mut s, &p);
            self.os.remove(&p)?;
            s.live.remove(&p);
            return Ok(());
        }
        self.os.remove(&p)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (norm(from), norm(to));
        self.gate(&f, "rename", true)?;
        if self.modelled(&f) && self.modelled(&t) {
            let mut s = lock(&self.st);
            self.adopt(&mut s, &f);
            self.adopt(&mut s, &t);
            self.os.rename(&f, &t)?;
            if let Some(i) = s.live.remove(&f) {
                s.live.insert(t, i);
            }
            return Ok(());
        }
        self.os.rename(&f, &t)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = norm(dir);
        self.gate(&d, "fsync directory", true)?;
        if !(self.modelled(&d) || d == self.root) {
            return self.os.sync_dir(&d);
        }
        let mut s = lock(&self.st);
        s.syncs += 1;
        let in_dir = |p: &Path| p.parent() == Some(d.as_path());
        let live: Vec<(PathBuf, Ino)> = s
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable.retain(|p, _| !in_dir(p));
        s.durable.extend(live);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        self.gate(dir, "read directory", false)?;
        self.os.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.os.exists(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.os.is_dir(path)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> Result<()> {
        self.gate(path, "mkdir", true)?;
        self.os.create_dir(path, mode)
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let d = norm(path);
        self.gate(&d, "remove directory", true)?;
        self.os.remove_dir(&d)?;
        if self.modelled(&d) {
            let mut s = lock(&self.st);
            s.durable.retain(|p, _| !p.starts_with(&d));
            s.live.retain(|p, _| !p.starts_with(&d));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = vfs.power_loss(7).unwrap();
        assert_eq!(r.vanished, vec![b.clone()]);
        assert!(read(&b).is_none());
        let got = read(&a).unwrap();
        let (_, off, len, keep) = r.torn.clone().unwrap();
        assert_eq!((off, len), (0, 11));
        let mut want = b"HELLO world"[..keep].to_vec();
        if keep < 5 {
            want.extend_from_slice(&b"hello"[keep..]);
        }
        assert_eq!(got, want);

        // A removal without a directory sync comes back; with one it stays.
        vfs.remove(&a).unwrap();
        assert!(read(&a).is_none());
        let r = vfs.power_loss(1).unwrap();
        assert_eq!(r.revived, vec![a.clone()]);
        assert_eq!(read(&a).unwrap(), got);
        vfs.remove(&a).unwrap();
        vfs.sync_dir(root).unwrap();
        vfs.power_loss(2).unwrap();
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
        let r = vfs.power_loss(3).unwrap();
        assert!(read(&root.join("new")).is_none(), "rename not durable");
        let got = read(&root.join("old")).unwrap();
        let keep = r.torn.unwrap().3;
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
        vfs.power_loss(0).unwrap();
        // The name was never made durable.
        assert!(read(&root.join("a")).is_none());
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
