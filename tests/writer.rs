//! A load generator for the end-to-end tests, `make demo` and the commit
//! benchmarks: it owns an environment and commits transactions.
//!
//! Transaction `j` puts `k<j>` (a value whose bytes depend on j; every 9th
//! is overflow-sized) into a.db and sets `last` to j in b.db.
//!
//! Counted mode (the default) commits until killed or until `-n` of them
//! are done, printing `ACK <n>` after each commit returns. Any committed
//! prefix is easy to recognise: a.db holds exactly k1..kL and b.db says L.
//!
//! `writer HOME [-n COUNT] [-i INTERVAL_MS | --rate PER_SECOND] [-c CHECKPOINT_EVERY] [--nosync] [--lg-max BYTES] [--bulk-at J]`
//!
//! With `--rate R` the k-th commit of the run begins no earlier than k/R
//! seconds after the first: a sustained rate (the replication lag bench),
//! catching up without a pause when a commit was late.
//!
//! With `--bulk-at J`, transaction J is a bulk-mode one that also loads
//! 300 records of 1000 bytes into c.db.
//!
//! `writer HOME --big MIB [--nosync]` commits one transaction of MIB MiB:
//! 1000-byte values under the next keys (k<j+1>.., `last` set after them),
//! the huge transaction of the recovery-memory bench.
//!
//! Timed mode, for benchmarks (`bench/bdb_env.c run` is the Berkeley DB
//! twin):
//!
//! `writer HOME --threads T --seconds S [--nosync] [--lg-max BYTES] [--readers R [--range N] [--reader-rate P] [--readers-from-memory]]`
//!
//! T threads share one `Env` and commit the same transactions for S
//! seconds (`--seconds` alone means one thread; `--threads` needs
//! `--seconds`). j comes from one atomic counter that continues after
//! b.db's `last`. No ACK lines; after the environment is closed one line
//! goes to stdout: `RATE <commits/s> <commits> <elapsed s>`, where elapsed
//! runs from the first begin to the last commit's return (open and close
//! are not timed: they are a recovery and a checkpoint, not commits).
//!
//! With `--readers R`, R more threads read while the writers commit, each
//! in a loop: take a snapshot, read N (`--range`, 100 by default) pairs of
//! a.db from a random key on, drop the snapshot (the snapshot-reader
//! bench row: commits/s with readers over without). `READS <count>`
//! follows the RATE line. `--reader-rate P` paces each reader to at most
//! P snapshots a second. `--readers-from-memory` makes the readers do the
//! same reads from a `BTreeMap` of 50,000 such pairs built before the
//! run, touching nothing of the environment: the same CPU load without
//! the engine, the anchor that tells what snapshot reads cost the writer
//! beyond the processor time they take from it.
//!
//! With T > 1 the prefix property is not promised: a thread takes j once it
//! holds the write transaction, so j follows the commit order while every
//! commit succeeds, but a failed transaction would leave a hole, and b.db's
//! `last` is only the j of whichever transaction committed last.

use libcore::{Env, EnvOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "common/workload.rs"]
mod workload;
use workload::{key, value};

const USAGE: &str = "usage: writer HOME [-n COUNT] [-i INTERVAL_MS | --rate PER_SECOND] [-c CHECKPOINT_EVERY] [--nosync] [--lg-max BYTES] [--bulk-at J]\n       writer HOME [--threads T] --seconds S [--nosync] [--lg-max BYTES] [--readers R [--range N] [--reader-rate P] [--readers-from-memory]]\n       writer HOME --big MIB [--nosync]";

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("writer: {msg}");
    std::process::exit(1);
}

fn usage(msg: &str) -> ! {
    eprintln!("writer: {msg}\n{USAGE}");
    std::process::exit(2);
}

/// The value after `flag`, parsed; a flag given with a missing or bad value
/// is a usage error rather than silently ignored.
fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1).map(|v| v.parse()) {
        Some(Ok(v)) => Some(v),
        _ => usage(&format!("{name} needs a valid number")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(home) = args.first() else {
        usage("no home directory given");
    };
    let count: u64 = flag(&args, "-n").unwrap_or(u64::MAX);
    let interval: u64 = flag(&args, "-i").unwrap_or(0);
    let rate: Option<f64> = flag(&args, "--rate");
    if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) || (rate.is_some() && interval > 0) {
        usage("--rate must be positive, and not given with -i");
    }
    let pace = Pace {
        interval: Duration::from_millis(interval),
        rate,
    };
    let ckp_every: u64 = flag(&args, "-c").unwrap_or(0);
    let bulk_at: Option<u64> = flag(&args, "--bulk-at");
    let threads: Option<usize> = flag(&args, "--threads");
    let seconds: Option<f64> = flag(&args, "--seconds");
    let timed = match (threads, seconds) {
        (None, None) => None,
        (Some(_), None) => usage("--threads needs --seconds"),
        (t, Some(s)) => {
            let t = t.unwrap_or(1);
            if t == 0 || !(s.is_finite() && s > 0.0) {
                usage("--threads must be at least 1 and --seconds positive");
            }
            Some((t, Duration::from_secs_f64(s)))
        }
    };
    let readers = Readers {
        threads: flag(&args, "--readers").unwrap_or(0),
        range: flag(&args, "--range").unwrap_or(100),
        rate: flag(&args, "--reader-rate"),
        from_memory: args.iter().any(|a| a == "--readers-from-memory"),
    };
    if readers.threads > 0 && timed.is_none() {
        usage("--readers needs --seconds");
    }
    if readers.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        usage("--reader-rate must be positive");
    }
    let mut opts = EnvOptions::create();
    opts.nosync = Some(args.iter().any(|a| a == "--nosync"));
    if let Some(m) = flag::<u32>(&args, "--lg-max") {
        opts.lg_max = Some(m);
    }
    let env = Env::open(std::path::Path::new(home), opts).unwrap_or_else(|e| die(e));
    let dbs = open_or_create(&env).unwrap_or_else(|e| die(e));
    let big: Option<u64> = flag(&args, "--big");
    let rate = match timed {
        Some((t, s)) => Some(timed_run(&env, &dbs, t, s, readers).unwrap_or_else(|e| die(e))),
        None if big.is_some() => {
            big_txn(&env, &dbs, big.unwrap_or(0)).unwrap_or_else(|e| die(e));
            None
        }
        None => {
            counted_run(&env, &dbs, count, pace, ckp_every, bulk_at).unwrap_or_else(|e| die(e));
            None
        }
    };
    if let Err(e) = env.close() {
        die(e);
    }
    if let Some((n, elapsed, reads)) = rate {
        let secs = elapsed.as_secs_f64();
        let per_sec = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        println!("RATE {} {} {:.3}", per_sec.round() as u64, n, secs);
        if readers.threads > 0 {
            println!("READS {reads}");
        }
    }
}

struct Dbs {
    a: libcore::Db,
    b: libcore::Db,
}

fn open_or_create(env: &Env) -> libcore::Result<Dbs> {
    if let (Ok(a), Ok(b)) = (env.open_db("a.db"), env.open_db("b.db")) {
        return Ok(Dbs { a, b });
    }
    let mut t = env.begin()?;
    let a = t.create_db("a.db", None)?;
    let b = t.create_db("b.db", None)?;
    t.commit()?;
    Ok(Dbs { a, b })
}

/// b.db's `last`: where this run's j continues.
fn last_j(env: &Env, dbs: &Dbs) -> libcore::Result<u64> {
    Ok(env
        .get(&dbs.b, b"last")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// How counted mode spaces its commits: a pause after each (`-i`), or a
/// schedule (`--rate`).
#[derive(Clone, Copy)]
struct Pace {
    interval: Duration,
    rate: Option<f64>,
}

/// Sleeps until the `k`-th event of a run at `rate` a second that began
/// at `start` is due (at once when it is late: a sustained rate).
fn sleep_until_due(start: Instant, k: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(k as f64 / rate);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

fn counted_run(
    env: &Env,
    dbs: &Dbs,
    count: u64,
    pace: Pace,
    ckp_every: u64,
    bulk_at: Option<u64>,
) -> libcore::Result<()> {
    let mut j = last_j(env, dbs)?;
    let stdout = std::io::stdout();
    let start = Instant::now();
    for k in 0..count {
        if let Some(r) = pace.rate {
            sleep_until_due(start, k, r);
        }
        j += 1;
        let mut t = if bulk_at == Some(j) {
            env.begin_bulk()?
        } else {
            env.begin()?
        };
        t.put(&dbs.a, &key(j), &value(j))?;
        if bulk_at == Some(j) {
            // A bulk load: enough new pages that some go straight to
            // the data file (and only a marker to the log).
            let c = match env.open_db("c.db") {
                Ok(c) => c,
                Err(_) => t.create_db("c.db", None)?,
            };
            for i in 0..300u32 {
                t.put(&c, format!("bulk{i:05}").as_bytes(), &[b'b'; 1000])?;
            }
        }
        t.put(&dbs.b, b"last", j.to_string().as_bytes())?;
        t.commit()?;
        let _ = writeln!(stdout.lock(), "ACK {j}");
        if ckp_every > 0 && j.is_multiple_of(ckp_every) {
            env.checkpoint()?;
        }
        if !pace.interval.is_zero() {
            std::thread::sleep(pace.interval);
        }
    }
    Ok(())
}

/// One transaction of `mib` MiB of 1000-byte values (`--big`).
fn big_txn(env: &Env, dbs: &Dbs, mib: u64) -> libcore::Result<()> {
    let mut j = last_j(env, dbs)?;
    let mut t = env.begin()?;
    for _ in 0..mib * 1_048_576 / 1000 {
        j += 1;
        t.put(&dbs.a, &key(j), &[b'a' + (j % 26) as u8; 1000])?;
    }
    t.put(&dbs.b, b"last", j.to_string().as_bytes())?;
    t.commit()?;
    Ok(())
}

/// Snapshot readers beside the timed writers (`--readers`, `--range`,
/// `--reader-rate`, `--readers-from-memory`).
#[derive(Clone, Copy)]
struct Readers {
    threads: usize,
    range: usize,
    /// Snapshots a second each reader takes at most.
    rate: Option<f64>,
    /// Read from `memory_pairs()` instead of the environment.
    from_memory: bool,
}

/// The pairs the from-memory readers read: as many as a few seconds of
/// commits put into a.db, built before the timed run.
fn memory_pairs() -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    (1..=50_000).map(|j| (key(j), value(j))).collect()
}

/// One reader thread: snapshot, `range` pairs of a.db from a key drawn
/// among those written so far, drop; until `stop` (or the same reads
/// from `memory`). Returns pairs read.
fn read_loop(
    env: &Env,
    dbs: &Dbs,
    readers: Readers,
    memory: Option<&std::collections::BTreeMap<Vec<u8>, Vec<u8>>>,
    seed: u64,
    next: &AtomicU64,
    stop: &AtomicBool,
) -> libcore::Result<u64> {
    let mut x = seed | 1;
    let mut pairs = 0;
    let start = Instant::now();
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(rate) = readers.rate {
            sleep_until_due(start, rounds, rate);
        }
        rounds += 1;
        // xorshift: a different start key each round, no dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let from = key(1 + x % next.load(Ordering::Relaxed).max(1));
        match memory {
            Some(m) => {
                for (k, v) in m.range(from..).take(readers.range) {
                    std::hint::black_box((k.clone(), v.clone()));
                    pairs += 1;
                }
            }
            None => {
                let snap = env.snapshot()?;
                for p in snap.range(&dbs.a, from..)?.take(readers.range) {
                    std::hint::black_box(p?);
                    pairs += 1;
                }
            }
        }
    }
    Ok(pairs)
}

/// `threads` threads commit until `span` has passed (while `readers` read);
/// returns the number of commits, the time from the start to the last
/// writer's end, and the pairs the readers read.
fn timed_run(
    env: &Env,
    dbs: &Dbs,
    threads: usize,
    span: Duration,
    readers: Readers,
) -> libcore::Result<(u64, Duration, u64)> {
    let next = AtomicU64::new(last_j(env, dbs)?);
    let commits = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let readers_stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = start + span;
    let mut elapsed = Duration::ZERO;
    let mut reads = 0;
    let memory = (readers.threads > 0 && readers.from_memory).then(memory_pairs);
    let results: Vec<libcore::Result<()>> = std::thread::scope(|sc| {
        let reading: Vec<_> = (0..readers.threads as u64)
            .map(|i| {
                let (next, readers_stop, memory) = (&next, &readers_stop, memory.as_ref());
                sc.spawn(move || read_loop(env, dbs, readers, memory, i + 1, next, readers_stop))
            })
            .collect();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| -> libcore::Result<()> {
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let mut t = env.begin()?;
                        // Taken under the write transaction: j follows the
                        // commit order (see the file comment).
                        let j = next.fetch_add(1, Ordering::Relaxed) + 1;
                        t.put(&dbs.a, &key(j), &value(j))?;
                        t.put(&dbs.b, b"last", j.to_string().as_bytes())?;
                        t.commit()?;
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let mut all: Vec<libcore::Result<()>> = handles
            .into_iter()
            .map(|h| {
                let r = h.join().unwrap_or_else(|_| die("a writer thread panicked"));
                if r.is_err() {
                    // One failure ends the run for everyone.
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .collect();
        elapsed = start.elapsed();
        readers_stop.store(true, Ordering::Relaxed);
        for h in reading {
            match h.join().unwrap_or_else(|_| die("a reader thread panicked")) {
                Ok(n) => reads += n,
                Err(e) => all.push(Err(e)),
            }
        }
        all
    });
    for r in results {
        r?;
    }
    Ok((commits.load(Ordering::Relaxed), elapsed, reads))
}
