//! The backup directory through the binaries (issue 10, defects 1 and 4):
//! `db_hotbackup` writes only into a directory that holds nothing or a
//! backup of the same source, and replaces a backup only with a complete
//! one, whatever the operator types and whenever they press Ctrl-C.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libcore::{Env, EnvOptions};

use crate::common::{self, writer_exe};
use crate::hostile::{assert_refused, assert_same, clean_env, run, snapshot};

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn hotbackup(home: &Path, bk: &Path, extra: &[&str]) -> crate::hostile::Run {
    let mut args = vec![os("-h"), home.as_os_str(), os("-b"), bk.as_os_str()];
    args.extend(extra.iter().map(os));
    run("db_hotbackup", &args)
}

fn dump(home: &Path, db: &str) -> String {
    let r = run("db_dump", &[os("-h"), home.as_os_str(), os(db)]);
    assert_eq!(r.code, Some(0), "db_dump {db}: {}", r.stderr);
    r.stdout
}

/// What broke: after a failover the copy is the new primary and takes
/// commits, and `db_hotbackup -u` from the old primary told the operator to
/// "run a full db_hotbackup first"; doing exactly that deleted the new
/// primary's databases and log (the full backup cleared every environment
/// file it found) and exited 0. Now both refuse, in one line saying what the
/// directory holds, and change nothing.
#[test]
fn a_failed_over_copy_that_took_commits_is_never_overwritten() {
    let root = common::home();
    let prim = root.path().join("prim");
    let copy = root.path().join("copy");
    clean_env(&prim);
    assert_eq!(hotbackup(&prim, &copy, &[]).code, Some(0));
    // Failover: an application opens the copy as its primary and commits.
    {
        let env = Env::open(&copy, EnvOptions::default()).unwrap();
        let mut t = env.begin().unwrap();
        let db = t.create_db("after-failover.db", None).unwrap();
        t.put(&db, b"order 1", b"paid").unwrap();
        t.commit().unwrap();
        env.close().unwrap();
    }
    let before = snapshot(&copy);
    let committed = dump(&copy, "after-failover.db");
    let r = hotbackup(&prim, &copy, &["-u"]);
    assert_refused(
        "db_hotbackup",
        &r,
        &["copy", "not a backup", "nothing was changed"],
    );
    assert!(!r.stderr.contains("run a full"), "{}", r.stderr);
    let r = hotbackup(&prim, &copy, &[]);
    assert_refused(
        "db_hotbackup",
        &r,
        &["copy", "not a backup", "nothing was changed"],
    );
    assert_same(&before, &snapshot(&copy), "the new primary");
    assert_eq!(dump(&copy, "after-failover.db"), committed);
}

/// What broke: `-h` and `-b` swapped against a stopped primary (the backup
/// named as the source, the primary as the target) deleted the primary's
/// databases: only a running owner was refused. Full and `-u` alike.
#[test]
fn swapped_home_and_backup_never_touch_a_stopped_primary() {
    let root = common::home();
    let prim = root.path().join("prim");
    let bk = root.path().join("bk");
    clean_env(&prim);
    assert_eq!(hotbackup(&prim, &bk, &[]).code, Some(0));
    let before = snapshot(&prim);
    let bk_before = snapshot(&bk);
    for extra in [&[][..], &["-u"][..]] {
        let r = hotbackup(&bk, &prim, extra);
        assert_refused(
            "db_hotbackup",
            &r,
            &["prim", "not a backup", "database files"],
        );
    }
    assert_same(&before, &snapshot(&prim), "the primary");
    assert_same(&bk_before, &snapshot(&bk), "the backup");
}

/// A backup of another environment is a backup someone may still need:
/// a full backup of this source refuses it rather than replacing it.
#[test]
fn a_backup_of_another_environment_is_not_replaced() {
    let root = common::home();
    let (a, b, bk) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("bk"),
    );
    clean_env(&a);
    clean_env(&b);
    assert_eq!(hotbackup(&a, &bk, &[]).code, Some(0));
    let before = snapshot(&bk);
    for extra in [&[][..], &["-u"][..]] {
        let r = hotbackup(&b, &bk, extra);
        assert_refused("db_hotbackup", &r, &["bk", "another environment"]);
    }
    assert_same(&before, &snapshot(&bk), "the backup of a");
}

/// `-u` on a directory that holds no backup says so, naming it, whether it
/// is missing or empty.
#[test]
fn an_update_of_no_backup_says_what_is_there() {
    let root = common::home();
    let prim = root.path().join("prim");
    clean_env(&prim);
    let missing = root.path().join("missing");
    let r = hotbackup(&prim, &missing, &["-u"]);
    assert_refused(
        "db_hotbackup",
        &r,
        &["missing", "backup directory: No such file or directory"],
    );
    assert!(!missing.exists());
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let r = hotbackup(&prim, &empty, &["-u"]);
    assert_refused("db_hotbackup", &r, &["empty", "holds no backup"]);
}

/// What broke: a full backup into a directory holding the previous complete
/// backup removed the old one first, so Ctrl-C (or `kill`) during the copy
/// left no backup at all, and nothing was said. Now the old backup stays,
/// byte for byte, until the new one is complete; the interrupted run
/// removes its unfinished copy, says in one line what the directory holds,
/// and dies of the signal it got.
#[test]
fn an_interrupted_full_backup_leaves_the_previous_one_whole() {
    for (signal, name) in [(2, "-INT"), (15, "-TERM")] {
        let root = common::home();
        let prim = root.path().join("prim");
        let bk = root.path().join("bk");
        clean_env(&prim);
        assert_eq!(hotbackup(&prim, &bk, &[]).code, Some(0));
        let old_dump = dump(&bk, "a.db");
        let before = snapshot(&bk);
        // More data, so a copy paced at 1 MiB/s is still running when the
        // signal comes.
        let st = Command::new(writer_exe())
            .arg(&prim)
            .args(["-n", "4000", "--nosync", "--lg-max", "1048576"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let child = Command::new(env!("CARGO_BIN_EXE_db_hotbackup"))
            .env_remove("DB_HOME")
            .args([os("-r"), os("1"), os("-h"), prim.as_os_str()])
            .args([os("-b"), bk.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the new backup is being written beside the old one.
        let staging = libcore::testing::backup_target::staging(&bk);
        let start = Instant::now();
        while !fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_some()) {
            assert!(start.elapsed() < Duration::from_secs(60), "no staging copy");
            std::thread::sleep(Duration::from_millis(2));
        }
        let st = Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(signal), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: one line: {err}");
        assert!(
            lines[0].starts_with("db_hotbackup: ")
                && lines[0].contains("interrupted")
                && lines[0].contains("previous backup"),
            "{name}: {err}"
        );
        assert!(!staging.exists(), "{name}: the unfinished copy is removed");
        assert_same(&before, &snapshot(&bk), "the previous backup");
        // Usable as a failover would use it.
        let r = run("db_recover", &[os("-c"), os("-h"), bk.as_os_str()]);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        assert_eq!(dump(&bk, "a.db"), old_dump, "{name}");
        // And the next run completes.
        assert_eq!(hotbackup(&prim, &bk, &[]).code, Some(0));
        assert_eq!(dump(&bk, "a.db"), dump(&prim, "a.db"));
    }
}

/// What broke: an update trims the log files it no longer needs, and a
/// power loss in the middle of that can leave older ones behind with a gap
/// among them (unlinks reach the disk in any order); `db_recover -c`, which
/// read every log file present, then refused the backup at the gap. It now
/// starts where the backup's manifest says and never reads the stale ones.
#[test]
fn catastrophic_recovery_of_a_backup_ignores_stale_logs_below_its_manifest() {
    let root = common::home();
    let prim = root.path().join("prim");
    let bk = root.path().join("bk");
    clean_env(&prim);
    assert_eq!(hotbackup(&prim, &bk, &[]).code, Some(0));
    let vfs = libcore::OsVfs::shared();
    let kept = libcore::testing::log::list_log_files(&vfs, &bk).unwrap();
    assert!(kept[0] >= 4, "the backup trimmed its log: {kept:?}");
    // Stale files from before the trim, with a gap between them.
    for n in [1, 3] {
        let name = libcore::testing::log::log_name(n);
        fs::copy(prim.join(&name), bk.join(&name)).unwrap();
    }
    let r = run("db_recover", &[os("-c"), os("-h"), bk.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(dump(&bk, "a.db"), dump(&prim, "a.db"));
}
