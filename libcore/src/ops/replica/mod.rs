//! The storage layer of replication: the `ReplicaStore` trait (`store`),
//! the framing every replication object is stored in (`framed`), the
//! directory implementation (`dirstore`; the S3 one is the `s3store`
//! crate), and the conformance suite every implementation must pass
//! (`conformance`, public under the `testing` feature so the `s3store`
//! tests run it too).

#[cfg(feature = "testing")]
pub mod conformance;
pub mod dirstore;
pub mod framed;
pub mod store;

pub use dirstore::DirStore;
pub use store::{FileSum, Object, ObjectMeta, ReplicaStore, Version};
