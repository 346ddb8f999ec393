//! `db_load` and `db_dump` end to end, through the binaries: round trips in
//! both formats, the committed fixtures made by the real db5.3_dump, both
//! directions against the real tools when they are installed, `-n`, `-T`,
//! bad input, and a load killed halfway.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, bdb, cmd, have_bdb};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap()
}

/// A fresh empty directory inside `root`, to be an environment.
fn env_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    fs::create_dir(&d).unwrap();
    d
}

/// Loads `input` into `home/db` with our db_load, asserting success.
fn load(home: &Path, db: &str, input: &[u8], extra: &[&str]) {
    cmd("db_load")
        .arg("-h")
        .arg(home)
        .args(extra)
        .arg(db)
        .write_stdin(input.to_vec())
        .assert()
        .success()
        .stderr("");
}

/// Our db_dump of `home/db`, asserting success.
fn dump(home: &Path, db: &str, extra: &[&str]) -> Vec<u8> {
    let out = cmd("db_dump")
        .arg("-h")
        .arg(home)
        .args(extra)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "db_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A bytevalue dump of `pairs` (already in key order) as db5.3_dump writes it.
fn make_dump(pairs: &[(Vec<u8>, Vec<u8>)], page_size: u32, print: bool) -> Vec<u8> {
    let mut s = format!(
        "VERSION=3\nformat={}\ntype=btree\ndb_pagesize={page_size}\nHEADER=END\n",
        if print { "print" } else { "bytevalue" }
    )
    .into_bytes();
    for (k, v) in pairs {
        for item in [k, v] {
            s.push(b' ');
            if print {
                libcore::dump::encode_print(item, &mut s);
            } else {
                libcore::dump::encode_bytevalue(item, &mut s);
            }
            s.push(b'\n');
        }
    }
    s.extend_from_slice(b"DATA=END\n");
    s
}

/// Awkward pairs: every byte value, empty keys and values, lines that look
/// like dump keywords, a 1 MiB value, sorted as a btree sorts them.
fn awkward_pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (Vec::new(), b"empty key".to_vec()),
        (b"empty value".to_vec(), Vec::new()),
        (b"DATA=END".to_vec(), b"HEADER=END".to_vec()),
        (b" leading space".to_vec(), b"trailing space ".to_vec()),
        (b"back\\slash".to_vec(), b"\\\\".to_vec()),
        (b"nl\nand\rcr".to_vec(), b"\n".to_vec()),
        ((0..=255u8).collect(), (0..=255u8).rev().collect()),
        (
            b"big".to_vec(),
            (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect(),
        ),
    ];
    for i in 0..300u32 {
        pairs.push((format!("key{i:05}").into_bytes(), vec![i as u8; i as usize]));
    }
    pairs.sort();
    pairs
}

#[test]
fn round_trip_in_both_formats_keeps_every_byte() {
    let root = common::home();
    let pairs = awkward_pairs();
    for (print, flag) in [(false, None), (true, Some("-p"))] {
        let input = make_dump(&pairs, 4096, print);
        let a = env_dir(root.path(), if print { "p" } else { "b" });
        load(&a, "a.db", &input, &[]);
        let out = dump(&a, "a.db", flag.as_slice());
        assert!(out == input, "dump differs from the loaded input");
        // db_dump | db_load into a second environment, then again.
        let b = env_dir(root.path(), if print { "p2" } else { "b2" });
        load(&b, "copy.db", &out, &[]);
        assert!(dump(&b, "copy.db", flag.as_slice()) == input);
    }
}

#[test]
fn twenty_thousand_keys_and_the_page_size_survive() {
    let root = common::home();
    let pairs: Vec<_> = (0..20_000u32)
        .map(|i| {
            (
                format!("k{i:08}").into_bytes(),
                format!("value {}", i * 31).into_bytes(),
            )
        })
        .collect();
    let input = make_dump(&pairs, 8192, false);
    let a = env_dir(root.path(), "a");
    load(&a, "big.db", &input, &[]);
    assert!(dump(&a, "big.db", &[]) == input);
    // -c db_pagesize overrides the header for a new database.
    let b = env_dir(root.path(), "b");
    load(&b, "small.db", &input, &["-c", "db_pagesize=512"]);
    let out = dump(&b, "small.db", &[]);
    assert!(out == make_dump(&pairs, 512, false));
}

#[test]
fn real_db5_3_dumps_load_and_dump_identically() {
    let root = common::home();
    for (name, flag) in [("bdb-bytevalue.dump", None), ("bdb-print.dump", Some("-p"))] {
        let home = env_dir(root.path(), name);
        load(&home, "x.db", &read_fixture(name), &[]);
        let out = dump(&home, "x.db", flag.as_slice());
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&read_fixture(name))
        );
    }
    // A 512-byte page size from the header is kept (duplicates refused, see
    // bad_input; with -c duplicates=0 the later value wins).
    let home = env_dir(root.path(), "dup");
    load(
        &home,
        "d.db",
        &read_fixture("bdb-dup-512.dump"),
        &["-c", "duplicates=0"],
    );
    let out = String::from_utf8(dump(&home, "d.db", &["-p"])).unwrap();
    assert_eq!(
        out,
        "VERSION=3\nformat=print\ntype=btree\ndb_pagesize=512\nHEADER=END\n k\n \n l\n w\nDATA=END\n"
    );
}

#[test]
fn text_input_with_t_matches_the_fixture_db5_3_built() {
    let root = common::home();
    let home = env_dir(root.path(), "t");
    cmd("db_load")
        .arg("-T")
        .args(["-t", "btree", "-f"])
        .arg(fixture("bdb-text.txt"))
        .arg("-h")
        .arg(&home)
        .arg("x.db")
        .assert()
        .success();
    assert!(dump(&home, "x.db", &["-p"]) == read_fixture("bdb-print.dump"));
}

#[test]
fn our_dump_loads_into_db5_3_and_theirs_into_ours() {
    if !have_bdb() {
        return;
    }
    let root = common::home();
    let pairs = awkward_pairs();
    for (print, flag) in [(false, None), (true, Some("-p"))] {
        let input = make_dump(&pairs, 4096, print);
        let ours = env_dir(root.path(), if print { "op" } else { "ob" });
        load(&ours, "a.db", &input, &[]);
        let our_dump = dump(&ours, "a.db", flag.as_slice());

        // Ours -> db5.3_load -> db5.3_dump: the same bytes.
        let theirs = env_dir(root.path(), if print { "tp" } else { "tb" });
        bdb("db_load")
            .current_dir(&theirs)
            .arg("a.db")
            .write_stdin(our_dump.clone())
            .assert()
            .success();
        let out = bdb("db_dump")
            .current_dir(&theirs)
            .args(flag.as_slice())
            .arg("a.db")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout == our_dump, "db5.3_dump of our dump differs");

        // db5.3_dump of a db5.3 database -> ours -> our dump: the same.
        let back = env_dir(root.path(), if print { "bp" } else { "bb" });
        load(&back, "a.db", &out.stdout, &[]);
        assert!(dump(&back, "a.db", flag.as_slice()) == out.stdout);
    }
}

#[test]
fn no_overwrite_skips_existing_keys_warns_and_exits_1() {
    let root = common::home();
    let home = env_dir(root.path(), "n");
    load(&home, "a.db", b"k\nold\nk2\nv2\n", &["-T", "-t", "btree"]);
    let assert = cmd("db_load")
        .arg("-h")
        .arg(&home)
        .args(["-n", "-T", "a.db"])
        .write_stdin(&b"k\nnew\nk3\nv3\nk2\nx\n"[..])
        .assert()
        .code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert_eq!(
        err,
        "db_load: a.db: line 1: key already exists, not loaded:\nk\n\
         db_load: a.db: line 5: key already exists, not loaded:\nk2\n"
    );
    let out = String::from_utf8(dump(&home, "a.db", &["-p"])).unwrap();
    assert!(out.contains(" k\n old\n k2\n v2\n k3\n v3\n"), "{out}");
    // Without -n the values are overwritten, exit 0.
    load(&home, "a.db", b"k\nnew\n", &["-T"]);
    assert!(String::from_utf8(dump(&home, "a.db", &["-p"]))
        .unwrap()
        .contains(" k\n new\n"));
}

/// Runs our tool and returns (status, stderr), asserting no panic and at
/// most one line on stderr.
fn fails(mut c: assert_cmd::Command, code: i32) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    err
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn bad_input_gives_one_line_errors_and_creates_nothing() {
    let root = common::home();
    let empty = env_dir(root.path(), "empty");
    let header = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n";
    let cases: Vec<(Vec<u8>, &[&str], &str)> = vec![
        (
            format!("{header} 6b\n 7\nDATA=END\n").into_bytes(),
            &[],
            "db_load: stdin: line 6: odd number of hex digits\n",
        ),
        (
            b"garbage\n".to_vec(),
            &[],
            "db_load: stdin: line 1: unexpected format",
        ),
        (Vec::new(), &[], "db_load: stdin: unexpected end of input"),
        (
            read_fixture("bdb-multi.dump"),
            &[],
            "db_load: stdin: line 10: a second database section",
        ),
        (
            read_fixture("bdb-dup-512.dump"),
            &[],
            "db_load: stdin: duplicates=1: duplicate keys are not supported",
        ),
        (
            format!("{header} 6b\n").into_bytes(),
            &[],
            "db_load: stdin: end of input: key without data",
        ),
        (b"k\n".to_vec(), &["-T"], "db_load: stdin: end of input"),
        (
            b"k\nv\n".to_vec(),
            &["-T", "-t", "hash"],
            "db_load: -t hash: only btree",
        ),
        (
            b"k\nv\n".to_vec(),
            &["-T", "-P", "pw"],
            "db_load: -P: encryption is not supported",
        ),
        (
            b"k\nv\n".to_vec(),
            &["-r", "lsn"],
            "db_load: -r lsn is not supported",
        ),
        (
            b"k\nv\n".to_vec(),
            &["-T", "-c", "bogus=1"],
            "db_load: -c bogus=1: unknown keyword",
        ),
        (
            b"k\nv\n".to_vec(),
            &["-f", "/nonexistent/input"],
            "db_load: /nonexistent/input: No such file or directory\n",
        ),
    ];
    for (input, extra, want) in &cases {
        let mut c = cmd("db_load");
        c.arg("-h")
            .arg(&empty)
            .args(*extra)
            .arg("a.db")
            .write_stdin(input.clone());
        let err = fails(c, 2);
        assert!(
            err.starts_with(want),
            "{extra:?}: got {err:?}, want {want:?}"
        );
        assert!(
            listing(&empty).is_empty(),
            "{want}: left {:?}",
            listing(&empty)
        );
    }

    // A home that does not exist, or a directory that is not an
    // environment and not empty: refused, nothing created.
    let mut c = cmd("db_load");
    c.args(["-T", "-h"])
        .arg(root.path().join("nonexistent"))
        .arg("a.db")
        .write_stdin(&b"k\nv\n"[..]);
    let err = fails(c, 2);
    assert!(
        err.ends_with("nonexistent: open: No such file or directory\n"),
        "{err}"
    );
    assert!(!root.path().join("nonexistent").exists());
    let other = env_dir(root.path(), "other");
    fs::write(other.join("notes.txt"), "mine").unwrap();
    let mut c = cmd("db_load");
    c.args(["-T", "-h"])
        .arg(&other)
        .arg("a.db")
        .write_stdin(&b"k\nv\n"[..]);
    assert!(fails(c, 2).contains("not an environment"));
    assert_eq!(listing(&other), ["notes.txt"]);

    // db_dump: no such database, not an environment, not our file.
    let home = env_dir(root.path(), "home");
    load(&home, "a.db", b"k\nv\n", &["-T"]);
    let mut c = cmd("db_dump");
    c.arg("-h").arg(&home).arg("nope.db");
    assert!(fails(c, 1).ends_with("nope.db: open: No such file or directory\n"));
    fs::write(home.join("junk.db"), vec![7u8; 5000]).unwrap();
    let mut c = cmd("db_dump");
    c.arg("-h").arg(&home).arg("junk.db");
    assert!(fails(c, 1).contains("junk.db: unexpected file type or format"));
    let mut c = cmd("db_dump");
    c.arg("-h").arg(&other).arg("notes.txt");
    assert!(fails(c, 1).contains("not in an environment"));
    let mut c = cmd("db_dump");
    c.arg("-h").arg(&home).args(["-l", "a.db"]);
    assert_eq!(
        fails(c, 1),
        "db_dump: a.db: does not contain multiple databases\n"
    );
    let mut c = cmd("db_dump");
    c.arg("-h").arg(&home).args(["-s", "other", "a.db"]);
    assert!(fails(c, 1).contains("multiple databases specified but not supported by file"));
    // -f output is not created when the dump fails.
    let mut c = cmd("db_dump");
    c.arg("-h")
        .arg(&home)
        .arg("-f")
        .arg(root.path().join("out.dump"))
        .arg("nope.db");
    fails(c, 1);
    assert!(!root.path().join("out.dump").exists());
}

#[test]
fn dump_takes_a_path_and_flags_as_db5_3_does() {
    let root = common::home();
    let home = env_dir(root.path(), "home");
    load(&home, "a.db", &read_fixture("bdb-print.dump"), &[]);
    // A path without -h: its directory is the environment.
    let out = cmd("db_dump")
        .arg("-p")
        .arg(home.join("a.db"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == read_fixture("bdb-print.dump"));
    // -f writes the file; -k adds keys=1 as db5.3_dump does for a btree;
    // -N is accepted; -s with the file's own name selects it.
    let to = root.path().join("out.dump");
    cmd("db_dump")
        .arg("-h")
        .arg(&home)
        .args(["-N", "-k", "-s", "a.db", "-f"])
        .arg(&to)
        .arg("a.db")
        .assert()
        .success()
        .stdout("");
    let text = fs::read_to_string(&to).unwrap();
    assert!(text.starts_with(
        "VERSION=3\nformat=bytevalue\ntype=btree\ndb_pagesize=4096\nkeys=1\nHEADER=END\n"
    ));
    // The loaded file can itself be a path under -h's data directory.
    let b = env_dir(root.path(), "b");
    cmd("db_load")
        .arg("-f")
        .arg(&to)
        .arg(b.join("k.db"))
        .assert()
        .success();
    assert!(dump(&b, "k.db", &[]) == read_fixture("bdb-bytevalue.dump"));
}

/// A load killed with SIGKILL while its input still streams in commits
/// nothing: afterwards the database does not exist (or, had the commit
/// landed, holds every key), never a prefix.
#[test]
fn a_killed_load_leaves_nothing_or_everything() {
    let root = common::home();
    let home = env_dir(root.path(), "k");
    let n = 30_000u32;
    let pairs: Vec<_> = (0..n)
        .map(|i| (format!("k{i:08}").into_bytes(), vec![b'v'; 40]))
        .collect();
    let input = make_dump(&pairs, 4096, false);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("db_load"))
        .arg("-h")
        .arg(&home)
        .arg("a.db")
        .env_remove("DB_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        // A slow pipe: most of the input, then a pause, then the kill.
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(&input[..input.len() * 9 / 10]).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let out = cmd("db_dump")
        .arg("-h")
        .arg(&home)
        .arg("a.db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(out.stdout == input, "a killed load left part of its input");
    } else {
        assert!(err.contains("no such database"), "{err}");
    }
    // The environment is usable: the same load now goes through whole.
    load(&home, "a.db", &input, &[]);
    assert!(dump(&home, "a.db", &[]) == input);
}

/// Every option letter of db_load and db_dump is documented in its man
/// page, and the pages lint clean with mandoc (which must be installed;
/// see `common::require`).
#[test]
fn man_pages_document_every_flag() {
    for tool in [bdbtools::cli::Tool::Load, bdbtools::cli::Tool::Dump] {
        let spec = tool.spec();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("man/{}.1", spec.name));
        let page = fs::read_to_string(&path).unwrap();
        for (letter, _) in spec.letters() {
            let shown = [format!("Fl {letter}"), format!("Op Fl {letter}")];
            // A cluster of flags without values: `.Op Fl nTV`.
            let in_cluster = page.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() == 3 && w[..2] == [".Op", "Fl"] && w[2].len() > 1 && w[2].contains(letter)
            });
            assert!(
                shown.iter().any(|s| page.contains(s.as_str())) || in_cluster,
                "{}: -{letter} is not documented",
                path.display()
            );
        }
        let mandoc = Command::new("mandoc").arg("-V").output().is_ok();
        if common::require(mandoc, "mandoc", "apt-get install mandoc") {
            let out = Command::new("mandoc")
                .args(["-T", "lint"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// db_dump reads a live environment whose owner keeps committing: every
/// run succeeds, keys come out strictly increasing and once each, and the
/// owner is never blocked. Updates rewrite values in place, so the key set
/// is fixed and every dump must hold all of it.
#[test]
fn dump_of_a_live_environment_is_ordered_and_complete() {
    use libcore::{Env, EnvOptions};
    let root = common::home();
    let home = env_dir(root.path(), "live");
    let keys: Vec<Vec<u8>> = (0..30000u32)
        .map(|i| format!("k{i:06}").into_bytes())
        .collect();
    let env = Env::open(&home, EnvOptions::create()).unwrap();
    {
        let mut txn = env.begin().unwrap();
        let db = txn.create_db("a.db", None).unwrap();
        for k in &keys {
            txn.put(&db, k, b"0").unwrap();
        }
        txn.commit().unwrap();
    }
    env.checkpoint().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (env, stop, keys) = (env.clone(), stop.clone(), keys.clone());
        std::thread::spawn(move || {
            let db = env.open_db("a.db").unwrap();
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let mut txn = env.begin().unwrap();
                for k in keys.iter().skip(round as usize % 7).step_by(7) {
                    txn.put(&db, k, format!("{round}").as_bytes()).unwrap();
                }
                txn.commit().unwrap();
                // Checkpoints write pages newer than a reader's snapshot:
                // about one dump in ten meets one and resumes.
                env.checkpoint().unwrap();
            }
        })
    };
    for _ in 0..30 {
        let out = dump(&home, "a.db", &["-p"]);
        let text = String::from_utf8(out).unwrap();
        let body: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "HEADER=END")
            .skip(1)
            .take_while(|l| *l != "DATA=END")
            .collect();
        let got: Vec<&[u8]> = body.iter().step_by(2).map(|l| &l.as_bytes()[1..]).collect();
        let want: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        assert!(got == want, "a live dump lost, repeated or reordered keys");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    env.close().unwrap();
}

/// An item over the 16 MiB limit is refused naming its input line, and
/// nothing of the input is loaded.
#[test]
fn an_oversized_value_names_its_line() {
    let root = common::home();
    let home = env_dir(root.path(), "big");
    let mut input = b"a\n1\nb\n".to_vec();
    input.extend(std::iter::repeat_n(
        b'x',
        libcore::testing::btree::MAX_ITEM + 1,
    ));
    input.extend_from_slice(b"\nc\n3\n");
    let mut c = cmd("db_load");
    c.arg("-h")
        .arg(&home)
        .args(["-T", "a.db"])
        .write_stdin(input);
    let err = fails(c, 2);
    assert_eq!(
        err,
        format!(
            "db_load: stdin: line 4: value of {} bytes is larger than the limit of {} bytes\n",
            libcore::testing::btree::MAX_ITEM + 1,
            libcore::testing::btree::MAX_ITEM
        )
    );
    assert!(listing(&home).is_empty(), "{:?}", listing(&home));
}

/// A home holding only DB_CONFIG and the (empty) data and log directories
/// it names becomes an environment; the database lands in the data
/// directory, and `db_dump data/a.db` without -h finds the environment one
/// level up.
#[test]
fn db_config_directories_are_honoured() {
    let root = common::home();
    let home = env_dir(root.path(), "cfg");
    fs::write(
        home.join("DB_CONFIG"),
        "set_data_dir data\nset_lg_dir logs\n",
    )
    .unwrap();
    fs::create_dir(home.join("data")).unwrap();
    fs::create_dir(home.join("logs")).unwrap();
    load(&home, "a.db", &read_fixture("bdb-print.dump"), &[]);
    assert!(home.join("data/a.db").is_file());
    assert!(home.join("logs/log.0000000001").is_file());
    let out = cmd("db_dump")
        .arg("-p")
        .arg(home.join("data/a.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == read_fixture("bdb-print.dump"));
    // With -h, a path outside the data directories is refused.
    let mut c = cmd("db_dump");
    c.arg("-h")
        .arg(&home)
        .arg(root.path().join("elsewhere/a.db"));
    assert!(fails(c, 1).contains("not in a data directory"));
}

/// Pairs for the bulk-load tests: ascending keys, every 17th value larger
/// than a page (an overflow chain), the others short.
fn bulk_pairs(n: u32, page_size: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let len = if i % 17 == 0 { 3 * page_size + 5 } else { 16 };
            (
                format!("k{i:08}").into_bytes(),
                (0..len).map(|j| (i as usize + j) as u8).collect(),
            )
        })
        .collect()
}

/// A load into a new or empty database builds the tree from sorted input
/// (and falls back to puts at the first key out of order); the result is
/// always what the input says, record by record, whatever the page size,
/// and db_verify passes. Into a database holding keys, the load merges.
#[test]
fn bulk_loads_sorted_unsorted_duplicate_and_into_existing_databases() {
    let root = common::home();
    for ps in [512usize, 65536] {
        let home = env_dir(root.path(), &format!("b{ps}"));
        let pairs = bulk_pairs(3000, ps);
        let verify = |db: &str| {
            cmd("db_verify")
                .arg("-h")
                .arg(&home)
                .arg(db)
                .assert()
                .success();
        };

        // Sorted, into a new database: the dump is the input, byte for byte.
        let sorted = make_dump(&pairs, ps as u32, false);
        load(&home, "sorted.db", &sorted, &[]);
        assert!(dump(&home, "sorted.db", &[]) == sorted, "ps {ps}: sorted");
        verify("sorted.db");

        // Unsorted (a sorted prefix, then reversed) with a duplicate key:
        // the last value of a key wins, as with one put per pair.
        let mut unsorted = pairs[..1000].to_vec();
        unsorted.extend(pairs[1000..].iter().rev().cloned());
        unsorted.insert(500, (pairs[10].0.clone(), b"second".to_vec()));
        let mut model: std::collections::BTreeMap<_, _> = Default::default();
        for (k, v) in &unsorted {
            model.insert(k.clone(), v.clone());
        }
        let want: Vec<_> = model.into_iter().collect();
        load(
            &home,
            "unsorted.db",
            &make_dump(&unsorted, ps as u32, false),
            &[],
        );
        assert!(
            dump(&home, "unsorted.db", &[]) == make_dump(&want, ps as u32, false),
            "ps {ps}: unsorted"
        );
        verify("unsorted.db");

        // An existing empty database (an empty dump creates it), then the
        // sorted pairs: bulk into it.
        load(&home, "empty.db", &make_dump(&[], ps as u32, false), &[]);
        load(&home, "empty.db", &sorted, &[]);
        assert!(dump(&home, "empty.db", &[]) == sorted, "ps {ps}: empty");
        verify("empty.db");

        // A database holding keys: the odd ones first, then all of them.
        let odd: Vec<_> = pairs.iter().skip(1).step_by(2).cloned().collect();
        load(&home, "merge.db", &make_dump(&odd, ps as u32, false), &[]);
        load(&home, "merge.db", &sorted, &[]);
        assert!(dump(&home, "merge.db", &[]) == sorted, "ps {ps}: merge");
        verify("merge.db");
    }
}

/// A duplicate key under -n in a bulk load: the first value stays, the
/// second is reported with its line, exit 1.
#[test]
fn bulk_load_with_a_duplicate_under_no_overwrite_keeps_the_first() {
    let root = common::home();
    let home = env_dir(root.path(), "d");
    let assert = cmd("db_load")
        .arg("-h")
        .arg(&home)
        .args(["-n", "-T", "-t", "btree", "a.db"])
        .write_stdin(&b"a\n1\nb\n2\nb\n3\nc\n4\n"[..])
        .assert()
        .code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert_eq!(
        err,
        "db_load: a.db: line 5: key already exists, not loaded:\nb\n"
    );
    let out = String::from_utf8(dump(&home, "a.db", &["-p"])).unwrap();
    assert!(out.contains(" a\n 1\n b\n 2\n c\n 4\nDATA=END\n"), "{out}");
}

/// Unsorted input with duplicate keys: an ascending run first (the bulk
/// build), then keys out of order, some of them again and some equal to a
/// key of the run.
fn unsorted_with_duplicates() -> Vec<u8> {
    let mut s = Vec::new();
    let mut pair = |k: String, v: String| {
        s.extend_from_slice(k.as_bytes());
        s.push(b'\n');
        s.extend_from_slice(v.as_bytes());
        s.push(b'\n');
    };
    for i in 0..200u32 {
        pair(format!("a{i:05}"), format!("run {i}"));
    }
    for n in 0..3000u32 {
        let i = n * 7919 % 1500;
        pair(
            format!("{}{i:05}", if i % 3 == 0 { 'a' } else { 'b' }),
            format!("at {n}"),
        );
    }
    s
}

/// The lines a db_load's stderr names, in order ("...: line N: ...").
fn skipped_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.split(": line ").nth(1))
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn unsorted_input_with_duplicates_loads_as_db5_3_load_loads_it() {
    // Pairs that come out of key order are now gathered, sorted and put in
    // key order (six times faster than in input order). Sorting must not
    // change what a load means: without -n the last value of a key wins,
    // with -n the first one stays and every later one is reported with
    // its line, in line order, and the exit status is 1. The reference is
    // the real db5.3_load, dumped by db5.3_dump.
    assert!(have_bdb(), "db5.3_load and db5.3_dump are needed");
    let root = common::home();
    let input = unsorted_with_duplicates();
    for (i, flags) in [&["-T", "-t", "btree"][..], &["-n", "-T", "-t", "btree"]]
        .into_iter()
        .enumerate()
    {
        let theirs = env_dir(root.path(), &format!("t{i}"));
        let t = bdb("db_load")
            .current_dir(&theirs)
            .args(flags)
            .arg("a.db")
            .write_stdin(input.clone())
            .output()
            .unwrap();
        let want = bdb("db_dump")
            .current_dir(&theirs)
            .args(["-p", "a.db"])
            .output()
            .unwrap();
        assert!(want.status.success());
        let ours = env_dir(root.path(), &format!("o{i}"));
        let o = cmd("db_load")
            .arg("-h")
            .arg(&ours)
            .args(flags)
            .arg("a.db")
            .write_stdin(input.clone())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), t.status.code(), "{flags:?}");
        let got = dump(&ours, "a.db", &["-p"]);
        // The headers differ (db5.3_dump names its own fields); the data
        // must not.
        let data = |d: &[u8]| {
            let s = String::from_utf8_lossy(d).into_owned();
            s[s.find("HEADER=END").unwrap()..].to_string()
        };
        assert!(
            data(&got) == data(&want.stdout),
            "{flags:?}: contents differ"
        );
        let skipped = skipped_lines(&o.stderr);
        assert_eq!(skipped, skipped_lines(&t.stderr), "{flags:?}");
        assert_eq!(skipped.is_empty(), i == 0);
    }
}
