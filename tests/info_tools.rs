//! End-to-end tests of the read-and-report tools: `db_printlog`, `db_stat`
//! and `db_checkpoint`. Environments are built with the libcore API; the
//! tools run as the real binaries. Every failure must be one line on
//! stderr with exit status 1, and the read-only tools must leave the
//! directory exactly as they found it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libcore::testing::log::records_end;
use libcore::{Env, EnvOptions};

use crate::common;

/// Builds an environment at `home`: `a.db` with `n` keys, one transaction
/// each, a checkpoint after the first half, then a clean close.
fn build(home: &Path, n: u32) {
    let env = Env::open(home, EnvOptions::create()).unwrap();
    let db = {
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        db
    };
    for i in 0..n {
        let mut t = env.begin().unwrap();
        t.put(
            &db,
            format!("k{i:06}").as_bytes(),
            format!("value {i}").as_bytes(),
        )
        .unwrap();
        t.commit().unwrap();
        if i == n / 2 {
            env.checkpoint().unwrap();
        }
    }
    env.close().unwrap();
}

/// Every file under `dir` with its bytes: equal before and after a run
/// means the run changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        out.insert(name, std::fs::read(e.path()).unwrap_or_default());
    }
    out
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(tool: &str, args: &[&str]) -> Run {
    let out = common::cmd(tool).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A one-line error on stderr naming `what`, nothing on stdout, status 1.
fn assert_one_line_error(r: &Run, tool: &str, what: &str) {
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with(&format!("{tool}: ")), "{}", r.stderr);
    assert!(r.stderr.contains(what), "{} lacks {what}", r.stderr);
}

fn headers(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with('[')).collect()
}

fn lsn_of(header: &str) -> String {
    let end = header.find(']').unwrap();
    let off = &header[end + 2..];
    format!("{}/{}", &header[1..end], &off[..off.find(']').unwrap()])
}

/// Timestamps and environment ids differ from run to run.
fn mask(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("\ttimestamp: ") {
                "\ttimestamp: <masked>".to_owned()
            } else if l.starts_with("\tenvid: ") {
                "\tenvid: <masked>".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn printlog_prints_every_record_in_berkeley_db_layout() {
    let home = common::home();
    build(home.path(), 3);
    let h = home.path().to_str().unwrap();
    let before = snapshot(home.path());
    let r = run("db_printlog", &["-h", h, "-D", "24"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        snapshot(home.path()),
        before,
        "db_printlog changed the home"
    );
    common::assert_golden("printlog.txt", &mask(&r.stdout));
    // A timestamp is the seconds, ctime and the form db_recover -t takes.
    let ts = r
        .stdout
        .lines()
        .find(|l| l.starts_with("\ttimestamp: "))
        .unwrap();
    let re_ok =
        ts.len() == "\ttimestamp: 1795610749 (Wed Nov 25 12:45:49 2026, 202611251245.49)".len();
    assert!(re_ok && ts.ends_with(')'), "{ts}");
    // prevlsn is the previous record of the same transaction.
    let hs = headers(&r.stdout);
    for w in hs.windows(2) {
        let prev = &w[1][w[1].find("prevlsn ").unwrap() + 8..];
        let txn = |h: &str| h.split_whitespace().nth(4).unwrap().to_owned();
        if prev != "[0][0]" {
            assert!(w[0].starts_with(prev) && txn(w[0]) == txn(w[1]), "{w:?}");
        }
    }
}

#[test]
fn printlog_ranges_and_reverse() {
    let home = common::home();
    build(home.path(), 20);
    let h = home.path().to_str().unwrap();
    let all = run("db_printlog", &["-h", h]).stdout;
    let hs = headers(&all);
    assert!(hs.len() > 20);
    let (b, e) = (lsn_of(hs[5]), lsn_of(hs[12]));
    let part = run("db_printlog", &["-h", h, "-b", &b, "-e", &e]);
    assert_eq!(part.code, 0);
    assert_eq!(headers(&part.stdout), hs[5..=12].to_vec());
    let rev = run("db_printlog", &["-h", h, "-r"]);
    let mut want = hs.clone();
    want.reverse();
    assert_eq!(
        headers(&rev.stdout),
        want,
        "-r must give the same entries backwards"
    );
    let rev_part = run("db_printlog", &["-h", h, "-r", "-b", &e, "-e", &b]).stdout;
    assert_eq!(
        headers(&rev_part),
        want[want.len() - 13..=want.len() - 6].to_vec()
    );
    // Past the end: nothing, success.
    let past = run("db_printlog", &["-h", h, "-b", "9/40"]);
    assert_eq!((past.code, past.stdout.as_str()), (0, ""));
    // Not a record boundary: one line naming the place.
    let bad = run("db_printlog", &["-h", h, "-b", &format!("{}/{}", 1, 41)]);
    assert_one_line_error(&bad, "db_printlog", "log.0000000001");
    // A malformed LSN is a usage error.
    let usage = run("db_printlog", &["-h", h, "-b", "abc"]);
    assert_eq!(usage.code, 1);
    assert!(usage.stderr.starts_with("usage: db_printlog"));
}

#[test]
fn printlog_torn_tail_is_quiet_and_damage_is_an_error() {
    let home = common::home();
    build(home.path(), 10);
    let h = home.path().to_str().unwrap();
    let log = home.path().join("log.0000000001");
    let bytes = std::fs::read(&log).unwrap();
    let all = run("db_printlog", &["-h", h]).stdout;
    let hs = headers(&all);
    // The file is preallocated: its records end before its size.
    let end = records_end(&libcore::OsVfs::shared(), &log).unwrap() as usize;

    // A torn tail: the last record cut short.
    std::fs::write(&log, &bytes[..end - 3]).unwrap();
    let torn = run("db_printlog", &["-h", h]);
    assert_eq!(torn.code, 0, "{}", torn.stderr);
    assert_eq!(headers(&torn.stdout), hs[..hs.len() - 1].to_vec());

    // Damage in the middle: a flipped byte inside a record others follow.
    let victim = lsn_of(hs[hs.len() / 2]);
    let off: usize = victim.split('/').nth(1).unwrap().parse().unwrap();
    let mut damaged = bytes.clone();
    // Byte 25 is in the payload of every record (the header has 21).
    damaged[off + 25] ^= 0xff;
    std::fs::write(&log, &damaged).unwrap();
    let r = run("db_printlog", &["-h", h]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("log.0000000001: offset {off}")),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_homes_are_one_line_errors_and_nothing_is_created() {
    let home = common::home();
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let missing = home.path().join("missing");
    let m = missing.to_str().unwrap();
    for (tool, args) in [
        ("db_printlog", vec![]),
        ("db_stat", vec!["-l"]),
        ("db_stat", vec!["-e"]),
        ("db_stat", vec!["-t"]),
        ("db_stat", vec!["-d", "a.db"]),
        ("db_checkpoint", vec!["-1"]),
        ("db_checkpoint", vec!["-k", "1"]),
    ] {
        let mut a = args.clone();
        a.extend(["-h", e]);
        let r = run(tool, &a);
        assert_one_line_error(&r, tool, "not an environment");
        assert!(snapshot(&empty).is_empty(), "{tool} {args:?} created files");
        let mut a = args.clone();
        a.extend(["-h", m]);
        let r = run(tool, &a);
        assert_one_line_error(&r, tool, "No such file or directory");
        assert!(!missing.exists());
    }
    let r = run("db_printlog", &["-h", e, "-P", "secret"]);
    assert_one_line_error(&r, "db_printlog", "encryption is not supported");
}

fn stat_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(v, k)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn stat_reports_what_was_written() {
    let home = common::home();
    build(home.path(), 400);
    let h = home.path().to_str().unwrap();
    let before = snapshot(home.path());

    let d = run("db_stat", &["-h", h, "-d", "a.db"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let m = stat_map(&d.stdout);
    assert_eq!(m["Number of unique keys in the tree"], "400");
    assert_eq!(m["Number of data items in the tree"], "400");
    assert_eq!(m["Underlying database page size"], "4096");
    assert_eq!(m["Btree magic number"], "0x42444c43");
    assert_eq!(m["Byte order"], "Little-endian");
    assert!(m["Number of levels in the tree"].parse::<u32>().unwrap() >= 2);
    assert!(m["Number of tree leaf pages"].parse::<u32>().unwrap() > 1);
    let labels: Vec<&str> = d
        .stdout
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(labels[0], "Local time");
    assert!(labels
        .iter()
        .any(|l| l.starts_with("Number of bytes free in tree leaf pages (")));

    let l = run("db_stat", &["-h", h, "-l"]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    let lm = stat_map(&l.stdout);
    assert_eq!(lm["Log magic number"], "0x474f4c42");
    assert_eq!(lm["Current log file size"], "10Mb");
    assert_eq!(lm["Current log file number"], "1");
    assert_eq!(lm["Log file mode"], "0640");
    // Where the records end (the file is preallocated: not its size).
    let end = records_end(
        &libcore::OsVfs::shared(),
        &home.path().join("log.0000000001"),
    )
    .unwrap();
    assert_eq!(lm["Current log file offset"], end.to_string());
    // The close wrote a checkpoint last: nothing written since.
    assert_eq!(lm["Log bytes written since last checkpoint"], "0");

    let t = run("db_stat", &["-h", h, "-t"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let tm = stat_map(&t.stdout);
    let log = run("db_printlog", &["-h", h]).stdout;
    let last_ckp = headers(&log)
        .into_iter()
        .rfind(|l| l.contains("__txn_ckp"))
        .unwrap();
    assert_eq!(tm["File/offset for last checkpoint LSN"], lsn_of(last_ckp));
    assert_eq!(tm["Number of transactions committed"], "401");
    assert!(t.stdout.ends_with("Active transactions:\n"));

    let e = run("db_stat", &["-h", h, "-e"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    assert_eq!(
        e.stdout.lines().filter(|l| l.starts_with("=-=-=")).count(),
        2
    );
    let em = stat_map(&e.stdout);
    assert_eq!(em["Owner process ID"], "0");
    assert_eq!(em["Database file"], "a.db");
    assert_eq!(em["Current log file offset"], end.to_string());
    assert_eq!(snapshot(home.path()), before, "db_stat changed the home");

    // Subsystems we do not have, and bad combinations.
    for flag in ["-c", "-m", "-x", "-RA"] {
        let r = run("db_stat", &["-h", h, flag]);
        assert_one_line_error(&r, "db_stat", "not supported by this environment");
    }
    // Replication without a store named: one line saying so.
    let r = run("db_stat", &["-h", h, "-r"]);
    assert_one_line_error(&r, "db_stat", "no repl_store line names the replica store");
    let r = run("db_stat", &["-h", h, "-d", "a.db", "-s", "sub"]);
    assert_one_line_error(&r, "db_stat", "multiple databases specified");
    let r = run("db_stat", &["-h", h, "-l", "-t"]);
    assert_eq!(r.code, 1);
    assert!(r
        .stderr
        .starts_with("db_stat: illegal option combination\nusage: db_stat"));
    let r = run("db_stat", &["-h", h]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("usage: db_stat"));
    let r = run("db_stat", &["-h", h, "-d", "nothere.db"]);
    assert_one_line_error(&r, "db_stat", "nothere.db");
}

#[test]
fn stat_sees_a_live_owner_s_commits() {
    let home = common::home();
    let env = Env::open(home.path(), EnvOptions::create()).unwrap();
    let mut t = env.begin().unwrap();
    let db = t.create_db("a.db", None).unwrap();
    for i in 0..50u32 {
        t.put(&db, &i.to_be_bytes(), b"v").unwrap();
    }
    t.commit().unwrap();
    let h = home.path().to_str().unwrap();
    let d = run("db_stat", &["-h", h, "-d", "a.db"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert_eq!(
        stat_map(&d.stdout)["Number of unique keys in the tree"],
        "50"
    );
    let e = run("db_stat", &["-h", h, "-e"]);
    assert_eq!(
        stat_map(&e.stdout)["Owner process ID"],
        std::process::id().to_string()
    );
    env.close().unwrap();
}

fn last_ckp(h: &str) -> String {
    stat_map(&run("db_stat", &["-h", h, "-t"]).stdout)["File/offset for last checkpoint LSN"]
        .clone()
}

#[test]
fn checkpoint_once_with_and_without_an_owner() {
    let home = common::home();
    build(home.path(), 5);
    let h = home.path().to_str().unwrap();
    let first = last_ckp(h);
    let r = run("db_checkpoint", &["-1", "-h", h, "-v"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let lines: Vec<&str> = r.stderr.split('\n').collect();
    assert_eq!(lines.len(), 5, "{:?}", r.stderr);
    assert!(lines[0].starts_with("db_checkpoint: checkpoint begin: "));
    assert_eq!(lines[1], "");
    assert!(lines[2].starts_with("db_checkpoint: checkpoint complete: "));
    assert_eq!((lines[3], lines[4]), ("", ""));
    let second = last_ckp(h);
    assert_ne!(first, second);

    // With a live owner in this process, its request server takes it.
    let env = Env::open(home.path(), EnvOptions::default()).unwrap();
    let before = env.last_checkpoint();
    let lock_file = home.path().join("ckp.pid");
    let r = run(
        "db_checkpoint",
        &["-1", "-h", h, "-L", lock_file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        env.last_checkpoint() > before,
        "the owner did not checkpoint"
    );
    assert!(!lock_file.exists(), "-L file left behind");
    env.close().unwrap();
}

#[test]
fn checkpoint_usage_and_bad_numbers() {
    let home = common::home();
    build(home.path(), 1);
    let h = home.path().to_str().unwrap();
    let r = run("db_checkpoint", &["-h", h]);
    assert_eq!(r.code, 1);
    assert!(r
        .stderr
        .starts_with("db_checkpoint: at least one of -1, -k and -p must be specified\nusage: db_checkpoint [-1Vv]\n"));
    let r = run("db_checkpoint", &["-h", h, "-k", "abc"]);
    assert_one_line_error(&r, "db_checkpoint", "abc: Invalid numeric argument");
    let r = run("db_checkpoint", &["-h", h, "-p", "-3"]);
    assert_one_line_error(&r, "db_checkpoint", "-3: Less than minimum value (1)");
    let r = run("db_checkpoint", &["-h", h, "-1", "-P", "pw"]);
    assert_one_line_error(&r, "db_checkpoint", "encryption is not supported");
}

#[test]
fn checkpoint_daemon_writes_its_pid_file_and_stops_on_sigterm() {
    let home = common::home();
    build(home.path(), 1);
    let h = home.path().to_str().unwrap();
    // Log written since the close's checkpoint: more than 1 KB.
    {
        let env = Env::open(home.path(), EnvOptions::default()).unwrap();
        let db = env.open_db("a.db").unwrap();
        let mut t = env.begin().unwrap();
        t.put(&db, b"big", &[7u8; 4000]).unwrap();
        t.commit().unwrap();
        drop(env); // a crash: no closing checkpoint
    }
    let first = last_ckp(h);
    let lock_file = home.path().join("daemon.pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_db_checkpoint"))
        .args(["-k", "1", "-h", h, "-L", lock_file.to_str().unwrap()])
        .env_remove("DB_HOME")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while last_ckp(h) == first || !lock_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no checkpoint taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&lock_file).unwrap();
    assert!(
        text.starts_with(&format!("db_checkpoint: {} ", child.id())),
        "{text}"
    );
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "{status:?}");
    assert!(!lock_file.exists(), "-L file left behind");
}
