//! The shared harness of the end-to-end tests: a temporary home per test,
//! builders for our binaries and for the real Berkeley DB 5.3 tools, and
//! golden files for what people read.
//!
//! Every helper runs commands with `DB_HOME` removed and `LC_ALL=C`,
//! `TZ=UTC`, so a developer's environment never changes a result.

// Each test area uses some of these helpers, none uses all.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A fresh, empty directory for one test, removed when dropped. Keep it
/// alive for the whole test (`let home = common::home();`).
pub fn home() -> TempDir {
    tempfile::Builder::new()
        .prefix("bdbtools-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Pin what the tools may read from the environment.
fn sanitize(mut cmd: Command) -> Command {
    cmd.env_remove("DB_HOME")
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    cmd
}

/// One of our binaries by its name (`cmd("db_dump")`), built by Cargo for
/// this test run.
pub fn cmd(tool: &str) -> Command {
    let cmd = Command::cargo_bin(tool).unwrap_or_else(|e| panic!("no binary {tool}: {e}"));
    sanitize(cmd)
}

/// The real Berkeley DB tool for our `tool` (`bdb("db_archive")` runs
/// `db5.3_archive`). Check [`have_bdb`] first.
pub fn bdb(tool: &str) -> Command {
    sanitize(Command::new(bdb_name(tool)))
}

/// `db_archive` -> `db5.3_archive`.
pub fn bdb_name(tool: &str) -> String {
    format!("db5.3_{}", tool.strip_prefix("db_").unwrap_or(tool))
}

/// The variable a developer sets to `1` to run the suite on a machine
/// without the external tools the tests compare with or check with
/// (db5.3-util, libdb5.3-dev, a C compiler, mandoc, man, setpriv,
/// chattr): a test that needs a missing one then skips with a note. Never
/// set in CI, where a missing tool fails the test, so a comparison that
/// did not run is never mistaken for a pass.
pub const ALLOW_MISSING: &str = "BDBTOOLS_ALLOW_MISSING";

/// `true` when `what` (an external tool a test needs) is `available`.
/// Otherwise the calling test fails, naming what to install; only with
/// `BDBTOOLS_ALLOW_MISSING=1` does it print a note and return `false`,
/// and the caller returns early.
pub fn require(available: bool, what: &str, install: &str) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    if std::env::var_os(ALLOW_MISSING).is_some_and(|v| v == "1") {
        eprintln!("note: {what} is missing ({install}); {ALLOW_MISSING}=1: skipping {test}");
        return false;
    }
    panic!("{test} needs {what}, which is missing: {install} (or set {ALLOW_MISSING}=1 to skip the tests that need it)");
}

/// Whether the Berkeley DB 5.3 tools are installed (Debian's db5.3-util);
/// see [`require`]: without them the calling test fails.
pub fn have_bdb() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("db5.3_archive").is_file())
    });
    require(found, "db5.3_archive", "apt-get install db5.3-util")
}

/// The checked-in golden file `tests/golden/<name>`.
pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Assert that `actual` equals the golden file `name`, showing a line diff
/// when not. With `UPDATE_GOLDEN=1` the file is (re)written instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == OsStr::new("1")) {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs (-expected +actual; UPDATE_GOLDEN=1 to accept):\n{}",
            path.display(),
            diff(&expected, actual)
        );
    }
}

/// A line diff of `expected` against `actual`: ` ` common, `-` only in
/// expected, `+` only in actual. Quadratic (a longest common subsequence),
/// which is fine for the few hundred lines a golden file holds.
pub fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..], b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut text) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(text, " {}", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(text, "+{}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(text, "-{}", a[i]);
            i += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        text.push_str("(the two differ in their final newline)\n");
    }
    text
}
/// The load generator `tests/writer.rs` (built by cargo as the `writer`
/// example, next to this test binary's directory).
pub fn writer_exe() -> PathBuf {
    example_exe("writer")
}

/// An example binary of this package (`writer`, `bench`).
pub fn example_exe(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join(name)
}

pub mod s3;
pub mod workload;
