//! The file table of an open environment: every database file by id, the
//! next id to give, and the committed removals whose files are not yet
//! unlinked.
//!
//! Invariants:
//! * the table changes only when a commit installs (under the commit
//!   lock, `FileTable::apply`), so a reader sees a database exactly when it
//!   sees the commit that created it, and no longer once it sees the one
//!   that removed it;
//! * ids are never reused and never wrap: a log naming the largest id
//!   there is makes the owner refuse to open (env.rs), and running out is
//!   an error, not a wrap;
//! * a checkpoint picks its redo point only while no removal is pending
//!   ([`FileTable::wait_no_removals`]): a redo point past a removal's log
//!   record with the file still on disk would let recovery adopt the file
//!   again, stale contents and all.

use super::lock;
use crate::error::{Error, Result};
use crate::recovery::RecoveryOutcome;
use crate::storage::dbfile::DbFile;
use crate::storage::layout::Layout;
use crate::storage::page::Meta;
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::{FileId, PageNo};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

pub(crate) struct FileTable {
    files: RwLock<HashMap<FileId, Arc<DbFile>>>,
    /// The id the next created database gets (`u32::MAX` when the log
    /// already used the largest one: then none can be given).
    next_id: AtomicU32,
    removals: PendingRemovals,
}

impl FileTable {
    pub(crate) fn new(files: HashMap<FileId, Arc<DbFile>>, next_id: u32) -> FileTable {
        FileTable {
            files: RwLock::new(files),
            next_id: AtomicU32::new(next_id),
            removals: PendingRemovals::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<FileId, Arc<DbFile>>> {
        super::read(&self.files)
    }

    pub(crate) fn get(&self, id: FileId) -> Option<Arc<DbFile>> {
        self.read().get(&id).cloned()
    }

    /// Every file by id (a snapshot's view of the databases).
    pub(crate) fn all(&self) -> HashMap<FileId, Arc<DbFile>> {
        self.read().clone()
    }

    /// The file of the database called `name`.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<DbFile>> {
        self.read().values().find(|f| f.name == name).cloned()
    }

    /// Names of the databases, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().values().map(|f| f.name.clone()).collect();
        v.sort();
        v
    }

    /// The files as a checkpoint record lists them: (id, name), sorted.
    pub(crate) fn listing(&self) -> Vec<(FileId, Vec<u8>)> {
        let mut files: Vec<(FileId, Vec<u8>)> = self
            .read()
            .values()
            .map(|f| (f.id, f.name.as_bytes().to_vec()))
            .collect();
        files.sort();
        files
    }

    /// A new id for a database a transaction creates.
    pub(crate) fn allocate_id(&self, home: &Path) -> Result<FileId> {
        self.next_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .map(FileId)
            .map_err(|_| {
                Error::Exhausted(format!(
                    "{}: database file ids are used up; dump and reload the databases into a new environment",
                    home.display()
                ))
            })
    }

    /// Applies a commit's creations and removals (under the commit lock).
    pub(crate) fn apply(
        &self,
        created: impl IntoIterator<Item = (FileId, Arc<DbFile>)>,
        removed: &[Arc<DbFile>],
    ) {
        let mut files = super::write(&self.files);
        for (id, f) in created {
            files.insert(id, f);
        }
        for f in removed {
            files.remove(&f.id);
        }
    }

    /// Registers one committed removal whose file is not unlinked yet; it
    /// ends when the ticket is dropped (the file is gone, or the
    /// environment failed trying).
    pub(crate) fn start_removal(&self) -> RemovalTicket<'_> {
        self.removals.start()
    }

    /// Waits until no committed removal is waiting for its unlink.
    pub(crate) fn wait_no_removals(&self) {
        self.removals.wait_none()
    }
}

/// Committed database removals whose files are not unlinked yet (see the
/// module comment).
#[derive(Default)]
struct PendingRemovals {
    count: Mutex<usize>,
    done: Condvar,
}

impl PendingRemovals {
    fn start(&self) -> RemovalTicket<'_> {
        *lock(&self.count) += 1;
        RemovalTicket(self)
    }

    fn wait_none(&self) {
        let mut n = lock(&self.count);
        while *n > 0 {
            n = self.done.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub(crate) struct RemovalTicket<'a>(&'a PendingRemovals);

impl Drop for RemovalTicket<'_> {
    fn drop(&mut self) {
        let mut n = lock(&self.0.count);
        *n = n.saturating_sub(1);
        self.0.done.notify_all();
    }
}

/// Opens every database file: those in the data directories, plus (for a
/// read-only view) those that exist so far only in the replayed log.
pub(crate) fn open_files(
    vfs: &SharedVfs,
    layout: &Layout,
    outcome: &RecoveryOutcome,
    read_only: bool,
) -> Result<HashMap<FileId, Arc<DbFile>>> {
    let mut out = HashMap::new();
    let mode = if read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    let mut seen = HashSet::new();
    for info in layout.db_files(vfs)? {
        let id = match outcome.files.iter().find(|(_, n)| **n == info.name) {
            Some((id, _)) => *id,
            None => {
                let handle = vfs.open(&info.path, OpenMode::Read)?;
                let mut buf = vec![0u8; info.meta_page_size as usize];
                handle.read_at(&mut buf, 0)?;
                match Meta::decode(&buf) {
                    Ok(m) => m.file_id,
                    Err(_) => continue,
                }
            }
        };
        let handle = vfs.open(&info.path, mode)?;
        seen.insert(info.name.clone());
        out.insert(
            id,
            Arc::new(DbFile {
                id,
                name: info.name,
                path: info.path,
                page_size: info.meta_page_size as usize,
                handle: Some(handle),
            }),
        );
    }
    if read_only {
        for (id, name) in &outcome.files {
            if seen.contains(name) {
                continue;
            }
            let Some(meta) = outcome.overlay.get(&(*id, PageNo::META)) else {
                continue;
            };
            let Ok(m) = Meta::decode(meta) else { continue };
            // The meta page is only in the log so far, but other pages may
            // be on disk already (bulk-mode pages, evicted pages).
            let path = layout.db_path(vfs, name);
            let handle = vfs.open(&path, OpenMode::Read).ok();
            out.insert(
                *id,
                Arc::new(DbFile {
                    id: *id,
                    name: name.clone(),
                    path,
                    page_size: m.page_size as usize,
                    handle,
                }),
            );
        }
    }
    Ok(out)
}
