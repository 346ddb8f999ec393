//! Power-loss and fault-injection tests of DESIGN.md invariants 1 and 2.
//!
//! *Power loss.* A random workload (inserts, overwrites, deletes, page
//! splits, overflow values, aborts, checkpoints, log rotation, bulk-mode
//! transactions, database create and remove; page sizes 512 and 4096, a
//! small log and a small cache) runs through `Env` on a `CrashVfs`. The
//! machine stops after a chosen number of mutating file operations
//! (`CrashVfs::crash_after`), so a cut lands anywhere: inside a commit,
//! between a log write and its fsync, inside a checkpoint's write-back or a
//! log rotation. Then the power fails (`CrashVfs::power_loss`) and the
//! environment is recovered. The state must equal the model after some
//! prefix of the commit order that includes every acknowledged commit:
//! every commit that returned `Ok` in sync mode, and in nosync mode every
//! commit before a checkpoint that returned `Ok`.
//!
//! The power loss follows `CrashModel::Strong` (testkit, crash.rs): any subset of
//! the unsynced writes, creations, removals and renames survives, in any
//! order, torn anywhere. Recovery itself then runs on the same `CrashVfs`
//! and the power fails again during it, once or twice, at a random one of
//! its mutating operations (page write-back, data-file cut, log cut and
//! truncation, their fsyncs); the recovery after that must give exactly
//! the state an uninterrupted recovery gives (computed on a copy). The
//! recovered environment must then keep working: a few more transactions
//! with a checkpoint among them, another power loss, and a reopen must give
//! the model again (so what recovery wrote must have been made durable).
//!
//! *Failed I/O.* With a `FaultyVfs`, a failed log fsync, a failed or short
//! data-file write (checkpoint, eviction, bulk commit) and ENOSPC or a short
//! write of the log make the operation return an error; from then on every
//! commit and checkpoint returns `Error::Failed` (never a pretended
//! success); reopening with a sound file system recovers a committed
//! prefix, also after a power loss underneath the faulty file system.
//!
//! `POWERLOSS_CUTS` scales the number of cut points per test; the ignored
//! `torture_*` tests (run in release by `make torture`) run many more and
//! print the count.

use libcore::{scan, Env, EnvOptions};
use libcore::{Db, Error, Lsn};
use libcore::{OsVfs, SharedVfs};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use testkit::Rng;
use testkit::{CrashVfs, FaultyVfs, Op};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;
/// Database name -> contents.
type State = BTreeMap<String, Table>;

#[derive(Debug, Clone)]
enum TOp {
    Put(String, Vec<u8>, Vec<u8>),
    Del(String, Vec<u8>),
    Create(String, usize),
    Remove(String),
}

#[derive(Debug, Clone)]
enum Step {
    Txn {
        bulk: bool,
        abort: bool,
        ops: Vec<TOp>,
    },
    Checkpoint,
}

#[derive(Debug, Clone, Copy)]
struct Params {
    page_size: usize,
    steps: usize,
    nosync: bool,
}

fn value(rng: &mut Rng, ps: usize) -> Vec<u8> {
    let len = match rng.below(12) {
        0 => 0,
        1 => ps * 2 + rng.below(ps as u64) as usize, // overflow
        2 => ps + 1,                                 // just over a page
        3 => rng.below(ps as u64 / 3) as usize,
        _ => rng.below(40) as usize,
    };
    let b = rng.below(256) as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

fn apply(state: &mut State, op: &TOp) {
    match op {
        TOp::Put(d, k, v) => {
            state.get_mut(d).unwrap().insert(k.clone(), v.clone());
        }
        TOp::Del(d, k) => {
            state.get_mut(d).unwrap().remove(k);
        }
        TOp::Create(d, _) => {
            state.insert(d.clone(), Table::new());
        }
        TOp::Remove(d) => {
            state.remove(d);
        }
    }
}

/// A workload and the model state after each of its commits
/// (`states[i]`: after the first `i` commits).
struct Plan {
    steps: Vec<Step>,
    states: Vec<State>,
}

fn plan(seed: u64, p: Params) -> Plan {
    let mut rng = rng(seed);
    let ps = p.page_size;
    let other_ps = if ps == 512 { 4096 } else { 512 };
    let mut state = State::new();
    let mut states = vec![state.clone()];
    let mut steps = Vec::new();
    let mut next_db = 1;
    let first = vec![
        TOp::Create("a.db".into(), ps),
        TOp::Put("a.db".into(), b"k0000".to_vec(), b"first".to_vec()),
    ];
    steps.push(Step::Txn {
        bulk: false,
        abort: false,
        ops: first,
    });
    for op in match &steps[0] {
        Step::Txn { ops, .. } => ops.clone(),
        Step::Checkpoint => unreachable!(),
    } {
        apply(&mut state, &op);
    }
    states.push(state.clone());
    while steps.len() < p.steps {
        let r = rng.below(100);
        if r < 7 {
            steps.push(Step::Checkpoint);
            continue;
        }
        let names: Vec<String> = state.keys().cloned().collect();
        let mut staged = state.clone();
        let mut ops = Vec::new();
        let mut bulk = false;
        if r < 11 || names.is_empty() {
            let name = format!("d{next_db}.db");
            next_db += 1;
            let size = if rng.below(4) == 0 { other_ps } else { ps };
            ops.push(TOp::Create(name.clone(), size));
            for _ in 0..rng.below(6) {
                let k = format!("k{:04}", rng.below(300)).into_bytes();
                ops.push(TOp::Put(name.clone(), k, value(&mut rng, size)));
            }
        } else if r < 14 && names.len() > 1 {
            let d = names[rng.below(names.len() as u64) as usize].clone();
            ops.push(TOp::Remove(d));
        } else if r < 20 {
            // Bulk: many new keys at the end, so new pages are allocated.
            bulk = true;
            let d = names[rng.below(names.len() as u64) as usize].clone();
            let base = 1000 + rng.below(9000);
            for i in 0..20 + rng.below(40) {
                let k = format!("b{:05}{:03}", base, i).into_bytes();
                let v = vec![(base + i) as u8; 20 + rng.below(ps as u64 / 4) as usize];
                ops.push(TOp::Put(d.clone(), k, v));
            }
        } else {
            for _ in 0..1 + rng.below(10) {
                let d = names[rng.below(names.len() as u64) as usize].clone();
                let table = &staged[&d];
                if rng.below(4) == 0 && !table.is_empty() {
                    let i = rng.below(table.len() as u64) as usize;
                    let k = table.keys().nth(i).unwrap().clone();
                    ops.push(TOp::Del(d.clone(), k));
                } else {
                    let k = format!("k{:04}", rng.below(300)).into_bytes();
                    ops.push(TOp::Put(d.clone(), k, value(&mut rng, ps)));
                }
                apply(&mut staged, ops.last().unwrap());
            }
        }
        let abort = rng.below(12) == 0;
        if !abort {
            for op in &ops {
                apply(&mut state, op);
            }
            states.push(state.clone());
        }
        steps.push(Step::Txn { bulk, abort, ops });
    }
    Plan { steps, states }
}

fn summary(st: &Step) -> String {
    match st {
        Step::Checkpoint => "checkpoint".into(),
        Step::Txn { bulk, abort, ops } => {
            let ops: Vec<String> = ops
                .iter()
                .map(|o| match o {
                    TOp::Put(d, k, v) => {
                        format!("put {d} {} {}B", String::from_utf8_lossy(k), v.len())
                    }
                    TOp::Del(d, k) => format!("del {d} {}", String::from_utf8_lossy(k)),
                    TOp::Create(d, ps) => format!("create {d} {ps}"),
                    TOp::Remove(d) => format!("remove {d}"),
                })
                .collect();
            format!(
                "txn{}{} [{}]",
                if *bulk { " bulk" } else { "" },
                if *abort { " ABORT" } else { "" },
                ops.join(", ")
            )
        }
    }
}

fn options(p: Params, vfs: Option<SharedVfs>) -> EnvOptions {
    let mut o = EnvOptions::create();
    o.page_size = Some(p.page_size);
    o.lg_max = Some(if p.page_size == 512 {
        8 * 1024
    } else {
        32 * 1024
    });
    o.cache_size = Some(64 * 1024); // the minimum: forces eviction
    o.nosync = Some(p.nosync);
    o.serve_requests = false;
    o.vfs = vfs;
    o
}

/// How far a run got: commits that returned `Ok` (`done`), how many of
/// them are acknowledged durable (`acked`), and whether one more commit
/// was in flight when the run stopped (its fate is unknown).
#[derive(Debug, Clone, Copy, Default)]
struct Reached {
    acked: usize,
    done: usize,
    in_doubt: bool,
    /// The first error, if the run stopped on one.
    stopped: bool,
    /// Inside `commit` or `checkpoint` (where the run stopped, if it did).
    durable_op: bool,
}

impl Reached {
    fn range(&self) -> std::ops::RangeInclusive<usize> {
        self.acked..=self.done + usize::from(self.in_doubt)
    }
}

/// Runs `plan` from step `from` on `env` until the end or the first error.
/// `handles` maps names to open databases.
fn execute(
    env: &Env,
    steps: &[Step],
    p: Params,
    r: &mut Reached,
    handles: &mut HashMap<String, Db>,
    ctx: &str,
) -> Option<Error> {
    for (i, step) in steps.iter().enumerate() {
        let res: Result<(), Error> = (|| {
            match step {
                Step::Checkpoint => {
                    r.durable_op = true;
                    env.checkpoint()?;
                    r.durable_op = false;
                    r.acked = r.done;
                }
                Step::Txn { bulk, abort, ops } => {
                    let mut t = if *bulk {
                        env.begin_bulk()?
                    } else {
                        env.begin()?
                    };
                    let mut created: HashMap<String, Db> = HashMap::new();
                    for op in ops {
                        let h = |n: &String| {
                            created
                                .get(n)
                                .or_else(|| handles.get(n))
                                .cloned()
                                .unwrap_or_else(|| panic!("{ctx}: step {i}: no handle for {n}"))
                        };
                        match op {
                            TOp::Put(d, k, v) => {
                                t.put(&h(d), k, v)?;
                            }
                            TOp::Del(d, k) => {
                                let had = t.delete(&h(d), k)?;
                                assert!(
                                    had,
                                    "{ctx}: step {i}: delete of a present key said absent"
                                );
                            }
                            TOp::Create(d, ps) => {
                                let db = t.create_db(d, Some(*ps))?;
                                created.insert(d.clone(), db);
                            }
                            TOp::Remove(d) => {
                                t.remove_db(&h(d))?;
                            }
                        }
                    }
                    if *abort {
                        t.abort();
                        return Ok(());
                    }
                    r.in_doubt = true;
                    r.durable_op = true;
                    t.commit()?;
                    r.durable_op = false;
                    r.in_doubt = false;
                    r.done += 1;
                    if !p.nosync {
                        r.acked = r.done;
                    }
                    handles.extend(created);
                    for op in ops {
                        if let TOp::Remove(d) = op {
                            handles.remove(d);
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            r.stopped = true;
            return Some(e);
        }
    }
    None
}

fn read_state(env: &Env) -> Result<State, Error> {
    let mut s = State::new();
    for name in env.db_names() {
        let db = env.open_db(&name)?;
        let mut t = Table::new();
        scan(env, &db, |k, v| {
            t.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        s.insert(name, t);
    }
    Ok(s)
}

/// A temporary directory on tmpfs when there is one: `CrashVfs` models
/// durability itself, and the reopen after a power loss need not wait for
/// a real disk's fsync.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("powerloss").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn describe_diff(got: &State, want: &State) -> String {
    let mut out = Vec::new();
    for name in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (got.get(name), want.get(name)) {
            (Some(_), None) => out.push(format!("{name}: unexpected database")),
            (None, Some(_)) => out.push(format!("{name}: missing database")),
            (Some(g), Some(w)) if g != w => {
                let bad: Vec<String> = g
                    .keys()
                    .chain(w.keys())
                    .filter(|k| g.get(*k) != w.get(*k))
                    .take(3)
                    .map(|k| {
                        format!(
                            "{} (got {:?} bytes, want {:?})",
                            String::from_utf8_lossy(k),
                            g.get(k).map(|v| v.len()),
                            w.get(k).map(|v| v.len())
                        )
                    })
                    .collect();
                out.push(format!("{name}: {}", bad.join(", ")));
            }
            _ => {}
        }
    }
    out.join("; ")
}

/// The prefix `got` equals, within `range`, or a failure message.
fn match_prefix(
    got: &State,
    states: &[State],
    range: std::ops::RangeInclusive<usize>,
    ctx: &str,
) -> usize {
    let hi = (*range.end()).min(states.len() - 1);
    for k in (*range.start()..=hi).rev() {
        if &states[k] == got {
            return k;
        }
    }
    let exact = states.iter().position(|s| s == got);
    panic!(
        "{ctx}: recovered state is no committed prefix in {range:?} (equal to prefix {exact:?}); \
         against prefix {}: {}",
        range.start(),
        describe_diff(got, &states[*range.start()])
    );
}

/// One cut point: run the workload until `cut` mutating operations, lose
/// power, recover, check; then keep working, crash, recover, check.
fn cut_point(seed: u64, p: Params, cut: Option<u64>) -> u64 {
    let pl = plan(seed, p);
    let dir = scratch();
    let home = dir.path();
    let ctx = format!(
        "seed {seed:#x} page {} nosync {} cut {cut:?}",
        p.page_size, p.nosync
    );
    let crash = CrashVfs::new(home);
    if let Some(c) = cut {
        crash.crash_after(c);
    }
    let mut r = Reached::default();
    let mut handles = HashMap::new();
    match Env::open(home, options(p, Some(crash.clone()))) {
        Ok(env) => {
            let err = execute(&env, &pl.steps, p, &mut r, &mut handles, &ctx);
            if let Some(e) = &err {
                assert!(
                    crash.is_stopped(),
                    "{ctx}: error before the cut: {e} ({r:?})"
                );
            }
            drop(env); // the process dies with the machine
        }
        Err(e) => assert!(crash.is_stopped(), "{ctx}: open failed before the cut: {e}"),
    }
    let mutations = crash.mutations();
    let loss = crash.power_loss(seed ^ cut.unwrap_or(0)).unwrap();
    if std::env::var_os("POWERLOSS_DEBUG").is_some() {
        eprintln!("{ctx}: {loss:?} {r:?}");
        for (i, st) in pl.steps.iter().enumerate() {
            eprintln!("  {i}: {}", summary(st));
        }
        if let Ok(pg) = std::env::var("POWERLOSS_PAGE_TRACE") {
            let pg: u32 = pg.parse().unwrap();
            let vfs = OsVfs::shared();
            let mut cur = libcore::testing::log::LogCursor::open(vfs, home).unwrap();
            while let Ok(Some((lsn, txn, rec))) = cur.next() {
                use libcore::testing::log::Record as R;
                match &rec {
                    R::PageImage { pgno, file_id, .. } if pgno.0 == pg => {
                        eprintln!("{lsn} txn {txn:?} image {file_id:?} {pgno:?}")
                    }
                    R::PageDelta {
                        pgno,
                        prev_lsn,
                        file_id,
                        ..
                    } if pgno.0 == pg => {
                        eprintln!("{lsn} txn {txn:?} delta {file_id:?} {pgno:?} prev {prev_lsn}")
                    }
                    R::Checkpoint(c) => eprintln!("{lsn} checkpoint redo {}", c.redo_lsn),
                    R::BulkMarker { .. } => eprintln!("{lsn} txn {txn:?} bulk {rec:?}"),
                    R::Commit { .. } => eprintln!("{lsn} txn {txn:?} commit"),
                    _ => {}
                }
            }
            let raw = std::fs::read(home.join("a.db")).unwrap();
            let ps = p.page_size;
            let b = &raw[pg as usize * ps..(pg as usize + 1) * ps];
            eprintln!(
                "disk page lsn [{}][{}] len {}",
                u32::from_le_bytes(b[4..8].try_into().unwrap()),
                u32::from_le_bytes(b[8..12].try_into().unwrap()),
                raw.len()
            );
        }
    }

    // The rest runs in sync mode: its commits are acknowledged durable, and
    // nothing but the log has them when the process crashes below.
    let after = Params { nosync: false, ..p };
    let (reference, recovery_ops) = recover_copy(home, after, &ctx);
    let k = match_prefix(&reference, &pl.states, r.range(), &ctx);
    let mut rng = rng(seed ^ cut.unwrap_or(0) ^ 0x2c2c);
    let cuts = crash_during_recovery(&crash, home, after, recovery_ops, &mut rng, &ctx);
    let ctx = format!("{ctx}, then power lost during recovery after {cuts:?} operations");
    // The final recovery runs on the model too: what it writes must be
    // durable before a checkpoint moves the redo point past it.
    let env = Env::open(home, options(after, Some(crash.clone())))
        .unwrap_or_else(|e| panic!("{ctx}: reopen after power loss: {e}"));
    let got = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: read after recovery: {e}"));
    assert!(
        got == reference,
        "{ctx}: not the state an uninterrupted recovery gives (prefix {k}): {}",
        describe_diff(&got, &reference)
    );

    // Keep working on the recovered environment: a few more transactions
    // on top of prefix k with a checkpoint among them, then another power
    // loss and another recovery.
    let mut model = pl.states[k].clone();
    let mut handles: HashMap<String, Db> = env
        .db_names()
        .into_iter()
        .map(|n| (n.clone(), env.open_db(&n).unwrap()))
        .collect();
    for round in 0..3 {
        let Some(name) = model.keys().nth(round % model.len().max(1)).cloned() else {
            break;
        };
        let bulk = round == 1;
        let mut t = if bulk {
            env.begin_bulk().unwrap()
        } else {
            env.begin().unwrap()
        };
        let db = handles.get(&name).unwrap().clone();
        for i in 0..15 + rng.below(30) {
            let k = format!("z{round}{i:04}").into_bytes();
            let v = value(&mut rng, p.page_size);
            t.put(&db, &k, &v).unwrap();
            model.get_mut(&name).unwrap().insert(k, v);
        }
        t.commit()
            .unwrap_or_else(|e| panic!("{ctx}: commit after recovery: {e}"));
        if round == 1 {
            env.checkpoint()
                .unwrap_or_else(|e| panic!("{ctx}: checkpoint after recovery: {e}"));
        }
    }
    handles.clear();
    drop(env);
    crash.power_loss(rng.next()).unwrap();
    let env = Env::open(home, options(after, None))
        .unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
    let got = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: second read: {e}"));
    assert!(
        got == model,
        "{ctx}: after recovery, more commits, a checkpoint and a power loss: {}",
        describe_diff(&got, &model)
    );
    env.close().unwrap();
    mutations
}

/// Copies the environment at `home` (its data: the lock and the region
/// stay) into a fresh directory beside it.
fn copy_env(home: &Path) -> tempfile::TempDir {
    let to = scratch();
    for ent in std::fs::read_dir(home).unwrap() {
        let ent = ent.unwrap();
        let name = ent.file_name();
        if !name.to_string_lossy().starts_with("__db") {
            std::fs::copy(ent.path(), to.path().join(&name)).unwrap();
        }
    }
    to
}

/// Recovers a copy of `home` without interruption: the state recovery must
/// give however often the power fails during it, and how many mutating
/// operations the recovery (the whole open) takes.
fn recover_copy(home: &Path, p: Params, ctx: &str) -> (State, u64) {
    let copy = copy_env(home);
    let counter = CrashVfs::new(copy.path());
    let env = Env::open(copy.path(), options(p, Some(counter.clone())))
        .unwrap_or_else(|e| panic!("{ctx}: recovery after the power loss: {e}"));
    let ops = counter.mutations();
    let state = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: read after recovery: {e}"));
    env.close().unwrap();
    (state, ops)
}

/// Power losses during recovery so far, over all tests of this binary (for
/// the counts the tests print).
static RECOVERY_CUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Cuts the power once or twice more, each time during the recovery of
/// `home` (its page write-back, its log cut and truncation, the fsyncs),
/// at a point drawn below `ops`. Returns where each recovery was cut (a
/// cut past its end lets it finish, and the power fails right after).
fn crash_during_recovery(
    crash: &Arc<CrashVfs>,
    home: &Path,
    p: Params,
    ops: u64,
    rng: &mut Rng,
    ctx: &str,
) -> Vec<u64> {
    let mut cuts = Vec::new();
    for _ in 0..1 + rng.below(2) {
        RECOVERY_CUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cut = rng.below(ops + 1);
        cuts.push(cut);
        crash.crash_after(cut);
        match Env::open(home, options(p, Some(crash.clone()))) {
            Ok(env) => drop(env),
            Err(e) => assert!(
                crash.is_stopped(),
                "{ctx}: recovery cut after {cuts:?} operations failed before the cut: {e}"
            ),
        }
        let l = crash.power_loss(rng.next()).unwrap();
        if std::env::var_os("POWERLOSS_DEBUG").is_some() {
            eprintln!("{ctx}: recovery cut after {cut} operations: {l:?}");
            let mut names: Vec<_> = std::fs::read_dir(home)
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| {
                    format!(
                        "{} {}",
                        e.file_name().to_string_lossy(),
                        e.metadata().unwrap().len()
                    )
                })
                .collect();
            names.sort();
            eprintln!("  now: {}", names.join(", "));
        }
    }
    cuts
}

/// Runs `per_seed` cut points for each of `seeds` workloads; returns the
/// number of cut points run.
fn power_loss_sweep(first_seed: u64, seeds: u64, per_seed: u64, p: Params) -> u64 {
    let mut n = 0;
    for s in 0..seeds {
        let seed = first_seed + s;
        // A full run (no cut) counts the mutating operations.
        let total = cut_point(seed, p, None);
        n += 1;
        let mut rng = rng(seed ^ 0x5151);
        for _ in 0..per_seed {
            cut_point(seed, p, Some(rng.below(total + 1)));
            n += 1;
        }
    }
    n
}

/// The power losses during recovery so far, for a test's count line.
fn recovery_cuts() -> String {
    let n = RECOVERY_CUTS.load(std::sync::atomic::Ordering::Relaxed);
    format!("{n} power losses during recovery in this test binary so far")
}

fn scale() -> u64 {
    std::env::var("POWERLOSS_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

const SMALL: usize = 30;

#[test]
fn power_loss_page_512() {
    let p = Params {
        page_size: 512,
        steps: SMALL,
        nosync: false,
    };
    let n = power_loss_sweep(0x512_0000, 40 * scale(), 10, p);
    eprintln!("power loss, page 512: {n} cut points; {}", recovery_cuts());
}

#[test]
fn power_loss_page_4096() {
    let p = Params {
        page_size: 4096,
        steps: SMALL,
        nosync: false,
    };
    let n = power_loss_sweep(0x4096_0000, 40 * scale(), 10, p);
    eprintln!("power loss, page 4096: {n} cut points; {}", recovery_cuts());
}

#[test]
fn power_loss_nosync() {
    for ps in [512, 4096] {
        let p = Params {
            page_size: ps,
            steps: SMALL,
            nosync: true,
        };
        let n = power_loss_sweep(0x7777_0000 + ps as u64, 20 * scale(), 10, p);
        eprintln!(
            "power loss, nosync, page {ps}: {n} cut points; {}",
            recovery_cuts()
        );
    }
}

/// The case `power_loss_one` replays when no seed is given: the workload
/// and cut of the first bug these tests found (see
/// `recovery_replays_changes_to_a_database_removed_after_the_checkpoint`).
const DEFAULT_ONE: (u64, u64) = (0x512_0003, 0x60);

#[test]
#[ignore = "debugging aid: replays POWERLOSS_SEED (hex) at POWERLOSS_CUT (hex; default: no cut), POWERLOSS_PAGE, POWERLOSS_STEPS (hex; torture: 0x3c), POWERLOSS_NOSYNC; a default case without them"]
fn power_loss_one() {
    let var = |n: &str| {
        std::env::var(n).ok().map(|s| {
            u64::from_str_radix(s.trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{n}={s}: not a hexadecimal number: {e}"))
        })
    };
    let p = Params {
        page_size: var("POWERLOSS_PAGE").unwrap_or(0x200) as usize,
        steps: var("POWERLOSS_STEPS").map_or(SMALL, |s| s as usize),
        nosync: std::env::var_os("POWERLOSS_NOSYNC").is_some(),
    };
    let (seed, cut) = match var("POWERLOSS_SEED") {
        Some(seed) => (seed, var("POWERLOSS_CUT")),
        None => {
            eprintln!(
                "power_loss_one: no POWERLOSS_SEED; replaying the default seed {:#x} cut {:#x}",
                DEFAULT_ONE.0, DEFAULT_ONE.1
            );
            (DEFAULT_ONE.0, Some(DEFAULT_ONE.1))
        }
    };
    let ops = cut_point(seed, p, cut);
    eprintln!("seed {seed:#x} cut {cut:?}: {ops} mutating operations before the power loss");
}

#[test]
fn power_loss_at_every_operation_of_one_workload() {
    // Every cut point of one workload, not a sample: each fsync, each
    // write, each rotation step.
    let p = Params {
        page_size: 512,
        steps: 20,
        nosync: false,
    };
    let seed = 0xeeee;
    let total = cut_point(seed, p, None);
    for c in 0..=total {
        cut_point(seed, p, Some(c));
    }
    eprintln!(
        "power loss at each of {} operations; {}",
        total + 1,
        recovery_cuts()
    );
}

#[test]
#[ignore = "slow: run in release by make torture"]
fn torture_power_loss() {
    let mut n = 0;
    for (i, ps) in [512usize, 4096].into_iter().enumerate() {
        for nosync in [false, true] {
            let p = Params {
                page_size: ps,
                steps: 60,
                nosync,
            };
            n += power_loss_sweep(
                0x7000_0000 + (i as u64) * 0x1000 + u64::from(nosync) * 0x100,
                100,
                25,
                p,
            );
        }
    }
    eprintln!("torture: {n} power-loss cut points; {}", recovery_cuts());
}

// ---------------------------------------------------------------------------
// Failed I/O: errors are reported, the environment fails, recovery is sound.
// ---------------------------------------------------------------------------

fn is_log(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("log."))
}

fn is_data(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "db")
}

/// Runs a workload on a `FaultyVfs` set up by `arm` (over the real file
/// system, or over a `CrashVfs` when `power_loss`), checks the failure
/// contract, then recovers with a sound file system and checks the
/// prefix. `contract` says what the operation that hits the fault must
/// do. Returns whether the fault hit.
/// What an operation must do when an injected fault hits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contract {
    /// Return an error, and refuse every later commit and checkpoint with
    /// `Error::Failed` (a failed write or fsync of the log or of a data
    /// file: what reached the disk is unknown).
    FailsEnvironment,
    /// Return an error; the environment may go on (a failed directory
    /// fsync while creating a database fails that transaction only).
    Reported,
    /// Nothing need be reported (a best-effort removal of a file nothing
    /// refers to); recovery must still give a committed prefix.
    MayPass,
}

impl Contract {
    fn reports(self) -> bool {
        self != Contract::MayPass
    }
}

fn fault_case(
    seed: u64,
    p: Params,
    power_loss: bool,
    contract: Contract,
    ctx: &str,
    arm: impl Fn(&FaultyVfs),
) -> bool {
    let pl = plan(seed, p);
    let dir = scratch();
    let home = dir.path();
    let crash = CrashVfs::new(home);
    let below: SharedVfs = if power_loss {
        crash.clone()
    } else {
        OsVfs::shared()
    };
    let faulty = Arc::new(FaultyVfs::new(below));
    arm(&faulty);
    let env = match Env::open(home, options(p, Some(faulty.clone()))) {
        Ok(env) => Some(env),
        Err(e) => {
            assert!(faulty.counts().injected > 0, "{ctx}: open: {e}");
            None
        }
    };
    let mut r = Reached::default();
    let mut handles = HashMap::new();
    let err = env
        .as_ref()
        .and_then(|env| execute(env, &pl.steps, p, &mut r, &mut handles, ctx));
    let hit = faulty.counts().injected > 0;
    if let Some(env) = &env {
        match &err {
            None => {
                assert!(
                    !(hit && contract.reports()),
                    "{ctx}: a write, fsync or removal failed, but every operation reported success"
                );
                assert!(
                    env.begin().is_ok(),
                    "{ctx}: no error came back, but the environment is failed"
                );
            }
            Some(e) => {
                assert!(hit, "{ctx}: error without an injected fault: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains(home.to_str().unwrap()),
                    "{ctx}: the error names no file of the environment: {msg}"
                );
                let failed = matches!(env.begin().err(), Some(Error::Failed { .. }));
                // A commit or checkpoint that failed half way may have
                // written anything: only recovery may go on from there.
                let must_fail = contract == Contract::FailsEnvironment || r.durable_op;
                assert!(
                    failed || !must_fail,
                    "{ctx}: after {e} (in commit or checkpoint: {}): begin() is not refused with Error::Failed",
                    r.durable_op
                );
                if failed {
                    // Never a pretended success from now on, even once the
                    // disk works again: only recovery clears the state.
                    for healed in [false, true] {
                        if healed {
                            faulty.heal();
                        }
                        match env.checkpoint() {
                            Err(Error::Failed { .. }) => {}
                            other => panic!(
                                "{ctx}: after {e} (healed {healed}): checkpoint gave {other:?}, not Failed"
                            ),
                        }
                        assert!(
                            matches!(env.begin().err(), Some(Error::Failed { .. })),
                            "{ctx}: begin after {e} (healed {healed})"
                        );
                    }
                    assert!(
                        env.clone().close().is_err(),
                        "{ctx}: close reported success"
                    );
                }
            }
        }
    }
    drop(handles);
    drop(env);
    if power_loss {
        crash.power_loss(seed).unwrap();
    }
    let env = Env::open(home, options(p, None))
        .unwrap_or_else(|e| panic!("{ctx}: reopen with a sound file system: {e}"));
    let got = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: read after recovery: {e}"));
    // Without a power loss the OS kept every write that succeeded, so
    // commits that returned Ok are there even in nosync mode.
    let range = match (&err, power_loss) {
        (None, _) => r.done..=r.done,
        (Some(_), false) => r.done..=r.done + usize::from(r.in_doubt),
        (Some(_), true) => r.range(),
    };
    match_prefix(&got, &pl.states, range, ctx);
    env.close().unwrap();
    hit
}

/// How many times a fault-free run does `op` on paths `filter` accepts.
fn count(
    seed: u64,
    p: Params,
    op: Op,
    filter: impl Fn(&Path) -> bool + Send + Sync + 'static,
) -> u64 {
    let pl = plan(seed, p);
    let dir = scratch();
    let f = Arc::new(FaultyVfs::new(OsVfs::shared()));
    f.set_filter(filter);
    let env = Env::open(dir.path(), options(p, Some(f.clone()))).unwrap();
    let mut r = Reached::default();
    let mut h = HashMap::new();
    assert!(execute(&env, &pl.steps, p, &mut r, &mut h, "count").is_none());
    drop(h);
    drop(env);
    f.counts().get(op)
}

const FAULT_PARAMS: Params = Params {
    page_size: 512,
    steps: 25,
    nosync: false,
};

#[test]
fn a_failed_log_fsync_fails_the_commit_and_the_environment() {
    let seed = 0xf5_0001;
    let syncs = count(seed, FAULT_PARAMS, Op::Sync, is_log);
    assert!(syncs > 10, "{syncs} log fsyncs");
    let mut hits = 0;
    for n in 1..=syncs {
        for power_loss in [false, true] {
            let ctx = format!("log fsync {n}/{syncs}, power loss {power_loss}");
            hits += usize::from(fault_case(
                seed,
                FAULT_PARAMS,
                power_loss,
                Contract::FailsEnvironment,
                &ctx,
                |f| {
                    f.set_filter(is_log);
                    f.fail_nth(Op::Sync, n);
                },
            ));
        }
    }
    eprintln!("failed log fsync: {} cases, {hits} hit", syncs * 2);
}

#[test]
fn a_failed_data_write_fails_checkpoint_eviction_and_bulk_commit() {
    let seed = 0xda_0001;
    let writes = count(seed, FAULT_PARAMS, Op::Write, is_data);
    assert!(writes > 10, "{writes} data writes");
    let mut cases = 0;
    for n in 1..=writes {
        for power_loss in [false, true] {
            let ctx = format!("data write {n}/{writes}, power loss {power_loss}");
            fault_case(
                seed,
                FAULT_PARAMS,
                power_loss,
                Contract::FailsEnvironment,
                &ctx,
                |f| {
                    f.set_filter(is_data);
                    f.fail_nth(Op::Write, n);
                },
            );
            // A short (torn) data write: half a page reaches the file.
            let ctx = format!("short data write {n}/{writes}, power loss {power_loss}");
            fault_case(
                seed,
                FAULT_PARAMS,
                power_loss,
                Contract::FailsEnvironment,
                &ctx,
                |f| {
                    f.set_filter(is_data);
                    f.short_write_nth(n, 256);
                },
            );
            cases += 2;
        }
    }
    let syncs = count(seed, FAULT_PARAMS, Op::Sync, is_data);
    for n in 1..=syncs {
        let ctx = format!("data fsync {n}/{syncs}");
        fault_case(
            seed,
            FAULT_PARAMS,
            true,
            Contract::FailsEnvironment,
            &ctx,
            |f| {
                f.set_filter(is_data);
                f.fail_nth(Op::Sync, n);
            },
        );
        cases += 1;
    }
    eprintln!("failed data writes and fsyncs: {cases} cases");
}

#[test]
fn enospc_and_short_log_writes_fail_the_commit_and_the_environment() {
    let seed = 0xe5_0001;
    let p = FAULT_PARAMS;
    let writes = count(seed, p, Op::Write, is_log);
    let mut cases = 0;
    // A full disk at many byte budgets (the log grows by records).
    for budget in (40..40_000).step_by(997) {
        for power_loss in [false, true] {
            let ctx = format!("ENOSPC after {budget} log bytes, power loss {power_loss}");
            fault_case(seed, p, power_loss, Contract::FailsEnvironment, &ctx, |f| {
                f.set_filter(is_log);
                f.enospc_after(budget);
            });
            cases += 1;
        }
    }
    for n in 1..=writes {
        let ctx = format!("short log write {n}/{writes}");
        fault_case(seed, p, false, Contract::FailsEnvironment, &ctx, |f| {
            f.set_filter(is_log);
            f.short_write_nth(n, 13);
        });
        cases += 1;
    }
    eprintln!("ENOSPC and short log writes: {cases} cases ({writes} log writes)");
}

/// Names of the databases `plan` removes in committed transactions: the
/// removals whose failure must fail the environment.
fn committed_removals(pl: &Plan) -> Arc<Vec<String>> {
    let mut names = Vec::new();
    for st in &pl.steps {
        if let Step::Txn {
            abort: false, ops, ..
        } = st
        {
            for op in ops {
                if let TOp::Remove(d) = op {
                    names.push(d.clone());
                }
            }
        }
    }
    Arc::new(names)
}

#[test]
fn failed_directory_sync_and_remove_are_reported() {
    // Every directory fsync fails in turn: the operation that made it must
    // return the error (a database creation), and a commit or checkpoint
    // must also fail the environment. A removal of a removed database's
    // file fails in turn: the commit must fail the environment. Other
    // removals (an aborted creation's file, a bulk load's marker) are
    // best effort: nothing need be reported, but recovery must still give
    // a committed prefix.
    let p = FAULT_PARAMS;
    let is_removed_db = |removed: Arc<Vec<String>>| {
        move |path: &Path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| removed.iter().any(|r| r == n))
        }
    };
    // The first four workloads from 0xd1_0001 on that remove a database
    // and make best-effort removals too.
    let workloads: Vec<_> = (0xd1_0001..0xd1_0200)
        .map(|seed| (seed, committed_removals(&plan(seed, p))))
        .filter(|(_, r)| !r.is_empty())
        .map(|(seed, r)| {
            let db = count(seed, p, Op::Remove, is_removed_db(r.clone()));
            (seed, r, db, count(seed, p, Op::Remove, |_| true))
        })
        .filter(|(_, _, db, all)| *db > 0 && all > db)
        .take(4)
        .collect();
    assert_eq!(workloads.len(), 4, "too few workloads remove databases");
    let (mut cases, mut hits, mut aimed) = (0, 0, 0);
    for (seed, removed, db_removes, removes) in workloads {
        let dirsyncs = count(seed, p, Op::SyncDir, |_| true);
        assert!(dirsyncs > 3, "seed {seed:#x}: {dirsyncs} directory fsyncs");
        for n in 1..=dirsyncs {
            let ctx = format!("seed {seed:#x}: directory fsync {n}/{dirsyncs}");
            hits += usize::from(fault_case(seed, p, true, Contract::Reported, &ctx, |f| {
                f.fail_nth(Op::SyncDir, n)
            }));
        }
        for n in 1..=db_removes {
            let ctx =
                format!("seed {seed:#x}: removal of a removed database's file {n}/{db_removes}");
            let only = is_removed_db(removed.clone());
            hits += usize::from(fault_case(
                seed,
                p,
                true,
                Contract::FailsEnvironment,
                &ctx,
                move |f| {
                    f.set_filter(only.clone());
                    f.fail_nth(Op::Remove, n)
                },
            ));
        }
        for n in 1..=removes {
            let ctx = format!("seed {seed:#x}: remove {n}/{removes}");
            fault_case(seed, p, true, Contract::MayPass, &ctx, |f| {
                f.fail_nth(Op::Remove, n)
            });
        }
        aimed += dirsyncs + db_removes;
        cases += dirsyncs + db_removes + removes;
    }
    assert_eq!(hits as u64, aimed, "a fault missed its target");
    eprintln!("directory fsync and remove faults: {cases} cases");
}

// ---------------------------------------------------------------------------
// Regressions found by the tests above.
// ---------------------------------------------------------------------------

#[test]
fn a_power_loss_while_recovery_cuts_the_log_leaves_no_gap() {
    // Regression: recovery cut the log by removing the files after its end
    // that held a batch without a commit, then truncating, then one
    // directory fsync; a torn last file (a rotation's new file, durable by
    // name but empty) was left for the log's open to remove afterwards.
    // A power loss between the two (or one that kept the removal of an
    // earlier file but not of a later one: a file system may persist any
    // of several unsynced removals) left log files N and N+2 without N+1,
    // and every later recovery failed with "log file missing: the log has
    // a gap" (found by torture_power_loss, seed 0x7000000c, cut 311, a
    // second power loss 4 operations into recovery). Now recovery removes
    // every later file, the last one first, each removal durable before
    // the next.
    let dir = scratch();
    let home = dir.path();
    let mut o = EnvOptions::create();
    o.page_size = Some(512);
    o.lg_max = Some(libcore::testing::log::MIN_LG_MAX);
    o.serve_requests = false;
    let env = Env::open(home, o.clone()).unwrap();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("g.db", None).unwrap();
        t.put(&db, b"kept", b"1").unwrap();
        t.commit().unwrap();
        db
    };
    // T: a batch over three log files, its commit record in the last.
    let start = env.log_end();
    let mut t = env.begin().unwrap();
    for i in 0..12u32 {
        t.put(&db, format!("t{i:02}").as_bytes(), &[i as u8; 700])
            .unwrap();
    }
    let commit = t.commit().unwrap();
    assert!(commit.file >= start.file + 2, "T spans {start} to {commit}");
    drop(env);
    // The power loss kept T's records but not its commit record, and the
    // name of a new log file but none of its bytes.
    let last = home.join(format!("log.{:010}", commit.file));
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(u64::from(commit.offset)).unwrap();
    drop(f);
    std::fs::write(home.join(format!("log.{:010}", commit.file + 1)), b"").unwrap();
    let before = copy_env(home);
    // Count the recovery's operations, then cut the power at each of them.
    let count = copy_env(before.path());
    let counter = CrashVfs::new(count.path());
    let mut oc = o.clone();
    oc.vfs = Some(counter.clone());
    drop(Env::open(count.path(), oc).unwrap());
    let ops = counter.mutations();
    for cut in 0..=ops {
        for seed in 0..4 {
            let case = copy_env(before.path());
            let crash = CrashVfs::new(case.path());
            crash.crash_after(cut);
            let mut oc = o.clone();
            oc.vfs = Some(crash.clone());
            if let Ok(env) = Env::open(case.path(), oc) {
                drop(env);
            }
            if seed == 0 {
                crash.power_loss_untorn().unwrap();
            } else {
                crash.power_loss(seed).unwrap();
            }
            let ctx = format!("power lost {cut} operations into recovery (seed {seed})");
            let env = Env::open(case.path(), o.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let got = read_state(&env).unwrap();
            assert_eq!(got["g.db"].len(), 1, "{ctx}: T is back, or kept is gone");
            env.close().unwrap();
        }
    }
}

#[test]
fn recovery_replays_changes_to_a_database_removed_after_the_checkpoint() {
    // Regression: a database named by the last checkpoint, changed after it
    // and then removed, made normal recovery fail with "page image of the
    // wrong size": the file is gone from disk, so recovery could not read
    // its page size from the meta page, took it as 0 and refused the first
    // page image of the file (before it reached the removal that makes the
    // image moot). Any crash after such a removal left an environment that
    // could not be opened at all (found by power_loss_page_512, seed
    // 0x5120003, even without a power loss).
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let env = Env::open(home, EnvOptions::create()).unwrap();
    {
        let mut t = env.begin().unwrap();
        let a = t.create_db("a.db", Some(512)).unwrap();
        let b = t.create_db("b.db", None).unwrap();
        t.put(&a, b"k", b"1").unwrap();
        t.put(&b, b"k", b"1").unwrap();
        t.commit().unwrap();
    }
    env.checkpoint().unwrap();
    let a = env.open_db("a.db").unwrap();
    let mut t = env.begin().unwrap();
    t.put(&a, b"k", b"2").unwrap(); // a full page image after the redo point
    t.commit().unwrap();
    let mut t = env.begin().unwrap();
    t.remove_db(&a).unwrap();
    t.commit().unwrap();
    drop(env); // crash: recovery starts at the checkpoint, which names a.db
    let env = Env::open(home, EnvOptions::default()).unwrap();
    assert_eq!(env.db_names(), vec!["b.db".to_string()]);
    assert!(!home.join("a.db").exists());
    env.close().unwrap();
}

#[test]
fn a_crash_while_the_first_log_file_is_created_does_not_brick_the_environment() {
    // Regression: if the process died (or the disk filled up) while
    // `Env::open` was creating a new environment's first log file, the
    // directory was left with a `log.0000000001` shorter than its header.
    // Every later open then failed ("no log files, cannot position at
    // [1][40]"): recovery ignores a torn last file, found no log, and still
    // tried to read one. The environment had never been created, so the
    // torn file is now removed and the environment created afresh (found by
    // enospc_and_short_log_writes_fail_the_commit_and_the_environment).
    for keep in [0usize, 13, 39] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let f = FaultyVfs::os();
        // The first write to a log file (the owner lock's pid goes first).
        f.set_filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        });
        f.short_write_nth(1, keep);
        let mut o = EnvOptions::create();
        o.vfs = Some(f.clone());
        assert!(Env::open(home, o).is_err());
        assert!(home.join("log.0000000001").exists());
        // Without `create` it is still no environment.
        assert!(matches!(
            Env::open(home, EnvOptions::default()).err(),
            Some(Error::NotEnvironment { .. })
        ));
        let env = Env::open(home, EnvOptions::create()).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("x.db", None).unwrap();
        t.put(&db, b"k", b"v").unwrap();
        t.commit().unwrap();
        drop(env);
        let env = Env::open(home, EnvOptions::default()).unwrap();
        let db = env.open_db("x.db").unwrap();
        assert_eq!(env.get(&db, b"k").unwrap(), Some(b"v".to_vec()));
        env.close().unwrap();
    }
}

#[test]
fn stale_bulk_pages_of_a_lost_nosync_bulk_commit_never_shadow_later_commits() {
    // Regression: in nosync mode a bulk commit wrote its new pages straight
    // to the data file (stamped with the LSN its marker was about to get)
    // without first making the log before that marker durable. A power
    // loss then kept those pages but lost both the bulk transaction and
    // earlier nosync commits, so the log ended well before the pages' LSN.
    // The next transactions allocated the same page numbers and logged
    // them with *smaller* LSNs; after another crash, redo found the stale
    // bulk pages "newer" than those records and skipped them, bringing
    // back keys that were never committed and losing acknowledged ones
    // (found by power_loss_nosync, seed 0x77770203, cut 49: "overflow page
    // holds 141 bytes, chain needs 480"). Recovery now cuts each data file
    // after the last page its meta page counts.
    let dir = scratch();
    let home = dir.path();
    let crash = CrashVfs::new(home);
    let mut o = EnvOptions::create();
    o.nosync = Some(true);
    o.cache_size = Some(8 << 20);
    o.serve_requests = false;
    o.vfs = Some(crash.clone());
    let env = Env::open(home, o).unwrap();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("b.db", None).unwrap();
        for i in 0..50u32 {
            t.put(&db, format!("base{i:04}").as_bytes(), &[1u8; 50])
                .unwrap();
        }
        t.commit().unwrap();
        db
    };
    env.checkpoint().unwrap();
    // A: a large nosync commit (lost at the power loss).
    for round in 0..4u8 {
        let mut t = env.begin().unwrap();
        for i in 0..50u32 {
            t.put(&db, format!("base{i:04}").as_bytes(), &[round + 2; 300])
                .unwrap();
        }
        t.commit().unwrap();
    }
    // B: a bulk commit whose new pages reach the disk.
    {
        let mut t = env.begin_bulk().unwrap();
        for i in 0..300u32 {
            t.put(&db, format!("bulk{i:04}").as_bytes(), &[9u8; 100])
                .unwrap();
        }
        t.commit().unwrap();
    }
    drop(env);
    crash.power_loss(1).unwrap();
    // What survives must be a committed prefix: base only, A, or A and B.
    let mut o = EnvOptions::create();
    o.cache_size = Some(8 << 20);
    o.serve_requests = false;
    let env = Env::open(home, o.clone()).unwrap();
    let db = env.open_db("b.db").unwrap();
    let had_bulk = env.get(&db, b"bulk0000").unwrap().is_some();
    // C: durable commits that allocate pages (sync mode), then a crash
    // before any checkpoint writes them back.
    {
        let mut t = env.begin().unwrap();
        for i in 0..300u32 {
            t.put(&db, format!("cccc{i:04}").as_bytes(), &[7u8; 100])
                .unwrap();
        }
        t.commit().unwrap();
    }
    drop(env);
    let env = Env::open(home, o).unwrap();
    let db = env.open_db("b.db").unwrap();
    let got = read_state(&env).unwrap().remove("b.db").unwrap();
    for i in 0..300u32 {
        assert_eq!(
            got.get(format!("cccc{i:04}").as_bytes()),
            Some(&vec![7u8; 100]),
            "acknowledged key cccc{i:04} lost or wrong"
        );
        assert_eq!(
            got.contains_key(format!("bulk{i:04}").as_bytes()),
            had_bulk,
            "bulk key {i} came back from a lost commit"
        );
    }
    let _ = db;
    env.close().unwrap();
}

#[test]
fn a_transaction_with_a_failed_change_cannot_commit() {
    // Regression: a change that failed half way (a read error while a
    // B-tree split was under way, say) left its transaction's private
    // pages half changed, and `commit` still committed them when the
    // caller went on: a partial transaction, durable. Reads do not fail
    // the environment, so nothing else stopped it. Now the first failed
    // change marks the transaction, and `commit` aborts it with an error.
    let p = Params {
        page_size: 4096,
        steps: 150,
        nosync: true,
    };
    let seed = 0xaa_0001;
    let reads = count(seed, p, Op::Read, is_data);
    assert!(reads > 20, "{reads} data reads");
    let mut refused = 0;
    for n in (1..=reads).step_by((reads / 40).max(1) as usize) {
        let dir = scratch();
        let f = Arc::new(FaultyVfs::new(OsVfs::shared()));
        f.set_filter(is_data);
        f.fail_nth(Op::Read, n);
        let env = Env::open(dir.path(), options(p, Some(f.clone()))).unwrap();
        let pl = plan(seed, p);
        let mut handles: HashMap<String, Db> = HashMap::new();
        let mut done = 0;
        'steps: for st in &pl.steps {
            let Step::Txn { ops, abort, bulk } = st else {
                continue;
            };
            let mut t = if *bulk {
                env.begin_bulk().unwrap()
            } else {
                env.begin().unwrap()
            };
            let mut created = HashMap::new();
            for op in ops {
                let h = |d: &String| created.get(d).or_else(|| handles.get(d)).cloned().unwrap();
                let r = match op {
                    TOp::Put(d, k, v) => t.put(&h(d), k, v).map(|_| ()),
                    TOp::Del(d, k) => t.delete(&h(d), k).map(|_| ()),
                    TOp::Create(d, ps) => t.create_db(d, Some(*ps)).map(|db| {
                        created.insert(d.clone(), db);
                    }),
                    TOp::Remove(d) => t.remove_db(&h(d)),
                };
                if let Err(e) = r {
                    match t.commit() {
                        Err(Error::InvalidArgument(_)) => refused += 1,
                        other => {
                            panic!("read {n}: a change failed ({e}), then commit gave {other:?}")
                        }
                    }
                    break 'steps;
                }
            }
            if *abort {
                t.abort();
                continue;
            }
            // A read inside commit may fail too: then nothing is logged.
            if t.commit().is_err() {
                break;
            }
            done += 1;
            handles.extend(created);
            for op in ops {
                if let TOp::Remove(d) = op {
                    handles.remove(d);
                }
            }
        }
        drop(handles);
        env.close().unwrap();
        let env = Env::open(dir.path(), options(p, None)).unwrap();
        let got = read_state(&env).unwrap();
        match_prefix(&got, &pl.states, done..=done, &format!("read {n}"));
        env.close().unwrap();
    }
    assert!(refused > 0, "no change failed");
    eprintln!("{reads} data reads; {refused} transactions with a failed change refused to commit");
}

#[test]
fn pages_of_a_transaction_reach_disk_only_after_its_commit_record_is_durable() {
    // Regression: the write-ahead rule flushed the log only up to the LSN
    // of the page being written back (its page record). A transaction's
    // records are redone only when its commit record is read, and a batch
    // can cross a log rotation: when every page record of a nosync
    // transaction landed in older files (synced at rotation) and its
    // commit record alone in the new file, `flush(page LSN)` saw that
    // LSN already durable and returned without syncing the new file. A
    // checkpoint or an eviction then wrote the pages; a power loss kept
    // them and lost the commit, so the data file held a transaction that
    // recovery (redo only) treats as never committed: wrong data, or a
    // torn page no record repairs (found by power_loss_nosync, seed
    // 0x77771000, cut 122: "page 9: checksum mismatch"). Write-back now
    // flushes the whole log written so far.
    // The log file size decides where T's batch is cut; look for runs
    // where T's commit record starts a log file of its own.
    let run = |lg_max: u32, cut: Option<u64>| -> (tempfile::TempDir, Lsn, bool) {
        let dir = scratch();
        let home = dir.path();
        let crash = CrashVfs::new(home);
        let mut o = EnvOptions::create();
        o.nosync = Some(true);
        o.page_size = Some(512);
        o.lg_max = Some(lg_max);
        o.cache_size = Some(8 << 20);
        o.serve_requests = false;
        o.vfs = Some(crash.clone());
        let env = Env::open(home, o).unwrap();
        let db = {
            let mut t = env.begin().unwrap();
            let db = t.create_db("r.db", None).unwrap();
            t.put(&db, b"k", b"v").unwrap();
            t.commit().unwrap();
            db
        };
        env.checkpoint().unwrap();
        {
            // The leaf's image after the checkpoint: T changes it by a
            // byte range.
            let mut t = env.begin().unwrap();
            t.put(&db, b"k", b"w").unwrap();
            t.commit().unwrap();
        }
        let mut t = env.begin().unwrap();
        t.put(&db, b"t1", &[1u8; 20]).unwrap();
        t.put(&db, b"t2", &[2u8; 1100]).unwrap();
        let commit = t.commit().unwrap();
        let mut done = true;
        if let Some(k) = cut {
            crash.crash_after(k);
            done = env.checkpoint().is_ok();
            drop(env);
            crash.power_loss_untorn().unwrap();
        }
        (dir, commit, done)
    };
    let mut found = 0;
    for lg_max in 4096..4700 {
        let (_d, commit, _) = run(lg_max, None);
        if std::env::var_os("POWERLOSS_DEBUG").is_some() {
            eprintln!("lg_max {lg_max}: commit at {commit}");
        }
        if commit.offset != libcore::testing::log::FIRST_RECORD_OFFSET {
            continue;
        }
        found += 1;
        for k in 0.. {
            let (dir, commit, done) = run(lg_max, Some(k));
            let log = dir.path().join(format!("log.{:010}", commit.file));
            let kept = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
            let commit_durable = kept > u64::from(commit.offset);
            let env = Env::open(dir.path(), EnvOptions::default()).unwrap();
            let ctx = format!("lg_max {lg_max}, power lost after {k} steps of the checkpoint");
            let got = read_state(&env).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let t = &got["r.db"];
            assert!(t[&b"k"[..]] == b"v" || t[&b"k"[..]] == b"w", "{ctx}");
            let has = t.contains_key(&b"t2"[..]);
            if std::env::var_os("POWERLOSS_DEBUG").is_some() {
                eprintln!("{ctx}: commit {commit} kept {kept} has {has}");
            }
            assert!(
                commit_durable || !has,
                "{ctx}: the transaction's pages reached the disk before its commit record"
            );
            assert_eq!(t.contains_key(&b"t1"[..]), has, "{ctx}: half a transaction");
            if has {
                assert_eq!(t[&b"t2"[..]], vec![2u8; 1100], "{ctx}");
            }
            env.close().unwrap();
            if done {
                break;
            }
        }
    }
    assert!(
        found > 0,
        "no log size put the commit record alone in a new file"
    );
    eprintln!("{found} layouts with the commit alone in a new file");
}

/// The seeding these workloads were written with (kept so a recorded
/// failing seed still replays).
fn rng(seed: u64) -> Rng {
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

#[test]
fn a_power_loss_during_recovery_of_a_transaction_too_big_to_hold_keeps_it_whole() {
    // Recovery held a whole transaction in memory until its commit and
    // applied it before writing anything back; now a transaction over the
    // batch limit (4 MiB) is read again from the log at its commit, and
    // replayed pages are written back whenever they pass 16 MiB, in the
    // middle of the transaction. Those writes reach the data files before
    // recovery ends, so a power loss there must still leave a state that
    // the next recovery turns into the whole transaction: never part of it.
    let dir = scratch();
    let home = dir.path();
    let mut o = EnvOptions::create();
    o.serve_requests = false;
    let value = |j: u32| {
        let mut v = vec![(j % 251) as u8; 4000];
        v[..4].copy_from_slice(&j.to_le_bytes());
        v
    };
    let env = Env::open(home, o.clone()).unwrap();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("g.db", None).unwrap();
        t.put(&db, b"kept", b"1").unwrap();
        t.commit().unwrap();
        db
    };
    env.checkpoint().unwrap();
    // The data file as of the checkpoint: the crash comes before any page
    // of the big transaction is written back, so redo replays all of it.
    let before_big = std::fs::read(home.join("g.db")).unwrap();
    let mut t = env.begin().unwrap();
    for j in 0..5000u32 {
        t.put(&db, format!("b{j:05}").as_bytes(), &value(j))
            .unwrap();
    }
    t.commit().unwrap();
    drop(env);
    std::fs::write(home.join("g.db"), &before_big).unwrap();
    let before = copy_env(home);
    let count = copy_env(before.path());
    let counter = CrashVfs::new(count.path());
    let mut oc = o.clone();
    oc.vfs = Some(counter.clone());
    drop(Env::open(count.path(), oc).unwrap());
    let ops = counter.mutations();
    assert!(
        ops > 4,
        "recovery wrote back in several steps: {ops} operations"
    );
    for cut in 0..=ops {
        let case = copy_env(before.path());
        let crash = CrashVfs::new(case.path());
        crash.crash_after(cut);
        let mut oc = o.clone();
        oc.vfs = Some(crash.clone());
        if let Ok(env) = Env::open(case.path(), oc) {
            drop(env);
        }
        crash.power_loss(cut).unwrap();
        let ctx = format!("power lost {cut} of {ops} operations into recovery");
        let env = Env::open(case.path(), o.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let got = read_state(&env).unwrap();
        let g = &got["g.db"];
        assert_eq!(g.len(), 5001, "{ctx}");
        for j in [0u32, 2500, 4999] {
            assert_eq!(g[format!("b{j:05}").as_bytes()], value(j), "{ctx}: b{j:05}");
        }
        env.close().unwrap();
    }
}
