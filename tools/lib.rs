//! bdbtools: the Berkeley DB 5.3 style utilities over `libcore`. Each tool
//! is a module with a pure `parse` of its command line and a short `run`;
//! [`cli`] is the harness they share (options, messages, exit codes).

pub mod cli;
pub mod recover;
