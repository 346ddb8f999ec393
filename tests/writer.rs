//! A load generator for the end-to-end tests and `make demo`: it owns an
//! environment and commits transactions until killed or until `-n` of
//! them are done, printing `ACK <n>` after each commit returns.
//!
//! Transaction `j` puts `k<j>` (a value whose bytes depend on j; every 9th
//! is overflow-sized) into a.db and sets `last` to j in b.db, so any
//! committed prefix is easy to recognise: a.db holds exactly k1..kL and
//! b.db says L. Usage:
//!
//! `writer HOME [-n COUNT] [-i INTERVAL_MS] [-c CHECKPOINT_EVERY] [--nosync] [--lg-max BYTES] [--bulk-at J]`
//!
//! With `--bulk-at J`, transaction J is a bulk-mode one that also loads
//! 300 records of 1000 bytes into c.db.

use libcore::env::{Env, EnvOptions};
use std::io::Write;
use std::time::Duration;

#[path = "common/workload.rs"]
mod workload;
use workload::{key, value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(home) = args.first() else {
        eprintln!("usage: writer HOME [-n COUNT] [-i INTERVAL_MS] [-c CHECKPOINT_EVERY] [--nosync] [--bulk-at J]");
        std::process::exit(2);
    };
    let get = |flag: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let count = get("-n").unwrap_or(u64::MAX);
    let interval = get("-i").unwrap_or(0);
    let ckp_every = get("-c").unwrap_or(0);
    let bulk_at = get("--bulk-at");
    let mut opts = EnvOptions::create();
    opts.nosync = Some(args.iter().any(|a| a == "--nosync"));
    if let Some(m) = get("--lg-max") {
        opts.lg_max = Some(m as u32);
    }
    let env = match Env::open(std::path::Path::new(home), opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("writer: {e}");
            std::process::exit(1);
        }
    };
    let run = || -> libcore::Result<()> {
        let (a, b) = match (env.open_db("a.db"), env.open_db("b.db")) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                let mut t = env.begin()?;
                let a = t.create_db("a.db", None)?;
                let b = t.create_db("b.db", None)?;
                t.commit()?;
                (a, b)
            }
        };
        let mut j: u64 = env
            .get(&b, b"last")?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stdout = std::io::stdout();
        for _ in 0..count {
            j += 1;
            let mut t = if bulk_at == Some(j) {
                env.begin_bulk()?
            } else {
                env.begin()?
            };
            t.put(&a, &key(j), &value(j))?;
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
            t.put(&b, b"last", j.to_string().as_bytes())?;
            t.commit()?;
            let _ = writeln!(stdout.lock(), "ACK {j}");
            if ckp_every > 0 && j.is_multiple_of(ckp_every) {
                env.checkpoint()?;
            }
            if interval > 0 {
                std::thread::sleep(Duration::from_millis(interval));
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("writer: {e}");
        std::process::exit(1);
    }
    if let Err(e) = env.close() {
        eprintln!("writer: {e}");
        std::process::exit(1);
    }
}
