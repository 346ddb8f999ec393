//! `db_dump`: write one database in the Berkeley DB dump text format, from
//! a read-only view of its environment (a live owner may keep running).
//!
//! Exit status: 0 success, 1 any failure (usage included).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use libcore::dump::{self, DumpFormat, DumpOptions};

use crate::cli::{self, Parsed, Usage};

pub struct Args {
    home: Option<PathBuf>,
    file: PathBuf,
    output: Option<PathBuf>,
    subdb: Option<OsString>,
    list: bool,
    refused: Option<&'static str>,
    opts: DumpOptions,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    // As Berkeley DB: a file, or -m and no file.
    if p.flag('m') == (p.operands.len() == 1) {
        return Err(Usage::new());
    }
    let refused = if p.flag('m') {
        Some("-m: named in-memory databases are not supported (every database is a file)")
    } else if p.flag('P') {
        Some("-P: encryption is not supported")
    } else if p.flag('d') {
        Some("-d: debugging dumps of internal structures are not supported")
    } else if p.flag('r') || p.flag('R') {
        Some("-r/-R: salvage is not supported; db_verify finds damage, db_recover repairs it")
    } else {
        None
    };
    Ok(Args {
        home: cli::home_opt(p.path('h')),
        file: p.operands.first().map(PathBuf::from).unwrap_or_default(),
        refused,
        output: p.path('f'),
        subdb: p.value('s').map(OsString::from),
        list: p.flag('l'),
        opts: DumpOptions {
            format: if p.flag('p') {
                DumpFormat::Print
            } else {
                DumpFormat::Bytevalue
            },
            keys: p.flag('k'),
        },
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(why) = args.refused {
        anyhow::bail!(why);
    }
    let (home, name) = dump::locate(args.home.as_deref(), &args.file)?;
    if args.list {
        dump::list(&home, &name)?;
        return Ok(());
    }
    if let Some(s) = &args.subdb {
        // One database per file: only the file's own name selects it.
        if s.as_os_str() != name.as_str() {
            anyhow::bail!(
                "{}: multiple databases specified but not supported by file \
                 (a file holds one database; -s {} names none)",
                args.file.display(),
                s.to_string_lossy()
            );
        }
    }
    match &args.output {
        None => {
            dump::dump(&home, &name, out, "stdout", args.opts)?;
        }
        Some(path) => {
            let mut file = LazyFile {
                path: path.clone(),
                file: None,
            };
            let shown = path.display().to_string();
            dump::dump(&home, &name, &mut file, &shown, args.opts)?;
            if let Some(f) = file.file {
                f.get_ref().sync_all().with_context(|| shown.clone())?;
            }
        }
    }
    Ok(())
}

/// The `-f` output, created at the first write: a dump that fails before
/// writing anything (no such database) leaves no file behind.
struct LazyFile {
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
}

impl LazyFile {
    fn get(&mut self) -> io::Result<&mut io::BufWriter<File>> {
        let file = match self.file.take() {
            Some(f) => f,
            None => io::BufWriter::with_capacity(1 << 16, File::create(&self.path)?),
        };
        Ok(self.file.insert(file))
    }
}

impl Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.get()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}
