//! Redo over a real log, counted through `FaultyVfs`: what the page
//! table promises (`pages.rs`) holds for a whole recovery, and the result
//! is the committed state.

use super::*;
use crate::env::{Env, EnvOptions};
use crate::faultfs::FaultyVfs;

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
    let vfs = FaultyVfs::os();
    vfs.set_filter(|p| p.extension().is_some_and(|e| e == "db"));
    let shared: SharedVfs = vfs.clone();
    let layout = Layout::resolve(&shared, home).unwrap();
    let out = recover(
        &shared,
        &layout,
        RecoveryOptions {
            mode: RecoveryMode::Catastrophic,
            write: true,
            ..Default::default()
        },
    )
    .unwrap();
    (out, vfs)
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
    for n in ["a.db", "b.db"] {
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(n))
            .and_then(|f| f.set_len(0))
            .unwrap();
    }
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
