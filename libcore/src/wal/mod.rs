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
//!
//! # File names
//!
//! `log.%010d`: `log.0000000001`, `log.0000000002`, ... Numbers start at 1
//! and are never reused ([`log_name`], [`parse_log_name`]).
//!
//! # File header (`FILE_HEADER_SIZE` = 40 bytes)
//!
//! All integers little-endian (see `codec`).
//!
//! ```text
//! offset size  field
//!   0     4    magic           LOG_MAGIC (0x474f_4c42, bytes "BLOG")
//!   4     4    version         LOG_VERSION (2; version 1 files are read too)
//!   8     4    file number     the N of log.N; must equal the name
//!  12     4    reserved        0
//!  16     8    env_id          random id of the environment; all its log
//!                              files carry the same one
//!  24     8    last_ckp        Lsn::to_u64 of the last checkpoint record
//!                              written before this file was created, 0 if
//!                              none
//!  32     4    reserved        0
//!  36     4    crc32           of bytes 0..36
//!  40          first record    FIRST_RECORD_OFFSET
//! ```
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

pub(crate) use cursor::is_torn_creation;
pub use cursor::{last_checkpoint, last_checkpoint_in, LogCursor, OnBadRecord};
pub use record::{Checkpoint, PageRecord, Record, RecordError};
pub use writer::{Durable, Log};

use crate::error::{Error, Location, Result};
use crate::storage::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
pub use crate::storage::layout::{log_name, log_path, parse_log_name};
use crate::types::Lsn;
use std::mem::size_of;
use std::path::Path;

/// First four bytes of every log file.
pub const LOG_MAGIC: u32 = 0x474f_4c42;
/// The header/record format version this code writes.
pub const LOG_VERSION: u32 = 2;
/// The oldest version it reads (version 1 lacks only the epoch record).
pub const LOG_VERSION_MIN: u32 = 1;
/// Mode of newly created log files.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Default maximum size of one log file (Berkeley DB's default, 10 MiB).
pub const DEFAULT_LG_MAX: u32 = 10 * 1024 * 1024;
/// Smallest accepted `lg_max`.
pub const MIN_LG_MAX: u32 = 4096;

const HDR_MAGIC: usize = 0;
const HDR_VERSION: usize = HDR_MAGIC + size_of::<u32>();
const HDR_FILE_NO: usize = HDR_VERSION + size_of::<u32>();
/// The `lg_max` the file was created with (0 in files of older writers).
const HDR_LG_MAX: usize = HDR_FILE_NO + size_of::<u32>();
const HDR_ENV_ID: usize = HDR_LG_MAX + size_of::<u32>();
const HDR_LAST_CKP: usize = HDR_ENV_ID + size_of::<u64>();
const HDR_RESERVED2: usize = HDR_LAST_CKP + size_of::<u64>();
const HDR_CRC: usize = HDR_RESERVED2 + size_of::<u32>();
/// Size of the file header.
pub const FILE_HEADER_SIZE: usize = HDR_CRC + size_of::<u32>();
/// Offset of the first record of every log file.
pub const FIRST_RECORD_OFFSET: u32 = FILE_HEADER_SIZE as u32;

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

/// The present log file numbers in `dir`, sorted (gaps not checked by the
/// caller's lights, but never made up by the listing itself).
///
/// A directory listing is not atomic: read while an owner creates log
/// files N+1 and N+2 in quick succession it can return N+2 without N+1,
/// and read while `db_archive -d` removes N and then N+1 it can return N
/// without N+1. Either looks like a gap, which every reader reports as a
/// missing log file. A listing with a gap is therefore taken again until
/// two in a row agree: a real gap stays, a race does not.
pub fn list_log_files(vfs: &crate::storage::vfs::SharedVfs, dir: &Path) -> Result<Vec<u32>> {
    const MAX_LISTINGS: usize = 16;
    let mut nums = list_once(vfs, dir)?;
    for _ in 1..MAX_LISTINGS {
        if nums.windows(2).all(|w| w[1] == w[0] + 1) {
            break;
        }
        let again = list_once(vfs, dir)?;
        if again == nums {
            break;
        }
        nums = again;
    }
    Ok(nums)
}

fn list_once(vfs: &crate::storage::vfs::SharedVfs, dir: &Path) -> Result<Vec<u32>> {
    let mut nums: Vec<u32> = vfs
        .list(dir)?
        .iter()
        .filter_map(|n| n.to_str().and_then(parse_log_name))
        .collect();
    nums.sort_unstable();
    Ok(nums)
}

/// The log files of `dir` that make up its log: every present one but a
/// newest one whose creation a crash interrupted (or that an owner is
/// creating right now), which holds nothing yet (`is_torn_creation`). A
/// damaged file anywhere else is kept, for its reader to name.
pub fn live_log_files(vfs: &crate::storage::vfs::SharedVfs, dir: &Path) -> Result<Vec<u32>> {
    let mut nums = list_log_files(vfs, dir)?;
    if let Some(&last) = nums.last() {
        // A file that cannot be opened is not judged here.
        if let Ok(f) = vfs.open(&log_path(dir, last), crate::storage::vfs::OpenMode::Read) {
            if is_torn_creation(&*f)? {
                nums.pop();
            }
        }
    }
    Ok(nums)
}

/// The decoded header of one log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub file_no: u32,
    /// The log file size limit in force when the file was created.
    pub lg_max: u32,
    pub env_id: u64,
    pub last_ckp: Lsn,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; FILE_HEADER_SIZE] {
        let mut b = [0u8; FILE_HEADER_SIZE];
        put_u32(&mut b, HDR_MAGIC, LOG_MAGIC);
        put_u32(&mut b, HDR_VERSION, LOG_VERSION);
        put_u32(&mut b, HDR_FILE_NO, self.file_no);
        put_u32(&mut b, HDR_LG_MAX, self.lg_max);
        put_u64(&mut b, HDR_ENV_ID, self.env_id);
        put_u64(&mut b, HDR_LAST_CKP, self.last_ckp.to_u64());
        let crc = crc32(&b[..HDR_CRC]);
        put_u32(&mut b, HDR_CRC, crc);
        b
    }

    /// Whether the checksum of a header's bytes holds (a torn write of
    /// the header fails it).
    pub fn checksum_holds(b: &[u8; FILE_HEADER_SIZE]) -> bool {
        crc32(&b[..HDR_CRC]) == get_u32(b, HDR_CRC)
    }

    /// Checks magic, version, checksum and file number of the header of
    /// `path`, which must be log file `expect_no`.
    pub fn decode(path: &Path, b: &[u8], expect_no: u32) -> Result<FileHeader> {
        if b.len() < FILE_HEADER_SIZE {
            return Err(Error::corrupt(
                path,
                Location::Whole,
                "log file header is truncated",
            ));
        }
        let magic = get_u32(b, HDR_MAGIC);
        if magic != LOG_MAGIC {
            return Err(Error::Version {
                path: path.to_path_buf(),
                what: format!("not a log file (bad magic {:#010x})", magic),
            });
        }
        let version = get_u32(b, HDR_VERSION);
        if !(LOG_VERSION_MIN..=LOG_VERSION).contains(&version) {
            return Err(Error::Version {
                path: path.to_path_buf(),
                what: format!(
                    "unsupported log format version {} (this program reads versions {} to {})",
                    version, LOG_VERSION_MIN, LOG_VERSION
                ),
            });
        }
        if crc32(&b[..HDR_CRC]) != get_u32(b, HDR_CRC) {
            return Err(Error::corrupt(
                path,
                Location::Offset(0),
                "log file header checksum mismatch",
            ));
        }
        let file_no = get_u32(b, HDR_FILE_NO);
        if file_no != expect_no {
            return Err(Error::corrupt(
                path,
                Location::Offset(HDR_FILE_NO as u64),
                format!(
                    "log file header says file number {}, the name says {}",
                    file_no, expect_no
                ),
            ));
        }
        Ok(FileHeader {
            file_no,
            lg_max: get_u32(b, HDR_LG_MAX),
            env_id: get_u64(b, HDR_ENV_ID),
            last_ckp: Lsn::from_u64(get_u64(b, HDR_LAST_CKP)),
        })
    }
}
