//! Loading key/data pairs into one database of an environment, all in one
//! transaction: what `db_load` does once it has parsed its input.
//!
//! Invariants:
//! * all pairs of one load commit together or not at all: a load that
//!   fails or is killed leaves the database as it was (a database it was
//!   creating does not appear);
//! * an environment is created only in a directory that holds nothing but
//!   a `DB_CONFIG` (and leftovers of our own machinery, `__db.*`), and in
//!   the data and log directories that `DB_CONFIG` names; any other file
//!   means the operator pointed us at the wrong place, and we refuse
//!   rather than turn it into an environment. When a load that created
//!   the environment fails, the files it created are removed again, so a
//!   bad input leaves the directory as it found it;
//! * nothing here prints: keys skipped under `no_overwrite` go to a
//!   callback, and errors name the input and its line.
//!
//! A load into a new or empty database runs in bulk mode and builds the
//! tree bottom-up (`btree::build`) while the keys come in ascending order,
//! as every B-tree dump has them: its pages go straight to the data file
//! and only the meta page and a bulk marker are logged, so it holds a few
//! pages in memory and writes almost no log. The first key that is not
//! above the one before (a duplicate, or unsorted input) ends the build,
//! and the rest goes in by ordinary puts in the same transaction, with
//! the result of putting every pair (the build makes the pages those puts
//! would). A load into a database that holds keys is ordinary puts
//! throughout, so it leaves `db_hotbackup -u` able to follow it. Pairs
//! that go in by puts are gathered in bounded chunks and put in key order
//! (`sorted_load.rs`), with the result of putting them in input order.

use super::sorted_load::Chunk;
use crate::bdbtext::dump::{DumpHeader, DumpReader, PairSource, TextReader};
use crate::btree::build::Builder;
use crate::btree::MAX_ITEM;
use crate::engine::env::{Env, EnvOptions};
use crate::engine::txn::Txn;
use crate::error::{Error, Result};
use crate::progress::{self, Phase, Progress};
use crate::storage::dbfile::Db;
use crate::storage::layout::{check_new_db_name, is_env_internal, Layout};
use crate::storage::vfs::{OsVfs, SharedVfs};
use crate::wal::parse_log_name;
use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The callback for a key skipped under `no_overwrite`: (input line, key).
pub type OnExisting<'a> = &'a mut dyn FnMut(usize, &[u8]);

/// What a load is asked to do besides storing pairs.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Page size for the database if the load creates it (the dump's
    /// `db_pagesize`, or `-c db_pagesize=`); `None`: the environment's
    /// default. An existing database keeps its own.
    pub page_size: Option<u32>,
    /// Skip keys that already exist instead of overwriting them.
    pub no_overwrite: bool,
    /// How messages call the input ("stdin", a file name).
    pub input_name: String,
    /// The line the source has reached ([`OneSection::lines`],
    /// [`TextSource::lines`]), so errors and skipped keys name the line of
    /// the key.
    pub lines: Option<LineCount>,
    /// Called for each key skipped under `no_overwrite`, with the input
    /// line of the key (0 when unknown).
    pub on_existing: Option<OnExisting<'a>>,
    /// Told when the input is all read and the commit begins
    /// (`Phase::Commit`), and when the load is done. The input's own phase
    /// (`Phase::Load`) is the caller's: it reads the input, so it starts
    /// the phase and counts the bytes (`progress::ProgressRead`).
    pub progress: Option<&'a dyn Progress>,
}

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Pairs written (new keys and overwritten ones).
    pub loaded: u64,
    /// Keys skipped because they existed (`no_overwrite`).
    pub existed: u64,
    /// Whether this load created the environment.
    pub created_env: bool,
    /// Whether this load created the database.
    pub created_db: bool,
}

/// Loads every pair of `source` into the database `db_name` of the
/// environment at `home` in one transaction, creating the environment (see
/// the module comment for where) and the database when missing, then closes
/// the environment with a checkpoint.
pub fn load(
    home: &Path,
    db_name: &str,
    source: &mut dyn PairSource,
    mut opts: LoadOptions<'_>,
) -> Result<LoadReport> {
    check_new_db_name(db_name)?;
    if let Some(ps) = opts.page_size {
        if !crate::storage::page::valid_page_size(ps as usize) {
            return Err(Error::invalid(format!(
                "page size {ps} is not a power of two from 512 to 65536"
            )));
        }
    }
    let vfs = OsVfs::shared();
    let layout = Layout::resolve(&vfs, home)?;
    let fresh = layout.log_files(&vfs).map(|l| l.is_empty()).unwrap_or(true);
    let before = if fresh {
        Some(check_creatable(&vfs, &layout)?)
    } else {
        None
    };
    let result = load_into(home, db_name, source, &mut opts, fresh);
    match (&result, before) {
        (Err(_), Some(before)) => remove_created(&vfs, &before, db_name),
        (Err(_), None) => {}
        (Ok(_), _) => progress::finish(opts.progress),
    }
    result
}

fn load_into(
    home: &Path,
    db_name: &str,
    source: &mut dyn PairSource,
    opts: &mut LoadOptions<'_>,
    fresh: bool,
) -> Result<LoadReport> {
    let env = Env::open(home, EnvOptions::create())?;
    let mut report = LoadReport {
        created_env: fresh,
        ..Default::default()
    };
    let outcome = fill(&env, db_name, source, opts, &mut report);
    // Close (a checkpoint) whatever happened: a failed load aborted its
    // transaction and left nothing to recover.
    let closed = env.close();
    outcome?;
    closed?;
    Ok(report)
}

/// Loads every pair of `source` into the database `db_name` of an open
/// environment in one transaction (what [`load`] does once the
/// environment is open); creates the database when missing.
pub fn load_into_env(
    env: &Env,
    db_name: &str,
    source: &mut dyn PairSource,
    mut opts: LoadOptions<'_>,
) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    fill(env, db_name, source, &mut opts, &mut report)?;
    progress::finish(opts.progress);
    Ok(report)
}

fn fill(
    env: &Env,
    db_name: &str,
    source: &mut dyn PairSource,
    opts: &mut LoadOptions<'_>,
    report: &mut LoadReport,
) -> Result<()> {
    let existing = match env.open_db(db_name) {
        Ok(db) => Some(db),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let bulk = match &existing {
        None => true,
        Some(db) => env.read(db, |s| Ok(Builder::start(s)?.is_some()))?,
    };
    let mut txn = if bulk {
        env.begin_bulk()?
    } else {
        env.begin()?
    };
    let db = match existing {
        Some(db) => db,
        None => {
            report.created_db = true;
            txn.create_db(db_name, opts.page_size.map(|p| p as usize))?
        }
    };
    let mut build = txn.bulk_builder(&db)?;
    let line_of_key = |opts: &LoadOptions<'_>| -> usize {
        // The counter stands after the data line: the key is the line
        // before it.
        opts.lines
            .as_ref()
            .map(|l| l.get().saturating_sub(1))
            .unwrap_or(0)
    };
    let (mut key, mut val) = (Vec::new(), Vec::new());
    // The pairs that do not go to the builder, put in key order.
    let mut chunk = Chunk::default();
    while source.next_pair_into(&mut key, &mut val)? {
        for (what, item) in [("key", &key), ("value", &val)] {
            if item.len() > MAX_ITEM {
                let line = line_of_key(opts) + usize::from(what == "value");
                return Err(Error::invalid(format!(
                    "{}: line {}: {} of {} bytes is larger than the limit of {} bytes",
                    opts.input_name,
                    line,
                    what,
                    item.len(),
                    MAX_ITEM
                )));
            }
        }
        if let Some(b) = build.as_mut() {
            if b.accepts(&key) {
                txn.build_push(b, &key, &val)?;
                report.loaded += 1;
                continue;
            }
        }
        if let Some(b) = build.take() {
            txn.build_finish(b)?;
        }
        chunk.push(&key, &val, line_of_key(opts));
        if chunk.is_full() {
            put_chunk(&mut chunk, &mut txn, &db, opts, report)?;
        }
    }
    progress::start(opts.progress, Phase::Commit, None);
    if let Some(b) = build.take() {
        txn.build_finish(b)?;
    }
    put_chunk(&mut chunk, &mut txn, &db, opts, report)?;
    txn.commit()?;
    Ok(())
}

/// Puts the pairs gathered in `chunk` in key order (sorted_load.rs).
fn put_chunk(
    chunk: &mut Chunk,
    txn: &mut Txn<'_>,
    db: &Db,
    opts: &mut LoadOptions<'_>,
    report: &mut LoadReport,
) -> Result<()> {
    let mut skipped = |line: usize, key: &[u8]| {
        if let Some(cb) = opts.on_existing.as_mut() {
            cb(line, key);
        }
    };
    let done = chunk.put_all(txn, db, opts.no_overwrite, &mut skipped)?;
    report.loaded += done.loaded;
    report.existed += done.existed;
    Ok(())
}

/// Checks that a directory without log files may become an environment,
/// and returns what its directories hold now (for [`remove_created`]).
fn check_creatable(vfs: &SharedVfs, layout: &Layout) -> Result<Vec<(PathBuf, HashSet<OsString>)>> {
    let mut named: Vec<&Path> = layout.data_dirs.iter().map(PathBuf::as_path).collect();
    named.push(&layout.log_dir);
    named.push(&layout.create_dir);
    let mut dirs: Vec<PathBuf> = vec![layout.home.clone()];
    for d in &named {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        if !vfs.is_dir(&dir) {
            // Env::open names the missing directory.
            continue;
        }
        let entries = vfs.list(&dir)?;
        for name in &entries {
            let text = name.to_string_lossy();
            let path = dir.join(name);
            let ours = is_env_internal(&text) && !vfs.is_dir(&path);
            let configured_dir = vfs.is_dir(&path) && named.iter().any(|d| *d == path);
            if !(ours || configured_dir) {
                return Err(Error::invalid(format!(
                    "{}: not an environment (no log files), and {} is in the way: \
                     db_load creates an environment only in an empty directory \
                     (or one holding only DB_CONFIG)",
                    layout.home.display(),
                    path.display()
                )));
            }
        }
        out.push((dir, entries.into_iter().collect()));
    }
    Ok(out)
}

/// Removes what a failed load created in a directory that was not an
/// environment before: log files, region files and the database file.
/// Best effort: the load's own error is what the caller reports.
fn remove_created(vfs: &SharedVfs, before: &[(PathBuf, HashSet<OsString>)], db_name: &str) {
    for (dir, had) in before {
        let Ok(now) = vfs.list(dir) else { continue };
        for name in now {
            if had.contains(&name) {
                continue;
            }
            let text = name.to_string_lossy();
            if is_env_internal(&text) || parse_log_name(&text).is_some() || text == db_name {
                let _ = vfs.remove(&dir.join(&name));
            }
        }
        let _ = vfs.sync_dir(dir);
    }
}

/// Checks a dump header for settings a B-tree of ours cannot honour.
/// Settings that only tune Berkeley DB (`bt_minkey`, `chksum`: our pages
/// always carry a checksum, `db_lorder`, `keys`) are accepted and ignored.
pub fn check_header(h: &DumpHeader) -> Result<()> {
    for (key, what) in [
        ("duplicates", "duplicate keys"),
        ("dupsort", "sorted duplicate keys"),
        ("recnum", "record numbers"),
        ("renumber", "record renumbering"),
    ] {
        if h.flag(key) {
            return Err(Error::invalid(format!(
                "{key}={}: {what} are not supported (a database maps each key to one value); \
                 -c {key}=0 loads it as a plain B-tree",
                h.get(key).unwrap_or("1")
            )));
        }
    }
    for key in ["re_len", "re_pad", "extentsize", "h_ffactor", "h_nelem"] {
        if h.get(key).is_some() {
            return Err(Error::invalid(format!(
                "{key}: applies to a hash, recno or queue database, not to a btree"
            )));
        }
    }
    Ok(())
}

/// The input line a source has reached: after a pair, the line of its
/// data item. Shared between the source, which sets it, and [`load`],
/// which names it in messages.
#[derive(Clone, Default, Debug)]
pub struct LineCount(Rc<Cell<usize>>);

impl LineCount {
    pub fn get(&self) -> usize {
        self.0.get()
    }

    fn set(&self, n: usize) {
        self.0.set(n)
    }
}

/// `db_load -T` text as pairs, keeping count of the line: each item is
/// one line, so the data of pair n is line 2n.
pub struct TextSource<R: BufRead> {
    reader: TextReader<R>,
    pairs: usize,
    lines: LineCount,
}

impl<R: BufRead> TextSource<R> {
    /// The pairs of the `-T` text `input`; `name` names it in errors.
    pub fn new(input: R, name: &str) -> TextSource<R> {
        TextSource {
            reader: TextReader::new(input, name),
            pairs: 0,
            lines: LineCount::default(),
        }
    }

    /// A shared view of the line of the last pair read, for the caller's
    /// messages.
    pub fn lines(&self) -> LineCount {
        self.lines.clone()
    }
}

impl<R: BufRead> PairSource for TextSource<R> {
    fn next_pair(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        Ok(self.next_pair_into(&mut k, &mut v)?.then_some((k, v)))
    }

    fn next_pair_into(&mut self, key: &mut Vec<u8>, val: &mut Vec<u8>) -> Result<bool> {
        let more = self.reader.next_pair_into(key, val)?;
        if more {
            self.pairs += 1;
            self.lines.set(2 * self.pairs);
        }
        Ok(more)
    }
}

/// The pairs of a dump that must hold exactly one section: the end of the
/// first section ends the pairs, and a second header is an error (we keep
/// one database per file; Berkeley DB's subdatabases go one at a time).
pub struct OneSection<R: BufRead> {
    reader: DumpReader<R>,
    name: String,
    done: bool,
    lines: LineCount,
}

impl<R: BufRead> OneSection<R> {
    /// Reads the header of the first section of `input` (`name` names it
    /// in errors); an input without a header is an error.
    pub fn open(input: R, name: &str) -> Result<(DumpHeader, OneSection<R>)> {
        let mut reader = DumpReader::new(input, name);
        let Some(header) = reader.next_header()? else {
            return Err(Error::invalid(format!(
                "{name}: unexpected end of input: no dump header"
            )));
        };
        Ok((
            header,
            OneSection {
                reader,
                name: name.to_string(),
                done: false,
                lines: LineCount::default(),
            },
        ))
    }
}

impl<R: BufRead> OneSection<R> {
    /// A shared view of the line of the last item read, for the caller's
    /// messages.
    pub fn lines(&self) -> LineCount {
        self.lines.clone()
    }
}

impl<R: BufRead> PairSource for OneSection<R> {
    fn next_pair(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        Ok(self.next_pair_into(&mut k, &mut v)?.then_some((k, v)))
    }

    fn next_pair_into(&mut self, key: &mut Vec<u8>, val: &mut Vec<u8>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        if self.reader.next_pair_into(key, val)? {
            self.lines.set(self.reader.line_no());
            return Ok(true);
        }
        self.done = true;
        let at = self.reader.line_no() + 1;
        if let Some(h) = self.reader.next_header()? {
            let which = match &h.database {
                Some(n) => format!(" (database \"{}\")", String::from_utf8_lossy(n)),
                None => String::new(),
            };
            return Err(Error::invalid(format!(
                "{}: line {}: a second database section{}: a file holds one database here; \
                 load each Berkeley DB subdatabase into a file of its own (db_dump -s NAME)",
                self.name, at, which
            )));
        }
        Ok(false)
    }
}
