//! Power loss while an environment is being created, and while its log
//! moves to a new file (issue 9 defect 4), on `CrashVfs`'s strong model.
//!
//! The power is cut at every mutating file operation of the very first
//! `Env::open` with `create` (with and without a `DB_CONFIG` prepared
//! beforehand), and at every one of a commit that moves the log to a new
//! file, each cut under several power-loss outcomes (a durable name with 0
//! bytes or a prefix of its data, a torn header, a lost creation). Then
//! every tool's library call runs on what survived, as an operator would
//! after the outage:
//!
//! * the read-only ones (`db_printlog`'s walk, `db_stat -l`/`-e`/`-t`,
//!   `db_archive` in each mode, a read-only open as `db_dump` and
//!   `db_verify` make it) succeed and change no byte;
//! * `db_checkpoint`, `db_recover`, `db_recover -c` and `db_recover -t`
//!   succeed, and `db_hotbackup` backs the rotated log up;
//! * nothing acknowledged is lost: after the creation cut nothing was
//!   acknowledged, and the next open with `create` gives a working
//!   environment; after the rotation cut every commit that returned `Ok`
//!   is there, and the environment keeps working.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::printlog::{Entries, Range};
use libcore::recover::{recover_env, RecoverEnvOptions};
use libcore::testing::archive::{self, ArchiveMode};
use libcore::Layout;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::CrashVfs;

/// Power-loss outcomes tried at each cut of the first open (enough for
/// the strong model to produce every state: no file, 0 bytes, a torn or
/// a whole header), and of the rotating commit.
const CREATION_SEEDS: u64 = 48;
const ROTATION_SEEDS: u64 = 8;

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// The read-only tools, each of which must succeed and leave every byte
/// of `home` as it was. Returns the database names the read-only view
/// sees and the number of log records printed.
fn read_only_tools(home: &Path, ctx: &str) -> (Vec<String>, usize) {
    let before = snapshot(home);
    let mut records = 0;
    let mut entries =
        Entries::open(home, Range::default()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    while entries
        .next()
        .unwrap_or_else(|e| panic!("{ctx}: {e}"))
        .is_some()
    {
        records += 1;
    }
    libcore::stat::log(home).unwrap_or_else(|e| panic!("{ctx}: db_stat -l: {e}"));
    libcore::stat::env(home).unwrap_or_else(|e| panic!("{ctx}: db_stat -e: {e}"));
    libcore::stat::txn(home).unwrap_or_else(|e| panic!("{ctx}: db_stat -t: {e}"));
    let vfs: SharedVfs = OsVfs::shared();
    let layout = Layout::resolve(&vfs, home).unwrap();
    for mode in [
        ArchiveMode::Unused,
        ArchiveMode::AllLogs,
        ArchiveMode::Databases,
    ] {
        archive::list(&vfs, &layout, mode, false)
            .unwrap_or_else(|e| panic!("{ctx}: db_archive {mode:?}: {e}"));
    }
    let env = Env::open(home, EnvOptions::read_only())
        .unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
    let names = env.db_names();
    for n in &names {
        let db = env.open_db(n).unwrap();
        libcore::scan(&env, &db, |_, _| Ok(())).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }
    drop(env);
    assert_eq!(
        before,
        snapshot(home),
        "{ctx}: a read-only tool changed the directory"
    );
    (names, records)
}

/// A directory with nothing of ours: every tool says "not an environment"
/// and creates nothing.
fn nothing_of_ours(home: &Path, ctx: &str) {
    let not_env = |r: libcore::Result<()>, what: &str| match r {
        Err(libcore::Error::NotEnvironment { .. }) => {}
        other => panic!("{ctx}: {what}: {other:?}"),
    };
    not_env(
        recover_env(home, RecoverEnvOptions::default()).map(drop),
        "db_recover",
    );
    not_env(
        Entries::open(home, Range::default()).map(drop),
        "db_printlog",
    );
    not_env(libcore::stat::log(home).map(drop), "db_stat -l");
    not_env(
        Env::open(home, EnvOptions::read_only()).map(drop),
        "read-only open",
    );
    not_env(
        libcore::checkpoint::checkpoint(home, Duration::from_secs(5)).map(drop),
        "db_checkpoint",
    );
    assert!(snapshot(home).is_empty(), "{ctx}: a tool created files");
}

/// `db_recover`, `-c` and `-t` (to now), each on its own copy of `home`.
fn recoveries(home: &Path, ctx: &str) {
    for (what, catastrophic, until) in [
        ("db_recover", false, None),
        ("db_recover -c", true, None),
        (
            "db_recover -t",
            false,
            Some(libcore::testing::timespec::now()),
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        for (p, b) in snapshot(home) {
            std::fs::write(copy.path().join(p.file_name().unwrap()), b).unwrap();
        }
        let opts = RecoverEnvOptions {
            catastrophic,
            until,
            ..RecoverEnvOptions::default()
        };
        recover_env(copy.path(), opts).unwrap_or_else(|e| panic!("{ctx}: {what}: {e}"));
        // A recovered directory answers every read-only tool as well.
        read_only_tools(copy.path(), &format!("{ctx}, after {what}"));
    }
}

/// Where a fresh environment's first open stops: each of its mutating
/// file operations, with and without a `DB_CONFIG` there first.
#[test]
fn a_power_loss_during_the_first_open_leaves_an_environment_every_tool_handles() {
    let probe = tempfile::tempdir().unwrap();
    let crash = CrashVfs::new(probe.path());
    let env = Env::open(probe.path(), opts(&crash)).unwrap();
    let total = crash.mutations();
    drop(env);
    assert!(total >= 4, "{total} mutations");

    let mut cases = 0;
    let mut states = BTreeMap::new();
    for with_config in [false, true] {
        for cut in 0..=total {
            for seed in 0..CREATION_SEEDS {
                let dir = tempfile::tempdir().unwrap();
                let home = dir.path();
                if with_config {
                    std::fs::write(home.join("DB_CONFIG"), "set_lg_max 65536\n").unwrap();
                }
                let crash = CrashVfs::new(home);
                crash.crash_after(cut);
                // (At `total` the machine stops right after the last one.)
                drop(Env::open(home, opts(&crash)));
                crash.power_loss(seed * 7919 + cut).unwrap();
                let ctx = format!("config {with_config}, cut {cut}/{total}, seed {seed}");
                *states.entry(describe(home)).or_insert(0) += 1;

                if snapshot(home).is_empty() {
                    // Nothing survived, in a directory that held nothing:
                    // no environment, and the tools create nothing.
                    nothing_of_ours(home, &ctx);
                } else {
                    let (names, _) = read_only_tools(home, &ctx);
                    assert!(names.is_empty(), "{ctx}");
                    recoveries(home, &ctx);
                    libcore::checkpoint::checkpoint(home, Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("{ctx}: db_checkpoint: {e}"));
                }

                // The application opens again, with create: a working
                // environment, whatever the cut left.
                let env = Env::open(home, EnvOptions::create())
                    .unwrap_or_else(|e| panic!("{ctx}: open with create: {e}"));
                let mut t = env.begin().unwrap();
                let db = t.create_db("a.db", None).unwrap();
                t.put(&db, b"k", b"v").unwrap();
                t.commit().unwrap();
                drop(env);
                let env = Env::open(home, EnvOptions::default()).unwrap();
                let db = env.open_db("a.db").unwrap();
                assert_eq!(env.get(&db, b"k").unwrap(), Some(b"v".to_vec()), "{ctx}");
                env.close().unwrap();
                cases += 1;
            }
        }
    }
    // The states the cuts are meant to produce were produced.
    for want in [
        "no log file",
        "log file of 0 bytes",
        "log file with a whole header",
    ] {
        assert!(
            states.keys().any(|s: &String| s.contains(want)),
            "{want}: {states:?}"
        );
    }
    assert!(
        states.keys().any(|s| s.contains("torn header")),
        "no torn header among {states:?}"
    );
    println!("{cases} power losses during creation: {states:?}");
}

fn opts(crash: &std::sync::Arc<CrashVfs>) -> EnvOptions {
    EnvOptions {
        vfs: Some(crash.clone()),
        serve_requests: false,
        ..EnvOptions::create()
    }
}

/// What a cut left of `log.0000000001`.
fn describe(home: &Path) -> String {
    if snapshot(home).is_empty() {
        return "nothing at all".into();
    }
    match std::fs::read(home.join("log.0000000001")) {
        Err(_) => "no log file".into(),
        Ok(b) if b.is_empty() => "log file of 0 bytes".into(),
        Ok(b) if b.len() < 40 => "torn header (short)".into(),
        Ok(b) => {
            let whole =
                libcore::testing::log::FileHeader::decode(Path::new("log"), &b[..40], 1).is_ok();
            if whole {
                "log file with a whole header".into()
            } else {
                "torn header (damaged)".into()
            }
        }
    }
}

/// A commit whose records do not fit the current log file moves the log
/// to a new one: the power is cut at each file operation of that commit.
#[test]
fn a_power_loss_while_the_log_moves_to_a_new_file_loses_nothing_acknowledged() {
    const LG_MAX: u32 = 4096;
    // How many commits fit before the one that rotates, and the mutations
    // that commit does.
    let (before, start, end) = {
        let dir = tempfile::tempdir().unwrap();
        let crash = CrashVfs::new(dir.path());
        let env = Env::open(dir.path(), rotation_opts(&crash, LG_MAX)).unwrap();
        let db = setup(&env);
        let mut n = 0;
        loop {
            let files = logs(dir.path());
            let m = crash.mutations();
            commit(&env, &db, n);
            if logs(dir.path()) > files {
                break (n, m, crash.mutations());
            }
            n += 1;
        }
    };
    assert!(end > start + 3, "{start}..{end}");

    let mut cases = 0;
    let mut states = BTreeMap::new();
    for cut in start..=end {
        for seed in 0..ROTATION_SEEDS {
            let dir = tempfile::tempdir().unwrap();
            let home = dir.path();
            let crash = CrashVfs::new(home);
            let env = Env::open(home, rotation_opts(&crash, LG_MAX)).unwrap();
            let db = setup(&env);
            for n in 0..before {
                commit(&env, &db, n);
            }
            crash.crash_after(cut - start);
            let acked = try_commit(&env, &db, before);
            drop(env);
            crash.power_loss(seed * 104_729 + cut).unwrap();
            let ctx = format!(
                "cut {}/{}, seed {seed}, acknowledged {acked}",
                cut - start,
                end - start
            );
            *states.entry(newest(home)).or_insert(0) += 1;

            let (names, records) = read_only_tools(home, &ctx);
            assert_eq!(names, ["a.db"], "{ctx}");
            assert!(records > 0, "{ctx}");
            recoveries(home, &ctx);
            let bk = tempfile::tempdir().unwrap();
            let target = bk.path().join("bk");
            let vfs: SharedVfs = OsVfs::shared();
            hot_backup(&vfs, home, &target, &BackupOptions::default(), &mut |_| {})
                .unwrap_or_else(|e| panic!("{ctx}: db_hotbackup: {e}"));
            libcore::checkpoint::checkpoint(home, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{ctx}: db_checkpoint: {e}"));

            // Every acknowledged commit is there, and the environment goes on.
            let env = Env::open(home, EnvOptions::default())
                .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            let db = env.open_db("a.db").unwrap();
            let last = if acked { before } else { before - 1 };
            for n in 0..=last {
                assert!(
                    env.get(&db, &key(n)).unwrap().is_some(),
                    "{ctx}: commit {n} lost"
                );
            }
            commit(&env, &db, before + 1);
            env.close().unwrap();
            let env = Env::open(home, EnvOptions::default()).unwrap();
            let db = env.open_db("a.db").unwrap();
            assert!(env.get(&db, &key(before + 1)).unwrap().is_some(), "{ctx}");
            env.close().unwrap();
            cases += 1;
        }
    }
    for want in ["0 bytes", "torn header", "whole header"] {
        assert!(
            states.keys().any(|s: &String| s.contains(want)),
            "{want}: {states:?}"
        );
    }
    println!("{cases} power losses while the log moved to a new file: {states:?}");
}

/// What a cut left of the newest log file.
fn newest(home: &Path) -> String {
    let vfs: SharedVfs = OsVfs::shared();
    let n = *libcore::testing::log::list_log_files(&vfs, home)
        .unwrap()
        .last()
        .unwrap();
    let b = std::fs::read(libcore::testing::log::log_path(home, n)).unwrap();
    let what = match b.len() {
        0 => "0 bytes",
        1..=39 => "torn header",
        40 => "whole header",
        _ => "records",
    };
    format!("file {n}: {what}")
}

fn rotation_opts(crash: &std::sync::Arc<CrashVfs>, lg_max: u32) -> EnvOptions {
    EnvOptions {
        lg_max: Some(lg_max),
        ..opts(crash)
    }
}

fn logs(home: &Path) -> usize {
    std::fs::read_dir(home)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            libcore::testing::log::parse_log_name(&n.to_string_lossy()).is_some()
        })
        .count()
}

fn setup(env: &Env) -> libcore::Db {
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", Some(512)).unwrap();
    t.commit().unwrap();
    db
}

fn key(n: u32) -> Vec<u8> {
    format!("key{n:05}").into_bytes()
}

fn try_commit(env: &Env, db: &libcore::Db, n: u32) -> bool {
    let Ok(mut t) = env.begin() else { return false };
    if t.put(db, &key(n), &[n as u8; 300]).is_err() {
        return false;
    }
    t.commit().is_ok()
}

fn commit(env: &Env, db: &libcore::Db, n: u32) {
    assert!(try_commit(env, db, n), "commit {n}");
}
