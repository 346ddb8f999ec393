//! Open database files of an environment and the handles user code holds.

use crate::types::FileId;
use crate::vfs::VFile;
use std::path::PathBuf;

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
