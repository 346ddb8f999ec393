//! The log's files as files: what they are called (`log.%010d`:
//! `log.0000000001`, `log.0000000002`, ...; numbers start at 1 and are
//! never reused), which are present and which make up the log, and the
//! 40-byte header every one starts with. The records inside are `wal/`'s;
//! this is below it so that `Layout` can tell what a directory holds
//! without the log layer.
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
//!   4     4    version         LOG_VERSION (3; versions 1 and 2 are read too)
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
//! # The zero tail (version 3)
//!
//! A log file is created at its full size ([`preallocated_len`]: `lg_max`
//! rounded up to 4 KiB) and its records are written into the zeros, so a
//! commit's fdatasync never has a file size to commit. The records of the
//! newest file therefore end at the first record header that is all zero
//! (or the file's end): its *zero tail*. Before the log moves on to the
//! next file, the current one is cut to its last record and that cut is
//! fsynced, and only then is the next file created: every older file ends
//! exactly at its last record, as files of versions 1 and 2 always do, and
//! zeros in an older file are damage (`Error::Corrupt`), never an end.
//! Version 3 names the zero tail: a program that reads only versions 1
//! and 2 would take the file's size for the end of its records (a backup,
//! a replication master), so it refuses the file, naming its version.
//!

use crate::error::{Error, Location, Result};
use crate::storage::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::Lsn;
use std::mem::size_of;
use std::path::{Path, PathBuf};

/// `log.0000000001` for 1.
pub fn log_name(n: u32) -> String {
    // By hand rather than `format!("log.{n:010}")`: db_archive names
    // thousands of files, and the formatter's padding was most of its time.
    let mut b = *b"log.0000000000";
    let mut v = n;
    for d in b[4..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// The number in a log file name; `None` for anything that is not exactly
/// `log.` and ten digits naming a number from 1 up.
pub fn parse_log_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("log.")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.parse::<u32>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Path of log file `n` in `dir`.
pub fn log_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(log_name(n))
}

/// First four bytes of every log file.
pub const LOG_MAGIC: u32 = 0x474f_4c42;
/// The header/record format version this code writes (3: the newest
/// file may end in a zero tail; see the module's doc).
pub const LOG_VERSION: u32 = 3;
/// The oldest version it reads (version 1 lacks only the epoch record,
/// versions 1 and 2 the zero tail).
pub const LOG_VERSION_MIN: u32 = 1;
/// Mode of newly created log files.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Default maximum size of one log file (Berkeley DB's default, 10 MiB).
pub const DEFAULT_LG_MAX: u32 = 10 * 1024 * 1024;
/// Smallest accepted `lg_max`.
pub const MIN_LG_MAX: u32 = 4096;
/// The block size a new log file's size is rounded up to.
pub const PREALLOC_BLOCK: u64 = 4096;

/// The size a new log file is created at: `lg_max` rounded up to a whole
/// block, as Berkeley DB does, so every record the file can take lands in
/// bytes that already exist.
pub fn preallocated_len(lg_max: u32) -> u64 {
    u64::from(lg_max).div_ceil(PREALLOC_BLOCK) * PREALLOC_BLOCK
}

pub(crate) const HDR_MAGIC: usize = 0;
pub(crate) const HDR_VERSION: usize = HDR_MAGIC + size_of::<u32>();
pub(crate) const HDR_FILE_NO: usize = HDR_VERSION + size_of::<u32>();
/// The `lg_max` the file was created with (0 in files of older writers).
pub(crate) const HDR_LG_MAX: usize = HDR_FILE_NO + size_of::<u32>();
pub(crate) const HDR_ENV_ID: usize = HDR_LG_MAX + size_of::<u32>();
pub(crate) const HDR_LAST_CKP: usize = HDR_ENV_ID + size_of::<u64>();
pub(crate) const HDR_RESERVED2: usize = HDR_LAST_CKP + size_of::<u64>();
pub(crate) const HDR_CRC: usize = HDR_RESERVED2 + size_of::<u32>();
/// Size of the file header.
pub const FILE_HEADER_SIZE: usize = HDR_CRC + size_of::<u32>();
/// Offset of the first record of every log file.
pub const FIRST_RECORD_OFFSET: u32 = FILE_HEADER_SIZE as u32;

/// The present log file numbers in `dir`, sorted (gaps not checked by the
/// caller's lights, but never made up by the listing itself).
///
/// A directory listing is not atomic: read while an owner creates log
/// files N+1 and N+2 in quick succession it can return N+2 without N+1,
/// and read while `db_archive -d` removes N and then N+1 it can return N
/// without N+1. Either looks like a gap, which every reader reports as a
/// missing log file. A listing with a gap is therefore taken again until
/// two in a row agree: a real gap stays, a race does not.
pub fn list_log_files(vfs: &SharedVfs, dir: &Path) -> Result<Vec<u32>> {
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

fn list_once(vfs: &SharedVfs, dir: &Path) -> Result<Vec<u32>> {
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
pub fn live_log_files(vfs: &SharedVfs, dir: &Path) -> Result<Vec<u32>> {
    let mut nums = list_log_files(vfs, dir)?;
    if let Some(&last) = nums.last() {
        // A file that cannot be opened is not judged here.
        if let Ok(f) = vfs.open(&log_path(dir, last), OpenMode::Read) {
            if is_torn_creation(&*f)? {
                nums.pop();
            }
        }
    }
    Ok(nums)
}

/// True for a file that a crash left while it was being created: shorter
/// than a header, a header of zeroes, or a header whose checksum fails
/// (its write was torn) followed by nothing but zeros (the preallocated
/// size may have survived without the header). The header is fsynced
/// before any record is written into the file, so such a file holds
/// nothing; a file with bytes after a bad header is damage, not an
/// interrupted creation.
pub(crate) fn is_torn_creation(f: &dyn VFile) -> Result<bool> {
    let mut b = [0u8; FILE_HEADER_SIZE];
    let n = f.read_at(&mut b, 0)?;
    if n < FILE_HEADER_SIZE || b.iter().all(|&x| x == 0) {
        return Ok(true);
    }
    if FileHeader::checksum_holds(&b) {
        return Ok(false);
    }
    zeros_from(f, FILE_HEADER_SIZE as u64)
}

/// Whether every byte of `f` from `off` to its end is zero. Read in
/// blocks: only a file whose header failed gets here, which is rare.
fn zeros_from(f: &dyn VFile, off: u64) -> Result<bool> {
    let len = f.len()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = off;
    while at < len {
        let want = buf.len().min((len - at) as usize);
        let n = f.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&x| x != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
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

/// The unbroken run of file numbers just below `top` in `files`
/// (ascending, no duplicates), ascending: Berkeley DB's "count down and
/// stop at the first missing file".
pub(crate) fn run_below(files: &[u32], top: u32) -> Vec<u32> {
    let end = files.partition_point(|&n| n < top);
    let mut start = end;
    let mut want = top;
    while start > 0 && want > 1 && files[start - 1] == want - 1 {
        start -= 1;
        want -= 1;
    }
    files[start..end].to_vec()
}
