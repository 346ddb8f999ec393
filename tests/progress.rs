//! Progress bars (issue 14, part 3): long work shows its progress on a
//! terminal, and nothing changes anywhere else.
//!
//! The tools run under a pseudo-terminal (util-linux `script`), and a
//! terminal emulator (`vt100`) replays what they wrote. The raw bytes must
//! show each phase by name with its byte counts, reaching its total; the
//! screen left at the end must hold exactly what the same command prints
//! without a terminal: every bar cleared, every `-v` line, warning and
//! error whole on a line of its own. Without a terminal on stderr (a pipe,
//! a file, or `BDBTOOLS_PROGRESS=0`) not one byte more is written. A bar
//! that interleaved with an output line, lingered after the work, or
//! leaked into a log file or a script's pipe would break exactly the
//! operators and scripts the Berkeley DB-compatible outputs are for.

use crate::common::{self, cmd};
use indicatif::HumanBytes;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The size of the pseudo-terminal, and of the emulator reading it.
const COLS: u16 = 100;
const ROWS: u16 = 50;

fn have_script() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("script").is_file()));
    common::require(found, "script", "apt-get install bsdutils (util-linux)")
}

/// `word` quoted for `sh`.
fn quoted(word: &OsStr) -> String {
    let text = String::from_utf8_lossy(word.as_bytes());
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What a terminal received from one run, and its exit status.
struct OnTerminal {
    code: Option<i32>,
    raw: Vec<u8>,
}

impl OnTerminal {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The lines a terminal shows once the run is over, trailing blanks
    /// dropped.
    fn screen(&self) -> Vec<String> {
        let mut vt = vt100::Parser::new(ROWS * 4, COLS, 0);
        vt.process(&self.raw);
        // Rows a long line wrapped onto come back joined.
        let mut lines: Vec<String> = vt
            .screen()
            .contents()
            .lines()
            .map(|r| r.trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// Each frame a bar drew: the text between carriage returns, without
    /// the line clears.
    fn frames(&self) -> Vec<String> {
        self.text()
            .split('\r')
            .map(|f| f.replace("\x1b[2K", "").trim_end().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    /// The (done, total) counts the frames of `phase`'s bar showed, as
    /// printed (`1.50 MiB`).
    fn counts(&self, phase: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in self.frames() {
            let Some(rest) = f.strip_prefix(phase) else {
                continue;
            };
            let Some((_, after_bar)) = rest.split_once("] ") else {
                continue;
            };
            let Some((done, total)) = after_bar.split_once('/') else {
                continue;
            };
            let total: Vec<&str> = total.split_whitespace().take(2).collect();
            out.push((done.to_owned(), total.join(" ")));
        }
        out
    }

    /// `phase`'s bar was drawn with `total`, and reached it.
    fn reached(&self, phase: &str, total: &str) {
        let counts = self.counts(phase);
        assert!(
            counts.iter().any(|(d, t)| d == total && t == total),
            "no frame of {phase:?} shows {total}/{total}: {counts:?}\n{:?}",
            self.text()
        );
    }

    /// `phase`'s bar was drawn, and reached its total.
    fn reached_its_total(&self, phase: &str) {
        let counts = self.counts(phase);
        assert!(
            counts.iter().any(|(d, t)| d == t),
            "no frame of {phase:?} reaches its total: {counts:?}\n{:?}",
            self.text()
        );
    }
}

/// Runs `tool args` with a pseudo-terminal as its stdin, stdout and
/// stderr, `COLS` x `ROWS`; `shell_tail` is appended to the command (a
/// redirection). `env` adds variables.
fn on_terminal(tool: &str, args: &[&OsStr], env: &[(&str, &str)], shell_tail: &str) -> OnTerminal {
    let exe = assert_cmd::cargo::cargo_bin(tool);
    let mut line = format!(
        "stty rows {ROWS} cols {COLS} && exec {}",
        quoted(exe.as_os_str())
    );
    for a in args {
        line.push(' ');
        line.push_str(&quoted(a));
    }
    line.push_str(shell_tail);
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c"])
        .arg(&line)
        .arg("/dev/null")
        .env_remove("DB_HOME")
        .env_remove("BDBTOOLS_PROGRESS")
        .env("SHELL", "/bin/sh")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run script");
    OnTerminal {
        code: out.status.code(),
        raw: out.stdout,
    }
}

/// The same command with pipes for stdout and stderr.
struct Plain {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn plain(tool: &str, args: &[&OsStr]) -> Plain {
    let out = cmd(tool).args(args).output().unwrap();
    Plain {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// A dump of `n` pairs with values of `len` bytes (about `n * 2 * len`
/// bytes of text).
fn dump_text(n: u32, len: usize) -> String {
    let mut text = String::from("VERSION=3\nformat=print\ntype=btree\nHEADER=END\n");
    for i in 0..n {
        text.push_str(&format!(" key{i:07}\n {}\n", "v".repeat(len)));
    }
    text.push_str("DATA=END\n");
    text
}

/// An environment at `dir/env` with a.db (about 4 MiB) and b.db, loaded
/// without a terminal; returns its home.
fn environment(dir: &Path) -> PathBuf {
    let home = dir.join("env");
    std::fs::create_dir(&home).unwrap();
    for (name, n, len) in [("a.db", 12_000, 300), ("b.db", 3_000, 100)] {
        let input = dir.join(format!("{name}.txt"));
        std::fs::write(&input, dump_text(n, len)).unwrap();
        let input = input.into_os_string();
        let home = home.clone().into_os_string();
        let args = [
            OsStr::new("-f"),
            &input,
            OsStr::new("-h"),
            &home,
            OsStr::new(name),
        ];
        let p = plain("db_load", &args);
        assert_eq!(p.code, Some(0), "{}", p.stderr);
    }
    home
}

fn db_sizes(home: &Path) -> u64 {
    size(&home.join("a.db")) + size(&home.join("b.db"))
}

/// Digits and `from` masked: what two runs at other times into other
/// directories print alike.
fn masked(lines: &[String], from: &str, to: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.replace(from, to)
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn a_backup_shows_each_phase_and_the_terminal_ends_as_without_bars() {
    if !have_script() {
        return;
    }
    let d = common::home();
    let home = environment(d.path());
    let h = home.as_os_str().to_owned();
    let bk = d.path().join("bk").into_os_string();

    let t = on_terminal(
        "db_hotbackup",
        &[OsStr::new("-h"), &h, OsStr::new("-b"), &bk],
        &[],
        "",
    );
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    t.reached("copy databases", &HumanBytes(db_sizes(&home)).to_string());
    t.reached_its_total("copy logs");
    t.reached_its_total("redo");
    assert_eq!(t.screen(), Vec::<String>::new(), "every bar cleared");
    assert!(
        !t.text().contains("\x1b[?25l"),
        "the cursor is never hidden"
    );

    // -v lines (on stdout, the same terminal) come out whole, around the
    // bar, and the screen holds what a run without a terminal prints.
    let bk2 = d.path().join("bk2").into_os_string();
    let bk3 = d.path().join("bk3").into_os_string();
    let t = on_terminal(
        "db_hotbackup",
        &[
            OsStr::new("-v"),
            OsStr::new("-h"),
            &h,
            OsStr::new("-b"),
            &bk2,
        ],
        &[],
        "",
    );
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    let p = plain(
        "db_hotbackup",
        &[
            OsStr::new("-v"),
            OsStr::new("-h"),
            &h,
            OsStr::new("-b"),
            &bk3,
        ],
    );
    assert_eq!(p.code, Some(0), "{}", p.stderr);
    assert_eq!(p.stderr, "");
    let (bk2, bk3) = (bk2.to_string_lossy(), bk3.to_string_lossy());
    assert_eq!(
        masked(&t.screen(), &bk2, "BK"),
        masked(&lines(&p.stdout), &bk3, "BK")
    );
}

#[test]
fn recovery_shows_redo_except_beside_its_own_feedback() {
    if !have_script() {
        return;
    }
    let d = common::home();
    let home = environment(d.path());
    let h = home.into_os_string();
    let t = on_terminal(
        "db_recover",
        &[OsStr::new("-c"), OsStr::new("-h"), &h],
        &[],
        "",
    );
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    t.reached_its_total("redo");
    assert_eq!(t.screen(), Vec::<String>::new());

    // -f is Berkeley DB's progress on stdout: no bar beside it.
    let t = on_terminal(
        "db_recover",
        &[OsStr::new("-c"), OsStr::new("-f"), OsStr::new("-h"), &h],
        &[],
        "",
    );
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    assert!(t.counts("redo").is_empty(), "{:?}", t.text());
    assert_eq!(t.screen(), ["recovery 100% complete"]);
}

#[test]
fn a_load_shows_its_input_and_its_commit_and_warnings_come_out_whole() {
    if !have_script() {
        return;
    }
    let d = common::home();
    let home = d.path().join("env");
    std::fs::create_dir(&home).unwrap();
    let input = d.path().join("dump.txt");
    std::fs::write(&input, dump_text(20_000, 200)).unwrap();
    let (f, h) = (input.clone().into_os_string(), home.into_os_string());
    let t = on_terminal(
        "db_load",
        &[
            OsStr::new("-f"),
            &f,
            OsStr::new("-h"),
            &h,
            OsStr::new("a.db"),
        ],
        &[],
        "",
    );
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    t.reached("load", &HumanBytes(size(&input)).to_string());
    assert!(
        t.frames().iter().any(|f| f.starts_with("commit")),
        "{:?}",
        t.text()
    );
    assert_eq!(t.screen(), Vec::<String>::new());

    // Keys that exist, under -n: each warning is printed while the bar
    // runs, and the screen ends as stderr does without a terminal.
    let again = d.path().join("again.txt");
    std::fs::write(&again, dump_text(3, 200)).unwrap();
    let again = again.into_os_string();
    let args = [
        OsStr::new("-n"),
        OsStr::new("-f"),
        &again,
        OsStr::new("-h"),
        &h,
        OsStr::new("a.db"),
    ];
    let t = on_terminal("db_load", &args, &[], "");
    let p = plain("db_load", &args);
    assert_eq!((t.code, p.code), (Some(1), Some(1)), "{:?}", t.text());
    assert_eq!(p.stdout, "");
    assert_eq!(t.screen(), lines(&p.stderr));

    // Input typed at the terminal (stdin is the terminal, here at its
    // end): no spinner turns beside what the operator types.
    let args = [OsStr::new("-h"), &h, OsStr::new("typed.db")];
    let t = on_terminal("db_load", &args, &[], "");
    let p = plain("db_load", &args);
    assert_eq!((t.code, p.code), (Some(2), Some(2)), "{:?}", t.text());
    assert!(
        !t.frames().iter().any(|f| f.starts_with("load")),
        "{:?}",
        t.text()
    );
    assert_eq!(t.screen(), lines(&p.stderr));
}

#[test]
fn a_copy_of_two_files_shows_their_total_and_its_lines_and_errors_come_out_whole() {
    if !have_script() {
        return;
    }
    let d = common::home();
    let home = environment(d.path());
    let to = d.path().join("to");
    std::fs::create_dir(&to).unwrap();
    let (h, t_dir) = (home.clone().into_os_string(), to.clone().into_os_string());
    let args = [
        OsStr::new("-v"),
        OsStr::new("-h"),
        &h,
        OsStr::new("-t"),
        &t_dir,
        OsStr::new("a.db"),
        OsStr::new("b.db"),
    ];
    let t = on_terminal("db_copy", &args, &[], "");
    assert_eq!(t.code, Some(0), "{:?}", t.text());
    t.reached("copy", &HumanBytes(db_sizes(&home)).to_string());
    for f in ["a.db", "b.db"] {
        std::fs::remove_file(to.join(f)).unwrap();
    }
    let p = plain("db_copy", &args);
    assert_eq!((p.code, p.stderr.as_str()), (Some(0), ""));
    assert_eq!(t.screen(), lines(&p.stdout));

    // The second file is missing: the bar drawn for the first is gone
    // before the error line.
    let args = [
        OsStr::new("-h"),
        &h,
        OsStr::new("-t"),
        &t_dir,
        OsStr::new("a.db"),
        OsStr::new("missing.db"),
    ];
    let t = on_terminal("db_copy", &args, &[], "");
    let p = plain("db_copy", &args);
    assert_eq!((t.code, p.code), (Some(1), Some(1)), "{:?}", t.text());
    assert!(!t.counts("copy").is_empty(), "{:?}", t.text());
    assert_eq!(t.screen(), lines(&p.stderr));
}

#[test]
fn without_a_terminal_on_stderr_nothing_more_is_printed() {
    if !have_script() {
        return;
    }
    let d = common::home();
    let home = environment(d.path());
    let h = home.into_os_string();
    let bk = d.path().join("bk").into_os_string();
    let to = d.path().join("to");
    std::fs::create_dir(&to).unwrap();
    let to = to.into_os_string();
    let input = d.path().join("a.db.txt").into_os_string();
    let load_home = d.path().join("load");
    std::fs::create_dir(&load_home).unwrap();
    let load_home = load_home.into_os_string();
    let runs: [(&str, Vec<&OsStr>); 4] = [
        (
            "db_hotbackup",
            vec![OsStr::new("-h"), &h, OsStr::new("-b"), &bk],
        ),
        ("db_recover", vec![OsStr::new("-c"), OsStr::new("-h"), &bk]),
        (
            "db_load",
            vec![
                OsStr::new("-f"),
                &input,
                OsStr::new("-h"),
                &load_home,
                OsStr::new("c.db"),
            ],
        ),
        (
            "db_copy",
            vec![
                OsStr::new("-h"),
                &h,
                OsStr::new("-t"),
                &to,
                OsStr::new("a.db"),
                OsStr::new("b.db"),
            ],
        ),
    ];
    for (tool, args) in &runs {
        // Pipes: what the existing expectations (tests/conformance.rs, the
        // golden files) see. These runs print nothing at all.
        let p = plain(tool, args);
        assert_eq!(p.code, Some(0), "{tool}: {}", p.stderr);
        assert_eq!((p.stdout.as_str(), p.stderr.as_str()), ("", ""), "{tool}");
    }
    // stdout on the terminal, stderr into a file: stderr decides, so no
    // bar anywhere.
    let err = d.path().join("stderr");
    let bk2 = d.path().join("bk2").into_os_string();
    let tail = format!(" 2>{}", quoted(err.as_os_str()));
    let t = on_terminal(
        "db_hotbackup",
        &[
            OsStr::new("-v"),
            OsStr::new("-h"),
            &h,
            OsStr::new("-b"),
            &bk2,
        ],
        &[],
        &tail,
    );
    assert_eq!(t.code, Some(0));
    assert_eq!(std::fs::read(&err).unwrap(), b"");
    assert!(t.counts("copy databases").is_empty(), "{:?}", t.text());
    assert!(!t.text().contains('\x1b'), "{:?}", t.text());
    // BDBTOOLS_PROGRESS=0 turns the bars off on a terminal too.
    let bk3 = d.path().join("bk3").into_os_string();
    let t = on_terminal(
        "db_hotbackup",
        &[OsStr::new("-h"), &h, OsStr::new("-b"), &bk3],
        &[("BDBTOOLS_PROGRESS", "0")],
        "",
    );
    assert_eq!(t.code, Some(0));
    assert_eq!(t.raw, b"");
}
