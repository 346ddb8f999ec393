//! The bottom layer: the file system seam every byte goes through (`vfs`),
//! byte codecs and checksums (`codec`), what a page is (`page`) and where
//! pages are read and written (`pagestore`), open database files
//! (`dbfile`), and where an environment's files are (`layout`, from
//! `DB_CONFIG`: `config`), the log's files as files (`logfiles`: names,
//! listing, header). It imports nothing above it.

pub mod codec;
pub mod config;
pub mod dbfile;
pub mod layout;
pub mod logfiles;
pub mod page;
pub mod pagestore;
pub mod vfs;
pub mod vfs_layer;
