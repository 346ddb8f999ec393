//! Open database files of an environment and the handles user code holds.

use crate::error::Result;
use crate::page::{self, PageCheck, MAX_PAGE_SIZE, MIN_PAGE_SIZE};
use crate::types::{FileId, PageNo};
use crate::vfs::VFile;
use std::path::PathBuf;

/// Pages of a file that [`is_uncommitted_leftover`] looks at, at most.
const LEFTOVER_SCAN: u64 = 4096;

/// One open database file.
pub struct DbFile {
    pub id: FileId,
    /// Name relative to the data directory; what log records carry.
    pub name: String,
    pub path: PathBuf,
    pub page_size: usize,
    /// `None` for a read-only view of a file that exists only in the log
    /// (created after the last checkpoint and never written back).
    pub handle: Option<Box<dyn VFile>>,
}

impl std::fmt::Debug for DbFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbFile")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// A handle on one database (one file) of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Db {
    pub(crate) id: FileId,
    pub(crate) name: String,
}

impl Db {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file_id(&self) -> FileId {
        self.id
    }
}

/// Whether a file that the environment does not know (no committed
/// `FileCreate` names it) is what a bulk transaction creating it left
/// behind when it never committed: pages of ours past page 0, but no meta
/// page, which reaches the file only after the commit is logged. Such a
/// file holds nothing anyone committed, and its name may be taken again.
/// Anything else (another program's file) is not ours to overwrite.
pub fn is_uncommitted_leftover(h: &dyn VFile) -> Result<bool> {
    let len = h.len()?;
    let mut head = vec![0u8; MIN_PAGE_SIZE];
    if h.read_at(&mut head, 0)? < MIN_PAGE_SIZE || head.iter().any(|&b| b != 0) {
        return Ok(false);
    }
    let mut ps = MIN_PAGE_SIZE;
    while ps <= MAX_PAGE_SIZE {
        let n = len / ps as u64;
        if len % ps as u64 == 0 && n >= 2 {
            let mut buf = vec![0u8; ps];
            for p in 1..n.min(LEFTOVER_SCAN) {
                if h.read_at(&mut buf, p * ps as u64)? < ps {
                    break;
                }
                if page::check(&buf, PageNo(p as u32)) == PageCheck::Ok {
                    return Ok(true);
                }
            }
        }
        ps *= 2;
    }
    Ok(false)
}
