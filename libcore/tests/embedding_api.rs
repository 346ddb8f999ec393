//! The embedding API's promises to an application (issue 15): the
//! durability a transaction chooses is the durability it gets under a
//! power loss, `Env::flush` makes nosync commits durable without a
//! checkpoint, and a `Db` handle works only with the environment that gave
//! it out.

use libcore::{Durability, Env, EnvOptions, Error};
use std::path::Path;
use testkit::CrashVfs;

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Commits `k<i>` alone in one transaction with durability `d`.
fn put_one(env: &Env, db: &libcore::Db, i: u32, d: Durability) {
    let mut t = env.begin().unwrap();
    t.set_durability(d);
    t.put(db, &key(i), b"v").unwrap();
    t.commit().unwrap();
}

fn present(home: &Path) -> Vec<u32> {
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    let got = (0..10).filter(|&i| env.get(&db, &key(i)).unwrap().is_some());
    let got = got.collect();
    env.close().unwrap();
    got
}

/// Sync commits survive any power loss; nosync ones survive once
/// `flush` returned; a nosync commit after the last flush may be lost,
/// but only with everything after it (the log is a prefix), and it is
/// lost when the power loss keeps nothing unsynced: a nosync commit
/// really did not fsync. Readers see a nosync commit at once.
#[test]
fn each_transaction_gets_the_durability_it_chose() {
    for seed in 0..24u64 {
        let d = tempfile::tempdir().unwrap();
        let crash = CrashVfs::new(d.path());
        let opts = EnvOptions {
            vfs: Some(crash.clone()),
            ..EnvOptions::create()
        };
        let env = Env::open(d.path(), opts).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        put_one(&env, &db, 0, Durability::Sync);
        put_one(&env, &db, 1, Durability::NoSync);
        assert!(env.get(&db, &key(1)).unwrap().is_some(), "seen at once");
        put_one(&env, &db, 2, Durability::NoSync);
        env.flush().unwrap();
        put_one(&env, &db, 3, Durability::NoSync);
        put_one(&env, &db, 4, Durability::NoSync);
        drop(env); // the process dies with the machine
        if seed == 0 {
            crash.power_loss_untorn().unwrap();
        } else {
            crash.power_loss(seed).unwrap();
        }
        let got = present(d.path());
        assert!(got.starts_with(&[0, 1, 2]), "seed {seed}: {got:?}");
        assert!(
            got == [0, 1, 2] || got == [0, 1, 2, 3] || got == [0, 1, 2, 3, 4],
            "seed {seed}: not a prefix: {got:?}"
        );
        if seed == 0 {
            assert_eq!(got, [0, 1, 2], "nothing unsynced kept");
        }
    }
}

/// In an environment opened nosync, a transaction can still ask to be
/// durable when it returns.
#[test]
fn a_sync_transaction_in_a_nosync_environment_is_durable() {
    let d = tempfile::tempdir().unwrap();
    let crash = CrashVfs::new(d.path());
    let opts = EnvOptions {
        vfs: Some(crash.clone()),
        nosync: Some(true),
        ..EnvOptions::create()
    };
    let env = Env::open(d.path(), opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    put_one(&env, &db, 0, Durability::NoSync);
    put_one(&env, &db, 1, Durability::Sync);
    drop(env);
    crash.power_loss_untorn().unwrap();
    assert_eq!(present(d.path()), [0, 1]);
}

fn assert_misuse<T: std::fmt::Debug>(r: libcore::Result<T>, what: &str) {
    match r {
        Err(Error::Misuse(m)) => {
            assert!(m.contains("another open environment"), "{what}: {m}");
            assert!(!m.contains('\n'), "{what}: {m}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

/// A `Db` from one environment used with another (even one opened later
/// on the same directory, where the same file id may name another
/// database) used to read and write whatever that id named there. Every
/// use fails now, and changes nothing.
#[test]
fn a_database_handle_works_only_with_its_own_environment() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let env_a = Env::open(a.path(), EnvOptions::create()).unwrap();
    let env_b = Env::open(b.path(), EnvOptions::create()).unwrap();
    let mut t = env_a.begin().unwrap();
    let db_a = t.create_db("a.db", None).unwrap();
    t.put(&db_a, b"k", b"from a").unwrap();
    t.commit().unwrap();
    let mut t = env_b.begin().unwrap();
    let db_b = t.create_db("a.db", None).unwrap();
    t.put(&db_b, b"k", b"from b").unwrap();
    t.commit().unwrap();

    assert_misuse(env_b.get(&db_a, b"k"), "get");
    let mut t = env_b.begin().unwrap();
    assert_misuse(t.put(&db_a, b"k", b"x"), "put");
    assert_misuse(t.get(&db_a, b"k"), "txn get");
    assert_misuse(t.delete(&db_a, b"k"), "delete");
    drop(t);
    assert_eq!(env_b.get(&db_b, b"k").unwrap().unwrap(), b"from b");
    // A clone is the same environment: the handle works there.
    let clone = env_a.clone();
    assert_eq!(clone.get(&db_a, b"k").unwrap().unwrap(), b"from a");
    clone.close().unwrap();

    // Reopened, the directory is another open environment.
    env_a.close().unwrap();
    let again = Env::open(a.path(), EnvOptions::default()).unwrap();
    assert_misuse(again.get(&db_a, b"k"), "after reopen");
    let db = again.open_db("a.db").unwrap();
    assert_eq!(again.get(&db, b"k").unwrap().unwrap(), b"from a");
    again.close().unwrap();
    env_b.close().unwrap();
}

fn log_files(home: &Path) -> Vec<u32> {
    libcore::testing::log::list_log_files(&libcore::OsVfs::shared(), home).unwrap()
}

/// Waits (at most 20 s) for `what` to hold, committing one more small
/// transaction each round so the owner has something to check.
fn until(env: &Env, db: &libcore::Db, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0u32;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        let mut t = env.begin().unwrap();
        t.put(db, format!("tick{i}").as_bytes(), b"t").unwrap();
        t.commit().unwrap();
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An owner asked for upkeep checkpoints by itself once enough log was
/// written and removes the log files recovery no longer needs, but never
/// one a live lease in the region (a hot backup, a replication master)
/// covers; without upkeep it does neither.
#[test]
fn upkeep_checkpoints_by_log_size_and_removes_only_unleased_logs() {
    use libcore::testing::region::Region;
    for auto in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let opts = EnvOptions {
            lg_max: Some(16 * 1024),
            upkeep: libcore::Upkeep {
                checkpoint_log_bytes: auto.then_some(64 * 1024),
                remove_unused_logs: auto,
                ..Default::default()
            },
            ..EnvOptions::create()
        };
        let env = Env::open(d.path(), opts).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        // A backup holds a lease from log file 3 on.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Region::at(&libcore::OsVfs::shared(), d.path())
            .update(false, |s| {
                s.add_lease(std::process::id(), 0, 3, now + 600, now);
            })
            .unwrap();
        for round in 0..40u32 {
            let mut t = env.begin().unwrap();
            for i in 0..20u32 {
                t.put(&db, &key(round * 20 + i), &[9u8; 200]).unwrap();
            }
            t.commit().unwrap();
        }
        if !auto {
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert_eq!(env.last_checkpoint(), libcore::Lsn::ZERO);
            assert_eq!(log_files(d.path())[0], 1);
            env.close().unwrap();
            continue;
        }
        until(&env, &db, "a checkpoint past file 5", || {
            env.last_checkpoint().file > 5
        });
        until(&env, &db, "log files 1 and 2 removed", || {
            log_files(d.path())[0] == 3
        });
        // The leased files stay, however far the checkpoints go.
        let files = log_files(d.path());
        assert!(files.len() > 3, "{files:?}");
        assert!(files.windows(2).all(|w| w[1] == w[0] + 1), "{files:?}");
        // Lease given back: the next checkpoint's removal takes them.
        Region::at(&libcore::OsVfs::shared(), d.path())
            .update(false, |s| s.leases.clear())
            .unwrap();
        let redo_file = || env.redo_point().file;
        until(&env, &db, "files below the redo point removed", || {
            log_files(d.path())[0] >= redo_file().saturating_sub(1) && log_files(d.path())[0] > 3
        });
        let files = log_files(d.path());
        assert!(files.windows(2).all(|w| w[1] == w[0] + 1), "{files:?}");
        // Everything is still there.
        for k in 0..800u32 {
            assert!(env.get(&db, &key(k)).unwrap().is_some(), "k{k}");
        }
        env.close().unwrap();
        let env = Env::open(d.path(), EnvOptions::default()).unwrap();
        let db = env.open_db("a.db").unwrap();
        assert!(env.get(&db, &key(799)).unwrap().is_some());
        env.close().unwrap();
    }
}

/// A checkpoint interval checkpoints while transactions commit, and not
/// while nothing happens.
#[test]
fn upkeep_checkpoints_by_time_while_commits_happen() {
    let d = tempfile::tempdir().unwrap();
    let opts = EnvOptions {
        upkeep: libcore::Upkeep {
            checkpoint_interval: Some(std::time::Duration::from_millis(100)),
            ..Default::default()
        },
        ..EnvOptions::create()
    };
    let env = Env::open(d.path(), opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let first = env.last_checkpoint();
    until(&env, &db, "a checkpoint", || env.last_checkpoint() != first);
    // Idle: after at most one more (for the last commit), none.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let settled = env.last_checkpoint();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(env.last_checkpoint(), settled, "checkpointed while idle");
    env.close().unwrap();
}

/// Errors say what happened by kind, not only by message: an
/// application matches `kind()` to decide what to do next.
#[test]
fn errors_come_with_a_kind_to_act_on() {
    use libcore::ErrorKind;
    let d = tempfile::tempdir().unwrap();
    let env = Env::open(d.path(), EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let mut t = env.begin().unwrap();
    assert_eq!(
        t.create_db("a.db", None).unwrap_err().kind(),
        ErrorKind::Exists
    );
    drop(t);
    assert_eq!(env.open_db("b.db").unwrap_err().kind(), ErrorKind::NotFound);
    let mut t = env.begin().unwrap();
    assert_eq!(
        t.create_db("c.db", Some(1000)).unwrap_err().kind(),
        ErrorKind::Misuse,
        "a page size that is not a power of two"
    );
    drop(t);
    let missing = d.path().join("nothing here");
    std::fs::create_dir(&missing).unwrap();
    assert_eq!(
        Env::open(&missing, EnvOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    env.close().unwrap();
    let view = Env::open(d.path(), EnvOptions::read_only()).unwrap();
    assert_eq!(view.begin().unwrap_err().kind(), ErrorKind::Misuse);
}

/// Regression: the housekeeping thread holds the environment while it
/// checkpoints; `close` returned while it still did, so reopening the
/// directory at once in the same process failed with "already open in
/// this process". The last `close` now waits for it. Here the thread's
/// removal of an unused log file is held up while the application closes
/// and reopens.
#[test]
fn an_environment_reopens_at_once_after_close_while_upkeep_was_busy() {
    use std::sync::mpsc;
    use testkit::{Event, HookVfs, When};
    let d = tempfile::tempdir().unwrap();
    let vfs = HookVfs::os();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let busy_tx = std::sync::Mutex::new(busy_tx);
    vfs.set_hook(move |when, ev| {
        let upkeep = std::thread::current().name() == Some(libcore::HOUSEKEEPER);
        if let (When::Before, Event::Remove(p), true) = (when, ev, upkeep) {
            if p.to_string_lossy().contains("log.") {
                let _ = busy_tx.lock().unwrap().send(());
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        }
        Ok(())
    });
    let opts = EnvOptions {
        vfs: Some(vfs.clone()),
        lg_max: Some(16 * 1024),
        upkeep: libcore::Upkeep {
            checkpoint_log_bytes: Some(32 * 1024),
            remove_unused_logs: true,
            ..Default::default()
        },
        ..EnvOptions::create()
    };
    let env = Env::open(d.path(), opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let mut t = env.begin().unwrap();
    for i in 0..300u32 {
        t.put(&db, &key(i), &[5u8; 300]).unwrap();
    }
    t.commit().unwrap();
    busy_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("an automatic checkpoint");
    env.close().unwrap();
    let env = Env::open(d.path(), EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    assert!(env.get(&db, &key(1)).unwrap().is_some());
    env.close().unwrap();
}

/// Regression: a sync-mode snapshot (or read) waits for the newest
/// installed commit to be durable; it ran that log fsync itself when it
/// came between the commit's install and its committer's flush, and the
/// committer then waited for the reader thread to be scheduled again
/// after the fsync: with 4 busy snapshot readers on 2 cores the writer
/// made a third of its commits. Readers now wait for the committer's own
/// fsync (running one only if none comes within 20 ms). Here readers
/// take snapshots flat out while one thread commits; nearly every log
/// fsync must be the committer's.
#[test]
fn snapshot_readers_leave_the_log_fsync_to_the_committer() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use testkit::{Event, HookVfs, When};
    let d = tempfile::tempdir().unwrap();
    let vfs = HookVfs::os();
    let (by_readers, by_others) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, o) = (by_readers.clone(), by_others.clone());
    vfs.set_hook(move |when, ev| {
        if let (When::Before, Event::Sync(p)) = (when, ev) {
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log."))
            {
                let reader = std::thread::current().name() == Some("snapshot-reader");
                if reader { &r } else { &o }.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    let env = Env::open(
        d.path(),
        EnvOptions {
            vfs: Some(vfs.clone()),
            ..EnvOptions::create()
        },
    )
    .unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            std::thread::Builder::new()
                .name("snapshot-reader".into())
                .spawn_scoped(s, || {
                    while !stop.load(Ordering::Relaxed) {
                        let snap = env.snapshot().unwrap();
                        for p in snap.iter(&db).unwrap().take(20) {
                            p.unwrap();
                        }
                    }
                })
                .unwrap();
        }
        for i in 0..400u32 {
            put_one(&env, &db, i, Durability::Sync);
        }
        stop.store(true, Ordering::Relaxed);
    });
    env.close().unwrap();
    let (readers, others) = (
        by_readers.load(Ordering::Relaxed),
        by_others.load(Ordering::Relaxed),
    );
    assert!(others >= 100, "the hook counted the log fsyncs: {others}");
    assert!(
        readers * 50 <= others,
        "snapshot readers ran {readers} of the log's fsyncs (the committer {others})"
    );
}
