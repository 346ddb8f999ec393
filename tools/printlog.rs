//! `db_printlog`: the log records of an environment, one readable entry
//! each, in Berkeley DB 5.3's layout (`libcore::printlog` does the
//! formatting). Reads only: it never creates or changes a file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use libcore::printlog::{Entries, Range, DEFAULT_DATA_LEN};
use libcore::Lsn;

use crate::cli::{Parsed, Usage};

#[derive(Debug)]
pub struct Args {
    home: PathBuf,
    range: Range,
    password: bool,
}

fn lsn(p: &Parsed, letter: char) -> Result<Option<Lsn>, Usage> {
    // Berkeley DB prints the usage alone for an LSN it cannot read.
    p.text(letter)?
        .map(|s| Lsn::parse_cli(s).ok_or_else(Usage::new))
        .transpose()
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    let data_len = match p.text('D')? {
        Some(s) => s.trim().parse::<usize>().map_err(|_| Usage::new())?,
        None => DEFAULT_DATA_LEN,
    };
    Ok(Args {
        home: p.home(),
        range: Range {
            begin: lsn(&p, 'b')?,
            end: lsn(&p, 'e')?,
            reverse: p.flag('r'),
            data_len,
        },
        password: p.flag('P'),
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.password {
        anyhow::bail!("-P: encryption is not supported (environments are never encrypted)");
    }
    let mut entries = Entries::open(&args.home, args.range)?;
    while let Some(e) = entries.next()? {
        write!(out, "{e}").context("write error")?;
    }
    Ok(())
}
