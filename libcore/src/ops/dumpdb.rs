//! Dumping one database of an environment in the Berkeley DB dump text
//! format: what `db_dump` does once it knows what to dump.
//!
//! The environment is opened read-only: nothing in it is ever written, and
//! a live owner is neither locked out nor slowed. If the owner writes a page
//! newer than our snapshot while we read (`Error::SnapshotMoved`), the view
//! is reopened and the scan resumes after the last key written, so the
//! output is streamed (no buffering of the whole dump), never repeats or
//! drops a key that stayed in the database, and every pair is a committed
//! value. As with Berkeley DB's `db_dump` on a live database, a dump taken
//! while the database changes is not a snapshot of one instant.

use crate::bdbtext::dump::{DumpFormat, DumpHeader, DumpWriter};
use crate::btree::Scan;
use crate::engine::env::{Env, EnvOptions};
use crate::engine::reader::ReadStore;
use crate::error::{Error, Result};
use crate::storage::layout::{probe_db, Layout};
use crate::storage::vfs::OsVfs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many times in a row a view may be overtaken by the owner without the
/// dump making progress before we give up.
const MAX_STALLED_RETRIES: usize = 20;

/// What the header says besides the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// How key and data lines are written: `bytevalue` (the default) or
    /// `print` (`db_dump -p`).
    pub format: DumpFormat,
    /// `db_dump -k`: Berkeley DB adds `keys=1` to a btree's header.
    pub keys: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            format: DumpFormat::Bytevalue,
            keys: false,
        }
    }
}

/// Writes the database `db_name` of the environment at `home` to `out`
/// (called `out_name` in messages). Returns the number of pairs written.
pub fn dump(
    home: &Path,
    db_name: &str,
    out: &mut dyn Write,
    out_name: &str,
    opts: DumpOptions,
) -> Result<u64> {
    let mut env = open(home, db_name)?;
    let (page_size, mut db) = lookup(&env, home, db_name)?;
    let mut header = DumpHeader::btree(opts.format, page_size);
    if opts.keys {
        header.extra.push(("keys".to_string(), "1".to_string()));
    }
    let mut w = DumpWriter::new(&mut *out, out_name, &header)?;
    let mut last: Option<Vec<u8>> = None;
    let mut written = 0u64;
    let mut stalled = 0;
    loop {
        let before = written;
        let pass = env.read(&db, |s| resume(s, &mut last, &mut w, &mut written));
        match pass {
            Ok(()) => break,
            Err(Error::SnapshotMoved) if stalled < MAX_STALLED_RETRIES => {
                stalled = if written > before { 0 } else { stalled + 1 };
                env = open(home, db_name)?;
                db = lookup(&env, home, db_name)?.1;
            }
            Err(e) => return Err(e),
        }
    }
    w.finish()?;
    Ok(written)
}

/// Writes every pair after `last` from one view, updating `last`.
fn resume<W: Write>(
    s: &ReadStore<'_>,
    last: &mut Option<Vec<u8>>,
    w: &mut DumpWriter<W>,
    written: &mut u64,
) -> Result<()> {
    let mut scan = Scan::new(s, last.as_deref())?;
    while let Some((k, v)) = scan.next(s)? {
        if last.as_deref().is_some_and(|l| k.as_slice() <= l) {
            continue;
        }
        w.write_pair(&k, &v)?;
        *written += 1;
        *last = Some(k);
    }
    Ok(())
}

/// `db_dump -l`: the names of the subdatabases in a file. A file of ours
/// holds one database, so this is Berkeley DB's answer for such a file
/// once the database is known to exist.
pub fn list(home: &Path, db_name: &str) -> Result<Vec<String>> {
    let env = open(home, db_name)?;
    lookup(&env, home, db_name)?;
    Err(Error::invalid(format!(
        "{db_name}: does not contain multiple databases"
    )))
}

/// Opens the read-only view, retrying while the owner races the opening.
fn open(home: &Path, db_name: &str) -> Result<Env> {
    let mut tries = 0;
    loop {
        match Env::open(home, EnvOptions::read_only()) {
            Err(Error::SnapshotMoved) if tries < MAX_STALLED_RETRIES => tries += 1,
            Err(Error::NotEnvironment { .. }) => return Err(not_env(home, db_name)),
            r => return r,
        }
    }
}

/// The error for a home without an environment, naming what is there.
fn not_env(home: &Path, db_name: &str) -> Error {
    let path = home.join(db_name);
    if path.is_file() {
        return Error::invalid(format!(
            "{}: not in an environment ({} has no log files); a Berkeley DB file needs db5.3_dump",
            path.display(),
            home.display()
        ));
    }
    Error::NotEnvironment {
        path: home.to_path_buf(),
    }
}

/// The database `db_name` and its page size, or an error that says why the
/// name is not a database: no such file, or a file that is not ours.
fn lookup(env: &Env, home: &Path, db_name: &str) -> Result<(u32, crate::storage::dbfile::Db)> {
    match env.open_db(db_name) {
        Ok(db) => {
            let page_size = env.file(&db)?.page_size as u32;
            Ok((page_size, db))
        }
        Err(Error::NotFound(_)) => {
            let vfs = OsVfs::shared();
            let path = env.layout().db_path(&vfs, db_name);
            if !vfs.exists(&path) {
                return Err(Error::io(
                    path,
                    "open",
                    std::io::Error::from_raw_os_error(2),
                ));
            }
            let h = vfs.open(&path, crate::storage::vfs::OpenMode::Read)?;
            if crate::storage::dbfile::is_uncommitted_leftover(&vfs, &*h, &path)? {
                return Err(Error::NotFound(format!(
                    "{}: no such database (a load or create that has not committed)",
                    path.display()
                )));
            }
            if probe_db(&vfs, &path).is_none() {
                return Err(Error::invalid(format!(
                    "{}: unexpected file type or format (not a database of ours)",
                    path.display()
                )));
            }
            Err(Error::invalid(format!(
                "{}: not a database of the environment in {}",
                path.display(),
                home.display()
            )))
        }
        Err(e) => Err(e),
    }
}

/// Where the `db_file` operand of `db_dump`/`db_load` is: the environment
/// home and the database name in it.
///
/// * a plain name is a database in the home (`-h`, `$DB_HOME` or `.`);
/// * a path without a home given (`db_dump /srv/env/a.db`) names its
///   directory as the home, or the environment whose `DB_CONFIG` lists
///   that directory as a data directory (one level up);
/// * a path with a home given must lie in one of its data directories.
pub fn locate(home: Option<&Path>, file: &Path) -> Result<(PathBuf, String)> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: not a database file name (a plain UTF-8 name inside the data directory)",
                file.display()
            ))
        })?
        .to_string();
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => {
            let home = home.map(Path::to_path_buf).unwrap_or_else(|| ".".into());
            return Ok((home, name));
        }
    };
    let vfs = OsVfs::shared();
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let in_data_dirs = |h: &Path| {
        Layout::resolve(&vfs, h)
            .map(|l| l.data_dirs.iter().any(|d| same(d, &dir)))
            .unwrap_or(false)
    };
    match home {
        Some(h) => {
            if in_data_dirs(h) {
                Ok((h.to_path_buf(), name))
            } else {
                Err(Error::invalid(format!(
                    "{}: not in a data directory of the environment {}; give the database name alone with -h",
                    file.display(),
                    h.display()
                )))
            }
        }
        None => {
            let has_logs = |h: &Path| {
                Layout::resolve(&vfs, h)
                    .and_then(|l| l.log_files(&vfs))
                    .map(|l| !l.is_empty())
                    .unwrap_or(false)
            };
            if !has_logs(&dir) {
                if let Some(up) = dir.parent() {
                    let up = if up.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        up
                    };
                    if has_logs(up) && in_data_dirs(up) {
                        return Ok((up.to_path_buf(), name));
                    }
                }
            }
            Ok((dir, name))
        }
    }
}
