//! The command-line harness against the real thing: our getopt emulation
//! must give byte for byte what Berkeley DB 5.3's tools print for the same
//! bad command lines, and the usage texts people read are pinned in a
//! golden file.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use bdbtools::cli::{self, Tool};

use crate::common;

/// What one invocation printed and returned.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ours(tool: Tool, prog: &str, args: &[String]) -> Outcome {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = args.iter().map(OsString::from).collect();
    let code = cli::run_with(
        tool,
        prog,
        argv,
        Ok,
        |_, _| panic!("{args:?} must not reach run"),
        &mut out,
        &mut err,
    );
    Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn theirs(tool: Tool, prog: &str, args: &[String], cwd: &std::path::Path) -> Outcome {
    let output = Command::new(common::bdb_name(tool.name()))
        .arg0(prog)
        .args(args)
        .current_dir(cwd)
        .env_remove("DB_HOME")
        .env("LC_ALL", "C")
        .output()
        .expect("run a db5.3 tool");
    Outcome {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: without_pid(prog, &String::from_utf8(output.stderr).unwrap()),
    }
}

/// Berkeley DB's db_replicate writes its pid after the program name in
/// its usage line (`usage: PROG(4242) [-MVv]`); ours does not (a daemon's
/// messages carry no pid), so that one difference is taken out.
fn without_pid(prog: &str, text: &str) -> String {
    let at = format!("usage: {prog}(");
    let Some(i) = text.find(&at) else {
        return text.to_string();
    };
    let open = i + at.len() - 1;
    match text[open..].find(')') {
        Some(close)
            if text[open + 1..open + close]
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            format!("{}{}", &text[..open], &text[open + close + 1..])
        }
        _ => text.to_string(),
    }
}

/// Bad command lines for `tool` that getopt (or the operand check) rejects
/// before the tool looks at any file.
fn bad_command_lines(tool: Tool) -> Vec<Vec<String>> {
    let spec = tool.spec();
    let (flag, _) = spec
        .letters()
        .find(|&(_, value)| !value)
        .expect("every tool has a flag");
    let cluster = format!("-{flag}Q");
    let mut lines = vec![
        vec!["-Q"],
        vec![&cluster],
        vec!["-h"],
        vec!["-P"],
        vec!["-h", "somewhere", "-Q"],
        vec!["x", "-Q"],
        vec!["--foo"],
        vec!["-hsomewhere", "-P"],
    ];
    if spec.operands.max == Some(0) {
        lines.extend([vec!["x"], vec!["--", "-x"], vec!["-h", "d", "y"]]);
    }
    lines
        .into_iter()
        .map(|line| line.into_iter().map(String::from).collect())
        .collect()
}

fn spec_error(tool: Tool) -> i32 {
    tool.spec().error_exit
}

#[test]
fn getopt_errors_match_berkeley_db() {
    if !common::have_bdb() {
        return;
    }
    let cwd = common::home();
    for tool in Tool::ALL.into_iter().filter(|&t| t != Tool::Copy) {
        for args in bad_command_lines(tool) {
            let theirs = theirs(tool, "PROG", &args, cwd.path());
            let ours = ours(tool, "PROG", &args);
            assert_eq!(ours, theirs, "{} {args:?}", tool.name());
            assert_ne!(ours.code, 0);
        }
        // getopt acts on -V where it meets it: before a later error, never
        // after an earlier one. Only the version lines themselves differ.
        for (args, code) in [(["-V", "-Q"], 0), (["-Q", "-V"], spec_error(tool))] {
            let args = args.map(String::from);
            let theirs = theirs(tool, "PROG", &args, cwd.path());
            let ours = ours(tool, "PROG", &args);
            assert_eq!(
                (ours.code, theirs.code),
                (code, code),
                "{} {args:?}",
                tool.name()
            );
            assert_eq!(ours.stderr, theirs.stderr, "{} {args:?}", tool.name());
        }
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "a usage error created files: {left:?}");
}

#[test]
fn usage_texts() {
    let mut text = String::new();
    for tool in Tool::ALL {
        text.push_str(&tool.spec().usage_text(tool.name()));
    }
    common::assert_golden("usage.txt", &text);
}

#[test]
fn golden_diff_marks_lines() {
    assert_eq!(common::diff("a\nb\nc\n", "a\nc\nd\n"), " a\n-b\n c\n+d\n");
    assert_eq!(
        common::diff("same", "same\n"),
        " same\n(the two differ in their final newline)\n"
    );
}
