//! Model-based test of the engine: random sequences of put, delete, commit,
//! abort, checkpoint, close and reopen, checked against a `BTreeMap` of
//! what was committed. After every step `get` (present and absent keys),
//! `seek` with the pairs next to it, and the first and last pairs are
//! compared with the model; inside every transaction, after each change,
//! its own `get`, `next_after` and `first` are compared with the staged
//! model and a reader outside it with the committed one. Every 25th step
//! and at the end a full scan forwards and a cursor backwards must equal
//! the model. Several page sizes; values from empty to overflow size. A
//! deterministic PRNG makes failures reproducible (the seed and the step
//! are in the assertion message).

use libcore::{scan, Env, EnvOptions};
use std::collections::BTreeMap;
use std::path::Path;
use testkit::Rng;

fn value(rng: &mut Rng, page_size: usize) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1 => page_size * 2 + rng.below(page_size as u64) as usize, // overflow
        2 => rng.below(page_size as u64 / 2) as usize,
        _ => rng.below(40) as usize,
    };
    let b = rng.below(256) as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

fn open(home: &Path, page_size: usize) -> Env {
    let mut o = EnvOptions::create();
    o.page_size = Some(page_size);
    o.lg_max = Some(256 * 1024);
    o.cache_size = Some(256 * 1024); // small: forces eviction and write-back
    o.nosync = Some(true);
    Env::open(home, o).unwrap()
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Pair = (Vec<u8>, Vec<u8>);

/// The whole comparison: a scan forwards and a cursor backwards must give
/// exactly the model (every 25th step and at the end: it reads every page).
fn check(env: &Env, model: &Model, seed: u64, step: usize) {
    let db = env.open_db("m.db").unwrap();
    let mut got = Vec::new();
    scan(env, &db, |k, v| {
        got.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(
        got == want,
        "seed {seed} step {step}: scan has {} pairs, model {}",
        got.len(),
        want.len()
    );
    let mut c = env.cursor(&db);
    let mut back = Vec::new();
    while let Some((k, _)) = c.prev().unwrap() {
        back.push(k);
    }
    back.reverse();
    let keys: Vec<_> = model.keys().cloned().collect();
    assert_eq!(back, keys, "seed {seed} step {step}: backward cursor");
}

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("key{:05}", rng.below(2000)).into_bytes()
}

/// The first pair of `model` at or after `k` (what a seek gives), and the
/// one after it.
fn seek_in(model: &Model, k: &[u8]) -> (Option<Pair>, Option<Pair>) {
    let mut it = model
        .range(k.to_vec()..)
        .map(|(k, v)| (k.clone(), v.clone()));
    (it.next(), it.next())
}

/// The cheap comparison, after every step: `get` of a few keys (present
/// and absent ones), a `seek` with the next and previous pairs after it,
/// and the first and last pairs, all against the model.
fn probe(env: &Env, model: &Model, rng: &mut Rng, ctx: &str) {
    let db = env.open_db("m.db").unwrap();
    for _ in 0..4 {
        // Half the probes at a key the model has (when it has any).
        let k = match model.len() {
            n if n > 0 && rng.below(2) == 0 => model
                .keys()
                .nth(rng.below(n as u64) as usize)
                .unwrap()
                .clone(),
            _ => key(rng),
        };
        assert_eq!(
            env.get(&db, &k).unwrap().as_ref(),
            model.get(&k),
            "{ctx}: get {}",
            String::from_utf8_lossy(&k)
        );
    }
    let k = key(rng);
    let (at, after) = seek_in(model, &k);
    let mut c = env.cursor(&db);
    assert_eq!(
        c.seek(&k).unwrap(),
        at,
        "{ctx}: seek {}",
        String::from_utf8_lossy(&k)
    );
    if at.is_some() {
        assert_eq!(c.next().unwrap(), after, "{ctx}: next after the seek");
        let mut c = env.cursor(&db);
        c.seek(&k).unwrap();
        let before = model
            .range(..k.clone())
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone()));
        assert_eq!(c.prev().unwrap(), before, "{ctx}: prev after the seek");
    }
    let first = model.iter().next().map(|(k, v)| (k.clone(), v.clone()));
    let last = model
        .iter()
        .next_back()
        .map(|(k, v)| (k.clone(), v.clone()));
    assert_eq!(env.cursor(&db).first().unwrap(), first, "{ctx}: first");
    assert_eq!(env.cursor(&db).last().unwrap(), last, "{ctx}: last");
}

/// Reads inside a transaction see its own changes (`staged`); readers
/// outside it still see the committed state (`model`).
fn probe_txn(
    env: &Env,
    t: &mut libcore::Txn<'_>,
    db: &libcore::Db,
    (staged, model): (&Model, &Model),
    k: &[u8],
    rng: &mut Rng,
    ctx: &str,
) {
    let name = String::from_utf8_lossy(k);
    assert_eq!(
        t.get(db, k).unwrap().as_ref(),
        staged.get(k),
        "{ctx}: txn get {name}"
    );
    assert_eq!(
        env.get(db, k).unwrap().as_ref(),
        model.get(k),
        "{ctx}: a reader outside the open transaction, get {name}"
    );
    let after = staged
        .range((
            std::ops::Bound::Excluded(k.to_vec()),
            std::ops::Bound::Unbounded,
        ))
        .next()
        .map(|(k, v)| (k.clone(), v.clone()));
    assert_eq!(
        t.next_after(db, k).unwrap(),
        after,
        "{ctx}: txn next after {name}"
    );
    if rng.below(8) == 0 {
        let first = staged.iter().next().map(|(k, v)| (k.clone(), v.clone()));
        assert_eq!(t.first(db).unwrap(), first, "{ctx}: txn first");
    }
}

fn run(seed: u64, page_size: usize, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut rng = Rng(seed);
    // Probes draw from their own generator, so the workload of a seed
    // stays what it was.
    let mut prng = Rng::new(seed);
    let mut env = open(home, page_size);
    {
        let mut t = env.begin().unwrap();
        t.create_db("m.db", None).unwrap();
        t.commit().unwrap();
    }
    let mut model: Model = BTreeMap::new();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.below(20) {
            0 => {
                env.checkpoint().unwrap();
            }
            1 => {
                env.close().unwrap();
                env = open(home, page_size);
            }
            2 => {
                // A crash: drop without close; the next open recovers.
                drop(env);
                env = open(home, page_size);
            }
            _ => {
                let db = env.open_db("m.db").unwrap();
                let mut t = env.begin().unwrap();
                let mut staged = model.clone();
                for _ in 0..1 + rng.below(30) {
                    let k = key(&mut rng);
                    if rng.below(4) == 0 {
                        let had = t.delete(&db, &k).unwrap();
                        assert_eq!(had, staged.remove(&k).is_some(), "{ctx}");
                    } else {
                        let v = value(&mut rng, page_size);
                        t.put(&db, &k, &v).unwrap();
                        staged.insert(k.clone(), v);
                    }
                    probe_txn(&env, &mut t, &db, (&staged, &model), &k, &mut prng, &ctx);
                }
                if rng.below(5) == 0 {
                    t.abort();
                } else {
                    t.commit().unwrap();
                    model = staged;
                }
            }
        }
        probe(&env, &model, &mut prng, &ctx);
        if step % 25 == 0 {
            check(&env, &model, seed, step);
        }
    }
    check(&env, &model, seed, steps);
    env.close().unwrap();
    let env = open(home, page_size);
    check(&env, &model, seed, steps + 1);
}

#[test]
fn model_page_size_512() {
    run(0x5eed_0001, 512, 600);
}

#[test]
fn model_page_size_4096() {
    run(0x5eed_0002, 4096, 800);
}

#[test]
fn model_page_size_65536() {
    run(0x5eed_0003, 65536, 300);
}

#[test]
fn readers_never_see_uncommitted_or_half_installed_transactions() {
    // Each transaction moves one unit between two keys; a reader must
    // always see the sum unchanged and never a key of an open transaction.
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), 4096);
    {
        let mut t = env.begin().unwrap();
        let db = t.create_db("bank.db", None).unwrap();
        t.put(&db, b"a", b"1000").unwrap();
        t.put(&db, b"b", b"0").unwrap();
        t.commit().unwrap();
    }
    let db = env.open_db("bank.db").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let env = env.clone();
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b, pending) = env
                    .read(&db, |s| {
                        let n = |k: &[u8]| -> u64 {
                            libcore::testing::btree::get(s, k)
                                .unwrap()
                                .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
                                .unwrap_or(0)
                        };
                        Ok((
                            n(b"a"),
                            n(b"b"),
                            libcore::testing::btree::get(s, b"pending")?,
                        ))
                    })
                    .unwrap();
                assert_eq!(a + b, 1000, "reader saw half a transaction");
                assert!(pending.is_none(), "reader saw uncommitted data");
                reads += 1;
            }
            reads
        })
    };
    for i in 0..300u64 {
        let mut t = env.begin().unwrap();
        t.put(&db, b"pending", b"x").unwrap();
        t.put(&db, b"a", (1000 - (i + 1)).to_string().as_bytes())
            .unwrap();
        t.put(&db, b"b", (i + 1).to_string().as_bytes()).unwrap();
        t.delete(&db, b"pending").unwrap();
        // Filler so pages split while the reader runs.
        for j in 0..20 {
            t.put(&db, format!("fill{i:04}{j:02}").as_bytes(), &[7u8; 100])
                .unwrap();
        }
        if i % 3 == 0 {
            t.put(&db, b"pending", b"x").unwrap();
            t.abort();
        } else {
            t.commit().unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn bulk_mode_writes_new_pages_directly_and_survives_a_crash() {
    // A bulk transaction's new pages go straight to the data file; only a
    // marker (and the pages that already existed) reach the log. After a
    // crash (drop without close) everything it committed is there.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let env = open(home, 4096);
    {
        let mut t = env.begin().unwrap();
        let db = t.create_db("base.db", None).unwrap();
        t.put(&db, b"before", b"1").unwrap();
        t.commit().unwrap();
    }
    env.checkpoint().unwrap();
    let log_before = env.log_end();
    {
        let db = env.open_db("base.db").unwrap();
        let mut t = env.begin_bulk().unwrap();
        for i in 0..5000u32 {
            t.put(&db, format!("bulk{i:06}").as_bytes(), &[5u8; 200])
                .unwrap();
        }
        t.commit().unwrap();
    }
    let log_after = env.log_end();
    drop(env);
    let env = open(home, 4096);
    let db = env.open_db("base.db").unwrap();
    let mut n = 0;
    scan(&env, &db, |_, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 5001);
    assert_eq!(env.get(&db, b"bulk004999").unwrap(), Some(vec![5u8; 200]));
    // ~1 MB of data went in, but the log grew by far less: new pages were
    // not logged.
    let grew = if log_after.file == log_before.file {
        u64::from(log_after.offset - log_before.offset)
    } else {
        u64::MAX
    };
    assert!(grew < 200_000, "log grew by {grew} bytes for a bulk load");
    let markers = env.recovery_outcome().bulk_markers.len();
    assert!(markers >= 1, "recovery saw the bulk marker");
}

#[test]
fn a_torn_bulk_written_page_is_repaired_after_its_next_change() {
    // Regression: pages a bulk transaction wrote straight to the file have
    // no image in the log; their next change was logged as a byte-range
    // delta, so a torn write of such a page could not be repaired. Now the
    // next change after a bulk write is a full image.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let env = open(home, 4096);
    {
        let mut t = env.begin().unwrap();
        t.create_db("b.db", None).unwrap();
        t.commit().unwrap();
    }
    env.checkpoint().unwrap();
    let db = env.open_db("b.db").unwrap();
    {
        let mut t = env.begin_bulk().unwrap();
        for i in 0..2000u32 {
            t.put(&db, format!("k{i:06}").as_bytes(), &[1u8; 100])
                .unwrap();
        }
        t.commit().unwrap();
    }
    {
        // Change every leaf once more (no checkpoint after).
        let mut t = env.begin().unwrap();
        for i in (0..2000u32).step_by(5) {
            t.put(&db, format!("k{i:06}").as_bytes(), &[2u8; 100])
                .unwrap();
        }
        t.commit().unwrap();
    }
    drop(env);
    // Tear every leaf page on disk (the second transaction changed them
    // all; byte 16 is the page type, 3 a leaf).
    let path = home.join("b.db");
    let mut raw = std::fs::read(&path).unwrap();
    let pages = raw.len() / 4096;
    let mut torn = 0;
    for p in 1..pages {
        if raw[p * 4096 + 16] == 3 {
            raw[p * 4096 + 2000] ^= 0xff;
            torn += 1;
        }
    }
    assert!(torn > 10, "{torn} leaves");
    std::fs::write(&path, raw).unwrap();
    let env = open(home, 4096);
    let db = env.open_db("b.db").unwrap();
    for i in 0..2000u32 {
        let want = if i % 5 == 0 { 2u8 } else { 1u8 };
        assert_eq!(
            env.get(&db, format!("k{i:06}").as_bytes()).unwrap(),
            Some(vec![want; 100]),
            "key {i}"
        );
    }
}

#[test]
fn removing_a_database_is_durable_and_redone_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let env = open(home, 4096);
    {
        let mut t = env.begin().unwrap();
        let a = t.create_db("gone.db", None).unwrap();
        let b = t.create_db("kept.db", None).unwrap();
        t.put(&a, b"k", b"v").unwrap();
        t.put(&b, b"k", b"v").unwrap();
        t.commit().unwrap();
    }
    // An aborted removal changes nothing.
    let gone = env.open_db("gone.db").unwrap();
    let mut t = env.begin().unwrap();
    t.remove_db(&gone).unwrap();
    t.abort();
    assert_eq!(env.get(&gone, b"k").unwrap(), Some(b"v".to_vec()));
    let mut t = env.begin().unwrap();
    t.remove_db(&gone).unwrap();
    t.commit().unwrap();
    assert!(!home.join("gone.db").exists());
    assert!(env.open_db("gone.db").is_err());
    drop(env); // crash: recovery replays the create and the remove
    let env = open(home, 4096);
    assert_eq!(env.db_names(), vec!["kept.db".to_string()]);
    assert!(!home.join("gone.db").exists());
    env.close().unwrap();
}

#[test]
fn an_oversized_item_is_refused_without_spoiling_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let env = open(dir.path(), 4096);
    let mut t = env.begin().unwrap();
    let db = t.create_db("x.db", None).unwrap();
    t.put(&db, b"a", b"1").unwrap();
    let big = vec![0u8; libcore::testing::btree::MAX_ITEM + 1];
    assert!(t.put(&db, b"b", &big).is_err());
    assert!(t.put(&db, &big, b"v").is_err());
    t.put(&db, b"c", b"3").unwrap();
    t.commit().unwrap();
    assert_eq!(env.get(&db, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(env.get(&db, b"c").unwrap(), Some(b"3".to_vec()));
}
