//! The operations the tools run, over the engine and recovery: hot backup
//! and its target directory, archive listings, page-atomic copies,
//! verification, loads and dumps, statistics, checkpoint requests, the
//! `db_recover` procedure, how fast a copy may go (`pacing`), the replica store layer, and a file system that
//! counts the bytes written for progress (`metered`).

pub mod archive;
pub mod backup;
pub mod backup_target;
pub mod copy;
pub mod dumpdb;
pub mod interrupt;
pub mod load;
pub mod metered;
pub mod pacing;
pub mod recover_env;
pub mod replica;
pub mod request_checkpoint;
mod sorted_load;
pub mod stat;
pub mod verify;
