//! Faults during a hot backup, an update and a catastrophic recovery of a
//! copy (the reliability issue): every write, fsync and directory fsync the
//! operation makes is failed in turn (and the disk "fills" at several
//! points). Each time the command fails with an error, the source is left
//! byte for byte as it was, the target is still the previous usable backup
//! (or, for a first backup, holds none), and running the command again on
//! a sound disk completes it: the backup then equals the source.
//!
//! The source's region (`__db.001`), where a backup takes and gives back
//! its lease, is left out of the faults here: giving the lease back is
//! best effort (a failed write leaves a lease that is void once the
//! backup's process is gone), so a fault there may leave the backup
//! successful. Faults of the region are tested in `vfs_seams.rs`.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::testing::backup_target::{self, Holds};
use libcore::testing::manifest::Manifest;
use libcore::testing::recovery::{self, RecoveryMode, RecoveryOptions};
use libcore::Layout;
use libcore::{scan, Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::collections::BTreeMap;
use std::path::Path;
use testkit::{FaultyVfs, Op};

type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;
/// One way to break the file system for a run.
type Plan = Box<dyn Fn(&FaultyVfs)>;

fn contents(home: &Path) -> Contents {
    let env = match Env::open(home, EnvOptions::read_only()) {
        Ok(e) => e,
        Err(e) => panic!(
            "{e}: {:?} {:?}",
            files(home).keys().collect::<Vec<_>>(),
            Manifest::read(&os(), home)
                .ok()
                .flatten()
                .map(|m| (m.start, m.end))
        ),
    };
    let mut out = Contents::new();
    for name in env.db_names() {
        let db = env.open_db(&name).unwrap();
        let mut m = BTreeMap::new();
        scan(&env, &db, |k, v| {
            m.insert(k.to_vec(), v.to_vec());
            Ok(())
        })
        .unwrap();
        out.insert(name, m);
    }
    out
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(n, _)| !n.starts_with("__db."))
        .collect()
}

/// A source environment: two databases, several log files, a checkpoint
/// in the middle; closed.
fn make_source(home: &Path, from: u32, to: u32) {
    let mut o = EnvOptions::create();
    o.lg_max = Some(16 * 1024);
    o.page_size = Some(1024);
    let env = Env::open(home, o).unwrap();
    let (a, b) = match (env.open_db("a.db"), env.open_db("b.db")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let mut t = env.begin().unwrap();
            let a = t.create_db("a.db", None).unwrap();
            let b = t.create_db("b.db", None).unwrap();
            t.commit().unwrap();
            (a, b)
        }
    };
    for i in from..to {
        let mut t = env.begin().unwrap();
        t.put(
            &a,
            format!("k{i:05}").as_bytes(),
            &vec![i as u8; 50 + (i % 7) as usize * 40],
        )
        .unwrap();
        t.put(&b, b"last", i.to_string().as_bytes()).unwrap();
        t.commit().unwrap();
        if i == (from + to) / 2 {
            env.checkpoint().unwrap();
        }
    }
    env.close().unwrap();
}

fn os() -> SharedVfs {
    OsVfs::shared()
}

/// The real file system, counting and failing operations on every file but
/// the region (see the module documentation).
fn faults() -> std::sync::Arc<FaultyVfs> {
    let v = FaultyVfs::os();
    v.set_filter(|p| p.file_name().is_none_or(|n| n != "__db.001"));
    v
}

/// Runs `op` once without faults to count its operations, then once per
/// fault: the Nth write, fsync and directory fsync failing, and the disk
/// filling after a few byte budgets. Returns how many faulty runs failed,
/// and how many must have (every injected fault of an operation that ran,
/// and every byte budget below what the operation writes).
fn each_fault(
    mut op: impl FnMut(&SharedVfs) -> libcore::Result<()>,
    mut after: impl FnMut(bool),
) -> (usize, usize) {
    let probe = faults();
    let shared: SharedVfs = probe.clone();
    op(&shared).unwrap();
    after(true);
    let counts = probe.counts();
    let mut failed = 0;
    let mut plans: Vec<Plan> = Vec::new();
    for kind in [Op::Write, Op::Sync, Op::SyncDir] {
        let n = counts.get(kind);
        // Every one of the first 40, then a sample: the pattern of a copy
        // repeats per file.
        let mut picks: Vec<u64> = (1..=n.min(40)).collect();
        picks.extend((41..=n).step_by(7));
        for k in picks {
            plans.push(Box::new(move |v: &FaultyVfs| v.fail_nth(kind, k)));
        }
    }
    let mut must_fail = plans.len();
    for budget in [0u64, 4096, 50_000, 200_000] {
        plans.push(Box::new(move |v: &FaultyVfs| v.enospc_after(budget)));
        if budget < counts.bytes_written {
            must_fail += 1;
        }
    }
    for plan in plans {
        let v = faults();
        plan(&v);
        let shared: SharedVfs = v.clone();
        let ok = op(&shared).is_ok();
        if !ok {
            failed += 1;
        }
        after(ok);
    }
    (failed, must_fail)
}

/// Equal contents, or a panic saying how they differ in a few words
/// (never the values).
fn assert_contents(got: &Contents, want: &Contents, ctx: &str) {
    let shape = |c: &Contents| -> Vec<(String, usize)> {
        c.iter().map(|(n, m)| (n.clone(), m.len())).collect()
    };
    assert!(
        got == want,
        "{ctx}: got {:?}, want {:?}",
        shape(got),
        shape(want)
    );
}

/// What a backup directory holds after a failed run, as `db_hotbackup`
/// sees it.
fn holds(bk: &Path) -> Holds {
    backup_target::survey(&os(), bk, &[]).unwrap().holds
}

/// A copy of the backup in `from` (files and manifest) at `to`.
fn copy_backup(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir(to).unwrap();
    for (n, b) in files(from) {
        std::fs::write(to.join(n), b).unwrap();
    }
    std::fs::write(
        Manifest::path(to),
        std::fs::read(Manifest::path(from)).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_first_full_backup_that_fails_leaves_no_backup_and_a_rerun_completes() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let bk = d.path().join("bk");
    std::fs::create_dir(&src).unwrap();
    make_source(&src, 0, 300);
    let want = contents(&src);
    let src_files = files(&src);
    let opts = BackupOptions::default();
    let failed = each_fault(
        |vfs| hot_backup(vfs, &src, &bk, &opts, &mut |_| {}).map(|_| ()),
        |ok| {
            assert_eq!(files(&src), src_files, "the source never changes");
            match holds(&bk) {
                // A fault after the new backup is in place (a directory
                // fsync of the last cleanup) fails the run over a whole
                // new backup.
                Holds::Backup(_) => assert_contents(&contents(&bk), &want, "a manifest"),
                Holds::Moving => assert!(!ok),
                Holds::Missing | Holds::Empty => assert!(!ok),
                Holds::Environment(s) => panic!("a failed backup left {s:?}"),
            }
            if !ok {
                hot_backup(&os(), &src, &bk, &opts, &mut |_| {}).unwrap();
            }
            assert_contents(&contents(&bk), &want, "after a rerun");
            std::fs::remove_dir_all(&bk).unwrap();
        },
    );
    assert!(
        failed.0 >= failed.1,
        "{} of {} injected faults made the backup fail",
        failed.0,
        failed.1
    );
}

/// A full backup over a complete one builds the new backup beside the old
/// one and swaps it in only when complete: a failure at any write, fsync or
/// directory fsync leaves the previous backup, whole and usable (or, inside
/// the final move, a move that the next run finishes).
#[test]
fn a_full_backup_that_fails_leaves_the_previous_backup_and_a_rerun_completes() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let base = d.path().join("base");
    let bk = d.path().join("bk");
    std::fs::create_dir(&src).unwrap();
    make_source(&src, 0, 200);
    hot_backup(&os(), &src, &base, &BackupOptions::default(), &mut |_| {}).unwrap();
    let old = contents(&base);
    make_source(&src, 200, 300);
    let want = contents(&src);
    let src_files = files(&src);
    let opts = BackupOptions::default();
    copy_backup(&base, &bk);
    let failed = each_fault(
        |vfs| hot_backup(vfs, &src, &bk, &opts, &mut |_| {}).map(|_| ()),
        |ok| {
            assert_eq!(files(&src), src_files, "the source never changes");
            if !ok {
                match holds(&bk) {
                    Holds::Backup(_) => {
                        let now = contents(&bk);
                        if now != want {
                            assert_contents(&now, &old, "the previous backup or the new one");
                        }
                    }
                    Holds::Moving => {
                        // Nothing opens a half-moved backup.
                        assert!(Env::open(&bk, EnvOptions::read_only()).is_err());
                    }
                    other => panic!("a failed backup left {other:?}"),
                }
                hot_backup(&os(), &src, &bk, &opts, &mut |_| {}).unwrap();
            }
            assert_contents(&contents(&bk), &want, "after a rerun");
            assert!(!backup_target::staging(&bk).exists(), "no leftovers");
            copy_backup(&base, &bk);
        },
    );
    assert!(
        failed.0 >= failed.1,
        "{} of {} injected faults made the backup fail",
        failed.0,
        failed.1
    );
}

#[test]
fn a_failed_update_leaves_a_usable_backup_and_a_rerun_completes() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let bk = d.path().join("bk");
    let base = d.path().join("base");
    std::fs::create_dir(&src).unwrap();
    make_source(&src, 0, 200);
    hot_backup(&os(), &src, &base, &BackupOptions::default(), &mut |_| {}).unwrap();
    let old = contents(&base);
    make_source(&src, 200, 400);
    let want = contents(&src);
    let src_files = files(&src);
    let opts = BackupOptions {
        update: true,
        ..Default::default()
    };
    let fresh_copy = |to: &Path| copy_backup(&base, to);
    fresh_copy(&bk);
    let failed = each_fault(
        |vfs| hot_backup(vfs, &src, &bk, &opts, &mut |_| {}).map(|_| ()),
        |ok| {
            assert_eq!(files(&src), src_files, "the source never changes");
            if !ok {
                // Still a backup: a committed state at least as new as the
                // previous one (the log it got so far may already replay).
                assert!(Manifest::read(&os(), &bk).unwrap().is_some());
                let now = contents(&bk);
                let n = now["a.db"].len();
                assert!(n >= old["a.db"].len() && n <= want["a.db"].len());
                for (k, v) in &now["a.db"] {
                    assert_eq!(want["a.db"].get(k), Some(v), "never a wrong value");
                }
                hot_backup(&os(), &src, &bk, &opts, &mut |_| {}).unwrap();
            }
            assert_eq!(contents(&bk), want);
            fresh_copy(&bk);
        },
    );
    assert!(
        failed.0 >= failed.1,
        "{} of {} injected faults made the update fail",
        failed.0,
        failed.1
    );
}

#[test]
fn a_failed_catastrophic_recovery_of_a_copy_can_be_run_again() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let copy = d.path().join("copy");
    std::fs::create_dir(&src).unwrap();
    make_source(&src, 0, 300);
    let want = contents(&src);
    let fresh_copy = || {
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir(&copy).unwrap();
        for (n, b) in files(&src) {
            // Databases as they were before the second half of the writes:
            // the oldest possible copy, all of it redone from the log.
            std::fs::write(
                copy.join(&n),
                if n.ends_with(".db") { Vec::new() } else { b },
            )
            .unwrap();
        }
    };
    fresh_copy();
    let layout = Layout::resolve(&os(), &copy).unwrap();
    let failed = each_fault(
        |vfs| {
            recovery::recover(
                vfs,
                &layout,
                RecoveryOptions {
                    mode: RecoveryMode::Catastrophic,
                    write: true,
                    ..Default::default()
                },
            )
            .map(|_| ())
        },
        |ok| {
            if !ok {
                recovery::recover(
                    &os(),
                    &layout,
                    RecoveryOptions {
                        mode: RecoveryMode::Catastrophic,
                        write: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            assert_eq!(contents(&copy), want);
            fresh_copy();
        },
    );
    assert!(
        failed.0 >= failed.1,
        "{} of {} injected faults made recovery fail",
        failed.0,
        failed.1
    );
}
