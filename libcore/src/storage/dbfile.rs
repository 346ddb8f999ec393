//! Open database files of an environment and the handles user code holds.

use crate::storage::vfs::{SharedVfs, VFile};
use crate::types::FileId;
use std::path::{Path, PathBuf};

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

/// A handle on one database (one file) of an open environment, from
/// [`Env::open_db`](crate::Env::open_db) or
/// [`Txn::create_db`](crate::Txn::create_db). It belongs to the `Env` it
/// came from (and its clones): used with any other, even one opened on
/// the same directory, every call fails with [`Error::Misuse`](crate::Error::Misuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Db {
    pub(crate) id: FileId,
    pub(crate) name: String,
    /// The open environment it belongs to (`Inner::open_id`).
    pub(crate) owner: u64,
}

impl Db {
    /// The database's name (its file name relative to the data directory).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id the log knows the database's file by.
    pub fn file_id(&self) -> FileId {
        self.id
    }
}

/// The marker a bulk transaction leaves beside a database file it
/// creates (`__db.create.<name>`, an environment-internal name): it may
/// write pages to the file before its commit, so a killed or powered-off
/// one leaves a file with pages in it but no committed database. The
/// marker is created with the file (one directory sync makes both names
/// durable before any page is written) and removed once the commit is
/// durable, so a file that the environment does not know and that has
/// its marker is such a leftover, and its name may be taken again;
/// anything else is not ours to overwrite.
pub fn create_marker(db_path: &Path) -> PathBuf {
    let name = db_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    db_path.with_file_name(format!("__db.create.{name}"))
}

/// Whether the file at `db_path`, which the environment does not know,
/// holds nothing committed: empty (a create that never committed), or
/// with its [`create_marker`].
pub fn is_uncommitted_leftover(
    vfs: &SharedVfs,
    h: &dyn VFile,
    db_path: &Path,
) -> crate::error::Result<bool> {
    Ok(h.len()? == 0 || vfs.exists(&create_marker(db_path)))
}
