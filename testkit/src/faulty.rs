//! [`FaultyVfs`]: a `Vfs` that wraps another and fails chosen operations:
//! the Nth read, write, fsync, lock, chmod, ... (or every one from the Nth on) with
//! `EIO`, writes past a byte budget with `ENOSPC` (the part that fits is
//! written first: a short write), or the Nth write after writing only a
//! prefix of it. Counters tell a test how many operations a workload does,
//! so it can aim at each of them.
//!
//! This file depends on nothing but `libcore`'s public `Vfs` and `Error`
//! and std, so libcore's own unit tests compile it too (see
//! `libcore/src/lib.rs`, `test_support`).

use libcore::{
    Error, FileLayer, FileMeta, LockKind, OpenMode, OsVfs, Result, SharedVfs, VFile, Vfs, VfsLayer,
};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// errno of an I/O error (Linux).
pub const EIO: i32 = 5;
/// errno of a full disk (Linux).
pub const ENOSPC: i32 = 28;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn injected(path: &Path, op: &'static str, errno: i32) -> Error {
    Error::io(path, op, io::Error::from_raw_os_error(errno))
}

/// True if `e` is an I/O error with this errno (an injected fault).
pub fn is_errno(e: &Error, errno: i32) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(errno))
}

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
    /// `VFile::try_lock`.
    Lock,
    /// `VFile::unlock`.
    Unlock,
    /// `VFile::set_mode`.
    SetMode,
    /// `VFile::set_times`.
    SetTimes,
    /// `VFile::meta`, `Vfs::metadata` and `Vfs::symlink_metadata`.
    Stat,
    /// `VFile::write_behind` (advice: a copy's write-out behind its
    /// writes).
    WriteBehind,
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
    pub locks: u64,
    pub unlocks: u64,
    pub set_modes: u64,
    pub set_times: u64,
    pub stats: u64,
    pub write_behinds: u64,
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
            Op::Lock => self.locks,
            Op::Unlock => self.unlocks,
            Op::SetMode => self.set_modes,
            Op::SetTimes => self.set_times,
            Op::Stat => self.stats,
            Op::WriteBehind => self.write_behinds,
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
            Op::Lock => &mut self.locks,
            Op::Unlock => &mut self.unlocks,
            Op::SetMode => &mut self.set_modes,
            Op::SetTimes => &mut self.set_times,
            Op::Stat => &mut self.stats,
            Op::WriteBehind => &mut self.write_behinds,
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
        Op::Lock => "lock",
        Op::Unlock => "unlock",
        Op::SetMode => "chmod",
        Op::SetTimes => "utimes",
        Op::Stat => "stat",
        Op::WriteBehind => "fadvise",
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

impl FileLayer for FaultyFile {
    fn lower(&self) -> &dyn VFile {
        &*self.inner
    }

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

    fn set_len(&self, len: u64) -> Result<()> {
        self.fate(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> Result<()> {
        self.fate(Op::Sync)?;
        self.inner.sync()
    }

    fn write_behind(&self, off: u64, len: u64) -> Result<()> {
        self.fate(Op::WriteBehind)?;
        self.inner.write_behind(off, len)
    }

    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        self.fate(Op::Lock)?;
        self.inner.try_lock(kind)
    }

    fn unlock(&self) -> Result<()> {
        self.fate(Op::Unlock)?;
        self.inner.unlock()
    }

    fn meta(&self) -> Result<FileMeta> {
        self.fate(Op::Stat)?;
        self.inner.meta()
    }

    fn set_mode(&self, mode: u32) -> Result<()> {
        self.fate(Op::SetMode)?;
        self.inner.set_mode(mode)
    }

    fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        self.fate(Op::SetTimes)?;
        self.inner.set_times(accessed, modified)
    }
}

impl VfsLayer for FaultyVfs {
    fn lower(&self) -> &dyn Vfs {
        &*self.inner
    }

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

    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.fate(Op::Remove, path)?;
        self.inner.remove_dir(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        self.fate(Op::Rename, to)?;
        self.inner.hard_link(from, to)
    }

    fn metadata(&self, path: &Path) -> Result<FileMeta> {
        self.fate(Op::Stat, path)?;
        self.inner.metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> Result<FileMeta> {
        self.fate(Op::Stat, path)?;
        self.inner.symlink_metadata(path)
    }
}
