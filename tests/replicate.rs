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

/// Ticks `m` until it has shipped all of `env`'s log and has at least
/// `bases` complete bases.
fn ship_all(m: &mut libcore::replica::master::Master, env: &libcore::Env, bases: u64) {
    let t = Instant::now();
    while m.status().newest_base < bases || m.shipped() < env.log_end() {
        assert!(t.elapsed() < Duration::from_secs(60), "the master is stuck");
        m.tick(&mut |_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn commit_keys(env: &libcore::Env, db: &libcore::Db, keys: std::ops::Range<u32>) {
    for i in keys {
        let mut t = env.begin().unwrap();
        t.put(db, format!("k{i:05}").as_bytes(), b"v").unwrap();
        t.commit().unwrap();
    }
}

/// `db_replicate -R -p time` restores the state at a time between two
/// known commits from the store alone: exactly the commits up to it, from
/// the newest base older than the time (a newer base exists); without
/// `-p` the newest state; a time before every base is one line and leaves
/// the directory as it was.
#[test]
fn a_restore_at_a_time_gives_exactly_the_commits_up_to_it() {
    use libcore::replica::master::{Master, MasterOptions};
    let d = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let p = d.path().join(n);
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("DB_CONFIG"), "repl_store ../the store\n").unwrap();
        p
    };
    let (primary, at, newest, early) = (dir("primary"), dir("at"), dir("newest"), dir("early"));
    std::fs::create_dir(d.path().join("the store")).unwrap();
    let env = libcore::Env::open(&primary, libcore::EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    commit_keys(&env, &db, 0..50);
    let vfs = libcore::OsVfs::shared();
    let opts = MasterOptions {
        digest_every: None,
        ..Default::default()
    };
    let store = libcore::replica::open_store(&vfs, &primary, &|spec| {
        libcore::replica::open_dir(&vfs, spec)
    })
    .unwrap();
    let mut m = Master::open(&vfs, &primary, store.clone(), &opts, &mut |_| {}).unwrap();
    ship_all(&mut m, &env, 1);
    m.finish(&mut |_| {}).unwrap();
    // A time strictly between the two batches' commit times (seconds).
    std::thread::sleep(Duration::from_millis(1100));
    let between = libcore::testing::timespec::now() as u64;
    std::thread::sleep(Duration::from_millis(1100));
    commit_keys(&env, &db, 50..80);
    // A second base, written after the time: the restore must not use it.
    let opts = MasterOptions {
        base_bytes: Some(1),
        ..opts
    };
    let mut m = Master::open(&vfs, &primary, store, &opts, &mut |_| {}).unwrap();
    ship_all(&mut m, &env, 2);
    m.finish(&mut |_| {}).unwrap();
    let keys = |home: &Path| -> Vec<Vec<u8>> {
        contents(home)["a.db"].keys().cloned().collect::<Vec<_>>()
    };
    let want =
        |n: u32| -> Vec<Vec<u8>> { (0..n).map(|i| format!("k{i:05}").into_bytes()).collect() };
    let stamp = libcore::testing::timefmt::recover_stamp(between);
    let out = cmd("db_replicate")
        .args(["-R", "-p", &stamp, "-h"])
        .arg(&at)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(keys(&at), want(50), "restored at {stamp}");
    let out = cmd("db_replicate")
        .arg("-R")
        .arg("-h")
        .arg(&newest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(keys(&newest), want(80));
    assert_eq!(contents(&newest), contents(&primary));
    // Before every base: refused, nothing written.
    let stamp = libcore::testing::timefmt::recover_stamp(between - 3600);
    let out = cmd("db_replicate")
        .args(["-R", "-p", &stamp, "-h"])
        .arg(&early)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no base in the store is older than"), "{err}");
    assert_eq!(
        std::fs::read_dir(&early).unwrap().count(),
        1,
        "only DB_CONFIG"
    );
    env.close().unwrap();
}

/// Every file under `dir` with its bytes (to show nothing changed).
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// A standby's home holds a backup manifest, so `db_hotbackup` took it
/// for a backup of its primary: `-u` moved its log and manifest under the
/// client, and a full backup replaced it. Both are refused now, in one
/// line, changing nothing; and a second client on a standby a client
/// keeps is refused (the client holds the standby's owner lock), where
/// before both applied segments and redid into the same files.
#[test]
fn backups_into_a_standby_and_a_second_client_are_refused() {
    use libcore::replica::client::{Client, ClientOptions};
    use libcore::replica::master::{Master, MasterOptions};
    let d = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let p = d.path().join(n);
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("DB_CONFIG"), "repl_store ../store\n").unwrap();
        p
    };
    let (primary, standby) = (dir("primary"), dir("standby"));
    std::fs::create_dir(d.path().join("store")).unwrap();
    let env = libcore::Env::open(&primary, libcore::EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    t.commit().unwrap();
    commit_keys(&env, &db, 0..20);
    let vfs = libcore::OsVfs::shared();
    let store = libcore::replica::open_store(&vfs, &primary, &|spec| {
        libcore::replica::open_dir(&vfs, spec)
    })
    .unwrap();
    let opts = MasterOptions {
        digest_every: None,
        ..Default::default()
    };
    let mut m = Master::open(&vfs, &primary, store.clone(), &opts, &mut |_| {}).unwrap();
    ship_all(&mut m, &env, 1);
    m.finish(&mut |_| {}).unwrap();
    let c = Client::open(
        &vfs,
        &standby,
        store,
        &ClientOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    drop(c);
    env.close().unwrap();
    let before = snapshot(&standby);
    for update in [true, false] {
        let mut c = cmd("db_hotbackup");
        c.arg("-h").arg(&primary).arg("-b").arg(&standby);
        if update {
            c.arg("-u");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "-u {update}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert_eq!(lines[1], "db_hotbackup: HOT BACKUP FAILED!", "{err}");
        assert!(
            lines[0].contains("is a standby kept by db_replicate"),
            "{err}"
        );
        assert!(err.contains(&standby.display().to_string()), "{err}");
        assert_eq!(snapshot(&standby), before, "-u {update}: nothing changed");
    }
    // Two clients on one standby.
    let first = Reaped(Some(start(&standby, false)));
    let first_pid = first.0.as_ref().unwrap().id();
    let lock = standby.join("__db.lock");
    let t = Instant::now();
    while std::fs::read_to_string(&lock).unwrap_or_default() != first_pid.to_string() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the client never took the standby's lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut second = std::process::Command::new(assert_cmd::cargo::cargo_bin("db_replicate"))
        .env_remove("DB_HOME")
        .arg("-h")
        .arg(&standby)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while second.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = second.kill();
            panic!("a second client runs beside the first");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("in use by pid {first_pid}")), "{err}");
    sigint(first.take());
}

/// A child killed if the test fails before it stops it.
struct Reaped(Option<Child>);

impl Reaped {
    fn take(mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            sigkill(c);
        }
    }
}
