//! Which replica store a home's `repl_store` names, opened: a directory
//! (libcore's `DirStore`) or `s3://bucket/prefix` (the `s3store` crate,
//! configured from the standard AWS variables and files). Replication in
//! libcore sees only the `ReplicaStore` trait; this is the one place the
//! tools choose.

use libcore::replica::{self, ReplicaStore, StoreSpec};
use libcore::SharedVfs;
use std::path::Path;
use std::sync::Arc;

/// Opens the store `spec` names. An S3 store is asked for one listing at
/// once, so a missing bucket or refused credentials are reported at start
/// (in one line that names the store, never a credential).
pub fn open(vfs: &SharedVfs, spec: &StoreSpec) -> libcore::Result<Arc<dyn ReplicaStore>> {
    match spec {
        StoreSpec::Dir(_) => replica::open_dir(vfs, spec),
        StoreSpec::S3 { .. } => {
            let store = s3store::S3Store::from_env(&spec.url())?;
            store.check()?;
            Ok(Arc::new(store))
        }
    }
}

/// The store DB_CONFIG's `repl_store` names for the home.
pub fn for_home(vfs: &SharedVfs, home: &Path) -> libcore::Result<Arc<dyn ReplicaStore>> {
    replica::open_store(vfs, home, &|spec| open(vfs, spec))
}
