//! After redo of a copy: are the pages of every bulk load it replayed in
//! the database files?
//!
//! A bulk-mode transaction writes the pages it adds to a file straight to
//! the file (fsynced before its commit) and logs only a marker naming their
//! range (DESIGN.md section 4). Redo of a copy therefore cannot bring them
//! back: they are in the copy only if its database file was copied after
//! that commit. A copy taken before it has a meta page (from the log)
//! pointing at pages the file does not hold, or holds older versions of.
//!
//! The check reads, for every marker redo replayed whose database still
//! exists at the end, each page of its range up to the file's last page:
//! the page must be there, its checksum must hold, and its LSN must be no
//! older than the bulk transaction (its pages are stamped with the log
//! position at which the transaction began to append: the first of its
//! markers, or the end of the previous log file when its records opened a
//! new one). A marker whose pages are present and intact is fine; only
//! missing or older pages are damage. What it cannot see: a copy taken
//! while the transaction ran that holds an intermediate version of a page
//! it wrote twice (same stamp); a full backup avoids that by noting where
//! the log was before it copied (`backup.rs`).

use crate::error::{Error, Location, Result};
use crate::recovery::RecoveryOutcome;
use crate::storage::layout::{probe_db, Layout};
use crate::storage::page::{self, Meta, PageCheck};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::{FileId, Lsn, PageNo, TxnId};
use crate::wal::{LogCursor, OnBadRecord, Record, FIRST_RECORD_OFFSET};
use std::path::PathBuf;

/// Pages read per call.
const CHUNK: usize = 1 << 20;

/// A database whose bulk-loaded pages are not (all) in the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDamage {
    pub file_id: FileId,
    /// The database's name and path at the end of redo.
    pub name: String,
    pub path: PathBuf,
    /// The marker of the bulk load, and the pages it wrote.
    pub marker: Lsn,
    pub first: PageNo,
    pub last: PageNo,
    /// The first page found wrong, what is wrong with it, and how many
    /// pages of the range are wrong.
    pub page: PageNo,
    pub problem: String,
    pub bad_pages: u64,
}

impl BulkDamage {
    /// The one-line error of a recovery that found this: what is wrong and
    /// what to do (a fresh copy of the file, then the log, then recovery).
    pub fn to_error(&self) -> Error {
        Error::corrupt(
            &self.path,
            Location::Page(self.page),
            format!(
                "{} ({} of pages {}-{} wrong): the bulk load committed at {} wrote them straight to the database file, not to the log, so recovery cannot restore them; a fresh copy of {} is needed: copy it again from the source, then the log files, and run recovery again",
                self.problem, self.bad_pages, self.first, self.last, self.marker, self.name
            ),
        )
    }
}

/// The databases of `layout` (a copy redo just wrote) that lack pages of a
/// bulk load redo replayed: one entry per database, the first marker found
/// wrong, in the order of the markers.
pub fn damaged_bulk_loads(
    vfs: &SharedVfs,
    layout: &Layout,
    outcome: &RecoveryOutcome,
) -> Result<Vec<BulkDamage>> {
    let Some(&first) = outcome.bulk_markers.first() else {
        return Ok(Vec::new());
    };
    let mut cur = LogCursor::open_from(
        vfs.clone(),
        &layout.log_dir,
        OnBadRecord::EndOfLog,
        first.file,
    )?;
    let mut out: Vec<BulkDamage> = Vec::new();
    for &lsn in &outcome.bulk_markers {
        cur.seek(lsn)?;
        let Some((
            at,
            txn,
            Record::BulkMarker {
                file_id,
                first_new,
                last,
            },
        )) = cur.next()?
        else {
            return Err(cur.corrupt_at(lsn, "redo replayed a bulk marker here, but there is none"));
        };
        if at != lsn || out.iter().any(|d| d.file_id == file_id) {
            continue;
        }
        let Some(name) = outcome.files.get(&file_id) else {
            continue; // removed later in the log: nothing left to check
        };
        let stamp = stamp_floor(&mut cur, lsn, txn)?;
        let path = layout.db_path(vfs, name);
        if let Some((page, problem, bad_pages)) = check_range(vfs, &path, first_new, last, stamp)? {
            out.push(BulkDamage {
                file_id,
                name: name.clone(),
                path,
                marker: lsn,
                first: first_new,
                last,
                page,
                problem,
                bad_pages,
            });
        }
    }
    Ok(out)
}

/// The oldest LSN a page of the bulk transaction `txn` (one of whose
/// markers is at `marker`) can carry: the end of the log when it began to
/// append, which is where the record before its first marker ends (in the
/// file before, when that marker opened a new file).
fn stamp_floor(cur: &mut LogCursor, marker: Lsn, txn: TxnId) -> Result<Lsn> {
    cur.seek(marker)?;
    let mut first = marker;
    loop {
        match cur.prev()? {
            Some((at, t, Record::BulkMarker { .. })) if t == txn => first = at,
            Some(_) => {
                cur.next()?;
                return Ok(cur.position());
            }
            // Nothing before it in the files present: if it opened its
            // file, the pages may carry the end of the (absent) one before.
            None if first.offset > FIRST_RECORD_OFFSET => return Ok(first),
            None => return Ok(Lsn::new(first.file.saturating_sub(1), 0)),
        }
    }
}

/// The first page of `first..=last` (up to the file's last page) that is
/// missing, torn or older than `stamp`, what is wrong with it, and how
/// many pages are; `None` when all are sound.
fn check_range(
    vfs: &SharedVfs,
    path: &std::path::Path,
    first: PageNo,
    last: PageNo,
    stamp: Lsn,
) -> Result<Option<(PageNo, String, u64)>> {
    if !vfs.exists(path) {
        return Ok(Some((first, "the database file is missing".into(), 0)));
    }
    let Some(ps) = probe_db(vfs, path) else {
        return Ok(Some((
            PageNo::META,
            "its meta page is unreadable".into(),
            0,
        )));
    };
    let ps = ps as usize;
    let h = vfs.open(path, OpenMode::Read)?;
    let mut meta = vec![0u8; ps];
    let got = h.read_at(&mut meta, 0)?;
    let Ok(m) = Meta::decode(&meta[..got]) else {
        return Ok(Some((
            PageNo::META,
            "its meta page is unreadable".into(),
            0,
        )));
    };
    let hi = last.0.min(m.last_pgno.0);
    if first.0 > hi {
        return Ok(None);
    }
    let len = h.len()?;
    let mut found: Option<(PageNo, String)> = None;
    let mut bad = 0u64;
    let per_chunk = (CHUNK / ps).max(1) as u32;
    let mut buf = vec![0u8; per_chunk as usize * ps];
    let mut p = first.0;
    while p <= hi {
        let n = per_chunk.min(hi - p + 1);
        let off = u64::from(p) * ps as u64;
        let want = n as usize * ps;
        let got = if off < len {
            h.read_at(&mut buf[..want], off)?
        } else {
            0
        };
        for i in 0..n {
            let no = PageNo(p + i);
            let at = i as usize * ps;
            let problem = if at + ps > got {
                Some(format!(
                    "is missing (the file ends at page {})",
                    (len / ps as u64).saturating_sub(1)
                ))
            } else {
                let pg = &buf[at..at + ps];
                match page::check(pg, no) {
                    PageCheck::Ok if page::lsn(pg) < stamp => {
                        Some(format!("is older ({}) than the bulk load", page::lsn(pg)))
                    }
                    PageCheck::Ok => None,
                    PageCheck::Unwritten => Some("was never written".into()),
                    _ => Some("fails its checksum".into()),
                }
            };
            if let Some(what) = problem {
                bad += 1;
                found.get_or_insert((no, what));
            }
        }
        p += n;
    }
    Ok(found.map(|(no, what)| (no, what, bad)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::{Env, EnvOptions};
    use crate::recovery::{self, RecoveryMode, RecoveryOptions};
    use crate::storage::vfs::OsVfs;
    use std::path::Path;

    /// Bulk loads of every shape into `home`: a bottom-up build, unsorted
    /// puts that spill pages and write some of them twice, two databases
    /// in one transaction, with small log files so records open new ones.
    fn bulk_loads(home: &Path) -> Env {
        let mut o = EnvOptions::create();
        o.lg_max = Some(8 * 1024);
        o.cache_size = Some(64 * 1024);
        o.page_size = Some(512);
        let env = Env::open(home, o).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        t.put(&a, b"k", b"v").unwrap();
        t.commit().unwrap();
        env.checkpoint().unwrap();
        let mut t = env.begin_bulk().unwrap();
        let b = t.create_db("built.db", None).unwrap();
        let mut bb = t.bulk_builder(&b).unwrap().unwrap();
        for i in 0..3000u32 {
            t.build_push(&mut bb, format!("k{i:06}").as_bytes(), &[7u8; 40])
                .unwrap();
        }
        t.build_finish(bb).unwrap();
        t.commit().unwrap();
        let mut t = env.begin_bulk().unwrap();
        let c = t.create_db("spilled.db", None).unwrap();
        let d = t.create_db("second.db", None).unwrap();
        for i in 0..3000u32 {
            let k = (i * 7919) % 3000; // unsorted: pages are revisited
            t.put(&c, format!("k{k:06}").as_bytes(), &[9u8; 60])
                .unwrap();
            t.put(&d, format!("k{i:06}").as_bytes(), &[3u8; 30])
                .unwrap();
        }
        t.commit().unwrap();
        env
    }

    fn recover(home: &Path, mode: RecoveryMode) -> RecoveryOutcome {
        let vfs = OsVfs::shared();
        let layout = Layout::resolve(&vfs, home).unwrap();
        recovery::recover(
            &vfs,
            &layout,
            RecoveryOptions {
                mode,
                write: true,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn bulk_loads_whose_pages_are_on_disk_are_sound() {
        let d = tempfile::tempdir().unwrap();
        drop(bulk_loads(d.path()));
        let o = recover(d.path(), RecoveryMode::Catastrophic);
        assert!(o.bulk_markers.len() >= 3, "{:?}", o.bulk_markers);
        let vfs = OsVfs::shared();
        let layout = Layout::resolve(&vfs, d.path()).unwrap();
        assert_eq!(damaged_bulk_loads(&vfs, &layout, &o).unwrap(), vec![]);
    }

    /// A bulk transaction whose first record opens a new log file stamps
    /// its pages with the end of the file before: still sound. Small
    /// commits fill the log until the marker no longer fits.
    #[test]
    fn a_bulk_load_whose_marker_opens_a_log_file_is_sound() {
        let d = tempfile::tempdir().unwrap();
        let mut o = EnvOptions::create();
        o.lg_max = Some(4096);
        o.cache_size = Some(64 * 1024);
        o.page_size = Some(512);
        let env = Env::open(d.path(), o).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        let vfs = OsVfs::shared();
        let marker_len = crate::wal::RECORD_HEADER_SIZE as u64 + 12;
        // The end of the log, not the newest file's (preallocated) size.
        let room = || 4096 - u64::from(env.log_end().offset);
        let mut i = 0u32;
        while room() >= marker_len {
            let mut t = env.begin().unwrap();
            t.put(&a, &(i % 40).to_be_bytes(), &i.to_be_bytes())
                .unwrap();
            t.commit().unwrap();
            i += 1;
            assert!(i < 2000, "the log never came close enough to a file's end");
        }
        let mut t = env.begin_bulk().unwrap();
        let b = t.create_db("b.db", None).unwrap();
        // Past half the cache: most pages spill before the commit, stamped
        // with the log's end then, in the file before the marker's.
        for i in 0..3000u32 {
            t.put(&b, &i.to_be_bytes(), &[2u8; 50]).unwrap();
        }
        t.commit().unwrap();
        drop(env);
        let o = recover(d.path(), RecoveryMode::Catastrophic);
        assert_eq!(o.bulk_markers.len(), 1);
        assert_eq!(o.bulk_markers[0].offset, FIRST_RECORD_OFFSET);
        let layout = Layout::resolve(&vfs, d.path()).unwrap();
        assert_eq!(damaged_bulk_loads(&vfs, &layout, &o).unwrap(), vec![]);
    }

    /// A copy whose database files were taken before the loads: every
    /// loaded database is named, with its first wrong page, and so is one
    /// whose file holds older versions of the pages (not just a shorter
    /// file); a database loaded before the copy is not.
    #[test]
    fn a_copy_from_before_the_loads_is_damaged_in_every_loaded_database() {
        let d = tempfile::tempdir().unwrap();
        let (src, copy) = (d.path().join("src"), d.path().join("copy"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&copy).unwrap();
        drop(bulk_loads(&src));
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("log.") || name == "a.db" || name == "built.db" {
                std::fs::copy(e.path(), copy.join(&name)).unwrap();
            }
        }
        // second.db as an older file: every page there, sound, but from
        // before the load.
        let mut old = std::fs::read(src.join("second.db")).unwrap();
        for pg in old.chunks_mut(512).skip(1) {
            crate::storage::page::set_lsn(pg, Lsn::new(1, FIRST_RECORD_OFFSET));
            crate::storage::page::seal(pg);
        }
        std::fs::write(copy.join("second.db"), old).unwrap();
        let o = recover(&copy, RecoveryMode::Catastrophic);
        let vfs = OsVfs::shared();
        let layout = Layout::resolve(&vfs, &copy).unwrap();
        let damage = damaged_bulk_loads(&vfs, &layout, &o).unwrap();
        let found: Vec<(&str, &str)> = damage
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.problem.split(' ').take(2).last().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![("spilled.db", "missing"), ("second.db", "older")]
        );
        let e = damage[0].to_error().to_string();
        assert!(
            e.contains("spilled.db: page") && e.contains("a fresh copy of spilled.db"),
            "{e}"
        );
    }
}
