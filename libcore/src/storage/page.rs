//! The page header every database page starts with, the meta page (page 0),
//! and the page checksum. Byte layout (all integers little-endian; the
//! authority is man/db_format.5):
//!
//! ```text
//! offset size  field
//!   0     4    crc32 of bytes 4..page_size (this field excluded)
//!   4     4    page LSN: file number
//!   8     4    page LSN: offset
//!  12     4    page number (a page copied to the wrong place fails here)
//!  16     1    page type (PageType)
//!  17    15    access-method header (btree.rs owns it)
//!  32     -    access-method data
//! ```
//!
//! A page whose checksum fails is *torn*: it counts as older than every log
//! record, and redo repairs it from a full page image.

use crate::storage::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
use crate::types::{FileId, Lsn, PageNo};

/// Size of the header every page starts with (the tests check the layout
/// against it).
#[cfg(any(test, feature = "testing"))]
pub const PAGE_HEADER_SIZE: usize = 32;
pub const MIN_PAGE_SIZE: usize = 512;
pub const MAX_PAGE_SIZE: usize = 65536;
pub const DEFAULT_PAGE_SIZE: usize = 4096;

/// Bytes 0..LSN_END (crc and LSN) are set by whoever writes the page: redo
/// and the cache. Log records of page changes cover the rest.
pub const LSN_END: usize = 12;

const OFF_CRC: usize = 0;
const OFF_LSN_FILE: usize = 4;
const OFF_LSN_OFFSET: usize = 8;
const OFF_PGNO: usize = 12;
const OFF_TYPE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// All zeroes: allocated in the file but never written.
    Unwritten = 0,
    Meta = 1,
    Internal = 2,
    Leaf = 3,
    Overflow = 4,
    Free = 5,
}

impl PageType {
    pub fn from_u8(v: u8) -> Option<PageType> {
        Some(match v {
            0 => PageType::Unwritten,
            1 => PageType::Meta,
            2 => PageType::Internal,
            3 => PageType::Leaf,
            4 => PageType::Overflow,
            5 => PageType::Free,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PageType::Unwritten => "unwritten",
            PageType::Meta => "meta",
            PageType::Internal => "btree internal",
            PageType::Leaf => "btree leaf",
            PageType::Overflow => "overflow",
            PageType::Free => "free",
        }
    }
}

pub fn valid_page_size(n: usize) -> bool {
    (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&n) && n.is_power_of_two()
}

pub fn lsn(page: &[u8]) -> Lsn {
    Lsn::new(get_u32(page, OFF_LSN_FILE), get_u32(page, OFF_LSN_OFFSET))
}

pub fn set_lsn(page: &mut [u8], lsn: Lsn) {
    put_u32(page, OFF_LSN_FILE, lsn.file);
    put_u32(page, OFF_LSN_OFFSET, lsn.offset);
}

pub fn pgno(page: &[u8]) -> PageNo {
    PageNo(get_u32(page, OFF_PGNO))
}

pub fn page_type(page: &[u8]) -> Option<PageType> {
    PageType::from_u8(page[OFF_TYPE])
}

/// Starts a fresh page: zeroes it, then sets number and type.
pub fn init(page: &mut [u8], no: PageNo, ty: PageType) {
    page.fill(0);
    put_u32(page, OFF_PGNO, no.0);
    page[OFF_TYPE] = ty as u8;
}

/// Computes and stores the checksum; called right before a page is written.
pub fn seal(page: &mut [u8]) {
    let c = crc32(&page[OFF_CRC + 4..]);
    put_u32(page, OFF_CRC, c);
}

/// What a page read from disk turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCheck {
    Ok,
    /// All zero bytes: space the file has but no write ever reached.
    Unwritten,
    /// Checksum fails: a torn or damaged write.
    BadChecksum,
    /// Checksum holds but the page says it is another page.
    WrongNumber(PageNo),
}

pub fn check(page: &[u8], expect: PageNo) -> PageCheck {
    if get_u32(page, OFF_CRC) != crc32(&page[OFF_CRC + 4..]) {
        if page.iter().all(|&b| b == 0) {
            return PageCheck::Unwritten;
        }
        return PageCheck::BadChecksum;
    }
    let n = pgno(page);
    if n != expect {
        return PageCheck::WrongNumber(n);
    }
    PageCheck::Ok
}

// ---------------------------------------------------------------------------
// The meta page (page 0 of every database file).
// ---------------------------------------------------------------------------

/// The magic number in every database file's meta page: tells our
/// database files from anything else.
pub const DB_MAGIC: u32 = 0x4244_4c43; // "CLDB" read as little-endian bytes
/// The database file format version this build reads and writes; a file
/// of another version is refused with an `Error::Version`.
pub const DB_VERSION: u32 = 1;

const M_MAGIC: usize = 32;
const M_VERSION: usize = 36;
const M_PAGE_SIZE: usize = 40;
const M_FILE_ID: usize = 44;
const M_ROOT: usize = 48;
const M_FREE_HEAD: usize = 52;
const M_LAST_PGNO: usize = 56;
const M_NKEYS: usize = 60;
/// Bytes of the meta page that must be read to learn the page size.
pub const META_PROBE: usize = 64;
/// End of the meta page's fields (the tests check the layout against it).
#[cfg(test)]
pub const META_END: usize = 68;

/// The decoded meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub file_id: FileId,
    pub root: PageNo,
    /// Head of the free-page list (linked through each free page's `next`).
    pub free_head: PageNo,
    /// Highest page number in use or on the free list.
    pub last_pgno: PageNo,
    /// Number of key/value pairs, kept for `db_stat`.
    pub nkeys: u64,
}

/// Why a file's first page is not a meta page of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaError {
    NotADatabase,
    Version(u32),
    BadPageSize(u32),
}

impl Meta {
    /// Reads the magic, version and page size from the first bytes of a
    /// file (no checksum check: that needs the page size first).
    pub fn probe(head: &[u8]) -> Result<u32, MetaError> {
        if head.len() < META_PROBE || get_u32(head, M_MAGIC) != DB_MAGIC {
            return Err(MetaError::NotADatabase);
        }
        let v = get_u32(head, M_VERSION);
        if v != DB_VERSION {
            return Err(MetaError::Version(v));
        }
        let ps = get_u32(head, M_PAGE_SIZE);
        if !valid_page_size(ps as usize) {
            return Err(MetaError::BadPageSize(ps));
        }
        Ok(ps)
    }

    pub fn decode(page: &[u8]) -> Result<Meta, MetaError> {
        let page_size = Meta::probe(page)?;
        Ok(Meta {
            page_size,
            file_id: FileId(get_u32(page, M_FILE_ID)),
            root: PageNo(get_u32(page, M_ROOT)),
            free_head: PageNo(get_u32(page, M_FREE_HEAD)),
            last_pgno: PageNo(get_u32(page, M_LAST_PGNO)),
            nkeys: get_u64(page, M_NKEYS),
        })
    }

    /// Writes the meta fields into `page` (which must already be a meta page
    /// from `init`).
    pub fn encode(&self, page: &mut [u8]) {
        put_u32(page, M_MAGIC, DB_MAGIC);
        put_u32(page, M_VERSION, DB_VERSION);
        put_u32(page, M_PAGE_SIZE, self.page_size);
        put_u32(page, M_FILE_ID, self.file_id.0);
        put_u32(page, M_ROOT, self.root.0);
        put_u32(page, M_FREE_HEAD, self.free_head.0);
        put_u32(page, M_LAST_PGNO, self.last_pgno.0);
        put_u64(page, M_NKEYS, self.nkeys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(OFF_TYPE + 1 + 15, PAGE_HEADER_SIZE);
        assert_eq!(M_NKEYS + 8, META_END);
        const _: () = assert!(META_END <= MIN_PAGE_SIZE);
    }

    #[test]
    fn checksum_detects_a_flipped_bit_and_zero_pages_are_unwritten() {
        let mut p = vec![0u8; 4096];
        assert_eq!(check(&p, PageNo(5)), PageCheck::Unwritten);
        init(&mut p, PageNo(5), PageType::Leaf);
        set_lsn(&mut p, Lsn::new(2, 100));
        seal(&mut p);
        assert_eq!(check(&p, PageNo(5)), PageCheck::Ok);
        assert_eq!(check(&p, PageNo(6)), PageCheck::WrongNumber(PageNo(5)));
        p[1000] ^= 0x10;
        assert_eq!(check(&p, PageNo(5)), PageCheck::BadChecksum);
    }

    #[test]
    fn meta_round_trips() {
        let mut p = vec![0u8; 512];
        init(&mut p, PageNo::META, PageType::Meta);
        let m = Meta {
            page_size: 512,
            file_id: FileId(9),
            root: PageNo(1),
            free_head: PageNo::NONE,
            last_pgno: PageNo(1),
            nkeys: 3,
        };
        m.encode(&mut p);
        assert_eq!(Meta::decode(&p), Ok(m));
        assert_eq!(Meta::probe(&[0u8; 64]), Err(MetaError::NotADatabase));
    }
}
