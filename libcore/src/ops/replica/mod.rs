//! Replication (`db_replicate`, issue 12) and the storage layer it stands
//! on: the `ReplicaStore` trait (`store`), the framing every replication
//! object is stored in (`framed`), the directory implementation
//! (`dirstore`; the S3 one is the `s3store` crate), and the conformance
//! suite every implementation must pass (`conformance`, public under the
//! `testing` feature so the `s3store` tests run it too).
//!
//! Above the store: where things are in it (`layout`), log segments
//! (`segment`), bases (`base`), the epochs of the store's history and of
//! a home (`epoch`), the lease that lets one master ship (`lease`), the
//! master that ships (`master`), the client that follows (`client`),
//! restores (`restore`), what they report (`status`) and the content
//! digest that proves a standby equals its primary (`digest`).

pub mod base;
pub mod client;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod digest;
pub mod dirstore;
pub mod epoch;
pub mod framed;
pub mod layout;
pub mod lease;
pub mod master;
pub mod prefetch;
pub mod promote;
pub mod restore;
pub mod segment;
pub mod status;
pub mod store;

pub use dirstore::DirStore;
pub use store::{FileSum, Object, ObjectMeta, ReplicaStore, StoreLayer, Version};

use crate::error::{Error, Result};
use crate::storage::vfs::SharedVfs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where DB_CONFIG's `repl_store` says the replica store is: a directory
/// (relative to the home unless absolute) or `s3://bucket/prefix`. libcore
/// opens only the first (`DirStore`); the tools map the second to the
/// `s3store` crate, so libcore never depends on an async runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A directory store at this path (already joined to the home).
    Dir(PathBuf),
    /// An S3-compatible object store, opened by the `s3store` crate.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The key prefix inside the bucket, without a trailing `/` ("" for
        /// the whole bucket).
        prefix: String,
    },
}

impl StoreSpec {
    /// Reads `value` as written after `repl_store`: `s3://` starts an
    /// object store address (checked in full by the S3 store), anything
    /// else is a directory, taken relative to `home` unless absolute.
    pub fn parse(home: &Path, value: &Path) -> StoreSpec {
        if let Some(rest) = value.to_str().and_then(|v| v.strip_prefix("s3://")) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return StoreSpec::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            };
        }
        if value.is_absolute() {
            StoreSpec::Dir(value.to_path_buf())
        } else {
            StoreSpec::Dir(home.join(value))
        }
    }

    /// The address in messages: the directory, or `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        match self {
            StoreSpec::Dir(p) => p.display().to_string(),
            StoreSpec::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            StoreSpec::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The store DB_CONFIG's `repl_store` names for the environment at `home`.
pub fn store_spec(vfs: &SharedVfs, home: &Path) -> Result<StoreSpec> {
    let config = crate::storage::config::Config::read_with(&**vfs, home)?;
    match config.repl_store {
        Some(value) => Ok(StoreSpec::parse(home, &value)),
        None => Err(Error::invalid(format!(
            "{}: no repl_store line names the replica store",
            home.join("DB_CONFIG").display()
        ))),
    }
}

/// What opens a store a `StoreSpec` names: `open_dir` for directories;
/// the tools pass one that opens S3 stores too.
pub type StoreOpener<'a> = &'a dyn Fn(&StoreSpec) -> Result<Arc<dyn ReplicaStore>>;

/// Opens a directory store; an S3 address is refused (libcore has no S3
/// client: the tools' opener handles it).
pub fn open_dir(vfs: &SharedVfs, spec: &StoreSpec) -> Result<Arc<dyn ReplicaStore>> {
    match spec {
        StoreSpec::Dir(root) => Ok(Arc::new(DirStore::open(vfs.clone(), root)?)),
        StoreSpec::S3 { .. } => Err(Error::store(
            spec.url(),
            "",
            crate::error::StoreFault::Invalid,
            "an S3 store needs the s3store crate (the tools open it)",
        )),
    }
}

/// The replica store DB_CONFIG's `repl_store` names for the environment
/// at `home`, opened by `opener`.
pub fn open_store(
    vfs: &SharedVfs,
    home: &Path,
    opener: StoreOpener<'_>,
) -> Result<Arc<dyn ReplicaStore>> {
    opener(&store_spec(vfs, home)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repl_store_names_a_directory_or_an_s3_address() {
        let home = Path::new("/h");
        assert_eq!(
            StoreSpec::parse(home, Path::new("st")),
            StoreSpec::Dir(PathBuf::from("/h/st"))
        );
        assert_eq!(
            StoreSpec::parse(home, Path::new("/abs/st")),
            StoreSpec::Dir(PathBuf::from("/abs/st"))
        );
        let s3 = StoreSpec::parse(home, Path::new("s3://bkt/a/b/"));
        assert_eq!(
            s3,
            StoreSpec::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(s3.url(), "s3://bkt/a/b");
        assert_eq!(
            StoreSpec::parse(home, Path::new("s3://bkt")).url(),
            "s3://bkt"
        );
    }
}
