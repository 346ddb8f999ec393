//! The internals the tests reach (libcore/tests, tests/, fuzz/), under the
//! names of the modules they live in. Compiled only with the `testing`
//! feature, which only the dev-only `testkit` crate turns on: a normal or
//! release build of the tools has none of it. Nothing here is API.

/// `ops/archive.rs`.
pub mod archive {
    pub use crate::ops::archive::{list, log_state, remove_unused, unused_logs, ArchiveMode};
}

/// `ops/backup_target.rs`.
pub mod backup_target {
    pub use crate::ops::backup_target::{staging, survey, Holds, STAGING_DIR};
}

/// `btree/`.
pub mod btree {
    pub use crate::btree::{create, get, put, stats, verify, Scan, MAX_ITEM};
}

/// `ops/copy.rs`.
pub mod copy {
    pub use crate::ops::copy::classify;
}

/// `bdbtext/dump.rs`.
pub mod dump {
    pub use crate::bdbtext::dump::{DumpReader, TextReader};
}

/// `wal/` (the log).
pub mod log {
    pub use crate::wal::{
        last_checkpoint, list_log_files, log_name, log_path, parse_log_name, preallocated_len,
        records_end, Checkpoint, FileHeader, Log, LogCursor, OnBadRecord, Record,
        FIRST_RECORD_OFFSET, MIN_LG_MAX,
    };
}

/// `wal/manifest.rs`.
pub mod manifest {
    pub use crate::wal::manifest::Manifest;
}

/// `storage/page.rs`.
pub mod page {
    pub use crate::storage::page::{init, lsn, Meta, PageType, LSN_END, PAGE_HEADER_SIZE};
}

/// `storage/pagestore.rs`.
pub mod pagestore {
    pub use crate::storage::pagestore::{MemStore, PageWrite};
}

/// `progress.rs`: a `Progress` that records what it hears.
pub mod progress {
    pub use crate::progress::{Call, Recorder};
}

/// `ops/recover_env.rs`.
pub mod recover_env {
    pub use crate::ops::recover_env::{recover_env_on, RecoverEnvOptions};
}

/// `recovery/`.
pub mod recovery {
    pub use crate::recovery::{recover, RecoveryMode, RecoveryOptions};
}

/// `engine/owner.rs`.
pub mod owner {
    pub use crate::engine::owner::{live_owner, LOCK_FILE};
}

/// `engine/region.rs`.
pub mod region {
    pub use crate::engine::region::{Region, REGION_FILE};
}

/// `bdbtext/timefmt.rs`.
pub mod timefmt {
    pub use crate::bdbtext::timefmt::recover_stamp;
}

/// `bdbtext/timespec.rs`.
pub mod timespec {
    pub use crate::bdbtext::timespec::{now, CivilTime};
}
