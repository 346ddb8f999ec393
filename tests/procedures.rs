//! The by-hand procedures of shared/hot-failover.md, typed as an operator
//! types them (the pipes of db_hotfailover(7): db_archive -a into
//! `xargs -d '\n'`, cp, mv) while the writer commits with periodic
//! checkpoints. Each cycle's copy is recovered with `db_recover -c` and
//! checked record by record (DESIGN.md invariant 3); after the writer
//! stops, one more cycle makes the copy equal the primary.

use crate::common;
use crate::hot_failover::{check_prefix, contents, Writer};
use std::path::Path;
use std::process::Command;

/// Runs a shell snippet with our tools first on PATH.
fn sh(script: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("db_archive");
    let dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("PATH", path)
        .env_remove("DB_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Procedure 1: copy the databases once, then repeat "remove the backup's
/// logs, copy every log, recover catastrophically".
#[test]
fn procedure_1_by_hand_under_load() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    std::fs::create_dir(&bk).unwrap();
    let w = Writer::start(&prim, &["-i", "1", "-c", "100", "--lg-max", "32768"]);
    w.wait_for(200);
    let (p, b) = (q(&prim), q(&bk));
    let before = w.acked();
    // Step 1, with plain cp: a page torn by a racing write is repaired by
    // the log's full page image during recovery.
    sh(&format!(
        "db_archive -h {p} -a -s | xargs -r -d '\\n' cp -t {b}/ --"
    ));
    let steps_2_to_4 = format!(
        "rm -f {b}/log.*\n\
         db_archive -h {p} -a -l | xargs -r -d '\\n' cp -t {b}/ --\n\
         db_recover -c -h {b}"
    );
    sh(&steps_2_to_4);
    let mut last = check_prefix(&bk);
    assert!(
        last >= before,
        "copy holds {last}; {before} were acknowledged when it began"
    );
    for _ in 0..3 {
        w.wait_for(last + 100);
        let before = w.acked();
        sh(&steps_2_to_4);
        let now = check_prefix(&bk);
        assert!(now >= before && now >= last, "{now} < {before} or {last}");
        last = now;
    }
    let acked = w.kill();
    sh(&steps_2_to_4);
    assert!(check_prefix(&bk) >= acked);
    assert_eq!(contents(&bk), contents(&prim));
}

/// Procedure 2: the site removes old logs from the primary, so each cycle
/// moves the unused ones into the backup before they go, and copies the
/// rest.
#[test]
fn procedure_2_with_log_archival_under_load() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    let tape = t.path().join("tape");
    for d in [&prim, &bk, &tape] {
        std::fs::create_dir(d).unwrap();
    }
    let w = Writer::start(&prim, &["-i", "1", "-c", "60", "--lg-max", "16384"]);
    w.wait_for(200);
    let (p, b, a) = (q(&prim), q(&bk), q(&tape));
    let before = w.acked();
    sh(&format!(
        "db_archive -h {p} -a -s | xargs -r -d '\\n' db_copy -t {b}/ --"
    ));
    let steps_2_to_5 = format!(
        "find {b} -maxdepth 1 -name 'log.*' -exec mv -t {a}/ -- {{}} +\n\
         db_archive -h {p} -a | xargs -r -d '\\n' mv -t {b}/ --\n\
         db_archive -h {p} -a -l | xargs -r -d '\\n' cp -t {b}/ --\n\
         db_recover -c -h {b}"
    );
    sh(&steps_2_to_5);
    let mut last = check_prefix(&bk);
    assert!(last >= before);
    let mut moved_any = false;
    for _ in 0..3 {
        w.wait_for(last + 150);
        let before = w.acked();
        sh(&steps_2_to_5);
        let now = check_prefix(&bk);
        assert!(now >= before && now >= last);
        last = now;
        moved_any |= std::fs::read_dir(&tape).unwrap().count() > 0;
    }
    assert!(moved_any, "the cycle archived logs away from the primary");
    let acked = w.kill();
    sh(&steps_2_to_5);
    assert!(check_prefix(&bk) >= acked);
    assert_eq!(contents(&bk), contents(&prim));
}

/// A log file lost between copying and recovery (here: removed by hand
/// from the backup) is named in a one-line error; the data files are left
/// as they were.
#[test]
fn a_missing_log_in_a_hand_made_copy_is_named() {
    let t = common::home();
    let prim = t.path().join("prim");
    let bk = t.path().join("bk");
    std::fs::create_dir(&prim).unwrap();
    std::fs::create_dir(&bk).unwrap();
    let w = Writer::start(&prim, &["-n", "600", "-c", "100", "--lg-max", "16384"]);
    w.wait_for(600);
    drop(w);
    let (p, b) = (q(&prim), q(&bk));
    sh(&format!(
        "db_archive -h {p} -a -s | xargs -r -d '\\n' cp -t {b}/ -- && \
         db_archive -h {p} -a -l | xargs -r -d '\\n' cp -t {b}/ --"
    ));
    let logs = sh(&format!("cd {p} && db_archive -l"));
    let logs: Vec<&str> = logs.lines().collect();
    assert!(logs.len() >= 3, "{logs:?}");
    let victim = logs[logs.len() / 2];
    std::fs::remove_file(bk.join(victim)).unwrap();
    let data_before = std::fs::read(bk.join("a.db")).unwrap();
    let out = common::cmd("db_recover")
        .arg("-c")
        .arg("-h")
        .arg(&bk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(victim), "names {victim}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(bk.join("a.db")).unwrap(), data_before);
}

/// Database names an operator may give: spaces (leading, inner, trailing),
/// quotes, a backslash, a leading dash (`-t.db` even reads as an option
/// of db_copy), shell and xargs metacharacters, non-ASCII. Every one is
/// legal; a name with a newline or another control character is not (see
/// `a_database_name_with_a_control_character_is_refused_at_create`).
pub const ODD_NAMES: [&str; 14] = [
    "a.db",
    "with space.db",
    " lead.db",
    "trail .db",
    "it's.db",
    "dq\"x.db",
    "back\\slash.db",
    "-dash.db",
    "-t.db",
    "ünï ☃.db",
    "*.db",
    "$(echo x).db",
    "semi;colon&.db",
    "{}.db",
];

/// Directory names as awkward as the database names: the tools must take
/// any home, target or archive directory (`-h`, `-b`, `-t`, `-a` output).
pub const ODD_DIRS: [&str; 3] = ["srv env 'q' \"d\" \\b", "back up;$x ü", "-arch ive"];

/// Creates an environment at `home` holding one database per name of
/// `names` (two keys each, the value naming the database), with several
/// log files and checkpoints so that `db_archive` (no flag) lists some log
/// files as no longer in use. Returns nothing; read it with `contents`.
pub fn odd_env(home: &Path, names: &[&str]) {
    use libcore::{Env, EnvOptions};
    std::fs::create_dir_all(home).unwrap();
    let mut opts = EnvOptions::create();
    opts.lg_max = Some(16384);
    let env = Env::open(home, opts).unwrap();
    for (i, name) in names.iter().enumerate() {
        let mut t = env.begin().unwrap();
        let db = t.create_db(name, Some(512)).unwrap();
        t.put(&db, b"name", name.as_bytes()).unwrap();
        t.put(&db, b"pad", &vec![i as u8; 3000]).unwrap();
        t.commit().unwrap();
        env.checkpoint().unwrap();
    }
    env.close().unwrap();
}

/// Runs `prog args` in `cwd` with our tools first on PATH, returning its
/// output whatever the status.
fn run_in(cwd: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("db_copy");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env_remove("DB_HOME")
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"))
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Regression: `db_copy -t DIR` with a DIR that does not exist either
/// failed naming a temporary file (`./.tmp.missing.PID: rename: Not a
/// directory`) or, with one source, silently created a *file* named DIR,
/// so a mistyped backup directory looked like a successful copy; an
/// existing regular file given to `-t` was overwritten. Now a target that
/// must be a directory (`-t`, several sources, a trailing slash) is
/// checked first, as GNU `cp` checks it: the same failure, the same OS
/// reason, one line naming the target, and nothing created anywhere.
#[test]
fn db_copy_refuses_a_missing_target_directory_as_cp_does() {
    let t = common::home();
    let env = t.path().join("env");
    odd_env(&env, &["a.db", "b.db"]);
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("afile"), b"keep me").unwrap();
    let (a, b) = (
        env.join("a.db").display().to_string(),
        env.join("b.db").display().to_string(),
    );
    let enoent = "No such file or directory";
    let enotdir = "Not a directory";
    // (the arguments, both tools take them alike; what is named; the OS
    // reason db_copy gives; the one GNU cp gives)
    let cases: Vec<(Vec<&str>, &str, &str, &str)> = vec![
        (vec!["-t", "missing", &a], "missing", enoent, enoent),
        (vec!["-t", "missing", &a, &b], "missing", enoent, enoent),
        (vec!["-t", "missing/", &a], "missing/", enoent, enoent),
        // cp tries to create the file `missing/` here, and says "Not a
        // directory"; the directory that is not there is the truer reason.
        (vec![&a, "missing/"], "missing/", enoent, enotdir),
        (vec![&a, &b, "missing"], "missing", enoent, enoent),
        (vec!["-t", "afile", &a], "afile", enotdir, enotdir),
        (vec![&a, &b, "afile"], "afile", enotdir, enotdir),
        (vec![&a, "nodir/x.db"], "nodir/x.db", enoent, enoent),
        (vec![&a, "afile/x.db"], "afile/x.db", enotdir, enotdir),
    ];
    for (args, named, ours_why, cp_why) in cases {
        let cp = run_in(&work, "cp", &args);
        let cp_err = String::from_utf8_lossy(&cp.stderr);
        assert_eq!(cp.status.code(), Some(1), "cp {args:?}: {cp_err}");
        assert!(
            cp_err.contains(&format!("'{named}'")) && cp_err.trim_end().ends_with(cp_why),
            "cp {args:?}: {cp_err}"
        );
        assert_eq!(listing(&work), ["afile"], "cp {args:?} created something");
        let out = run_in(&work, "db_copy", &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "db_copy {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "db_copy {args:?}: {err}");
        assert!(
            err.starts_with(&format!("db_copy: {named}: ")) && err.trim_end().ends_with(ours_why),
            "db_copy {args:?}: {err}"
        );
        assert_eq!(
            listing(&work),
            ["afile"],
            "db_copy {args:?} created something"
        );
        assert_eq!(std::fs::read(work.join("afile")).unwrap(), b"keep me");
    }
    // What still works: into an existing directory, and onto a new name.
    std::fs::create_dir(work.join("dir")).unwrap();
    for args in [
        vec!["-t", "dir", &a, &b],
        vec![&a, "copy.db"],
        vec![&b, "dir/"],
    ] {
        let out = run_in(&work, "db_copy", &args);
        assert!(out.status.success(), "{args:?}: {:?}", out);
    }
    assert_eq!(listing(&work.join("dir")), ["a.db", "b.db"]);
    assert_eq!(
        std::fs::read(work.join("copy.db")).unwrap(),
        std::fs::read(env.join("a.db")).unwrap()
    );
}

/// Regression: a database could be created with a newline in its name
/// (`db_load -h env $'new\nline.db'`), and `db_archive -s` then printed it
/// as two lines, `new` and `line.db`, so every pipe reading one name per
/// line (and the backup manifest, one file per line) read two wrong names.
/// A name with a control character (newline, carriage return, tab, ...)
/// is now refused at create with one line naming it, and nothing is
/// created; a file with a newline placed by hand is refused by
/// `db_archive` with one line, instead of a list a pipe would misread.
#[test]
fn a_database_name_with_a_control_character_is_refused_at_create() {
    let t = common::home();
    let fresh = t.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let env = t.path().join("env");
    odd_env(&env, &["a.db"]);
    let before = listing(&env);
    let log_before = std::fs::read(env.join("log.0000000001")).unwrap();
    for name in [
        "new\nline.db",
        "cr\r.db",
        "tab\t.db",
        "bell\u{7}.db",
        "del\u{7f}.db",
    ] {
        for home in [&fresh, &env] {
            let out = common::cmd("db_load")
                .args(["-T", "-h"])
                .arg(home)
                .arg("--")
                .arg(name)
                .write_stdin("k\nv\n")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{name:?}: {err}");
            assert!(err.contains(&format!("{name:?}")), "{name:?}: {err}");
            assert!(err.contains("not a valid database file name"), "{err}");
        }
        assert!(
            listing(&fresh).is_empty(),
            "{name:?}: {:?}",
            listing(&fresh)
        );
        assert_eq!(listing(&env), before, "{name:?}");
        assert_eq!(
            std::fs::read(env.join("log.0000000001")).unwrap(),
            log_before
        );
    }
    // A database file given such a name by hand is not listed as two.
    std::fs::copy(env.join("a.db"), env.join("x\ny.db")).unwrap();
    for args in [&["-s"][..], &["-s", "-a"][..]] {
        let out = common::cmd("db_archive")
            .args(args)
            .arg("-h")
            .arg(&env)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("x\\ny.db") && err.contains("newline"), "{err}");
    }
}

/// Siblings of the pipe defect: every tool that takes a database name or
/// a directory as an operand takes any legal one, given after `--` when
/// it starts with a dash. Each odd name is dumped from a primary in an
/// odd directory and loaded into a copy (and back into Berkeley DB's
/// text format unchanged), verified, and its statistics read; every
/// tool runs with the odd home.
#[test]
fn every_tool_takes_odd_database_and_directory_names() {
    let t = common::home();
    let srv = t.path().join(ODD_DIRS[0]);
    let copy = t.path().join(ODD_DIRS[1]);
    odd_env(&srv, &ODD_NAMES);
    std::fs::create_dir(&copy).unwrap();
    for name in ODD_NAMES {
        let dump = common::cmd("db_dump")
            .arg("-h")
            .arg(&srv)
            .args(["-p", "--", name])
            .output()
            .unwrap();
        assert!(dump.status.success(), "db_dump {name:?}: {dump:?}");
        let load = common::cmd("db_load")
            .arg("-h")
            .arg(&copy)
            .args(["--", name])
            .write_stdin(dump.stdout.clone())
            .output()
            .unwrap();
        assert!(load.status.success(), "db_load {name:?}: {load:?}");
        let again = common::cmd("db_dump")
            .arg("-h")
            .arg(&copy)
            .args(["-p", "--", name])
            .output()
            .unwrap();
        assert_eq!(again.stdout, dump.stdout, "{name:?}");
        for (tool, args) in [
            ("db_verify", &["--", name][..]),
            ("db_stat", &["-d", name][..]),
        ] {
            let out = common::cmd(tool)
                .arg("-h")
                .arg(&copy)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{tool} {name:?}: {out:?}");
        }
    }
    assert_eq!(contents(&copy), contents(&srv));
    for (tool, args) in [
        ("db_archive", &["-a", "-l"][..]),
        ("db_printlog", &["-e", "1/40"][..]),
        ("db_stat", &["-e"][..]),
        ("db_checkpoint", &["-1"][..]),
        ("db_recover", &["-c"][..]),
    ] {
        let out = common::cmd(tool)
            .arg("-h")
            .arg(&srv)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}: {out:?}");
    }
    let bk = t.path().join(ODD_DIRS[2]);
    let out = common::cmd("db_hotbackup")
        .arg("-h")
        .arg(&srv)
        .arg("-b")
        .arg(&bk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(contents(&bk), contents(&srv));
}
