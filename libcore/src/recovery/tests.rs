//! Redo over a real log, counted through `FaultyVfs`: what the page
//! table promises (`pages.rs`) holds for a whole recovery, and the result
//! is the committed state.

use super::batch::HOLD_LIMIT;
use super::*;
use crate::engine::env::{Env, EnvOptions};
use crate::test_support::faulty::{FaultyVfs, Op};

/// An environment of `n` transactions, each putting one key into a.db and
/// overwriting `last` in b.db (the writer's shape), closed cleanly.
fn build(home: &std::path::Path, n: u32) {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", None).unwrap();
    let b = t.create_db("b.db", None).unwrap();
    t.commit().unwrap();
    for j in 0..n {
        let mut t = env.begin().unwrap();
        t.put(&a, format!("k{j:05}").as_bytes(), &[j as u8; 300])
            .unwrap();
        t.put(&b, b"last", j.to_string().as_bytes()).unwrap();
        t.commit().unwrap();
    }
    env.close().unwrap();
}

/// Reads of each file's meta page outside redo: the data directory scan,
/// binding the file, and the cut after the last page (two files).
const META_READS: u64 = 3 * 2;

fn data_pages(home: &std::path::Path) -> u64 {
    ["a.db", "b.db"]
        .iter()
        .map(|n| std::fs::metadata(home.join(n)).unwrap().len() / 4096)
        .sum()
}

fn recover_counted(home: &std::path::Path) -> (RecoveryOutcome, std::sync::Arc<FaultyVfs>) {
    let vfs = data_file_counter();
    let out = recover_on(&vfs, home, false).unwrap();
    (out, vfs)
}

/// A `FaultyVfs` that counts (and fails) operations on data files only.
fn data_file_counter() -> std::sync::Arc<FaultyVfs> {
    let vfs = FaultyVfs::os();
    vfs.set_filter(|p| p.extension().is_some_and(|e| e == "db"));
    vfs
}

fn recover_on(
    vfs: &std::sync::Arc<FaultyVfs>,
    home: &std::path::Path,
    sync_behind: bool,
) -> Result<RecoveryOutcome> {
    let shared: SharedVfs = vfs.clone();
    let layout = Layout::resolve(&shared, home).unwrap();
    recover(
        &shared,
        &layout,
        RecoveryOptions {
            mode: RecoveryMode::Catastrophic,
            write: true,
            sync_behind,
            ..Default::default()
        },
    )
}

fn empty_data_files(home: &std::path::Path) {
    for n in ["a.db", "b.db"] {
        std::fs::File::options()
            .write(true)
            .open(home.join(n))
            .and_then(|f| f.set_len(0))
            .unwrap();
    }
}

#[test]
fn catastrophic_redo_over_current_pages_reads_each_page_at_most_once_and_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400);
    let (out, vfs) = recover_counted(dir.path());
    let c = vfs.counts();
    let pages = data_pages(dir.path());
    assert!(
        out.records > 3 * pages,
        "{} records, {pages} pages",
        out.records
    );
    assert!(
        c.reads <= pages + META_READS,
        "{} reads of {pages} pages",
        c.reads
    );
    assert_eq!(out.pages_applied, 0);
    assert_eq!(c.writes, 0);
}

#[test]
fn catastrophic_redo_onto_empty_files_reads_nothing_past_their_end_and_writes_in_runs() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400);
    let pages = data_pages(dir.path());
    // The data files as they were before any page was written: empty.
    empty_data_files(dir.path());
    let (out, vfs) = recover_counted(dir.path());
    let c = vfs.counts();
    assert_eq!(c.reads, META_READS, "no page read but the meta pages");
    assert!(out.pages_applied > pages);
    assert!(c.writes < pages, "{} writes of {pages} pages", c.writes);
    let env = Env::open(dir.path(), EnvOptions::default()).unwrap();
    let a = env.open_db("a.db").unwrap();
    let b = env.open_db("b.db").unwrap();
    assert_eq!(env.get(&b, b"last").unwrap(), Some(b"399".to_vec()));
    for j in [0u32, 123, 399] {
        assert_eq!(
            env.get(&a, format!("k{j:05}").as_bytes()).unwrap(),
            Some(vec![j as u8; 300])
        );
    }
}

/// More replayed pages than `BUFFER_LIMIT`: redo writes back during the
/// log, and with `sync_behind` fsyncs on its helper thread meanwhile.
#[test]
fn sync_behind_fsyncs_while_redo_runs_and_a_failed_background_sync_fails_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    {
        let mut o = EnvOptions::create();
        o.nosync = Some(true);
        let env = Env::open(home, o).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        t.create_db("b.db", None).unwrap();
        t.commit().unwrap();
        let big = BUFFER_LIMIT / 6000 + 600;
        for j in 0..big {
            let mut t = env.begin().unwrap();
            t.put(&a, format!("k{j:06}").as_bytes(), &[j as u8; 6000])
                .unwrap();
            t.commit().unwrap();
        }
        env.close().unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(home).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    empty_data_files(home);
    empty_data_files(copy.path());

    let vfs = data_file_counter();
    let out = recover_on(&vfs, home, true).unwrap();
    assert!(out.pages_applied as usize * 4096 > BUFFER_LIMIT);
    // The final sync of each file, and at least one sync behind redo.
    assert!(vfs.counts().get(Op::Sync) > 2, "{:?}", vfs.counts());
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let a = env.open_db("a.db").unwrap();
    assert_eq!(env.get(&a, b"k000007").unwrap(), Some(vec![7u8; 6000]));

    // The first data file sync is the one behind redo.
    let vfs = data_file_counter();
    vfs.fail_nth(Op::Sync, 1);
    let e = recover_on(&vfs, copy.path(), true).unwrap_err();
    assert!(
        crate::test_support::faulty::is_errno(&e, crate::test_support::faulty::EIO),
        "{e}"
    );
}

/// Writes a log record by record with the real appender, so every record
/// frames, checksums and decodes: what is hostile is only what it says.
struct HostileLog {
    log: crate::wal::Log,
}

impl HostileLog {
    fn new(home: &std::path::Path) -> HostileLog {
        let vfs: SharedVfs = crate::storage::vfs::OsVfs::shared();
        HostileLog {
            log: crate::wal::Log::create(vfs, home, 7, 1 << 20).unwrap(),
        }
    }

    fn push(&self, txn: u64, rec: Record) -> Lsn {
        self.log.lock().append(&[(TxnId(txn), &rec)]).unwrap()[0]
    }

    fn create(&self, txn: u64, id: u32, page_size: u32, name: &str) -> Lsn {
        self.push(
            txn,
            Record::FileCreate {
                file_id: FileId(id),
                page_size,
                name: name.as_bytes().to_vec(),
            },
        )
    }

    fn commit(&self, txn: u64) -> Lsn {
        self.push(txn, Record::Commit { timestamp: 1 })
    }
}

/// Every way redo runs over the log in `home`: read-only (in memory) and
/// written, normal and catastrophic; each must return, never panic.
fn recover_every_way(home: &std::path::Path) -> Vec<Result<RecoveryOutcome>> {
    let mut out = Vec::new();
    for write in [false, true] {
        for mode in [RecoveryMode::Normal, RecoveryMode::Catastrophic] {
            let vfs: SharedVfs = crate::storage::vfs::OsVfs::shared();
            let layout = Layout::resolve(&vfs, home).unwrap();
            out.push(recover(
                &vfs,
                &layout,
                RecoveryOptions {
                    mode,
                    write,
                    ..Default::default()
                },
            ));
        }
    }
    out
}

fn image_of(ps: usize, no: u32) -> Vec<u8> {
    let mut p = vec![0u8; ps];
    page::init(&mut p, PageNo(no), crate::storage::page::PageType::Leaf);
    p
}

#[test]
fn a_file_create_that_rebinds_an_id_with_another_page_size_forgets_the_old_pages() {
    // Regression (found reading the code, issue 9 defect 3): a CRC-valid
    // log whose second file create gave an id that already held a
    // replayed 512-byte page another page size (4096), followed by a
    // delta against that page near the end of a 4096-byte page, made
    // redo copy past the end of the old 512-byte buffer: a panic in
    // `db_recover`, in every read-only tool and in the owner's open,
    // instead of an answer. Records of a new binding of an id now never
    // meet what redo held for the old one.
    for second_name in ["a.db", "b.db"] {
        let dir = tempfile::tempdir().unwrap();
        let log = HostileLog::new(dir.path());
        log.create(1, 3, 512, "a.db");
        let img = log.push(
            1,
            Record::PageImage {
                file_id: FileId(3),
                pgno: PageNo(1),
                image: image_of(512, 1),
            },
        );
        log.commit(1);
        log.create(2, 3, 4096, second_name);
        log.push(
            2,
            Record::PageDelta {
                file_id: FileId(3),
                pgno: PageNo(1),
                prev_lsn: img,
                ranges: vec![(4000, vec![7; 16])],
            },
        );
        log.commit(2);
        drop(log);
        for r in recover_every_way(dir.path()) {
            // The delta waits for a page the new binding never had.
            match r {
                Err(Error::LogSequence { page, missing, .. }) => {
                    assert_eq!((page, missing), (PageNo(1), img))
                }
                other => panic!("{second_name}: {other:?}"),
            }
        }
    }
}

#[test]
fn an_empty_delta_or_image_on_a_file_of_unknown_page_size_is_an_error() {
    // Regression (issue 9 defect 3): a checkpoint naming a file that is
    // not on disk leaves its page size unknown (0) until an image tells
    // it. A CRC-valid delta with no ranges against a page "never written"
    // (previous LSN zero) passed every check and stamped its LSN into a
    // page buffer of 0 bytes; an empty image did the same: a panic in
    // every recovery and read-only open. Both are refused now, naming the
    // log file and offset (our writer logs neither).
    for what in ["delta", "image"] {
        let dir = tempfile::tempdir().unwrap();
        let log = HostileLog::new(dir.path());
        let ckp = log.push(
            0,
            Record::Checkpoint(crate::wal::Checkpoint {
                redo_lsn: Lsn::new(1, crate::wal::FIRST_RECORD_OFFSET),
                last_ckp: Lsn::ZERO,
                timestamp: 1,
                files: vec![(FileId(5), b"gone.db".to_vec())],
            }),
        );
        let bad = log.push(
            1,
            match what {
                "delta" => Record::PageDelta {
                    file_id: FileId(5),
                    pgno: PageNo(2),
                    prev_lsn: Lsn::ZERO,
                    ranges: vec![],
                },
                _ => Record::PageImage {
                    file_id: FileId(5),
                    pgno: PageNo(2),
                    image: vec![],
                },
            },
        );
        log.commit(1);
        drop(log);
        assert!(bad > ckp);
        for r in recover_every_way(dir.path()) {
            match r {
                Err(e @ Error::Corrupt { .. }) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("log.0000000001")
                            && text.contains(&format!("offset {}", bad.offset)),
                        "{what}: {text}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}

#[test]
fn an_owner_refuses_a_log_that_used_up_the_transaction_or_file_ids() {
    // Regression (issue 9 defect 3): ids in a log are only bytes, and a
    // CRC-valid record may carry transaction id 2^64-1 or create file id
    // 2^32-1. The owner's open computed the next id as the largest plus
    // one: an overflow panic in a debug build, and in a release build a
    // wrap to 0, so the next transaction or database reused ids already
    // in the log. The owner now refuses to open such a log with one
    // line; a read-only view (which gives no ids) still opens it.
    for (txn, id) in [(u64::MAX, 1u32), (1, u32::MAX)] {
        let dir = tempfile::tempdir().unwrap();
        let log = HostileLog::new(dir.path());
        log.create(txn, id, 512, "a.db");
        log.commit(txn);
        drop(log);
        match Env::open(dir.path(), EnvOptions::default()) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("largest"), "{m}"),
            Err(e) => panic!("{txn} {id}: {e}"),
            Ok(_) => panic!("{txn} {id}: opened"),
        }
        Env::open(dir.path(), EnvOptions::read_only()).unwrap();
    }
}

#[test]
fn the_last_transaction_id_is_refused_not_wrapped() {
    // Regression: a log whose largest transaction id is 2^64-2 opens (the
    // next id, 2^64-1, exists), but `begin` then added one to it unchecked:
    // an overflow panic in a debug build, a wrap to 0 in release. It is
    // one line now, and the environment stays readable.
    let dir = tempfile::tempdir().unwrap();
    let log = HostileLog::new(dir.path());
    log.create(u64::MAX - 1, 1, 512, "a.db");
    log.commit(u64::MAX - 1);
    drop(log);
    let env = Env::open(dir.path(), EnvOptions::default()).unwrap();
    match env.begin() {
        Err(Error::Exhausted(m)) => assert!(m.contains("used up"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a transaction got the id that has no successor"),
    }
    env.close().unwrap();
}

#[test]
fn catastrophic_recovery_replays_a_file_id_reused_with_another_page_size() {
    // Regression (issue 9 defect 3, found while fixing the rebinding of
    // ids): file ids are reused. After the database with the largest id
    // is removed, the next open hands that id out again; here to a new
    // a.db of another page size. Catastrophic recovery binds the id to the
    // a.db on disk (4096-byte pages), then meets the first a.db's create
    // (512-byte pages) under the same id and name: redo kept the disk
    // binding, and the first a.db's images were "of the wrong size", so a
    // log the engine wrote itself could not be recovered. A create that
    // gives an id another page size now starts it afresh.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", Some(512)).unwrap();
    t.put(&a, b"old", b"512").unwrap();
    t.commit().unwrap();
    let mut t = env.begin().unwrap();
    t.remove_db(&a).unwrap();
    t.commit().unwrap();
    env.close().unwrap();
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let mut t = env.begin().unwrap();
    let b = t.create_db("a.db", Some(4096)).unwrap();
    assert_eq!(b.id, a.id, "the id is reused");
    t.put(&b, b"new", b"4096").unwrap();
    t.commit().unwrap();
    env.close().unwrap();

    let vfs: SharedVfs = crate::storage::vfs::OsVfs::shared();
    let layout = Layout::resolve(&vfs, home).unwrap();
    let opts = RecoveryOptions {
        mode: RecoveryMode::Catastrophic,
        write: true,
        ..Default::default()
    };
    recover(&vfs, &layout, opts).unwrap();
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let b = env.open_db("a.db").unwrap();
    assert_eq!(env.get(&b, b"new").unwrap(), Some(b"4096".to_vec()));
    assert_eq!(env.get(&b, b"old").unwrap(), None);
}

#[test]
fn recovery_to_a_time_checks_only_the_pages_that_were_there_before_redo() {
    // Regression (issue 9 defect 3): recovery to a time checks that no
    // page on disk is newer than the point, and read every page of every
    // file to do so, written by redo itself included. A log with more
    // pages than redo keeps in memory (so some were written out during
    // redo) and one image for page 2^24 made that a sparse file of 8 GiB
    // read 512 bytes at a time: recovery seemed to hang. Pages redo
    // writes are older than the point by construction; only the pages
    // the files had before redo are read now (none here: redo made a.db).
    let dir = tempfile::tempdir().unwrap();
    let log = HostileLog::new(dir.path());
    log.create(1, 1, 512, "a.db");
    let far = 1u32 << 24;
    for no in (1..=(BUFFER_LIMIT / 512) as u32 + 64).chain([far]) {
        log.push(
            1,
            Record::PageImage {
                file_id: FileId(1),
                pgno: PageNo(no),
                image: image_of(512, no),
            },
        );
    }
    log.push(1, Record::Commit { timestamp: 10 });
    log.create(2, 2, 512, "b.db");
    log.push(2, Record::Commit { timestamp: 20 });
    drop(log);
    let vfs = data_file_counter();
    // Far fewer reads than pages: a check of every page fails at once.
    vfs.fail_from(Op::Read, 1000);
    let shared: SharedVfs = vfs.clone();
    let layout = Layout::resolve(&shared, dir.path()).unwrap();
    let out = recover(
        &shared,
        &layout,
        RecoveryOptions {
            write: true,
            until: Some(15),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(out.stopped_at_time);
    assert!(vfs.counts().get(Op::Write) > 1, "written out during redo");
    assert!(!dir.path().join("b.db").exists());
}

/// Keys and values of `big_txn`: 6,000 values of 4,000 bytes, about 24 MiB
/// of log in one transaction.
fn big_value(j: u32) -> Vec<u8> {
    let mut v = vec![(j % 251) as u8; 4000];
    v[..4].copy_from_slice(&j.to_le_bytes());
    v
}

/// One transaction of about 24 MiB of log into a.db, after a small one
/// that creates it, closed cleanly.
fn big_txn(home: &std::path::Path) {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let mut t = env.begin().unwrap();
    for j in 0..6000u32 {
        t.put(&a, format!("k{j:05}").as_bytes(), &big_value(j))
            .unwrap();
    }
    t.commit().unwrap();
    env.close().unwrap();
}

/// Recovery used to hold a whole transaction's records in memory until its
/// commit, and apply them all before writing a page back: a 100 MiB
/// transaction took 141 MiB to recover, so a big enough one could not be
/// recovered on a small machine at all. Now a batch over `HOLD_LIMIT`
/// spills (its records are read again from the log at the commit) and the
/// replayed pages are written back whenever they outgrow `BUFFER_LIMIT`,
/// also in the middle of a transaction. Asserted structurally: the
/// transaction spilled, and what redo held never passed the two limits
/// (plus a page); and the result is the committed state.
#[test]
fn a_transaction_larger_than_the_limits_spills_and_recovers_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    big_txn(dir.path());
    let log: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("log."))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(log > 4 * HOLD_LIMIT as u64, "{log} bytes of log");
    // Every page must be replayed: more than BUFFER_LIMIT of them.
    let a = dir.path().join("a.db");
    std::fs::File::options()
        .write(true)
        .open(&a)
        .and_then(|f| f.set_len(0))
        .unwrap();
    let vfs = data_file_counter();
    let out = recover_on(&vfs, dir.path(), false).unwrap();
    assert_eq!(out.spilled, 1);
    assert!(out.pages_applied as usize * 4096 > BUFFER_LIMIT);
    assert!(
        out.held_peak <= HOLD_LIMIT + BUFFER_LIMIT + 65536,
        "redo held {} bytes",
        out.held_peak
    );
    let env = Env::open(dir.path(), EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    for j in [0u32, 1, 2999, 5998, 5999] {
        assert_eq!(
            env.get(&db, format!("k{j:05}").as_bytes()).unwrap(),
            Some(big_value(j)),
            "k{j:05}"
        );
    }
    assert_eq!(env.get(&db, b"k06000").unwrap(), None);
}
