//! Snapshots and range iterators against a `BTreeMap` model.
//!
//! A snapshot must see exactly the state of the commit it was taken at for
//! its whole life: never a later commit, never half of one, however many
//! commits, checkpoints (write-back), evictions and database removals
//! follow. The model test runs random puts, deletes, commits and aborts
//! over two databases, takes snapshots at random points (keeping a copy
//! of the model with each), drops them at random, and checks live ones at
//! random later points: full iteration forwards and backwards, `get`s and
//! random ranges (all bound kinds, empty, reversed, prefix-like) walked
//! from the front, the back and both ends at once, against
//! `BTreeMap` on the copy. A deterministic PRNG makes failures
//! reproducible (seed and step are in the assertion message).
//!
//! The other tests: a transfer workload (a writer thread moves amounts
//! between accounts while readers sum them in snapshots: the sum never
//! changes), a snapshot alive while the same thread writes (no
//! deadlock, no `Misuse`), databases created and removed after a
//! snapshot, the failed state, and the count of kept page images.

use libcore::{Db, Env, EnvOptions, Error, OsVfs, SharedVfs, Snapshot};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use testkit::Rng;
use testkit::{Event, FaultyVfs, HookVfs, Op, When};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Pair = (Vec<u8>, Vec<u8>);

const DBS: [&str; 2] = ["a.db", "b db"];

fn open(home: &Path, page_size: usize) -> Env {
    let mut o = EnvOptions::create();
    o.page_size = Some(page_size);
    o.lg_max = Some(256 * 1024);
    o.cache_size = Some(64 * 1024); // small: forces eviction and write-back
    o.nosync = Some(true);
    Env::open(home, o).unwrap()
}

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("k{:04}", rng.below(600)).into_bytes()
}

fn value(rng: &mut Rng, page_size: usize) -> Vec<u8> {
    let len = match rng.below(12) {
        0 => 0,
        1 => page_size * 2 + rng.below(page_size as u64) as usize, // overflow
        _ => rng.below(60) as usize,
    };
    let b = rng.below(256) as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

/// A random bound over the key space: a key the model may hold, a prefix
/// of one (so ranges look like prefix scans), or none.
fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    let mut k = key(rng);
    if rng.below(3) == 0 {
        k.truncate(1 + rng.below(4) as usize);
    }
    match rng.below(3) {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    }
}

/// What a range holds in the model (by filtering: `BTreeMap::range`
/// panics on the reversed and empty-excluded ranges we also ask for).
fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<Pair> {
    let in_lo = |k: &Vec<u8>| match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let in_hi = |k: &Vec<u8>| match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    };
    m.iter()
        .filter(|(k, _)| in_lo(k) && in_hi(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// One random range, walked by a random mix of `next` and `next_back`,
/// against the model walked the same way.
fn check_range(snap: &Snapshot, db: &Db, m: &Model, rng: &mut Rng, ctx: &str) {
    let (lo, hi) = (bound(rng), bound(rng));
    let want = model_range(m, &lo, &hi);
    let mut it = snap
        .range::<[u8], _>(db, (as_slices(&lo), as_slices(&hi)))
        .unwrap();
    let mode = rng.below(3); // forwards, backwards, both ends
    let (mut front, mut back) = (0usize, want.len());
    let mut got_front = Vec::new();
    let mut got_back = Vec::new();
    loop {
        let from_back = mode == 1 || (mode == 2 && rng.below(2) == 0);
        let got = if from_back { it.next_back() } else { it.next() };
        let Some(p) = got else { break };
        let p = p.unwrap();
        if from_back {
            got_back.push(p);
            back -= 1;
        } else {
            got_front.push(p);
            front += 1;
        }
        assert!(front <= back, "{ctx}: the two ends crossed");
    }
    assert!(
        it.next().is_none() && it.next_back().is_none(),
        "{ctx}: fused"
    );
    got_back.reverse();
    got_front.extend(got_back);
    assert!(
        got_front == want,
        "{ctx}: range {lo:?}..{hi:?} mode {mode}: {} pairs, model {}",
        got_front.len(),
        want.len()
    );
}

/// The whole state of one snapshot against its model copy.
fn check_snapshot(snap: &Snapshot, models: &[Model; 2], rng: &mut Rng, ctx: &str) {
    for (name, m) in DBS.iter().zip(models) {
        let db = snap.open_db(name).unwrap();
        let fwd: Vec<Pair> = snap.iter(&db).unwrap().map(|p| p.unwrap()).collect();
        let want: Vec<Pair> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(
            fwd == want,
            "{ctx} {name}: iter has {} pairs, model {}",
            fwd.len(),
            want.len()
        );
        let mut back: Vec<Pair> = snap.iter(&db).unwrap().rev().map(|p| p.unwrap()).collect();
        back.reverse();
        assert!(back == want, "{ctx} {name}: iter backwards");
        for _ in 0..4 {
            let k = key(rng);
            assert_eq!(
                snap.get(&db, &k).unwrap().as_ref(),
                m.get(&k),
                "{ctx} {name}: get"
            );
            check_range(snap, &db, m, rng, &format!("{ctx} {name}"));
        }
    }
}

fn run(seed: u64, page_size: usize, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), page_size);
    let mut rng = Rng::new(seed);
    let mut dbs = Vec::new();
    {
        let mut t = env.begin().unwrap();
        for name in DBS {
            dbs.push(t.create_db(name, None).unwrap());
        }
        t.commit().unwrap();
    }
    let mut models: [Model; 2] = Default::default();
    let mut snaps: Vec<(Snapshot, [Model; 2], usize)> = Vec::new();
    let mut checked = 0;
    for step in 0..steps {
        let ctx = format!("seed {seed} page size {page_size} step {step}");
        match rng.below(16) {
            0 => {
                env.checkpoint().unwrap();
            }
            1..=3 if snaps.len() < 6 => {
                snaps.push((env.snapshot().unwrap(), models.clone(), step));
            }
            4 if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                drop(snaps.swap_remove(i));
            }
            5..=6 if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                let (s, m, at) = &snaps[i];
                check_snapshot(s, m, &mut rng, &format!("{ctx} (snapshot of step {at})"));
                checked += 1;
            }
            _ => {
                let mut staged = models.clone();
                let mut t = env.begin().unwrap();
                for _ in 0..1 + rng.below(40) {
                    let d = rng.below(2) as usize;
                    let k = key(&mut rng);
                    if rng.below(3) == 0 {
                        t.delete(&dbs[d], &k).unwrap();
                        staged[d].remove(&k);
                    } else {
                        let v = value(&mut rng, page_size);
                        t.put(&dbs[d], &k, &v).unwrap();
                        staged[d].insert(k, v);
                    }
                }
                if rng.below(5) == 0 {
                    t.abort();
                } else {
                    t.commit().unwrap();
                    models = staged;
                }
            }
        }
    }
    for (s, m, at) in &snaps {
        check_snapshot(
            s,
            m,
            &mut rng,
            &format!("seed {seed} end (snapshot of step {at})"),
        );
    }
    let now = env.snapshot().unwrap();
    check_snapshot(
        &now,
        &models,
        &mut rng,
        &format!("seed {seed} end, a new snapshot"),
    );
    assert!(
        checked > steps / 20,
        "seed {seed}: too few checks ({checked})"
    );
    drop(now);
    drop(snaps);
    assert_eq!(
        env.snapshot_stats(),
        Default::default(),
        "no snapshot alive: nothing kept"
    );
    env.close().unwrap();
}

#[test]
fn snapshots_equal_the_model_at_their_commit_page_size_512() {
    for seed in 1..=3 {
        run(seed, 512, 400);
    }
}

#[test]
fn snapshots_equal_the_model_at_their_commit_page_size_4096() {
    for seed in 11..=13 {
        run(seed, 4096, 400);
    }
}

/// Ranges on a fixed small database: every bound kind, empty and
/// reversed ranges, prefixes, and both ends meeting, against
/// `BTreeMap::range` where it is defined.
#[test]
fn ranges_match_btreemap_range_on_every_bound_kind() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), 512);
    let mut t = env.begin().unwrap();
    let db = t.create_db("r.db", None).unwrap();
    let mut m = Model::new();
    for i in 0..300u32 {
        let k = format!("p{}/{:03}", i % 3, i).into_bytes();
        t.put(&db, &k, &i.to_be_bytes()).unwrap();
        m.insert(k, i.to_be_bytes().to_vec());
    }
    t.commit().unwrap();
    let snap = env.snapshot().unwrap();
    let keys = |r: libcore::Range| -> Vec<Vec<u8>> { r.map(|p| p.unwrap().0).collect() };
    let mk = |r: std::collections::btree_map::Range<Vec<u8>, Vec<u8>>| -> Vec<Vec<u8>> {
        r.map(|(k, _)| k.clone()).collect()
    };
    let (a, b) = (b"p1/100".to_vec(), b"p2/200".to_vec());
    assert_eq!(
        keys(snap.range(&db, a.clone()..b.clone()).unwrap()),
        mk(m.range(a.clone()..b.clone()))
    );
    assert_eq!(
        keys(snap.range(&db, a.clone()..=b.clone()).unwrap()),
        mk(m.range(a.clone()..=b.clone()))
    );
    assert_eq!(
        keys(snap.range(&db, a.clone()..).unwrap()),
        mk(m.range(a.clone()..))
    );
    assert_eq!(
        keys(snap.range(&db, ..b.clone()).unwrap()),
        mk(m.range(..b.clone()))
    );
    assert_eq!(
        keys(snap.range(&db, ..=b.clone()).unwrap()),
        mk(m.range(..=b.clone()))
    );
    let ex = (Bound::Excluded(a.clone()), Bound::Excluded(b.clone()));
    assert_eq!(
        keys(snap.range(&db, ex.clone()).unwrap()),
        mk(m.range(ex.clone()))
    );
    let rev: Vec<Vec<u8>> = snap
        .range(&db, ex.clone())
        .unwrap()
        .rev()
        .map(|p| p.unwrap().0)
        .collect();
    let want: Vec<Vec<u8>> = m.range(ex).rev().map(|(k, _)| k.clone()).collect();
    assert_eq!(rev, want);
    // A prefix scan: every key starting "p1/".
    let p1 = keys(snap.range(&db, "p1/".."p10").unwrap());
    assert_eq!(p1.len(), 100);
    assert!(p1.iter().all(|k| k.starts_with(b"p1/")));
    // Empty and reversed ranges give nothing (BTreeMap would panic).
    assert!(keys(snap.range(&db, b.clone()..a.clone()).unwrap()).is_empty());
    assert!(keys(snap.range(&db, a.clone()..a.clone()).unwrap()).is_empty());
    let same = (Bound::Excluded(a.clone()), Bound::Excluded(a.clone()));
    assert!(keys(snap.range(&db, same).unwrap()).is_empty());
    assert_eq!(
        keys(snap.range(&db, a.clone()..=a.clone()).unwrap()),
        vec![a.clone()]
    );
    assert!(keys(snap.range(&db, "q"..).unwrap()).is_empty());
    // Both ends meet without overlap.
    let mut it = snap.range(&db, "p2/".."p3").unwrap();
    let (mut n, mut last_front, mut last_back) = (0, Vec::new(), b"\xff".to_vec());
    loop {
        match (it.next(), it.next_back()) {
            (Some(f), Some(b)) => {
                let (f, b) = (f.unwrap().0, b.unwrap().0);
                assert!(last_front < f && f < b && b < last_back);
                (last_front, last_back) = (f, b);
                n += 2;
            }
            (Some(f), None) => {
                assert!(f.unwrap().0 > last_front);
                n += 1;
                break;
            }
            (None, _) => break,
        }
    }
    assert_eq!(n, 100);
    drop(snap);
    env.close().unwrap();
}

/// A transfer workload: a writer moves random amounts between accounts
/// (each commit keeps the total), readers sum every account in a
/// snapshot, twice (by `get` and by iteration) with commits going on
/// between: a snapshot that saw half a commit, or a later one partway
/// through, would see another total.
#[test]
fn readers_in_snapshots_always_see_the_total_a_writer_keeps() {
    const ACCOUNTS: u64 = 200;
    const TOTAL: u64 = ACCOUNTS * 1000;
    let dir = tempfile::tempdir().unwrap();
    let mut o = EnvOptions::create();
    o.cache_size = Some(64 * 1024);
    o.page_size = Some(512);
    let env = Env::open(dir.path(), o).unwrap();
    let acct = |i: u64| format!("acct{i:04}").into_bytes();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("bank.db", None).unwrap();
        for i in 0..ACCOUNTS {
            t.put(&db, &acct(i), &1000u64.to_be_bytes()).unwrap();
        }
        t.commit().unwrap();
        db
    };
    let balance = |v: Vec<u8>| u64::from_be_bytes(v.try_into().unwrap());
    let stop = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) || n < 5 {
                        let snap = env.snapshot().unwrap();
                        let mut by_iter = 0;
                        for p in snap.iter(&db).unwrap() {
                            by_iter += balance(p.unwrap().1);
                        }
                        let by_get: u64 = (0..ACCOUNTS)
                            .map(|i| balance(snap.get(&db, &acct(i)).unwrap().unwrap()))
                            .sum();
                        assert_eq!(by_iter, TOTAL, "a snapshot's accounts by iteration");
                        assert_eq!(by_get, TOTAL, "a snapshot's accounts by get");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut rng = Rng::new(7);
        for _ in 0..400 {
            let (a, b) = (rng.below(ACCOUNTS), rng.below(ACCOUNTS));
            let mut t = env.begin().unwrap();
            let va = balance(t.get(&db, &acct(a)).unwrap().unwrap());
            let amount = rng.below(va + 1);
            t.put(&db, &acct(a), &(va - amount).to_be_bytes()).unwrap();
            let vb = balance(t.get(&db, &acct(b)).unwrap().unwrap());
            t.put(&db, &acct(b), &(vb + amount).to_be_bytes()).unwrap();
            t.commit().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().unwrap()).sum::<u64>()
    });
    assert!(reads >= 15, "{reads} snapshot reads");
    assert_eq!(env.snapshot_stats(), Default::default());
    env.close().unwrap();
}

/// A snapshot holds no lock: the thread that holds one may begin a
/// write transaction, commit, checkpoint and take more snapshots (none of
/// them waits for the snapshot or fails as a self-wait), and the snapshot
/// still sees its own commit.
#[test]
fn a_thread_holding_a_snapshot_can_write_commit_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::open(dir.path(), EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"1").unwrap();
    t.commit().unwrap();
    let snap = env.snapshot().unwrap();
    for (v, before) in [(b"2", b"1"), (b"3", b"2")] {
        let mut t = env.begin().unwrap();
        t.put(&db, b"k", v).unwrap();
        let inside = env.snapshot().unwrap(); // while the Txn is open
        assert_eq!(inside.get(&db, b"k").unwrap().unwrap(), before);
        t.commit().unwrap();
        env.checkpoint().unwrap();
    }
    assert_eq!(snap.get(&db, b"k").unwrap().unwrap(), b"1");
    assert_eq!(env.get(&db, b"k").unwrap().unwrap(), b"3");
    drop(snap);
    env.close().unwrap();
}

/// A database removed after a snapshot stays readable in it, with the
/// pages the removal dropped from the cache unwritten (no checkpoint
/// since they changed); one created after it is not in it.
#[test]
fn a_database_removed_after_the_snapshot_stays_readable_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), 512);
    let mut t = env.begin().unwrap();
    let db = t.create_db("gone.db", None).unwrap();
    t.commit().unwrap();
    env.checkpoint().unwrap();
    let mut t = env.begin().unwrap();
    let mut m = Model::new();
    for i in 0..200u32 {
        let (k, v) = (format!("{i:05}").into_bytes(), vec![i as u8; 30]);
        t.put(&db, &k, &v).unwrap();
        m.insert(k, v);
    }
    t.commit().unwrap();
    let (_, _, _, dirty) = env.cache_stats();
    assert!(dirty > 0, "the pages must still be dirty for this test");
    let snap = env.snapshot().unwrap();
    let mut t = env.begin().unwrap();
    t.remove_db(&db).unwrap();
    let newer = t.create_db("new.db", None).unwrap();
    t.commit().unwrap();
    assert!(!dir.path().join("gone.db").exists(), "unlinked at commit");
    let got: Model = snap.iter(&db).unwrap().map(|p| p.unwrap()).collect();
    assert!(got == m, "{} pairs, model {}", got.len(), m.len());
    assert_eq!(snap.db_names(), ["gone.db"]);
    assert!(matches!(snap.get(&newer, b"k"), Err(Error::NotFound(_))));
    assert!(matches!(snap.open_db("new.db"), Err(Error::NotFound(_))));
    let now = env.snapshot().unwrap();
    assert!(matches!(now.get(&db, b"00001"), Err(Error::NotFound(_))));
    drop((snap, now));
    env.close().unwrap();
}

/// Once the environment fails (here an EIO on a commit's log fsync),
/// every read of a snapshot taken before fails with `Error::Failed`, as
/// every other operation does.
#[test]
fn a_snapshot_fails_with_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyVfs::new(OsVfs::shared()));
    let vfs: SharedVfs = faulty.clone();
    let env = Env::open(
        dir.path(),
        EnvOptions {
            vfs: Some(vfs),
            ..EnvOptions::create()
        },
    )
    .unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.put(&db, b"k", b"v").unwrap();
    t.commit().unwrap();
    let snap = env.snapshot().unwrap();
    faulty.fail_nth(Op::Sync, faulty.counts().syncs + 1);
    let mut t = env.begin().unwrap();
    t.put(&db, b"k", b"w").unwrap();
    assert!(t.commit().is_err());
    assert!(matches!(snap.get(&db, b"k"), Err(Error::Failed { .. })));
    let first = snap.iter(&db).unwrap().next();
    assert!(
        matches!(first, Some(Err(Error::Failed { .. }))),
        "{first:?}"
    );
    assert!(matches!(env.snapshot(), Err(Error::Failed { .. })));
}

/// Page images are kept only while a snapshot that needs them lives: a
/// long snapshot keeps one per page commits replace (not one per commit),
/// and all go when it ends.
#[test]
fn pre_images_are_kept_for_live_snapshots_only() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), 4096);
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    let commit = |v: &[u8]| {
        let mut t = env.begin().unwrap();
        t.put(&db, b"k", v).unwrap();
        t.commit().unwrap();
    };
    commit(b"0");
    assert_eq!(
        env.snapshot_stats().pre_images,
        0,
        "no snapshot: nothing kept"
    );
    let snap = env.snapshot().unwrap();
    for i in 1..50u32 {
        commit(&i.to_be_bytes());
    }
    let st = env.snapshot_stats();
    assert_eq!(st.live, 1);
    // One leaf-root page and the meta page, each kept once.
    assert!((1..=2).contains(&st.pre_images), "{st:?}");
    assert_eq!(snap.get(&db, b"k").unwrap().unwrap(), b"0");
    drop(snap);
    assert_eq!(env.snapshot_stats(), Default::default());
    env.close().unwrap();
}

/// Regression: a snapshot reads pages without the commit lock, and a page
/// it missed in the cache went into the cache after its file read. When a
/// commit replaced that page, a checkpoint wrote it back and an eviction
/// dropped it during the read, the older image went into the cache as
/// the committed one: every later reader and writer saw the commit
/// undone. The snapshot's read is held right after its file read while
/// all three happen.
#[test]
fn a_snapshot_read_racing_a_commit_never_caches_the_older_image() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HookVfs::os();
    let vfs: SharedVfs = hook.clone();
    let mut o = EnvOptions::create();
    o.vfs = Some(vfs);
    o.nosync = Some(true);
    o.page_size = Some(4096);
    o.cache_size = Some(64 * 1024);
    {
        let env = Env::open(dir.path(), o.clone()).unwrap();
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", None).unwrap();
        let b = t.create_db("b.db", None).unwrap();
        t.put(&a, b"k", b"old").unwrap();
        for i in 0..300u32 {
            t.put(&b, &i.to_be_bytes(), &[7u8; 1000]).unwrap();
        }
        t.commit().unwrap();
        env.close().unwrap();
    }
    let env = Env::open(dir.path(), o).unwrap(); // an empty cache
    let (a, b) = (env.open_db("a.db").unwrap(), env.open_db("b.db").unwrap());
    let snap = env.snapshot().unwrap();
    let reader: Arc<std::sync::Mutex<Option<std::thread::ThreadId>>> = Default::default();
    let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let fired = AtomicBool::new(false);
    let who = reader.clone();
    hook.set_hook(move |when, ev| {
        if let (When::After, Event::Read { path, offset }) = (when, ev) {
            let mine = *who.lock().unwrap() == Some(std::thread::current().id());
            if mine && *offset > 0 && path.ends_with("a.db") && !fired.swap(true, Ordering::SeqCst)
            {
                read_tx.send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
            }
        }
        Ok(())
    });
    hook.hook_reads(true);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            *reader.lock().unwrap() = Some(std::thread::current().id());
            snap.get(&a, b"k").unwrap()
        });
        read_rx.recv().unwrap();
        let mut t = env.begin().unwrap();
        t.put(&a, b"k", b"new").unwrap();
        t.commit().unwrap();
        env.checkpoint().unwrap();
        for _ in 0..2 {
            libcore::scan(&env, &b, |_, _| Ok(())).unwrap(); // evicts
        }
        go_tx.send(()).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), b"old", "the snapshot's view");
    });
    hook.hook_reads(false);
    assert_eq!(
        env.get(&a, b"k").unwrap().unwrap(),
        b"new",
        "the committed value after the snapshot's read"
    );
    drop(snap);
    env.close().unwrap();
}
