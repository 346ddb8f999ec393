//! bdbtools: the Berkeley DB 5.3 style utilities over `libcore`. Each tool
//! is a module with a pure `parse` of its command line and a short `run`;
//! [`cli`] is the harness they share (options, messages, exit codes), and
//! [`progress`] the progress bars long work shows on a terminal.

#![deny(unsafe_code)]

pub mod archive;
pub mod checkpoint;
pub mod cli;
pub mod copy;
pub mod dump;
pub mod hotbackup;
pub mod load;
pub mod printlog;
pub mod progress;
pub mod recover;
pub mod replicate;
pub mod stat;
pub mod store;
pub mod verify;
