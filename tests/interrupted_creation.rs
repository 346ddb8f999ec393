//! An environment whose creation a power loss interrupted, and a log whose
//! move to a new file it interrupted, through every tool (issue 9 defect
//! 4; `libcore/tests/interrupted_creation.rs` cuts the power for real on
//! the strong model, this module checks what the binaries answer for each
//! state such a cut leaves).
//!
//! The states: only a `DB_CONFIG`; a `DB_CONFIG` and the lock file; a
//! `log.0000000001` of 0 bytes (a name made durable before its data); a
//! first log file holding a prefix of its header, a prefix then zeroes, or
//! a whole header whose checksum fails (a torn write). Nothing was ever
//! committed in any of them. And a newest log file in those states after
//! the log had moved on from a file full of commits.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use libcore::{Env, EnvOptions};

use crate::common;
use crate::hostile::{assert_same, crashed_env, run, snapshot, Run};

/// The header of the first log file of a fresh environment, as file `n`
/// (its number and checksum redone).
fn real_header(n: u32) -> Vec<u8> {
    let dir = common::home();
    drop(Env::open(dir.path(), EnvOptions::create()).unwrap());
    let path = dir.path().join(libcore::testing::log::log_name(1));
    let b = fs::read(&path).unwrap();
    let mut hdr = libcore::testing::log::FileHeader::decode(&path, &b, 1).unwrap();
    hdr.file_no = n;
    hdr.encode().to_vec()
}

/// The torn states of a header: (name, bytes).
fn torn(header: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut zero_tail = header[..16].to_vec();
    zero_tail.resize(header.len(), 0);
    let mut bad_crc = header.to_vec();
    bad_crc[38] ^= 0x5a;
    vec![
        ("0 bytes", Vec::new()),
        ("a prefix", header[..20].to_vec()),
        ("a prefix then zeroes", zero_tail),
        ("a checksum that fails", bad_crc),
    ]
}

/// The files a state consists of: (name, bytes).
type Files = Vec<(&'static str, Vec<u8>)>;

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn tool(t: &str, args: &[&str], home: &Path) -> Run {
    let mut a: Vec<&OsStr> = args.iter().map(os).collect();
    a.extend([os("-h"), home.as_os_str()]);
    run(t, &a)
}

fn assert_ok(r: &Run, what: &str) {
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
    assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
}

#[test]
fn every_tool_answers_for_an_environment_whose_creation_was_interrupted() {
    // Regression (issue 9 defect 4): a power loss during the very first
    // open can leave a directory with only the DB_CONFIG prepared for it,
    // or a first log file of 0 bytes or with a torn header. Nothing was
    // ever committed there, yet db_recover answered "not an environment"
    // or "no log files, cannot position at [1][40]" (or named the header
    // as damaged), and so did every other tool: an operator following
    // the outage procedure was told the environment was broken. Each tool
    // now answers as for an empty environment and changes nothing
    // (db_recover says there was nothing to recover); the next open with
    // create completes the environment.
    let header = real_header(1);
    let mut states: Vec<(String, Files)> = vec![
        (
            "only DB_CONFIG".into(),
            vec![("DB_CONFIG", b"set_lg_max 65536\n".to_vec())],
        ),
        (
            "DB_CONFIG and the lock file".into(),
            vec![
                ("DB_CONFIG", b"set_cachesize 0 1048576 1\n".to_vec()),
                ("__db.lock", Vec::new()),
            ],
        ),
    ];
    for (what, bytes) in torn(&header) {
        states.push((
            format!("a first log file of {what}"),
            vec![("log.0000000001", bytes.clone())],
        ));
        states.push((
            format!("DB_CONFIG and a first log file of {what}"),
            vec![("DB_CONFIG", b"\n".to_vec()), ("log.0000000001", bytes)],
        ));
    }
    for (state, files) in states {
        let root = common::home();
        let home = root.path().join("env");
        fs::create_dir(&home).unwrap();
        for (name, bytes) in &files {
            fs::write(home.join(name), bytes).unwrap();
        }
        let before = snapshot(&home);
        let now = chrono_stamp();
        for args in [vec![], vec!["-c"], vec!["-v"], vec!["-t", now.as_str()]] {
            let r = tool("db_recover", &args, &home);
            let what = format!("{state}: db_recover {args:?}");
            assert_ok(&r, &what);
            assert!(
                r.stderr.contains("nothing to recover"),
                "{what}: {}",
                r.stderr
            );
            assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
            assert_same(&before, &snapshot(&home), &what);
        }
        for (t, args) in [
            ("db_archive", vec![]),
            ("db_archive", vec!["-l"]),
            ("db_archive", vec!["-s"]),
            ("db_printlog", vec![]),
            ("db_stat", vec!["-e"]),
            ("db_stat", vec!["-l"]),
            ("db_stat", vec!["-t"]),
            ("db_checkpoint", vec!["-1"]),
        ] {
            let r = tool(t, &args, &home);
            let what = format!("{state}: {t} {args:?}");
            assert_ok(&r, &what);
            assert_eq!(r.stderr, "", "{what}");
            if t != "db_stat" {
                assert_eq!(r.stdout, "", "{what}");
            }
            assert_same(&before, &snapshot(&home), &what);
        }
        // No database is there to dump, verify or back up: one line
        // saying so, never "not an environment", nothing changed.
        let bk = root.path().join("bk");
        for (t, args, says) in [
            ("db_dump", vec!["a.db"], "a.db"),
            ("db_verify", vec!["a.db"], "a.db"),
            (
                "db_hotbackup",
                vec!["-b", bk.to_str().unwrap()],
                "nothing to back up",
            ),
        ] {
            let r = tool(t, &args, &home);
            let what = format!("{state}: {t} {args:?}: {}", r.stderr);
            assert_eq!(r.code, Some(1), "{what}");
            assert!(r.stderr.contains(says), "{what}");
            assert!(!r.stderr.contains("not an environment"), "{what}");
            assert!(!r.stderr.contains("panicked"), "{what}");
            assert_same(&before, &snapshot(&home), &what);
        }
        assert!(!bk.exists(), "{state}: db_hotbackup made its target");

        // The application's next open (with create) finishes the job.
        let env = Env::open(&home, EnvOptions::create()).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("a.db", None).unwrap();
        t.put(&db, b"k", b"v").unwrap();
        t.commit().unwrap();
        drop(env);
        assert_ok(&tool("db_recover", &[], &home), &state);
        let r = tool("db_dump", &["-p", "a.db"], &home);
        assert_ok(&r, &state);
        assert!(r.stdout.contains(" k\n v\n"), "{state}: {}", r.stdout);
    }
}

/// `db_recover -t` to a minute from now, in its `[[CC]YY]MMDDhhmm` form
/// (the tests run with `TZ=UTC`).
fn chrono_stamp() -> String {
    libcore::testing::timefmt::recover_stamp(libcore::testing::timespec::now() as u64 + 60)
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn every_tool_reads_past_a_newest_log_file_left_empty_or_torn_by_a_rotation() {
    // Regression (issue 9 defect 4): the log moves to a new file by
    // creating it with its header; a power loss right then leaves that
    // newest file with 0 bytes, a prefix of its header or a header whose
    // checksum fails. The first two were already read as the end of the
    // log; the last was "log file header checksum mismatch" for every
    // tool and for recovery. Every tool now reads the log as ending
    // before that file; the read-only ones change nothing and answer as
    // before the rotation; db_recover removes the file with the torn tail.
    let root = common::home();
    let reference = root.path().join("ref");
    crashed_env(&reference);
    let last = libcore::testing::log::list_log_files(&libcore::OsVfs::shared(), &reference)
        .unwrap()
        .last()
        .copied()
        .unwrap();
    let next = libcore::testing::log::log_name(last + 1);
    let answers = |home: &Path| -> Vec<String> {
        [
            ("db_printlog", vec![]),
            ("db_dump", vec!["-p", "a.db"]),
            ("db_archive", vec![]),
            ("db_archive", vec!["-s"]),
        ]
        .iter()
        .map(|(t, args)| {
            let r = tool(t, args, home);
            assert_ok(&r, &format!("{t} {args:?}"));
            assert_eq!(r.stderr, "", "{t} {args:?}");
            r.stdout
        })
        .collect()
    };
    let want = answers(&reference);
    let r = tool("db_verify", &["a.db"], &reference);
    let verified = (r.code, r.stdout);
    for (what, bytes) in torn(&real_header(last + 1)) {
        let home = root.path().join(format!("env-{}", what.replace(' ', "-")));
        fs::create_dir(&home).unwrap();
        for (p, b) in snapshot(&reference) {
            fs::write(home.join(p), b).unwrap();
        }
        fs::write(home.join(&next), &bytes).unwrap();
        let before = snapshot(&home);
        assert_eq!(answers(&home), want, "{what}");
        for (t, args) in [
            ("db_archive", vec!["-l"]),
            ("db_stat", vec!["-e"]),
            ("db_stat", vec!["-l"]),
            ("db_stat", vec!["-t"]),
            ("db_stat", vec!["-d", "a.db"]),
        ] {
            let r = tool(t, &args, &home);
            assert_ok(&r, &format!("{what}: {t} {args:?}"));
        }
        // db_verify reads the data file only: the same answer as before.
        let r = tool("db_verify", &["a.db"], &home);
        assert_eq!((r.code, &r.stdout), (verified.0, &verified.1), "{what}");
        let bk = root.path().join(format!("bk-{}", what.replace(' ', "-")));
        let r = tool("db_hotbackup", &["-b", bk.to_str().unwrap()], &home);
        assert_ok(&r, &format!("{what}: db_hotbackup"));
        assert_same(&before, &snapshot(&home), what);
        let r = tool("db_dump", &["-p", "a.db"], &bk);
        assert_eq!(r.stdout, want[1], "{what}: the backup");

        // The writers, each on its own copy: they may remove the file.
        for (t, args) in [
            ("db_recover", vec![]),
            ("db_recover", vec!["-c"]),
            ("db_checkpoint", vec!["-1"]),
        ] {
            let copy = root.path().join(format!(
                "copy-{t}{}-{}",
                args.join(""),
                what.replace(' ', "-")
            ));
            fs::create_dir(&copy).unwrap();
            for (p, b) in &before {
                fs::write(copy.join(p), b).unwrap();
            }
            let r = tool(t, &args, &copy);
            assert_ok(&r, &format!("{what}: {t} {args:?}"));
            assert_eq!(answers(&copy)[1], want[1], "{what}: {t} {args:?}");
            if t == "db_recover" {
                assert!(!copy.join(&next).exists(), "{what}: {t} {args:?} kept it");
            }
        }
    }
}
