//! Checkpoints running while many threads commit, under power loss.
//!
//! A checkpoint used to hold the writer lock while it wrote every dirty
//! page back, so no commit could run beside it. Now it holds the lock only
//! to pick its redo point R and list the dirty pages, then writes them while
//! commits go on (writeback.rs). That opens three ways to lose data, each of
//! which this test would catch as a missing acknowledged commit, a torn
//! transaction, or a recovery that fails with a log sequence error:
//! * R passes a change that is not on disk (the page missed the snapshot,
//!   or was written before the change, or not fsynced before the record);
//! * an older image of a page lands after a newer one (checkpoint and
//!   eviction racing on one page);
//! * a page reaches disk before the log records of what it holds (the
//!   write-ahead rule, now with commits appending during write-back).
//!
//! Several threads commit small transactions (each puts its own key and
//! bumps a shared counter, so a partial or reordered transaction shows)
//! into a tiny cache with a small log, so eviction and log rotation run
//! beside the checkpoints; a thread checkpoints in a loop. The machine stops
//! after a chosen number of mutating file operations, the power fails
//! (`CrashVfs`'s strong model: any unsynced write or name may survive or
//! not, torn), the power fails again during the recovery that follows,
//! and normal recovery on the real file system must give: every
//! acknowledged commit, each thread's commits as a prefix of its own
//! sequence, and the counter equal to the number of keys.

use libcore::Db;
use libcore::SharedVfs;
use libcore::{scan, Env, EnvOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use testkit::{CrashVfs, Rng};

const THREADS: u64 = 6;
const PER_THREAD: u64 = 60;

fn options(vfs: Option<SharedVfs>) -> EnvOptions {
    EnvOptions {
        create: true,
        page_size: Some(512),
        lg_max: Some(16 * 1024),
        cache_size: Some(64 * 1024),
        vfs,
        serve_requests: false,
        ..EnvOptions::default()
    }
}

fn key(t: u64, i: u64) -> Vec<u8> {
    format!("t{t}-{i:05}").into_bytes()
}

fn value(t: u64, i: u64) -> Vec<u8> {
    // Some values span pages (overflow), most are small.
    let len = if (t + i).is_multiple_of(7) {
        700
    } else {
        10 + (i % 50) as usize
    };
    (0..len).map(|b| (t * 31 + i + b as u64) as u8).collect()
}

/// One commit: thread `t`'s key `i`, and the shared counter plus one.
fn commit_one(env: &Env, db: &Db, t: u64, i: u64) -> libcore::Result<()> {
    let mut txn = env.begin()?;
    let n: u64 = txn
        .get(db, b"count")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    txn.put(db, &key(t, i), &value(t, i))?;
    txn.put(db, b"count", (n + 1).to_string().as_bytes())?;
    txn.commit()?;
    Ok(())
}

/// Runs the workload on `vfs` until done or the machine stops; returns
/// how many commits of each thread were acknowledged.
fn run(env: &Env, db: &Db) -> Vec<u64> {
    let acked: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let ckps = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for t in 0..THREADS {
            let (acked, stop) = (&acked, &stop);
            sc.spawn(move || {
                for i in 0..PER_THREAD {
                    if stop.load(Ordering::Relaxed) || commit_one(env, db, t, i).is_err() {
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    acked[t as usize].store(i + 1, Ordering::SeqCst);
                }
            });
        }
        let (stop, ckps) = (&stop, &ckps);
        sc.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if env.checkpoint().is_err() {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                ckps.fetch_add(1, Ordering::Relaxed);
            }
        });
        // The checkpoint thread stops when the committers are done.
        sc.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let done = acked.iter().all(|a| a.load(Ordering::SeqCst) == PER_THREAD);
                if done {
                    stop.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
    });
    acked.iter().map(|a| a.load(Ordering::SeqCst)).collect()
}

/// Recovers `home` with the real file system and checks it against what
/// was acknowledged.
fn check(home: &std::path::Path, acked: &[u64], ctx: &str) {
    let env = Env::open(home, options(None)).unwrap_or_else(|e| panic!("{ctx}: recovery: {e}"));
    let db = env
        .open_db("a.db")
        .unwrap_or_else(|e| panic!("{ctx}: a.db: {e}"));
    let mut got: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    scan(&env, &db, |k, v| {
        got.insert(k.to_vec(), v.to_vec());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{ctx}: scan: {e}"));
    let count: u64 = got
        .remove(b"count".as_slice())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        count,
        got.len() as u64,
        "{ctx}: counter vs keys (torn transaction)"
    );
    for (t, &a) in acked.iter().enumerate() {
        let t = t as u64;
        let have = (0..PER_THREAD)
            .take_while(|&i| got.get(&key(t, i)) == Some(&value(t, i)))
            .count() as u64;
        assert!(
            have >= a,
            "{ctx}: thread {t}: {a} acknowledged, {have} survived"
        );
        let extra = got
            .keys()
            .filter(|k| k.starts_with(format!("t{t}-").as_bytes()))
            .count() as u64;
        assert_eq!(
            extra, have,
            "{ctx}: thread {t}: not a prefix of its commits"
        );
    }
    drop(env);
}

fn one_cut(seed: u64, cut: Option<u64>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let ctx = format!("seed {seed:#x} cut {cut:?}");
    let crash = CrashVfs::new(home);
    let env = Env::open(home, options(Some(crash.clone()))).unwrap();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        db
    };
    env.checkpoint().unwrap();
    let base = crash.mutations();
    if let Some(c) = cut {
        crash.crash_after(c);
    }
    let acked = run(&env, &db);
    if cut.is_none() {
        assert!(
            acked.iter().all(|&a| a == PER_THREAD),
            "{ctx}: a commit or checkpoint failed without a crash: {acked:?}"
        );
    }
    let used = crash.mutations() - base;
    drop(env); // the process dies with the machine
    crash.power_loss(seed).unwrap();
    // Recovery itself loses power, somewhere in its write-back, its log
    // cut or their fsyncs; the next recovery must still give it all.
    let mut rng = Rng::new(seed);
    crash.crash_after(rng.below(16));
    if let Ok(env) = Env::open(home, options(Some(crash.clone()))) {
        drop(env);
    }
    crash.power_loss(rng.next()).unwrap();
    check(home, &acked, &ctx);
    used
}

#[test]
fn checkpoints_beside_many_committers_keep_every_acknowledged_commit() {
    let cuts: u64 = std::env::var("POWERLOSS_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // A full run first: how many mutating operations the workload takes.
    let total = one_cut(1, None).max(1);
    let mut rng = Rng::new(0xc0ff_ee00);
    for n in 0..cuts {
        one_cut(0x100 + n, Some(1 + rng.below(total)));
    }
}
