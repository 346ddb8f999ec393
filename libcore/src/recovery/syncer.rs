//! Makes data files durable in the background while redo goes on.
//!
//! Redo of data files older than the log writes most of what it replays,
//! and the fsync of all of it at the end used to be a third of a
//! `db_recover -c`. After each intermediate write-back the files written
//! are fsynced on a helper thread instead, so the disk works while redo
//! reads the log; the final sync then has only the last write-back left.
//!
//! Invariants: at most one background sync runs, and redo never waits for
//! it before the end (a write-back while one runs starts none: the disk is
//! busy anyway, and the next one or the final sync covers those writes);
//! its error is returned by the next `start` or `wait` (never lost); no
//! helper thread outlives the `Syncer` (dropping it waits). A background
//! sync only makes writes durable earlier: recovery still syncs every file
//! at its end.

use crate::error::{Error, Result};
use crate::storage::vfs::VFile;
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Default)]
pub(super) struct Syncer {
    running: Option<JoinHandle<Result<()>>>,
}

impl Syncer {
    /// Starts syncing `files`, unless the previous sync still runs.
    pub fn start(&mut self, files: Vec<Arc<dyn VFile>>) -> Result<()> {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        self.wait()?;
        if files.is_empty() {
            return Ok(());
        }
        let job = move || files.iter().try_for_each(|f| f.sync());
        match std::thread::Builder::new()
            .name("redo-sync".into())
            .spawn(job)
        {
            Ok(h) => {
                self.running = Some(h);
                Ok(())
            }
            // No thread to be had: recovery's final sync covers it.
            Err(_) => Ok(()),
        }
    }

    /// Waits for the running sync and returns its result.
    pub fn wait(&mut self) -> Result<()> {
        match self.running.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::invalid("background data file sync panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // An error here belongs to a recovery that already failed.
        let _ = self.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::{OpenMode, Vfs};
    use crate::test_support::faulty::{is_errno, FaultyVfs, Op, EIO};

    fn handles(vfs: &FaultyVfs, dir: &std::path::Path, n: usize) -> Vec<Arc<dyn VFile>> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.db"));
                Arc::from(vfs.open(&p, OpenMode::Create(0o600)).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_background_sync_syncs_every_file_and_its_failure_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = FaultyVfs::os();
        let hs = handles(&vfs, dir.path(), 3);
        let mut s = Syncer::default();
        s.start(hs.clone()).unwrap();
        s.wait().unwrap();
        assert_eq!(vfs.counts().get(Op::Sync), 3);

        vfs.fail_nth(Op::Sync, 5);
        s.start(hs.clone()).unwrap();
        // Whether it is still running or not, the failure comes back.
        let e = match s.start(hs) {
            Ok(()) => s.wait().unwrap_err(),
            Err(e) => e,
        };
        assert!(is_errno(&e, EIO), "{e}");
        s.wait().unwrap();
    }
}
