//! The harness every tool runs in: program name, option parsing, output,
//! error messages and exit codes, so each `tools/bin/<tool>.rs` is one line
//! and each `tools/<tool>.rs` holds only its own `Args`, `parse` and `run`.
//!
//! A tool module looks like this:
//!
//! ```no_run
//! use bdbtools::cli::{self, Parsed, Tool, Usage};
//! use std::io::Write;
//!
//! pub struct Args { home: std::path::PathBuf, all: bool }
//!
//! pub fn parse(p: Parsed) -> Result<Args, Usage> {
//!     if p.flag('d') && p.flag('l') {
//!         return Err(Usage::msg("cannot combine -d and -l"));
//!     }
//!     Ok(Args { home: p.home(), all: p.flag('l') })
//! }
//!
//! pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
//!     writeln!(out, "{} {}", args.home.display(), args.all)?;
//!     Ok(())
//! }
//!
//! // tools/bin/db_archive.rs:
//! fn main() { cli::run_main(Tool::Archive, parse, run) }
//! ```
//!
//! Contract, mirroring Berkeley DB 5.3 (shared/bdb53-facts.md, section 0):
//! - the program name is the basename of `argv[0]`;
//! - options follow glibc getopt: clusters (`-avl`), attached or separate
//!   values (`-hDIR`, `-h DIR`, and `-h -a` gives the home `-a`), options
//!   after operands, `--` ends the options;
//! - an unknown option prints `<prog>: invalid option -- 'Z'` then the
//!   usage, a missing value `<prog>: option requires an argument -- 'h'`
//!   then the usage, a wrong number of operands the usage alone, all on
//!   stderr with the tool's error status (1; db_load 2);
//! - `-V` prints our version line on stdout and exits 0, `--help` prints the
//!   usage on stdout and exits 0 (Berkeley DB has no `--help`; any other
//!   long option is `invalid option -- '-'`, as getopt says);
//! - an error from `run` prints `<prog>: <context>: <cause>` on stderr and
//!   exits with the error status; a closed stdout (`db_dump | head`) is a
//!   silent success;
//! - a progress bar a tool's work drew (`progress`, only on a terminal) is
//!   cleared when the work returns, before anything else is printed.
//!
//! Parsing goes through clap, built from each tool's getopt string; clap's
//! errors are rewritten into getopt's words, and an attached value starting
//! with `=` is split off first because clap would drop the `=`.

mod spec;

pub use spec::{Operands, Spec, Tool};

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction};

/// The version line `-V` prints.
pub const VERSION_LINE: &str = concat!(
    "bdbtools ",
    env!("CARGO_PKG_VERSION"),
    " (Berkeley DB 5.3 compatible)"
);

/// The clap id of the operands; option ids are their letter.
const OPERANDS: &str = "operands";
/// The clap id of `--help`.
const HELP: &str = "help";

/// A usage error found by a tool's `parse` (or `run`): the harness prints
/// `<prog>: <message>` when there is a message, then the usage text, and
/// exits with the tool's error status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub message: Option<String>,
}

impl Usage {
    /// The usage text alone.
    pub fn new() -> Usage {
        Usage { message: None }
    }

    /// A message line, then the usage text.
    pub fn msg(message: impl Into<String>) -> Usage {
        Usage {
            message: Some(message.into()),
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("usage error"))
    }
}

impl std::error::Error for Usage {}

/// An error that ends a tool with `code` and prints nothing more: for a
/// tool that already told the user (db_verify's "Verification of X
/// failed.") or whose status says it all (db_load `-n` found keys: 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// One option on the command line, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub letter: char,
    pub value: Option<OsString>,
}

/// A command line after getopt-style parsing: the options in the order
/// given and the operands in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The program name messages use (basename of `argv[0]`).
    pub prog: String,
    pub opts: Vec<Opt>,
    pub operands: Vec<OsString>,
}

impl Parsed {
    /// How many times the option `letter` was given.
    pub fn count(&self, letter: char) -> usize {
        self.opts.iter().filter(|o| o.letter == letter).count()
    }

    /// Whether the option `letter` was given.
    pub fn flag(&self, letter: char) -> bool {
        self.count(letter) > 0
    }

    /// The value of the last `-letter`, as getopt loops that assign `optarg`
    /// keep the last one.
    pub fn value(&self, letter: char) -> Option<&OsStr> {
        self.values(letter).last()
    }

    /// Every value of `-letter`, in order (`db_hotbackup -d a -d b`).
    pub fn values(&self, letter: char) -> impl Iterator<Item = &OsStr> + '_ {
        self.opts
            .iter()
            .filter(move |o| o.letter == letter)
            .filter_map(|o| o.value.as_deref())
    }

    /// The value of the last `-letter` as a path.
    pub fn path(&self, letter: char) -> Option<PathBuf> {
        self.value(letter).map(PathBuf::from)
    }

    /// The value of the last `-letter` as UTF-8 text; a value that is not
    /// UTF-8 is a usage error naming the option.
    pub fn text(&self, letter: char) -> Result<Option<&str>, Usage> {
        self.value(letter)
            .map(|v| {
                v.to_str()
                    .ok_or_else(|| Usage::msg(format!("-{letter}: value is not valid UTF-8")))
            })
            .transpose()
    }

    /// The environment home: `-h`, else `$DB_HOME`, else the current
    /// directory (see [`home`]).
    pub fn home(&self) -> PathBuf {
        home(self.path('h'))
    }
}

/// The environment home as Berkeley DB's `DB_USE_ENVIRON` finds it: the
/// `-h` value, else a non-empty `$DB_HOME`, else `None`. Used as given, not
/// normalised: messages print `home/file` exactly as the user wrote home.
pub fn home_opt(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| {
        std::env::var_os("DB_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    })
}

/// The environment home: [`home_opt`], else the current directory `.`.
pub fn home(arg: Option<PathBuf>) -> PathBuf {
    home_opt(arg).unwrap_or_else(|| PathBuf::from("."))
}

/// What a command line asks for before the tool itself is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Run(Parsed),
    /// `--help`: the usage on stdout, exit 0.
    Help,
    /// `-V`: the version line on stdout, exit 0.
    Version,
}

/// The basename of `argv[0]`, lossily as text; `fallback` when there is none.
pub fn prog_name(argv0: Option<&OsStr>, fallback: &str) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

/// The clap command for `spec`: one short option per getopt letter, a
/// positional list for the operands, `--help` only, no automatic flags.
fn command(spec: &Spec) -> clap::Command {
    let mut cmd = clap::Command::new(spec.name)
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(Arg::new(HELP).long("help").action(ArgAction::SetTrue))
        .arg(
            Arg::new(OPERANDS)
                .num_args(0..)
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        );
    for (letter, id, takes_value) in spec.letter_ids() {
        let arg = Arg::new(id).short(letter);
        let arg = if takes_value {
            // getopt takes the next word as the value whatever it looks like.
            arg.num_args(1)
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(OsString))
        } else {
            // Appending an empty value per occurrence keeps each one's
            // position; ArgAction::Count would keep only the last.
            arg.num_args(0)
                .action(ArgAction::Append)
                .default_missing_value("")
                .value_parser(clap::value_parser!(OsString))
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Parse `args` (argv without `argv[0]`) for `tool` the way its Berkeley DB
/// counterpart's getopt loop would. The operand count is checked here;
/// finer rules are the tool's.
pub fn parse(tool: Tool, prog: &str, args: Vec<OsString>) -> Result<Request, Usage> {
    let spec = tool.spec();
    let matches = match command(spec).try_get_matches_from(split_equals(spec, args.clone())) {
        Ok(matches) => matches,
        // getopt acts on `-V` as soon as it meets it, before later errors.
        Err(_) if version_first(spec, &args) => return Ok(Request::Version),
        Err(e) => return Err(getopt_error(e)),
    };

    let mut opts: Vec<(usize, Opt)> = Vec::new();
    for (letter, id, takes_value) in spec.letter_ids() {
        let Some(indices) = matches.indices_of(id) else {
            continue;
        };
        if takes_value {
            let values = matches
                .get_many::<OsString>(id)
                .into_iter()
                .flatten()
                .cloned();
            for (index, value) in indices.zip(values) {
                let value = Some(value);
                opts.push((index, Opt { letter, value }));
            }
        } else {
            for index in indices {
                opts.push((
                    index,
                    Opt {
                        letter,
                        value: None,
                    },
                ));
            }
        }
    }
    opts.sort_by_key(|(index, _)| *index);
    let opts: Vec<Opt> = opts.into_iter().map(|(_, o)| o).collect();

    if matches.get_flag(HELP) {
        return Ok(Request::Help);
    }
    if opts.iter().any(|o| o.letter == 'V') {
        return Ok(Request::Version);
    }
    let operands: Vec<OsString> = matches
        .get_many::<OsString>(OPERANDS)
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if !spec.operands.accepts(operands.len()) {
        return Err(Usage::new());
    }
    Ok(Request::Run(Parsed {
        prog: prog.to_owned(),
        opts,
        operands,
    }))
}

/// getopt reads `-h=DIR` as the value `=DIR`, clap as `DIR`: give clap
/// such a value as a word of its own, which it keeps whole. Walks the words
/// as getopt does to know which are option clusters.
fn split_equals(spec: &Spec, args: Vec<OsString>) -> Vec<OsString> {
    let mut words = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            words.push(arg);
            words.extend(args);
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' || bytes[1] == b'-' {
            words.push(arg);
            continue;
        }
        // The first letter that takes a value ends the cluster.
        let taker = bytes[1..].iter().position(|&b| {
            char::from_u32(b.into()).and_then(|c| spec.takes_value(c)) == Some(true)
        });
        match taker.map(|at| at + 2) {
            Some(end) if end == bytes.len() => {
                // The value is the next word, whatever it is.
                words.push(arg);
                words.extend(args.next());
            }
            Some(end) if bytes[end] == b'=' => {
                words.push(OsStr::from_bytes(&bytes[..end]).to_owned());
                words.push(OsStr::from_bytes(&bytes[end..]).to_owned());
            }
            _ => words.push(arg),
        }
    }
    words
}

/// Whether getopt, walking `args`, meets `-V` before the first unknown
/// option or missing value.
fn version_first(spec: &Spec, args: &[OsString]) -> bool {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let bytes = word.as_bytes();
        if bytes == b"--" {
            return false;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            continue;
        }
        for (at, &b) in bytes.iter().enumerate().skip(1) {
            match spec.takes_value(char::from(b)) {
                None => return false,
                Some(false) if b == b'V' => return true,
                Some(false) => {}
                Some(true) => {
                    if at + 1 == bytes.len() && words.next().is_none() {
                        return false;
                    }
                    break;
                }
            }
        }
    }
    false
}

/// Rewrite a clap error in getopt's words.
fn getopt_error(err: clap::Error) -> Usage {
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // `-h <h>` or `-Z`: the letter after the dash; `--foo`: the dash itself.
    let letter = arg.strip_prefix('-').and_then(|rest| rest.chars().next());
    match (err.kind(), letter) {
        (ErrorKind::UnknownArgument, Some(c)) => Usage::msg(format!("invalid option -- '{c}'")),
        (ErrorKind::InvalidValue, Some(c)) => {
            Usage::msg(format!("option requires an argument -- '{c}'"))
        }
        _ => Usage::new(),
    }
}

/// Wraps the tool's stdout so that a reader going away (EPIPE) is noticed
/// and the run counts as a success, whatever error the tool made of it.
struct PipeGuard<'a> {
    inner: &'a mut dyn Write,
    closed: bool,
}

impl PipeGuard<'_> {
    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.closed = true;
            }
        }
        result
    }
}

impl Write for PipeGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self.inner.write_all(buf);
        self.note(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }
}

/// Run one tool invocation against the given streams and return its exit
/// status. This is all of [`run_main`] but the process: tests call it.
pub fn run_with<A>(
    tool: Tool,
    prog: &str,
    args: Vec<OsString>,
    parse_args: impl FnOnce(Parsed) -> Result<A, Usage>,
    run: impl FnOnce(A, &mut dyn Write) -> anyhow::Result<()>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let spec = tool.spec();
    let usage = |err: &mut dyn Write, u: &Usage| {
        // Nothing sensible is left to do when stderr itself fails.
        if let Some(m) = &u.message {
            let _ = writeln!(err, "{prog}: {m}");
        }
        let _ = err.write_all(spec.usage_text(prog).as_bytes());
        spec.error_exit
    };
    let mut out = PipeGuard {
        inner: out,
        closed: false,
    };
    let parsed = match parse(tool, prog, args) {
        Ok(Request::Run(parsed)) => parsed,
        Ok(request) => {
            let text = match request {
                Request::Help => spec.usage_text(prog),
                _ => format!("{VERSION_LINE}\n"),
            };
            return match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Ok(()) => 0,
                Err(_) if out.closed => 0,
                Err(e) => {
                    let _ = writeln!(err, "{prog}: write error: {e}");
                    spec.error_exit
                }
            };
        }
        Err(u) => return usage(err, &u),
    };
    let args = match parse_args(parsed) {
        Ok(args) => args,
        Err(u) => return usage(err, &u),
    };
    let result = run(args, &mut out);
    // Off the screen before the rest of stdout and any error line.
    crate::progress::clear();
    let flushed = out.flush();
    if out.closed {
        return 0;
    }
    match result.and_then(|()| flushed.map_err(|e| anyhow::Error::new(e).context("write error"))) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return *code;
            }
            if let Some(u) = e.downcast_ref::<Usage>() {
                return usage(err, u);
            }
            let _ = writeln!(err, "{prog}: {}", message(&e));
            spec.error_exit
        }
    }
}

/// The error chain joined with `: `, as `{:#}` would, except that an OS
/// error reads as `strerror` does (`No such file or directory`, without
/// Rust's ` (os error 2)`), like the Berkeley DB tools' messages.
pub fn message(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|cause| {
            let text = cause.to_string();
            match cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
            {
                Some(code) => text
                    .strip_suffix(&format!(" (os error {code})"))
                    .map(str::to_owned)
                    .unwrap_or(text),
                None => text,
            }
        })
        .collect();
    parts.join(": ")
}

static PROG: OnceLock<String> = OnceLock::new();

/// The program name of this process, for messages printed outside the
/// harness (see [`warn`]); `bdbtools` before [`run_main`] has set it.
pub fn prog() -> &'static str {
    PROG.get().map(String::as_str).unwrap_or("bdbtools")
}

/// Print `<prog>: <message>` on stderr, for warnings a tool gives while it
/// carries on. A failing stderr is ignored: there is nowhere left to tell.
pub fn warn(message: impl fmt::Display) {
    crate::progress::suspend(|| {
        let _ = writeln!(io::stderr(), "{}: {message}", prog());
    });
}

/// The whole life of a tool process: parse argv with `parse_args`, call
/// `run` with a buffered stdout, report and exit. Each binary is this one
/// call.
pub fn run_main<A>(
    tool: Tool,
    parse_args: impl FnOnce(Parsed) -> Result<A, Usage>,
    run: impl FnOnce(A, &mut dyn Write) -> anyhow::Result<()>,
) -> ! {
    let mut argv = std::env::args_os();
    let prog = prog_name(argv.next().as_deref(), tool.name());
    let prog = PROG.get_or_init(|| prog);
    let mut out = BufWriter::new(io::stdout().lock());
    let code = run_with(
        tool,
        prog,
        argv.collect(),
        parse_args,
        run,
        &mut out,
        &mut io::stderr(),
    );
    std::process::exit(code)
}

#[cfg(test)]
mod tests;
