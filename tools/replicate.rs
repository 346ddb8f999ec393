//! db_replicate: a warm standby through a replica store (issue 12). With
//! `-M` on the primary's home it is the master (libcore::replica::master),
//! without it the client keeping the standby home (replica::client); the
//! store is the one DB_CONFIG's `repl_store` names (a directory or an S3
//! address: `crate::store`). Our additions: `-R`
//! restores the home from the store alone and exits (`-p time` for a
//! point in time), `-D` prints a digest of the home's content.
//!
//! SIGHUP, SIGINT and SIGTERM stop it cleanly: the master ships what is
//! durable and posts its status, the client finishes the segment it is
//! applying; the `-L` file is removed; then it dies of the same signal,
//! as Berkeley DB's utilities do.

use crate::cli::{Parsed, Usage};
use anyhow::Context;
use libcore::backup::StopFlag;
use libcore::printlog::ctime;
use libcore::recover;
use libcore::replica::client::{self, ClientOptions};
use libcore::replica::digest;
use libcore::replica::master::{self, MasterOptions};
use libcore::replica::restore::{self, Target};
use libcore::OsVfs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Master,
    Client,
    Restore,
    Digest,
}

pub struct Args {
    home: PathBuf,
    mode: Mode,
    lock_file: Option<PathBuf>,
    lag_secs: u64,
    until: Option<String>,
    verbose: bool,
}

/// A number of at least 1, with Berkeley DB's messages.
fn number(letter: char, s: &str) -> Result<u64, Usage> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| Usage::msg(format!("-{letter}: {s}: Invalid numeric argument")))?;
    if n < 1 {
        return Err(Usage::msg(format!(
            "-{letter}: {s}: Less than minimum value (1)"
        )));
    }
    Ok(n as u64)
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    if p.flag('P') {
        return Err(Usage::msg(
            "-P: encryption is not supported (environments are never encrypted)",
        ));
    }
    let picked = [p.flag('M'), p.flag('R'), p.flag('D')];
    if picked.iter().filter(|&&x| x).count() > 1 {
        return Err(Usage::msg("only one of -M, -R and -D may be given"));
    }
    if p.flag('p') && !p.flag('R') {
        return Err(Usage::msg(
            "-p needs -R (it is the time a restore stops at)",
        ));
    }
    if let Some(t) = p.text('T')? {
        number('T', t)?;
    }
    let lag_secs = match p.text('t')? {
        Some(t) => number('t', t)?,
        None => 1,
    };
    let mode = if p.flag('M') {
        Mode::Master
    } else if p.flag('R') {
        Mode::Restore
    } else if p.flag('D') {
        Mode::Digest
    } else {
        Mode::Client
    };
    Ok(Args {
        home: p.home(),
        mode,
        lock_file: p.path('L'),
        lag_secs,
        until: p.text('p')?.map(str::to_owned),
        verbose: p.flag('v'),
    })
}

/// The signals that stop the daemon; the flag holds the signal number.
fn catch_stop_signals() -> std::io::Result<StopFlag> {
    let stop = StopFlag::default();
    for sig in [
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ] {
        signal_hook::flag::register_usize(sig, stop.clone(), sig as usize)?;
    }
    Ok(stop)
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let vfs = OsVfs::shared();
    let prog = crate::cli::prog();
    if args.mode == Mode::Digest {
        let (at, sum) = digest::of_home(&args.home, &mut |_| {})?;
        writeln!(out, "digest {} at {at}", digest::hex(&sum))?;
        return Ok(());
    }
    let mut write_err: Option<std::io::Error> = None;
    let verbose = args.verbose;
    let mut say = |line: String| {
        if verbose && write_err.is_none() {
            let written = crate::progress::suspend(|| {
                writeln!(out, "{prog}: {line}").and_then(|_| out.flush())
            });
            if let Err(e) = written {
                write_err = Some(e);
            }
        }
    };
    match args.mode {
        Mode::Restore => {
            let until = match &args.until {
                Some(t) => Some(recover::parse_local(t)?),
                None => None,
            };
            restore_home(&vfs, &args.home, until, &mut say)?;
            return write_err.map_or(Ok(()), |e| Err(e.into()));
        }
        Mode::Master | Mode::Client | Mode::Digest => {}
    }
    let stop = catch_stop_signals()?;
    if let Some(path) = &args.lock_file {
        let text = format!("{prog}: {} {}\n", std::process::id(), ctime(now()));
        std::fs::write(path, text).with_context(|| path.display().to_string())?;
    }
    let result = daemon(&args, &vfs, stop.clone(), &mut say);
    crate::progress::clear();
    if let Some(path) = &args.lock_file {
        let _ = std::fs::remove_file(path);
    }
    let signal = stop.load(Ordering::SeqCst);
    if signal != 0 {
        if let Err(e) = &result {
            crate::cli::warn(e);
        }
        let _ = std::io::stdout().flush();
        signal_hook::low_level::emulate_default_handler(signal as i32)?;
    }
    result?;
    write_err.map_or(Ok(()), |e| Err(e.into()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn daemon(
    args: &Args,
    vfs: &libcore::SharedVfs,
    stop: StopFlag,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let store = crate::store::for_home(vfs, &args.home)?;
    if args.mode == Mode::Master {
        let config = libcore::Layout::resolve(vfs, &args.home)?.config;
        let mut opts = MasterOptions {
            lag_bound: Duration::from_secs(args.lag_secs),
            stop,
            progress: crate::progress::on_stderr(),
            ..Default::default()
        };
        if let Some(secs) = config.repl_lease_secs {
            opts.lease = Duration::from_secs(u64::from(secs));
        }
        master::run(vfs, &args.home, store, &opts, say)?;
    } else {
        let opts = ClientOptions {
            stop,
            progress: crate::progress::on_stderr(),
            ..Default::default()
        };
        client::run(vfs, &args.home, store, &opts, say)?;
    }
    Ok(())
}

/// `-R`: restores the home (empty but for its DB_CONFIG) from the store
/// its DB_CONFIG names: the newest state, or the state at `until`.
fn restore_home(
    vfs: &libcore::SharedVfs,
    home: &Path,
    until: Option<i64>,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let store = crate::store::for_home(vfs, home)?;
    if libcore::replica::layout::read_store_info(&*store)?.is_none() {
        anyhow::bail!(
            "{}: not a replica store (no store record): is it the right directory, and has a master (db_replicate -M) run?",
            store.describe()
        );
    }
    if !vfs.exists(&restore::mark_path(home)) && !restore::is_empty_home(vfs, home)? {
        anyhow::bail!(
            "{}: not empty: a restore goes into a directory holding nothing but its DB_CONFIG",
            home.display()
        );
    }
    let target = match until {
        Some(t) => Target::At(u64::try_from(t).unwrap_or(0)),
        None => Target::Newest,
    };
    let Some(b) = restore::choose(&*store, target)? else {
        match until {
            Some(t) => anyhow::bail!(
                "{}: no base in the store is older than {}",
                store.describe(),
                recover::ctime(t)
            ),
            None => anyhow::bail!("{}: the store holds no complete base yet", store.describe()),
        }
    };
    let bars = crate::progress::on_stderr();
    let r = restore::restore(vfs, &*store, home, &b, target, bars, say)?;
    restore::unmark(vfs, home)?;
    say(format!(
        "{}: restored from base {} to {}",
        home.display(),
        b.number,
        r.outcome.end
    ));
    Ok(())
}
