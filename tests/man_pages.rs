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
//! Every page is written in one macro set, mdoc(7) (`.Dd`/`.Dt`/`.Os`
//! header, `.Sh`, `.It Fl X`, `Fl XYZ`), so they render with the same
//! header and layout; a page in man(7) macros fails `pages_are_mdoc`.
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

/// The lines of the section named `name` (`.Sh NAME`), up to the next
/// section.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(".Sh ") {
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

/// The letters the option list of a page documents: each `Fl X` of an
/// `.It` line (`.It Fl R , Fl r` documents two) in the DESCRIPTION.
fn documented_options(text: &str) -> BTreeSet<char> {
    let mut found = BTreeSet::new();
    for line in section(text, "DESCRIPTION") {
        if let Some(rest) = line.strip_prefix(".It ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            for pair in words.windows(2) {
                if pair[0] == "Fl" {
                    found.extend(fl_letters(pair[1]).first().copied());
                }
            }
        }
    }
    found
}

/// The letters the SYNOPSIS shows: every token after `Fl`.
fn synopsis_letters(text: &str) -> BTreeSet<char> {
    let mut found = BTreeSet::new();
    for line in section(text, "SYNOPSIS") {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "Fl" || *w == ".Fl" {
                if let Some(next) = words.get(i + 1) {
                    found.extend(fl_letters(next));
                }
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

/// Regression: four pages (db_checkpoint, db_printlog, db_recover,
/// db_stat) were written in man(7) macros and eight in mdoc(7), so the
/// pages rendered with two different headers and layouts. Every page now
/// opens with the mdoc header and uses no man(7) request.
#[test]
fn pages_are_mdoc() {
    const MAN_REQUESTS: [&str; 12] = [
        ".TH", ".SH", ".SS", ".TP", ".IP", ".PP", ".LP", ".B ", ".I ", ".BR", ".IR", ".RB",
    ];
    let mut problems = Vec::new();
    for page in all_pages() {
        let text = std::fs::read_to_string(&page).expect("read page");
        let head: Vec<&str> = text.lines().take(3).collect();
        let mdoc_head = head.len() == 3
            && head[0].starts_with(".Dd ")
            && head[1].starts_with(".Dt ")
            && head[2].starts_with(".Os");
        if !mdoc_head {
            problems.push(format!("{}: no .Dd/.Dt/.Os header", page.display()));
        }
        for (n, line) in text.lines().enumerate() {
            if MAN_REQUESTS.iter().any(|r| line.starts_with(r)) {
                problems.push(format!(
                    "{}:{}: man(7) request: {line}",
                    page.display(),
                    n + 1
                ));
            }
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

/// The readers above, on a small sample.
#[test]
fn readers_understand_mdoc() {
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
}

/// The shape of an output line, to compare a page's sample with a real
/// run: each ctime(3) date becomes `<date>` and each run of digits `N`.
fn shape(line: &str) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let date = words.len() >= i + 5
            && DAYS.contains(&words[i].trim_start_matches('('))
            && words[i + 3].matches(':').count() == 2
            && words[i + 4].chars().take(4).all(|c| c.is_ascii_digit());
        if date {
            let lead = if words[i].starts_with('(') { "(" } else { "" };
            let tail = words[i + 4].trim_start_matches(|c: char| c.is_ascii_digit());
            out.push(format!("{lead}<date>{tail}"));
            i += 5;
            continue;
        }
        let mut w = String::new();
        let mut in_digits = false;
        for c in words[i].chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    w.push('N');
                }
                in_digits = true;
            } else {
                w.push(c);
                in_digits = false;
            }
        }
        out.push(w);
        i += 1;
    }
    out.join(" ")
}

/// The literal blocks of `page` whose first line starts with `prefix`,
/// each as its lines.
fn literal_blocks(page: &str, prefix: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(man_dir().join(page)).expect("read page");
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in text.lines() {
        match cur.as_mut() {
            None if line.starts_with(".Bd -literal") => cur = Some(Vec::new()),
            None => {}
            Some(b) if line == ".Ed" => {
                if b.first().is_some_and(|l| l.starts_with(prefix)) {
                    blocks.push(std::mem::take(b));
                }
                cur = None;
            }
            Some(b) => b.push(line.to_string()),
        }
    }
    blocks
}

/// Runs one of our tools in `cwd`; (status, stdout, stderr).
fn tool(cwd: &Path, name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::common::cmd(name)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run the tool");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shapes_hide_dates_and_numbers() {
    assert_eq!(
        shape(
            "x: consistency point [10][114449] (last commit replayed at Wed Nov  5 14:07:40 2026)"
        ),
        "x: consistency point [N][N] (last commit replayed at <date>)"
    );
    assert_eq!(
        shape("started at Mon Dec 7 10:08:31 2026"),
        "started at <date>"
    );
    assert_eq!(
        shape("copying env/log.0000000010 to bk"),
        "copying env/log.N to bk"
    );
}

/// Regression: db_hotbackup(1)'s `-v` sample lacked lines the tool prints
/// (the `removing` lines of a full backup over an earlier one, the time of
/// the last commit replayed, `remove unnecessary log files`), so a script
/// written from it misread real output. The page's two samples (a full
/// backup over an earlier one, an update) are compared, line shape by
/// line shape, with real runs in the same situations: each real line has
/// a shape the sample shows, and each sample line happens.
#[test]
fn db_hotbackup_v_samples_match_real_output() {
    use crate::hot_failover::Writer;
    let blocks = literal_blocks("db_hotbackup.1", "db_hotbackup: hot backup started");
    assert_eq!(blocks.len(), 2, "a full and an update sample: {blocks:?}");
    let t = crate::common::home();
    let env = t.path().join("env");
    std::fs::create_dir(&env).unwrap();
    // Commits after the last checkpoint (a killed writer), so that
    // recovery has some to replay.
    let write = |n: u64| {
        let w = Writer::start(&env, &["-i", "1", "-c", "100", "--lg-max", "65536"]);
        let base = w.acked();
        w.wait_for(base + n);
        w.kill();
    };
    write(250);
    let (code, _, err) = tool(t.path(), "db_hotbackup", &["-h", "env", "-b", "bk"]);
    assert_eq!(code, Some(0), "{err}");
    write(150);
    let (code, full, err) = tool(t.path(), "db_hotbackup", &["-v", "-h", "env", "-b", "bk"]);
    assert_eq!(code, Some(0), "{err}");
    write(500);
    let (code, update, err) = tool(
        t.path(),
        "db_hotbackup",
        &["-v", "-u", "-h", "env", "-b", "bk"],
    );
    assert_eq!(code, Some(0), "{err}");
    for (sample, real) in blocks.iter().zip([&full, &update]) {
        let want: BTreeSet<String> = sample.iter().map(|l| shape(l)).collect();
        let got: BTreeSet<String> = real.lines().map(shape).collect();
        assert_eq!(
            got,
            want,
            "the sample:\n{}\nreal output:\n{real}",
            sample.join("\n")
        );
    }
}

/// Regression: `db_hotbackup -u -b missing-dir` said "missing-dir: not a
/// complete backup (no manifest); run a full db_hotbackup first", which
/// sends the operator to make a full backup into a mistyped directory.
/// It now names the directory as missing (or as not a directory), as
/// db_hotbackup(1) says, and creates nothing.
#[test]
fn db_hotbackup_update_of_a_missing_directory_names_it() {
    let t = crate::common::home();
    crate::procedures::odd_env(&t.path().join("env"), &["a.db"]);
    std::fs::write(t.path().join("afile"), b"x").unwrap();
    for (target, why) in [
        ("missing-dir", "No such file or directory"),
        ("afile", "Not a directory"),
    ] {
        let (code, out, err) = tool(t.path(), "db_hotbackup", &["-u", "-h", "env", "-b", target]);
        assert_eq!(code, Some(1), "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(
            err,
            format!("db_hotbackup: {target}: backup directory: {why}\ndb_hotbackup: HOT BACKUP FAILED!\n")
        );
    }
    assert!(!t.path().join("missing-dir").exists());
    let page = std::fs::read_to_string(man_dir().join("db_hotbackup.1")).unwrap();
    assert!(page.contains(".Ql db_hotbackup: bk: backup directory: No such file or directory ."));
}

/// Regression: db_verify of a truncated database printed a line for each
/// page the file lacked ("page neither in use nor free", a hundred of
/// them, then "N more pages"), burying the one fact that mattered. A
/// file shorter than its meta page says is now one line naming the file
/// and the missing range, in the shape db_verify(1) shows.
#[test]
fn db_verify_names_a_truncated_file_in_one_line() {
    let t = crate::common::home();
    let env = t.path().join("env");
    {
        use libcore::{Env, EnvOptions};
        std::fs::create_dir(&env).unwrap();
        let e = Env::open(&env, EnvOptions::create()).unwrap();
        let mut txn = e.begin().unwrap();
        let db = txn.create_db("a.db", Some(4096)).unwrap();
        for i in 0..400u32 {
            txn.put(&db, &i.to_be_bytes(), &[7u8; 900]).unwrap();
        }
        txn.commit().unwrap();
        e.close().unwrap();
    }
    let full = std::fs::metadata(env.join("a.db")).unwrap().len() / 4096;
    assert!(full > 50, "{full} pages");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.join("a.db"))
        .unwrap();
    f.set_len(10 * 4096).unwrap();
    drop(f);
    let (code, out, err) = tool(t.path(), "db_verify", &["-h", "env", "a.db"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "Verification of a.db failed.\n");
    let want = format!(
        "db_verify: a.db: file is truncated: 40960 bytes, the meta page counts {full} pages; pages 10 to {} are missing\n\
         db_verify: a.db: DB_VERIFY_BAD: Database verification failed\n",
        full - 1
    );
    assert_eq!(err, want);
    let (code, out, err) = tool(t.path(), "db_verify", &["-q", "-h", "env", "a.db"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    // The page shows the same shape.
    let page = std::fs::read_to_string(man_dir().join("db_verify.1")).unwrap();
    let shown = page
        .lines()
        .find_map(|l| l.strip_prefix(".Dl db_verify: a.db: file is truncated"))
        .expect("db_verify.1 shows the truncated-file line");
    assert_eq!(
        shape(&format!("db_verify: a.db: file is truncated{shown}")),
        shape(
            err.lines()
                .next()
                .map(|l| format!("db_verify: {l}"))
                .unwrap()
                .as_str()
        )
    );
}

/// Regression: the README said every tool falls back to the current
/// directory without `-h` and `$DB_HOME`; `db_hotbackup` refuses instead
/// (as Berkeley DB's does) and `db_copy` takes plain paths. Each tool is
/// run three ways: `-h`, `$DB_HOME`, and neither from inside the
/// environment, and the README is checked to say so.
#[test]
fn tools_find_their_home_as_the_readme_says() {
    let t = crate::common::home();
    let env = t.path().join("env");
    crate::procedures::odd_env(&env, &["a.db"]);
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // (tool, arguments besides the home); every one succeeds when it
    // finds the environment.
    let runs: [(&str, &[&str]); 9] = [
        ("db_archive", &["-l"]),
        ("db_checkpoint", &["-1"]),
        ("db_dump", &["a.db"]),
        ("db_load", &["-T", "-f", "PAIRS", "n.db"]),
        ("db_printlog", &["-e", "1/40"]),
        ("db_recover", &[]),
        ("db_stat", &["-l"]),
        ("db_verify", &["a.db"]),
        ("db_hotbackup", &["-b", "BK"]),
    ];
    let pairs = t.path().join("pairs.txt");
    std::fs::write(&pairs, "k\nv\n").unwrap();
    for (n, (name, args)) in runs.iter().enumerate() {
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "PAIRS" => pairs.display().to_string(),
                "BK" => t.path().join(format!("bk{n}")).display().to_string(),
                a => a.to_string(),
            })
            .collect();
        for how in ["-h", "DB_HOME", "cwd"] {
            let mut c = crate::common::cmd(name);
            match how {
                "-h" => c.arg("-h").arg(&env).current_dir(&elsewhere),
                "DB_HOME" => c.env("DB_HOME", &env).current_dir(&elsewhere),
                _ => c.current_dir(&env),
            };
            if *name == "db_hotbackup" {
                let _ = std::fs::remove_dir_all(t.path().join(format!("bk{n}")));
            }
            let out = c.args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if *name == "db_hotbackup" && how == "cwd" {
                assert_eq!(out.status.code(), Some(1), "{name} ({how}): {err}");
                assert!(
                    err.starts_with(
                        "db_hotbackup: no source database environment specified\nusage:"
                    ),
                    "{err}"
                );
            } else {
                assert!(out.status.success(), "{name} {args:?} ({how}): {err}");
            }
        }
    }
    // db_copy: a bare name is looked up in the home given by -h or
    // $DB_HOME; without either it is a path.
    for (how, cwd, source) in [
        ("-h", &elsewhere, "a.db"),
        ("DB_HOME", &elsewhere, "a.db"),
        ("none", &env, "a.db"),
    ] {
        let target = t.path().join(format!("copy-{how}.db"));
        let mut c = crate::common::cmd("db_copy");
        match how {
            "-h" => c.arg("-h").arg(&env),
            "DB_HOME" => c.env("DB_HOME", &env),
            _ => &mut c,
        };
        let out = c
            .arg(source)
            .arg(&target)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "db_copy ({how}): {out:?}");
    }
    let out = crate::common::cmd("db_copy")
        .args(["a.db", "x.db"])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bare name without a home is a path"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains("`db_hotbackup`, like Berkeley DB's, needs `-h` or `$DB_HOME`")
            && readme.contains("`db_copy` without either takes its sources as plain paths"),
        "the README's home paragraph"
    );
}

/// `prog: BDB1234 text` as `PROG: text`: Berkeley DB's message ids (which
/// our pages say we leave out) and the program name removed, so the rest
/// of a line can be compared with ours.
fn without_ids_and_name(line: &str, prog: &str) -> String {
    let line = line.strip_prefix(prog).unwrap_or(line);
    line.split(' ')
        .filter(|w| {
            !(w.len() == 7 && w.starts_with("BDB") && w[3..].chars().all(|c| c.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// db_checkpoint(1) and db_verify(1) say their report lines are Berkeley
/// DB's without the message ids, on the same streams: both tools are run
/// side by side with the db5.3 ones and the line shapes compared.
#[test]
fn checkpoint_and_verify_reports_match_berkeley_db() {
    let t = crate::common::home();
    let ours = t.path().join("ours");
    crate::procedures::odd_env(&ours, &["a.db"]);
    let theirs = t.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let bdb = |tool: &str, args: &[&str]| {
        let out = crate::common::bdb(tool)
            .args(args)
            .current_dir(&theirs)
            .write_stdin("k\nv\n")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{} (apt-get install db5.3-util): {e}",
                    crate::common::bdb_name(tool)
                )
            });
        assert!(out.status.success(), "{tool}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (o, e) = bdb("db_checkpoint", &["-1", "-v", "-h", "."]);
    let (code, mo, me) = tool(&ours, "db_checkpoint", &["-1", "-v", "-h", "."]);
    assert_eq!(code, Some(0), "{me}");
    let norm = |s: &str, prog: &str| -> Vec<String> {
        s.lines()
            .map(|l| shape(&without_ids_and_name(l, prog)))
            .collect()
    };
    assert_eq!(
        (norm(&mo, "db_checkpoint"), norm(&me, "db_checkpoint")),
        (norm(&o, "db5.3_checkpoint"), norm(&e, "db5.3_checkpoint"))
    );
    assert_eq!(
        me.lines().filter(|l| l.is_empty()).count(),
        2,
        "a blank line after each: {me:?}"
    );
    bdb("db_load", &["-T", "-t", "btree", "a.db"]);
    let (o, e) = bdb("db_verify", &["a.db"]);
    let (code, mo, me) = tool(&ours, "db_verify", &["-h", ".", "a.db"]);
    assert_eq!(code, Some(0), "{me}");
    assert_eq!(
        (norm(&mo, "db_verify"), me.as_str()),
        (norm(&o, "db5.3_verify"), e.as_str())
    );
    assert_eq!(mo, "Verification of a.db succeeded.\n");
}
