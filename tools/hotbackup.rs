//! db_hotbackup: the whole hot-backup procedure in one command, and `-u`,
//! its incremental update. See libcore::backup for what it does and
//! man/db_hotbackup.1 for where it differs from Berkeley DB.

use crate::cli::{Parsed, Usage};
use libcore::backup::{hot_backup, BackupOptions, StopFlag};
use libcore::OsVfs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Args {
    home: PathBuf,
    target: PathBuf,
    opts: BackupOptions,
    verbose: bool,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    if p.flag('d') && p.flag('c') {
        return Err(Usage::msg("cannot specify -d and -c"));
    }
    if p.flag('D') && (p.flag('d') || p.flag('l')) {
        return Err(Usage::msg("cannot specify -D and -d or -l"));
    }
    let Some(home) = crate::cli::home_opt(p.path('h')) else {
        return Err(Usage::msg("no source database environment specified"));
    };
    let Some(target) = p.path('b') else {
        return Err(Usage::msg("no target backup directory specified"));
    };
    let max_rate = match p.value('r') {
        None => None,
        Some(r) => match r.to_str().and_then(|r| r.parse::<u64>().ok()) {
            Some(mb) if mb > 0 && mb < (1 << 40) => Some(mb << 20),
            _ => {
                return Err(Usage::msg(format!(
                "-r: {}: the rate must be a whole number of megabytes (MiB) per second, at least 1",
                r.to_string_lossy()
            )))
            }
        },
    };
    if p.flag('P') {
        return Err(Usage::msg(
            "-P: encryption is not supported (environments are not encrypted)",
        ));
    }
    Ok(Args {
        opts: BackupOptions {
            update: p.flag('u'),
            checkpoint: p.flag('c'),
            config_dirs: p.flag('D'),
            data_dirs: p.values('d').map(PathBuf::from).collect(),
            log_dir: p.path('l'),
            keep_logs: p.flag('g'),
            plain: p.flag('F'),
            max_rate,
            interrupt: None,
            progress: crate::progress::on_stderr(),
        },
        home,
        target,
        verbose: p.flag('v'),
    })
}

/// `-u` updates a backup directory that must exist: a missing one (a
/// mistyped `-b`) is named as missing, not reported as a directory without
/// a manifest.
fn update_target_exists(args: &Args) -> libcore::Result<()> {
    if !args.opts.update || args.target.is_dir() {
        return Ok(());
    }
    const ENOENT: i32 = 2;
    const ENOTDIR: i32 = 20;
    let code = if args.target.exists() {
        ENOTDIR
    } else {
        ENOENT
    };
    Err(libcore::Error::io(
        &args.target,
        "backup directory",
        std::io::Error::from_raw_os_error(code),
    ))
}

/// The signals that stop a backup cleanly, as Berkeley DB's utilities
/// catch them: the first one stops the copy at its next read or write, the
/// run removes what it made and says in one line what the backup
/// directory holds, then dies of the same signal (so the exit status shows
/// it). A second one kills at once.
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
];

fn catch_stop_signals() -> std::io::Result<StopFlag> {
    let stop = StopFlag::default();
    let seen = Arc::new(AtomicBool::new(false));
    for sig in STOP_SIGNALS {
        // Registered first, so it sees the flag the second signal finds set.
        signal_hook::flag::register_conditional_default(sig, seen.clone())?;
        signal_hook::flag::register(sig, seen.clone())?;
        signal_hook::flag::register_usize(sig, stop.clone(), sig as usize)?;
    }
    Ok(stop)
}

pub fn run(mut args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let vfs = OsVfs::shared();
    let prog = crate::cli::prog();
    let stop = catch_stop_signals()?;
    args.opts.interrupt = Some(stop.clone());
    let mut write_err: Option<std::io::Error> = None;
    let mut say = |line: String| {
        if args.verbose && write_err.is_none() {
            let written = crate::progress::suspend(|| {
                writeln!(out, "{prog}: {line}").and_then(|_| out.flush())
            });
            if let Err(e) = written {
                write_err = Some(e);
            }
        }
    };
    let result = update_target_exists(&args)
        .and_then(|()| hot_backup(&vfs, &args.home, &args.target, &args.opts, &mut say));
    crate::progress::clear();
    let signal = stop.load(Ordering::SeqCst);
    if signal != 0 {
        match &result {
            Err(e) => crate::cli::warn(e),
            Ok(_) => crate::cli::warn(format!(
                "{}: interrupted after the backup had completed",
                args.target.display()
            )),
        }
        let _ = out.flush();
        signal_hook::low_level::emulate_default_handler(signal as i32)?;
    }
    match result {
        Ok(_) => {}
        Err(e) => {
            crate::cli::warn(&e);
            anyhow::bail!("HOT BACKUP FAILED!");
        }
    }
    match write_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
