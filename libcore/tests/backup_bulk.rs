//! A bulk-mode transaction writes its new pages straight to the data file
//! and logs only a marker, so a full hot backup that copied a database
//! before such a commit and the log after it would have a meta page
//! pointing at pages it never copied. These tests commit a bulk load in
//! the source at exactly that moment (through a file-system hook that
//! fires when the copy of c.db is renamed into place) and check
//! that the backup notices, copies again, and ends up equal to the source;
//! and that a source that keeps bulk-loading makes the backup fail loudly
//! instead of writing a manifest.

use libcore::backup::{hot_backup, BackupOptions};
use libcore::testing::manifest::Manifest;
use libcore::{Env, EnvOptions};
use libcore::{OsVfs, SharedVfs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use testkit::{contents, Event, HookVfs, When};

type Hook = Box<dyn FnMut() + Send>;

/// The real file system, plus `hook` run each time a file has been renamed
/// to `watch`, at most `times` times.
fn on_rename_to(watch: PathBuf, times: u32, hook: Hook) -> SharedVfs {
    let vfs = HookVfs::os();
    let hook = Mutex::new((times, hook));
    vfs.set_hook(move |when, ev| {
        if let (When::After, Event::Rename { to, .. }) = (when, ev) {
            let mut h = hook.lock().unwrap();
            if *to == watch && h.0 > 0 {
                h.0 -= 1;
                (h.1)();
            }
        }
        Ok(())
    });
    vfs
}

/// An open source environment with a.db and a small c.db, checkpointed.
fn source(home: &Path) -> Arc<Env> {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", None).unwrap();
    let c = t.create_db("c.db", None).unwrap();
    for i in 0..200u32 {
        t.put(&a, format!("a{i:05}").as_bytes(), &[b'a'; 100])
            .unwrap();
    }
    t.put(&c, b"c-first", b"1").unwrap();
    t.commit().unwrap();
    env.checkpoint().unwrap();
    Arc::new(env)
}

/// A hook that commits one bulk load of 300 new 1000-byte records into
/// c.db each time it runs (new pages: they go to the file, not the log).
///
/// While the backup's lease is in the region the engine logs a bulk load
/// in full (commit.rs), and nothing of this can happen. A load that looked
/// for a lease just before the backup took its lease still writes a
/// marker: the hook takes the leases out of the region first, to commit
/// such a load at the worst moment.
fn bulk_loader(env: Arc<Env>) -> Hook {
    let mut round = 0u32;
    Box::new(move || {
        libcore::testing::region::Region::at(&libcore::OsVfs::shared(), env.home())
            .update(false, |s| s.leases.clear())
            .unwrap();
        let c = env.open_db("c.db").unwrap();
        let mut t = env.begin_bulk().unwrap();
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

fn backup(vfs: &SharedVfs, home: &Path, target: &Path) -> (libcore::Result<()>, Vec<String>) {
    let mut said = Vec::new();
    let r = hot_backup(vfs, home, target, &BackupOptions::default(), &mut |s| {
        said.push(s)
    });
    (r.map(|_| ()), said)
}

#[test]
fn a_bulk_commit_between_the_database_copy_and_the_log_copy_makes_the_backup_copy_again() {
    let d = tempfile::tempdir().unwrap();
    let (home, target) = (d.path().join("src"), d.path().join("bk"));
    std::fs::create_dir(&home).unwrap();
    let env = source(&home);
    let fired = Arc::new(Mutex::new(0u32));
    let (f, mut load) = (fired.clone(), bulk_loader(env.clone()));
    let vfs = on_rename_to(
        libcore::testing::backup_target::staging(&target).join("c.db"),
        1,
        Box::new(move || {
            load();
            *f.lock().unwrap() += 1;
        }),
    );
    let (r, said) = backup(&vfs, &home, &target);
    r.unwrap_or_else(|e| panic!("{e}\n{said:#?}"));
    assert_eq!(
        *fired.lock().unwrap(),
        1,
        "the bulk load ran inside the backup: {said:#?}"
    );
    assert!(
        said.iter().any(|s| s.contains("copying again")),
        "the backup noticed the bulk commit: {said:#?}"
    );
    let want = contents(&env);
    assert_eq!(want["c.db"].len(), 301);
    let copy = Env::open(&target, EnvOptions::read_only()).unwrap();
    assert_eq!(contents(&copy), want, "the backup equals the source");
}

#[test]
fn a_source_that_bulk_loads_during_every_copy_fails_the_backup_without_a_manifest() {
    let d = tempfile::tempdir().unwrap();
    let (home, target) = (d.path().join("src"), d.path().join("bk"));
    std::fs::create_dir(&home).unwrap();
    let env = source(&home);
    let vfs = on_rename_to(
        libcore::testing::backup_target::staging(&target).join("c.db"),
        u32::MAX,
        bulk_loader(env.clone()),
    );
    let (r, said) = backup(&vfs, &home, &target);
    let e = r.expect_err("no consistent copy was possible").to_string();
    assert!(e.contains("bulk-mode transactions"), "{e}");
    assert_eq!(
        said.iter().filter(|s| s.contains("copying again")).count(),
        2,
        "{said:#?}"
    );
    assert!(Manifest::read(&OsVfs::shared(), &target).unwrap().is_none());
}
