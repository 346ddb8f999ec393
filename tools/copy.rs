//! db_copy: copy database files (page-atomic, checksum-verified reads) and
//! log files, safely while the environment is in use.
//!
//! `db_copy [-FVv] [-h home] source ... target`, or with the target first
//! as `-t target` (the form for xargs, which appends the sources): a
//! relative source that is a log file name is found in the log directory,
//! any other relative name in the data directories, so
//! `db_archive -s | xargs db_copy -h home -t /backup/` copies exactly what
//! db_archive listed. Absolute sources (from `db_archive -a`) are used as
//! they are.

use crate::cli::{Parsed, Usage};
use libcore::copy::{copy_into, CopyOptions};
use libcore::Layout;
use libcore::OsVfs;
use std::io::Write;
use std::path::PathBuf;

pub struct Args {
    home: Option<PathBuf>,
    sources: Vec<PathBuf>,
    target: PathBuf,
    /// `-t`: the target must be an existing directory, as with `cp -t`.
    target_is_dir: bool,
    plain: bool,
    verbose: bool,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    let mut ops: Vec<PathBuf> = p.operands.iter().map(PathBuf::from).collect();
    // `-t target` first (for xargs, which appends the sources), or the
    // target last, as cp takes it.
    let target = match p.path('t') {
        Some(t) => t,
        None => ops.pop().ok_or_else(Usage::new)?,
    };
    if ops.is_empty() {
        return Err(Usage::new());
    }
    Ok(Args {
        home: p.path('h').or_else(|| crate::cli::home_opt(None)),
        sources: ops,
        target,
        target_is_dir: p.flag('t'),
        plain: p.flag('F'),
        verbose: p.flag('v'),
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let vfs = OsVfs::shared();
    let sources: Vec<PathBuf> = match &args.home {
        Some(home) => {
            let layout = Layout::resolve(&vfs, home)?;
            args.sources
                .iter()
                .map(|s| {
                    if s.is_absolute() || s.components().count() > 1 {
                        return s.clone();
                    }
                    layout.file_path(&vfs, &s.to_string_lossy())
                })
                .collect()
        }
        None => args.sources.clone(),
    };
    let progress = crate::progress::on_stderr();
    let opts = CopyOptions {
        plain: args.plain,
        pace: None,
        progress: progress.as_deref(),
    };
    let mut shown: anyhow::Result<()> = Ok(());
    copy_into(
        &vfs,
        &sources,
        &args.target,
        args.target_is_dir,
        opts,
        |r| {
            if args.verbose && shown.is_ok() {
                let line = format!(
                    "copied {} to {} ({} bytes{})",
                    r.source.display(),
                    r.target.display(),
                    r.bytes,
                    if r.rereads > 0 {
                        format!(", {} page re-reads", r.rereads)
                    } else {
                        String::new()
                    }
                );
                shown = print_line(out, &line, progress.is_some()).map_err(Into::into);
            }
        },
    )?;
    shown
}

/// One `-v` line on stdout; while a bar may be on the terminal, written
/// with the bar off the screen and flushed at once.
fn print_line(out: &mut dyn Write, line: &str, bar: bool) -> std::io::Result<()> {
    if !bar {
        return writeln!(out, "{line}");
    }
    crate::progress::suspend(|| writeln!(out, "{line}").and_then(|()| out.flush()))
}
