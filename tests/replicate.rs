//! `db_replicate` end to end, as an operator runs it, under a live writer
//! (tests/writer.rs): master and client each killed with SIGKILL at random
//! points and restarted; then the primary is killed, the master stopped
//! (it ships what is durable), the client catches up and is stopped, and
//! the standby is recovered and opened as the new primary. The standby
//! must hold exactly transactions 1..L with every acknowledged one in
//! it, and equal the primary record by record. `REPLICATE_ROUNDS` sets
//! the kill rounds (more under `make torture`).

use crate::common::cmd;
use crate::hot_failover::{check_prefix, contents, Writer};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn rounds(default: u64) -> u64 {
    std::env::var("REPLICATE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn start(home: &Path, master: bool) -> Child {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("db_replicate"));
    c.env_remove("DB_HOME");
    if master {
        c.arg("-M");
    }
    c.arg("-h")
        .arg(home)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run db_replicate")
}

fn sigkill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// SIGINT, then the exit: a clean stop dies of the signal.
fn sigint(c: Child) {
    let pid = c.id() as i32;
    let out = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(out.success());
    let out = c.wait_with_output().unwrap();
    assert!(!out.status.success(), "stopped by SIGINT");
}

/// The `db_stat -r` line with `label`, its value.
fn stat_r(home: &Path, label: &str) -> String {
    let out = cmd("db_stat")
        .arg("-r")
        .arg("-h")
        .arg(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_suffix(&format!("\t{label}")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {label} line"))
}

fn digest(home: &Path) -> String {
    let out = cmd("db_replicate")
        .arg("-D")
        .arg("-h")
        .arg(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kill_rounds(n: u64) {
    let d = tempfile::tempdir().unwrap();
    let (primary, standby, store) = (
        d.path().join("primary"),
        d.path().join("standby"),
        d.path().join("the store"),
    );
    for p in [&primary, &standby, &store] {
        std::fs::create_dir(p).unwrap();
    }
    let config = format!("repl_store {}\n", store.display());
    std::fs::write(primary.join("DB_CONFIG"), &config).unwrap();
    std::fs::write(standby.join("DB_CONFIG"), &config).unwrap();
    let writer = Writer::start(&primary, &["-i", "2", "-c", "200", "--lg-max", "65536"]);
    writer.wait_for(20);
    let mut master = start(&primary, true);
    let mut client = start(&standby, false);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ n;
    for round in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 600));
        if round % 2 == 0 {
            sigkill(master);
            master = start(&primary, true);
        } else {
            sigkill(client);
            client = start(&standby, false);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // The primary dies; every commit it acknowledged is durable in its log.
    let acked = writer.kill();
    sigint(master);
    let shipped = stat_r(&primary, "Shipped LSN (end of the store's log)");
    let t = Instant::now();
    while stat_r(&standby, "Next LSN expected") != shipped {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the standby did not catch up with {shipped}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigint(client);
    assert_eq!(stat_r(&standby, "Last error"), "-");
    // At rest the standby equals the primary, digest and records.
    assert_eq!(digest(&standby), digest(&primary));
    assert_eq!(contents(&standby), contents(&primary));
    // Failover: recover the standby and open it as the new primary.
    let out = cmd("db_recover")
        .arg("-c")
        .arg("-h")
        .arg(&standby)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = check_prefix(&standby);
    assert!(
        last >= acked,
        "acknowledged {acked}, the standby holds {last}"
    );
    let env = libcore::Env::open(&standby, libcore::EnvOptions::default()).unwrap();
    let mut t = env.begin().unwrap();
    let a = env.open_db("a.db").unwrap();
    t.put(&a, b"after failover", b"1").unwrap();
    t.commit().unwrap();
    env.close().unwrap();
}

#[test]
fn master_and_client_killed_at_random_then_failover_under_load() {
    kill_rounds(rounds(6));
}

#[test]
#[ignore]
fn torture_master_and_client_killed_many_times() {
    kill_rounds(rounds(60));
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (home, store) = (d.path().join("h"), d.path().join("s"));
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir(&store).unwrap();
    // No repl_store in DB_CONFIG.
    let out = cmd("db_replicate").arg("-h").arg(&home).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no repl_store line"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // An empty store given to a client.
    std::fs::write(
        home.join("DB_CONFIG"),
        format!("repl_store {}\n", store.display()),
    )
    .unwrap();
    let out = cmd("db_replicate").arg("-h").arg(&home).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a replica store"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(&home).unwrap().collect();
    assert_eq!(left.len(), 1, "only DB_CONFIG: {left:?}");
    // A missing store directory.
    std::fs::write(home.join("DB_CONFIG"), "repl_store nowhere\n").unwrap();
    let out = cmd("db_replicate")
        .arg("-M")
        .arg("-h")
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    // Usage errors.
    for args in [
        &["-t", "x"][..],
        &["-T", "0"],
        &["-M", "-R"],
        &["-p", "2012"],
    ] {
        let out = cmd("db_replicate").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}
