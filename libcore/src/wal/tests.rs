use super::*;
use crate::error::Error;
use crate::storage::vfs::{OpenMode, OsVfs, SharedVfs, VFile, Vfs};
use crate::types::{FileId, Lsn, PageNo, TxnId};
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters and switches shared by a `TestVfs` and the files it opened.
#[derive(Default)]
struct Faults {
    syncs: AtomicUsize,
    fail_sync: AtomicBool,
    fail_write: AtomicBool,
    sync_delay_ms: u64,
}

/// The real file system, observed: counts file fsyncs, can fail writes and
/// fsyncs on demand, and can make fsync slow like a disk.
struct TestVfs {
    f: Arc<Faults>,
}

struct TestFile {
    inner: Box<dyn VFile>,
    f: Arc<Faults>,
}

fn eio(path: &Path, op: &'static str) -> Error {
    Error::io(path, op, io::Error::from_raw_os_error(5))
}

impl VFile for TestFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> crate::Result<usize> {
        self.inner.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> crate::Result<()> {
        if self.f.fail_write.load(Ordering::SeqCst) {
            return Err(eio(self.path(), "write"));
        }
        self.inner.write_at(buf, off)
    }
    fn len(&self) -> crate::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> crate::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> crate::Result<()> {
        if self.f.fail_sync.load(Ordering::SeqCst) {
            return Err(eio(self.path(), "fsync"));
        }
        if self.f.sync_delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.f.sync_delay_ms));
        }
        self.inner.sync()?;
        self.f.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn try_lock(&self, kind: crate::storage::vfs::LockKind) -> crate::Result<bool> {
        self.inner.try_lock(kind)
    }
    fn unlock(&self) -> crate::Result<()> {
        self.inner.unlock()
    }
    fn meta(&self) -> crate::Result<crate::storage::vfs::FileMeta> {
        self.inner.meta()
    }
    fn set_mode(&self, mode: u32) -> crate::Result<()> {
        self.inner.set_mode(mode)
    }
    fn set_times(
        &self,
        accessed: std::time::SystemTime,
        modified: std::time::SystemTime,
    ) -> crate::Result<()> {
        self.inner.set_times(accessed, modified)
    }
}

impl Vfs for TestVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> crate::Result<Box<dyn VFile>> {
        Ok(Box::new(TestFile {
            inner: OsVfs.open(path, mode)?,
            f: self.f.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> crate::Result<()> {
        OsVfs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> crate::Result<()> {
        OsVfs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> crate::Result<()> {
        OsVfs.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> crate::Result<Vec<OsString>> {
        OsVfs.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        OsVfs.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        OsVfs.is_dir(path)
    }
    fn create_dir(&self, path: &Path, mode: u32) -> crate::Result<()> {
        OsVfs.create_dir(path, mode)
    }
    fn remove_dir(&self, path: &Path) -> crate::Result<()> {
        OsVfs.remove_dir(path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> crate::Result<()> {
        OsVfs.hard_link(from, to)
    }
    fn metadata(&self, path: &Path) -> crate::Result<crate::storage::vfs::FileMeta> {
        OsVfs.metadata(path)
    }
    fn symlink_metadata(&self, path: &Path) -> crate::Result<crate::storage::vfs::FileMeta> {
        OsVfs.symlink_metadata(path)
    }
}

fn test_vfs(sync_delay_ms: u64) -> (SharedVfs, Arc<Faults>) {
    let f = Arc::new(Faults {
        sync_delay_ms,
        ..Faults::default()
    });
    (Arc::new(TestVfs { f: f.clone() }), f)
}

const ENV: u64 = 0x1234_5678_9abc_def0;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn delta(i: u32, n: usize) -> Record {
    Record::PageDelta {
        file_id: FileId(1),
        pgno: PageNo(i),
        prev_lsn: Lsn::new(1, i),
        ranges: vec![(32, vec![i as u8; n]), (100, vec![7; 3])],
    }
}

fn ckp(redo: Lsn, ts: u64) -> Record {
    Record::Checkpoint(Checkpoint {
        redo_lsn: redo,
        last_ckp: Lsn::ZERO,
        timestamp: ts,
        files: vec![(FileId(1), b"a.db".to_vec())],
    })
}

/// Appends `n` two-record transactions; returns every (lsn, txn, record).
fn fill(log: &Log, first_txn: u64, n: u64, size: usize) -> Vec<(Lsn, TxnId, Record)> {
    let mut out = Vec::new();
    for t in first_txn..first_txn + n {
        let recs = [delta(t as u32, size), Record::Commit { timestamp: t }];
        let batch: Vec<(TxnId, &Record)> = recs.iter().map(|r| (TxnId(t), r)).collect();
        let mut a = log.lock();
        let lens: Vec<usize> = recs.iter().map(Record::encoded_len).collect();
        let peeked = a.peek_lsns(&lens);
        assert_eq!(a.peek_lsn(lens[0]), peeked[0]);
        let lsns = a.append(&batch).unwrap();
        assert_eq!(lsns, peeked);
        for (l, r) in lsns.into_iter().zip(recs) {
            out.push((l, TxnId(t), r));
        }
    }
    out
}

fn read_all(vfs: &SharedVfs, dir: &Path) -> crate::Result<Vec<(Lsn, TxnId, Record)>> {
    let mut c = LogCursor::open(vfs.clone(), dir)?;
    let mut v = Vec::new();
    while let Some(r) = c.next()? {
        v.push(r);
    }
    Ok(v)
}

fn file_len(dir: &Path, n: u32) -> u64 {
    std::fs::metadata(log_path(dir, n)).unwrap().len()
}

fn flip(dir: &Path, n: u32, at: u64) {
    let p = log_path(dir, n);
    let mut b = std::fs::read(&p).unwrap();
    b[at as usize] ^= 0x40;
    std::fs::write(&p, b).unwrap();
}

#[test]
fn layout_sizes_are_pinned() {
    assert_eq!(FILE_HEADER_SIZE, 40);
    assert_eq!(FIRST_RECORD_OFFSET, 40);
    assert_eq!(
        (
            HDR_MAGIC,
            HDR_VERSION,
            HDR_FILE_NO,
            HDR_ENV_ID,
            HDR_LAST_CKP,
            HDR_CRC
        ),
        (0, 4, 8, 16, 24, 36)
    );
    assert_eq!(RECORD_HEADER_SIZE, 21);
    assert_eq!(
        (REC_LEN, REC_PREV_LEN, REC_CRC, REC_TYPE, REC_TXN),
        (0, 4, 8, 12, 13)
    );
    let h = FileHeader {
        file_no: 7,
        lg_max: 65536,
        env_id: ENV,
        last_ckp: Lsn::new(6, 99),
    };
    let b = h.encode();
    assert_eq!(&b[0..4], &LOG_MAGIC.to_le_bytes());
    assert_eq!(FileHeader::decode(Path::new("x"), &b, 7).unwrap(), h);
    assert!(matches!(
        FileHeader::decode(Path::new("x"), &b, 8),
        Err(Error::Corrupt { .. })
    ));
    let mut bad = b;
    bad[0] ^= 1;
    assert!(matches!(
        FileHeader::decode(Path::new("x"), &bad, 7),
        Err(Error::Version { .. })
    ));
    // Version 2 added the epoch record, version 3 the zero tail: files of
    // versions 1 and 2 are read, a newer version is named.
    assert_eq!(b[4], 3);
    for old in [1u8, 2] {
        let mut v = b;
        v[4] = old;
        let crc = crate::storage::codec::crc32(&v[..36]);
        v[36..40].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(FileHeader::decode(Path::new("x"), &v, 7).unwrap(), h);
    }
    let mut bad = b;
    bad[4] = 4;
    match FileHeader::decode(Path::new("x"), &bad, 7) {
        Err(e @ Error::Version { .. }) => {
            assert!(e.to_string().contains("version 4"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let mut bad = b;
    bad[20] ^= 1;
    assert!(matches!(
        FileHeader::decode(Path::new("x"), &bad, 7),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn log_names_round_trip_and_reject_bad_ones() {
    assert_eq!(log_name(1), "log.0000000001");
    assert_eq!(log_name(u32::MAX), "log.4294967295");
    for n in [1, 9, 10, 123_456, u32::MAX] {
        assert_eq!(parse_log_name(&log_name(n)), Some(n));
    }
    for bad in [
        "log.0000000000",
        "log.000000001",
        "log.00000000001",
        "log.000000000a",
        "log.+000000001",
        "log.9999999999",
        "Log.0000000001",
        "log0000000001",
        "log.0000000001 ",
        "",
    ] {
        assert_eq!(parse_log_name(bad), None, "{:?}", bad);
    }
}

#[test]
fn every_record_type_round_trips_and_damage_is_refused() {
    let recs = vec![
        Record::FileCreate {
            file_id: FileId(3),
            page_size: 4096,
            name: b"sub/a.db".to_vec(),
        },
        Record::FileRemove {
            file_id: FileId(3),
            name: b"a.db".to_vec(),
        },
        Record::FileRename {
            file_id: FileId(4),
            old: b"a.db".to_vec(),
            new: b"b.db".to_vec(),
        },
        Record::PageImage {
            file_id: FileId(4),
            pgno: PageNo(9),
            image: vec![0xab; 512],
        },
        delta(5, 10),
        Record::PageDelta {
            file_id: FileId(1),
            pgno: PageNo(2),
            prev_lsn: Lsn::ZERO,
            ranges: vec![],
        },
        Record::Commit {
            timestamp: 1_700_000_000,
        },
        Record::Checkpoint(Checkpoint {
            redo_lsn: Lsn::new(3, 40),
            last_ckp: Lsn::new(2, 77),
            timestamp: 5,
            files: vec![(FileId(1), b"a.db".to_vec()), (FileId(2), vec![])],
        }),
        Record::BulkMarker {
            file_id: FileId(2),
            first_new: PageNo(10),
            last: PageNo(20),
        },
        Record::Epoch {
            epoch: 2,
            begins: Lsn::new(3, 4567),
            continues: 1,
        },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for r in &recs {
        let (ty, payload) = r.encode();
        seen.insert(ty);
        assert_eq!(payload.len(), r.payload_len(), "{}", r.name());
        assert_eq!(Record::decode(ty, &payload).as_ref(), Ok(r));
        for cut in 0..payload.len() {
            assert!(
                Record::decode(ty, &payload[..cut]).is_err(),
                "{} cut {}",
                r.name(),
                cut
            );
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(Record::decode(ty, &longer).is_err());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (1..=9).collect::<Vec<u8>>()
    );
    assert!(Record::decode(0, &[]).is_err());
    assert!(Record::decode(9, &[]).is_err());
    // A count far beyond the payload must fail, not allocate.
    let mut p = vec![0u8; 16];
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Record::decode(5, &p).is_err());
    assert_eq!(recs[0].name(), "file_create");
    assert_eq!(recs[3].name(), "page_image");
}

#[test]
fn append_rotates_and_reads_back_forward_and_backward() {
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    assert_eq!(log.end(), Lsn::new(1, FIRST_RECORD_OFFSET));
    let mut all = fill(&log, 1, 60, 40);
    // A record bigger than lg_max goes alone into a fresh file.
    let big = Record::PageImage {
        file_id: FileId(1),
        pgno: PageNo(1),
        image: vec![0x5a; 3 * MIN_LG_MAX as usize],
    };
    let l = log.lock().append(&[(TxnId(99), &big)]).unwrap()[0];
    assert_eq!(l.offset, FIRST_RECORD_OFFSET);
    all.push((l, TxnId(99), big));
    all.extend(fill(&log, 100, 20, 40));
    log.flush(log.end()).unwrap();
    assert_eq!(log.durable(), log.end());
    let big_file = l.file;
    assert_eq!(all.last().map(|r| r.0.file), Some(big_file + 1));

    let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
    assert!(c.files().len() >= 4, "{:?}", c.files());
    assert_eq!(c.env_id(), Some(ENV));
    for &n in c.files() {
        if n != big_file {
            assert!(file_len(d.path(), n) <= u64::from(MIN_LG_MAX));
        }
    }
    assert_eq!(c.end().unwrap(), log.end());
    let mut fwd = Vec::new();
    while let Some(r) = c.next().unwrap() {
        fwd.push(r);
    }
    assert_eq!(fwd, all);
    assert_eq!(c.next().unwrap(), None);
    let mut back = Vec::new();
    while let Some(r) = c.prev().unwrap() {
        back.push(r);
    }
    back.reverse();
    assert_eq!(back, all);
    // prev after seek to the end and next after prev.
    c.seek(log.end()).unwrap();
    assert_eq!(c.prev().unwrap().as_ref(), all.last());
    assert_eq!(c.next().unwrap().as_ref(), all.last());
    // seek to every record, in the middle of the log, then both ways.
    for i in [0, 1, 5, all.len() / 2, all.len() - 1] {
        c.seek(all[i].0).unwrap();
        if i > 0 {
            assert_eq!(c.prev().unwrap().as_ref(), Some(&all[i - 1]));
            assert_eq!(c.next().unwrap().as_ref(), Some(&all[i - 1]));
        }
        assert_eq!(c.next().unwrap().as_ref(), Some(&all[i]));
    }
    // (n, 0) is the start of file n; mid-record is refused.
    c.seek(Lsn::new(2, 0)).unwrap();
    assert_eq!(
        c.next().unwrap().unwrap().0,
        Lsn::new(2, FIRST_RECORD_OFFSET)
    );
    assert!(matches!(
        c.seek(Lsn::new(all[3].0.file, all[3].0.offset + 1)),
        Err(Error::Corrupt { .. })
    ));
    c.seek(Lsn::ZERO).unwrap();
    assert_eq!(c.next().unwrap().as_ref(), all.first());
}

#[test]
fn torn_tail_at_every_byte_ends_at_the_previous_record() {
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let mut all = fill(&log, 1, 40, 60);
    let n = log.end().file;
    assert!(n >= 2);
    // Make sure the last file holds at least two records.
    while all.iter().filter(|r| r.0.file == n).count() < 2 {
        all.extend(fill(&log, 1000 + all.len() as u64, 1, 10));
    }
    let end = log.end();
    drop(log);
    let (last_lsn, _, _) = all.pop().unwrap();
    assert_eq!(last_lsn.file, end.file);
    let path = log_path(d.path(), n);
    let f = OsVfs.open(&path, OpenMode::ReadWrite).unwrap();
    for cut in (u64::from(last_lsn.offset)..u64::from(end.offset)).rev() {
        f.set_len(cut).unwrap();
        let got = read_all(&vfs, d.path()).unwrap();
        assert_eq!(got, all, "cut at {}", cut);
        let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
        assert_eq!(c.end().unwrap(), last_lsn, "cut at {}", cut);
        c.seek(last_lsn).unwrap();
        assert_eq!(c.prev().unwrap().as_ref(), all.last());
        // The strict policy calls the same bytes corrupt (except a cut
        // exactly at a record boundary).
        let strict = LogCursor::open_with(vfs.clone(), d.path(), OnBadRecord::Fail)
            .unwrap()
            .end();
        if cut == u64::from(last_lsn.offset) {
            assert_eq!(strict.unwrap(), last_lsn);
        } else {
            assert!(
                matches!(strict, Err(Error::Corrupt { .. })),
                "cut at {}",
                cut
            );
        }
    }
    // Zeroes after the end (a file extended, data lost) are a torn tail too.
    f.set_len(u64::from(last_lsn.offset) + 4096).unwrap();
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);

    // Recovery continues at the end found: the tail is cut, appends follow.
    let end = LogCursor::open(vfs.clone(), d.path())
        .unwrap()
        .end()
        .unwrap();
    assert_eq!(end, last_lsn);
    let log = Log::open_at(vfs.clone(), d.path(), ENV, MIN_LG_MAX, end, Lsn::ZERO).unwrap();
    // Cut at the end, then given its zero tail back.
    assert_eq!(
        file_len(d.path(), n),
        crate::storage::logfiles::preallocated_len(MIN_LG_MAX)
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[end.offset as usize..].iter().all(|&b| b == 0));
    assert_eq!(log.durable(), end);
    all.extend(fill(&log, 5000, 30, 60));
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);
    let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
    c.seek(log.end()).unwrap();
    let mut back = Vec::new();
    while let Some(r) = c.prev().unwrap() {
        back.push(r);
    }
    back.reverse();
    assert_eq!(back, all);
    // Not a record boundary: refused.
    drop(log);
    let mid = Lsn::new(all[all.len() - 1].0.file, all[all.len() - 1].0.offset + 3);
    assert!(Log::open_at(vfs.clone(), d.path(), ENV, MIN_LG_MAX, mid, Lsn::ZERO).is_err());
    // Another environment's id: refused.
    assert!(matches!(
        Log::open_at(vfs, d.path(), ENV + 1, MIN_LG_MAX, end, Lsn::ZERO),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn flipped_byte_in_an_earlier_file_is_corrupt_naming_file_and_offset() {
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let all = fill(&log, 1, 100, 40);
    assert!(log.end().file >= 3);
    drop(log);
    let victim = all[2].0;
    assert!(matches!(all[2].2, Record::PageDelta { .. }));
    assert_eq!(victim.file, 1);
    for at in [0u64, 5, 9, 12, 14, 30] {
        flip(d.path(), 1, u64::from(victim.offset) + at);
        match read_all(&vfs, d.path()) {
            Err(Error::Corrupt {
                path,
                at: crate::Location::Offset(o),
                ..
            }) => {
                assert!(path.ends_with("log.0000000001"));
                assert_eq!(o, u64::from(victim.offset), "byte {}", at);
            }
            other => panic!("byte {}: {:?}", at, other.map(|v| v.len())),
        }
        // Backward reading from the end finds it too.
        let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
        c.seek(all[all.len() - 1].0).unwrap();
        let mut r = Ok(None);
        for _ in 0..all.len() {
            r = c.prev();
            if r.is_err() {
                break;
            }
        }
        assert!(matches!(r, Err(Error::Corrupt { .. })), "byte {}", at);
        flip(d.path(), 1, u64::from(victim.offset) + at);
    }
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);

    // The same damage in the last file is the end of the log.
    let last = all.iter().rev().nth(2).unwrap().0;
    flip(d.path(), last.file, u64::from(last.offset) + 25);
    let got = read_all(&vfs, d.path()).unwrap();
    assert_eq!(got.last().map(|r| r.0), Some(all[all.len() - 4].0));
    let mut strict = LogCursor::open_with(vfs, d.path(), OnBadRecord::Fail).unwrap();
    let r = loop {
        match strict.next() {
            Ok(Some(_)) => {}
            other => break other,
        }
    };
    assert!(
        matches!(r, Err(Error::Corrupt { at: crate::Location::Offset(o), .. }) if o == u64::from(last.offset))
    );
}

#[test]
fn gap_in_numbering_is_log_gap_naming_the_missing_file() {
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    log.new_file().unwrap();
    log.new_file().unwrap();
    assert_eq!(log.end(), Lsn::new(3, FIRST_RECORD_OFFSET));
    drop(log);
    assert_eq!(
        LogCursor::open(vfs.clone(), d.path()).unwrap().files(),
        &[1, 2, 3]
    );
    std::fs::remove_file(log_path(d.path(), 2)).unwrap();
    match LogCursor::open(vfs.clone(), d.path()) {
        Err(Error::LogGap { path }) => assert_eq!(path, log_path(d.path(), 2)),
        other => panic!("{:?}", other.map(|c| c.files().to_vec())),
    }
    // Removing from the front is no gap, but seeking there is.
    std::fs::remove_file(log_path(d.path(), 1)).unwrap();
    let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
    assert_eq!(c.files(), &[3]);
    assert!(matches!(c.seek(Lsn::new(1, 40)), Err(Error::LogGap { .. })));
    // No log files at all.
    let e = tmp();
    let mut c = LogCursor::open(vfs, e.path()).unwrap();
    assert!(c.files().is_empty());
    assert_eq!(c.env_id(), None);
    assert_eq!(c.next().unwrap(), None);
    assert_eq!(c.end().unwrap(), Lsn::ZERO);
}

#[test]
fn log_file_of_another_environment_is_corrupt() {
    let (a, b) = (tmp(), tmp());
    let vfs = OsVfs::shared();
    let la = Log::create(vfs.clone(), a.path(), ENV, MIN_LG_MAX).unwrap();
    la.new_file().unwrap();
    la.new_file().unwrap();
    let lb = Log::create(vfs.clone(), b.path(), ENV + 1, MIN_LG_MAX).unwrap();
    lb.new_file().unwrap();
    drop((la, lb));
    std::fs::copy(log_path(b.path(), 2), log_path(a.path(), 2)).unwrap();
    match LogCursor::open(vfs.clone(), a.path()) {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains("log.0000000002"), "{}", e);
            assert!(e.to_string().contains("another environment"), "{}", e);
        }
        other => panic!("{:?}", other.map(|c| c.files().to_vec())),
    }
    // A file renamed to a different number is caught by its header.
    std::fs::copy(log_path(b.path(), 1), log_path(a.path(), 2)).unwrap();
    assert!(matches!(
        LogCursor::open(vfs.clone(), a.path()),
        Err(Error::Corrupt { .. })
    ));
    // Bad magic is a version error naming the file.
    std::fs::write(log_path(a.path(), 2), vec![b'x'; 100]).unwrap();
    match LogCursor::open(vfs, a.path()) {
        Err(e @ Error::Version { .. }) => assert!(e.to_string().contains("log.0000000002")),
        other => panic!("{:?}", other.map(|c| c.files().to_vec())),
    }
}

#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let d = tmp();
    let (vfs, faults) = test_vfs(2);
    let log = Arc::new(Log::create(vfs.clone(), d.path(), ENV, DEFAULT_LG_MAX).unwrap());
    let before = faults.syncs.load(Ordering::SeqCst);
    const THREADS: u64 = 8;
    const EACH: u64 = 25;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let txn = TxnId(t * 1000 + i);
                    let recs = [delta(i as u32, 30), Record::Commit { timestamp: i }];
                    let lsns = log
                        .lock()
                        .append(&[(txn, &recs[0]), (txn, &recs[1])])
                        .unwrap();
                    log.flush(lsns[1]).unwrap();
                    assert!(log.durable() > lsns[1]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let syncs = faults.syncs.load(Ordering::SeqCst) - before;
    let commits = (THREADS * EACH) as usize;
    assert!(syncs < commits, "{} fsyncs for {} commits", syncs, commits);
    assert!(syncs > 0);
    let got = read_all(&vfs, d.path()).unwrap();
    assert_eq!(got.len(), commits * 2);
    // Every transaction's records are contiguous, commit last.
    for pair in got.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1);
        assert!(matches!(pair[1].2, Record::Commit { .. }));
    }
}

#[test]
fn failed_fsync_or_write_fails_every_later_call() {
    let d = tmp();
    let (vfs, faults) = test_vfs(0);
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let c = Record::Commit { timestamp: 1 };
    let l = log.lock().append(&[(TxnId(1), &c)]).unwrap()[0];
    log.flush(l).unwrap();
    let l = log.lock().append(&[(TxnId(2), &c)]).unwrap()[0];
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert!(matches!(log.flush(l), Err(Error::Io { .. })));
    faults.fail_sync.store(false, Ordering::SeqCst);
    // The failure sticks: no retried fsync may pretend success.
    assert!(log.is_failed());
    assert!(matches!(log.flush(l), Err(Error::Failed { .. })));
    assert!(matches!(
        log.lock().append(&[(TxnId(3), &c)]),
        Err(Error::Failed { .. })
    ));
    assert!(matches!(log.new_file(), Err(Error::Failed { .. })));
    assert!(log.durable() <= l);

    // A failed write, and an fsync failing during rotation, do the same.
    let d = tmp();
    let (vfs, faults) = test_vfs(0);
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    faults.fail_write.store(true, Ordering::SeqCst);
    assert!(matches!(
        log.lock().append(&[(TxnId(1), &c)]),
        Err(Error::Io { .. })
    ));
    faults.fail_write.store(false, Ordering::SeqCst);
    assert!(matches!(log.flush(log.end()), Err(Error::Failed { .. })));

    let d = tmp();
    let (vfs, faults) = test_vfs(0);
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    fill(&log, 1, 5, 10);
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert!(log.new_file().is_err());
    faults.fail_sync.store(false, Ordering::SeqCst);
    assert!(matches!(
        log.lock().append(&[(TxnId(9), &c)]),
        Err(Error::Failed { .. })
    ));
    // Failed is a one-line message naming the file.
    let e = log.flush(log.end()).unwrap_err().to_string();
    assert!(
        e.contains("log.0000000001") && e.contains("run recovery"),
        "{}",
        e
    );
}

#[test]
fn last_checkpoint_finds_the_newest_without_scanning_old_files() {
    let d = tmp();
    let vfs = OsVfs::shared();
    assert_eq!(last_checkpoint(&vfs, d.path()).unwrap(), None);
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    fill(&log, 1, 3, 10);
    assert_eq!(last_checkpoint(&vfs, d.path()).unwrap(), None);
    let c1 = ckp(Lsn::new(1, 40), 1);
    let l1 = log.lock().append(&[(TxnId(0), &c1)]).unwrap()[0];
    fill(&log, 10, 3, 10);
    let c2 = ckp(Lsn::new(1, 100), 2);
    let l2 = log.lock().append(&[(TxnId(0), &c2)]).unwrap()[0];
    assert_eq!(log.last_ckp(), l2);
    let get = |c: &Record| match c {
        Record::Checkpoint(c) => c.clone(),
        _ => unreachable!(),
    };
    assert_eq!(
        last_checkpoint(&vfs, d.path()).unwrap(),
        Some((l2, get(&c2)))
    );
    assert!(l1 < l2);
    // New files carry it in their header; the old files are not read.
    log.new_file().unwrap();
    fill(&log, 20, 40, 60);
    let n = log.end().file;
    assert!(n >= 3);
    let hb = std::fs::read(log_path(d.path(), n)).unwrap();
    let h = FileHeader::decode(Path::new("x"), &hb[..FILE_HEADER_SIZE], n).unwrap();
    assert_eq!(h.last_ckp, l2);
    // Damage every file between the checkpoint's and the last one: unread.
    for m in l2.file + 1..n {
        flip(d.path(), m, u64::from(FIRST_RECORD_OFFSET) + 1);
    }
    assert_eq!(
        last_checkpoint(&vfs, d.path()).unwrap(),
        Some((l2, get(&c2)))
    );
    for m in l2.file + 1..n {
        flip(d.path(), m, u64::from(FIRST_RECORD_OFFSET) + 1);
    }
    // A newer checkpoint in the last file wins, even with a torn tail after.
    let c3 = ckp(Lsn::new(2, 40), 3);
    let l3 = log.lock().append(&[(TxnId(0), &c3)]).unwrap()[0];
    fill(&log, 100, 1, 10);
    assert_eq!(l3.file, n);
    let end = log.end();
    drop(log);
    std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(d.path(), n))
        .unwrap()
        .set_len(u64::from(end.offset) - 3)
        .unwrap();
    assert_eq!(
        last_checkpoint(&vfs, d.path()).unwrap(),
        Some((l3, get(&c3)))
    );
    // An empty file left by a crash during creation is skipped.
    std::fs::write(log_path(d.path(), n + 1), b"").unwrap();
    assert_eq!(
        last_checkpoint(&vfs, d.path()).unwrap(),
        Some((l3, get(&c3)))
    );
}

#[test]
fn torn_creation_of_the_last_file_is_ignored_and_removed_on_open() {
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let mut all = fill(&log, 1, 3, 10);
    drop(log);
    std::fs::write(log_path(d.path(), 2), [0u8; 40]).unwrap();
    let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
    assert_eq!(c.files(), &[1]);
    let end = c.end().unwrap();
    let log = Log::open_at(vfs.clone(), d.path(), ENV, MIN_LG_MAX, end, Lsn::ZERO).unwrap();
    assert!(!log_path(d.path(), 2).exists());
    log.new_file().unwrap();
    all.extend(fill(&log, 10, 3, 10));
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);
    // A valid later file means `end` is not the end: refused.
    drop(log);
    assert!(Log::open_at(vfs.clone(), d.path(), ENV, MIN_LG_MAX, end, Lsn::ZERO).is_err());
    // create refuses to start over an existing log.
    assert!(Log::create(vfs, d.path(), ENV, MIN_LG_MAX).is_err());
}

/// Every state a crash can leave a log file's header in while the file is
/// being created: nothing, a prefix, a prefix then zeroes, or all of it
/// with its checksum failing (a torn write mixes old and new bytes).
fn torn_headers(good: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..FILE_HEADER_SIZE).map(|k| good[..k].to_vec()).collect();
    for k in 0..FILE_HEADER_SIZE {
        let mut h = good[..k].to_vec();
        h.resize(FILE_HEADER_SIZE, 0);
        out.push(h);
        let mut f = good.to_vec();
        f[k] ^= 0x21;
        out.push(f);
    }
    out
}

#[test]
fn a_torn_header_is_an_unfinished_newest_file_and_damage_anywhere_else() {
    // Regression (issue 9 defect 4): a power loss while a log file is
    // created can leave its header partly written or with a checksum that
    // fails, not only short or zero. As the newest file (the log had just
    // moved to it; the header is fsynced before any record goes in, so
    // it holds nothing) that was "header checksum mismatch" or "not a log
    // file" for every reader, and no tool nor recovery got past it. It is
    // the end of the log now. The same header in an earlier file is real
    // damage and stays an error naming that file.
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let all = fill(&log, 1, 3, 10);
    log.new_file().unwrap();
    log.new_file().unwrap();
    drop(log);
    let two = log_path(d.path(), 2);
    let three = log_path(d.path(), 3);
    let good = std::fs::read(&two).unwrap();
    let good3 = std::fs::read(&three).unwrap();
    assert_eq!(good.len(), FILE_HEADER_SIZE);
    for h in torn_headers(&good) {
        std::fs::remove_file(&three).ok();
        std::fs::write(&two, &h).unwrap();
        assert_eq!(live_log_files(&vfs, d.path()).unwrap(), [1], "{h:?}");
        assert_eq!(read_all(&vfs, d.path()).unwrap(), all, "{h:?}");
        assert_eq!(last_checkpoint(&vfs, d.path()).unwrap(), None);

        std::fs::write(&three, &good3).unwrap();
        assert_eq!(live_log_files(&vfs, d.path()).unwrap(), [1, 2, 3]);
        let e = match LogCursor::open(vfs.clone(), d.path()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a torn header in the middle was accepted: {h:?}"),
        };
        assert!(e.contains("log.0000000002"), "{e}");
    }
}

#[test]
fn log_is_send_and_sync_and_garbage_never_panics_the_decoder() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
    assert_send_sync::<Arc<Log>>();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 & 0x0f).collect();
        let _ = Record::decode((x >> 60) as u8 % 10, &bytes);
    }
}

/// Redo reads page records in place (`PageRecord`) and everything through
/// `next_raw`: both must see exactly what `Record::decode` and `next` see.
#[test]
fn page_records_read_in_place_match_their_decoded_form() {
    let image = Record::PageImage {
        file_id: FileId(4),
        pgno: PageNo(9),
        image: vec![0xab; 512],
    };
    for r in [image, delta(5, 10), delta(6, 0)] {
        let (ty, payload) = r.encode();
        assert!(PageRecord::is_page_type(ty));
        let view = PageRecord::decode(ty, &payload).unwrap();
        let owned = view.to_record();
        assert_eq!(owned, r);
        for cut in 0..payload.len() {
            assert!(PageRecord::decode(ty, &payload[..cut]).is_err());
        }
    }
    let (ty, payload) = Record::Commit { timestamp: 1 }.encode();
    assert!(!PageRecord::is_page_type(ty));
    assert!(PageRecord::decode(ty, &payload).is_err());

    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let all = fill(&log, 1, 40, 100);
    log.flush(log.end()).unwrap();
    let mut c = LogCursor::open(vfs.clone(), d.path()).unwrap();
    let mut raw = Vec::new();
    while let Some(r) = c.next_raw().unwrap() {
        raw.push((r.lsn, r.txn, Record::decode(r.ty, r.payload).unwrap()));
    }
    assert_eq!(raw, all);
    assert_eq!(raw, read_all(&vfs, d.path()).unwrap());
}

/// A file system whose directory listings come from a script, one per
/// call (the last repeats), as a listing racing file creation or removal
/// returns them.
struct ScriptedListing(std::sync::Mutex<Vec<Vec<u32>>>);

impl crate::storage::vfs_layer::VfsLayer for ScriptedListing {
    fn lower(&self) -> &dyn Vfs {
        &OsVfs
    }

    fn list(&self, _dir: &Path) -> crate::Result<Vec<OsString>> {
        let mut script = self.0.lock().unwrap();
        let names = if script.len() > 1 {
            script.remove(0)
        } else {
            script[0].clone()
        };
        Ok(names.into_iter().map(|n| log_name(n).into()).collect())
    }
}

/// Regression: a directory listing read while the owner created log files
/// 3 and 4 returned 4 without 3 (and one read while `db_archive -d`
/// removed 1 and then 2 returned 1 without 2); readers took it for a
/// missing log file and failed a hot backup or an update with a false
/// "log file missing" (flaky `hot_failover` tests, about once in 300
/// `-u` rounds). A listing with a gap is taken again until two agree.
#[test]
fn a_listing_that_races_creation_or_removal_is_taken_again() {
    let dir = Path::new("/nonexistent");
    let cases: [(Vec<Vec<u32>>, Vec<u32>); 4] = [
        (vec![vec![1, 2, 4], vec![1, 2, 3, 4]], vec![1, 2, 3, 4]),
        (vec![vec![1, 3, 4], vec![3, 4]], vec![3, 4]),
        (
            vec![vec![1, 3], vec![1, 2, 4], vec![1, 2, 3, 4, 5]],
            vec![1, 2, 3, 4, 5],
        ),
        // A gap that stays is real: the reader names it.
        (vec![vec![1, 3], vec![1, 3]], vec![1, 3]),
    ];
    for (script, want) in cases {
        let vfs: SharedVfs = Arc::new(ScriptedListing(std::sync::Mutex::new(script.clone())));
        assert_eq!(list_log_files(&vfs, dir).unwrap(), want, "{script:?}");
    }
}

#[test]
fn new_files_are_preallocated_and_older_files_end_at_their_last_record() {
    // Log files are created at their full size (a commit's fdatasync then
    // never commits a size) and cut to their last record when the log
    // leaves them: the newest file ends in zeros, every older one exactly
    // where its records end, as before preallocation.
    let d = tmp();
    let vfs = OsVfs::shared();
    let lg_max = 5000;
    let full = crate::storage::logfiles::preallocated_len(lg_max);
    assert_eq!(full, 8192);
    let log = Log::create(vfs.clone(), d.path(), ENV, lg_max).unwrap();
    assert_eq!(file_len(d.path(), 1), full);
    let all = fill(&log, 1, 150, 70);
    let end = log.end();
    assert!(end.file >= 3, "{end}");
    for n in 1..end.file {
        let last = all.iter().rfind(|r| r.0.file == n).unwrap();
        let rec_end = u64::from(last.0.offset) + last.2.encoded_len() as u64;
        assert_eq!(file_len(d.path(), n), rec_end, "log file {n}");
    }
    assert_eq!(file_len(d.path(), end.file), full);
    let newest = log_path(d.path(), end.file);
    assert_eq!(records_end(&vfs, &newest).unwrap(), end.offset);
    drop(log);
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);
    for policy in [OnBadRecord::EndOfLog, OnBadRecord::Fail] {
        let mut c = LogCursor::open_with(vfs.clone(), d.path(), policy).unwrap();
        assert_eq!(c.end().unwrap(), end, "{policy:?}");
        c.seek(end).unwrap();
        assert_eq!(c.prev().unwrap().as_ref(), all.last());
        c.check_tail().unwrap();
        // A position in the zeros past the end is no record.
        let mut c = LogCursor::open_with(vfs.clone(), d.path(), policy).unwrap();
        let inside = Lsn::new(end.file, end.offset + 64);
        assert!(matches!(c.seek(inside), Err(Error::Corrupt { .. })));
    }
}

#[test]
fn zeros_in_a_file_before_the_newest_are_corrupt_not_an_end() {
    // Only the newest file may end in zeros: an older one was cut to its
    // last record (and the cut fsynced) before the next file existed, so
    // zeros there are records lost to damage. Taking them for an end
    // would skip straight into the next file and replay a log with a hole.
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let all = fill(&log, 1, 40, 60);
    let end = log.end();
    assert!(end.file >= 2);
    drop(log);
    let one: Vec<_> = all.iter().filter(|r| r.0.file == 1).collect();
    let p = log_path(d.path(), 1);
    let mut b = std::fs::read(&p).unwrap();
    let cut = one[one.len() / 2].0.offset as usize;
    b[cut..].iter_mut().for_each(|x| *x = 0);
    std::fs::write(&p, &b).unwrap();
    match read_all(&vfs, d.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, p),
        other => panic!("{other:?}"),
    }
    // A zero tail appended to an older file is the same damage.
    let d2 = tmp();
    let log = Log::create(vfs.clone(), d2.path(), ENV, MIN_LG_MAX).unwrap();
    fill(&log, 1, 40, 60);
    drop(log);
    let p = log_path(d2.path(), 1);
    let f = OsVfs.open(&p, OpenMode::ReadWrite).unwrap();
    f.set_len(f.len().unwrap() + 512).unwrap();
    match read_all(&vfs, d2.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, p),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reopening_cuts_records_a_power_loss_kept_after_a_lost_one() {
    // A power loss can keep a later write into the preallocated zeros and
    // lose an earlier one: records after a hole of zeros. The log ends at
    // the hole; reopening must cut those stale records before it gives
    // the file its zeros back, or a new record of the lost one's length
    // would link them back into the log: a commit nobody acknowledged,
    // replayed by the next recovery.
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, 1 << 16).unwrap();
    let mut all = fill(&log, 1, 6, 50);
    drop(log);
    // Lose the 4th transaction (its two records), keep the 5th and 6th.
    let lost = all[6].0;
    let kept = all[8].0;
    let p = log_path(d.path(), 1);
    let mut b = std::fs::read(&p).unwrap();
    b[lost.offset as usize..kept.offset as usize]
        .iter_mut()
        .for_each(|x| *x = 0);
    std::fs::write(&p, &b).unwrap();
    all.truncate(6);
    let end = LogCursor::open(vfs.clone(), d.path())
        .unwrap()
        .end()
        .unwrap();
    assert_eq!(end, lost);
    let log = Log::open_at(vfs.clone(), d.path(), ENV, 1 << 16, end, Lsn::ZERO).unwrap();
    assert_eq!(file_len(d.path(), 1), 1 << 16);
    // The same sizes as the lost transaction: the stale 5th would follow.
    all.extend(fill(&log, 4, 1, 50));
    assert_eq!(log.end(), kept);
    drop(log);
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);
}

#[test]
fn a_torn_header_in_a_preallocated_newest_file_is_an_unfinished_creation() {
    // The file's size can survive a power loss without its header: a
    // header whose checksum fails followed by nothing but zeros is a
    // creation that never finished (nothing was written into it), not a
    // damaged file that stops every reader. A nonzero byte after it is
    // damage.
    let d = tmp();
    let vfs = OsVfs::shared();
    let log = Log::create(vfs.clone(), d.path(), ENV, MIN_LG_MAX).unwrap();
    let all = fill(&log, 1, 3, 10);
    log.new_file().unwrap();
    drop(log);
    let two = log_path(d.path(), 2);
    let mut b = std::fs::read(&two).unwrap();
    assert_eq!(
        b.len() as u64,
        crate::storage::logfiles::preallocated_len(MIN_LG_MAX)
    );
    b[20] ^= 0x21;
    std::fs::write(&two, &b).unwrap();
    assert_eq!(live_log_files(&vfs, d.path()).unwrap(), [1]);
    assert_eq!(read_all(&vfs, d.path()).unwrap(), all);
    b[3000] = 1;
    std::fs::write(&two, &b).unwrap();
    assert_eq!(live_log_files(&vfs, d.path()).unwrap(), [1, 2]);
    assert!(matches!(
        read_all(&vfs, d.path()),
        Err(Error::Corrupt { .. })
    ));
}
