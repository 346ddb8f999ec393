//! libcore: the engine under the bdbtools utilities. It owns every byte of
//! the on-disk formats (pages, log records, the region, DB_CONFIG, the dump
//! text format) and all page, log, B-tree, transaction and recovery logic.
//! It never prints and never exits: tools do that.

pub mod archive;
pub mod backup;
pub mod backup_target;
pub mod btree;
pub mod bulk;
pub mod bulkcheck;
pub mod cache;
pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod copy;
pub mod dbfile;
pub mod dump;
pub mod dumpdb;
pub mod env;
pub mod error;
pub mod history;
pub mod interrupt;
pub mod layout;
pub mod load;
pub mod log;
pub mod manifest;
pub mod owner;
pub mod page;
pub mod pagestore;
pub mod printlog;
pub mod recover_env;
pub mod recovery;
mod reentry;
pub mod region;
pub mod replica;
pub mod stat;
pub mod timefmt;
pub mod timespec;
pub mod txn;
pub mod types;
pub mod verify;
pub mod vfs;
mod writeback;

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
