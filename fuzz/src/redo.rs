//! The `redo` target: well-formed, CRC-valid logs that say hostile things,
//! fed through everything that acts on decoded records rather than only
//! through the parsers.
//!
//! The input is not a log: it drives a generator that writes one with the
//! real appender (`log::Log`), so every record frames, checksums and
//! decodes, and the only thing left to be wrong is what the records say:
//! file creates that rebind an id to another name or page size, removes
//! and renames of unknown or foreign names, page images of any size for
//! any page, deltas with any previous LSN and any ranges (empty ones
//! included), bulk markers, checkpoints naming any redo point and any
//! files, commits with any timestamp, transactions that interleave, and
//! log rotations. Half of the environments start with database files of
//! their own (a 512-byte-page and a 4096-byte-page database built by the
//! engine), whose ids, page LSNs and pages the records reuse, so deltas
//! apply and images look like real pages.
//!
//! Each log then goes through every consumer of decoded records:
//! `db_printlog`'s walk (forwards, backwards, from a record), `db_stat`'s
//! log and environment figures, a read-only open (the in-memory replay)
//! with a scan of every database, and, each on its own copy of the
//! directory, normal recovery, catastrophic recovery, recovery to a time
//! (`recover_env`, what `db_recover` runs) and an owner open, each
//! followed by a read-only open and a verify of what it left.
//!
//! What must hold: each returns, with a value or an error, within bounded
//! steps and memory (a panic, a hang or an allocation out of proportion
//! to the log is the bug), and the read-only consumers leave the directory
//! byte for byte as it was.

use libcore::scan;
use libcore::testing::log::{Checkpoint, Log, Record};
use libcore::testing::page::{self, Meta, PageType};
use libcore::printlog::{Entries, Range};
use libcore::recover::{recover_env, RecoverEnvOptions};
use libcore::{OsVfs, SharedVfs};
use libcore::{Env, EnvOptions, FileId, Lsn, PageNo, TxnId};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Steps (a transaction, a record or a rotation) written from one input
/// at most.
const MAX_STEPS_WRITTEN: usize = 24;
/// Items pulled from one walk at most (a walk that never ends is a hang).
const MAX_STEPS: usize = 100_000;
/// The environment id every generated log carries.
const ENV_ID: u64 = 0x5eed;
/// Commit timestamps are drawn from a small range so recovery to a time
/// has points before, between and after them.
const TIME_BASE: u64 = 1_700_000_000;

/// The fuzz bytes, read as a stream of choices; zeroes once used up.
struct Choices<'a> {
    data: &'a [u8],
    at: usize,
}

impl Choices<'_> {
    fn exhausted(&self) -> bool {
        self.at >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

/// `len` bytes of noise from a one-byte seed (an image of noise costs the
/// input one byte, not a page of them).
fn noise(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A database file of the template environment.
struct TemplateDb {
    name: &'static str,
    bytes: Vec<u8>,
    page_size: usize,
    id: FileId,
}

/// Database files built once by the engine, copied into the environments
/// that start with some.
fn template() -> &'static [TemplateDb] {
    static T: OnceLock<Vec<TemplateDb>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = scratch("template");
        let mut o = EnvOptions::create();
        o.nosync = Some(true);
        o.serve_requests = false;
        let env = Env::open(&dir, o).expect("template environment");
        let mut t = env.begin().expect("begin");
        let a = t.create_db("a.db", Some(512)).expect("a.db");
        let b = t.create_db("b.db", Some(4096)).expect("b.db");
        for i in 0..40u32 {
            let v = vec![i as u8; (i as usize * 37) % 700];
            t.put(&a, format!("k{i:03}").as_bytes(), &v).expect("put");
            t.put(&b, format!("k{i:03}").as_bytes(), &v).expect("put");
        }
        t.commit().expect("commit");
        env.close().expect("close");
        let out = [("a.db", 512), ("b.db", 4096)]
            .into_iter()
            .map(|(name, page_size)| {
                let bytes = std::fs::read(dir.join(name)).expect("template file");
                let id = Meta::decode(&bytes).expect("template meta").file_id;
                TemplateDb {
                    name,
                    bytes,
                    page_size,
                    id,
                }
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        out
    })
}

/// A fresh directory for one run: on tmpfs when there is one (fsync is
/// free there), else the system temporary directory.
fn scratch(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = match std::env::var_os("BDBFUZZ_TMP") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let dir = base.join(format!(
        "bdbfuzz-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// What the generator knows while writing a log: the LSNs written so far
/// and the commit times, for records and recovery points to refer to.
struct Writer<'a> {
    c: Choices<'a>,
    log: Option<Log>,
    lsns: Vec<Lsn>,
    times: Vec<u64>,
    txn: u64,
    /// The page size each file id was last created with (or has in the
    /// template), so images fit and deltas land inside the page.
    sizes: HashMap<FileId, usize>,
    /// The LSN of the last record for each page, so deltas apply.
    pages: HashMap<(FileId, PageNo), Lsn>,
    /// How often a choice is hostile, in 256ths (`hostile`).
    rate: usize,
}

impl Writer<'_> {
    /// Whether this choice is a hostile one (an invalid name or page size,
    /// a zero or random LSN, a page number or offset anywhere). Redo
    /// refuses the first such record and stops there, so their rate is
    /// set per input (`rate` in 256ths, from none up): the logs without
    /// any reach the deep paths, where records contradict each other.
    fn hostile(&mut self) -> bool {
        self.rate > 0 && self.c.below(256) < self.rate
    }

    fn file_id(&mut self) -> FileId {
        if self.hostile() {
            return FileId(self.c.u32() >> self.c.below(32));
        }
        match self.c.below(4) {
            0 => template()[self.c.below(2)].id,
            _ => FileId(1 + self.c.below(4) as u32),
        }
    }

    fn page_size(&mut self) -> u32 {
        if self.hostile() {
            return self.c.u32() % 70_000;
        }
        [512, 512, 1024, 4096, 4096, 65536][self.c.below(6)]
    }

    fn name(&mut self) -> Vec<u8> {
        let names: [&[u8]; 8] = [
            b"",
            b"../escape.db",
            b"/abs.db",
            b"log.0000000001",
            b"DB_CONFIG",
            b"__db.001",
            b"sub/x.db",
            b"bad\0name\xff",
        ];
        if self.hostile() {
            return names[self.c.below(names.len())].to_vec();
        }
        let good: [&[u8]; 4] = [b"a.db", b"b.db", b"c.db", b"with space.db"];
        good[self.c.below(good.len())].to_vec()
    }

    fn pgno(&mut self) -> PageNo {
        if self.hostile() {
            return PageNo(self.c.u32() >> self.c.below(32));
        }
        PageNo(self.c.below(6) as u32)
    }

    /// An LSN a record may name: one written already (so deltas apply and
    /// checkpoints point at records) or a page LSN of the template files;
    /// hostile: zero or anything.
    fn lsn(&mut self) -> Lsn {
        if self.hostile() {
            return match self.c.below(4) {
                0 | 1 => Lsn::ZERO,
                2 => Lsn::new(1 + self.c.below(3) as u32, self.c.u32() % 8192),
                _ => Lsn::from_u64(u64::from(self.c.u32()) << 16 | u64::from(self.c.u8())),
            };
        }
        match self.c.below(4) {
            0 | 1 if !self.lsns.is_empty() => {
                let back = self.c.below(self.lsns.len().min(8)) + 1;
                self.lsns[self.lsns.len() - back]
            }
            2 if !self.lsns.is_empty() => self.lsns[self.c.below(256) * self.lsns.len() / 256],
            _ => {
                let t = &template()[self.c.below(2)];
                let pages = t.bytes.len() / t.page_size;
                let at = self.c.below(pages) * t.page_size;
                page::lsn(&t.bytes[at..at + t.page_size])
            }
        }
    }

    /// A page image: a template page, a fresh page of its own, or noise;
    /// of the size its file was created with or another page size
    /// (hostile: any length).
    fn image(&mut self, id: FileId, pgno: PageNo) -> Vec<u8> {
        let len = match (self.hostile(), self.sizes.get(&id).copied()) {
            (true, _) => [0, 100, 511, 513, 4097, self.c.below(256) * 3][self.c.below(6)],
            (false, Some(n)) if n <= 65536 && self.c.below(4) > 0 => n,
            _ => [512, 1024, 4096, 65536][self.c.below(4)],
        };
        let mut img = match self.c.below(4) {
            0 | 1 => {
                let fitting: Vec<&TemplateDb> =
                    template().iter().filter(|t| t.page_size == len).collect();
                if fitting.is_empty() {
                    vec![0u8; len]
                } else {
                    let t = fitting[self.c.below(fitting.len())];
                    let pages = t.bytes.len() / len;
                    let at = self.c.below(pages) * len;
                    t.bytes[at..at + len].to_vec()
                }
            }
            2 => {
                let mut p = vec![0u8; len];
                if len >= page::PAGE_HEADER_SIZE {
                    page::init(&mut p, pgno, PageType::Leaf);
                }
                p
            }
            _ => noise(self.c.u8(), len),
        };
        for _ in 0..self.c.below(4) {
            if img.is_empty() {
                break;
            }
            let at = self.c.below(256) * img.len() / 256;
            img[at] = self.c.u8();
        }
        img
    }

    /// Byte ranges inside a page of the size the file was created with
    /// (which the page redo holds may not have), some at its very end;
    /// hostile: at any offset. None at all is a choice too.
    fn ranges(&mut self, id: FileId) -> Vec<(u32, Vec<u8>)> {
        let size = self.sizes.get(&id).copied().unwrap_or(512) as u32;
        (0..self.c.below(4))
            .map(|_| {
                let n = self.c.below(20);
                let off = if self.hostile() {
                    match self.c.below(3) {
                        0 => self.c.below(page::LSN_END) as u32,
                        1 => size,
                        _ => self.c.u32(),
                    }
                } else if self.c.below(3) == 0 {
                    size.saturating_sub(n as u32)
                } else {
                    let room = (size as usize).saturating_sub(page::LSN_END + n).max(1);
                    (page::LSN_END + self.c.below(256) * room / 256) as u32
                };
                (off, self.c.bytes(n))
            })
            .collect()
    }

    fn checkpoint(&mut self) -> Record {
        let files = (0..self.c.below(4))
            .map(|_| (self.file_id(), self.name()))
            .collect();
        let redo_lsn = self.lsn();
        Record::Checkpoint(Checkpoint {
            redo_lsn,
            last_ckp: self.lsn(),
            timestamp: TIME_BASE + u64::from(self.c.u8()),
            files,
        })
    }

    fn delta(&mut self, file_id: FileId, pgno: PageNo) -> Record {
        let prev_lsn = match self.pages.get(&(file_id, pgno)) {
            Some(&l) if self.c.below(4) > 0 => l,
            _ => self.lsn(),
        };
        Record::PageDelta {
            file_id,
            pgno,
            prev_lsn,
            ranges: self.ranges(file_id),
        }
    }

    fn create(&mut self, file_id: FileId) -> Record {
        let page_size = self.page_size();
        self.sizes.insert(file_id, page_size as usize);
        Record::FileCreate {
            file_id,
            page_size,
            name: self.name(),
        }
    }

    fn commit(&mut self) -> Record {
        let t = TIME_BASE + u64::from(self.c.u8() % 16);
        self.times.push(t);
        Record::Commit { timestamp: t }
    }

    /// Appends `rec` to the log, remembering its LSN.
    fn emit(&mut self, rec: Record) {
        let Some(log) = &self.log else { return };
        let lsns = log
            .lock()
            .append(&[(TxnId(self.txn), &rec)])
            .expect("append");
        if let (
            Record::PageImage { file_id, pgno, .. } | Record::PageDelta { file_id, pgno, .. },
            Some(&l),
        ) = (&rec, lsns.first())
        {
            self.pages.insert((*file_id, *pgno), l);
        }
        self.lsns.extend(lsns);
    }

    /// One step: a transaction about one file, shaped as the engine
    /// writes them but drawing page sizes, pages and previous LSNs from
    /// what the log said before (so a record that contradicts an earlier
    /// one meets the state the earlier one left), or one record of any
    /// kind, or a log rotation.
    fn step(&mut self) {
        match self.c.below(8) {
            0..=3 => self.transaction(),
            4..=6 => {
                let rec = self.record();
                self.emit(rec);
            }
            _ => {
                if let Some(log) = &self.log {
                    log.new_file().expect("rotate");
                }
            }
        }
    }

    fn transaction(&mut self) {
        let id = self.file_id();
        self.txn = self.txn.wrapping_add(1);
        for _ in 0..1 + self.c.below(5) {
            let pgno = match self.c.below(3) {
                0 => self.pgno(),
                _ => PageNo(self.c.below(4) as u32),
            };
            let rec = match self.c.below(8) {
                0 => self.create(id),
                1..=3 => Record::PageImage {
                    file_id: id,
                    pgno,
                    image: self.image(id, pgno),
                },
                4..=6 => self.delta(id, pgno),
                _ => Record::FileRemove {
                    file_id: id,
                    name: self.name(),
                },
            };
            self.emit(rec);
        }
        if self.c.below(6) > 0 {
            let rec = self.commit();
            self.emit(rec);
        }
    }

    /// One record of any kind, about any file.
    fn record(&mut self) -> Record {
        match self.c.below(16) {
            0 | 1 => {
                let id = self.file_id();
                self.create(id)
            }
            2 => Record::FileRemove {
                file_id: self.file_id(),
                name: self.name(),
            },
            3 => Record::FileRename {
                file_id: self.file_id(),
                old: self.name(),
                new: self.name(),
            },
            4..=6 => {
                let (file_id, pgno) = (self.file_id(), self.pgno());
                Record::PageImage {
                    file_id,
                    pgno,
                    image: self.image(file_id, pgno),
                }
            }
            7..=9 => {
                let (file_id, pgno) = match self.c.below(2) {
                    0 if !self.pages.is_empty() => {
                        let mut keys: Vec<_> = self.pages.keys().copied().collect();
                        keys.sort_unstable();
                        keys[self.c.below(keys.len())]
                    }
                    _ => (self.file_id(), self.pgno()),
                };
                self.delta(file_id, pgno)
            }
            10 if self.c.below(4) == 0 => Record::Epoch {
                epoch: u64::from(self.c.u32()),
                begins: Lsn::from_u64(u64::from(self.c.u32()) << self.c.below(33)),
                continues: u64::from(self.c.u32()),
            },
            10 => Record::BulkMarker {
                file_id: self.file_id(),
                first_new: self.pgno(),
                last: self.pgno(),
            },
            11 if self.c.below(2) == 0 => self.checkpoint(),
            11..=13 => self.commit(),
            14 => {
                // Another transaction (or none) for what follows.
                self.txn = match self.c.below(4) {
                    0 => 0,
                    1 => u64::from(self.c.u32()) << self.c.below(33),
                    _ => self.txn.wrapping_add(1),
                };
                self.commit()
            }
            _ if self.hostile() => {
                self.txn = u64::MAX - self.c.below(2) as u64;
                self.commit()
            }
            _ => self.commit(),
        }
    }
}

/// Copies the chosen template databases into `home`, maybe one of them
/// cut short (a data file behind its log, or torn).
fn seed_databases(c: &mut Choices<'_>, home: &Path) {
    let pick = c.u8();
    for (i, t) in template().iter().enumerate() {
        if pick & (1 << i) == 0 {
            continue;
        }
        let mut bytes = t.bytes.clone();
        if pick & 0x10 != 0 && i == 0 {
            let keep = c.below(bytes.len() / 64 + 1) * 64;
            bytes.truncate(keep);
        }
        std::fs::write(home.join(t.name), bytes).expect("seed database");
    }
}

/// Writes the log the choices describe into `home`; returns the commit
/// times and, for a torn tail, cuts the last file.
fn write_log(w: &mut Writer<'_>, home: &Path) -> Vec<u64> {
    let vfs: SharedVfs = OsVfs::shared();
    let lg_max = if w.c.u8().is_multiple_of(2) {
        4096
    } else {
        1 << 20
    };
    w.log = Some(Log::create(vfs, home, ENV_ID, lg_max).expect("create log"));
    w.txn = 1;
    for _ in 0..MAX_STEPS_WRITTEN {
        if w.c.exhausted() {
            break;
        }
        w.step();
    }
    let end = w.log.take().map(|l| l.end()).unwrap_or_default();
    if w.c.u8().is_multiple_of(4) {
        let path = home.join(libcore::testing::log::log_name(end.file));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let cut = len.saturating_sub(u64::from(w.c.u8()));
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = f.set_len(cut);
        }
    }
    w.times.clone()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, what: &str) -> PathBuf {
    let to = scratch(what);
    for (p, bytes) in snapshot(from) {
        if let Some(name) = p.file_name() {
            std::fs::write(to.join(name), bytes).expect("copy");
        }
    }
    to
}

/// `db_printlog`: forwards, backwards, and forwards from a record.
fn print_log(home: &Path, from: Option<Lsn>) {
    for range in [
        Range::default(),
        Range {
            reverse: true,
            ..Range::default()
        },
        Range {
            begin: from,
            data_len: 8,
            ..Range::default()
        },
    ] {
        let Ok(mut entries) = Entries::open(home, range) else {
            continue;
        };
        for _ in 0..MAX_STEPS {
            match entries.next() {
                Ok(Some(e)) => drop(e.to_string()),
                _ => break,
            }
        }
    }
}

/// A read-only view and every pair of every database in it.
fn read_everything(home: &Path) {
    let mut o = EnvOptions::read_only();
    o.cache_size = Some(1 << 20);
    let Ok(env) = Env::open(home, o) else {
        return;
    };
    for name in env.db_names() {
        let Ok(db) = env.open_db(&name) else { continue };
        let mut n = 0usize;
        let _ = scan(&env, &db, |_, _| {
            n += 1;
            if n > MAX_STEPS {
                return Err(libcore::Error::invalid("too many pairs"));
            }
            Ok(())
        });
        let _ = env.get(&db, b"k007");
        let _ = env.read(&db, |s| libcore::testing::btree::stats(s));
    }
}

/// What the read-only tools do; none may change a byte.
fn read_only_tools(home: &Path, from: Option<Lsn>) {
    let before = snapshot(home);
    print_log(home, from);
    let _ = libcore::stat::log(home);
    let _ = libcore::stat::env(home);
    read_everything(home);
    assert!(
        before == snapshot(home),
        "a read-only consumer changed {}",
        home.display()
    );
}

/// Largest data file the harness verifies. Recovery writes what the log
/// says, and a record for page 2^31 of a file makes it sparse and that
/// long; a verify reads every page of it, as it would of a real file of
/// that size (recovery itself never reads those pages).
const MAX_VERIFIED: u64 = 64 << 20;

/// A recovered directory: it opens, reads and verifies without a panic.
fn check_recovered(home: &Path) {
    read_everything(home);
    let vfs = OsVfs::shared();
    for name in ["a.db", "b.db", "c.db", "with space.db"] {
        let p = home.join(name);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.len() <= MAX_VERIFIED) {
            let _ = libcore::verify::verify_file(&vfs, &p, Default::default());
        }
    }
}

fn db_recover(home: &Path, catastrophic: bool, until: Option<i64>) {
    let r = recover_env(
        home,
        RecoverEnvOptions {
            catastrophic,
            until,
            ..RecoverEnvOptions::default()
        },
    );
    if r.is_ok() {
        check_recovered(home);
        // Recovering a recovered directory is recovery too.
        let _ = recover_env(home, RecoverEnvOptions::default());
    }
}

/// An owner open runs normal recovery and continues the log; close then
/// checkpoints whatever it recovered.
fn owner_open(home: &Path) {
    let o = EnvOptions {
        nosync: Some(true),
        serve_requests: false,
        cache_size: Some(1 << 20),
        ..EnvOptions::default()
    };
    if let Ok(env) = Env::open(home, o) {
        let _ = env.close();
        check_recovered(home);
    }
}

/// One way of recovering a copy of the directory.
type Run<'a> = &'a dyn Fn(&Path);

/// The `redo` target body (see the module documentation).
pub fn redo(data: &[u8]) {
    let mut w = Writer {
        c: Choices { data, at: 0 },
        log: None,
        lsns: Vec::new(),
        times: Vec::new(),
        txn: 1,
        sizes: template().iter().map(|t| (t.id, t.page_size)).collect(),
        pages: HashMap::new(),
        rate: 0,
    };
    w.rate = [0, 0, 3, 8, 24, 64][w.c.below(6)];
    let home = scratch("redo");
    seed_databases(&mut w.c, &home);
    let times = write_log(&mut w, &home);
    let from = w.lsns.get(w.c.below(w.lsns.len() + 1)).copied();
    read_only_tools(&home, from);

    let until = match (w.c.below(3), times.len()) {
        (_, 0) | (0, _) => TIME_BASE as i64 + i64::from(w.c.u8() % 20) - 2,
        (_, n) => times[w.c.below(n)] as i64,
    };
    // Recovery to a time from the last checkpoint or from the start.
    let until_catastrophic = w.c.u8().is_multiple_of(2);
    let runs: [(&str, Run<'_>); 4] = [
        ("normal", &|h| db_recover(h, false, None)),
        ("catastrophic", &|h| db_recover(h, true, None)),
        ("until", &|h| db_recover(h, until_catastrophic, Some(until))),
        ("owner", &owner_open),
    ];
    for (what, run) in runs {
        let copy = copy_dir(&home, what);
        run(&copy);
        let _ = std::fs::remove_dir_all(&copy);
    }
    let _ = std::fs::remove_dir_all(&home);
}
