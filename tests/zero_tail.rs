//! The tools over an environment whose newest log file has a zero tail
//! (log files are created at their full size and records written into the
//! zeros). What `db_printlog`, `db_stat -l` and `db_archive` print must be
//! what they print for the same log without the tail (the newest file cut
//! to its last record, as every writer before preallocation left it), and
//! `db_hotbackup` and `db_hotbackup -u` must copy exactly the records: a
//! tool that took the newest file's size for the end of the log would show
//! other offsets and sizes, or append a later update after the zeros.

use std::path::Path;

use libcore::testing::log::{list_log_files, log_path, records_end};
use libcore::{Env, EnvOptions, OsVfs};

use crate::common;

const LG_MAX: u32 = 16 * 1024;

fn options() -> EnvOptions {
    let mut o = EnvOptions::create();
    o.lg_max = Some(LG_MAX);
    o
}

/// Commits keys `from..to` of `a.db` one transaction each, a checkpoint in
/// the middle, then a clean close.
fn commit(home: &Path, from: u32, to: u32) {
    let env = Env::open(home, options()).unwrap();
    let db = match env.open_db("a.db") {
        Ok(db) => db,
        Err(_) => {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", None).unwrap();
            t.commit().unwrap();
            db
        }
    };
    for i in from..to {
        let mut t = env.begin().unwrap();
        t.put(&db, format!("k{i:06}").as_bytes(), &[b'v'; 90])
            .unwrap();
        t.commit().unwrap();
        if i == (from + to) / 2 {
            env.checkpoint().unwrap();
        }
    }
    env.close().unwrap();
}

fn ok(tool: &str, args: &[&str]) -> String {
    let out = common::cmd(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (newest file's size, where its records end).
fn newest(home: &Path) -> (u64, u64) {
    let vfs = OsVfs::shared();
    let n = *list_log_files(&vfs, home).unwrap().last().unwrap();
    let p = log_path(home, n);
    let len = std::fs::metadata(&p).unwrap().len();
    (len, u64::from(records_end(&vfs, &p).unwrap()))
}

/// A copy of `home` with the newest log file cut to its last record.
fn without_tail(home: &Path) -> tempfile::TempDir {
    let copy = common::home();
    for e in std::fs::read_dir(home).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let vfs = OsVfs::shared();
    let n = *list_log_files(&vfs, copy.path()).unwrap().last().unwrap();
    let (_, end) = newest(copy.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(copy.path(), n))
        .unwrap();
    f.set_len(end).unwrap();
    copy
}

fn same_output(a: &Path, b: &Path, tool: &str, args: &[&str]) -> String {
    let with = |h: &Path| {
        let mut v = vec!["-h", h.to_str().unwrap()];
        v.extend_from_slice(args);
        ok(tool, &v).replace(h.to_str().unwrap(), "HOME")
    };
    let (x, y) = (with(a), with(b));
    assert!(
        x == y,
        "{tool} {args:?} differs with the zero tail:\n{}",
        common::diff(&y, &x)
    );
    x
}

#[test]
fn info_tools_read_a_zero_tail_as_the_end_of_the_log() {
    let home = common::home();
    commit(home.path(), 0, 400);
    let (len, end) = newest(home.path());
    assert!(
        len > end,
        "the newest log file has no zero tail ({len}, {end})"
    );
    let cut = without_tail(home.path());
    let printlog = same_output(home.path(), cut.path(), "db_printlog", &[]);
    assert!(printlog.lines().count() > 400 * 3, "{printlog}");
    let stat = same_output(home.path(), cut.path(), "db_stat", &["-l"]);
    let offset = stat
        .lines()
        .find(|l| l.ends_with("\tCurrent log file offset"))
        .unwrap_or_else(|| panic!("{stat}"));
    assert_eq!(offset, format!("{end}\tCurrent log file offset"));
    for args in [&["-l"][..], &["-a", "-l"], &["-s"], &[]] {
        same_output(home.path(), cut.path(), "db_archive", args);
    }
    let logs = ok("db_archive", &["-h", home.path().to_str().unwrap(), "-l"]);
    assert!(logs.lines().count() >= 3, "{logs}");
}

#[test]
fn backup_and_update_copy_the_records_not_the_zero_tail() {
    let home = common::home();
    let bk = common::home();
    let target = bk.path().join("copy");
    let h = home.path().to_str().unwrap();
    let b = target.to_str().unwrap();
    commit(home.path(), 0, 300);
    assert!(newest(home.path()).0 > newest(home.path()).1);
    ok("db_hotbackup", &["-h", h, "-b", b]);
    // Twice: the second update continues a backup log the first extended.
    for (from, to) in [(300, 420), (420, 700)] {
        commit(home.path(), from, to);
        ok("db_hotbackup", &["-h", h, "-b", b, "-u"]);
        let src = ok("db_dump", &["-h", h, "a.db"]);
        let copy = ok("db_dump", &["-h", b, "a.db"]);
        assert!(src == copy, "{}", common::diff(&src, &copy));
        assert_eq!(
            src.lines().filter(|l| l.starts_with(" 6b")).count(),
            to as usize
        );
    }
    // The backup's log: every file ends at its last record.
    let vfs = OsVfs::shared();
    for n in list_log_files(&vfs, &target).unwrap() {
        let p = log_path(&target, n);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            u64::from(records_end(&vfs, &p).unwrap()),
            "{}",
            p.display()
        );
    }
}
