//! Hostile input through the binaries (DESIGN.md section 6, invariant 5):
//! a damaged page, a damaged, missing, foreign or garbage log file, a bad
//! header, a bad DB_CONFIG, a wrong home, a foreign backup directory, a
//! malformed dump, two recoveries at once. Each case checks that the tool
//!
//! * exits 1 (`db_load`: 2, its contract for any failure),
//! * prints exactly one line on stderr naming the file and the problem
//!   (`db_hotbackup`: that line and `HOT BACKUP FAILED!`; `db_verify`
//!   mirrors Berkeley DB: detail lines, then one naming the file and
//!   `DB_VERIFY_BAD`),
//! * never panics,
//! * leaves the source environment byte for byte as it was.
//!
//! The source snapshot leaves out `__db.lock` (the owner lock: taking it
//! writes the taker's pid, which is not environment state) and `__db.001`
//! (the region: `db_hotbackup` records its log lease there by design, and
//! every reader may refresh its cached facts); everything else, data files,
//! logs and DB_CONFIG, is compared byte for byte, recursively.
//!
//! Cases already covered elsewhere are not repeated: malformed dump lines
//! and an oversized value (tests/load_dump.rs), a missing log file for
//! db_recover and a missing home for it (tests/recover_tool.rs), a torn
//! log tail for db_printlog (tests/info_tools.rs), foreign files in a
//! backup target (tests/hot_failover.rs). Here those are extended to the
//! other tools and inputs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libcore::{Env, EnvOptions};

use crate::common::{self, cmd, writer_exe};

/// Every file under `dir` (recursively) but the lock file and the region,
/// with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else if name != "__db.lock" && name != "__db.001" {
                let bytes = if ft.is_symlink() {
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    fs::read(&p).unwrap()
                };
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Equal snapshots, or a panic naming the files that differ (never their
/// bytes).
pub fn assert_same(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>, ctx: &str) {
    let diff: Vec<&PathBuf> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    assert!(diff.is_empty(), "{ctx}: changed {diff:?}");
}

/// The outcome of one tool run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(tool: &str, args: &[&OsStr]) -> Run {
    run_stdin(tool, args, Vec::new())
}

pub fn run_stdin(tool: &str, args: &[&OsStr], stdin: Vec<u8>) -> Run {
    let out = cmd(tool).args(args).write_stdin(stdin).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one-line error contract: exit status (1, `db_load` 2), no panic,
/// one line (two for db_hotbackup), every needle in the error line.
pub fn assert_refused(tool: &str, r: &Run, needles: &[&str]) {
    let what = format!("{tool}: stderr {:?}, stdout {:?}", r.stderr, r.stdout);
    assert!(!r.stderr.contains("panicked"), "{what}");
    let want = if tool == "db_load" { 2 } else { 1 };
    assert_eq!(r.code, Some(want), "{what}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    let line = match tool {
        "db_hotbackup" => {
            assert_eq!(lines.len(), 2, "{what}");
            assert_eq!(lines[1], "db_hotbackup: HOT BACKUP FAILED!", "{what}");
            lines[0]
        }
        "db_verify" => {
            assert!(!lines.is_empty(), "{what}");
            assert!(lines.iter().all(|l| l.starts_with("db_verify: ")), "{what}");
            assert!(lines
                .last()
                .unwrap()
                .ends_with("DB_VERIFY_BAD: Database verification failed"));
            assert!(r.stdout.ends_with(" failed.\n"), "{what}");
            return assert!(
                needles.iter().all(|n| r.stderr.contains(n)),
                "{what}: want {needles:?}"
            );
        }
        _ => {
            assert_eq!(lines.len(), 1, "{what}");
            lines[0]
        }
    };
    assert!(line.starts_with(&format!("{tool}: ")), "{what}");
    for n in needles {
        assert!(line.contains(n), "{what}: want {n:?}");
    }
}

/// A cleanly closed environment made by the load generator: 300
/// transactions, a checkpoint every 100, 64 KiB log files (eight of them).
pub fn clean_env(home: &Path) {
    fs::create_dir_all(home).unwrap();
    let st = Command::new(writer_exe())
        .arg(home)
        .args(["-n", "300", "-c", "100", "--lg-max", "65536"])
        .stdout(Stdio::null())
        .status()
        .expect("run the writer example (cargo build --examples)");
    assert!(st.success());
}

/// A crashed environment without any checkpoint, so every reader of the
/// log starts at log.0000000001: twelve transactions over 4 KiB log files.
pub fn crashed_env(home: &Path) {
    fs::create_dir_all(home).unwrap();
    let opts = EnvOptions {
        lg_max: Some(4096),
        ..EnvOptions::create()
    };
    let env = Env::open(home, opts).unwrap();
    for i in 0..12 {
        let mut t = env.begin().unwrap();
        let db = match env.open_db("a.db") {
            Ok(db) => db,
            Err(_) => t.create_db("a.db", None).unwrap(),
        };
        for k in 0..40 {
            t.put(&db, format!("k{i}-{k:03}").as_bytes(), b"some value")
                .unwrap();
        }
        t.commit().unwrap();
    }
    drop(env); // no close: a crash
}

fn log_file(n: u32) -> String {
    libcore::testing::log::log_name(n)
}

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x10;
    fs::write(path, b).unwrap();
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, b).unwrap();
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// The invocations of every tool that reads the log, on `home`, with
/// `target` as the (not yet existing) place to copy to. (`db_verify`,
/// `db_copy` and `db_archive -l` do not read log records.)
fn log_readers(home: &Path, target: &Path) -> Vec<(&'static str, Vec<std::ffi::OsString>)> {
    let h = home.as_os_str().to_owned();
    let t = target.as_os_str().to_owned();
    let v = |a: &[&OsStr]| a.iter().map(|s| s.to_os_string()).collect::<Vec<_>>();
    vec![
        ("db_printlog", v(&[os("-h"), &h])),
        ("db_recover", v(&[os("-h"), &h])),
        ("db_recover", v(&[os("-c"), os("-h"), &h])),
        ("db_dump", v(&[os("-h"), &h, os("a.db")])),
        ("db_stat", v(&[os("-l"), os("-h"), &h])),
        ("db_checkpoint", v(&[os("-1"), os("-h"), &h])),
        ("db_hotbackup", v(&[os("-h"), &h, os("-b"), &t])),
    ]
}

/// Runs every log reader on `home` and checks the contract; the needles
/// must all be in each error line.
fn every_log_reader_refuses(home: &Path, needles: &[&str]) {
    log_readers_refuse(home, needles, false)
}

/// As above; `headers_only_ok` leaves out `db_stat -l`, which reads file
/// headers but no records.
fn log_readers_refuse(home: &Path, needles: &[&str], headers_only_ok: bool) {
    let root = common::home();
    let before = snapshot(home);
    for (tool, args) in log_readers(home, &root.path().join("bk")) {
        if headers_only_ok && tool == "db_stat" {
            continue;
        }
        let a: Vec<&OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        let r = run(tool, &a);
        assert_refused(tool, &r, needles);
        assert_same(&before, &snapshot(home), &format!("{tool} {args:?}"));
    }
}

#[test]
fn a_corrupt_page_is_named_and_never_copied() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    flip(&home.join("a.db"), 5 * 4096 + 100);
    let before = snapshot(&home);
    let h = home.as_os_str();

    let r = run("db_dump", &[os("-h"), h, os("a.db")]);
    assert_refused("db_dump", &r, &["a.db", "page 5", "checksum"]);
    let r = run("db_stat", &[os("-d"), os("a.db"), os("-h"), h]);
    assert_refused("db_stat", &r, &["a.db", "page 5", "checksum"]);
    let r = run("db_verify", &[os("-h"), h, os("a.db")]);
    assert_refused("db_verify", &r, &["Page 5: checksum mismatch", "a.db"]);

    let bk = root.path().join("bk");
    let r = run("db_hotbackup", &[os("-h"), h, os("-b"), bk.as_os_str()]);
    assert_refused("db_hotbackup", &r, &["a.db", "page 5", "corrupt page"]);
    // Nothing under a real name: no database, no log, no temporary file.
    assert!(snapshot(&bk).is_empty(), "{:?}", snapshot(&bk).keys());

    let cp = root.path().join("cp");
    fs::create_dir(&cp).unwrap();
    let r = run(
        "db_copy",
        &[os("-h"), h, os("-t"), cp.as_os_str(), os("a.db")],
    );
    assert_refused("db_copy", &r, &["a.db", "page 5", "corrupt page"]);
    assert!(snapshot(&cp).is_empty(), "{:?}", snapshot(&cp).keys());
    assert_same(&before, &snapshot(&home), "source");
}

#[test]
fn a_truncated_data_file_is_named() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(home.join("a.db"))
        .unwrap();
    f.set_len(10_000).unwrap();
    drop(f);
    let before = snapshot(&home);
    let h = home.as_os_str();
    let r = run("db_dump", &[os("-h"), h, os("a.db")]);
    assert_refused("db_dump", &r, &["a.db", "past the end of the file"]);
    let r = run("db_stat", &[os("-d"), os("a.db"), os("-h"), h]);
    assert_refused("db_stat", &r, &["a.db", "past the end of the file"]);
    let r = run("db_verify", &[os("-h"), h, os("a.db")]);
    assert_refused(
        "db_verify",
        &r,
        &["not a multiple of the page size", "a.db"],
    );
    // A backup of it would lack the lost pages (no log record brings back
    // pages older than the checkpoint): refused after recovery, naming
    // the copy and saying the source is truncated.
    let bk = root.path().join("bk");
    let r = run("db_hotbackup", &[os("-h"), h, os("-b"), bk.as_os_str()]);
    assert_refused("db_hotbackup", &r, &["a.db", "truncated"]);
    assert_same(&before, &snapshot(&home), "source");
}

/// A torn tail is the end of the log, never an error: every reader
/// succeeds, and only db_recover (whose job it is) cuts it.
#[test]
fn a_torn_log_tail_is_the_end_of_the_log() {
    let root = common::home();
    let home = root.path().join("env");
    crashed_env(&home);
    let logs: Vec<u32> =
        libcore::testing::log::list_log_files(&libcore::OsVfs::shared(), &home).unwrap();
    let last = home.join(log_file(*logs.last().unwrap()));
    let len = fs::metadata(&last).unwrap().len();
    assert!(len > 100, "{len}");
    let f = fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let before = snapshot(&home);
    let h = home.as_os_str();
    let bk = root.path().join("bk");
    for (tool, args) in [
        ("db_printlog", vec![os("-h"), h]),
        ("db_dump", vec![os("-h"), h, os("a.db")]),
        ("db_stat", vec![os("-l"), os("-h"), h]),
        ("db_archive", vec![os("-h"), h]),
        ("db_hotbackup", vec![os("-h"), h, os("-b"), bk.as_os_str()]),
    ] {
        let r = run(tool, &args);
        assert_eq!(r.code, Some(0), "{tool}: {}", r.stderr);
        assert_eq!(r.stderr, "", "{tool}");
        assert_same(
            &before,
            &snapshot(&home),
            &format!("{tool} changed the source"),
        );
    }
    let r = run("db_recover", &[os("-h"), h]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn a_corrupt_record_in_an_earlier_log_file_is_named_with_its_offset() {
    let root = common::home();
    let home = root.path().join("env");
    crashed_env(&home);
    flip(&home.join(log_file(2)), 2000);
    log_readers_refuse(&home, &[&log_file(2), "offset ", "checksum"], true);
}

#[test]
fn a_missing_log_file_is_named_by_every_reader() {
    let root = common::home();
    let home = root.path().join("env");
    crashed_env(&home);
    fs::remove_file(home.join(log_file(2))).unwrap();
    every_log_reader_refuses(&home, &[&log_file(2), "log file missing"]);
}

#[test]
fn log_files_of_another_environment_are_refused() {
    let root = common::home();
    let home = root.path().join("env");
    let other = root.path().join("other");
    crashed_env(&home);
    crashed_env(&other);
    // In place of one of ours: same number, another environment id.
    fs::copy(other.join(log_file(2)), home.join(log_file(2))).unwrap();
    every_log_reader_refuses(&home, &[&log_file(2), "another environment"]);

    // Appended after our last one under the next number: its header names
    // another number.
    let home2 = root.path().join("env2");
    crashed_env(&home2);
    let n = libcore::testing::log::list_log_files(&libcore::OsVfs::shared(), &home2)
        .unwrap()
        .len() as u32;
    fs::copy(other.join(log_file(2)), home2.join(log_file(n + 1))).unwrap();
    every_log_reader_refuses(&home2, &[&log_file(n + 1), "file number 2"]);
}

#[test]
fn a_garbage_file_named_like_a_log_is_refused() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let junk: Vec<u8> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect();
    fs::write(home.join("log.0000000009"), junk).unwrap();
    every_log_reader_refuses(&home, &["log.0000000009", "not a log file"]);
}

/// A newest log file with a torn header is a creation a power loss
/// interrupted (tests/interrupted_creation.rs); the same header in a file
/// that is not the newest is damage: every reader names that file.
#[test]
fn a_torn_header_in_a_log_file_before_the_newest_is_named() {
    let root = common::home();
    for (what, cut) in [("short", true), ("checksum", false)] {
        let home = root.path().join(what);
        crashed_env(&home);
        let two = home.join(log_file(2));
        if cut {
            let f = fs::OpenOptions::new().write(true).open(&two).unwrap();
            f.set_len(20).unwrap();
        } else {
            flip(&two, 38);
        }
        every_log_reader_refuses(&home, &[&log_file(2), "header"]);
    }
}

#[test]
fn a_log_header_with_a_wrong_magic_or_version_is_refused() {
    let root = common::home();
    for (what, at, bytes, needle) in [
        ("magic", 0, &b"XXXX"[..], "not a log file (bad magic"),
        (
            "version",
            4,
            &[9u8, 0, 0, 0][..],
            "unsupported log format version 9",
        ),
    ] {
        let home = root.path().join(what);
        crashed_env(&home);
        patch(&home.join(log_file(2)), at, bytes);
        every_log_reader_refuses(&home, &[&log_file(2), needle]);
    }
}

/// Regression: a database whose meta page had a damaged magic or another
/// format version was not recognised as a database at all, so a full
/// `db_hotbackup` skipped it and reported success: the backup silently
/// lacked that database, which would only be found at failover; and
/// `db_archive -s` left it out, so the hand procedure (`db_archive -s |
/// xargs db_copy`) lost it the same way. Both now use the log's last
/// checkpoint, which names it: db_hotbackup fails naming the file, and
/// db_archive -s lists it so db_copy refuses it.
/// Also: db_verify printed the Rust debug form of the reason
/// (`(NotADatabase)`, `(Version(7))`) instead of a sentence.
#[test]
fn a_meta_page_with_a_wrong_magic_or_version_is_refused() {
    let root = common::home();
    for (what, bytes, verify_says) in [
        (
            "magic",
            &b"XXXX"[..],
            "Page 0: not a database of this format: bad magic\n",
        ),
        (
            "version",
            &[7u8, 0, 0, 0][..],
            "Page 0: not a database of this format: unsupported format version 7 (this program reads version 1)\n",
        ),
    ] {
        let home = root.path().join(what);
        clean_env(&home);
        let at = if what == "magic" { 32 } else { 36 };
        patch(&home.join("a.db"), at, bytes);
        let before = snapshot(&home);
        let h = home.as_os_str();
        let r = run("db_dump", &[os("-h"), h, os("a.db")]);
        assert_refused("db_dump", &r, &["a.db", "unexpected file type or format"]);
        let r = run("db_verify", &[os("-h"), h, os("a.db")]);
        assert_refused("db_verify", &r, &[verify_says, "a.db"]);
        let cp = root.path().join(format!("cp-{what}"));
        fs::create_dir(&cp).unwrap();
        let r = run(
            "db_copy",
            &[os("-h"), h, os("-t"), cp.as_os_str(), os("a.db")],
        );
        assert_refused("db_copy", &r, &["a.db", "not a database"]);
        // db_archive -s still lists it, so the hand procedure's copy
        // fails on it instead of leaving it out.
        let r = run("db_archive", &[os("-s"), os("-h"), h]);
        assert_eq!((r.code, r.stdout.as_str()), (Some(0), "a.db\nb.db\n"), "{}", r.stderr);
        let bk = root.path().join(format!("bk-{what}"));
        let r = run("db_hotbackup", &[os("-h"), h, os("-b"), bk.as_os_str()]);
        assert_refused("db_hotbackup", &r, &["a.db", "page 0", "meta page"]);
        assert_same(&before, &snapshot(&home), what);
    }
}

/// Every invocation of every tool on `home` (targets under `scratch`).
fn every_tool(home: &Path, scratch: &Path) -> Vec<(&'static str, Vec<std::ffi::OsString>)> {
    let mut v = log_readers(home, &scratch.join("bk"));
    let h = home.as_os_str().to_owned();
    let cp = scratch.join("cp");
    fs::create_dir_all(&cp).unwrap();
    let s = |a: &[&OsStr]| a.iter().map(|s| s.to_os_string()).collect::<Vec<_>>();
    v.push(("db_archive", s(&[os("-h"), &h])));
    v.push(("db_archive", s(&[os("-s"), os("-h"), &h])));
    v.push(("db_verify", s(&[os("-h"), &h, os("a.db")])));
    v.push((
        "db_copy",
        s(&[os("-h"), &h, os("-t"), cp.as_os_str(), os("a.db")]),
    ));
    v.push(("db_load", s(&[os("-T"), os("-h"), &h, os("new.db")])));
    v
}

#[test]
fn a_bad_db_config_line_stops_every_tool() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    fs::write(
        home.join("DB_CONFIG"),
        "set_lg_max 65536\nset_bogus_thing 12\n",
    )
    .unwrap();
    let before = snapshot(&home);
    for (tool, args) in every_tool(&home, root.path()) {
        let a: Vec<&OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        let r = run_stdin(tool, &a, b"k\nv\n".to_vec());
        if tool == "db_verify" {
            // Not a verification failure: one line, like every tool.
            assert_eq!(r.code, Some(1), "{}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            assert!(r.stderr.contains("DB_CONFIG: line 2"), "{}", r.stderr);
        } else {
            assert_refused(tool, &r, &["DB_CONFIG", "line 2", "set_bogus_thing"]);
        }
        assert_same(&before, &snapshot(&home), &format!("{tool} {args:?}"));
    }
}

#[test]
fn a_missing_home_or_a_file_as_home_is_refused_by_every_tool() {
    let root = common::home();
    let missing = root.path().join("nonexistent");
    let file = root.path().join("plain-file");
    fs::write(&file, "not a directory").unwrap();
    for (home, needle) in [
        (&missing, "No such file or directory"),
        (&file, "Not a directory"),
    ] {
        let scratch = common::home();
        for (tool, args) in every_tool(home, scratch.path()) {
            let a: Vec<&OsStr> = args.iter().map(|s| s.as_os_str()).collect();
            let r = run_stdin(tool, &a, b"k\nv\n".to_vec());
            if tool == "db_verify" {
                assert_eq!(r.code, Some(1), "{}", r.stderr);
                assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
                assert!(r.stderr.contains(needle), "{}", r.stderr);
            } else {
                assert_refused(tool, &r, &[needle]);
            }
        }
        assert!(!missing.exists());
        assert_eq!(fs::read(&file).unwrap(), b"not a directory");
        // No backup was started.
        assert!(!scratch.path().join("bk").exists());
    }
}

/// Whether permission bits bind this process (they do not for root).
fn permissions_apply(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("perm-probe");
    fs::write(&probe, "x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let denied = fs::File::open(&probe).is_err();
    fs::remove_file(&probe).unwrap();
    if !denied {
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        eprintln!("note: running as root, permission bits do not apply ({test})");
    }
    denied
}

/// As root, where permission bits do not bind, the tools run as `nobody`
/// (util-linux `setpriv`) over a world-readable copy of the environment.
#[test]
fn an_unreadable_database_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let as_nobody = !permissions_apply(root.path());
    if as_nobody {
        let ok = std::process::Command::new("setpriv")
            .arg("--help")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        // Without it, root cannot make a file unreadable to the tools.
        if !common::require(ok, "setpriv", "apt-get install util-linux") {
            return;
        }
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
        for e in fs::read_dir(&home).unwrap() {
            let p = e.unwrap().path();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    fs::set_permissions(home.join("a.db"), fs::Permissions::from_mode(0o000)).unwrap();
    let h = home.as_os_str();
    let bk = root.path().join("bk");
    let go = |tool: &str, args: &[&OsStr]| -> Run {
        if !as_nobody {
            return run(tool, args);
        }
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(assert_cmd::cargo::cargo_bin(tool))
            .args(args)
            .env_remove("DB_HOME")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let r = go("db_dump", &[os("-h"), h, os("a.db")]);
    assert_refused("db_dump", &r, &["a.db", "Permission denied"]);
    let r = go("db_hotbackup", &[os("-h"), h, os("-b"), bk.as_os_str()]);
    assert_refused("db_hotbackup", &r, &["a.db", "Permission denied"]);
    let cp = root.path().join("cp");
    fs::create_dir(&cp).unwrap();
    fs::set_permissions(&cp, fs::Permissions::from_mode(0o777)).unwrap();
    let r = go(
        "db_copy",
        &[os("-h"), h, os("-t"), cp.as_os_str(), os("a.db")],
    );
    assert_refused("db_copy", &r, &["a.db", "Permission denied"]);
    fs::set_permissions(home.join("a.db"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// Under root, where permission bits do not bind, the directory is made
/// immutable instead (`chattr +i`, ext4 and most Linux file systems): then
/// even root cannot create a file in it.
#[test]
fn a_backup_onto_a_read_only_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let before = snapshot(&home);
    let bk = root.path().join("bk");
    fs::create_dir(&bk).unwrap();
    let immutable = !permissions_apply(root.path());
    if immutable {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&bk)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let what = "chattr +i (on a file system with immutable files)";
        if !common::require(ok, what, "apt-get install e2fsprogs") {
            return;
        }
    } else {
        fs::set_permissions(&bk, fs::Permissions::from_mode(0o555)).unwrap();
    }
    let r = run(
        "db_hotbackup",
        &[os("-h"), home.as_os_str(), os("-b"), bk.as_os_str()],
    );
    if immutable {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&bk)
            .status();
        assert_refused("db_hotbackup", &r, &["bk", "Operation not permitted"]);
    } else {
        fs::set_permissions(&bk, fs::Permissions::from_mode(0o755)).unwrap();
        assert_refused("db_hotbackup", &r, &["bk", "Permission denied"]);
    }
    assert_same(&before, &snapshot(&home), "source");
}

/// A backup directory holding a file of no environment, in a subdirectory
/// of the data directory layout (`-D`) as well as at the top: refused,
/// nothing deleted, not even the environment files that are there too.
#[test]
fn a_backup_directory_with_foreign_files_loses_nothing() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let bk = root.path().join("bk");
    fs::create_dir(&bk).unwrap();
    // An earlier backup's files, and one file that is nobody's.
    fs::copy(home.join("b.db"), bk.join("b.db")).unwrap();
    fs::copy(home.join(log_file(1)), bk.join(log_file(1))).unwrap();
    fs::write(bk.join("a.db.orig"), b"precious").unwrap();
    let bk_before = snapshot(&bk);
    let before = snapshot(&home);
    let r = run(
        "db_hotbackup",
        &[os("-h"), home.as_os_str(), os("-b"), bk.as_os_str()],
    );
    assert_refused(
        "db_hotbackup",
        &r,
        &["a.db.orig", "belongs to no environment"],
    );
    assert_same(&bk_before, &snapshot(&bk), "backup directory");
    assert_same(&before, &snapshot(&home), "source");
}

/// Inputs tests/load_dump.rs does not try: binary junk, NUL bytes, a page
/// size that is no page size, a header keyword without a value, non-hex
/// digits, an oversized key in text mode. Each: exit 2, one line naming
/// stdin, nothing created.
#[test]
fn malformed_dumps_load_nothing() {
    let root = common::home();
    let home = root.path().join("env");
    clean_env(&home);
    let before = snapshot(&home);
    let header = "VERSION=3\nformat=bytevalue\ntype=btree\n";
    let mut cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (vec![0xff, 0x00, 0x13, 0x37, b'\n'], vec![]),
        (b"VERSION=3\0\nHEADER=END\n".to_vec(), vec![]),
        (
            format!("{header}db_pagesize=3\nHEADER=END\n 6b\n 76\nDATA=END\n").into_bytes(),
            vec![],
        ),
        (
            format!("{header}db_pagesize=\nHEADER=END\n 6b\n 76\nDATA=END\n").into_bytes(),
            vec![],
        ),
        (
            format!("{header}HEADER=END\n zz\n 76\nDATA=END\n").into_bytes(),
            vec![],
        ),
        (
            b"VERSION=99\nformat=bytevalue\ntype=btree\nHEADER=END\n 6b\n 76\nDATA=END\n".to_vec(),
            vec![],
        ),
    ];
    let mut big = vec![b'k'; 16 * 1024 * 1024 + 1];
    big.extend_from_slice(b"\nv\n");
    cases.push((big, vec!["-T"]));
    for (input, extra) in cases {
        let mut args: Vec<&OsStr> = extra.iter().map(os).collect();
        args.extend([os("-h"), home.as_os_str(), os("new.db")]);
        let r = run_stdin("db_load", &args, input);
        assert_refused("db_load", &r, &["stdin"]);
        // db_load owns the environment while it reads: closing it appends
        // a checkpoint record to the last log file. The data files stay as
        // they were and no database appears.
        let data = |m: BTreeMap<PathBuf, Vec<u8>>| {
            m.into_iter()
                .filter(|(k, _)| !k.to_string_lossy().starts_with("log."))
                .collect::<BTreeMap<_, _>>()
        };
        assert_same(&data(before.clone()), &data(snapshot(&home)), &r.stderr);
    }
}

/// Two catastrophic recoveries at once: the one that comes second finds
/// the lock taken and says so; the first finishes. The first is stopped
/// (SIGSTOP) while it holds the lock so the overlap is certain.
#[test]
fn two_recoveries_at_once_the_second_is_refused() {
    let root = common::home();
    let home = root.path().join("env");
    // Big enough (about 45 MB of log) that catastrophic recovery takes a
    // while even now that it runs at hundreds of MB/s: with 7 MB it could
    // finish inside the few milliseconds it runs between two SIGSTOPs on a
    // loaded machine, and the lock was never seen held.
    fs::create_dir_all(&home).unwrap();
    let st = Command::new(writer_exe())
        .arg(&home)
        .args(["-n", "20000", "--nosync", "--lg-max", "1048576"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let first = Command::new(env!("CARGO_BIN_EXE_db_recover"))
        .args([os("-c"), os("-h"), home.as_os_str()])
        .env_remove("DB_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    let sig = |s: &str| {
        Command::new("kill")
            .args([s, &pid.to_string()])
            .status()
            .unwrap()
    };
    // Stop it as soon as it is alive: whether or not it took the lock yet,
    // it cannot finish while stopped.
    sig("-STOP");
    let start = Instant::now();
    let lock = home.join("__db.lock");
    let mut holds = false;
    // Let it run in short slices until its pid is in the lock file.
    while start.elapsed() < Duration::from_secs(20) {
        // Stopped (state T, not an exited zombie) with its pid in the lock.
        let stopped = fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('T')));
        if stopped && fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid.to_string()) {
            holds = true;
            break;
        }
        // One short slice: both signals from one shell (its `kill` is a
        // builtin), so the slice is not as long as starting a process,
        // which on a loaded machine let the whole recovery run in a few.
        let slice = Command::new("bash")
            .args(["-c", &format!("kill -CONT {pid}; kill -STOP {pid}")])
            .status()
            .unwrap();
        assert!(slice.success());
    }
    if holds {
        let r = run("db_recover", &[os("-c"), os("-h"), home.as_os_str()]);
        assert_refused("db_recover", &r, &["environment in use", &pid.to_string()]);
    } else {
        eprintln!("note: the first db_recover finished before it could be stopped");
    }
    sig("-CONT");
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(holds, "never saw the first recovery hold the lock");
}
