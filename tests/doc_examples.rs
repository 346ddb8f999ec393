//! Every command the README and the man pages show is run here, as an
//! operator would paste it into a shell, against an environment whose
//! database names and directory names are as awkward as legal names get
//! (`procedures::ODD_NAMES`, `procedures::ODD_DIRS`), and its outcome is
//! checked: the files a pipe copies are all there, byte for byte, and a
//! recovered copy equals the primary.
//!
//! Why: the documented pipes are what operators type during a failover.
//! `db_archive -s | xargs db_copy ...` once split a name with a space into
//! two, `$(db_archive -s)` globbed `*.db`, and `xargs -I{}` choked on a
//! quote; nothing ran them. The commands are read from the documents
//! themselves (`.Dl` lines and `.Bd -literal` blocks of man/*, `sh` blocks
//! of README.md that name /srv/env), so a changed example is run as
//! changed, and an example without a check here fails
//! `every_documented_command_has_a_check`.
//!
//! The documents' placeholder paths (`/srv/env`, `/backup/env`,
//! `/archive`, `/srv/copy`, `/tmp/old`) become quoted shell variables
//! naming odd directories; every other name is relative to a working
//! directory. A `sleep` function lets the "every minute" loop of
//! db_hotbackup(1) run twice, then stop.

use crate::common;
use crate::hot_failover::contents;
use crate::procedures::{odd_env, ODD_DIRS, ODD_NAMES};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One command line, or a script of several, as a document shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Example {
    doc: String,
    text: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The roff escapes the examples use, undone: `\e` is a backslash, `\-` a
/// dash, `\&` nothing. Any other escape is a failure, so an example is
/// never run as something other than what the page shows.
fn unroff(line: &str, doc: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('e') => out.push('\\'),
            Some('-') => out.push('-'),
            Some('&') => {}
            other => panic!("{doc}: unknown roff escape \\{other:?} in example: {line}"),
        }
    }
    out
}

/// Whether a text is a command (its first word names a program an
/// operator runs) rather than sample output such as `db_hotbackup: ...`.
fn is_command(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    let tool = |w: &str| {
        w.strip_prefix("db_")
            .or_else(|| w.strip_prefix("db5.3_"))
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase()))
    };
    tool(first) || ["rm", "find", "cd", "cp", "mv", "while"].contains(&first)
}

/// The `.Dl` lines and `.Bd -literal` blocks of a man page that are
/// commands.
fn man_examples(doc: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in text.lines() {
        if let Some(b) = block.as_mut() {
            if line == ".Ed" {
                let text = b.join("\n");
                if is_command(&text) {
                    out.push(Example {
                        doc: doc.into(),
                        text,
                    });
                }
                block = None;
            } else {
                assert!(
                    !line.starts_with('.'),
                    "{doc}: a request inside a literal block: {line}"
                );
                b.push(unroff(line, doc));
            }
        } else if line.starts_with(".Bd -literal") {
            block = Some(Vec::new());
        } else if let Some(rest) = line.strip_prefix(".Dl ") {
            assert!(
                !rest.contains('"'),
                "{doc}: mdoc would eat the quotes of: {line}"
            );
            let text = unroff(rest, doc);
            if is_command(&text) {
                out.push(Example {
                    doc: doc.into(),
                    text,
                });
            }
        }
    }
    out
}

/// The ```sh blocks of a Markdown file that name the placeholder primary.
fn markdown_examples(doc: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match block.as_mut() {
            None if line == "```sh" => block = Some(Vec::new()),
            None => {}
            Some(b) if line == "```" => {
                let text = b.join("\n");
                if text.contains("/srv/env") {
                    out.push(Example {
                        doc: doc.into(),
                        text,
                    });
                }
                block = None;
            }
            Some(b) => b.push(line),
        }
    }
    out
}

/// Every example command of README.md and man/*.
fn doc_examples() -> Vec<Example> {
    let mut out = markdown_examples(
        "README.md",
        &std::fs::read_to_string(repo().join("README.md")).unwrap(),
    );
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for page in pages {
        let doc = format!("man/{}", page.file_name().unwrap().to_string_lossy());
        out.extend(man_examples(&doc, &std::fs::read_to_string(&page).unwrap()));
    }
    out
}

/// The directories one run works in, each named as awkwardly as a legal
/// name can be.
struct Stage {
    _tmp: tempfile::TempDir,
    srv: PathBuf,
    bk: PathBuf,
    arch: PathBuf,
    copy: PathBuf,
    old: PathBuf,
    work: PathBuf,
}

/// A primary holding a database of every odd name (several log files, some
/// no longer in use), an empty backup, archive and copy directory, and a
/// working directory with a Berkeley DB file `old.db` and a text file
/// `pairs.txt` for the db_load examples.
fn stage() -> Stage {
    let tmp = common::home();
    let root = tmp.path().to_path_buf();
    let s = Stage {
        srv: root.join(ODD_DIRS[0]),
        bk: root.join(ODD_DIRS[1]),
        arch: root.join(ODD_DIRS[2]),
        copy: root.join("srv copy 'ü'"),
        old: root.join("old list 'x'"),
        work: root.join("work dir \"w\""),
        _tmp: tmp,
    };
    odd_env(&s.srv, &ODD_NAMES);
    for d in [&s.bk, &s.arch, &s.copy, &s.work] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(s.work.join("pairs.txt"), "k1\nv1\nk 2\nv 2\n").unwrap();
    let out = common::bdb("db_load")
        .args(["-T", "-t", "btree", "old.db"])
        .current_dir(&s.work)
        .write_stdin("apple\nred\nbanana\nyellow\n")
        .output()
        .expect("db5.3_load (apt-get install db5.3-util) is needed for the db_load(1) example");
    assert!(out.status.success(), "db5.3_load: {out:?}");
    s
}

/// `text` with the placeholder paths replaced by quoted shell variables.
fn substitute(text: &str) -> String {
    let mut s = text.to_string();
    for (from, to) in [
        ("/srv/env", "\"$SRV\""),
        ("/srv/copy", "\"$COPY\""),
        ("/backup/env", "\"$BK\""),
        ("/archive", "\"$ARCH\""),
        ("/tmp/old", "\"$OLD\""),
    ] {
        s = s.replace(from, to);
    }
    for stray in ["/srv/", "/backup", "/archive", "/tmp/"] {
        assert!(!s.contains(stray), "a path the test does not map: {text}");
    }
    s
}

/// Runs `script` (already substituted) with bash in the working
/// directory, our tools first on PATH; `sleep` returns true twice, then
/// false, so "while sleep 60" loops end.
fn bash(s: &Stage, script: &str) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("db_archive");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail\nslept=0\nsleep() {{ slept=$((slept + 1)); [ $slept -le 2 ]; }}\n{script}"
        ))
        .current_dir(&s.work)
        .env("PATH", path)
        .env("SRV", &s.srv)
        .env("BK", &s.bk)
        .env("ARCH", &s.arch)
        .env("COPY", &s.copy)
        .env("OLD", &s.old)
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env_remove("DB_HOME")
        .output()
        .unwrap()
}

fn ok(s: &Stage, script: &str, what: &str) -> Output {
    let out = bash(s, script);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{script}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lines of `db_archive args -h dir` (our tool), as names.
fn archive_list(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = common::cmd("db_archive")
        .args(args)
        .arg("-h")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "db_archive {args:?}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Every file of `names` is in `to` with the bytes it has in `from`.
fn copied(from: &Path, to: &Path, names: &[String], what: &str) {
    for n in names {
        let (a, b) = (from.join(n), to.join(n));
        let got = std::fs::read(&b).unwrap_or_else(|e| panic!("{what}: {}: {e}", b.display()));
        assert!(got == std::fs::read(&a).unwrap(), "{what}: {n:?} differs");
    }
}

/// What the run of an example must have left behind.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Every database file of the primary, byte for byte, in the backup.
    DbsCopied,
    /// Every log file of the primary, byte for byte, in the backup.
    LogsCopied,
    /// Every database and log file copied; recovered, the copy equals the
    /// primary.
    CopyRecovered,
    /// The backup directory is a backup equal to the primary.
    BackupEqual,
    /// The unused log files are in the archive and gone from the primary.
    UnusedArchivedAndRemoved,
    /// The unused log files are gone from the primary, the rest stays.
    UnusedRemoved,
    /// `a.db.copy` in the backup is the primary's a.db.
    OneCopy,
    /// Every database of the backup verified, one line each.
    AllVerified,
    /// Nothing printed (a quiet check that passed).
    Silent,
    /// a.db of the copy environment holds the primary's pairs.
    DumpLoaded,
    /// new.db in the working directory, read by db5.3_dump, holds a.db's
    /// pairs.
    BdbLoaded,
    /// accounts.db of the primary holds old.db's pairs.
    LoadedFromBdb,
    /// names.db of the primary holds the pairs of pairs.txt.
    PairsLoaded,
}

/// One run: the setup (already in shell form), then the documented
/// commands in this order, then the check.
struct Run {
    setup: &'static str,
    commands: &'static [&'static str],
    check: Check,
}

const FULL_BACKUP: &str = "db_hotbackup -h \"$SRV\" -b \"$BK\"";

/// Each documented command, in the runs that exercise it. A command that
/// needs earlier steps (the procedures of db_hotfailover(7)) runs after
/// them, all as documented.
const RUNS: &[Run] = &[
    // README.md
    Run {
        setup: "",
        commands: &["db_hotbackup -h /srv/env -b /backup/env        # first copy (any time, writers running)\n\
                     db_hotbackup -h /srv/env -b /backup/env -u     # then, periodically: new log only\n\
                     # failover: db_recover -c -h /backup/env, then open /backup/env as the new primary"],
        check: Check::BackupEqual,
    },
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -s | xargs -r -d '\\n' db_copy -h /srv/env -t /backup/env/ --\n\
                     rm -f /backup/env/log.* && db_archive -h /srv/env -a -l | xargs -r -d '\\n' cp -t /backup/env/ --\n\
                     db_recover -c -h /backup/env"],
        check: Check::CopyRecovered,
    },
    // db_archive(1)
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -a -l | xargs -r -d '\\n' cp -t /backup/env/ --"],
        check: Check::LogsCopied,
    },
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -s | xargs -r -d '\\n' db_copy -h /srv/env -t /backup/env/ --"],
        check: Check::DbsCopied,
    },
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -s | tr '\\n' '\\0' | xargs -r -0 db_copy -h /srv/env -t /backup/env/ --"],
        check: Check::DbsCopied,
    },
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -a > /tmp/old &&\n    \
                     xargs -r -d '\\n' cp -t /archive/ -- < /tmp/old &&\n    \
                     xargs -r -d '\\n' rm -- < /tmp/old"],
        check: Check::UnusedArchivedAndRemoved,
    },
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -d"],
        check: Check::UnusedRemoved,
    },
    // db_copy(1)
    Run {
        setup: "",
        commands: &["db_archive -h /srv/env -s |\n    \
                     xargs -r -d '\\n' db_copy -h /srv/env -t /backup/env/ --\n\
                     db_archive -h /srv/env -l |\n    \
                     xargs -r -d '\\n' db_copy -h /srv/env -t /backup/env/ --",
                     "db_recover -c -h /backup/env"],
        check: Check::CopyRecovered,
    },
    Run {
        setup: "",
        commands: &["db_copy /srv/env/a.db /backup/env/a.db.copy"],
        check: Check::OneCopy,
    },
    // db_dump(1)
    Run {
        setup: "",
        commands: &["db_dump -h /srv/env a.db | db_load -h /srv/copy a.db"],
        check: Check::DumpLoaded,
    },
    Run {
        setup: "",
        commands: &["db_dump -h /srv/env a.db | db5.3_load new.db"],
        check: Check::BdbLoaded,
    },
    // db_hotbackup(1)
    Run {
        setup: "",
        commands: &["db_hotbackup -h /srv/env -b /backup/env\n\
                     while sleep 60; do\n        \
                     db_hotbackup -u -h /srv/env -b /backup/env || break\n\
                     done"],
        check: Check::BackupEqual,
    },
    Run {
        setup: FULL_BACKUP,
        commands: &["db_hotbackup -c -h /srv/env -b /backup/env"],
        check: Check::BackupEqual,
    },
    Run {
        setup: FULL_BACKUP,
        commands: &["db_hotbackup -u -h /srv/env -b /backup/env"],
        check: Check::BackupEqual,
    },
    // db_hotfailover(7): the one-command way, then procedures 1 and 2 in
    // order (steps 2-5 twice, so the second round moves logs to the
    // archive).
    Run {
        setup: "",
        commands: &[
            "db_hotbackup -h /srv/env -b /backup/env",
            "db_hotbackup -u -h /srv/env -b /backup/env",
        ],
        check: Check::BackupEqual,
    },
    Run {
        setup: "",
        commands: &[
            "db_archive -h /srv/env -a -s | xargs -r -d '\\n' db_copy -t /backup/env/ --",
            "rm -f /backup/env/log.*",
            "db_archive -h /srv/env -a -l | xargs -r -d '\\n' cp -t /backup/env/ --",
            "db_recover -c -h /backup/env",
        ],
        check: Check::CopyRecovered,
    },
    Run {
        setup: "",
        commands: &[
            "db_archive -h /srv/env -a -s | xargs -r -d '\\n' db_copy -t /backup/env/ --",
            "find /backup/env -maxdepth 1 -name 'log.*' -exec mv -t /archive/ -- {} +",
            "db_archive -h /srv/env -a | xargs -r -d '\\n' mv -t /backup/env/ --",
            "db_archive -h /srv/env -a -l | xargs -r -d '\\n' cp -t /backup/env/ --",
            "db_recover -c -h /backup/env",
            "find /backup/env -maxdepth 1 -name 'log.*' -exec mv -t /archive/ -- {} +",
            "db_archive -h /srv/env -a | xargs -r -d '\\n' mv -t /backup/env/ --",
            "db_archive -h /srv/env -a -l | xargs -r -d '\\n' cp -t /backup/env/ --",
            "db_recover -c -h /backup/env",
        ],
        check: Check::CopyRecovered,
    },
    // db_load(1)
    Run {
        setup: "",
        commands: &["db5.3_dump old.db | db_load -h /srv/env accounts.db"],
        check: Check::LoadedFromBdb,
    },
    Run {
        setup: "",
        commands: &["db_load -n -T -h /srv/env -f pairs.txt names.db"],
        check: Check::PairsLoaded,
    },
    // db_verify(1)
    Run {
        setup: FULL_BACKUP,
        commands: &["db_archive -h /backup/env -s | xargs -r -d '\\n' db_verify -h /backup/env --"],
        check: Check::AllVerified,
    },
    Run {
        setup: FULL_BACKUP,
        commands: &["db_verify -q -h /backup/env a.db || echo a.db is damaged"],
        check: Check::Silent,
    },
];

#[test]
fn every_documented_command_has_a_check() {
    let shown: BTreeSet<String> = doc_examples().into_iter().map(|e| e.text).collect();
    let run: BTreeSet<String> = RUNS
        .iter()
        .flat_map(|r| r.commands.iter().map(|c| c.to_string()))
        .collect();
    let unrun: Vec<&String> = shown.difference(&run).collect();
    let stale: Vec<&String> = run.difference(&shown).collect();
    assert!(
        unrun.is_empty() && stale.is_empty(),
        "documented commands this test does not run:\n{unrun:#?}\n\
         commands this test runs that no document shows:\n{stale:#?}"
    );
}

/// The pairs of database `name` in the environment `home`.
fn pairs(home: &Path, name: &str) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    contents(home)
        .remove(name)
        .unwrap_or_else(|| panic!("{}: no database {name:?}", home.display()))
}

/// The key and data lines of `db5.3_dump -p file` run in `dir`.
fn bdb_pairs(dir: &Path, file: &str) -> Vec<String> {
    let out = common::bdb("db_dump")
        .args(["-p", file])
        .current_dir(dir)
        .output()
        .expect("db5.3_dump (apt-get install db5.3-util)");
    assert!(out.status.success(), "db5.3_dump {file}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(String::from)
        .collect()
}

/// Before-run facts a check compares with.
struct Before {
    dbs: Vec<String>,
    logs: Vec<String>,
    unused: Vec<String>,
    /// The bytes of each unused log file.
    unused_bytes: Vec<Vec<u8>>,
}

fn check(s: &Stage, b: &Before, check: Check, out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match check {
        Check::DbsCopied => copied(&s.srv, &s.bk, &b.dbs, what),
        Check::LogsCopied => copied(&s.srv, &s.bk, &b.logs, what),
        Check::CopyRecovered => {
            copied(&s.srv, &s.bk, &b.dbs, what);
            assert_eq!(contents(&s.bk), contents(&s.srv), "{what}");
        }
        Check::BackupEqual => {
            assert!(s.bk.join("__db.manifest").is_file(), "{what}: no manifest");
            assert_eq!(contents(&s.bk), contents(&s.srv), "{what}");
        }
        Check::UnusedArchivedAndRemoved | Check::UnusedRemoved => {
            if let Check::UnusedArchivedAndRemoved = check {
                assert_eq!(
                    names_in(&s.arch),
                    b.unused.iter().cloned().collect(),
                    "{what}"
                );
                for (name, bytes) in b.unused.iter().zip(&b.unused_bytes) {
                    assert!(
                        std::fs::read(s.arch.join(name)).unwrap() == *bytes,
                        "{what}: {name}"
                    );
                }
            }
            let left = names_in(&s.srv);
            for log in &b.logs {
                assert_eq!(left.contains(log), !b.unused.contains(log), "{what}: {log}");
            }
        }
        Check::OneCopy => assert_eq!(
            std::fs::read(s.bk.join("a.db.copy")).unwrap(),
            std::fs::read(s.srv.join("a.db")).unwrap(),
            "{what}"
        ),
        Check::AllVerified => {
            let want: BTreeSet<String> = b
                .dbs
                .iter()
                .map(|n| format!("Verification of {n} succeeded."))
                .collect();
            let got: BTreeSet<String> = stdout.lines().map(String::from).collect();
            assert_eq!(got, want, "{what}");
        }
        Check::Silent => assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{what}: {out:?}"
        ),
        Check::DumpLoaded => assert_eq!(pairs(&s.copy, "a.db"), pairs(&s.srv, "a.db"), "{what}"),
        Check::BdbLoaded => {
            let want: Vec<String> = pairs(&s.srv, "a.db")
                .iter()
                .flat_map(|(k, v)| [k, v])
                .map(|bytes| format!(" {}", printable(bytes)))
                .collect();
            assert_eq!(bdb_pairs(&s.work, "new.db"), want, "{what}");
        }
        Check::LoadedFromBdb => {
            let got: Vec<String> = pairs(&s.srv, "accounts.db")
                .iter()
                .flat_map(|(k, v)| [k, v])
                .map(|bytes| format!(" {}", printable(bytes)))
                .collect();
            assert_eq!(got, bdb_pairs(&s.work, "old.db"), "{what}");
        }
        Check::PairsLoaded => {
            let want = [("k1", "v1"), ("k 2", "v 2")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(pairs(&s.srv, "names.db"), want, "{what}");
        }
    }
}

/// Bytes as `db_dump -p` prints them: printable ASCII as itself (a
/// backslash doubled), anything else as `\xx`.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\{b:02x}"),
        })
        .collect()
}

#[test]
fn every_documented_command_works_with_odd_names() {
    for (i, r) in RUNS.iter().enumerate() {
        let s = stage();
        let unused = archive_list(&s.srv, &[]);
        let before = Before {
            dbs: archive_list(&s.srv, &["-s"]),
            logs: archive_list(&s.srv, &["-l"]),
            unused_bytes: unused
                .iter()
                .map(|n| std::fs::read(s.srv.join(n)).unwrap())
                .collect(),
            unused,
        };
        assert_eq!(before.dbs.len(), ODD_NAMES.len(), "{:?}", before.dbs);
        assert!(
            !before.unused.is_empty(),
            "the stage has no unused log file"
        );
        let what = format!("run {i} ({:?})", r.commands[0]);
        if !r.setup.is_empty() {
            ok(&s, r.setup, &format!("{what}: setup"));
        }
        let mut last = None;
        for c in r.commands {
            last = Some(ok(&s, &substitute(c), &what));
        }
        check(
            &s,
            &before,
            r.check,
            &last.expect("a run has commands"),
            &what,
        );
    }
}

/// The extraction itself, on a small page: literal blocks and `.Dl` lines
/// that are commands, escapes undone, sample output left out.
#[test]
fn examples_are_read_as_the_page_shows_them() {
    let page = ".Sh EXAMPLES\n.Dl db_archive -s | xargs -d '\\en' db_copy \\-\\- \\&\n\
                .Dl Verification of a.db succeeded.\n.Bd -literal -offset indent\n\
                db_hotbackup: copying a.db\n.Ed\n.Bd -literal\ncd x &&\n    rm y\n.Ed\n";
    let got: Vec<String> = man_examples("t.1", page)
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(
        got,
        [
            "db_archive -s | xargs -d '\\n' db_copy -- ",
            "cd x &&\n    rm y"
        ]
    );
    assert_eq!(
        substitute("rm -f /backup/env/log.* /srv/env/a.db"),
        "rm -f \"$BK\"/log.* \"$SRV\"/a.db"
    );
}
