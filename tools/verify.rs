//! db_verify: check database files page by page and as B-trees.

use crate::cli::{Exit, Parsed, Usage};
use libcore::verify::{verify_file, VerifyOptions};
use libcore::Layout;
use libcore::OsVfs;
use std::io::Write;
use std::path::PathBuf;

pub struct Args {
    home: Option<PathBuf>,
    files: Vec<PathBuf>,
    quiet: bool,
    opts: VerifyOptions,
}

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    if p.flag('P') {
        return Err(Usage::msg(
            "-P: encryption is not supported (environments are not encrypted)",
        ));
    }
    Ok(Args {
        home: crate::cli::home_opt(p.path('h')),
        files: p.operands.iter().map(PathBuf::from).collect(),
        quiet: p.flag('q'),
        opts: VerifyOptions {
            skip_order: p.flag('o'),
        },
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let vfs = OsVfs::shared();
    let layout = match &args.home {
        Some(h) => Some(Layout::resolve(&vfs, h)?),
        None => None,
    };
    let prog = crate::cli::prog();
    let mut failed = false;
    for f in &args.files {
        let path = match (&layout, f.components().count()) {
            (Some(l), 1) => l.db_path(&vfs, &f.to_string_lossy()),
            _ => f.clone(),
        };
        let problems = match verify_file(&vfs, &path, args.opts) {
            Ok(p) => p,
            Err(e) => {
                crate::cli::warn(&e);
                failed = true;
                continue;
            }
        };
        let name = f.display();
        if problems.is_empty() {
            if !args.quiet {
                writeln!(out, "Verification of {name} succeeded.")?;
            }
            continue;
        }
        failed = true;
        for p in &problems {
            let line = match p.page {
                Some(n) => format!("Page {n}: {}", p.what),
                None => format!("{name}: {}", p.what),
            };
            if args.quiet {
                eprintln!("{line}");
            } else {
                eprintln!("{prog}: {line}");
            }
        }
        if !args.quiet {
            writeln!(out, "Verification of {name} failed.")?;
            eprintln!("{prog}: {name}: DB_VERIFY_BAD: Database verification failed");
        }
    }
    out.flush()?;
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}
