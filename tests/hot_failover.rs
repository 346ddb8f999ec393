//! The hot-failover procedures of shared/hot-failover.md, run as an operator
//! runs them, while a writer (tests/writer.rs) commits continuously with
//! periodic checkpoints. Every copy is recovered and checked record by
//! record (DESIGN.md invariant 3): it must hold exactly the transactions
//! 1..L for some L at least as large as what was acknowledged when the
//! backup began, and a last update at rest must equal the primary.

use crate::common::{self, cmd, workload, writer_exe};
use libcore::Error;
use libcore::{scan, Env, EnvOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running writer process and the highest transaction it acknowledged.
pub struct Writer {
    child: Child,
    pub acked: Arc<AtomicU64>,
}

impl Writer {
    pub fn start(home: &Path, extra: &[&str]) -> Writer {
        let mut child = Command::new(writer_exe())
            .arg(home)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the writer example (cargo builds it for tests)");
        let out = child.stdout.take().unwrap();
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                    a.store(n, Ordering::SeqCst);
                }
            }
        });
        Writer { child, acked }
    }

    /// Waits until at least `n` transactions are acknowledged.
    pub fn wait_for(&self, n: u64) {
        let start = Instant::now();
        while self.acked.load(Ordering::SeqCst) < n {
            assert!(start.elapsed() < Duration::from_secs(60), "writer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// SIGKILL: the writer dies without closing, like a crash.
    pub fn kill(mut self) -> u64 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(20));
        self.acked()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Every pair of every database, read through a read-only view (which
/// replays the log in memory and never changes the directory).
pub fn contents(home: &Path) -> Contents {
    for _ in 0..20 {
        match try_contents(home) {
            Ok(c) => return c,
            Err(Error::SnapshotMoved) => continue,
            Err(e) => panic!("{}: {e}", home.display()),
        }
    }
    panic!("{}: never got a stable read", home.display());
}

fn try_contents(home: &Path) -> libcore::Result<Contents> {
    let env = Env::open(home, EnvOptions::read_only())?;
    let mut out = Contents::new();
    for name in env.db_names() {
        let db = env.open_db(&name)?;
        let mut m = BTreeMap::new();
        scan(&env, &db, |k, v| {
            m.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        out.insert(name, m);
    }
    Ok(out)
}

/// Checks that `home` holds exactly transactions 1..L of the workload and
/// returns L.
pub fn check_prefix(home: &Path) -> u64 {
    let c = contents(home);
    let last: u64 = c
        .get("b.db")
        .and_then(|b| b.get(&b"last"[..]))
        .map(|v| String::from_utf8_lossy(v).parse().unwrap())
        .unwrap_or(0);
    let a = c.get("a.db").cloned().unwrap_or_default();
    assert_eq!(
        a.len() as u64,
        last,
        "{}: a.db has {} keys but b.db says {last}: not one commit point",
        home.display(),
        a.len()
    );
    for (i, (k, v)) in a.iter().enumerate() {
        let j = i as u64 + 1;
        assert_eq!(k, &workload::key(j), "{}: key {j}", home.display());
        assert_eq!(v, &workload::value(j), "{}: value {j}", home.display());
    }
    last
}

fn backup(home: &Path, bk: &Path, update: bool) {
    let mut c = cmd("db_hotbackup");
    c.arg("-h").arg(home).arg("-b").arg(bk);
    if update {
        c.arg("-u");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "db_hotbackup{} failed: {}",
        if update { " -u" } else { "" },
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hotbackup_and_updates_under_load_match_the_primary() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-i", "1", "-c", "150", "--lg-max", "65536"]);
    w.wait_for(300);
    let before = w.acked();
    backup(&prim, &bk, false);
    let mut last = check_prefix(&bk);
    assert!(
        last >= before,
        "backup holds {last}, but {before} were acknowledged before it began"
    );
    for round in 0..4 {
        w.wait_for(last + 200);
        let before = w.acked();
        backup(&prim, &bk, true);
        let now = check_prefix(&bk);
        assert!(
            now >= before,
            "round {round}: update holds {now}, {before} acknowledged before it"
        );
        assert!(now >= last);
        last = now;
    }
    let final_acked = w.kill();
    backup(&prim, &bk, true);
    let at_rest = check_prefix(&bk);
    assert!(at_rest >= final_acked);
    assert_eq!(
        contents(&bk),
        contents(&prim),
        "a last -u at rest equals the primary"
    );
    let out = cmd("db_verify")
        .arg("-h")
        .arg(&bk)
        .args(["a.db", "b.db"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Verification of a.db succeeded.\nVerification of b.db succeeded.\n"
    );
    // The backup's manifest names every file with its checksum.
    let m = libcore::testing::manifest::Manifest::read(&libcore::OsVfs::shared(), &bk)
        .unwrap()
        .unwrap();
    assert!(m.end > m.start);
    assert!(m.files.iter().any(|f| f.name == "a.db"));
    // Failing over: the first owner of the copy starts a log file of its
    // own and the directory stops being a backup `-u` could extend.
    let logs_before = log_count(&bk);
    let w2 = Writer::start(&bk, &["-n", "5"]);
    w2.wait_for(at_rest + 5);
    drop(w2);
    let logs_after = log_count(&bk);
    assert_eq!(
        logs_after,
        logs_before + 1,
        "the new owner writes to a new log file"
    );
    assert!(!bk.join("__db.manifest").exists());
    let out = cmd("db_hotbackup")
        .args(["-u", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "-u refuses a failed-over copy");
}

/// `db_archive -d` runs in a loop while full backups run. (Between two
/// `-u` runs nothing protects the backup's last log file: removing it is
/// the gap of hot-failover.md procedure 2, and `-u` then fails naming it;
/// see `a_log_removed_by_hand_gives_a_named_gap_error`.)
#[test]
fn archive_removal_during_backups_does_not_break_them() {
    let t = common::home();
    let prim = t.path().join("prim");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-i", "1", "-c", "40", "--lg-max", "16384"]);
    w.wait_for(200);
    let stop = Arc::new(AtomicU64::new(0));
    let remover = {
        let prim = prim.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while stop.load(Ordering::SeqCst) == 0 {
                cmd("db_archive")
                    .arg("-d")
                    .arg("-h")
                    .arg(&prim)
                    .assert()
                    .success();
                runs += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
            runs
        })
    };
    // Full backups while logs are removed under them: each one holds a
    // lease on what it needs, so each succeeds and is a consistent prefix.
    let bk = t.path().join("bk");
    let mut last = 0;
    for _ in 0..4 {
        w.wait_for(last + 100);
        let before = w.acked();
        backup(&prim, &bk, false);
        let now = check_prefix(&bk);
        assert!(now >= before && now >= last);
        last = now;
    }
    stop.store(1, Ordering::SeqCst);
    assert!(remover.join().unwrap() > 0);
    w.kill();
}

#[test]
fn a_log_removed_by_hand_gives_a_named_gap_error() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-n", "400", "-c", "100", "--lg-max", "16384"]);
    w.wait_for(100);
    backup(&prim, &bk, false);
    w.wait_for(400);
    drop(w);
    let logs: Vec<String> = cmd("db_archive")
        .arg("-l")
        .arg("-h")
        .arg(&prim)
        .output()
        .map(|o| String::from_utf8(o.stdout).unwrap())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(logs.len() >= 3, "{logs:?}");
    // Remove, from the primary, a file the backup has not yet got.
    let bk_last = std::fs::read_dir(&bk)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("log."))
        .max()
        .unwrap();
    let victim = logs.iter().find(|l| **l > bk_last).unwrap().clone();
    std::fs::remove_file(prim.join(&victim)).unwrap();
    let before = snapshot(&bk);
    let out = cmd("db_hotbackup")
        .arg("-u")
        .arg("-h")
        .arg(&prim)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&victim), "error names the missing file: {err}");
    assert!(err.lines().count() <= 2, "{err}");
    // The previous backup is still a consistent prefix.
    let _ = before;
    check_prefix(&bk);
}

/// How many log files `dir` holds.
fn log_count(dir: &Path) -> usize {
    libcore::testing::log::list_log_files(&libcore::OsVfs::shared(), dir)
        .unwrap()
        .len()
}

/// Names and contents of the files in `dir`.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            m.insert(
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    m
}

#[test]
fn full_backup_refuses_foreign_files_and_the_home_itself() {
    let t = common::home();
    let prim = t.path().join("prim");
    std::fs::create_dir(&prim).unwrap();
    Writer::start(&prim, &["-n", "50"]).wait_for(50);
    std::thread::sleep(Duration::from_millis(100));
    let bk = t.path().join("bk");
    std::fs::create_dir(&bk).unwrap();
    std::fs::write(bk.join("notes.txt"), b"mine").unwrap();
    let out = cmd("db_hotbackup")
        .args(["-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read(bk.join("notes.txt")).unwrap(), b"mine");
    let src_before = snapshot(&prim);
    for inside in [prim.clone(), prim.join("sub")] {
        let out = cmd("db_hotbackup")
            .arg("-h")
            .arg(&prim)
            .arg("-b")
            .arg(&inside)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
    }
    assert_eq!(snapshot(&prim), src_before, "the source is unchanged");
}

/// After a bulk-mode transaction, whose new pages are not in the log, `-u`
/// copies the database it wrote again (then the log written meanwhile)
/// instead of making a silently wrong copy or asking for a full backup:
/// the backup then matches the primary, the bulk-loaded database included.
#[test]
fn update_copies_again_a_database_a_bulk_transaction_wrote() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-n", "100", "-c", "30"]);
    w.wait_for(100);
    drop(w);
    std::thread::sleep(Duration::from_millis(50));
    backup(&prim, &bk, false);
    let w = Writer::start(&prim, &["-n", "50", "--bulk-at", "120"]);
    w.wait_for(150);
    drop(w);
    std::thread::sleep(Duration::from_millis(50));
    let out = cmd("db_hotbackup")
        .args(["-v", "-u", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("wrote pages straight to c.db; copying it again"),
        "{said}"
    );
    assert_eq!(contents(&bk), contents(&prim));
    assert_eq!(contents(&bk)["c.db"].len(), 300);
    let out = cmd("db_verify")
        .arg("-h")
        .arg(&bk)
        .arg("c.db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression: the target was only compared with the home, so a backup
/// directory that was one of the source's data directories outside the
/// home (or, with -D, an absolute DB_CONFIG directory) had the source's
/// databases deleted by the clean step. Every directory the backup clears
/// must now be apart from every directory of the source.
#[test]
fn a_target_that_is_a_source_data_directory_is_refused() {
    let t = common::home();
    let prim = t.path().join("prim");
    let data = t.path().join("data");
    let logs = prim.join("logs");
    for d in [&prim, &data, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        prim.join("DB_CONFIG"),
        format!("set_data_dir {}\nset_lg_dir logs\n", data.display()),
    )
    .unwrap();
    Writer::start(&prim, &["-n", "30", "-c", "10"]).wait_for(30);
    std::thread::sleep(Duration::from_millis(100));
    let before = snapshot(&data);
    assert!(before.contains_key("a.db"));
    for args in [vec!["-b"], vec!["-D", "-b"]] {
        let out = cmd("db_hotbackup")
            .arg("-h")
            .arg(&prim)
            .args(&args)
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    // -D with an absolute data directory cannot rebuild the layout.
    let out = cmd("db_hotbackup")
        .arg("-D")
        .arg("-h")
        .arg(&prim)
        .arg("-b")
        .arg(t.path().join("bk"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(snapshot(&data), before, "the source's databases are intact");
    // A plain backup elsewhere works and is flat.
    backup(&prim, &t.path().join("bk2"), false);
    assert_eq!(check_prefix(&t.path().join("bk2")), 30);
}

#[test]
fn db_verify_reports_a_damaged_page_and_exits_1() {
    let t = common::home();
    let prim = t.path().join("prim");
    std::fs::create_dir(&prim).unwrap();
    Writer::start(&prim, &["-n", "200", "-c", "50"]).wait_for(200);
    std::thread::sleep(Duration::from_millis(200));
    let bk = t.path().join("bk");
    backup(&prim, &bk, false);
    let mut raw = std::fs::read(bk.join("a.db")).unwrap();
    raw[4096 + 3000] ^= 0x40;
    std::fs::write(bk.join("a.db"), raw).unwrap();
    let out = cmd("db_verify")
        .arg("-h")
        .arg(&bk)
        .arg("a.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Verification of a.db failed.\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Page 1: checksum mismatch"), "{err}");
}

/// DB_CONFIG data and log directories: without -D the backup is flat,
/// with -D the layout and DB_CONFIG are rebuilt; -d/-l name the
/// directories of an environment whose DB_CONFIG does not.
#[test]
fn directory_options_d_l_and_capital_d() {
    let t = common::home();
    let prim = t.path().join("prim");
    for d in ["data", "logs"] {
        std::fs::create_dir_all(prim.join(d)).unwrap();
    }
    std::fs::write(
        prim.join("DB_CONFIG"),
        "set_data_dir data\nset_lg_dir logs\n",
    )
    .unwrap();
    Writer::start(&prim, &["-n", "80", "-c", "20"]).wait_for(80);
    std::thread::sleep(Duration::from_millis(100));

    let flat = t.path().join("flat");
    backup(&prim, &flat, false);
    assert!(flat.join("a.db").exists() && flat.join("log.0000000001").exists());
    assert!(!flat.join("DB_CONFIG").exists());
    assert_eq!(check_prefix(&flat), 80);

    let kept = t.path().join("kept");
    cmd("db_hotbackup")
        .arg("-D")
        .arg("-h")
        .arg(&prim)
        .arg("-b")
        .arg(&kept)
        .assert()
        .success();
    assert!(kept.join("DB_CONFIG").exists());
    assert!(kept.join("data/a.db").exists() && kept.join("logs/log.0000000001").exists());
    assert_eq!(check_prefix(&kept), 80);
    cmd("db_hotbackup")
        .args(["-D", "-u", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&kept)
        .assert()
        .success();

    // The same environment told by -d and -l (DB_CONFIG moved away).
    std::fs::rename(prim.join("DB_CONFIG"), t.path().join("DB_CONFIG.away")).unwrap();
    let named = t.path().join("named");
    cmd("db_hotbackup")
        .arg("-d")
        .arg(prim.join("data"))
        .args(["-l", "logs", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&named)
        .assert()
        .success();
    assert_eq!(check_prefix(&named), 80);
    // -D with -d is a usage error.
    cmd("db_hotbackup")
        .args(["-D", "-d", "x", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(t.path().join("never"))
        .assert()
        .code(1);
    assert!(!t.path().join("never").exists());
}

/// `-c` asks the live owner for a checkpoint first (through the region),
/// so the backup starts from it.
#[test]
fn checkpoint_first_is_taken_by_the_live_owner() {
    let t = common::home();
    let prim = t.path().join("prim");
    std::fs::create_dir(&prim).unwrap();
    // No periodic checkpoints: only -c makes one.
    let w = Writer::start(&prim, &["-i", "1"]);
    w.wait_for(100);
    let before = libcore::testing::log::last_checkpoint(&libcore::OsVfs::shared(), &prim).unwrap();
    assert!(before.is_none());
    let bk = t.path().join("bk");
    let out = cmd("db_hotbackup")
        .args(["-c", "-v", "-h"])
        .arg(&prim)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": force checkpoint"));
    let after = libcore::testing::log::last_checkpoint(&libcore::OsVfs::shared(), &prim)
        .unwrap()
        .expect("the owner took a checkpoint");
    let m = libcore::testing::manifest::Manifest::read(&libcore::OsVfs::shared(), &bk)
        .unwrap()
        .unwrap();
    assert_eq!(
        m.checkpoint, after.0,
        "the backup started from that checkpoint"
    );
    assert!(check_prefix(&bk) >= 100);
    w.kill();
}

/// `-r`, our one addition to db_hotbackup's flags: a paced full backup and
/// a paced update are as complete as unpaced ones, and a rate that is not
/// a positive whole number of MiB/s is refused before anything is copied.
/// (How fast the pacing lets a copy go is a benchmark's business, not a
/// test's: `make bench`, row 6.)
#[test]
fn a_paced_backup_and_update_are_complete_and_a_bad_rate_is_refused() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-n", "100", "-c", "30"]);
    w.wait_for(100);
    drop(w);
    std::thread::sleep(Duration::from_millis(50));
    for bad in ["0", "-5", "1.5", "fast", "99999999999999"] {
        let out = cmd("db_hotbackup")
            .args(["-r", bad, "-h"])
            .arg(&prim)
            .arg("-b")
            .arg(&bk)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "-r {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("db_hotbackup: -r: {bad}: ")),
            "{err}"
        );
        assert!(!bk.exists(), "-r {bad}: nothing created");
    }
    let paced = |update: bool| {
        let mut c = cmd("db_hotbackup");
        c.args(["-r", "1000", "-h"]).arg(&prim).arg("-b").arg(&bk);
        if update {
            c.arg("-u");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    paced(false);
    assert_eq!(contents(&bk), contents(&prim));
    let w = Writer::start(&prim, &["-n", "50"]);
    w.wait_for(150);
    drop(w);
    std::thread::sleep(Duration::from_millis(50));
    paced(true);
    assert_eq!(check_prefix(&bk), 150);
    assert_eq!(contents(&bk), contents(&prim));
}
