//! The write-ahead log: numbered, append-only log files of checksummed
//! records, the appender an open environment writes through (`Log`), and the
//! reader recovery and `db_printlog` share (`LogCursor`).
//!
//! Invariants this module keeps:
//! - a record never spans two files; a transaction's records are one
//!   contiguous batch ending with its commit (a batch may cross into a new
//!   file, the old file is fsynced before the new one is created);
//! - a new file's header is fsynced, and then its directory, before any record
//!   is written into it, so a file with a valid header never loses its name;
//! - a failed write or fsync puts the `Log` in a failed state: every later
//!   append or flush returns `Error::Failed`, never a pretended success;
//! - everything read from disk is bounds-checked; a record whose length or
//!   checksum does not hold is the torn tail (the end of the log) in the
//!   last file and `Error::Corrupt` (file and offset) in an earlier one
//!   (`OnBadRecord`).
//! - files are created at their full size and records written into the
//!   zeros; the newest file's records end at its zero tail (a record header
//!   of zeros), every older file at its last record (it is cut, and the cut
//!   fsynced, before the next file exists): see `storage/logfiles.rs`.
//!
//! Log file names, the file header and which files make up the log are
//! `storage/logfiles.rs` (re-exported here).
//!
//! # Record framing (`RECORD_HEADER_SIZE` = 21 bytes, then the payload)
//!
//! ```text
//! offset size  field
//!   0     4    len             the whole record, header included
//!   4     4    prev_len        len of the previous record in this file, 0
//!                              for the first (lets readers walk backwards)
//!   8     4    crc32           of bytes 0..8 and 12..len
//!  12     1    type            Record type (1..=9, below)
//!  13     8    txn id          TxnId (0 for records outside transactions)
//!  21     -    payload         len - 21 bytes
//! ```
//!
//! The LSN of a record is (file number, offset of its `len` field).
//!
//! # Payloads (`blob` = u32 length, then that many bytes)
//!
//! ```text
//! 1 file_create  file_id u32, page_size u32, name blob
//! 2 file_remove  file_id u32, name blob
//! 3 file_rename  file_id u32, old blob, new blob
//! 4 page_image   file_id u32, pgno u32, image blob
//! 5 page_delta   file_id u32, pgno u32, prev_lsn u64, count u32,
//!                count x (offset u32, bytes blob)
//! 6 commit       timestamp u64 (unix seconds)
//! 7 checkpoint   redo_lsn u64, last_ckp u64, timestamp u64, count u32,
//!                count x (file_id u32, name blob)
//! 8 bulk_marker  file_id u32, first_new u32, last u32
//! 9 epoch        epoch u64, begins u64, continues u64 (version 2: a
//!                replica store's promotion, outside any transaction)
//! ```
//!
//! Version 2 added the epoch record; a program that reads only version 1
//! names the version of a newer file instead of failing on the record.
//!
//! LSNs inside payloads are `Lsn::to_u64`. Names are paths relative to the
//! environment's data directory, as raw bytes. A payload must be consumed
//! exactly: trailing bytes are corruption.

mod cursor;
pub mod history;
pub mod manifest;
mod record;
mod writer;

#[cfg(test)]
mod tests;

pub use cursor::{last_checkpoint, last_checkpoint_in, records_end, LogCursor, OnBadRecord};
pub use record::{Checkpoint, PageRecord, Record, RecordError};
pub use writer::{Durable, Log};

pub(crate) use crate::storage::logfiles::is_torn_creation;
#[cfg(test)]
use crate::storage::logfiles::live_log_files;
pub use crate::storage::logfiles::{
    list_log_files, log_name, log_path, parse_log_name, preallocated_len, FileHeader,
    DEFAULT_LG_MAX, FILE_HEADER_SIZE, FIRST_RECORD_OFFSET, LOG_FILE_MODE, LOG_MAGIC, LOG_VERSION,
    MIN_LG_MAX,
};
#[cfg(test)]
use crate::storage::logfiles::{
    HDR_CRC, HDR_ENV_ID, HDR_FILE_NO, HDR_LAST_CKP, HDR_MAGIC, HDR_VERSION,
};
use std::mem::size_of;

const REC_LEN: usize = 0;
const REC_PREV_LEN: usize = REC_LEN + size_of::<u32>();
const REC_CRC: usize = REC_PREV_LEN + size_of::<u32>();
const REC_TYPE: usize = REC_CRC + size_of::<u32>();
const REC_TXN: usize = REC_TYPE + size_of::<u8>();
/// Size of the framing in front of every record's payload.
pub const RECORD_HEADER_SIZE: usize = REC_TXN + size_of::<u64>();
/// Largest record (header included) the format allows: it must fit after a
/// file header with its end offset still a u32.
pub const MAX_RECORD_LEN: usize = (u32::MAX - FIRST_RECORD_OFFSET) as usize;
