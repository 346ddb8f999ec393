//! The failed state of an open environment. The first write or fsync
//! error of the engine (a commit's log append or fsync, a page write-back,
//! a data-file or directory fsync, an unlink of a removed database) puts
//! the environment in it: nothing more is written, and every later
//! operation fails with `Error::Failed` naming the first error, until
//! the environment is closed and recovery runs at the next open. A reader
//! therefore never sees a commit that did not become durable, and no
//! write lands on top of a state the disk may not have.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::OnceLock;

pub(crate) struct Failure {
    home: PathBuf,
    /// The first error, as text; set once, never cleared. A `OnceLock`:
    /// every page read checks it, and a mutex there made snapshot
    /// readers queue behind each other and starve the committer.
    why: OnceLock<String>,
}

impl Failure {
    pub(crate) fn new(home: PathBuf) -> Failure {
        Failure {
            home,
            why: OnceLock::new(),
        }
    }

    /// `Error::Failed` once the environment has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match self.why.get() {
            Some(why) => Err(Error::Failed {
                path: self.home.clone(),
                why: why.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Enters the failed state with `e` (unless already in it) and hands
    /// `e` back for the caller to return.
    pub(crate) fn fail(&self, e: Error) -> Error {
        self.why.get_or_init(|| e.to_string());
        e
    }
}
