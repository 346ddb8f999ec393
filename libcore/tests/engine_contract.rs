//! Regression tests of the engine's contract with its callers, each for a
//! defect found by review (issue 9): a removed database must stay removed,
//! a reader must never see a commit that did not become durable, calls
//! that would wait for their own thread must fail at once, and closing one
//! clone of an `Env` must not close the environment under the others.

use libcore::testing::region::Region;
use libcore::Error;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use testkit::{Event, HookVfs, When};
use testkit::{FaultyVfs, Op};

type Hook = Box<dyn Fn(&Path) -> libcore::Result<()> + Send + Sync>;

/// Hooks run before a file is removed and before a log file is fsynced
/// (through a `HookVfs` over the real file system); a hook's error is the
/// operation's.
#[derive(Default)]
struct Hooks {
    on_remove: Mutex<Option<Hook>>,
    on_log_sync: Mutex<Option<Hook>>,
}

fn is_log(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("log."))
}

fn run(slot: &Mutex<Option<Hook>>, p: &Path) -> libcore::Result<()> {
    match slot.lock().unwrap().as_ref() {
        Some(f) => f(p),
        None => Ok(()),
    }
}

/// The file system the environment runs on, and its hooks.
fn hook_vfs() -> (Arc<HookVfs>, Arc<Hooks>) {
    let hooks = Arc::new(Hooks::default());
    let vfs = HookVfs::os();
    let h = hooks.clone();
    vfs.set_hook(move |when, ev| match (when, ev) {
        (When::Before, Event::Remove(p)) => run(&h.on_remove, p),
        (When::Before, Event::Sync(p)) if is_log(p) => run(&h.on_log_sync, p),
        _ => Ok(()),
    });
    (vfs, hooks)
}

fn eio(path: &Path) -> Error {
    Error::io(path, "remove", std::io::Error::from_raw_os_error(5))
}

fn open_with(home: &Path, vfs: Arc<HookVfs>) -> Env {
    let vfs: SharedVfs = vfs;
    let opts = EnvOptions {
        vfs: Some(vfs),
        ..EnvOptions::create()
    };
    Env::open(home, opts).unwrap()
}

/// Runs `f` on a thread and fails the test if it does not return within
/// `secs` (a deadlock would otherwise hang the suite).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: still waiting after {secs} s (deadlock)"))
}

/// Defect 9.1. A checkpoint that ran between a `remove_db` commit and the
/// unlink of its file picked a redo point past the removal record. The
/// machine then stopped before the unlink reached the disk, so recovery
/// (from that checkpoint) never replayed the removal, found the file on
/// disk and adopted it again: the removed database came back after a
/// crash, holding a value that no commit left there (the committed one was
/// newer and only in the cache). Any checkpoint from another thread could
/// do it, `db_checkpoint` and `db_hotbackup -c` through the region
/// included. Now a checkpoint waits for committed removals to finish.
#[test]
fn a_checkpoint_during_a_removal_never_brings_the_database_back() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (hooked, vfs) = hook_vfs();
    let env = open_with(home, hooked);
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"stale").unwrap();
    t.commit().unwrap();
    env.checkpoint().unwrap(); // "stale" is on disk now
    let mut t = env.begin().unwrap();
    t.put(&db, b"k", b"newer").unwrap();
    t.commit().unwrap(); // only in the cache and the log

    // At the unlink: a checkpoint from another thread gets (up to) half a
    // second to run, then the power fails before the unlink (EIO stops
    // everything, as a dead machine would).
    let ckp_env = Mutex::new(Some(env.clone()));
    let ran = Arc::new(Mutex::new(None));
    let ran2 = ran.clone();
    let thread = Arc::new(Mutex::new(None));
    let thread2 = thread.clone();
    *vfs.on_remove.lock().unwrap() = Some(Box::new(move |p: &Path| {
        if p.file_name().is_some_and(|n| n == "a.db") {
            if let Some(e) = ckp_env.lock().unwrap().take() {
                let (tx, rx) = mpsc::channel();
                *thread2.lock().unwrap() = Some(std::thread::spawn(move || {
                    let _ = tx.send(e.checkpoint().is_ok());
                }));
                *ran2.lock().unwrap() = rx.recv_timeout(Duration::from_millis(500)).ok();
            }
            return Err(eio(p));
        }
        Ok(())
    }));
    let mut t = env.begin().unwrap();
    t.remove_db(&db).unwrap();
    assert!(
        t.commit().is_err(),
        "the unlink failed: the commit must say so"
    );
    assert_eq!(
        *ran.lock().unwrap(),
        None,
        "a checkpoint completed while a committed removal was not yet on disk"
    );
    *vfs.on_remove.lock().unwrap() = None;
    // The checkpoint (refused now: the environment failed) ends, and with
    // it its handle.
    let ckp = thread.lock().unwrap().take().expect("checkpoint thread");
    ckp.join().unwrap();
    drop(env);

    let env = Env::open(home, EnvOptions::default()).unwrap();
    match env.open_db("a.db") {
        Err(Error::NotFound(_)) => {}
        Ok(db) => panic!(
            "the removed database came back holding {:?}",
            env.get(&db, b"k").unwrap()
        ),
        Err(e) => panic!("open_db: {e}"),
    }
    assert!(!home.join("a.db").exists(), "recovery left the file behind");
    env.close().unwrap();
}

/// Defect 9.2, the failure half. Pages of a commit were installed for
/// readers before its log fsync, and readers never looked at the failed
/// state: after an EIO on the log fsync `commit` returned an error but
/// `get` returned the new value, and kept returning it. Nothing of a
/// failed commit may ever be visible.
#[test]
fn a_commit_whose_fsync_failed_is_never_visible() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let faulty = Arc::new(FaultyVfs::new(OsVfs::shared()));
    let vfs: SharedVfs = faulty.clone();
    let env = Env::open(
        home,
        EnvOptions {
            vfs: Some(vfs),
            ..EnvOptions::create()
        },
    )
    .unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"old").unwrap();
    t.commit().unwrap();
    faulty.set_filter(is_log);
    let next_sync = faulty.counts().syncs + 1;
    faulty.fail_nth(Op::Sync, next_sync);
    let mut t = env.begin().unwrap();
    t.put(&db, b"k", b"failed").unwrap();
    assert!(t.commit().is_err());
    for round in 0..2 {
        match env.get(&db, b"k") {
            Ok(Some(v)) => assert_ne!(
                v,
                b"failed".to_vec(),
                "round {round}: a reader sees the failed commit"
            ),
            Ok(None) => panic!("round {round}: the key vanished"),
            Err(Error::Failed { .. }) => {}
            Err(e) => panic!("round {round}: {e}"),
        }
        let mut c = env.cursor(&db);
        if let Ok(Some((_, v))) = c.first() {
            assert_ne!(v, b"failed".to_vec(), "a cursor sees the failed commit");
        }
    }
    drop(env);
    // Recovery may find the failed commit whole in the log (the fsync's
    // data can reach the disk anyway): an unacknowledged commit may be in
    // the recovered prefix or not, but never half of it.
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    let v = env.get(&db, b"k").unwrap();
    assert!(
        v == Some(b"old".to_vec()) || v == Some(b"failed".to_vec()),
        "{v:?}"
    );
    env.close().unwrap();
}

/// Defect 9.2, the durability half: in sync mode a reader sees nothing
/// that is not durable. A commit whose log fsync is still running (held
/// here by a gate) is installed already, so that the next transaction can
/// build on it; a reader must wait for that fsync, never return the value
/// early.
#[test]
fn a_reader_never_sees_a_commit_before_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (hooked, vfs) = hook_vfs();
    let env = open_with(home, hooked);
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"old").unwrap();
    t.commit().unwrap();

    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let syncing = Arc::new((Mutex::new(false), Condvar::new()));
    let (g, s) = (gate.clone(), syncing.clone());
    *vfs.on_log_sync.lock().unwrap() = Some(Box::new(move |_p: &Path| {
        *s.0.lock().unwrap() = true;
        s.1.notify_all();
        let mut open = g.0.lock().unwrap();
        while !*open {
            open = g.1.wait(open).unwrap();
        }
        Ok(())
    }));
    let committer = {
        let (env, db) = (env.clone(), db.clone());
        std::thread::spawn(move || {
            let mut t = env.begin().unwrap();
            t.put(&db, b"k", b"new").unwrap();
            t.commit().unwrap();
        })
    };
    {
        let mut s = syncing.0.lock().unwrap();
        while !*s {
            s = syncing.1.wait(s).unwrap();
        }
    }
    // The commit is appended and installed; its fsync is held.
    let (tx, rx) = mpsc::channel();
    let reader = {
        let (env, db) = (env.clone(), db.clone());
        std::thread::spawn(move || {
            let _ = tx.send(env.get(&db, b"k").unwrap());
        })
    };
    match rx.recv_timeout(Duration::from_millis(300)) {
        Err(_) => {} // waiting for the fsync, as it must
        Ok(v) => assert_eq!(
            v,
            Some(b"old".to_vec()),
            "a reader saw a commit whose fsync had not completed"
        ),
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    committer.join().unwrap();
    reader.join().unwrap();
    *vfs.on_log_sync.lock().unwrap() = None;
    assert_eq!(env.get(&db, b"k").unwrap(), Some(b"new".to_vec()));
    env.close().unwrap();
}

fn small_env(home: &Path) -> (Env, libcore::Db) {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"v").unwrap();
    t.commit().unwrap();
    (env, db)
}

fn assert_misuse<T: std::fmt::Debug>(r: libcore::Result<T>, what: &str) {
    match r {
        Err(Error::Misuse(_)) => {}
        other => panic!("{what}: expected Error::Misuse, got {other:?}"),
    }
}

/// Defect 9.6. Each of these waited forever for its own thread (the
/// writer lock is held by the thread's own `Txn`; the reader lock by its
/// own read closure): they must fail at once with `Error::Misuse` and
/// leave the environment working.
#[test]
fn calls_that_would_wait_for_their_own_thread_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    within(60, "misuse", move || {
        let (env, db) = small_env(&home);
        {
            let mut t = env.begin().unwrap();
            t.put(&db, b"k", b"in txn").unwrap();
            assert_misuse(
                env.begin().map(|_| ()),
                "begin while this thread's Txn is alive",
            );
            assert_misuse(
                env.checkpoint(),
                "checkpoint while this thread's Txn is alive",
            );
            assert_misuse(
                env.clone().close(),
                "close while this thread's Txn is alive",
            );
            t.commit().unwrap();
        }
        let r = env.read(&db, |_| {
            assert_misuse(env.begin().map(|_| ()), "begin inside a read");
            assert_misuse(env.checkpoint(), "checkpoint inside a read");
            Ok(())
        });
        r.unwrap();
        let mut t = env.begin().unwrap();
        t.put(&db, b"k", b"committed inside a read").unwrap();
        let mut t = Some(t);
        env.read(&db, |_| {
            assert_misuse(t.take().unwrap().commit(), "commit inside a read");
            Ok(())
        })
        .unwrap();
        drop(t);
        // The refused commit was aborted; the environment goes on.
        assert_eq!(env.get(&db, b"k").unwrap(), Some(b"in txn".to_vec()));
        // A read inside a read is fine (it must not take the lock twice).
        let nested = env.read(&db, |_| env.get(&db, b"k")).unwrap();
        assert_eq!(nested, Some(b"in txn".to_vec()));
        let mut t = env.begin().unwrap();
        t.put(&db, b"k", b"after").unwrap();
        t.commit().unwrap();
        env.checkpoint().unwrap();
        env.close().unwrap();
    });
}

/// Defect 9.6, second part: a second owner open of the same home in the
/// same process waited 10 s and then named our own pid as the owner in
/// the way.
#[test]
fn a_second_owner_open_in_the_same_process_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    within(5, "second open", move || {
        let (env, _) = small_env(&home);
        match Env::open(&home, EnvOptions::default()) {
            Err(Error::Misuse(m)) => {
                assert!(
                    m.contains(&home.display().to_string()),
                    "names no home: {m}"
                )
            }
            Err(e) => panic!("expected Misuse, got {e}"),
            Ok(_) => panic!("a second owner opened the environment"),
        }
        // A read-only view next to the owner is still fine.
        Env::open(&home, EnvOptions::read_only()).unwrap();
        env.close().unwrap();
        // Closed: the next owner gets in.
        Env::open(&home, EnvOptions::default())
            .unwrap()
            .close()
            .unwrap();
    });
}

/// Defect 9.7. `close()` on one clone closed the environment for all of
/// them while the others went on committing: the region then said the
/// shutdown was clean with the owner alive (`db_stat -e`), and a
/// checkpoint request said the living owner had exited. Closing a clone
/// gives up that handle only; the last close closes.
#[test]
fn closing_one_clone_leaves_the_environment_open_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let home: PathBuf = dir.path().to_path_buf();
    let (env, db) = small_env(&home);
    let other = env.clone();
    env.close().unwrap();
    let region = Region::at(&libcore::OsVfs::shared(), &home);
    let st = region.read().expect("region");
    assert!(
        !st.clean_shutdown,
        "clean shutdown recorded with a handle alive"
    );
    assert_eq!(st.owner_pid, std::process::id());
    let mut t = other.begin().unwrap();
    t.put(&db, b"k", b"after close of a clone").unwrap();
    t.commit().unwrap();
    let (_, how) = libcore::checkpoint::checkpoint(&home, Duration::from_secs(10)).unwrap();
    assert_eq!(
        how,
        libcore::checkpoint::Taken::ByOwner(std::process::id()),
        "the living owner must answer the checkpoint request"
    );
    other.close().unwrap();
    let st = region.read().expect("region");
    assert!(st.clean_shutdown, "the last close marks a clean shutdown");
    let env = Env::open(&home, EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    assert_eq!(
        env.get(&db, b"k").unwrap(),
        Some(b"after close of a clone".to_vec())
    );
    env.close().unwrap();
}
