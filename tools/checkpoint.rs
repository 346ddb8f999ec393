//! `db_checkpoint`: one checkpoint now (`-1`) or a daemon that checkpoints
//! when enough log was written (`-k`) or enough time passed with activity
//! (`-p`). The checkpoint itself is `libcore::checkpoint::checkpoint`: asked
//! of the live owner through the region, or taken here when there is none.
//!
//! Signals: SIGHUP, SIGINT and SIGTERM are caught (signal-hook); the
//! daemon finishes the checkpoint in progress, removes its `-L` file, then
//! dies of the same signal, as Berkeley DB's utilities do.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use libcore::checkpoint::checkpoint;
use libcore::printlog::ctime;

use crate::cli::{self, Parsed, Usage};

/// How often the daemon looks at the log, as Berkeley DB does.
const PERIOD: Duration = Duration::from_secs(30);
/// How long to wait for a live owner to take a requested checkpoint.
const OWNER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Args {
    home: PathBuf,
    once: bool,
    kbytes: Option<String>,
    minutes: Option<String>,
    lock_file: Option<PathBuf>,
    verbose: bool,
    password: bool,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    if !(p.flag('1') || p.flag('k') || p.flag('p')) {
        return Err(Usage::msg(
            "at least one of -1, -k and -p must be specified",
        ));
    }
    Ok(Args {
        home: p.home(),
        once: p.flag('1'),
        kbytes: p.text('k')?.map(str::to_owned),
        minutes: p.text('p')?.map(str::to_owned),
        lock_file: p.path('L'),
        verbose: p.flag('v'),
        password: p.flag('P'),
    })
}

/// A number of at least 1, with Berkeley DB's `__db_getlong` messages.
fn number(s: &str) -> anyhow::Result<u64> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{s}: Invalid numeric argument"))?;
    if n < 1 {
        anyhow::bail!("{s}: Less than minimum value (1)");
    }
    Ok(n as u64)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn run(args: Args, _out: &mut dyn Write) -> anyhow::Result<()> {
    if args.password {
        anyhow::bail!("-P: encryption is not supported (environments are never encrypted)");
    }
    let kbytes = args.kbytes.as_deref().map(number).transpose()?;
    let minutes = args.minutes.as_deref().map(number).transpose()?;
    // Fails on a home that is not an environment, before anything is
    // written (Berkeley DB would create a log there).
    libcore::stat::log(&args.home)?;
    catch_signals()?;
    if let Some(path) = &args.lock_file {
        let text = format!("{}: {} {}\n", cli::prog(), std::process::id(), ctime(now()));
        std::fs::write(path, text).with_context(|| path.display().to_string())?;
    }
    let result = daemon(&args, kbytes, minutes);
    if let Some(path) = &args.lock_file {
        let _ = std::fs::remove_file(path);
    }
    resend_signal();
    result
}

fn daemon(args: &Args, kbytes: Option<u64>, minutes: Option<u64>) -> anyhow::Result<()> {
    loop {
        if args.verbose {
            cli::warn(format_args!("checkpoint begin: {}\n", ctime(now())));
        }
        if args.once || due(args, kbytes, minutes)? {
            checkpoint(&args.home, OWNER_TIMEOUT)?;
        }
        if args.verbose {
            cli::warn(format_args!("checkpoint complete: {}\n", ctime(now())));
        }
        if args.once {
            return Ok(());
        }
        let start = Instant::now();
        while start.elapsed() < PERIOD {
            if signalled() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether a checkpoint is due: `kbytes` KB of log since the last one, or
/// `minutes` since the last one with some log written since.
fn due(args: &Args, kbytes: Option<u64>, minutes: Option<u64>) -> anyhow::Result<bool> {
    let log = libcore::stat::log(&args.home)?;
    let written = log.bytes_since_ckp;
    if kbytes.is_some_and(|k| written >= k.saturating_mul(1024)) {
        return Ok(true);
    }
    let age = log.last_ckp.map(|(_, t)| now().saturating_sub(t));
    Ok(written > 0 && minutes.is_some_and(|m| age.is_none_or(|a| a >= m.saturating_mul(60))))
}

/// The signal that asked us to stop, 0 for none.
static SIGNALLED: LazyLock<Arc<AtomicUsize>> = LazyLock::new(Arc::default);

fn catch_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGHUP, SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(sig, SIGNALLED.clone(), sig as usize)?;
    }
    Ok(())
}

fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst) != 0
}

/// Dies of the signal that stopped us, if any, now that we cleaned up.
fn resend_signal() {
    let sig = SIGNALLED.load(Ordering::SeqCst);
    if sig != 0 {
        let _ = std::io::stderr().flush();
        let _ = signal_hook::low_level::emulate_default_handler(sig as i32);
    }
}
