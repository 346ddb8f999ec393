//! libcore: the engine under the bdbtools utilities. It owns every byte of
//! the on-disk formats (pages, log records, the region, DB_CONFIG, the dump
//! text format) and all page, log, B-tree, transaction and recovery logic.
//! It never prints and never exits: tools do that.

pub mod bdbtext;
pub mod btree;
pub mod engine;
pub mod error;
pub mod ops;
pub mod recovery;
pub mod storage;
pub mod types;
pub mod wal;

// The paths of the flat layout, until the public API is settled.
pub use bdbtext::{dump, printlog, timefmt, timespec};
pub use engine::{bulk, cache, env, owner, region, txn};
pub use ops::request_checkpoint as checkpoint;
pub use ops::{
    archive, backup, backup_target, copy, dumpdb, interrupt, load, recover_env, replica, stat,
    verify,
};
pub use recovery::bulkcheck;
pub use storage::{codec, config, dbfile, layout, page, pagestore, vfs};
pub use wal as log;
pub use wal::{history, manifest};

pub use dbfile::Db;
pub use env::{scan, Cursor};
pub use env::{Env, EnvOptions};
pub use error::{Error, Location, Result, StoreFault};
pub use txn::Txn;
pub use types::{FileId, Lsn, PageNo, TxnId};
pub use vfs::{OpenMode, OsVfs, SharedVfs, VFile, Vfs};

#[cfg(any(test, feature = "testing"))]
mod test_support;

// Lets the test support files of `testkit` that libcore's own unit tests
// compile (test_support.rs) name this crate `libcore`, as they do there.
#[cfg(test)]
extern crate self as libcore;
