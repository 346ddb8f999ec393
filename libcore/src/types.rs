//! Newtypes for the numbers that name things on disk: log sequence numbers,
//! page numbers, transaction ids and database file ids. Keeping them apart in
//! the type system stops a page number from being passed where an LSN offset
//! is expected.

use std::fmt;

/// A log sequence number: the log file number and the byte offset of a
/// record inside that file. Ordered by (file, offset), which is log order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn {
    /// The log file's number (`log.0000000001` is 1).
    pub file: u32,
    /// The record's byte offset from the start of that file (its header
    /// included).
    pub offset: u32,
}

impl Lsn {
    /// The LSN older than every record: a page that was never written, or is
    /// torn, counts as having this LSN.
    pub const ZERO: Lsn = Lsn { file: 0, offset: 0 };

    /// The LSN of byte `offset` of log file `file`.
    pub const fn new(file: u32, offset: u32) -> Lsn {
        Lsn { file, offset }
    }

    /// True for `Lsn::ZERO`, which usually means "none".
    pub fn is_zero(self) -> bool {
        self == Lsn::ZERO
    }

    /// Packs into one u64 (file in the high half) for compact storage.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.file) << 32) | u64::from(self.offset)
    }

    /// Unpacks what `to_u64` packed.
    pub fn from_u64(v: u64) -> Lsn {
        Lsn {
            file: (v >> 32) as u32,
            offset: v as u32,
        }
    }

    /// Parses the command-line form `file/offset` used by `-b`/`-e`.
    pub fn parse_cli(s: &str) -> Option<Lsn> {
        let (f, o) = s.split_once('/')?;
        Some(Lsn {
            file: f.trim().parse().ok()?,
            offset: o.trim().parse().ok()?,
        })
    }
}

/// Prints as Berkeley DB does: `[file][offset]`.
impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}][{}]", self.file, self.offset)
    }
}

/// A page number inside one database file; page 0 is the meta page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageNo(pub u32);

impl PageNo {
    /// The meta page: page 0, which holds the file's magic, version, page
    /// size and tree root.
    pub const META: PageNo = PageNo(0);
    /// "No page": used for empty links (end of a chain, no sibling).
    pub const NONE: PageNo = PageNo(u32::MAX);

    /// True for `PageNo::NONE`, the empty link.
    pub fn is_none(self) -> bool {
        self == PageNo::NONE
    }
}

impl fmt::Display for PageNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A transaction id, unique within an environment's log history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// Identifies one database file inside an environment. Stored in the file's
/// meta page and in every log record that touches the file; never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Now, in unix seconds: the timestamps log records, the region and the
/// manifest store (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in unix milliseconds: the times replication stamps its status,
/// state and lease with (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_orders_by_file_then_offset() {
        assert!(Lsn::new(1, 900) < Lsn::new(2, 28));
        assert!(Lsn::new(2, 28) < Lsn::new(2, 29));
        assert_eq!(Lsn::from_u64(Lsn::new(7, 99).to_u64()), Lsn::new(7, 99));
        assert_eq!(Lsn::new(3, 28).to_string(), "[3][28]");
        assert_eq!(Lsn::parse_cli("3/28"), Some(Lsn::new(3, 28)));
        assert_eq!(Lsn::parse_cli("3-28"), None);
    }
}
