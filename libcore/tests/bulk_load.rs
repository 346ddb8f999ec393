//! Loads (`load::load_into_env`) into new, empty and non-empty databases,
//! with sorted input (the bottom-up build in bulk mode), duplicates and
//! unsorted input (the fall back to puts, which spills pages to the file
//! once it holds half the cache), overflow values, page sizes 512 and
//! 65536, checked record by record against a `BTreeMap` model, and power
//! losses at every mutating file operation of a workload around a load
//! (`CrashVfs`): recovery must give a committed prefix, the tree must
//! verify, and the same load must then go through, also where the lost
//! load had created the database file (its leftover pages must not block
//! the name).

use libcore::dump::PairSource;
use libcore::load::{load_into_env, LoadOptions};
use libcore::testing::btree;
use libcore::SharedVfs;
use libcore::{scan, Env, EnvOptions};
use libcore::{Db, Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use testkit::{CrashVfs, Rng};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;
type State = BTreeMap<String, Table>;
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

struct VecSource(std::vec::IntoIter<(Vec<u8>, Vec<u8>)>);

impl PairSource for VecSource {
    fn next_pair(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.0.next())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Ascending keys: built bottom-up throughout.
    Sorted,
    /// Ascending with one key repeated (a new value) part way.
    Duplicate,
    /// Ascending, then the rest shuffled.
    Unsorted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The load creates the database.
    New,
    /// The database exists and is empty.
    Empty,
    /// The database holds keys (puts throughout, no bulk mode).
    Full,
}

fn value(r: &mut Rng, ps: usize) -> Vec<u8> {
    let len = match r.below(40) {
        0 => ps + r.below(3 * ps as u64) as usize,
        _ => r.below(24) as usize,
    };
    r.bytes(len)
}

fn pairs(seed: u64, n: usize, shape: Shape, ps: usize) -> Pairs {
    let mut r = Rng::new(seed);
    let mut v: Pairs = (0..n)
        .map(|i| {
            let mut k = format!("key{:06}", i * 3).into_bytes();
            if r.below(30) == 0 {
                k.extend(std::iter::repeat_n(
                    b'x',
                    ps / 2 + r.below(ps as u64) as usize,
                ));
            }
            (k, value(&mut r, ps))
        })
        .collect();
    match shape {
        Shape::Sorted => {}
        Shape::Duplicate => {
            let at = 1 + r.below(n as u64 - 1) as usize;
            let k = v[at - 1 - r.below(at.min(3) as u64) as usize].0.clone();
            v.insert(at, (k, b"second value".to_vec()));
        }
        Shape::Unsorted => {
            let from = r.below(n as u64) as usize;
            for i in (from + 1..n).rev() {
                let j = from + r.below((i - from + 1) as u64) as usize;
                v.swap(i, j);
            }
        }
    }
    v
}

fn options(ps: usize, vfs: Option<SharedVfs>) -> EnvOptions {
    let mut o = EnvOptions::create();
    o.page_size = Some(ps);
    o.lg_max = Some(64 * 1024);
    o.cache_size = Some(64 * 1024);
    o.serve_requests = false;
    o.vfs = vfs;
    o
}

fn read_state(env: &Env) -> Result<State> {
    let mut s = State::new();
    for name in env.db_names() {
        let db = env.open_db(&name)?;
        let problems = env.read(&db, |st| btree::verify(st))?;
        assert!(problems.is_empty(), "{name}: {problems:?}");
        let mut t = Table::new();
        scan(env, &db, |k, v| {
            t.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        s.insert(name, t);
    }
    Ok(s)
}

fn load(env: &Env, name: &str, p: &Pairs) -> Result<()> {
    let mut src = VecSource(p.clone().into_iter());
    let opts = LoadOptions {
        input_name: "test".to_string(),
        ..Default::default()
    };
    let rep = load_into_env(env, name, &mut src, opts)?;
    assert_eq!(rep.loaded, p.len() as u64);
    Ok(())
}

fn with_load(mut s: State, p: &Pairs) -> State {
    let t = s.entry("a.db".to_string()).or_default();
    for (k, v) in p {
        t.insert(k.clone(), v.clone());
    }
    s
}

/// The states after each commit of the workload, the first one empty.
fn states(target: Target, p: &Pairs, extra: &Pairs) -> Vec<State> {
    let mut s0 = State::new();
    s0.insert("pre.db".to_string(), pre_pairs().into_iter().collect());
    match target {
        Target::New => {}
        Target::Empty => {
            s0.insert("a.db".to_string(), Table::new());
        }
        Target::Full => {
            s0.insert("a.db".to_string(), full_pairs().into_iter().collect());
        }
    }
    let s1 = with_load(s0.clone(), p);
    let s2 = with_load(s1.clone(), extra);
    vec![State::new(), s0, s1, s2]
}

fn pre_pairs() -> Pairs {
    (0..20u32)
        .map(|i| (format!("pre{i}").into_bytes(), vec![i as u8; 30]))
        .collect()
}

fn full_pairs() -> Pairs {
    (0..30u32)
        .map(|i| (format!("key{:06}", i * 7 + 1).into_bytes(), vec![7; 10]))
        .collect()
}

/// After the load: one ordinary transaction on the loaded pages (their
/// first change after a bulk commit is logged whole).
fn extra_pairs(p: &Pairs) -> Pairs {
    let mut e: Pairs = p
        .iter()
        .step_by(5)
        .map(|(k, _)| (k.clone(), b"changed".to_vec()))
        .collect();
    e.push((b"zzz-after".to_vec(), vec![1; 50]));
    e
}

/// Runs the workload; returns how many commits returned Ok and whether
/// one more was in flight when it stopped.
fn workload(env: &Env, target: Target, p: &Pairs, extra: &Pairs) -> (usize, bool) {
    let mut done = 0;
    let r: Result<()> = (|| {
        let mut t = env.begin()?;
        let pre = t.create_db("pre.db", None)?;
        for (k, v) in pre_pairs() {
            t.put(&pre, &k, &v)?;
        }
        if target != Target::New {
            let a = t.create_db("a.db", None)?;
            if target == Target::Full {
                for (k, v) in full_pairs() {
                    t.put(&a, &k, &v)?;
                }
            }
        }
        t.commit()?;
        done += 1;
        env.checkpoint()?;
        load(env, "a.db", p)?;
        done += 1;
        let a: Db = env.open_db("a.db")?;
        let mut t = env.begin()?;
        for (k, v) in extra {
            t.put(&a, k, v)?;
        }
        t.commit()?;
        done += 1;
        env.checkpoint()?;
        Ok(())
    })();
    (done, r.is_err() && done < 3)
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("bulkload").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// How a run stops at its cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The machine loses power: what was not synced is lost or torn.
    Power,
    /// The process is killed: everything written stays.
    Kill,
}

/// One run stopping after `cut` mutating operations (none: a full run);
/// returns the number of mutating operations.
fn cut_point(
    seed: u64,
    ps: usize,
    n: usize,
    shape: Shape,
    target: Target,
    cut: Option<u64>,
    stop: Stop,
) -> u64 {
    let p = pairs(seed, n, shape, ps);
    let extra = extra_pairs(&p);
    let want = states(target, &p, &extra);
    let ctx = format!("seed {seed} ps {ps} {shape:?} {target:?} cut {cut:?} {stop:?}");
    let dir = scratch();
    let home = dir.path();
    let crash = CrashVfs::new(home);
    if let Some(c) = cut {
        crash.crash_after(c);
    }
    let (done, in_doubt) = match Env::open(home, options(ps, Some(crash.clone()))) {
        Ok(env) => {
            let (done, in_doubt) = workload(&env, target, &p, &extra);
            assert!(
                done == 3 || crash.is_stopped(),
                "{ctx}: failed before the cut"
            );
            (done, in_doubt)
        }
        Err(e) => {
            assert!(crash.is_stopped(), "{ctx}: open: {e}");
            (0, false)
        }
    };
    let mutations = crash.mutations();
    if stop == Stop::Power {
        crash
            .power_loss(seed ^ cut.unwrap_or(0))
            .unwrap_or_else(|e| panic!("{ctx}: power loss: {e}"));
    }

    let env = match Env::open(home, options(ps, None)) {
        Ok(env) => env,
        Err(Error::NotEnvironment { .. }) if done == 0 => return mutations,
        Err(e) => panic!("{ctx}: reopen: {e}"),
    };
    let got = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
    let hi = done + usize::from(in_doubt);
    let k = (done..=hi.min(3))
        .rev()
        .find(|&k| want[k] == got)
        .unwrap_or_else(|| {
            panic!(
                "{ctx}: recovered state is no committed prefix in {done}..={hi} (equal to {:?})",
                want.iter().position(|s| *s == got)
            )
        });
    // Where the load was lost, it goes through now, over whatever the
    // lost one left in the file.
    if (1..2).contains(&k) {
        load(&env, "a.db", &p).unwrap_or_else(|e| panic!("{ctx}: load again: {e}"));
        let got = read_state(&env).unwrap();
        assert!(
            got == want[2],
            "{ctx}: the load again differs from the model"
        );
    }
    env.close().unwrap();
    mutations
}

/// Cuts at every `every`th mutating operation: a power loss at each, a
/// kill at every third.
fn sweep(seed: u64, ps: usize, n: usize, shape: Shape, target: Target, every: u64) {
    let total = cut_point(seed, ps, n, shape, target, None, Stop::Power);
    let mut c = seed % every;
    let mut i = 0;
    while c <= total {
        cut_point(seed, ps, n, shape, target, Some(c), Stop::Power);
        if i % 3 == 0 {
            cut_point(seed, ps, n, shape, target, Some(c), Stop::Kill);
        }
        c += every;
        i += 1;
    }
}

#[test]
fn loads_match_the_model_for_every_shape_and_target() {
    for ps in [512usize, 65536] {
        for shape in [Shape::Sorted, Shape::Duplicate, Shape::Unsorted] {
            for target in [Target::New, Target::Empty, Target::Full] {
                let n = if ps == 512 { 600 } else { 3000 };
                let total = cut_point(7, ps, n, shape, target, None, Stop::Power);
                assert!(total > 0);
            }
        }
    }
}

#[test]
fn power_loss_inside_a_sorted_load_into_a_new_database() {
    for seed in 0..3 {
        sweep(seed, 512, 300, Shape::Sorted, Target::New, 1);
    }
}

#[test]
fn power_loss_inside_a_load_that_falls_back_to_puts() {
    sweep(11, 512, 300, Shape::Duplicate, Target::New, 1);
    sweep(12, 512, 900, Shape::Unsorted, Target::New, 4);
}

#[test]
fn power_loss_inside_a_load_into_an_existing_database() {
    sweep(21, 512, 300, Shape::Sorted, Target::Empty, 1);
    sweep(22, 512, 200, Shape::Unsorted, Target::Full, 3);
}

#[test]
fn power_loss_inside_a_load_with_large_pages() {
    sweep(31, 65536, 1500, Shape::Sorted, Target::New, 6);
}

/// A load of sorted input into a new database logs a few records, not
/// its pages; and one that is killed (dropped without commit) leaves a
/// file whose name the next load takes again.
#[test]
fn a_sorted_load_logs_almost_nothing_and_an_abandoned_one_is_reusable() {
    let dir = scratch();
    let home = dir.path();
    let ps = 4096;
    let p = pairs(5, 20_000, Shape::Sorted, ps);
    let env = Env::open(home, options(ps, None)).unwrap();
    let before = env.log_end();
    load(&env, "a.db", &p).unwrap();
    let after = env.log_end();
    assert_eq!(before.file, after.file);
    let logged = after.offset - before.offset;
    let data = std::fs::metadata(home.join("a.db")).unwrap().len();
    assert!(
        (logged as u64) < 3 * ps as u64 && data > 100 * ps as u64,
        "logged {logged} bytes for a file of {data}"
    );
    let got = read_state(&env).unwrap();
    assert!(got["a.db"] == with_load(State::new(), &p)["a.db"]);

    env.close().unwrap();

    // A load killed part way through building a database it created: its
    // pages stay in the file, the database does not exist, and the next
    // load takes the name again.
    let crash = CrashVfs::new(home);
    let env = Env::open(home, options(ps, Some(crash.clone()))).unwrap();
    let start = crash.mutations();
    crash.crash_after(60);
    assert!(load(&env, "b.db", &p).is_err());
    assert!(crash.mutations() > start);
    drop(env);
    assert!(std::fs::metadata(home.join("b.db")).unwrap().len() > 20 * ps as u64);
    let env = Env::open(home, options(ps, None)).unwrap();
    assert!(env.open_db("b.db").is_err());
    load(&env, "b.db", &p[..10].to_vec()).unwrap();
    let got = read_state(&env).unwrap();
    assert_eq!(got["b.db"].len(), 10);
    assert!(got["a.db"] == with_load(State::new(), &p)["a.db"]);
    env.close().unwrap();
}

/// An aborted bulk build into an existing empty database cuts the pages it
/// spilled off the file again, leaves the database empty, and a load
/// afterwards gives the model.
#[test]
fn an_aborted_build_into_an_existing_database_leaves_it_as_it_was() {
    let dir = scratch();
    let home = dir.path();
    let ps = 512;
    let env = Env::open(home, options(ps, None)).unwrap();
    let mut t = env.begin().unwrap();
    t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    env.checkpoint().unwrap();
    let len = std::fs::metadata(home.join("a.db")).unwrap().len();
    let db = env.open_db("a.db").unwrap();
    let p = pairs(9, 500, Shape::Sorted, ps);
    let mut t = env.begin_bulk().unwrap();
    let mut b = t.bulk_builder(&db).unwrap().unwrap();
    for (k, v) in &p {
        t.build_push(&mut b, k, v).unwrap();
    }
    assert!(std::fs::metadata(home.join("a.db")).unwrap().len() > len + 20 * ps as u64);
    t.abort();
    assert_eq!(std::fs::metadata(home.join("a.db")).unwrap().len(), len);
    assert!(read_state(&env).unwrap()["a.db"].is_empty());
    load(&env, "a.db", &p).unwrap();
    assert!(read_state(&env).unwrap()["a.db"] == with_load(State::new(), &p)["a.db"]);
    env.close().unwrap();
    let env = Env::open(home, options(ps, None)).unwrap();
    assert!(read_state(&env).unwrap()["a.db"] == with_load(State::new(), &p)["a.db"]);
    env.close().unwrap();
}
