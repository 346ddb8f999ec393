//! Power loss over the zero tail of preallocated log files.
//!
//! A log file is created at its full size and records are written into
//! its zeros; the log leaves a file only after cutting it to its last
//! record and fsyncing the cut (`wal/writer.rs`). These tests cut the
//! power (`CrashVfs`, the strong model: any subset of unsynced writes,
//! sizes and names, torn anywhere) at every mutating operation of a
//! workload that rotates the log several times, so a cut lands inside the
//! creation and extension of a new file, inside the cut of the old one,
//! between a record's write and its fsync; in nosync mode many records are
//! pending at once, so a later one may survive an earlier lost one (zeros,
//! then stale records). Each outcome must recover a committed prefix that
//! holds every acknowledged commit; the log, reopened, must append at its
//! real end (not at the file's size, not before stale bytes) and then read
//! strictly (`OnBadRecord::Fail`) from start to end, with every file but
//! the newest ending exactly at its last record.

use libcore::testing::log::{
    list_log_files, log_path, preallocated_len, records_end, LogCursor, OnBadRecord, MIN_LG_MAX,
};
use libcore::{Env, EnvOptions, OsVfs, SharedVfs};
use std::path::Path;
use testkit::CrashVfs;

const DB: &str = "z.db";

fn options(nosync: bool) -> EnvOptions {
    let mut o = EnvOptions::create();
    o.page_size = Some(512);
    o.lg_max = Some(MIN_LG_MAX);
    o.nosync = Some(nosync);
    o.serve_requests = false;
    o
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; 180 + (i as usize * 37) % 200]
}

/// Commits `n` one-put transactions (after one that creates the
/// database); returns how many of the puts were acknowledged: every
/// commit that returned in sync mode, in nosync mode every commit before
/// the last checkpoint that returned.
fn workload(env: &Env, n: u32, nosync: bool) -> u32 {
    let mut acked = 0;
    let Ok(db) = (|| {
        let mut t = env.begin()?;
        let db = t.create_db(DB, None)?;
        t.commit()?;
        Ok::<_, libcore::Error>(db)
    })() else {
        return 0;
    };
    for i in 0..n {
        let done = (|| {
            let mut t = env.begin()?;
            t.put(&db, &key(i), &value(i))?;
            t.commit()?;
            if nosync && i % 7 == 6 {
                env.checkpoint()?;
            }
            Ok::<_, libcore::Error>(())
        })();
        if done.is_err() {
            return acked;
        }
        if !nosync || i % 7 == 6 {
            acked = i + 1;
        }
    }
    acked
}

/// The puts the recovered environment holds: a prefix 0..k of the
/// workload's, each with its value, or a panic naming what is wrong.
fn recovered_prefix(env: &Env, ctx: &str) -> u32 {
    let Ok(db) = env.open_db(DB) else {
        return 0;
    };
    let mut k = 0;
    while let Some(v) = env.get(&db, &key(k)).unwrap() {
        assert_eq!(v, value(k), "{ctx}: key {k}");
        k += 1;
    }
    assert_eq!(
        env.get(&db, &key(k + 1)).unwrap(),
        None,
        "{ctx}: a hole at {k}"
    );
    k
}

/// Every log file but the newest ends at its last record; the whole log
/// reads strictly; the newest ends in zeros after its records.
fn check_log_shape(home: &Path, ctx: &str) {
    let vfs: SharedVfs = OsVfs::shared();
    let files = list_log_files(&vfs, home).unwrap();
    let (&newest, older) = files.split_last().unwrap();
    for &n in older {
        let p = log_path(home, n);
        let len = std::fs::metadata(&p).unwrap().len();
        assert_eq!(
            u64::from(records_end(&vfs, &p).unwrap()),
            len,
            "{ctx}: {} does not end at its last record",
            p.display()
        );
    }
    let mut c = LogCursor::open_with(vfs.clone(), home, OnBadRecord::Fail).unwrap();
    while c.next().unwrap_or_else(|e| panic!("{ctx}: {e}")).is_some() {}
    let end = c.end().unwrap();
    assert_eq!(end.file, newest, "{ctx}");
    let bytes = std::fs::read(log_path(home, newest)).unwrap();
    assert!(
        bytes.len() as u64 >= preallocated_len(MIN_LG_MAX),
        "{ctx}: newest file not preallocated"
    );
    assert!(
        bytes[end.offset as usize..].iter().all(|&b| b == 0),
        "{ctx}: bytes after the end of the log"
    );
}

/// One outcome: the workload stopped after `cut` mutating operations, the
/// power lost (`seed`), maybe again during recovery; then recovery, the
/// checks, more commits, a clean reopen and the checks again.
fn one_case(cut: u64, seed: u64, n: u32, nosync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let crash = CrashVfs::new(home);
    crash.crash_after(cut);
    let mut o = options(nosync);
    o.vfs = Some(crash.clone());
    let acked = match Env::open(home, o) {
        Ok(env) => {
            let a = workload(&env, n, nosync);
            drop(env);
            a
        }
        Err(_) => 0,
    };
    let loss = match seed {
        0 => crash.power_loss_untorn().unwrap(),
        s => crash.power_loss(s).unwrap(),
    };
    let ctx = format!("cut {cut} seed {seed} nosync {nosync} ({acked} acknowledged): {loss:?}");
    // Lose the power again inside recovery, a few operations in.
    if seed % 3 == 1 {
        crash.crash_after(seed % 11);
        let mut o = options(nosync);
        o.vfs = Some(crash.clone());
        if let Ok(env) = Env::open(home, o) {
            drop(env);
        }
        crash.power_loss(seed ^ 0x5a5a).unwrap();
    }
    let mut o = options(nosync);
    o.create = true;
    let env = Env::open(home, o.clone()).unwrap_or_else(|e| panic!("{ctx}: recovery: {e}"));
    let got = recovered_prefix(&env, &ctx);
    assert!(
        got >= acked,
        "{ctx}: recovered {got} puts, {acked} acknowledged"
    );
    assert!(got <= n, "{ctx}");
    // The reopened log appends at its real end: new commits follow the
    // recovered ones and survive a reopen.
    let db = match env.open_db(DB) {
        Ok(db) => db,
        Err(_) => {
            let mut t = env.begin().unwrap();
            let db = t.create_db(DB, None).unwrap();
            t.commit().unwrap();
            db
        }
    };
    for i in got..got + 12 {
        let mut t = env.begin().unwrap();
        t.put(&db, &key(i), &value(i)).unwrap();
        t.commit().unwrap();
    }
    env.close().unwrap();
    check_log_shape(home, &ctx);
    let env = Env::open(home, o).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    assert_eq!(recovered_prefix(&env, &ctx), got + 12, "{ctx}");
    env.close().unwrap();
}

/// Mutating operations of the whole workload, counted on a `CrashVfs`.
fn operations(n: u32, nosync: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let crash = CrashVfs::new(dir.path());
    let mut o = options(nosync);
    o.vfs = Some(crash.clone());
    let env = Env::open(dir.path(), o).unwrap();
    let acked = workload(&env, n, nosync);
    assert!(acked > n - 7, "{acked} of {n} acknowledged without a fault");
    let files = list_log_files(&(crash.clone() as SharedVfs), dir.path()).unwrap();
    assert!(files.len() >= 4, "the workload rotates the log: {files:?}");
    drop(env);
    crash.mutations()
}

#[test]
fn power_loss_at_every_operation_of_a_rotating_sync_log() {
    let n = 40;
    let ops = operations(n, false);
    for cut in 0..=ops {
        for seed in [0, 1 + cut % 5, 0x100 + cut] {
            one_case(cut, seed, n, false);
        }
    }
}

#[test]
fn power_loss_at_every_operation_of_a_rotating_nosync_log() {
    let n = 40;
    let ops = operations(n, true);
    for cut in 0..=ops {
        for seed in [1 + cut % 5, 0x200 + cut, 0x300 + cut] {
            one_case(cut, seed, n, true);
        }
    }
}

/// Regression: the zero tail was made by setting the file's length, which
/// leaves a hole; every record written into it then allocated blocks, and
/// each commit's fdatasync also wrote the inode (`ext4_write_inode` in the
/// writer's stacks; one-thread sync commits were 10-15% slower). The
/// zeros are now written: a new log file has its blocks from the start,
/// and so has a file whose zero tail reopening gave back.
#[test]
fn a_new_log_file_has_its_blocks_allocated_not_a_hole() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let mut o = EnvOptions::create();
    o.lg_max = Some(1 << 20);
    let env = Env::open(d.path(), o).unwrap();
    let mut t = env.begin().unwrap();
    t.create_db(DB, None).unwrap();
    t.commit().unwrap();
    let allocated = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.blocks() * 512, m.len())
    };
    let vfs: SharedVfs = OsVfs::shared();
    let log = log_path(
        d.path(),
        *list_log_files(&vfs, d.path()).unwrap().last().unwrap(),
    );
    let (blocks, len) = allocated(&log);
    assert_eq!(len, preallocated_len(1 << 20));
    assert!(
        blocks >= len,
        "{}: {blocks} bytes allocated of {len}",
        log.display()
    );
    env.close().unwrap();
}
