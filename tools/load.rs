//! `db_load`: read Berkeley DB dump text (or `-T` plain text) and load it
//! into one database of an environment, in one transaction.
//!
//! Exit status as Berkeley DB's: 0 loaded, 1 some keys already existed
//! under `-n` (each one named on stderr), 2 usage or any other error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use libcore::dump::{
    apply_override, encode_bytevalue, encode_print, DumpFormat, DumpHeader, PairSource,
};
use libcore::load::{self, LoadOptions, OneSection, TextSource};
use libcore::progress::{NoProgress, Phase, Progress, ProgressRead};
use std::os::fd::AsFd;

use crate::cli::{self, Exit, Parsed, Usage};

pub struct Args {
    home: Option<PathBuf>,
    file: PathBuf,
    input: Option<PathBuf>,
    settings: Vec<String>,
    no_overwrite: bool,
    text: bool,
    refused: Option<String>,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    let mut refused = None;
    if let Some(t) = p.text('t')? {
        match t {
            "btree" => {}
            "hash" | "recno" | "queue" => {
                refused = Some(format!(
                    "-t {t}: only btree databases are supported (our databases are all B-trees)"
                ))
            }
            _ => return Err(Usage::msg(format!("-t {t}: unknown database type"))),
        }
    }
    if let Some(r) = p.text('r')? {
        if r != "lsn" && r != "fileid" {
            return Err(Usage::new());
        }
        refused = Some(format!(
            "-r {r} is not supported: a database file of ours never moves between \
             environments (its pages and file id belong to its environment's log); \
             copy a database into another environment with db_dump | db_load"
        ));
    }
    if p.flag('P') {
        refused = Some("-P: encryption is not supported".to_string());
    }
    let mut settings = Vec::new();
    for v in p.values('c') {
        let v = v
            .to_str()
            .ok_or_else(|| Usage::msg("-c: value is not valid UTF-8"))?;
        settings.push(v.to_string());
    }
    Ok(Args {
        home: cli::home_opt(p.path('h')),
        file: PathBuf::from(&p.operands[0]),
        input: p.path('f'),
        settings,
        no_overwrite: p.flag('n'),
        text: p.flag('T'),
        refused,
    })
}

pub fn run(args: Args, _out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(why) = args.refused {
        anyhow::bail!(why);
    }
    let (home, db_name) = libcore::dump::locate(args.home.as_deref(), &args.file)?;
    // Dump text typed at the terminal gets no spinner turning beside it.
    let typed = args.input.is_none() && io::stdin().is_terminal();
    let bars = crate::progress::on_stderr().filter(|_| !typed);
    let progress: &dyn Progress = bars.as_deref().unwrap_or(&NoProgress);
    let (input, name): (Box<dyn BufRead>, String) = match &args.input {
        Some(path) => {
            let f = File::open(path).with_context(|| path.display().to_string())?;
            if bars.is_some() {
                progress.start(Phase::Load, file_size(&f));
            }
            let reader = BufReader::with_capacity(1 << 16, ProgressRead::new(f, progress));
            (Box::new(reader), path.display().to_string())
        }
        None => {
            if bars.is_some() {
                progress.start(Phase::Load, stdin_size());
            }
            let stdin = ProgressRead::new(io::stdin(), progress);
            (
                Box::new(BufReader::with_capacity(1 << 16, stdin)),
                "stdin".to_string(),
            )
        }
    };
    let mut header;
    let lines;
    let mut source: Box<dyn PairSource> = if args.text {
        header = DumpHeader::btree(DumpFormat::Print, 0);
        header.db_pagesize = None;
        let text = TextSource::new(input, &name);
        lines = text.lines();
        Box::new(text)
    } else {
        let (h, section) = OneSection::open(input, &name)?;
        header = h;
        lines = section.lines();
        Box::new(section)
    };
    for s in &args.settings {
        apply_override(&mut header, s)?;
    }
    load::check_header(&header).with_context(|| name.clone())?;

    let format = header.format;
    let mut on_existing = |line: usize, key: &[u8]| {
        let mut text = Vec::new();
        match format {
            DumpFormat::Print => encode_print(key, &mut text),
            DumpFormat::Bytevalue => encode_bytevalue(key, &mut text),
        }
        cli::warn(format!(
            "{}: line {line}: key already exists, not loaded:\n{}",
            args.file.display(),
            String::from_utf8_lossy(&text)
        ));
    };
    let opts = LoadOptions {
        page_size: header.db_pagesize,
        no_overwrite: args.no_overwrite,
        input_name: name,
        lines: Some(lines),
        on_existing: Some(&mut on_existing),
        progress: bars.as_deref(),
    };
    let report = load::load(&home, &db_name, source.as_mut(), opts)?;
    if report.existed > 0 {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// The size of an input that is a regular file (the total its progress
/// bar shows); `None` for a pipe or a terminal.
fn file_size(f: &File) -> Option<u64> {
    f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// The size of standard input when it is a regular file (`db_load <
/// dump`).
fn stdin_size() -> Option<u64> {
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    file_size(&File::from(fd))
}
