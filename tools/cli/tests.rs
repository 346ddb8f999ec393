//! Unit tests of the harness: parsing matches glibc getopt as the Berkeley
//! DB tools use it, and `run_with` prints and exits as the contract says.

use super::*;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn parsed(tool: Tool, args: &[&str]) -> Parsed {
    match parse(tool, "prog", os(args)) {
        Ok(Request::Run(p)) => p,
        other => panic!("{args:?}: expected a run, got {other:?}"),
    }
}

fn usage_err(tool: Tool, args: &[&str]) -> Usage {
    match parse(tool, "prog", os(args)) {
        Err(u) => u,
        other => panic!("{args:?}: expected a usage error, got {other:?}"),
    }
}

/// The options as `(letter, value)` pairs in order, for compact asserts.
fn opts(p: &Parsed) -> Vec<(char, Option<&str>)> {
    p.opts
        .iter()
        .map(|o| (o.letter, o.value.as_ref().map(|v| v.to_str().unwrap())))
        .collect()
}

fn operands(p: &Parsed) -> Vec<&str> {
    p.operands.iter().map(|o| o.to_str().unwrap()).collect()
}

#[test]
fn flags_cluster_and_keep_their_order() {
    let p = parsed(Tool::Archive, &["-avl", "-a"]);
    assert_eq!(
        opts(&p),
        [('a', None), ('v', None), ('l', None), ('a', None)]
    );
    assert_eq!(p.count('a'), 2);
    assert!(p.flag('l') && !p.flag('s'));
}

#[test]
fn values_attach_or_follow() {
    let p = parsed(Tool::Archive, &["-hDIR", "-P", "pw", "-ah", "other"]);
    assert_eq!(
        opts(&p),
        [
            ('h', Some("DIR")),
            ('P', Some("pw")),
            ('a', None),
            ('h', Some("other"))
        ]
    );
    assert_eq!(p.value('h'), Some(OsStr::new("other")), "last value wins");
    assert_eq!(p.path('h'), Some(PathBuf::from("other")));
}

#[test]
fn a_value_may_look_like_an_option() {
    // getopt takes the word after `-h` whatever it is.
    let p = parsed(Tool::Archive, &["-h", "-a", "-l"]);
    assert_eq!(opts(&p), [('h', Some("-a")), ('l', None)]);
    let p = parsed(Tool::Archive, &["-h", "-"]);
    assert_eq!(opts(&p), [('h', Some("-"))]);
    let p = parsed(Tool::Archive, &["-h", "--", "-P", "--help"]);
    assert_eq!(opts(&p), [('h', Some("--")), ('P', Some("--help"))]);
}

#[test]
fn digit_letters_are_options() {
    let p = parsed(Tool::Checkpoint, &["-1v", "-p", "5"]);
    assert_eq!(opts(&p), [('1', None), ('v', None), ('p', Some("5"))]);
}

#[test]
fn options_after_operands_are_permuted() {
    let p = parsed(Tool::Verify, &["a.db", "-q", "b.db", "-hH"]);
    assert_eq!(opts(&p), [('q', None), ('h', Some("H"))]);
    assert_eq!(operands(&p), ["a.db", "b.db"]);
}

#[test]
fn double_dash_ends_options() {
    let p = parsed(Tool::Verify, &["-q", "--", "-N", "--"]);
    assert_eq!(opts(&p), [('q', None)]);
    assert_eq!(operands(&p), ["-N", "--"]);
    let p = parsed(Tool::Verify, &["-"]);
    assert_eq!(operands(&p), ["-"], "a lone dash is an operand");
}

#[test]
fn repeated_values_are_all_kept() {
    let p = parsed(Tool::Hotbackup, &["-d", "a", "-b", "bk", "-dB"]);
    let dirs: Vec<_> = p.values('d').collect();
    assert_eq!(dirs, [OsStr::new("a"), OsStr::new("B")]);
}

#[test]
fn unknown_option_is_named() {
    for args in [&["-Z"][..], &["-aZ"], &["-l", "-Z", "-x"], &["x", "-aZl"]] {
        assert_eq!(
            usage_err(Tool::Archive, args).message.as_deref(),
            Some("invalid option -- 'Z'"),
            "{args:?}"
        );
    }
}

#[test]
fn long_options_are_invalid_dash() {
    for args in [&["--version"][..], &["--foo=bar"], &["-a", "--home", "x"]] {
        assert_eq!(
            usage_err(Tool::Archive, args).message.as_deref(),
            Some("invalid option -- '-'"),
            "{args:?}"
        );
    }
}

#[test]
fn missing_value_is_named() {
    for (tool, args, letter) in [
        (Tool::Archive, &["-h"][..], 'h'),
        (Tool::Archive, &["-a", "-P"], 'P'),
        (Tool::Archive, &["-ah"], 'h'),
        (Tool::Load, &["x", "-c"], 'c'),
        (Tool::Stat, &["-C"], 'C'),
    ] {
        assert_eq!(
            usage_err(tool, args).message,
            Some(format!("option requires an argument -- '{letter}'")),
            "{args:?}"
        );
    }
}

#[test]
fn operand_counts_are_checked() {
    assert_eq!(usage_err(Tool::Archive, &["x"]), Usage::new());
    assert_eq!(usage_err(Tool::Archive, &["-l", "--", "-a"]), Usage::new());
    assert_eq!(usage_err(Tool::Load, &[]), Usage::new());
    assert_eq!(usage_err(Tool::Load, &["a", "b"]), Usage::new());
    assert_eq!(usage_err(Tool::Verify, &["-q"]), Usage::new());
    assert_eq!(usage_err(Tool::Copy, &[]), Usage::new());
    assert_eq!(
        operands(&parsed(Tool::Copy, &["a", "b", "t"])),
        ["a", "b", "t"]
    );
    assert!(operands(&parsed(Tool::Dump, &["-m", "db"])).is_empty());
}

#[test]
fn version_and_help_win_over_operand_counts() {
    assert_eq!(
        parse(Tool::Archive, "p", os(&["-V", "x"])),
        Ok(Request::Version)
    );
    assert_eq!(parse(Tool::Load, "p", os(&["-V"])), Ok(Request::Version));
    assert_eq!(
        parse(Tool::Archive, "p", os(&["--help"])),
        Ok(Request::Help)
    );
    assert_eq!(
        parse(Tool::Verify, "p", os(&["-q", "--help"])),
        Ok(Request::Help)
    );
}

#[test]
fn home_prefers_the_flag() {
    // Only the flag branch: DB_HOME is process-wide and tests run in parallel.
    assert_eq!(home(Some("h".into())), PathBuf::from("h"));
    let p = parsed(Tool::Archive, &["-h", "a/b/"]);
    assert_eq!(p.home(), PathBuf::from("a/b/"), "used as given");
}

#[test]
fn prog_is_the_basename() {
    assert_eq!(
        prog_name(Some(OsStr::new("/usr/bin/db_dump")), "x"),
        "db_dump"
    );
    assert_eq!(prog_name(Some(OsStr::new("my_dump")), "x"), "my_dump");
    assert_eq!(prog_name(None, "db_dump"), "db_dump");
    assert_eq!(prog_name(Some(OsStr::new("")), "db_dump"), "db_dump");
}

#[test]
fn every_spec_builds_a_valid_clap_command() {
    for tool in Tool::ALL {
        command(tool.spec()).debug_assert();
    }
}

/// What one `run_with` call produced.
#[derive(Debug)]
struct Ran {
    code: i32,
    out: String,
    err: String,
}

fn ran(
    tool: Tool,
    args: &[&str],
    run: impl FnOnce(Parsed, &mut dyn Write) -> anyhow::Result<()>,
) -> Ran {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(tool, "mytool", os(args), Ok, run, &mut out, &mut err);
    Ran {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn never(_: Parsed, _: &mut dyn Write) -> anyhow::Result<()> {
    panic!("run must not be called")
}

#[test]
fn run_with_prints_usage_errors_like_getopt() {
    let r = ran(Tool::Archive, &["-Z"], never);
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "");
    assert_eq!(
        r.err,
        "mytool: invalid option -- 'Z'\nusage: mytool [-adlsVv] [-h home] [-P password]\n"
    );
    let r = ran(Tool::Hotbackup, &["-h"], never);
    assert_eq!(
        r.err,
        "mytool: option requires an argument -- 'h'\n\
         usage: mytool [-cDuVv]\n\
         \t[-d data_dir ...] [-h home] [-l log_dir] [-P password] -b backup_dir\n"
    );
    let r = ran(Tool::Archive, &["extra"], never);
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, Tool::Archive.spec().usage_text("mytool").as_str())
    );
}

#[test]
fn db_load_exits_2() {
    let r = ran(Tool::Load, &["-Z", "x"], never);
    assert_eq!(r.code, 2);
    let r = ran(Tool::Load, &["x"], |_, _| Err(anyhow::anyhow!("boom")));
    assert_eq!((r.code, r.err.as_str()), (2, "mytool: boom\n"));
}

#[test]
fn help_and_version_go_to_stdout() {
    let r = ran(Tool::Dump, &["--help"], never);
    assert_eq!((r.code, r.err.as_str()), (0, ""));
    assert_eq!(r.out, Tool::Dump.spec().usage_text("mytool"));
    let r = ran(Tool::Load, &["-V"], never);
    assert_eq!((r.code, r.err.as_str()), (0, ""));
    assert_eq!(r.out, format!("{VERSION_LINE}\n"));
    assert!(r.out.starts_with("bdbtools 0."));
}

#[test]
fn errors_print_their_chain() {
    let r = ran(Tool::Archive, &["-l"], |p, out| {
        assert!(p.flag('l'));
        writeln!(out, "partial")?;
        let cause = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        Err(anyhow::Error::new(cause).context("a/home"))
    });
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "partial\n");
    assert_eq!(r.err, "mytool: a/home: No such file or directory\n");
}

#[test]
fn usage_and_exit_errors_from_the_tool() {
    let r = ran(Tool::Checkpoint, &[], |_, _| {
        Err(Usage::msg("at least one of -1, -k and -p must be specified").into())
    });
    assert_eq!(r.code, 1);
    assert!(r.err.starts_with(
        "mytool: at least one of -1, -k and -p must be specified\nusage: mytool [-1Vv]\n"
    ));
    let r = ran(Tool::Verify, &["x"], |_, out| {
        writeln!(out, "Verification of x failed.")?;
        Err(Exit(1).into())
    });
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (1, "Verification of x failed.\n", "")
    );
}

#[test]
fn parse_usage_errors_print_their_message() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        Tool::Hotbackup,
        "hb",
        os(&["-c", "-d", "x"]),
        |_| Err::<(), _>(Usage::msg("cannot specify -d and -c")),
        |_, _| unreachable!(),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 1);
    assert!(String::from_utf8(err)
        .unwrap()
        .starts_with("hb: cannot specify -d and -c\nusage: hb [-cDuVv]\n"));
}

/// A stdout whose reader has gone away after `room` bytes.
struct ClosedPipe {
    room: usize,
}

impl Write for ClosedPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn broken_pipe_is_a_silent_success() {
    for room in [0, 10] {
        let mut out = ClosedPipe { room };
        let mut err = Vec::new();
        let code = run_with(
            Tool::Dump,
            "d",
            os(&["x"]),
            Ok,
            |_, out| {
                for i in 0..1000 {
                    writeln!(out, "line {i}")
                        .map_err(|e| anyhow::Error::new(e).context("stdout"))?;
                }
                Ok(())
            },
            &mut out,
            &mut err,
        );
        assert_eq!((code, err.as_slice()), (0, &b""[..]), "room {room}");
    }
    // Through a BufWriter the error surfaces only at the final flush.
    let mut pipe = ClosedPipe { room: 3 };
    let mut buffered = BufWriter::new(&mut pipe);
    let mut err = Vec::new();
    let code = run_with(
        Tool::Dump,
        "d",
        os(&["x"]),
        Ok,
        |_, out| Ok(writeln!(out, "more than three bytes")?),
        &mut buffered,
        &mut err,
    );
    assert_eq!((code, err.as_slice()), (0, &b""[..]));
}

#[test]
fn other_write_errors_fail() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut err = Vec::new();
    let mut buffered = BufWriter::new(Full);
    let code = run_with(
        Tool::Dump,
        "d",
        os(&["x"]),
        Ok,
        |_, out| Ok(writeln!(out, "x")?),
        &mut buffered,
        &mut err,
    );
    assert_eq!(code, 1);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.starts_with("d: write error: No space left on device"),
        "{err}"
    );
}

#[test]
fn attached_values_keep_a_leading_equals() {
    // getopt gives `=DIR`; clap alone would strip the `=`.
    let p = parsed(Tool::Archive, &["-h=DIR", "-aP=x", "-h", "=y"]);
    assert_eq!(
        opts(&p),
        [
            ('h', Some("=DIR")),
            ('a', None),
            ('P', Some("=x")),
            ('h', Some("=y"))
        ]
    );
    let p = parsed(Tool::Load, &["-c", "-h=x", "-cdb=a", "--", "-t=x"]);
    assert_eq!(opts(&p), [('c', Some("-h=x")), ('c', Some("db=a"))]);
    assert_eq!(operands(&p), ["-t=x"]);
}

#[test]
fn os_errors_read_like_strerror() {
    let e = anyhow::Error::new(io::Error::from_raw_os_error(2)).context("a/nonexist");
    assert_eq!(message(&e), "a/nonexist: No such file or directory");
    let e = anyhow::anyhow!("plain (os error 2)").context("ctx");
    assert_eq!(
        message(&e),
        "ctx: plain (os error 2)",
        "only real OS errors"
    );
}

#[test]
fn version_acts_where_getopt_meets_it() {
    for args in [
        &["-V", "-Z"][..],
        &["-aV", "-h"],
        &["x", "-V", "--foo"],
        &["-hV", "-V", "-Z"],
    ] {
        assert_eq!(
            parse(Tool::Archive, "p", os(args)),
            Ok(Request::Version),
            "{args:?}"
        );
    }
    for args in [
        &["-Z", "-V"][..],
        &["-aZV"],
        &["--", "-V", "-Z"],
        &["-hV", "-Z"],
    ] {
        assert!(parse(Tool::Archive, "p", os(args)).is_err(), "{args:?}");
    }
}
