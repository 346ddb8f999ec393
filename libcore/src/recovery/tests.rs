//! Redo over a real log, counted through `FaultyVfs`: what the page
//! table promises (`pages.rs`) holds for a whole recovery, and the result
//! is the committed state.

use super::*;
use crate::env::{Env, EnvOptions};
use crate::faultfs::{FaultyVfs, Op};

/// An environment of `n` transactions, each putting one key into a.db and
/// overwriting `last` in b.db (the writer's shape), closed cleanly.
fn build(home: &std::path::Path, n: u32) {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let a = t.create_db("a.db", None).unwrap();
    let b = t.create_db("b.db", None).unwrap();
    t.commit().unwrap();
    for j in 0..n {
        let mut t = env.begin().unwrap();
        t.put(&a, format!("k{j:05}").as_bytes(), &[j as u8; 300])
            .unwrap();
        t.put(&b, b"last", j.to_string().as_bytes()).unwrap();
        t.commit().unwrap();
    }
    env.close().unwrap();
}

/// Reads of each file's meta page outside redo: the data directory scan,
/// binding the file, and the cut after the last page (two files).
const META_READS: u64 = 3 * 2;

fn data_pages(home: &std::path::Path) -> u64 {
    ["a.db", "b.db"]
        .iter()
        .map(|n| std::fs::metadata(home.join(n)).unwrap().len() / 4096)
        .sum()
}

fn recover_counted(home: &std::path::Path) -> (RecoveryOutcome, std::sync::Arc<FaultyVfs>) {
    let vfs = data_file_counter();
    let out = recover_on(&vfs, home, false).unwrap();
    (out, vfs)
}

/// A `FaultyVfs` that counts (and fails) operations on data files only.
fn data_file_counter() -> std::sync::Arc<FaultyVfs> {
    let vfs = FaultyVfs::os();
    vfs.set_filter(|p| p.extension().is_some_and(|e| e == "db"));
    vfs
}

fn recover_on(
    vfs: &std::sync::Arc<FaultyVfs>,
    home: &std::path::Path,
    sync_behind: bool,
) -> Result<RecoveryOutcome> {
    let shared: SharedVfs = vfs.clone();
    let layout = Layout::resolve(&shared, home).unwrap();
    recover(
        &shared,
        &layout,
        RecoveryOptions {
            mode: RecoveryMode::Catastrophic,
            write: true,
            sync_behind,
            ..Default::default()
        },
    )
}

fn empty_data_files(home: &std::path::Path) {
    for n in ["a.db", "b.db"] {
        std::fs::File::options()
            .write(true)
            .open(home.join(n))
            .and_then(|f| f.set_len(0))
            .unwrap();
    }
}

#[test]
fn catastrophic_redo_over_current_pages_reads_each_page_at_most_once_and_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400);
    let (out, vfs) = recover_counted(dir.path());
    let c = vfs.counts();
    let pages = data_pages(dir.path());
    assert!(
        out.records > 3 * pages,
        "{} records, {pages} pages",
        out.records
    );
    assert!(
        c.reads <= pages + META_READS,
        "{} reads of {pages} pages",
        c.reads
    );
    assert_eq!(out.pages_applied, 0);
    assert_eq!(c.writes, 0);
}

#[test]
fn catastrophic_redo_onto_empty_files_reads_nothing_past_their_end_and_writes_in_runs() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 400);
    let pages = data_pages(dir.path());
    // The data files as they were before any page was written: empty.
    empty_data_files(dir.path());
    let (out, vfs) = recover_counted(dir.path());
    let c = vfs.counts();
    assert_eq!(c.reads, META_READS, "no page read but the meta pages");
    assert!(out.pages_applied > pages);
    assert!(c.writes < pages, "{} writes of {pages} pages", c.writes);
    let env = Env::open(dir.path(), EnvOptions::default()).unwrap();
    let a = env.open_db("a.db").unwrap();
    let b = env.open_db("b.db").unwrap();
    assert_eq!(env.get(&b, b"last").unwrap(), Some(b"399".to_vec()));
    for j in [0u32, 123, 399] {
        assert_eq!(
            env.get(&a, format!("k{j:05}").as_bytes()).unwrap(),
            Some(vec![j as u8; 300])
        );
    }
}

/// More replayed pages than `BUFFER_LIMIT`: redo writes back during the
/// log, and with `sync_behind` fsyncs on its helper thread meanwhile.
#[test]
fn sync_behind_fsyncs_while_redo_runs_and_a_failed_background_sync_fails_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    {
        let mut o = EnvOptions::create();
        o.nosync = Some(true);
        let env = Env::open(home, o).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        t.create_db("b.db", None).unwrap();
        t.commit().unwrap();
        let big = BUFFER_LIMIT / 6000 + 600;
        for j in 0..big {
            let mut t = env.begin().unwrap();
            t.put(&a, format!("k{j:06}").as_bytes(), &[j as u8; 6000])
                .unwrap();
            t.commit().unwrap();
        }
        env.close().unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(home).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    empty_data_files(home);
    empty_data_files(copy.path());

    let vfs = data_file_counter();
    let out = recover_on(&vfs, home, true).unwrap();
    assert!(out.pages_applied as usize * 4096 > BUFFER_LIMIT);
    // The final sync of each file, and at least one sync behind redo.
    assert!(vfs.counts().get(Op::Sync) > 2, "{:?}", vfs.counts());
    let env = Env::open(home, EnvOptions::default()).unwrap();
    let a = env.open_db("a.db").unwrap();
    assert_eq!(env.get(&a, b"k000007").unwrap(), Some(vec![7u8; 6000]));

    // The first data file sync is the one behind redo.
    let vfs = data_file_counter();
    vfs.fail_nth(Op::Sync, 1);
    let e = recover_on(&vfs, copy.path(), true).unwrap_err();
    assert!(crate::faultfs::is_errno(&e, crate::faultfs::EIO), "{e}");
}
