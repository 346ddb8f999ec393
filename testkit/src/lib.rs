//! Test support for the workspace, used only as a dev-dependency (so none
//! of it is in the library the tools ship):
//!
//! * [`FaultyVfs`] (faulty.rs): fails chosen file operations (EIO, ENOSPC,
//!   short writes) and counts them;
//! * [`CrashVfs`] (crash.rs): the power-loss model every power-loss test
//!   relies on; its module documentation is the authority on what a power
//!   loss keeps;
//! * [`HookVfs`] (hook.rs): runs a test's hook around chosen operations of
//!   another file system and keeps a journal of what went through;
//! * [`Rng`] (rng.rs): the seeded generator, so a failing seed replays;
//! * [`contents`] (model.rs): every database of an environment as a map, the
//!   model tests compare against.
//!
//! Plugged in through `EnvOptions::vfs` (no global fail points, so tests
//! stay parallel). `faulty.rs` and `rng.rs` depend only on libcore's
//! public API and std: libcore's own unit tests compile them too (two
//! copies of libcore cannot share types, so they cannot use this crate).

mod crash;
mod faulty;
mod hook;
mod model;
mod rng;

pub use crash::{CrashModel, CrashVfs, PowerLoss, TornWrite};
pub use faulty::{is_errno, FaultyVfs, Op, OpCounts, PathFilter, Trigger, EIO, ENOSPC};
pub use hook::{Event, HookVfs, When};
pub use model::{contents, Contents};
pub use rng::Rng;
