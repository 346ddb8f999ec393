//! The man pages stay honest: every tool has a page, its option list and
//! the tool's getopt string name the same letters, its SYNOPSIS shows every
//! letter of the usage text (and none the tool would reject), its EXIT
//! STATUS names the tool's error status, and every page under `man/` is
//! clean for `mandoc -T lint` and renders with `man -l`.
//!
//! Why: the usage texts and getopt strings live in tools/cli/spec.rs and
//! change with the code; a man page that documents a flag the tool rejects,
//! or misses one it accepts, misleads the operator at the worst moment
//! (during a failover). The two external checks fail when `mandoc` or
//! `man` is not installed (with `BDBTOOLS_ALLOW_MISSING=1`, for developers
//! only, they skip with a note).
//!
//! A page is read as mdoc(7) (`.Sh`, `.It Fl X`, `Fl XYZ`); pages written
//! with man(7) macros are understood too (`.SH`, `.TP` followed by `\-X`).
//! While the pages of other tools are still being written, setting
//! `BDBTOOLS_MAN_ALLOW_MISSING=1` turns a missing tool page into a printed
//! note instead of a failure.

use bdbtools::cli::{Spec, Tool};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn page_path(spec: &Spec) -> PathBuf {
    man_dir().join(format!("{}.1", spec.name))
}

fn allow_missing() -> bool {
    std::env::var_os("BDBTOOLS_MAN_ALLOW_MISSING").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The page of each tool, read; a missing page fails unless allowed.
fn tool_pages() -> Vec<(&'static Spec, String)> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for tool in Tool::ALL {
        let spec = tool.spec();
        let path = page_path(spec);
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push((spec, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(path),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        if allow_missing() {
            eprintln!(
                "note: BDBTOOLS_MAN_ALLOW_MISSING is set; skipping missing pages: {}",
                list.join(", ")
            );
        } else {
            panic!("tools without a man page: {}", list.join(", "));
        }
    }
    out
}

/// Every page under man/ with a section suffix 1, 5 or 7, sorted.
fn all_pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(man_dir())
        .expect("read man/")
        .map(|e| e.expect("read man/ entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("1") | Some("5") | Some("7")
            )
        })
        .collect();
    v.sort();
    v
}

/// The lines of the section named `name` (`.Sh NAME` in mdoc, `.SH NAME`
/// in man), up to the next section.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix(".Sh ")
            .or_else(|| line.strip_prefix(".SH "))
        {
            inside = rest.trim().trim_matches('"').eq_ignore_ascii_case(name);
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    out
}

/// The option letters of the word after an mdoc `Fl` (`cDuVv`, `h`); a
/// word starting with a dash is a long option (`Fl -help`) and has none.
fn fl_letters(word: &str) -> Vec<char> {
    if word.starts_with('-') {
        return Vec::new();
    }
    word.chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The option letters of a man(7) word `\-cv`; `\-\-help` has none.
fn dash_letters(word: &str) -> Vec<char> {
    match word.strip_prefix("\\-") {
        Some(rest) => fl_letters(rest.strip_prefix("\\").unwrap_or(rest)),
        None => Vec::new(),
    }
}

/// The letters the option list of a page documents: each `Fl X` of an
/// `.It` line (mdoc, `.It Fl R , Fl r` documents two), or each `\-X` of
/// the tag line after a `.TP` (man), in the DESCRIPTION and OPTIONS
/// sections.
fn documented_options(text: &str) -> BTreeSet<char> {
    let mut found = BTreeSet::new();
    let first = |letters: Vec<char>| letters.first().copied();
    for name in ["DESCRIPTION", "OPTIONS"] {
        let lines = section(text, name);
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix(".It ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                for pair in words.windows(2) {
                    if pair[0] == "Fl" {
                        found.extend(first(fl_letters(pair[1])));
                    }
                }
            } else if line.starts_with(".TP") {
                let Some(tag) = lines.get(i + 1) else {
                    continue;
                };
                for word in tag.split(|c: char| c.is_whitespace() || c == '"') {
                    found.extend(first(dash_letters(word.trim_start_matches("\\fB"))));
                }
            }
        }
    }
    found
}

/// The letters the SYNOPSIS shows: every token after `Fl` (mdoc) and
/// every `\-X...` word (man).
fn synopsis_letters(text: &str) -> BTreeSet<char> {
    let mut found = BTreeSet::new();
    for line in section(text, "SYNOPSIS") {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "Fl" || *w == ".Fl" {
                if let Some(next) = words.get(i + 1) {
                    found.extend(fl_letters(next));
                }
            } else {
                found.extend(dash_letters(w.trim_start_matches("\\fB")));
            }
        }
    }
    found
}

/// The letters a usage text shows (the same reading as spec.rs's own
/// test: words after a dash, brackets stripped).
fn usage_letters(spec: &Spec) -> BTreeSet<char> {
    let mut found = BTreeSet::new();
    for word in spec
        .usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
    {
        if let Some(letters) = word.strip_prefix('-') {
            found.extend(letters.chars().filter(|c| c.is_ascii_alphanumeric()));
        }
    }
    found
}

fn getopt_letters(spec: &Spec) -> BTreeSet<char> {
    spec.letters().map(|(c, _)| c).collect()
}

#[test]
fn every_tool_has_a_page() {
    let pages = tool_pages();
    if !allow_missing() {
        assert_eq!(pages.len(), Tool::ALL.len());
    }
    for extra in ["db_format.5", "db_hotfailover.7"] {
        assert!(man_dir().join(extra).is_file(), "man/{extra} is missing");
    }
}

#[test]
fn option_lists_match_the_getopt_strings() {
    let mut problems = Vec::new();
    for (spec, text) in tool_pages() {
        let documented = documented_options(&text);
        let accepted = getopt_letters(spec);
        for c in accepted.difference(&documented) {
            problems.push(format!(
                "{}.1: -{c} is accepted (getopt \"{}\") but not in the option list",
                spec.name, spec.optstring
            ));
        }
        for c in documented.difference(&accepted) {
            problems.push(format!(
                "{}.1: documents -{c}, which the tool rejects (getopt \"{}\")",
                spec.name, spec.optstring
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn synopsis_shows_every_usage_letter() {
    let mut problems = Vec::new();
    for (spec, text) in tool_pages() {
        let shown = synopsis_letters(&text);
        assert!(
            !shown.is_empty(),
            "{}.1: no SYNOPSIS options found",
            spec.name
        );
        for c in usage_letters(spec).difference(&shown) {
            problems.push(format!(
                "{}.1: the usage shows -{c} but the SYNOPSIS does not",
                spec.name
            ));
        }
        for c in shown.difference(&getopt_letters(spec)) {
            problems.push(format!(
                "{}.1: the SYNOPSIS shows -{c}, which the tool rejects",
                spec.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn exit_status_names_the_error_status() {
    let mut problems = Vec::new();
    for (spec, text) in tool_pages() {
        let exit = section(&text, "EXIT STATUS").join("\n");
        for code in [0, spec.error_exit] {
            let shown = exit
                .split(|c: char| !c.is_ascii_digit())
                .any(|w| w == code.to_string());
            if !shown {
                problems.push(format!(
                    "{}.1: EXIT STATUS does not mention {code}",
                    spec.name
                ));
            }
        }
        if !text.contains("DB_HOME") {
            problems.push(format!("{}.1: DB_HOME is not documented", spec.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs `program args`. A program that is not installed fails the test;
/// with `BDBTOOLS_ALLOW_MISSING=1` the result is `None` (after a note).
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    match Command::new(program)
        .args(args)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::common::require(false, program, "apt-get install mandoc man-db");
            None
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}

/// Lines mandoc prints about its own database rather than about a page
/// (`.Xr` to a system page whose mandoc.db entry is stale).
fn is_about_mandoc_db(line: &str) -> bool {
    line.starts_with("mandoc: outdated mandoc.db")
}

#[test]
fn pages_pass_mandoc_lint() {
    let pages = all_pages();
    assert!(!pages.is_empty(), "no pages under man/");
    let mut problems = Vec::new();
    for page in &pages {
        let Some(out) = run(
            "mandoc",
            &["-T".as_ref(), "lint".as_ref(), page.as_os_str()],
        ) else {
            return;
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().filter(|l| !is_about_mandoc_db(l)).collect();
        if !out.status.success() || !lines.is_empty() {
            problems.push(format!(
                "{} ({}):\n{}",
                page.display(),
                out.status,
                lines.join("\n")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn pages_render_with_man() {
    let mut problems = Vec::new();
    for page in all_pages() {
        let Some(out) = run(
            "man",
            &[
                "-P".as_ref(),
                "cat".as_ref(),
                "-l".as_ref(),
                page.as_os_str(),
            ],
        ) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !stdout.contains("NAME") || !stderr.trim().is_empty() {
            problems.push(format!(
                "{}: man -l exited {} with {} bytes of output; stderr: {}",
                page.display(),
                out.status,
                stdout.len(),
                stderr.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The readers above, on small samples of both macro sets.
#[test]
fn readers_understand_mdoc_and_man() {
    let mdoc = ".Sh SYNOPSIS\n.Nm\n.Op Fl adlsVv\n.Op Fl h Ar home\n.Fl b Ar dir\n\
                .Sh DESCRIPTION\n.Bl -tag -width Ds\n.It Fl a\nx\n.It Fl h Ar home\ny\n\
                .It Fl -help\nz\n.It Fl R , Fl r\nw\n.El\n.Sh EXIT STATUS\n0 or 1\n";
    assert_eq!(
        synopsis_letters(mdoc),
        "adlsVvhb".chars().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        documented_options(mdoc),
        "ahRr".chars().collect::<BTreeSet<_>>()
    );
    let man = ".SH SYNOPSIS\n\\fBdb_x\\fR [\\fB\\-cv\\fR] [\\fB\\-h\\fR \\fIhome\\fR]\n\
               .SH OPTIONS\n.TP\n.B \\-c\nx\n.TP\n.BI \\-h \" home\"\ny\n.TP\n.B \\-\\-help\nz\n.TP\n.BR \\-x \", \" \\-X \" A\"\n";
    assert_eq!(
        synopsis_letters(man),
        "cvh".chars().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        documented_options(man),
        "chxX".chars().collect::<BTreeSet<_>>()
    );
}
