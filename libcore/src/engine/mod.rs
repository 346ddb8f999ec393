//! An open environment: the owner lock and the region, the transactions
//! and their commit, the buffer cache and write-back, checkpoints.

pub mod bulk;
pub mod cache;
pub mod env;
pub mod owner;
pub(crate) mod reentry;
pub mod region;
pub mod txn;
mod writeback;
