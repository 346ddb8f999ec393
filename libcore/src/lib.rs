//! libcore: the engine under the bdbtools utilities. It owns every byte of
//! the on-disk formats (pages, log records, the region, DB_CONFIG, the dump
//! text format) and all page, log, B-tree, transaction and recovery logic.
//! It never prints and never exits: tools do that.
//!
//! # Layers
//!
//! Each folder is a layer; a layer imports only the layers before it, and
//! no two files import each other (both checked by
//! `libcore/tests/layers.rs`):
//!
//! 1. `storage/`: the file-system seam (`Vfs`), codecs, pages, database
//!    files, where an environment's files are (`Layout`, `DB_CONFIG`), the
//!    log's files as files (names, listing, header);
//! 2. `wal/`: the write-ahead log, its history file and a backup's
//!    manifest;
//! 3. `btree/`: B-tree pages and algorithms over any page store;
//! 4. `recovery/`: redo from the log;
//! 5. `engine/`: an open environment (transactions, commit, buffer pool,
//!    checkpoints, owner lock, region);
//! 6. `bdbtext/`: the Berkeley DB text formats (dump, printlog, times),
//!    over storage, wal and btree only, used by ops;
//! 7. `ops/`: what the tools run (hot backup, archive, copy, verify, load,
//!    dump, stat, checkpoint requests, `db_recover`, the replica stores).
//!
//! `error.rs`, `types.rs` and `progress.rs` stand outside the layers:
//! every layer may use them (`progress` is how long work reports how far
//! it is, since nothing here prints).
//!
//! # The public API
//!
//! An application opens an [`Env`], runs [`Txn`]s and reads through it;
//! the modules below are one entry point per tool operation, with its
//! options and report types. Everything else is private to the crate;
//! tests reach internals through `libcore::testing` (the `testing`
//! feature, turned on only by the dev-only `testkit` crate).

#![deny(unsafe_code)]

mod bdbtext;
mod btree;
mod engine;
mod error;
mod ops;
pub mod progress;
mod recovery;
mod storage;
mod types;
mod wal;

#[cfg(any(test, feature = "testing"))]
mod test_support;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

// Lets the test support files of `testkit` that libcore's own unit tests
// compile (test_support.rs) name this crate `libcore`, as they do there.
#[cfg(test)]
extern crate self as libcore;

pub use engine::env::{Env, EnvOptions, HOUSEKEEPER};
pub use engine::reader::{scan, Cursor, Pair};
pub use engine::snapshot::{Range, Snapshot, SnapshotStats};
pub use engine::txn::{BulkBuild, Durability, Txn};
pub use engine::upkeep::Upkeep;
pub use error::{Error, ErrorKind, Location, Result, StoreFault};
pub use storage::dbfile::Db;
pub use storage::layout::Layout;
pub use storage::vfs::{FileMeta, FileType, LockKind, OpenMode, OsVfs, SharedVfs, VFile, Vfs};
pub use storage::vfs_layer::{FileLayer, VfsLayer};
pub use types::{FileId, Lsn, PageNo, TxnId};

/// The replica store layer replication stands on: the [`ReplicaStore`]
/// trait, the framing of its objects, and the directory store (the S3 one
/// is the `s3store` crate).
///
/// [`ReplicaStore`]: replica::ReplicaStore
pub use ops::replica;

/// `db_archive`: the log files no longer needed, every log file, or the
/// database files; removing the unneeded logs.
pub mod archive {
    pub use crate::ops::archive::{list, remove_unused, ArchiveMode};
}

/// `db_hotbackup`: a full hot backup or an incremental update of one.
pub mod backup {
    pub use crate::ops::backup::{hot_backup, BackupOptions, BackupReport, Say};
    pub use crate::ops::interrupt::StopFlag;
}

/// `db_checkpoint`: a checkpoint taken by the live owner on request, or
/// here when there is none.
pub mod checkpoint {
    pub use crate::ops::request_checkpoint::{checkpoint, Taken};
}

/// `db_copy`: page-atomic, checksum-verified copies of database files.
pub mod copy {
    pub use crate::ops::copy::{copy_into, CopyOptions, CopyReport};
}

/// `db_dump`, and the Berkeley DB dump text format `db_load` reads.
pub mod dump {
    pub use crate::bdbtext::dump::{
        apply_override, encode_bytevalue, encode_print, DumpFormat, DumpHeader, PairSource,
    };
    pub use crate::ops::dumpdb::{dump, list, locate, DumpOptions};
}

/// `db_load`: a database loaded from dump text.
pub mod load {
    pub use crate::ops::load::{
        check_header, load, load_into_env, LoadOptions, LoadReport, OnExisting, OneSection,
        TextSource,
    };
}

/// `db_printlog`: log records in Berkeley DB 5.3's text layout.
pub mod printlog {
    pub use crate::bdbtext::printlog::{Entries, Entry, Range, DEFAULT_DATA_LEN};
    pub use crate::bdbtext::timefmt::ctime;
}

/// `db_recover`: normal, catastrophic and point-in-time recovery of an
/// environment, and the time formats of `-t` and its report.
pub mod recover {
    pub use crate::bdbtext::timespec::{ctime, parse_local, BadTime};
    pub use crate::ops::recover_env::{recover_env, RecoverEnvOptions, Report};
}

/// `db_stat`: environment, log, transaction and database statistics.
pub mod stat {
    pub use crate::ops::stat::{db, env, log, txn, DbStat, EnvStat, LogStat, TxnStat};
    pub use crate::storage::page::DB_VERSION;
    pub use crate::wal::DEFAULT_LG_MAX;
}

/// `db_verify`: every page and the B-tree structure of a database file.
pub mod verify {
    pub use crate::ops::verify::{verify_file, Problem, VerifyOptions};
}
