//! Replication (`db_replicate`, issue 12) and the storage layer it stands
//! on: the `ReplicaStore` trait (`store`), the framing every replication
//! object is stored in (`framed`), the directory implementation
//! (`dirstore`; the S3 one is the `s3store` crate), and the conformance
//! suite every implementation must pass (`conformance`, public under the
//! `testing` feature so the `s3store` tests run it too).
//!
//! Above the store: where things are in it (`layout`), log segments
//! (`segment`), bases (`base`), the master that ships (`master`), the
//! client that follows (`client`), restores (`restore`), what they report
//! (`status`) and the content digest that proves a standby equals its
//! primary (`digest`).

pub mod base;
pub mod client;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod digest;
pub mod dirstore;
pub mod framed;
pub mod layout;
pub mod master;
pub mod restore;
pub mod segment;
pub mod status;
pub mod store;

pub use dirstore::DirStore;
pub use store::{FileSum, Object, ObjectMeta, ReplicaStore, Version};

use crate::error::{Error, Result};
use crate::storage::vfs::SharedVfs;
use std::path::Path;
use std::sync::Arc;

/// The replica store DB_CONFIG's `repl_store` names for the environment
/// at `home` (a directory, relative to the home unless absolute).
pub fn open_store(vfs: &SharedVfs, home: &Path) -> Result<Arc<dyn ReplicaStore>> {
    let config = crate::storage::config::Config::read_with(&**vfs, home)?;
    let Some(dir) = config.repl_store else {
        return Err(Error::invalid(format!(
            "{}: no repl_store line names the replica store",
            home.join("DB_CONFIG").display()
        )));
    };
    let root = if dir.is_absolute() {
        dir
    } else {
        home.join(dir)
    };
    Ok(Arc::new(DirStore::open(vfs.clone(), &root)?))
}
