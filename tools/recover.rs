//! `db_recover`: recovery of an environment no process has open. Normal
//! recovery replays the log from the last checkpoint, `-c` (catastrophic)
//! from the first log file present, `-t` stops at a point in time and cuts
//! the log there. The work is `libcore::recover_env`; this prints what
//! Berkeley DB prints: `-v` lines on stdout without the program name, `-f`
//! progress as `\rrecovery N% complete` and a final newline.
//!
//! Exit status: 0 success, 1 any failure (usage included).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use libcore::recover::{self, recover_env, RecoverEnvOptions};
use libcore::Lsn;

use crate::cli::{self, Parsed, Usage};

pub struct Args {
    home: PathBuf,
    catastrophic: bool,
    keep_region: bool,
    feedback: bool,
    verbose: bool,
    time: Option<OsString>,
    refused: Option<&'static str>,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    Ok(Args {
        home: p.home(),
        catastrophic: p.flag('c'),
        keep_region: p.flag('e'),
        feedback: p.flag('f'),
        verbose: p.flag('v'),
        time: p.value('t').map(OsString::from),
        refused: p.flag('P').then_some("-P: encryption is not supported"),
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    // Berkeley DB reads -t while it parses the options, so a bad time is
    // the first complaint; its message has no usage after it.
    let until = match &args.time {
        Some(t) => Some(
            t.to_str()
                .ok_or(recover::BadTime)
                .and_then(recover::parse_local)?,
        ),
        None => None,
    };
    if let Some(why) = args.refused {
        anyhow::bail!(why);
    }

    let mut shown = false;
    let mut write_error = None;
    let result = {
        let mut feedback = |pct: u32| {
            if write_error.is_none() {
                shown = true;
                if let Err(e) = write!(out, "\rrecovery {pct}% complete").and_then(|()| out.flush())
                {
                    write_error = Some(e);
                }
            }
        };
        // -f is Berkeley DB's own progress, on stdout: no bar beside it.
        let bars = match args.feedback {
            true => None,
            false => crate::progress::on_stderr(),
        };
        let opts = RecoverEnvOptions {
            catastrophic: args.catastrophic,
            until,
            keep_region: args.keep_region,
            feedback: if args.feedback {
                Some(&mut feedback)
            } else {
                None
            },
            progress: bars.as_deref(),
            ..RecoverEnvOptions::default()
        };
        recover_env(&args.home, opts)
    };
    crate::progress::clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if shown {
        // Also on failure, so the error starts a line of its own.
        writeln!(out)?;
        out.flush()?;
    }
    // One line: libcore's message already names the file and the cause.
    let report = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in &report.warnings {
        cli::warn(w);
    }
    if report.nothing_committed {
        cli::warn(format_args!(
            "{}: nothing to recover: the environment has no log yet, so nothing was ever committed (its creation did not finish; the next open with create completes it)",
            args.home.display()
        ));
    }
    if args.verbose {
        let last = report.last_valid;
        writeln!(
            out,
            "Finding last valid log LSN: file: {} offset {}",
            last.file, last.offset
        )?;
        if let Some(start) = report.start {
            writeln!(out, "Recovery starting from {start}")?;
        }
        writeln!(
            out,
            "Recovery complete at {}",
            recover::ctime(report.finished_at)
        )?;
        writeln!(
            out,
            "Maximum transaction ID {} recovery checkpoint {}",
            report.max_txn,
            report.checkpoint.unwrap_or(Lsn::ZERO)
        )?;
    }
    Ok(())
}
