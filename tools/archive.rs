//! db_archive: which log files are no longer in use, all log files, or the
//! database files; `-d` removes the unused logs.

use crate::cli::{Parsed, Usage};
use anyhow::bail;
use libcore::archive::{self, ArchiveMode};
use libcore::Layout;
use libcore::OsVfs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub struct Args {
    home: PathBuf,
    mode: ArchiveMode,
    absolute: bool,
    remove: bool,
}

/// Berkeley DB's words for -l with -s, and -d with -a, -l or -s.
const ILLEGAL: &str = "illegal flag combination specified to DB_ENV->log_archive";

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    Ok(Args {
        home: p.home(),
        mode: if p.flag('s') {
            ArchiveMode::Databases
        } else if p.flag('l') {
            ArchiveMode::AllLogs
        } else {
            ArchiveMode::Unused
        },
        absolute: p.flag('a'),
        remove: p.flag('d'),
    })
    .and_then(|a| {
        if p.flag('P') {
            return Err(Usage::msg(
                "-P: encryption is not supported (environments are not encrypted)",
            ));
        }
        if (p.flag('l') && p.flag('s'))
            || (p.flag('d') && (p.flag('a') || p.flag('l') || p.flag('s')))
        {
            return Err(Usage {
                message: Some(ILLEGAL.into()),
            });
        }
        Ok(a)
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let vfs = OsVfs::shared();
    let layout = Layout::resolve(&vfs, &args.home)?;
    if args.remove {
        archive::remove_unused(&vfs, &layout)?;
        return Ok(());
    }
    // Empty for an environment in which nothing was ever committed.
    let list = archive::list(&vfs, &layout, args.mode, args.absolute)?;
    // One name per line is the format scripts read (`xargs -d '\n'`): a
    // name holding a newline would be read as two, so refuse before
    // printing anything rather than hand a pipe a wrong list.
    if let Some(bad) = list
        .iter()
        .find(|p| p.as_os_str().as_bytes().contains(&b'\n'))
    {
        bail!(
            "{:?}: a file name holding a newline cannot be listed one per line; rename it",
            bad
        );
    }
    for p in list {
        out.write_all(p.as_os_str().as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
