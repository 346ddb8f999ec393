//! Backups and copies that must refuse, wait or repair instead of hanging
//! or being silently wrong, through the binaries: a stopped process
//! holding the source's region lock, a copy that misses a bulk load's
//! pages, two `db_hotbackup -u` on one backup, a bulk load landing while
//! `-u` copies the log.

use crate::common::{self, cmd};
use crate::hot_failover::{check_prefix, contents, Writer};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Longer than anything here takes when it works: a command still running
/// after it is hung, and is killed so the test fails instead of hanging.
const HUNG: Duration = Duration::from_secs(120);

/// A process holding an exclusive `flock` on `file`, stopped with SIGSTOP
/// (as an operator's Ctrl-Z stops a tool); killed when dropped.
struct StoppedHolder {
    child: Child,
}

impl StoppedHolder {
    fn hold(file: &Path) -> StoppedHolder {
        // flock(1) takes the lock, and with -o keeps it only in itself
        // while `sh` says so and waits on its stdin.
        let mut child = Command::new("flock")
            .arg("-o")
            .arg(file)
            .args(["sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock(1) (util-linux)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        signal(child.id(), "STOP");
        StoppedHolder { child }
    }
}

impl Drop for StoppedHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Runs one of our tools, failing the test if it hangs.
fn run(tool: &str, args: &[&str], home: &Path) -> std::process::Output {
    let out = cmd(tool)
        .args(args)
        .arg("-h")
        .arg(home)
        .timeout(HUNG)
        .output()
        .unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
    assert!(
        out.status.code().is_some(),
        "{tool} {args:?} hung and was killed"
    );
    out
}

/// Regression (issue 9, defect 5): every access to the region file took
/// its `flock` with a wait without bound. A tool stopped while holding it
/// (Ctrl-Z at the wrong microsecond, or a debugger) hung the owner's next
/// checkpoint, and with it every commit behind the checkpoint, and every
/// other tool. The owner now never waits for the region (an update that
/// finds it locked is applied later), and a tool gives up after a few
/// seconds with one line naming the region file.
#[test]
fn a_stopped_process_holding_the_region_lock_hangs_nobody() {
    let t = common::home();
    let prim = t.path().join("prim");
    std::fs::create_dir(&prim).unwrap();
    let w = Writer::start(&prim, &["-i", "1", "-c", "20", "--lg-max", "16384"]);
    w.wait_for(60);
    let region = prim.join(libcore::testing::region::REGION_FILE);
    let holder = StoppedHolder::hold(&region);

    // The owner goes on committing through several checkpoints.
    let before = w.acked();
    w.wait_for(before + 100);

    // Tools that need the region fail with one line naming it.
    let target = t.path().join("unused-target");
    let target = target.to_str().unwrap();
    for (tool, args) in [
        ("db_checkpoint", vec!["-1"]),
        ("db_archive", vec!["-d"]),
        ("db_hotbackup", vec!["-b", target]),
    ] {
        let out = run(tool, &args, &prim);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tool}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.contains(&*region.to_string_lossy()) && first.contains("lock"),
            "{tool}: {err}"
        );
        let extra = if tool == "db_hotbackup" { 1 } else { 0 };
        assert_eq!(err.lines().count(), 1 + extra, "{tool}: {err}");
    }
    assert!(
        !Path::new(target).join("__db.manifest").exists(),
        "the refused backup made no backup"
    );
    // Tools that only read it fall back to the log.
    let out = run("db_archive", &["-l"], &prim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    drop(holder);
    let out = run("db_checkpoint", &["-1"], &prim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = w.acked();
    w.wait_for(n + 20);
    let last = w.kill();
    assert!(check_prefix(&prim) >= last);
}

/// `n` sorted `key\nvalue` lines for `db_load -T`. Loaded into a new
/// database they are a bulk load (pages straight to the file, only the meta
/// page and a marker in the log); into one that holds keys, every page
/// changed is logged.
fn bulk_input(prefix: &str, n: u32, len: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{prefix}{i:06}\n{}\n",
            "v".repeat(len + (i % 50) as usize)
        ));
    }
    s.into_bytes()
}

/// `db_load` of `n` sorted pairs into a new database: a bulk load.
fn load_new_db(home: &Path, db: &str, n: u32) {
    load(home, db, bulk_input("key", n, 150));
}

fn load(home: &Path, db: &str, input: Vec<u8>) {
    let out = cmd("db_load")
        .args(["-T", "-t", "btree", "-h"])
        .arg(home)
        .arg(db)
        .write_stdin(input)
        .timeout(HUNG)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies the files `db_archive` lists (`-s` databases, `-l` logs) from
/// `home` into `to`, with db_copy.
fn copy_listed(home: &Path, flag: &str, to: &Path) {
    let out = run("db_archive", &[flag, "-a"], home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!files.is_empty());
    let out = cmd("db_copy")
        .args(&files)
        .arg("-t")
        .arg(to)
        .timeout(HUNG)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn remove_logs(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("log.") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

/// Regression (issue 10, defect 3): procedure 1 by hand (copy the
/// databases, then the logs, then `db_recover -c`) with a `db_load` of a
/// new database between the two copies. The load writes its pages straight
/// to the database file and logs only a marker, so the copy had a meta
/// page pointing at pages it never got; `db_recover -c` said nothing and
/// exited 0, and only `db_verify` found the database broken. Recovery now
/// checks every bulk load it replays and fails with one line naming the
/// database and saying a fresh copy of it is needed; once the file is
/// copied again (after the load) the same recovery succeeds: a marker
/// whose pages are present is no error.
#[test]
fn recovery_of_a_copy_that_misses_a_bulk_load_names_the_database() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    std::fs::create_dir(&bk).unwrap();
    Writer::start(&prim, &["-n", "100", "-c", "40"]).wait_for(100);
    std::thread::sleep(Duration::from_millis(100));
    load_new_db(&prim, "old.db", 2000);
    // Step 1: the databases (old.db bulk-loaded before this copy).
    copy_listed(&prim, "-s", &bk);
    load_new_db(&prim, "new.db", 2000);
    // Steps 2-4: the logs, then catastrophic recovery.
    copy_listed(&prim, "-l", &bk);
    let out = run("db_recover", &["-c"], &bk);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&*bk.join("new.db").to_string_lossy()) && err.contains("fresh copy of new.db"),
        "{err}"
    );
    assert!(!err.contains("old.db"), "{err}");

    // Step 1 again for that file, then 2-4: the copy is whole.
    copy_listed(&prim, "-s", &bk);
    remove_logs(&bk);
    copy_listed(&prim, "-l", &bk);
    let out = run("db_recover", &["-c"], &bk);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("db_verify", &["new.db", "old.db"], &bk);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(contents(&bk), contents(&prim));
}

/// Regression (issue 10, defect 5): `db_hotbackup -u` read the backup's
/// manifest before it took the backup's lock, so of two updates started
/// together the second ran on the manifest the first was replacing: its
/// consistency point lay in a log file the first had just trimmed, and it
/// failed with a false "log file missing: the log has a gap here" (3 of
/// 20 rounds under a writer). The lock now comes first: the second waits
/// for the first and then updates from the new manifest, or, after 10
/// seconds, refuses naming the pid of the run in the way.
#[test]
fn two_updates_at_once_on_one_backup_wait_for_each_other() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    // Frequent checkpoints and small log files: every update trims the
    // backup's older log files.
    let w = Writer::start(&prim, &["-i", "1", "-c", "10", "--lg-max", "8192"]);
    w.wait_for(100);
    let out = run("db_hotbackup", &["-b", bk.to_str().unwrap()], &prim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = assert_cmd::cargo::cargo_bin("db_hotbackup");
    let mut last = 0;
    for round in 0..20 {
        w.wait_for(w.acked() + 40);
        let runs: Vec<Child> = (0..2)
            .map(|_| {
                Command::new(&exe)
                    .args(["-u", "-h"])
                    .arg(&prim)
                    .arg("-b")
                    .arg(&bk)
                    .env_remove("DB_HOME")
                    .env("LC_ALL", "C")
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let pids: Vec<u32> = runs.iter().map(|c| c.id()).collect();
        for (i, c) in runs.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let other = pids[1 - i];
            let waited_out = err.contains(&format!("in use by pid {other}"));
            assert!(
                out.status.success() || waited_out,
                "round {round}, run {i}: {err}"
            );
        }
        let now = check_prefix(&bk);
        assert!(now >= last, "round {round}: the backup went back");
        last = now;
    }
    w.kill();
}

/// Regression (issue 10, defect 2), through the binaries: a paced
/// `db_hotbackup -u -r 2` copies a large new log while a `db_load` of a
/// new database commits. The load writes its pages straight to the
/// database file and logs only a marker, which the update copied and
/// replayed: it said "hot backup completed" and `db_dump` of the new
/// database in the backup then failed. Now the update sees the marker in
/// the log it copied and copies the database again; the backup equals the
/// primary. (When the load lands too late to be in the copied log, the
/// round is tried again with another database.) Since a bulk load that
/// commits while a lease is held is logged in full (the update holds one),
/// the load is now whole in the copied log; the update may still copy the
/// database again (a load that committed before the lease). Either way the
/// backup must be whole and equal the primary; the marker path itself is
/// tested in libcore/tests/backup_update.rs with the lease taken away.
#[test]
fn a_paced_update_beside_a_load_of_a_new_database_copies_it() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    std::fs::write(prim.join("DB_CONFIG"), "set_lg_max 65536\n").unwrap();
    Writer::start(&prim, &["-n", "50"]).wait_for(50);
    std::thread::sleep(Duration::from_millis(100));
    let out = run("db_hotbackup", &["-b", bk.to_str().unwrap()], &prim);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = assert_cmd::cargo::cargo_bin("db_hotbackup");
    for attempt in 0..3 {
        // About 6 MiB of new log (a load into a database that holds keys
        // logs every page): three seconds of copying at 2 MiB/s.
        load(
            &prim,
            "a.db",
            bulk_input(&format!("x{attempt}-"), 6000, 1000),
        );
        let mut upd = Command::new(&exe)
            .args(["-v", "-u", "-r", "2", "-h"])
            .arg(&prim)
            .arg("-b")
            .arg(&bk)
            .env_remove("DB_HOME")
            .env("LC_ALL", "C")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(upd.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains("hot backup started"), "{first}");
        let copying = lines.next().unwrap().unwrap();
        assert!(copying.contains("copying"), "{copying}");
        let db = format!("new{attempt}.db");
        load_new_db(&prim, &db, 2000);
        let raced = upd.try_wait().unwrap().is_none();
        let said: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let out = upd.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{said:#?}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Whatever happened, the backup is whole: every database in it
        // verifies, one the update replayed equals the primary's, and an
        // update at rest makes the two equal.
        let copy = contents(&bk);
        let prim_now = contents(&prim);
        if let Some(c) = copy.get(&db) {
            assert_eq!(c, &prim_now[&db], "{said:#?}");
            assert!(raced, "the update copied the log after the load ended");
        }
        for name in copy.keys() {
            let out = run("db_verify", &[name.as_str()], &bk);
            assert!(
                out.status.success(),
                "{name}: {}\n{said:#?}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = run("db_hotbackup", &["-u", "-b", bk.to_str().unwrap()], &prim);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(contents(&bk), prim_now);
    }
}
