//! Crash test of DESIGN.md invariant 2: a child process commits
//! transactions and acknowledges each one on stdout only after `commit`
//! returned; the test kills it with SIGKILL at random moments, reopens the
//! environment (normal recovery runs), and checks that the state is exactly
//! the result of a prefix of the commit order that includes every
//! acknowledged commit: nothing partial, nothing acknowledged lost.
//!
//! What a kill cannot show: the kernel's page cache survives a SIGKILL, so
//! every write the child made reaches the disk whether or not it was
//! fsynced. These tests would pass with every fsync of the engine removed.
//! The fsyncs the child relies on (the log flush at commit, the old file's
//! sync and the new file's header sync and directory sync at rotation, the
//! data-file syncs, directory sync and log flush of a checkpoint and of
//! eviction's write-ahead, the directory sync of a database creation) are
//! tested by the power-loss tests instead (powerloss.rs,
//! powerloss_concurrent.rs), whose `CrashVfs` loses whatever was not
//! synced.
//!
//! The child is this same test binary, re-run on the test that spawns it
//! with `CRASH_CHILD_HOME` set: that test then becomes the writer (see
//! `child_if_asked`). There is no separate child test that could pass on
//! its own. `CRASH_KILLS` sets the number of kills (default 50; `make
//! torture` runs 500).

use libcore::{scan, Env, EnvOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The deterministic content of transaction `j`: it writes `k{j}` (every
/// 7th value is overflow-sized), sets `last` to j, and deletes `k{j-5}`
/// when j is a multiple of 5.
fn apply_model(model: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>, j: u64) {
    model.insert(format!("k{j:08}").into_bytes(), val(j));
    model.insert(b"last".to_vec(), j.to_string().into_bytes());
    if j.is_multiple_of(5) && j >= 5 {
        model.remove(format!("k{:08}", j - 5).as_bytes());
    }
}

fn val(j: u64) -> Vec<u8> {
    let len = if j.is_multiple_of(7) {
        9000
    } else {
        (j % 300) as usize
    };
    (0..len).map(|i| (j as usize + i) as u8).collect()
}

fn options() -> EnvOptions {
    let mut o = EnvOptions::create();
    o.lg_max = Some(128 * 1024); // rotate often
    o.cache_size = Some(128 * 1024); // evict often
    o.lock_timeout = Duration::from_secs(30);
    o
}

/// The name of the variable that turns a run of the test binary into the
/// writer child.
const CHILD_HOME: &str = "CRASH_CHILD_HOME";

/// In a child (`CRASH_CHILD_HOME` set by `kill_and_check`), runs the
/// writer until it is killed, and never returns; in the test itself does
/// nothing.
fn child_if_asked() {
    let Some(home) = std::env::var_os(CHILD_HOME) else {
        return;
    };
    let home = Path::new(&home);
    let env = Env::open(home, options()).unwrap();
    let db = match env.open_db("c.db") {
        Ok(db) => db,
        Err(_) => {
            let mut t = env.begin().unwrap();
            let db = t.create_db("c.db", Some(1024)).unwrap();
            t.commit().unwrap();
            db
        }
    };
    let last: u64 = env
        .get(&db, b"last")
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
        .unwrap_or(0);
    let mut j = last + 1;
    loop {
        let mut t = env.begin().unwrap();
        t.put(&db, format!("k{j:08}").as_bytes(), &val(j)).unwrap();
        t.put(&db, b"last", j.to_string().as_bytes()).unwrap();
        if j.is_multiple_of(5) && j >= 5 {
            t.delete(&db, format!("k{:08}", j - 5).as_bytes()).unwrap();
        }
        t.commit().unwrap();
        println!("ACK {j}");
        if j.is_multiple_of(40) {
            env.checkpoint().unwrap();
        }
        j += 1;
    }
}

fn check_prefix(home: &Path, acked: u64) -> u64 {
    let env = Env::open(home, options()).unwrap();
    let db = env.open_db("c.db").unwrap();
    let last: u64 = env
        .get(&db, b"last")
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
        .unwrap_or(0);
    assert!(
        last >= acked,
        "acknowledged commit {acked} lost (state ends at {last})"
    );
    let mut model = std::collections::BTreeMap::new();
    for j in 1..=last {
        apply_model(&mut model, j);
    }
    let mut got = std::collections::BTreeMap::new();
    scan(&env, &db, |k, v| {
        got.insert(k.to_vec(), v.to_vec());
        Ok(())
    })
    .unwrap();
    assert!(
        got == model,
        "state after recovery is not the prefix ending at {last}: {} keys, expected {}",
        got.len(),
        model.len()
    );
    env.close().unwrap();
    last
}

#[test]
fn kill_writer_at_random_points() {
    child_if_asked();
    let kills: u32 = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    kill_and_check(kills, "kill_writer_at_random_points");
}

/// `make torture`: ten times the kills of the CI run.
#[test]
#[ignore = "slow: run by make torture"]
fn kill_writer_many_times() {
    child_if_asked();
    kill_and_check(500, "kill_writer_many_times");
}

/// Kills a writer child `kills` times. `test` is the name of the calling
/// test: the child runs that same test, which `child_if_asked` turns into
/// the writer.
fn kill_and_check(kills: u32, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut last = 0;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                test,
                "--exact",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_HOME, home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = 0u64;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ") {
                    acked = n.trim().parse().unwrap_or(acked);
                }
            }
            acked
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(20 + seed % 250);
        let start = Instant::now();
        while start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        let now = check_prefix(home, acked.max(last));
        assert!(
            now >= last,
            "round {round}: state went back from {last} to {now}"
        );
        last = now;
    }
    eprintln!("{kills} kills; the writer got to transaction {last}");
    assert!(
        last > u64::from(kills),
        "the writer made too little progress: {last}"
    );
}
