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
//! An application opens an [`Env`] (a directory: database files and the
//! write-ahead log), changes it in write transactions ([`Txn`], one at a
//! time, all or nothing) and reads it through snapshots ([`Snapshot`]: one
//! commit's state for their whole life, never blocking a writer), with
//! range iterators forwards and backwards. Each transaction chooses its
//! [`Durability`]; [`Env::flush`] makes every commit so far durable;
//! checkpoints and log removal run on request ([`Env::checkpoint`],
//! [`archive::remove_unused`]) or by themselves ([`Upkeep`]). Errors say
//! what happened by [`ErrorKind`]. The modules below are one entry point
//! per tool operation (hot backup, archive, copy, ...), with its options
//! and report types. Everything else is private to the crate; tests reach
//! internals through `libcore::testing` (the `testing` feature, turned on
//! only by the dev-only `testkit` crate).
//!
//! A whole life, end to end:
//!
//! ```
//! use libcore::{Durability, Env, EnvOptions, Upkeep};
//! # fn main() -> libcore::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let home = dir.path().join("env");
//! # std::fs::create_dir(&home).unwrap();
//! // Open (creating it), with checkpoints every 64 MiB of log and old
//! // log files removed by themselves.
//! let env = Env::open(
//!     &home,
//!     EnvOptions {
//!         upkeep: Upkeep {
//!             checkpoint_log_bytes: Some(64 << 20),
//!             remove_unused_logs: true,
//!             ..Upkeep::default()
//!         },
//!         ..EnvOptions::create()
//!     },
//! )?;
//!
//! // Write: a transaction commits all of its changes or none.
//! let mut t = env.begin()?;
//! let fruit = t.create_db("fruit.db", None)?;
//! for (k, v) in [("apple", "3"), ("banana", "5"), ("cherry", "7")] {
//!     t.put(&fruit, k.as_bytes(), v.as_bytes())?;
//! }
//! t.commit()?; // durable when it returns
//!
//! // Many small changes that may be lost in a crash, made durable at once.
//! for (k, v) in [("date", "1"), ("elder", "2")] {
//!     let mut t = env.begin()?;
//!     t.set_durability(Durability::NoSync);
//!     t.put(&fruit, k.as_bytes(), v.as_bytes())?;
//!     t.commit()?;
//! }
//! env.flush()?;
//!
//! // Read: a snapshot sees one commit, whatever commits after it.
//! let snap = env.snapshot()?;
//! let mut t = env.begin()?;
//! t.delete(&fruit, b"banana")?;
//! t.commit()?;
//! let from_b: Vec<Vec<u8>> = snap
//!     .range(&fruit, "b".."d")?
//!     .map(|pair| pair.map(|(k, _)| k))
//!     .collect::<libcore::Result<_>>()?;
//! assert_eq!(from_b, [b"banana".to_vec(), b"cherry".to_vec()]);
//! let (last, _) = snap.iter(&fruit)?.next_back().unwrap()?;
//! assert_eq!(last, b"elder");
//! drop(snap);
//! assert_eq!(env.get(&fruit, b"banana")?, None);
//!
//! // Checkpoint, and take a hot backup while the environment is open.
//! env.checkpoint()?;
//! let backup = dir.path().join("backup");
//! libcore::backup::hot_backup(
//!     env.vfs(),
//!     &home,
//!     &backup,
//!     &libcore::backup::BackupOptions::default(),
//!     &mut |_| {},
//! )?;
//!
//! // Close: the last handle checkpoints and marks a clean shutdown.
//! env.close()?;
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
// Every public item is documented; the `testing` feature (tests only) makes
// internals public that are documented for this crate's readers, not callers.
#![cfg_attr(not(feature = "testing"), warn(missing_docs))]

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
