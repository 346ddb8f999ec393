//! `db_hotbackup -u` and `-D` through libcore, with file systems that let a
//! test act at an exact moment of the run (a hook) or cut the power at
//! every point of it (`CrashVfs`).

use libcore::backup::{hot_backup, BackupOptions};
use libcore::recover::{recover_env, RecoverEnvOptions};
use libcore::testing::manifest::Manifest;
use libcore::{Env, EnvOptions};
use libcore::{OpenMode, OsVfs, SharedVfs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use testkit::CrashVfs;
use testkit::{contents, Event, HookVfs, When};

type Hook = Box<dyn FnMut() + Send>;

/// What a `HookVfs` watches for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    /// A file opened for writing at exactly this path.
    OpenForWrite,
    /// A file renamed to a path whose file name starts with this path's.
    RenameTo,
}

/// A file system (the real one, or another) plus a hook run each time the
/// watched event happens, at most `times` times. Returns the file system
/// and the count of runs left.
fn hooked(
    inner: SharedVfs,
    on: On,
    watch: PathBuf,
    times: u32,
    hook: Hook,
) -> (Arc<HookVfs>, Arc<Mutex<(u32, Hook)>>) {
    let vfs = HookVfs::new(inner);
    let left = Arc::new(Mutex::new((times, hook)));
    let fire = left.clone();
    let prefix = watch.to_string_lossy().into_owned();
    vfs.set_hook(move |when, ev| {
        let hit = match (when, ev) {
            (When::After, Event::Open { path, mode }) => {
                on == On::OpenForWrite && *mode != OpenMode::Read && *path == watch
            }
            (When::After, Event::Rename { to, .. }) => {
                on == On::RenameTo && to.to_string_lossy().starts_with(&prefix)
            }
            _ => false,
        };
        if hit {
            let mut h = fire.lock().unwrap();
            if h.0 > 0 {
                h.0 -= 1;
                (h.1)();
            }
        }
        Ok(())
    });
    (vfs, left)
}

fn contents_at(home: &Path) -> testkit::Contents {
    contents(&Env::open(home, EnvOptions::read_only()).unwrap())
}

/// An open source environment with a.db, checkpointed, and a full backup
/// of it in `bk`.
fn source_and_backup(home: &Path, bk: &Path) -> Arc<Env> {
    std::fs::create_dir(home).unwrap();
    let mut o = EnvOptions::create();
    o.lg_max = Some(64 * 1024);
    let env = Env::open(home, o).unwrap();
    put_many(&env, 0, 200);
    env.checkpoint().unwrap();
    hot_backup(&os(), home, bk, &BackupOptions::default(), &mut |_| {}).unwrap();
    put_many(&env, 200, 100);
    Arc::new(env)
}

fn put_many(env: &Env, from: u32, n: u32) {
    let a = match env.open_db("a.db") {
        Ok(a) => a,
        Err(_) => {
            let mut t = env.begin().unwrap();
            let a = t.create_db("a.db", None).unwrap();
            t.commit().unwrap();
            a
        }
    };
    for i in from..from + n {
        let mut t = env.begin().unwrap();
        t.put(&a, format!("a{i:05}").as_bytes(), &[b'a'; 100])
            .unwrap();
        t.commit().unwrap();
    }
}

/// A hook that commits one bulk load of 300 new 1000-byte records into
/// c.db (created by the first) each time it runs, with keys after every
/// earlier round's: new pages, written straight to the file, only a
/// marker in the log. While the update's lease is in the region the
/// engine would log the load in full instead (commit.rs); the hook takes the
/// leases out first, as a load that looked for one just before the
/// update took its lease.
fn bulk_loader(env: Arc<Env>, first_round: u32) -> Hook {
    let mut round = first_round;
    Box::new(move || {
        libcore::testing::region::Region::at(&libcore::OsVfs::shared(), env.home())
            .update(false, |s| s.leases.clear())
            .unwrap();
        let mut t = env.begin_bulk().unwrap();
        let c = match env.open_db("c.db") {
            Ok(c) => c,
            Err(_) => t.create_db("c.db", None).unwrap(),
        };
        for i in 0..300u32 {
            t.put(
                &c,
                format!("bulk{round:02}-{i:05}").as_bytes(),
                &[b'b'; 1000],
            )
            .unwrap();
        }
        t.commit().unwrap();
        round += 1;
    })
}

fn os() -> SharedVfs {
    OsVfs::shared()
}

fn update(vfs: &SharedVfs, home: &Path, bk: &Path) -> (libcore::Result<()>, Vec<String>) {
    let mut said = Vec::new();
    let opts = BackupOptions {
        update: true,
        ..Default::default()
    };
    let r = hot_backup(vfs, home, bk, &opts, &mut |s| said.push(s));
    (r.map(|_| ()), said)
}

fn last_log(dir: &Path) -> PathBuf {
    let n = *libcore::testing::log::list_log_files(&os(), dir)
        .unwrap()
        .last()
        .unwrap();
    libcore::testing::log::log_path(dir, n)
}

/// Regression (issue 10, defect 2): a bulk load of a new database that
/// committed while `-u` copied the log had its marker replayed but its
/// pages never copied (an update copies no database file), and the update
/// said "hot backup completed" over a backup whose c.db could not be read.
/// Here the load commits at the exact moment the update opens the
/// backup's last log file to append to it. The update now sees the marker
/// in the log it copied, copies c.db again and the log after it, and ends
/// equal to the source.
#[test]
fn a_bulk_load_landing_while_update_copies_the_log_is_copied_again() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let env = source_and_backup(&home, &bk);
    let (hook, left) = hooked(
        os(),
        On::OpenForWrite,
        last_log(&bk),
        1,
        bulk_loader(env.clone(), 0),
    );
    let vfs: SharedVfs = hook;
    let (r, said) = update(&vfs, &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    assert_eq!(left.lock().unwrap().0, 0, "the load ran inside the update");
    assert!(
        said.iter().any(|s| s.contains("c.db; copying it again")),
        "{said:#?}"
    );
    let want = contents(&env);
    assert_eq!(want["c.db"].len(), 300);
    assert_eq!(contents_at(&bk), want);
}

/// Bulk loads that keep landing while the update copies the database
/// again: it gives up after three copies, naming the database, and once
/// the loads stop, the next update completes and matches the source.
#[test]
fn bulk_loads_during_every_copy_fail_the_update_and_a_rerun_completes() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let env = source_and_backup(&home, &bk);
    bulk_loader(env.clone(), 0)();
    // Each time a copy of c.db is put in place under its temporary name.
    let (hook, _) = hooked(
        os(),
        On::RenameTo,
        bk.join(".tmp.c.db."),
        u32::MAX,
        bulk_loader(env.clone(), 1),
    );
    let vfs: SharedVfs = hook;
    let (r, said) = update(&vfs, &home, &bk);
    let e = r
        .map(|_| said.clone())
        .expect_err("every copy of c.db was overtaken")
        .to_string();
    assert!(e.contains("c.db") && e.contains("3 copies"), "{e}");
    assert_eq!(
        said.iter()
            .filter(|s| s.contains("copying it again"))
            .count(),
        3,
        "{said:#?}"
    );
    assert!(Manifest::read(&os(), &bk).unwrap().is_some());
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    assert_eq!(contents_at(&bk), contents(&env));
}

/// A database copied again must be replayed from the source's last
/// checkpoint's redo point when that lies before the backup's consistency
/// point: a change the source still held in its cache when the file was
/// copied is only in the log before the consistency point. Here c.db
/// (several leaf pages) has its first key changed after the checkpoint and
/// before the backup, then a bulk load appends keys after all of them
/// (touching only the last leaf), with no checkpoint since.
#[test]
fn a_database_copied_again_is_replayed_from_the_source_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    std::fs::create_dir(&home).unwrap();
    let env = Arc::new(Env::open(&home, EnvOptions::create()).unwrap());
    put_many(&env, 0, 50);
    let mut t = env.begin().unwrap();
    let c = t.create_db("c.db", None).unwrap();
    for i in 0..200u32 {
        t.put(&c, format!("a{i:04}").as_bytes(), &[b'0'; 100])
            .unwrap();
    }
    t.commit().unwrap();
    env.checkpoint().unwrap();
    let mut t = env.begin().unwrap();
    t.put(&c, b"a0000", b"changed after the checkpoint")
        .unwrap();
    t.commit().unwrap();
    hot_backup(&os(), &home, &bk, &BackupOptions::default(), &mut |_| {}).unwrap();
    bulk_loader(env.clone(), 0)();
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    assert!(
        said.iter().any(|s| s.contains("copying it again")),
        "{said:#?}"
    );
    let got = contents_at(&bk);
    assert_eq!(&got["c.db"][&b"a0000"[..]], b"changed after the checkpoint");
    assert_eq!(got, contents(&env));
}

/// Regression (issue 10, defect 6): `-u` compared only the backup's last
/// log file's header and tail with the source's. After the source's log
/// was cut by a point-in-time recovery before records the backup held, and
/// written again, an update refused only by luck of where the bytes
/// differed, with a message about a backup opened as an environment. Now
/// `db_recover -t` records the cut in the source's log history, the
/// manifest the history it copied, and the update refuses saying the
/// source's log was cut before the end of the backup's. A cut after the
/// end of the backup's log takes nothing the backup holds: the update
/// goes on.
#[test]
fn update_refuses_a_source_whose_log_was_cut_before_the_backups_end() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let env = source_and_backup(&home, &bk);
    let m = Manifest::read(&os(), &bk).unwrap().unwrap();
    assert_eq!(m.history, Some(0));
    assert!(m.last_record.is_some());
    // Commits a second later, copied by an update, then a recovery of the
    // source to before them, and other commits.
    let before = next_second();
    put_many(&env, 300, 50);
    drop(env);
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    cut_and_write(&home, before, 400);
    let (r, said) = update(&os(), &home, &bk);
    let e = r.expect_err("the source's log was cut").to_string();
    assert!(
        e.contains("log was cut since this backup"),
        "{e}\n{said:#?}"
    );
}

#[test]
fn update_goes_on_after_a_cut_past_the_backups_end() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let env = source_and_backup(&home, &bk);
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    let before = next_second();
    put_many(&env, 300, 50);
    drop(env);
    cut_and_write(&home, before, 400);
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    assert_eq!(contents_at(&bk), contents_at(&home));
    let m = Manifest::read(&os(), &bk).unwrap().unwrap();
    assert_ne!(
        m.history,
        Some(0),
        "the backup follows the source's new history"
    );
}

/// Waits for the next second and returns the one before it.
fn next_second() -> u64 {
    let before = now();
    while now() == before {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    before
}

/// `db_recover -t until` on `home`, then 80 other commits.
fn cut_and_write(home: &Path, until: u64, from: u32) {
    let r = recover_env(
        home,
        RecoverEnvOptions {
            until: Some(until as i64),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.stopped_at_time);
    let env = Env::open(home, EnvOptions::default()).unwrap();
    put_many(&env, from, 80);
    env.close().unwrap();
}

/// The same protection without a history id change: the source replaced
/// by an older copy of itself (restored) and written again. The record
/// where the backup's log ends is not the backup's last record any more.
#[test]
fn update_refuses_a_source_whose_log_diverged_from_the_backups() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let old = d.path().join("old");
    let env = source_and_backup(&home, &bk);
    env.checkpoint().unwrap();
    copy_dir(&home, &old);
    put_many(&env, 300, 100);
    drop(env);
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    // The restore, and other commits over the same LSNs.
    std::fs::remove_dir_all(&home).unwrap();
    copy_dir(&old, &home);
    let env = Env::open(&home, EnvOptions::default()).unwrap();
    let mut t = env.begin().unwrap();
    let z = t.create_db("z.db", None).unwrap();
    for i in 0..400u32 {
        t.put(&z, &i.to_be_bytes(), &[b'z'; 120]).unwrap();
    }
    t.commit().unwrap();
    drop(env);
    let (r, said) = update(&os(), &home, &bk);
    let e = r.expect_err("the source's log diverged").to_string();
    assert!(e.contains("diverged"), "{e}\n{said:#?}");
}

/// A backup whose manifest was written by the previous version (no history
/// id, no last record) is still updated, and then has both.
#[test]
fn a_version_1_manifest_is_read_and_updated() {
    let d = tempfile::tempdir().unwrap();
    let (home, bk) = (d.path().join("src"), d.path().join("bk"));
    let env = source_and_backup(&home, &bk);
    let path = Manifest::path(&bk);
    let text = std::fs::read_to_string(&path).unwrap();
    let v1: String = text
        .lines()
        .filter(|l| !l.starts_with("history ") && !l.starts_with("last_record "))
        .map(|l| format!("{}\n", l.replace("bdbtools-backup 2", "bdbtools-backup 1")))
        .collect();
    std::fs::write(&path, v1).unwrap();
    let (r, said) = update(&os(), &home, &bk);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    let m = Manifest::read(&os(), &bk).unwrap().unwrap();
    assert!(m.history.is_some() && m.last_record.is_some());
    assert_eq!(contents_at(&bk), contents(&env));
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Regression (issue 10, defect 7): `-D` copied DB_CONFIG with
/// `std::fs::copy`, outside the Vfs and without an fsync, before the
/// manifest that says the backup is complete: after a power loss such a
/// backup could hold an empty DB_CONFIG, and a failover would open it with
/// the wrong directory layout. The power-loss model sees only what goes
/// through the Vfs, so the test also checks that DB_CONFIG is written,
/// fsynced and put into place through it before the manifest is; then
/// it cuts the power at every point of the backup: wherever the manifest
/// survives, DB_CONFIG is whole.
#[test]
fn db_config_of_a_complete_backup_survives_a_power_loss() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let home = root.join("src");
    std::fs::create_dir(&home).unwrap();
    let config = "set_data_dir data\nset_lg_dir logs\n";
    std::fs::write(home.join("DB_CONFIG"), config).unwrap();
    for sub in ["data", "logs"] {
        std::fs::create_dir(home.join(sub)).unwrap();
    }
    let env = Env::open(&home, EnvOptions::create()).unwrap();
    put_many(&env, 0, 20);
    env.close().unwrap();
    let opts = BackupOptions {
        config_dirs: true,
        ..Default::default()
    };
    let bk = root.join("bk");
    let run = |crash_at: Option<u64>| {
        let _ = std::fs::remove_dir_all(&bk);
        let crash = CrashVfs::new(root);
        if let Some(n) = crash_at {
            crash.crash_after(n);
        }
        let (hook, _) = hooked(
            crash.clone(),
            On::RenameTo,
            PathBuf::from("/nothing"),
            0,
            Box::new(|| {}),
        );
        let vfs: SharedVfs = hook.clone();
        let r = hot_backup(&vfs, &home, &bk, &opts, &mut |_| {});
        (r.map(|_| ()), crash, hook)
    };

    let (r, crash, hook) = run(None);
    r.unwrap();
    let total = crash.mutations();
    let seen = hook.journal();
    let cfg_at = seen
        .iter()
        .position(|(op, p)| p == &bk.join("DB_CONFIG") && (*op == "rename" || *op == "link"))
        .expect("DB_CONFIG is put into place through the Vfs");
    // The last name the manifest takes: a full backup moved into place
    // over an old one puts a commit record there first.
    let manifest_at = seen
        .iter()
        .rposition(|(op, p)| *op == "rename" && p == &Manifest::path(&bk))
        .unwrap();
    assert!(cfg_at < manifest_at, "{seen:#?}");
    assert!(
        seen[..cfg_at].iter().any(|(op, p)| *op == "sync"
            && p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("DB_CONFIG")),
        "DB_CONFIG is fsynced before it is put into place: {seen:?}"
    );

    // The last point is after the last operation: nothing is cut off but
    // what was never synced.
    let mut complete = 0;
    for n in 0..=total {
        let (_, crash, _) = run(Some(n));
        crash.power_loss(n).unwrap();
        if Manifest::read(&os(), &bk).ok().flatten().is_some() {
            complete += 1;
            let got = std::fs::read_to_string(bk.join("DB_CONFIG")).unwrap_or_default();
            assert_eq!(got, config, "crash after {n} of {total} operations");
        }
    }
    assert!(complete > 0, "some crash points left a complete backup");
}
