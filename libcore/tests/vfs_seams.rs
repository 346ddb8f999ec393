//! The owner lock, the region and the copies under the test file systems.
//! They used to call `std::fs`, `fs2` and `filetime` directly, so the
//! power-loss model never saw the region and no fault could reach a lock,
//! a chmod or a utimes. Now they go through the `Vfs`:
//!
//! * a power loss at every cut of an owner's open, a running backup's lease
//!   written into the region, commits and a checkpoint, then the owner
//!   opens and recovers, and `db_archive -d` runs: the region comes back
//!   missing, old or torn (it is never fsynced) and nothing panics, nothing
//!   committed is lost, and no log file a live lease covers is removed;
//! * a failed lock, chmod, utimes or stat gives a one-line error naming the
//!   file and leaves the source as it was (copy, owner open, region,
//!   backup);
//! * locks do not survive a power loss: a second owner opens after it, even
//!   with the first one's handles still in memory.

use libcore::archive::remove_unused;
use libcore::backup::{hot_backup, BackupOptions};
use libcore::copy::{copy_into, CopyOptions};
use libcore::testing::log::list_log_files;
use libcore::testing::region::{Region, REGION_FILE};
use libcore::{Env, EnvOptions, Error, Layout, OsVfs, SharedVfs};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use testkit::{CrashVfs, FaultyVfs, Op, EIO};

type Files = BTreeMap<String, (usize, u64)>;

/// Every regular file of `dir`, by name: its length and a hash of its
/// bytes (a failing comparison prints those, not the bytes).
fn files(dir: &Path) -> Files {
    use std::hash::{Hash, Hasher};
    raw_files(dir)
        .into_iter()
        .map(|(n, b)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut h);
            (n, (b.len(), h.finish()))
        })
        .collect()
}

/// Every regular file of `dir`, by name, with its bytes.
fn raw_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for (name, bytes) in raw_files(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

/// An environment of several small log files, the older ones unused, a
/// region and an owner lock file from its last owner; closed.
fn build(home: &Path) {
    let opts = EnvOptions {
        lg_max: Some(8 * 1024),
        ..EnvOptions::create()
    };
    let env = Env::open(home, opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", Some(512)).unwrap();
    t.commit().unwrap();
    for round in 0..8u32 {
        let mut t = env.begin().unwrap();
        for i in 0..20u32 {
            t.put(&db, &key(round * 100 + i), &[7u8; 200]).unwrap();
        }
        t.commit().unwrap();
    }
    env.checkpoint().unwrap();
    env.close().unwrap();
}

fn on(vfs: &SharedVfs) -> EnvOptions {
    EnvOptions {
        lg_max: Some(8 * 1024),
        serve_requests: false,
        lock_timeout: Duration::from_millis(200),
        vfs: Some(vfs.clone()),
        ..EnvOptions::default()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The start time of this process (`/proc/self/stat` field 22), as a
/// backup records it in its lease.
fn own_start() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &text[text.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// What one run did before the power loss: the keys of each commit that
/// returned success, and whether the lease was written.
#[derive(Default)]
struct Run {
    acked: Vec<u32>,
    attempted: Vec<u32>,
    lease: Option<u32>,
}

/// The owner opens, a backup takes a lease from the second log file on,
/// the owner commits twice and checkpoints in between; everything stops
/// after `cut` mutating operations (never, for `None`).
fn workload(home: &Path, crash: &std::sync::Arc<CrashVfs>) -> Run {
    let vfs: SharedVfs = crash.clone();
    let mut run = Run::default();
    let Ok(env) = Env::open(home, on(&vfs)) else {
        return run;
    };
    let first = list_log_files(&OsVfs::shared(), home).unwrap()[1];
    let t = now();
    let leased = Region::at(&vfs, home).update(false, |s| {
        s.add_lease(std::process::id(), own_start(), first, t + 600, t)
    });
    if matches!(leased, Ok(Some(_))) {
        run.lease = Some(first);
    }
    let db = match env.open_db("a.db") {
        Ok(db) => db,
        Err(_) => return run,
    };
    for round in 0..2u32 {
        let k = 5000 + round;
        run.attempted.push(k);
        let ok = env.begin().and_then(|mut t| {
            t.put(&db, &key(k), b"after")?;
            t.commit()
        });
        if ok.is_err() {
            return run;
        }
        run.acked.push(k);
        if env.checkpoint().is_err() {
            return run;
        }
    }
    run
}

fn contiguous(files: &[u32]) -> bool {
    files.windows(2).all(|w| w[1] == w[0] + 1)
}

#[test]
fn a_power_loss_beside_a_lease_in_the_region_loses_nothing_and_archive_keeps_leased_logs() {
    let tmpl = tempfile::tempdir().unwrap();
    build(tmpl.path());
    // How many mutating operations the whole workload makes.
    let total = {
        let d = tempfile::tempdir().unwrap();
        copy_dir(tmpl.path(), d.path());
        let crash = CrashVfs::new(d.path());
        let run = workload(d.path(), &crash);
        assert_eq!(run.acked.len(), 2, "the workload runs to its end");
        assert!(run.lease.is_some());
        crash.mutations()
    };
    assert!(total > 10, "{total}");
    let (mut lease_kept, mut lease_lost, mut region_damaged) = (0, 0, 0);
    for cut in 0..=total {
        for seed in 0..2u64 {
            let ctx = format!("cut {cut}/{total} seed {seed}");
            let d = tempfile::tempdir().unwrap();
            let home = d.path();
            copy_dir(tmpl.path(), home);
            let crash = CrashVfs::new(home);
            crash.crash_after(cut);
            let run = workload(home, &crash);
            crash.power_loss(seed * 7919 + cut).unwrap();
            let vfs: SharedVfs = crash.clone();
            let raw = std::fs::read(home.join(REGION_FILE)).ok();
            // What the region says now (the test process, the "backup",
            // is still alive, so a lease that survived is live).
            let st = Region::at(&vfs, home).while_leases_held(Ok).unwrap();
            let ours = st
                .as_ref()
                .and_then(|s| s.lowest_live_lease(now()))
                .map(|l| l.first_log);
            match (run.lease, ours) {
                (Some(_), Some(_)) => lease_kept += 1,
                (Some(_), None) => lease_lost += 1,
                _ => {}
            }
            if raw.is_some() && st.is_none() {
                region_damaged += 1;
            }
            // The owner opens (recovery, and a lease that survived kept).
            let env = Env::open(home, on(&vfs)).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            let db = env.open_db("a.db").unwrap();
            for k in &run.acked {
                assert_eq!(
                    env.get(&db, &key(*k)).unwrap().as_deref(),
                    Some(&b"after"[..]),
                    "{ctx}: acknowledged commit {k} lost"
                );
            }
            for k in run.attempted.iter().filter(|k| !run.acked.contains(k)) {
                let v = env.get(&db, &key(*k)).unwrap();
                assert!(v.is_none() || v.as_deref() == Some(&b"after"[..]), "{ctx}");
            }
            assert_eq!(
                env.get(&db, &key(700)).unwrap().as_deref(),
                Some(&[7u8; 200][..])
            );
            env.checkpoint()
                .unwrap_or_else(|e| panic!("{ctx}: checkpoint: {e}"));
            // db_archive -d beside the owner: never past a live lease.
            let layout = Layout::resolve(&vfs, home).unwrap();
            let before = list_log_files(&vfs, home).unwrap();
            remove_unused(&vfs, &layout).unwrap_or_else(|e| panic!("{ctx}: archive -d: {e}"));
            let after = list_log_files(&vfs, home).unwrap();
            assert!(contiguous(&after), "{ctx}: {after:?}");
            if let Some(first) = ours {
                let kept: Vec<u32> = before.iter().copied().filter(|n| *n >= first).collect();
                assert!(
                    kept.iter().all(|n| after.contains(n)),
                    "{ctx}: leased from {first}, before {before:?}, after {after:?}"
                );
            }
            env.close().unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
            let env = Env::open(home, EnvOptions::read_only()).unwrap();
            let db = env.open_db("a.db").unwrap();
            for k in &run.acked {
                assert!(env.get(&db, &key(*k)).unwrap().is_some(), "{ctx}: {k}");
            }
        }
    }
    eprintln!(
        "region power losses: {} cuts, lease kept {lease_kept}, lost {lease_lost}, region damaged {region_damaged}",
        total + 1
    );
    // The region is modelled: a lease written but never fsynced can be
    // lost, and one can survive.
    assert!(
        lease_kept > 0 && lease_lost > 0,
        "{lease_kept} {lease_lost}"
    );
}

/// The message of `e`, checked to be one line naming `name`.
fn one_line_naming(e: &Error, name: &str) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "{m}");
    assert!(m.contains(name), "{m} does not name {name}");
    m
}

/// The real file system, where every `op` on a file whose name holds
/// `name` fails with EIO (every one: a caller that may do without one,
/// such as a region read for a hint, must not hide the fault).
fn faulty_on(op: Op, name: &'static str) -> std::sync::Arc<FaultyVfs> {
    let f = FaultyVfs::os();
    f.set_filter(move |p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(name))
    });
    f.fail_from(op, 1);
    f
}

#[test]
fn a_failed_chmod_utimes_or_stat_fails_the_copy_naming_the_file_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    std::fs::create_dir(&home).unwrap();
    build(&home);
    let src = home.join("a.db");
    let before = files(&home);
    let mtime = std::fs::metadata(&src).unwrap().modified().unwrap();
    for op in [Op::SetMode, Op::SetTimes, Op::Stat] {
        let target = d.path().join(format!("copy-{op:?}"));
        std::fs::create_dir(&target).unwrap();
        let f = faulty_on(op, "a.db");
        let vfs: SharedVfs = f.clone();
        let e = copy_into(
            &vfs,
            std::slice::from_ref(&src),
            &target,
            true,
            CopyOptions::default(),
            |_| {},
        )
        .unwrap_err();
        assert!(testkit::is_errno(&e, EIO), "{op:?}: {e}");
        one_line_naming(&e, "a.db");
        assert!(f.counts().injected >= 1, "{op:?}");
        assert_eq!(files(&target), Files::new(), "{op:?}: left a file");
        assert_eq!(files(&home), before, "{op:?}: the source changed");
        assert_eq!(std::fs::metadata(&src).unwrap().modified().unwrap(), mtime);
    }
}

#[test]
fn a_failed_lock_fails_the_owner_open_naming_the_lock_file_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let before = files(d.path());
    for op in [Op::Lock, Op::Stat] {
        let f = faulty_on(op, "__db.lock");
        let vfs: SharedVfs = f.clone();
        let Err(e) = Env::open(d.path(), on(&vfs)) else {
            panic!("{op:?}: the owner opened");
        };
        assert!(testkit::is_errno(&e, EIO), "{op:?}: {e}");
        one_line_naming(&e, "__db.lock");
        assert_eq!(files(d.path()), before, "{op:?}");
        // Nothing is left held.
        assert_eq!(
            libcore::testing::owner::live_owner(&OsVfs::shared(), d.path()),
            None
        );
    }
}

#[test]
fn a_failed_region_lock_fails_archive_and_backup_naming_the_region_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    std::fs::create_dir(&home).unwrap();
    build(&home);
    let before = files(&home);
    assert!(before.contains_key(REGION_FILE));
    // db_archive -d must know the leases before it removes anything.
    for op in [Op::Lock, Op::Read] {
        let f = faulty_on(op, REGION_FILE);
        let vfs: SharedVfs = f.clone();
        let layout = Layout::resolve(&vfs, &home).unwrap();
        let e = remove_unused(&vfs, &layout).unwrap_err();
        one_line_naming(&e, REGION_FILE);
        assert_eq!(files(&home), before, "{op:?}");
    }
    // A hot backup takes its lease in the region first.
    let target = d.path().join("bk");
    for op in [Op::Lock, Op::Write] {
        let f = faulty_on(op, REGION_FILE);
        let vfs: SharedVfs = f.clone();
        let e =
            hot_backup(&vfs, &home, &target, &BackupOptions::default(), &mut |_| {}).unwrap_err();
        one_line_naming(&e, REGION_FILE);
        assert_eq!(files(&home), before, "{op:?}");
        assert!(!target.join("a.db").exists());
    }
    // A chmod failing in the backup's copies: the source stays as it was
    // (but for its region, where the backup took and gave back a lease).
    let f = faulty_on(Op::SetMode, "a.db");
    let vfs: SharedVfs = f.clone();
    let e = hot_backup(&vfs, &home, &target, &BackupOptions::default(), &mut |_| {}).unwrap_err();
    one_line_naming(&e, "a.db");
    let data = |m: Files| -> Files {
        m.into_iter()
            .filter(|(n, _)| !n.starts_with("__db."))
            .collect()
    };
    assert_eq!(data(files(&home)), data(before.clone()));
    assert!(!target.join("a.db").exists());
    // And with a sound file system it completes.
    hot_backup(
        &OsVfs::shared(),
        &home,
        &target,
        &BackupOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(files(&target)["a.db"], before["a.db"]);
}

#[test]
fn locks_do_not_survive_a_power_loss() {
    let d = tempfile::tempdir().unwrap();
    build(d.path());
    let crash = CrashVfs::new(d.path());
    let vfs: SharedVfs = crash.clone();
    let first = Env::open(d.path(), on(&vfs)).unwrap();
    // While it lives, it is the owner, for the model as for this process.
    assert_eq!(
        libcore::testing::owner::live_owner(&vfs, d.path()),
        Some(std::process::id())
    );
    assert!(matches!(
        Env::open(d.path(), on(&vfs)),
        Err(Error::Misuse(_))
    ));
    // The lock is the model's, not the real file's.
    assert_eq!(
        libcore::testing::owner::live_owner(&OsVfs::shared(), d.path()),
        None
    );
    crash.power_loss(3).unwrap();
    // The first owner's process died with the power: its handles are dead
    // and its lock is gone; a new owner opens (and recovers).
    assert_eq!(libcore::testing::owner::live_owner(&vfs, d.path()), None);
    let second = Env::open(d.path(), on(&vfs)).unwrap();
    drop(first);
    // The dead owner's drop released nothing of the new one's.
    assert!(matches!(
        Env::open(d.path(), on(&vfs)),
        Err(Error::Misuse(_))
    ));
    assert_eq!(
        libcore::testing::owner::live_owner(&vfs, d.path()),
        Some(std::process::id())
    );
    second.close().unwrap();
    Env::open(d.path(), on(&vfs)).unwrap().close().unwrap();
}

/// Regression: `Layout::resolve` read `DB_CONFIG` through the real file
/// system whatever `Vfs` it was given, so no fault model reached that read
/// (an environment opened on a failing disk as if its DB_CONFIG were
/// fine). It reads through the caller's `Vfs` now: a failed read is the
/// open's one-line error naming the file, and nothing changes.
#[test]
fn a_failed_db_config_read_fails_the_open_naming_it() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("DB_CONFIG"), "set_lg_max 65536\n").unwrap();
    build(d.path());
    let before = files(d.path());
    let f = faulty_on(Op::Read, "DB_CONFIG");
    let vfs: SharedVfs = f.clone();
    let Err(e) = Env::open(d.path(), on(&vfs)) else {
        panic!("the owner opened");
    };
    assert!(testkit::is_errno(&e, EIO), "{e}");
    one_line_naming(&e, "DB_CONFIG");
    assert_eq!(files(d.path()), before);
}

/// The directory store's lock (held around every put, replace and
/// removal, so two writers on one shared directory cannot both win a
/// compare-and-swap) used to be taken with `fs2` on a `std::fs` file: no
/// fault could reach it. Through the `Vfs`, a failed lock fails the write
/// with one line naming the lock file and leaves the store as it was.
#[test]
fn a_failed_store_lock_fails_the_write_naming_it_and_writes_nothing() {
    use libcore::replica::{DirStore, ReplicaStore};
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let good = DirStore::open(OsVfs::shared(), &root).unwrap();
    assert!(good.create("lease", b"one").unwrap());
    good.put("seed", b"takes the lock once").unwrap();
    let version = good.get("lease").unwrap().unwrap().version;
    let before = files(&root);

    let f = faulty_on(Op::Lock, ".lock");
    let store = DirStore::open(f.clone(), &root).unwrap();
    let e = store.replace("lease", b"two", &version).unwrap_err();
    one_line_naming(&e, ".lock");
    let e = store.put("other", b"x").unwrap_err();
    one_line_naming(&e, ".lock");
    let e = store.delete("lease").unwrap_err();
    one_line_naming(&e, ".lock");
    assert!(f.counts().injected > 0);
    assert_eq!(files(&root), before);
    assert_eq!(good.get("lease").unwrap().unwrap().bytes, b"one");
}

/// A backup asks the file system to write its copies out behind its
/// writes (`VFile::write_behind`, so the primary's fsyncs never wait
/// behind a flood of its dirty pages: issue 14, bench row 6). That is
/// advice: a file system that refuses every such call must leave the
/// backup exactly as it would be without it.
#[test]
fn a_backup_writes_behind_through_the_vfs_and_refused_advice_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("env");
    std::fs::create_dir(&home).unwrap();
    build(&home);
    let before = files(&home);
    let f = FaultyVfs::os();
    f.fail_from(Op::WriteBehind, 1);
    let vfs: SharedVfs = f.clone();
    let target = d.path().join("bk");
    hot_backup(&vfs, &home, &target, &BackupOptions::default(), &mut |_| {}).unwrap();
    let c = f.counts();
    assert!(c.write_behinds > 0, "no write-behind asked: {c:?}");
    assert_eq!(c.injected, c.write_behinds, "only the advice failed");
    assert_eq!(files(&target)["a.db"], before["a.db"]);
    let env = Env::open(&target, EnvOptions::default()).unwrap();
    let db = env.open_db("a.db").unwrap();
    for i in [0, 719] {
        assert_eq!(env.get(&db, &key(i)).unwrap(), Some(vec![7u8; 200]));
    }
    env.close().unwrap();
}

/// While a copy holds a lease, the owner publishes in the region how long
/// its synchronous commits waited for their log flush (and the floor of
/// that), which the copy paces itself by; with the commit count, so a
/// reader tells a new sample from an old one. Without a lease it leaves
/// the region alone.
#[test]
fn the_owner_publishes_its_commit_wait_in_the_region_while_leased() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path();
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", Some(512)).unwrap();
    t.commit().unwrap();
    let vfs = OsVfs::shared();
    let region = Region::at(&vfs, home);
    region
        .update(false, |s| {
            s.add_lease(std::process::id(), own_start(), 1, now() + 600, now())
        })
        .unwrap()
        .unwrap();
    for i in 0..20u32 {
        let mut t = env.begin().unwrap();
        t.put(&db, &key(i), b"v").unwrap();
        t.commit().unwrap();
    }
    // Published every 50 ms by the owner's request thread: wait for it,
    // with a bound far above that.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let st = loop {
        match region.read() {
            Some(st) if st.commit_wait.recent != 0 => break st,
            _ if std::time::Instant::now() > deadline => panic!("never published"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    assert_eq!(st.commits, 21);
    assert!(st.commit_wait.floor != 0 && st.commit_wait.floor <= st.commit_wait.recent);
    env.close().unwrap();
}
