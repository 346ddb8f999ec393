//! `db_archive -d` under the power-loss model.
//!
//! Regression: `remove_unused` removed the unused log files oldest first
//! and made the removals durable with one directory fsync at the end. A
//! power loss in between may keep any subset of the unsynced unlinks (the
//! strong `CrashVfs` model), so log files N and N+2 could survive without
//! N+1. Normal recovery does not read below the checkpoint and never
//! noticed; catastrophic recovery (`db_recover -c`, what an operator runs
//! on a copy made by hand from this directory) refused the gap. Each
//! removal is now durable before the next, so what survives is always a
//! run of consecutive files.

use libcore::recover::{recover_env, RecoverEnvOptions};
use libcore::testing::archive;
use libcore::testing::log::list_log_files;
use libcore::Layout;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::path::Path;
use testkit::CrashVfs;

/// An environment with many small log files, all but the last few unused.
fn build(home: &Path) {
    let opts = EnvOptions {
        lg_max: Some(8 * 1024),
        ..EnvOptions::create()
    };
    let env = Env::open(home, opts).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", Some(512)).unwrap();
    t.commit().unwrap();
    for round in 0..12u32 {
        let mut t = env.begin().unwrap();
        for i in 0..20u32 {
            t.put(&db, &(round * 100 + i).to_be_bytes(), &[7u8; 200])
                .unwrap();
        }
        t.commit().unwrap();
    }
    env.checkpoint().unwrap();
    env.close().unwrap();
}

fn contiguous(files: &[u32]) -> bool {
    files.windows(2).all(|w| w[1] == w[0] + 1)
}

#[test]
fn a_power_loss_while_archive_removes_logs_leaves_no_gap() {
    let vfs: SharedVfs = OsVfs::shared();
    let tmpl = tempfile::tempdir().unwrap();
    build(tmpl.path());
    let layout = Layout::resolve(&vfs, tmpl.path()).unwrap();
    let unused = archive::unused_logs(&vfs, &layout).unwrap();
    assert!(
        unused.len() >= 4,
        "the workload must leave several unused logs"
    );
    // Every cut inside the removal: each unlink and each directory sync.
    let mut cuts = 0;
    for cut in 0..(2 * unused.len() as u64 + 2) {
        for seed in 0..4u64 {
            let dir = tempfile::tempdir().unwrap();
            let home = dir.path();
            for e in std::fs::read_dir(tmpl.path()).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), home.join(e.file_name())).unwrap();
            }
            let crash = CrashVfs::new(home);
            let cvfs: SharedVfs = crash.clone();
            // Resolved before the cut (it reads DB_CONFIG through the
            // model, which fails everything once the machine stops).
            let layout = Layout::resolve(&cvfs, home).unwrap();
            crash.crash_after(cut);
            let _ = archive::remove_unused(&cvfs, &layout);
            crash.power_loss(seed * 7919 + cut).unwrap();
            cuts += 1;
            let files = list_log_files(&OsVfs::shared(), home).unwrap();
            assert!(
                contiguous(&files),
                "cut {cut} seed {seed}: log files {files:?} have a gap"
            );
            let opts = RecoverEnvOptions {
                catastrophic: true,
                ..Default::default()
            };
            recover_env(home, opts)
                .unwrap_or_else(|e| panic!("cut {cut} seed {seed}: db_recover -c: {e}"));
        }
    }
    assert!(cuts > 8);
}
