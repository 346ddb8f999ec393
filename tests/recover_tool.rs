//! `db_recover` end to end, through the binary: environments are built with
//! the libcore API in this process (dropping an `Env` without `close` is a
//! crash), then recovered by the tool and read back read-only.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use libcore::testing::log::LogCursor;
use libcore::testing::region::Region;
use libcore::testing::timespec::CivilTime;
use libcore::OsVfs;
use libcore::{Env, EnvOptions, Lsn};

use crate::common;

/// Every database of an environment: name -> key -> value.
type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn run(args: &[&str], home: &Path) -> Output {
    common::cmd("db_recover")
        .args(args)
        .arg("-h")
        .arg(home)
        .output()
        .expect("run db_recover")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 0, nothing on stderr; returns stdout.
fn ok(args: &[&str], home: &Path) -> String {
    let out = run(args, home);
    assert_eq!(
        out.status.code(),
        Some(0),
        "db_recover {args:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "db_recover {args:?}");
    text(&out.stdout)
}

/// Exit 1 with exactly one line on stderr and nothing on stdout; returns
/// the line.
fn fails(args: &[&str], home: &Path) -> String {
    let out = run(args, home);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "db_recover {args:?}: {err}");
    assert_eq!(text(&out.stdout), "", "db_recover {args:?}");
    assert!(
        err.starts_with("db_recover: ") && err.ends_with('\n') && err.lines().count() == 1,
        "db_recover {args:?}: not one error line: {err:?}"
    );
    err
}

fn create(home: &Path) -> Env {
    Env::open(home, EnvOptions::create()).expect("create environment")
}

/// One transaction putting `keys` (value: key reversed) into `db`, creating
/// the database first if it does not exist.
fn commit(env: &Env, db: &str, keys: impl IntoIterator<Item = String>) {
    let mut txn = env.begin().unwrap();
    let handle = match env.open_db(db) {
        Ok(h) => h,
        Err(_) => txn.create_db(db, None).unwrap(),
    };
    for k in keys {
        let v: String = k.chars().rev().collect();
        txn.put(&handle, k.as_bytes(), v.as_bytes()).unwrap();
    }
    txn.commit().unwrap();
}

fn keys(prefix: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    (0..n).map(move |i| format!("{prefix}-{i:05}"))
}

fn contents_of(env: &Env) -> Contents {
    let mut all = Contents::new();
    for name in env.db_names() {
        let db = env.open_db(&name).unwrap();
        let mut m = BTreeMap::new();
        libcore::scan(env, &db, |k, v| {
            m.insert(k.to_vec(), v.to_vec());
            Ok(())
        })
        .unwrap();
        all.insert(name, m);
    }
    all
}

/// What a read-only open sees, and how many pages it still had to replay
/// from the log (0 when recovery wrote everything to the data files).
fn read_back(home: &Path) -> (Contents, u64) {
    let env = Env::open(home, EnvOptions::read_only()).expect("read-only open");
    let replayed = env.recovery_outcome().pages_applied;
    (contents_of(&env), replayed)
}

/// The keys of one database, as text.
fn key_set(c: &Contents, db: &str) -> Vec<String> {
    c.get(db)
        .map(|m| m.keys().map(|k| text(k)).collect())
        .unwrap_or_default()
}

/// Every regular file of `dir` but the lock file, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "__db.lock")
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

fn names(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| pred(n))
        .collect();
    v.sort();
    v
}

fn log_names(dir: &Path) -> Vec<String> {
    names(dir, |n| n.starts_with("log."))
}

fn db_names(dir: &Path) -> Vec<String> {
    names(dir, |n| n.ends_with(".db"))
}

fn copy(from: &Path, to: &Path, files: &[String]) {
    for f in files {
        fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn log_end(home: &Path) -> Lsn {
    LogCursor::open(OsVfs::shared(), home)
        .unwrap()
        .end()
        .unwrap()
}

/// `secs` as a `-t` argument for a zone `offset` seconds east of UTC.
fn stamp(secs: i64, offset: i64) -> String {
    let t = CivilTime::from_unix_utc(secs + offset);
    format!(
        "{:04}{:02}{:02}{:02}{:02}.{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn now() -> i64 {
    libcore::testing::timespec::now()
}

/// Sleeps until the clock is past `secs`, so later commits carry a later
/// timestamp.
fn wait_past(secs: i64) {
    while now() <= secs {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a crash every committed transaction is back, written to the data
/// files (a read-only open has nothing left to replay), and the log holds
/// exactly the records it held before a torn tail: recovery cuts the tail
/// (and with it the newest file's preallocated zeros) and appends nothing.
#[test]
fn recovery_after_a_crash_has_every_committed_transaction() {
    let home = common::home();
    let env = create(home.path());
    commit(&env, "a.db", keys("one", 300));
    env.checkpoint().unwrap();
    commit(&env, "a.db", keys("two", 300));
    commit(&env, "b.db", keys("three", 50));
    let expected = contents_of(&env);
    drop(env); // the crash
    assert!(home.path().join("__db.001").exists());
    let logs_before: Vec<Vec<u8>> = log_names(home.path())
        .iter()
        .map(|n| fs::read(home.path().join(n)).unwrap())
        .collect();
    let dbs_before = snapshot(home.path());
    // A record torn by the crash where the records of the last log file
    // end (over the zeros of its preallocated tail).
    let last = home.path().join(log_names(home.path()).pop().unwrap());
    let end = libcore::testing::log::records_end(&OsVfs::shared(), &last).unwrap() as usize;
    let mut torn = fs::read(&last).unwrap();
    torn[end..end + 100].copy_from_slice(&[0x5a; 100]);
    fs::write(&last, torn).unwrap();

    assert_eq!(ok(&[], home.path()), "");

    let logs_after: Vec<Vec<u8>> = log_names(home.path())
        .iter()
        .map(|n| fs::read(home.path().join(n)).unwrap())
        .collect();
    // The records are the same; recovery cut the newest file at its last
    // record, so only the zeros of its preallocated tail may be gone.
    assert_eq!(logs_after.len(), logs_before.len(), "log files");
    for (n, (before, after)) in logs_before.iter().zip(&logs_after).enumerate() {
        assert!(
            after.len() <= before.len()
                && before[..after.len()] == after[..]
                && before[after.len()..].iter().all(|&b| b == 0),
            "recovery changed log file {n}: {} -> {} bytes",
            before.len(),
            after.len()
        );
    }
    let dbs_after = snapshot(home.path());
    assert_ne!(
        dbs_after.get("a.db"),
        dbs_before.get("a.db"),
        "no page was written"
    );
    // Without -e the stale region goes; the lock file stays.
    assert!(!home.path().join("__db.001").exists());
    assert!(home.path().join("__db.lock").exists());
    let (got, replayed) = read_back(home.path());
    assert_eq!(got, expected);
    assert_eq!(replayed, 0, "pages were left for the next open to replay");

    // Running it again changes nothing.
    let dbs = snapshot(home.path());
    assert_eq!(ok(&[], home.path()), "");
    assert_eq!(snapshot(home.path()), dbs);
}

/// `-e` keeps `__db.001` and fills it with the recovered facts.
#[test]
fn keep_region_records_the_recovered_facts() {
    let home = common::home();
    let env = create(home.path());
    commit(&env, "a.db", keys("k", 20));
    let ckp = env.checkpoint().unwrap();
    commit(&env, "a.db", keys("l", 20));
    let env_id = env.env_id();
    drop(env);
    // A region left by the crash, made stale on purpose.
    Region::at(&libcore::OsVfs::shared(), home.path())
        .update(false, |s| {
            s.owner_pid = 999_999;
            s.log_end = Lsn::new(77, 77);
        })
        .unwrap();

    assert_eq!(ok(&["-e"], home.path()), "");
    let st = Region::at(&libcore::OsVfs::shared(), home.path())
        .read()
        .expect("a valid region");
    assert_eq!(st.owner_pid, 0);
    assert!(st.clean_shutdown);
    assert_eq!(st.env_id, env_id);
    assert_eq!(st.last_ckp, ckp);
    assert_eq!(st.ckp_redo, ckp);
    assert_eq!(st.log_end, log_end(home.path()));

    assert_eq!(ok(&[], home.path()), "");
    assert!(!home.path().join("__db.001").exists());
}

/// Procedure 1 of hot-failover.md with plain `cp`: data files first, while
/// the owner keeps writing, then the logs; `-c` makes the copy equal the
/// primary record for record, and its log stays a byte prefix of the
/// primary's.
#[test]
fn catastrophic_recovery_of_a_plain_copy_equals_the_primary() {
    let primary = common::home();
    let backup = common::home();
    let env = create(primary.path());
    commit(&env, "a.db", keys("base", 400));
    commit(&env, "b.db", keys("other", 100));
    env.checkpoint().unwrap();
    commit(&env, "a.db", keys("mid", 200));

    copy(primary.path(), backup.path(), &db_names(primary.path()));
    // The owner carries on between the data copy and the log copy.
    commit(&env, "a.db", keys("late", 200));
    commit(&env, "c.db", keys("new", 10));
    env.checkpoint().unwrap();
    commit(&env, "b.db", keys("last", 10));
    copy(primary.path(), backup.path(), &log_names(primary.path()));
    let expected = contents_of(&env);

    assert_eq!(ok(&["-c"], backup.path()), "");
    let (got, replayed) = read_back(backup.path());
    assert_eq!(got, expected);
    assert_eq!(replayed, 0);
    for name in log_names(backup.path()) {
        let ours = fs::read(backup.path().join(&name)).unwrap();
        let theirs = fs::read(primary.path().join(&name)).unwrap();
        assert!(theirs.starts_with(&ours), "{name} is not a prefix");
    }
    assert!(db_names(backup.path()).contains(&"c.db".to_string()));

    // Catastrophic recovery again: idempotent.
    let before = snapshot(backup.path());
    assert_eq!(ok(&["-c"], backup.path()), "");
    assert_eq!(snapshot(backup.path()), before);
    drop(env);
}

/// `-t`: a copy whose data files predate the later commits recovers exactly
/// the commits up to the time, and the log is cut there; the time is read
/// in the local zone (`TZ`). On the primary, whose pages are newer, the
/// same request fails clearly and changes nothing.
#[test]
fn recovery_to_a_time() {
    let primary = common::home();
    let env = create(primary.path());
    commit(&env, "a.db", keys("g1", 100));
    env.checkpoint().unwrap();
    let data = db_names(primary.path());
    let snap_data: Vec<(String, Vec<u8>)> = data
        .iter()
        .map(|n| (n.clone(), fs::read(primary.path().join(n)).unwrap()))
        .collect();
    let t1 = now();
    wait_past(t1);
    commit(&env, "a.db", keys("g2", 100));
    commit(&env, "b.db", keys("g2b", 10));
    let t2 = now();
    wait_past(t2);
    commit(&env, "a.db", keys("g3", 100));
    env.close().unwrap();
    let logs = log_names(primary.path());
    let full_end = log_end(primary.path());

    let copy_at = |t: &str, tz: &str| -> (tempfile::TempDir, Output) {
        let dir = common::home();
        for (n, b) in &snap_data {
            fs::write(dir.path().join(n), b).unwrap();
        }
        copy(primary.path(), dir.path(), &logs);
        let out = common::cmd("db_recover")
            .args(["-c", "-t", t, "-h"])
            .arg(dir.path())
            .env("TZ", tz)
            .output()
            .unwrap();
        (dir, out)
    };

    // Up to t1: the first group only; the log is cut before the second.
    let (c1, out) = copy_at(&stamp(t1, 0), "UTC");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (got, _) = read_back(c1.path());
    let a = key_set(&got, "a.db");
    assert_eq!(a.len(), 100);
    assert!(a.iter().all(|k| k.starts_with("g1-")));
    assert!(key_set(&got, "b.db").is_empty());
    let cut = log_end(c1.path());
    assert!(cut < full_end, "{cut} not before {full_end}");

    // Up to t2, written for a zone nine hours east of UTC.
    let (c2, out) = copy_at(&stamp(t2, 9 * 3600), "JST-9");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (got, _) = read_back(c2.path());
    let a = key_set(&got, "a.db");
    assert_eq!(a.len(), 200);
    assert!(!a.iter().any(|k| k.starts_with("g3-")));
    assert_eq!(key_set(&got, "b.db").len(), 10);
    let cut2 = log_end(c2.path());
    assert!(cut < cut2 && cut2 < full_end);
    for name in log_names(c2.path()) {
        let ours = fs::read(c2.path().join(&name)).unwrap();
        let theirs = fs::read(primary.path().join(&name)).unwrap();
        assert!(theirs.starts_with(&ours), "{name} is not a prefix");
    }
    // The same instant read as UTC is nine hours later: everything.
    let (c3, out) = copy_at(&stamp(t2, 9 * 3600), "UTC");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(key_set(&read_back(c3.path()).0, "a.db").len(), 300);

    // The primary's pages hold the later commits: refused, nothing changed.
    let before = snapshot(primary.path());
    let err = fails(&["-c", "-t", &stamp(t1, 0)], primary.path());
    assert!(err.contains(".db: page ") && err.contains("newer"), "{err}");
    assert_eq!(snapshot(primary.path()), before);
    // Normal recovery starts after those commits: refused before redo.
    let err = fails(&["-t", &stamp(t1, 0)], primary.path());
    assert!(err.contains("checkpoint"), "{err}");
    assert_eq!(snapshot(primary.path()), before);
}

/// A log file missing from the middle: one line naming it, exit 1, and the
/// data files untouched, for normal and catastrophic recovery alike.
#[test]
fn a_missing_log_file_is_named() {
    let home = common::home();
    let opts = EnvOptions {
        lg_max: Some(4096),
        ..EnvOptions::create()
    };
    let env = Env::open(home.path(), opts).unwrap();
    for i in 0..12 {
        commit(&env, "a.db", keys(&format!("k{i}"), 40));
    }
    drop(env);
    let logs = log_names(home.path());
    assert!(logs.len() >= 3, "{logs:?}");
    let gone = &logs[1];
    fs::remove_file(home.path().join(gone)).unwrap();
    let before = snapshot(home.path());
    for args in [&[][..], &["-c"][..]] {
        let err = fails(args, home.path());
        assert!(err.contains(gone.as_str()), "{err}");
        assert!(err.contains("missing"), "{err}");
        assert_eq!(snapshot(home.path()), before);
    }
}

/// A running owner keeps db_recover out (Berkeley DB does not check).
#[test]
fn a_live_owner_is_refused() {
    let home = common::home();
    let env = create(home.path());
    commit(&env, "a.db", keys("k", 5));
    let before = snapshot(home.path());
    let err = fails(&[], home.path());
    assert!(
        err.contains(&format!("environment in use by pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(snapshot(home.path()), before);
    drop(env);
}

/// No environment, no files: a missing home, an empty directory and a
/// directory of other files each give one line and exit 1, and nothing is
/// created (Berkeley DB creates a log file).
#[test]
fn not_an_environment_creates_nothing() {
    let dir = common::home();
    let missing: PathBuf = dir.path().join("nonexistent");
    let err = fails(&[], &missing);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(!missing.exists());

    let err = fails(&["-c"], dir.path());
    assert!(err.contains("not an environment"), "{err}");
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = fails(&["-e"], dir.path());
    assert!(err.contains("not an environment"), "{err}");
    assert_eq!(names(dir.path(), |_| true), ["notes.txt"]);

    let file = dir.path().join("notes.txt");
    let err = fails(&[], &file);
    assert!(err.contains("Not a directory"), "{err}");
}

/// `-v`: Berkeley DB's four lines on stdout, without the program name;
/// no "starting from" when there is nothing to redo.
#[test]
fn verbose_output() {
    let home = common::home();
    let env = create(home.path());
    commit(&env, "a.db", keys("k", 50));
    let ckp = env.checkpoint().unwrap();
    commit(&env, "a.db", keys("l", 50));
    drop(env);
    let end = log_end(home.path());

    let out = ok(&["-v"], home.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    // The last record is the last commit, which ends at the end of the log.
    let last = lines[0]
        .strip_prefix(&format!(
            "Finding last valid log LSN: file: {} offset ",
            end.file
        ))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(last.parse::<u32>().unwrap() < end.offset, "{out}");
    assert_eq!(lines[1], format!("Recovery starting from {ckp}"));
    assert_complete_line(lines[2]);
    assert_eq!(
        lines[3],
        format!("Maximum transaction ID 2 recovery checkpoint {ckp}")
    );

    // After a clean close the checkpoint is the last record: nothing to redo.
    let env = Env::open(home.path(), EnvOptions::default()).unwrap();
    env.close().unwrap();
    let ckp = libcore::testing::log::last_checkpoint(&OsVfs::shared(), home.path())
        .unwrap()
        .unwrap()
        .0;
    let out = ok(&["-v"], home.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        format!(
            "Finding last valid log LSN: file: {} offset {}",
            ckp.file, ckp.offset
        )
    );
    assert_complete_line(lines[1]);
    assert_eq!(
        lines[2],
        format!("Maximum transaction ID 0 recovery checkpoint {ckp}")
    );
}

/// `Recovery complete at Wed Nov 25 12:45:26 2026` (ctime, local time).
fn assert_complete_line(line: &str) {
    let t = line
        .strip_prefix("Recovery complete at ")
        .unwrap_or_else(|| panic!("{line}"));
    let parts: Vec<&str> = t.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "{line}");
    assert!(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&parts[0]));
    assert_eq!(parts[1].len(), 3, "{line}");
    assert_eq!(parts[3].len(), 8, "{line}");
    let year: i64 = parts[4].parse().unwrap();
    let now = CivilTime::from_unix_utc(now()).year as i64;
    assert!((now - 1..=now).contains(&year), "{line}");
}

/// `-f`: `\rrecovery N% complete` per step, ending at 100% and a newline;
/// with `-v` the verbose lines follow.
#[test]
fn feedback_output() {
    let home = common::home();
    let env = create(home.path());
    for i in 0..5 {
        commit(&env, "a.db", keys(&format!("k{i}"), 100));
    }
    drop(env);
    let out = ok(&["-c", "-f"], home.path());
    assert!(out.ends_with("\rrecovery 100% complete\n"), "{out:?}");
    let steps: Vec<u32> = out
        .trim_end_matches('\n')
        .split('\r')
        .skip(1)
        .map(|s| {
            s.strip_prefix("recovery ")
                .and_then(|s| s.strip_suffix("% complete"))
                .unwrap_or_else(|| panic!("{out:?}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert!(steps.len() > 1, "{out:?}");
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{out:?}");
    assert!(out.starts_with('\r'));

    let out = ok(&["-f", "-v"], home.path());
    let (progress, verbose) = out.split_once('\n').unwrap();
    assert!(progress.ends_with("\rrecovery 100% complete"), "{out:?}");
    assert!(
        verbose.starts_with("Finding last valid log LSN: "),
        "{out:?}"
    );
    assert_eq!(verbose.lines().count(), 4, "{out:?}");
}

/// Berkeley DB's `-t` message (in the normal `prog: message` order, with a
/// newline), and fields out of range are refused too; `-P` is refused.
#[test]
fn bad_times_and_passwords() {
    let home = common::home();
    let env = create(home.path());
    commit(&env, "a.db", keys("k", 5));
    env.close().unwrap();
    let before = snapshot(home.path());
    for t in [
        "1301",
        "abcdefgh",
        "13010000",
        "02300000",
        "2302291200",
        "01011200.61",
        "0101120",
    ] {
        let out = run(&["-t", t], home.path());
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert_eq!(
            text(&out.stderr),
            "db_recover: out of range or illegal time specification: [[CC]YY]MMDDhhmm[.SS]\n",
            "{t}"
        );
        assert_eq!(text(&out.stdout), "");
    }
    let err = fails(&["-P", "secret"], home.path());
    assert_eq!(err, "db_recover: -P: encryption is not supported\n");
    assert_eq!(snapshot(home.path()), before);
    // A well-formed time later than every commit is plain recovery.
    assert_eq!(ok(&["-t", "206801010000"], home.path()), "");
}
