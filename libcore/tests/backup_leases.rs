//! Two hot backups of one source at once, through libcore.
//!
//! Regression (issue 9, defect 5): the region had one lease slot. A second
//! backup overwrote the first one's lease with its own (or, from the same
//! process, took it over), and when it finished it cleared the slot: the
//! first backup, still copying, was left without protection, and a
//! `db_archive -d` in between removed log files it still had to copy, so
//! it failed with a log gap (or, worse, a backup started later could have
//! missed them). Every backup now holds a lease of its own; removing one
//! never removes another's, and `db_archive -d` honours the lowest one.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::testing::archive;
use libcore::testing::region::Region;
use libcore::Layout;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use testkit::{contents, Event, HookVfs, When};

type Hook = Box<dyn FnMut() + Send>;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Commits `n` transactions of about 300 bytes each into a.db.
fn commit(env: &Env, from: u32, n: u32) {
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
        t.put(&a, format!("k{i:06}").as_bytes(), &[i as u8; 300])
            .unwrap();
        t.commit().unwrap();
    }
}

#[test]
fn two_backups_at_once_keep_their_own_leases() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("src");
    let (first_bk, second_bk) = (d.path().join("bk1"), d.path().join("bk2"));
    std::fs::create_dir(&home).unwrap();
    let mut o = EnvOptions::create();
    o.lg_max = Some(16 * 1024);
    let env = Arc::new(Env::open(&home, o).unwrap());
    commit(&env, 0, 100);
    env.checkpoint().unwrap();
    let os = OsVfs::shared();
    let layout = Layout::resolve(&os, &home).unwrap();
    let first_needs = archive::log_state(&os, &layout)
        .unwrap()
        .ckp_redo
        .unwrap()
        .file;
    commit(&env, 100, 200);

    // While the first backup copies its first log file: the log moves on
    // and is checkpointed (so the files the first backup still has to copy
    // are no longer in use), a second backup runs from start to end, and
    // then `db_archive -d` removes what no lease protects.
    let seen = Arc::new(Mutex::new(None));
    let hook: Hook = {
        let (env, seen) = (env.clone(), seen.clone());
        let (home, second_bk, layout) = (home.clone(), second_bk.clone(), layout.clone());
        Box::new(move || {
            let os = OsVfs::shared();
            let during = Region::at(&libcore::OsVfs::shared(), &home)
                .read()
                .unwrap()
                .live_leases(now())
                .len();
            commit(&env, 300, 200);
            env.checkpoint().unwrap();
            hot_backup(
                &os,
                &home,
                &second_bk,
                &BackupOptions::default(),
                &mut |_| {},
            )
            .unwrap();
            let after = Region::at(&libcore::OsVfs::shared(), &home)
                .read()
                .unwrap()
                .live_leases(now());
            let removed = archive::remove_unused(&os, &layout).unwrap();
            *seen.lock().unwrap() = Some((during, after, removed));
        })
    };
    // The copy goes to the backup's staging directory first.
    let watch = first_bk
        .join(libcore::testing::backup_target::STAGING_DIR)
        .join(libcore::testing::log::log_name(first_needs));
    let once = Mutex::new(Some(hook));
    let hooked = HookVfs::os();
    hooked.set_hook(move |when, ev| {
        if let (When::After, Event::Rename { to, .. }) = (when, ev) {
            if *to == watch {
                let hook = once.lock().unwrap().take();
                if let Some(mut h) = hook {
                    h();
                }
            }
        }
        Ok(())
    });
    let vfs: SharedVfs = hooked;
    let mut said = Vec::new();
    let r = hot_backup(
        &vfs,
        &home,
        &first_bk,
        &BackupOptions::default(),
        &mut |s| said.push(s),
    );
    let (during, after, removed) = seen
        .lock()
        .unwrap()
        .take()
        .expect("the hook ran inside the first backup");
    r.unwrap_or_else(|e| panic!("the first backup lost its log files: {e}\n{said:#?}"));
    assert_eq!(during, 1, "the first backup holds a lease while it copies");
    assert_eq!(
        after.iter().map(|l| l.first_log).collect::<Vec<_>>(),
        vec![first_needs],
        "the second backup removed its own lease and only it"
    );
    assert!(
        removed
            .iter()
            .all(|p| libcore::testing::log::parse_log_name(
                &p.file_name().unwrap().to_string_lossy()
            )
            .unwrap()
                < first_needs),
        "db_archive -d kept every file from the lowest lease on: {removed:?}"
    );
    // The second backup ran at rest and equals the source; the first one
    // copied the log only as far as it had listed it, so it holds the
    // source at a commit point after its start: the first L keys.
    let want = contents(&env);
    assert_eq!(want["a.db"].len(), 500);
    let second = contents(&Env::open(&second_bk, EnvOptions::read_only()).unwrap());
    assert_eq!(second, want);
    let first = contents(&Env::open(&first_bk, EnvOptions::read_only()).unwrap());
    let n = first["a.db"].len();
    assert!(
        n >= 300,
        "the first backup holds {n} commits, 300 came before it"
    );
    let prefix: BTreeMap<_, _> = want["a.db"].clone().into_iter().take(n).collect();
    assert_eq!(first["a.db"], prefix, "one commit point of the source");
    let left = Region::at(&libcore::OsVfs::shared(), &home).read().unwrap();
    assert!(
        left.live_leases(now()).is_empty(),
        "both leases are gone once both backups are: {:?}",
        left.leases
    );
}

/// Regression: `db_archive -d` read the leases, then removed the unused
/// log files without holding the region's lock. A backup (or a
/// replication master) whose lease went in between had a file it had just
/// leased, and seen present, removed after all: tests/hot_failover.rs's
/// archive-during-backups test failed now and then with a log gap. The
/// removals now run under the region's lock, so a lease asked for while
/// they run is granted after them, and protects every file present when
/// it is granted.
#[test]
fn a_lease_granted_while_db_archive_d_runs_protects_what_it_names() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("src");
    std::fs::create_dir(&home).unwrap();
    let mut o = EnvOptions::create();
    o.lg_max = Some(16 * 1024);
    let env = Env::open(&home, o).unwrap();
    commit(&env, 0, 400);
    env.checkpoint().unwrap();
    commit(&env, 400, 10);
    env.checkpoint().unwrap();
    let os = OsVfs::shared();
    let layout = Layout::resolve(&os, &home).unwrap();
    let unused = archive::unused_logs(&os, &layout).unwrap();
    assert!(unused.len() >= 3, "{unused:?}");
    let (first, leased) = (unused[0], unused[1]);
    let log_path = |n: u32| layout.log_path(n);

    // When the first removal is about to happen, another process's lease
    // from `leased` on is asked for; the files it names that exist when
    // it is granted must all stay.
    let granted: Arc<Mutex<Option<Vec<u32>>>> = Arc::new(Mutex::new(None));
    let asker = Arc::new(Mutex::new(None));
    let hooked = HookVfs::os();
    {
        let (granted, asker, home) = (granted.clone(), asker.clone(), home.clone());
        let (watch, unused) = (log_path(first), unused.clone());
        let present = move |home: &std::path::Path| -> Vec<u32> {
            unused
                .iter()
                .copied()
                .filter(|n| *n >= leased)
                .filter(|n| home.join(libcore::testing::log::log_name(*n)).exists())
                .collect()
        };
        hooked.set_hook(move |when, ev| {
            if let (When::Before, Event::Remove(p)) = (when, ev) {
                if *p == watch.as_path() && asker.lock().unwrap().is_none() {
                    let (to_fill, home, present) = (granted.clone(), home.clone(), present.clone());
                    let t = std::thread::spawn(move || {
                        Region::at(&OsVfs::shared(), &home)
                            .update(false, |s| {
                                s.add_lease(std::process::id(), 0, leased, now() + 600, now())
                            })
                            .unwrap()
                            .expect("a free lease slot");
                        *to_fill.lock().unwrap() = Some(present(&home));
                    });
                    *asker.lock().unwrap() = Some(t);
                    // Give the lease every chance to go in before the removals.
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
                    while granted.lock().unwrap().is_none() && std::time::Instant::now() < until {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
            Ok(())
        });
    }
    let shared: SharedVfs = hooked.clone();
    archive::remove_unused(&shared, &layout).unwrap();
    let t = asker
        .lock()
        .unwrap()
        .take()
        .expect("the removal of the first file was seen");
    t.join().unwrap();
    let kept = granted.lock().unwrap().clone().unwrap();
    for n in kept {
        assert!(
            log_path(n).exists(),
            "log file {n} was present when the lease from {leased} was granted, and was removed after it"
        );
    }
    env.close().unwrap();
}
