//! `db_verify`: checks one database file as it is on disk: every page's
//! checksum and number, then the B-tree's structure (order, separators,
//! sibling links, overflow chains, free list, page accounting) through
//! `btree::verify`. A file shorter than its meta page says is one problem
//! naming the missing range, not one per missing page. Run it on a closed or recovered environment: a live
//! owner's cache may hold newer pages than the file.

use crate::btree;
use crate::error::{Error, Location, Result};
use crate::storage::page::{self, Meta, PageCheck, META_PROBE};
use crate::storage::pagestore::{PageBuf, PageRead};
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::PageNo;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One thing wrong with a database file, as `db_verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The page it was found on; `None` when it concerns the file as a
    /// whole (its length, its page accounting).
    pub page: Option<PageNo>,
    /// What is wrong, for a person to read.
    pub what: String,
}

/// What `verify_file` checks besides the pages and links.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// `-o`: skip the key-order checks (kept for Berkeley DB scripts that
    /// pass it for databases with their own comparator).
    pub skip_order: bool,
}

/// The raw pages of a file, checksums not enforced (they are checked
/// separately, so structure can still be examined around a bad page).
struct RawFile {
    path: PathBuf,
    handle: Box<dyn VFile>,
    page_size: usize,
}

impl PageRead for RawFile {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn page(&self, no: PageNo) -> Result<PageBuf> {
        let mut buf = vec![0u8; self.page_size];
        let n = self
            .handle
            .read_at(&mut buf, u64::from(no.0) * self.page_size as u64)?;
        if n < self.page_size {
            return Err(Error::corrupt(
                &self.path,
                Location::Page(no),
                "page is past the end of the file",
            ));
        }
        Ok(Arc::new(buf))
    }
}

/// Checks the database file `path` (see the module comment) and returns
/// every problem found, none for a sound file. A file that is not a
/// database of this format is one problem on page 0; only a file that
/// cannot be opened or read is an error.
pub fn verify_file(vfs: &SharedVfs, path: &Path, opts: VerifyOptions) -> Result<Vec<Problem>> {
    let handle = vfs.open(path, OpenMode::Read)?;
    let len = handle.len()?;
    let mut head = [0u8; META_PROBE];
    if handle.read_at(&mut head, 0)? < META_PROBE {
        return Ok(vec![Problem {
            page: Some(PageNo(0)),
            what: "incomplete metadata page".into(),
        }]);
    }
    let page_size = match Meta::probe(&head) {
        Ok(ps) => ps as usize,
        Err(e) => {
            let why = match e {
                page::MetaError::NotADatabase => "bad magic".to_string(),
                page::MetaError::Version(v) => format!(
                    "unsupported format version {v} (this program reads version {})",
                    page::DB_VERSION
                ),
                page::MetaError::BadPageSize(p) => format!("bad page size {p}"),
            };
            return Ok(vec![Problem {
                page: Some(PageNo(0)),
                what: format!("not a database of this format: {why}"),
            }]);
        }
    };
    let file = RawFile {
        path: path.to_path_buf(),
        handle,
        page_size,
    };
    let mut problems = Vec::new();
    if len % page_size as u64 != 0 {
        problems.push(Problem {
            page: None,
            what: format!("file size {len} is not a multiple of the page size {page_size}"),
        });
    }
    let pages = len / page_size as u64;
    for n in 0..pages {
        let no = PageNo(n as u32);
        let buf = file.page(no)?;
        match page::check(&buf, no) {
            PageCheck::Ok => {}
            PageCheck::Unwritten => {}
            PageCheck::BadChecksum => problems.push(Problem {
                page: Some(no),
                what: "checksum mismatch".into(),
            }),
            PageCheck::WrongNumber(o) => problems.push(Problem {
                page: Some(no),
                what: format!("page claims to be page {o}"),
            }),
        }
    }
    if problems.iter().any(|p| p.page == Some(PageNo(0))) {
        return Ok(problems); // no trustworthy meta page: stop here
    }
    if let Some(short) = truncation(&file, len)? {
        // Every page past the end would fail on its own (unreachable,
        // neither in use nor free): one line says it all.
        return Ok(vec![short]);
    }
    match btree::verify(&file) {
        Ok(v) => {
            for p in v {
                let order = p.what.contains("out of order") || p.what.contains("separator");
                if opts.skip_order && order {
                    continue;
                }
                problems.push(Problem {
                    page: Some(p.page),
                    what: p.what,
                });
            }
        }
        Err(Error::Corrupt { at, what, .. }) => problems.push(Problem {
            page: match at {
                Location::Page(p) => Some(p),
                _ => None,
            },
            what,
        }),
        Err(e) => return Err(e),
    }
    Ok(problems)
}

/// The one problem of a file shorter than its (sound) meta page says: the
/// range of pages missing at its end, or `None` when none is.
fn truncation(file: &RawFile, len: u64) -> Result<Option<Problem>> {
    let meta = match Meta::decode(&file.page(PageNo::META)?) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let page_size = file.page_size as u64;
    let expected = u64::from(meta.last_pgno.0) + 1;
    let whole = len / page_size;
    if whole >= expected {
        return Ok(None);
    }
    let missing = if whole + 1 == expected {
        format!("page {whole} is missing")
    } else {
        format!("pages {whole} to {} are missing", expected - 1)
    };
    let partial = if !len.is_multiple_of(page_size) {
        format!(", not a multiple of the page size {page_size}")
    } else {
        String::new()
    };
    Ok(Some(Problem {
        page: None,
        what: format!(
            "file is truncated: {len} bytes{partial}, the meta page counts {expected} pages; {missing}"
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::{Env, EnvOptions};
    use crate::storage::vfs::OsVfs;

    #[test]
    fn a_sound_file_passes_and_a_flipped_byte_is_reported_with_its_page() {
        let d = tempfile::tempdir().unwrap();
        let env = Env::open(d.path(), EnvOptions::create()).unwrap();
        {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", Some(512)).unwrap();
            for i in 0..300u32 {
                t.put(&db, &i.to_be_bytes(), &[9u8; 40]).unwrap();
            }
            t.commit().unwrap();
        }
        env.close().unwrap();
        let vfs = OsVfs::shared();
        let p = d.path().join("a.db");
        assert_eq!(
            verify_file(&vfs, &p, VerifyOptions::default()).unwrap(),
            vec![]
        );
        let mut raw = std::fs::read(&p).unwrap();
        raw[3 * 512 + 200] ^= 1;
        std::fs::write(&p, raw).unwrap();
        let v = verify_file(&vfs, &p, VerifyOptions::default()).unwrap();
        assert_eq!(v[0].page, Some(PageNo(3)), "{v:?}");
    }
}
