//! [`HookVfs`]: another file system (the real one, a `CrashVfs`, ...) with a
//! test's hook run around its operations, and a journal of what went
//! through. Tests use it to act at an exact point of a workload: commit a
//! bulk load the moment a backup puts a copy into place, hold a log fsync
//! while a reader runs, fail an unlink.
//!
//! The hook is called with [`When::Before`] and [`When::After`] each
//! operation of [`Event`]: an error from it before is the operation's error
//! (the operation does not run), an error after is returned in place of
//! the operation's success. No lock is held while the hook runs, so it may
//! block, or use the same file system (its own operations call it again).

use libcore::{FileLayer, LockKind, OpenMode, OsVfs, Result, SharedVfs, VFile, Vfs, VfsLayer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Whether the hook runs before or after the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// The operations a hook is told about.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Opening a file (after: it is open).
    Open { path: &'a Path, mode: OpenMode },
    /// Removing a file.
    Remove(&'a Path),
    /// Renaming a file.
    Rename { from: &'a Path, to: &'a Path },
    /// Giving a file a second name.
    HardLink { from: &'a Path, to: &'a Path },
    /// `VFile::sync` of an open file.
    Sync(&'a Path),
    /// `Vfs::sync_dir`.
    SyncDir(&'a Path),
    /// `VFile::try_lock` of an open file (after: whatever it answered).
    Lock { path: &'a Path, kind: LockKind },
    /// `VFile::read_at` at byte `offset` (only once
    /// [`HookVfs::hook_reads`] turned it on: reads are many).
    Read { path: &'a Path, offset: u64 },
}

type Hook = Arc<dyn Fn(When, &Event<'_>) -> Result<()> + Send + Sync>;

struct State {
    inner: SharedVfs,
    hook: RwLock<Option<Hook>>,
    /// Whether reads go through the hook.
    reads: AtomicBool,
    /// ("sync", file), ("rename", new name), ("link", new name), in order,
    /// each once it succeeded.
    journal: Mutex<Vec<(&'static str, PathBuf)>>,
}

impl State {
    fn call(&self, when: When, ev: &Event<'_>) -> Result<()> {
        let hook = self.hook.read().unwrap_or_else(|p| p.into_inner()).clone();
        match hook {
            Some(h) => h(when, ev),
            None => Ok(()),
        }
    }

    /// Runs `op` between the hook's two calls.
    fn around<T>(&self, ev: Event<'_>, op: impl FnOnce() -> Result<T>) -> Result<T> {
        self.call(When::Before, &ev)?;
        let out = op()?;
        self.call(When::After, &ev)?;
        Ok(out)
    }

    fn note(&self, what: &'static str, path: &Path) {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((what, path.to_path_buf()));
    }
}

/// A file system with a hook; share it as `Arc<HookVfs>` (it is a `Vfs`).
pub struct HookVfs {
    st: Arc<State>,
}

impl HookVfs {
    /// Over `inner`, with no hook yet.
    pub fn new(inner: SharedVfs) -> Arc<HookVfs> {
        Arc::new(HookVfs {
            st: Arc::new(State {
                inner,
                hook: RwLock::new(None),
                reads: AtomicBool::new(false),
                journal: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Over the real file system.
    pub fn os() -> Arc<HookVfs> {
        HookVfs::new(OsVfs::shared())
    }

    /// Sets the hook (replacing any earlier one).
    pub fn set_hook(&self, f: impl Fn(When, &Event<'_>) -> Result<()> + Send + Sync + 'static) {
        *self.st.hook.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// Sends reads through the hook too ([`Event::Read`]), or stops.
    pub fn hook_reads(&self, on: bool) {
        self.st.reads.store(on, Ordering::Relaxed);
    }

    /// Removes the hook.
    pub fn clear_hook(&self) {
        *self.st.hook.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// What went through so far: ("sync", file), ("rename", new name) and
    /// ("link", new name), in order.
    pub fn journal(&self) -> Vec<(&'static str, PathBuf)> {
        self.st
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

struct HookFile {
    inner: Box<dyn VFile>,
    st: Arc<State>,
}

impl FileLayer for HookFile {
    fn lower(&self) -> &dyn VFile {
        &*self.inner
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        if !self.st.reads.load(Ordering::Relaxed) {
            return self.inner.read_at(buf, off);
        }
        let ev = Event::Read {
            path: self.inner.path(),
            offset: off,
        };
        self.st.around(ev, || self.inner.read_at(buf, off))
    }

    fn sync(&self) -> Result<()> {
        let path = self.inner.path();
        self.st.around(Event::Sync(path), || {
            self.inner.sync()?;
            self.st.note("sync", path);
            Ok(())
        })
    }

    fn try_lock(&self, kind: LockKind) -> Result<bool> {
        let path = self.inner.path();
        self.st
            .around(Event::Lock { path, kind }, || self.inner.try_lock(kind))
    }
}

impl VfsLayer for HookVfs {
    fn lower(&self) -> &dyn Vfs {
        &*self.st.inner
    }

    fn open(&self, path: &Path, mode: OpenMode) -> Result<Box<dyn VFile>> {
        let inner = self.st.around(Event::Open { path, mode }, || {
            self.st.inner.open(path, mode)
        })?;
        Ok(Box::new(HookFile {
            inner,
            st: self.st.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.st
            .around(Event::Remove(path), || self.st.inner.remove(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.st.around(Event::Rename { from, to }, || {
            self.st.inner.rename(from, to)?;
            self.st.note("rename", to);
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.st
            .around(Event::SyncDir(dir), || self.st.inner.sync_dir(dir))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        self.st.around(Event::HardLink { from, to }, || {
            self.st.inner.hard_link(from, to)?;
            self.st.note("link", to);
            Ok(())
        })
    }
}
