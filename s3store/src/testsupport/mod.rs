//! Test support (feature `testsupport`), for this crate's tests and the
//! end-to-end tests of the tools: a SeaweedFS server (`server`) and a
//! fault-injecting TCP proxy (`proxy`).

pub mod proxy;
pub mod server;

pub use proxy::{FaultProxy, Mode};
pub use server::{quick_limits, SeaweedServer, BUCKET};
