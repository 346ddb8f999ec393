//! The crash matrix (CONVENTIONS.md, Tests): a small environment (a few
//! hundred commits over three log files, page size 512) is left as a
//! process crash leaves it, then damaged in every way one byte at a time,
//! each on a fresh copy of the directory, and reopened (normal recovery):
//!
//! * (a) the last log file truncated at every byte offset, header
//!   included: recovery must give exactly the state after the commits whose
//!   records lie wholly before the cut, never a panic, a hang or an error;
//! * (b) one byte flipped in the last log file, or in any page of the data
//!   file: recovery gives either the error the damage explains (matched by
//!   kind, not by message: `Corrupt` or `Version` naming the damaged file,
//!   or for a damaged log `LogSequence` naming the database whose change
//!   was lost), or a committed prefix (for the data file, with the log
//!   intact, the whole committed state): never a panic, a hang, another
//!   kind of error, or a value that was never committed.
//!
//! The data file holds only pages written by a checkpoint taken in the
//! second log file (the cache is large enough that nothing is evicted
//! later), so every cut of the third file is a state a real crash can
//! leave: no page on disk is newer than the log kept.
//!
//! The default run flips every 7th byte (`MATRIX_STRIDE` changes it); the
//! ignored `torture_*` test flips every byte.
//!
//! Each case runs in a worker thread with a deadline (a hang fails the test
//! naming the case); `catch_unwind` turns a panic inside the engine into a
//! test failure that names the offset.

use libcore::{scan, Env, EnvOptions};
use libcore::{Error, Lsn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use testkit::Rng;

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

const PAGE: usize = 512;
const DEADLINE: Duration = Duration::from_secs(60);

fn options() -> EnvOptions {
    let mut o = EnvOptions::create();
    o.page_size = Some(PAGE);
    o.lg_max = Some(32 * 1024);
    o.cache_size = Some(8 << 20); // nothing is evicted
    o.serve_requests = false;
    o
}

/// The crashed environment and what its commits were.
struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    last_log: PathBuf,
    last_file: u32,
    /// End of each commit's records (where the next record goes), in order.
    ends: Vec<Lsn>,
    /// `states[i]`: the table after the first `i` commits.
    states: Vec<Table>,
}

/// A temporary directory on tmpfs when there is one: the matrix runs
/// thousands of recoveries, and what it checks is not the disk's fsync.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("matrix").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn fixture() -> Fixture {
    let dir = scratch();
    let home = dir.path().join("env");
    std::fs::create_dir(&home).unwrap();
    let env = Env::open(&home, options()).unwrap();
    let mut ends = Vec::new();
    let mut states = vec![Table::new()];
    let mut model = Table::new();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("m.db", None).unwrap();
        t.commit().unwrap();
        ends.push(env.log_end());
        states.push(model.clone());
        db
    };
    let mut rng = Rng(0x0c0f_fee0);
    let mut checkpointed = false;
    let mut next_key = 0u64;
    loop {
        let end = env.log_end();
        if end.file == 2 && !checkpointed {
            env.checkpoint().unwrap();
            checkpointed = true;
            // Every other key changes once right after the checkpoint, so
            // about half the pages get their full image in file 2 and the
            // last file holds small page changes of many commits; the
            // other pages exist only on disk (a flipped byte there cannot
            // be repaired and must give a clean error).
            let mut t = env.begin().unwrap();
            let keys: Vec<Vec<u8>> = model.keys().step_by(2).cloned().collect();
            for k in keys {
                let v = model.get_mut(&k).unwrap();
                v.push(0x55);
                t.put(&db, &k, v).unwrap();
            }
            t.commit().unwrap();
            ends.push(env.log_end());
            states.push(model.clone());
            continue;
        }
        if end.file == 3 && end.offset > 4000 {
            break;
        }
        let mut t = env.begin().unwrap();
        // Files 1 and 2 load a few hundred records in batches; the last
        // file holds small transactions, so its cuts fall between many.
        let (ops, fresh) = if end.file < 3 {
            (12, true)
        } else {
            (1 + rng.below(3), false)
        };
        for _ in 0..ops {
            let k = if fresh && next_key < 300 {
                next_key += 1;
                format!("key{:03}", (next_key * 7) % 300)
            } else {
                format!("key{:03}", rng.below(300))
            }
            .into_bytes();
            if !fresh && rng.below(5) == 0 && model.contains_key(&k) {
                t.delete(&db, &k).unwrap();
                model.remove(&k);
            } else {
                let len = if rng.below(40) == 0 {
                    PAGE + 100 // overflow
                } else {
                    rng.below(16) as usize
                };
                let v: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                t.put(&db, &k, &v).unwrap();
                model.insert(k, v);
            }
        }
        t.commit().unwrap();
        ends.push(env.log_end());
        states.push(model.clone());
    }
    drop(env); // a process crash: dirty pages stay unwritten
    let last_file = 3;
    let last_log = home.join(format!("log.{last_file:010}"));
    assert!(last_log.exists() && !home.join("log.0000000004").exists());
    let keys = states.last().map(|s| s.len()).unwrap_or(0);
    assert!(keys >= 200, "a few hundred records: {keys}");
    Fixture {
        _dir: dir,
        home,
        last_log,
        last_file,
        ends,
        states,
    }
}

impl Fixture {
    /// How many commits have all their records before `off` in the last
    /// log file.
    fn commits_before(&self, off: u64) -> usize {
        self.ends
            .iter()
            .filter(|e| e.file < self.last_file || u64::from(e.offset) <= off)
            .count()
    }

    /// A fresh copy of the crashed environment (without the lock and the
    /// region, which are no part of the data).
    fn copy(&self, to: &Path) {
        std::fs::create_dir(to).unwrap();
        for ent in std::fs::read_dir(&self.home).unwrap() {
            let ent = ent.unwrap();
            let name = ent.file_name();
            if name.to_string_lossy().starts_with("__db") {
                continue;
            }
            std::fs::copy(ent.path(), to.join(&name)).unwrap();
        }
    }
}

/// Opens (recovers) `home` and reads every pair of `m.db`, in a worker
/// thread with a deadline. `Err` is the engine's error; a panic or a hang
/// fails the test naming `case`.
fn recover(home: PathBuf, case: &str) -> Result<Table, Error> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let env = Env::open(&home, options())?;
            let db = env.open_db("m.db")?;
            let mut t = Table::new();
            scan(&env, &db, |k, v| {
                t.insert(k.to_vec(), v.to_vec());
                Ok(())
            })?;
            env.close()?;
            Ok(t)
        }));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{case}: recovery panicked: {msg}")
        }
        Err(_) => panic!("{case}: recovery hung (no answer in {DEADLINE:?})"),
    }
}

/// The errors a damaged byte may give: the damage found where it is (a
/// corrupt page or record of the damaged file, or a bad magic number or
/// version in its header), or, for a damaged log, a
/// page whose change the lost records held (a log sequence error naming
/// the database). Anything else (an I/O error, "not an environment", an
/// error naming another file) is a wrong answer, whatever its message.
fn expected_error(e: &Error, damaged: &Path, case: &str) {
    let data = damaged.extension().is_some_and(|x| x == "db");
    let ok = match e {
        Error::Corrupt { path, .. } | Error::Version { path, .. } => path == damaged,
        Error::LogSequence { path, .. } => !data && path.file_name() == Some("m.db".as_ref()),
        _ => false,
    };
    assert!(ok, "{case}: not the error the damage explains: {e:?}");
}

#[test]
fn truncate_the_last_log_file_at_every_byte() {
    let fx = fixture();
    let len = std::fs::metadata(&fx.last_log).unwrap().len();
    let scratch = scratch();
    for cut in 0..=len {
        let case = format!("{} cut at {cut}", fx.last_log.display());
        let home = scratch.path().join(format!("t{cut}"));
        fx.copy(&home);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(home.join(fx.last_log.file_name().unwrap()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let want = fx.commits_before(cut);
        match recover(home.clone(), &case) {
            Ok(got) => assert!(
                got == fx.states[want],
                "{case}: recovered {} keys, not the {want} commits before the cut ({} keys){}",
                got.len(),
                fx.states[want].len(),
                match fx.states.iter().position(|s| *s == got) {
                    Some(k) => format!("; it is the state after {k} commits"),
                    None => "; it is no committed state".to_string(),
                }
            ),
            Err(e) => panic!("{case}: recovery failed: {e}"),
        }
        std::fs::remove_dir_all(&home).unwrap();
    }
    eprintln!(
        "truncation: {} cuts of a {len}-byte log file ({} commits, {} in the last file), no errors",
        len + 1,
        fx.ends.len(),
        fx.ends.iter().filter(|e| e.file == fx.last_file).count()
    );
}

/// Flips byte `at` of `file` (a name in the environment) in a fresh copy,
/// recovers, and checks: a clean error, or a committed prefix of at least
/// `min_commits` commits. Returns whether it was an error.
fn flip_case(fx: &Fixture, scratch: &Path, file: &str, at: u64, min_commits: usize) -> bool {
    let case = format!("{file}: byte {at} flipped");
    let home = scratch.join(format!("{file}-{at}"));
    fx.copy(&home);
    let p = home.join(file);
    let mut raw = std::fs::read(&p).unwrap();
    raw[at as usize] ^= 0xff;
    std::fs::write(&p, raw).unwrap();
    let r = recover(home.clone(), &case);
    std::fs::remove_dir_all(&home).unwrap();
    match r {
        Ok(got) => {
            let Some(k) = fx.states.iter().rposition(|s| *s == got) else {
                panic!(
                    "{case}: recovered state ({} keys) is no committed state: wrong data",
                    got.len()
                )
            };
            assert!(
                k >= min_commits,
                "{case}: recovered only {k} commits; the first {min_commits} lie before the damage"
            );
            false
        }
        Err(e) => {
            expected_error(&e, &p, &case);
            true
        }
    }
}

fn stride() -> u64 {
    std::env::var("MATRIX_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

fn flip_last_log(stride: u64) {
    let fx = fixture();
    let name = fx
        .last_log
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let len = std::fs::metadata(&fx.last_log).unwrap().len();
    let scratch = scratch();
    let (mut n, mut errors) = (0, 0);
    for at in (0..len).step_by(stride as usize) {
        // Commits wholly before the damaged byte must survive.
        let min = fx.commits_before(at);
        errors += usize::from(flip_case(&fx, scratch.path(), &name, at, min));
        n += 1;
    }
    eprintln!("{name}: {n} byte flips (every {stride}th of {len}), {errors} clean errors");
}

fn flip_data_file(stride: u64) {
    let fx = fixture();
    let len = std::fs::metadata(fx.home.join("m.db")).unwrap().len();
    let scratch = scratch();
    let all = fx.ends.len();
    let (mut n, mut errors) = (0, 0);
    for at in (0..len).step_by(stride as usize) {
        // The log is intact: the result is everything, or an error.
        errors += usize::from(flip_case(&fx, scratch.path(), "m.db", at, all));
        n += 1;
    }
    eprintln!(
        "m.db: {n} byte flips (every {stride}th of {len}, {} pages), {errors} clean errors",
        len / PAGE as u64
    );
}

#[test]
fn flip_bytes_of_the_last_log_file() {
    flip_last_log(stride());
}

#[test]
fn flip_bytes_of_every_page_of_the_data_file() {
    flip_data_file(stride());
}

#[test]
#[ignore = "slow: run in release by make torture"]
fn torture_flip_every_byte() {
    flip_last_log(1);
    flip_data_file(1);
}
