//! Where an environment's files are: the home, the data directories and the
//! log directory named by DB_CONFIG, and which files in them are databases
//! or logs. Every tool resolves paths through here so that `db_archive`,
//! `db_hotbackup` and recovery agree on what belongs to the environment.
//!
//! What is an environment (`Layout::holds`, the man pages' "deliberate
//! difference 3"): a directory holding a `DB_CONFIG` or any file of ours (a
//! log file, even one a crash left empty while it was being created, a
//! database, a `__db.*` file). One without a log is an environment in which
//! nothing was ever committed: its creation was interrupted before its
//! first log file held a header. Tools answer for it as for an empty
//! environment and change nothing; only an owner open with `create`
//! completes it. A directory with nothing of ours is not an environment.

use crate::error::{Error, Result};
use crate::storage::config::Config;
use crate::storage::logfiles::{list_log_files, live_log_files};
pub use crate::storage::logfiles::{log_name, parse_log_name};
use crate::storage::page::{Meta, META_PROBE};
use crate::storage::vfs::{OpenMode, SharedVfs};
use std::path::{Path, PathBuf};

/// The resolved directories of one environment.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The environment's home directory, as given.
    pub home: PathBuf,
    /// The home's `DB_CONFIG`, as read (the defaults when there is none).
    pub config: Config,
    /// Data directories as configured (relative ones joined to home), in
    /// DB_CONFIG order; the home itself when none is configured.
    pub data_dirs: Vec<PathBuf>,
    /// Where new databases are created.
    pub create_dir: PathBuf,
    /// Where the log files are (`set_lg_dir`, joined to home when
    /// relative; the home itself when none is configured).
    pub log_dir: PathBuf,
}

/// What a directory holds, as far as environments go (`Layout::holds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// A log: its file numbers as `Layout::log_files` gives them.
    Log(Vec<u32>),
    /// Files of ours (`DB_CONFIG`, `__db.*`, a log file a crash left
    /// without its header) but no log and no database: an environment
    /// whose creation was interrupted, in which nothing was committed.
    NothingCommitted,
    /// Database files without a log (copied without their log files).
    DatabasesWithoutLog,
}

/// One database file found in a data directory.
#[derive(Debug, Clone)]
pub struct DbFileInfo {
    /// Name relative to its data directory (what log records carry).
    pub name: String,
    pub path: PathBuf,
    pub meta_page_size: u32,
}

impl Layout {
    /// Checks that `home` is a directory and reads its DB_CONFIG.
    pub fn resolve(vfs: &SharedVfs, home: &Path) -> Result<Layout> {
        if !vfs.exists(home) {
            return Err(Error::io(
                home,
                "open",
                std::io::Error::from_raw_os_error(2), // ENOENT
            ));
        }
        if !vfs.is_dir(home) {
            return Err(Error::io(
                home,
                "open",
                std::io::Error::from_raw_os_error(20), // ENOTDIR
            ));
        }
        let config = Config::read_with(vfs.as_ref(), home)?;
        Ok(Layout::with_config(home, config))
    }

    /// The layout `config` gives the home `home`, without reading
    /// anything: relative directories are joined to `home`, and the
    /// directory new databases are created in is always among
    /// `data_dirs`.
    pub fn with_config(home: &Path, config: Config) -> Layout {
        let join = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                home.join(p)
            }
        };
        let mut data_dirs: Vec<PathBuf> = config.data_dirs.iter().map(|d| join(d)).collect();
        let create_dir = match &config.create_dir {
            Some(d) => join(d),
            None => data_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| home.to_path_buf()),
        };
        if data_dirs.is_empty() {
            data_dirs.push(home.to_path_buf());
        }
        if !data_dirs.contains(&create_dir) {
            data_dirs.push(create_dir.clone());
        }
        let log_dir = match &config.lg_dir {
            Some(d) => join(d),
            None => home.to_path_buf(),
        };
        Layout {
            home: home.to_path_buf(),
            config,
            data_dirs,
            create_dir,
            log_dir,
        }
    }

    /// Numbers of the log files that make up the log, ascending: every
    /// one present but a newest one whose creation was interrupted, which
    /// holds nothing (`logfiles::live_log_files`).
    pub fn log_files(&self, vfs: &SharedVfs) -> Result<Vec<u32>> {
        self.check_log_dir(vfs)?;
        live_log_files(vfs, &self.log_dir)
    }

    /// Numbers of every file named like a log file, ascending, an
    /// unfinished newest one included (what recovery cuts away).
    pub fn all_log_files(&self, vfs: &SharedVfs) -> Result<Vec<u32>> {
        self.check_log_dir(vfs)?;
        list_log_files(vfs, &self.log_dir)
    }

    fn check_log_dir(&self, vfs: &SharedVfs) -> Result<()> {
        if !vfs.is_dir(&self.log_dir) {
            return Err(Error::io(
                &self.log_dir,
                "read directory",
                std::io::Error::from_raw_os_error(2),
            ));
        }
        Ok(())
    }

    /// What the directories hold (see the module documentation);
    /// `Error::NotEnvironment` when nothing of ours.
    pub fn holds(&self, vfs: &SharedVfs) -> Result<Holds> {
        if vfs.is_dir(&self.log_dir) {
            let logs = self.log_files(vfs)?;
            if !logs.is_empty() {
                return Ok(Holds::Log(logs));
            }
        }
        if !self.db_files(vfs)?.is_empty() {
            return Ok(Holds::DatabasesWithoutLog);
        }
        let ours = |dir: &Path| -> Result<bool> {
            if !vfs.is_dir(dir) {
                return Ok(false);
            }
            Ok(vfs.list(dir)?.iter().any(|n| {
                n.to_str()
                    .is_some_and(|n| is_env_internal(n) || parse_log_name(n).is_some())
            }))
        };
        if ours(&self.home)? || ours(&self.log_dir)? {
            return Ok(Holds::NothingCommitted);
        }
        Err(Error::NotEnvironment {
            path: self.home.clone(),
        })
    }

    /// The log files of an environment (`Some`), or `None` for one in
    /// which nothing was ever committed; `Error::NotEnvironment` for a
    /// directory with nothing of ours or database files without a log.
    pub fn env_log(&self, vfs: &SharedVfs) -> Result<Option<Vec<u32>>> {
        match self.holds(vfs)? {
            Holds::Log(files) => Ok(Some(files)),
            Holds::NothingCommitted => Ok(None),
            Holds::DatabasesWithoutLog => Err(Error::NotEnvironment {
                path: self.home.clone(),
            }),
        }
    }

    /// The path of log file number `n` (`log.0000000001` for 1), whether
    /// or not it exists.
    pub fn log_path(&self, n: u32) -> PathBuf {
        self.log_dir.join(log_name(n))
    }

    /// Every database file of the environment: each regular file in a data
    /// directory whose first bytes are our meta page. Sorted by name.
    pub fn db_files(&self, vfs: &SharedVfs) -> Result<Vec<DbFileInfo>> {
        let mut out: Vec<DbFileInfo> = Vec::new();
        for dir in &self.data_dirs {
            if !vfs.is_dir(dir) {
                continue;
            }
            for name in vfs.list(dir)? {
                let Some(name) = name.to_str() else { continue };
                if is_env_internal(name) || parse_log_name(name).is_some() {
                    continue;
                }
                let path = dir.join(name);
                if vfs.is_dir(&path) || out.iter().any(|f| f.name == name) {
                    continue;
                }
                if let Some(ps) = probe_db(vfs, &path) {
                    out.push(DbFileInfo {
                        name: name.to_string(),
                        path,
                        meta_page_size: ps,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Where the database `name` lives: the first data directory holding it,
    /// or the create directory for a new one.
    pub fn db_path(&self, vfs: &SharedVfs, name: &str) -> PathBuf {
        for d in &self.data_dirs {
            let p = d.join(name);
            if vfs.exists(&p) {
                return p;
            }
        }
        self.create_dir.join(name)
    }

    /// Where a bare file name (as a tool's operand names it) lives in the
    /// environment: a log file name in the log directory, any other name
    /// in the data directories ([`Layout::db_path`]).
    pub fn file_path(&self, vfs: &SharedVfs, name: &str) -> PathBuf {
        if parse_log_name(name).is_some() {
            self.log_dir.join(name)
        } else {
            self.db_path(vfs, name)
        }
    }
}

/// Files that belong to the environment's machinery, never databases.
pub fn is_env_internal(name: &str) -> bool {
    name.starts_with("__db") || name == "DB_CONFIG" || name.starts_with(".tmp.")
}

/// Reads the first bytes of `path`; `Some(page_size)` if it is one of our
/// database files.
pub fn probe_db(vfs: &SharedVfs, path: &Path) -> Option<u32> {
    let f = vfs.open(path, OpenMode::Read).ok()?;
    let mut head = [0u8; META_PROBE];
    if f.read_at(&mut head, 0).ok()? < META_PROBE {
        return None;
    }
    Meta::probe(&head).ok()
}

/// Checks a database name given by a user or found in a log record: a plain
/// relative file name inside the data directory, never `..`, an absolute
/// path or a directory part, so no record can make recovery touch a file
/// outside the environment.
pub fn check_db_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
        || is_env_internal(name)
        || parse_log_name(name).is_some();
    if bad {
        return Err(Error::invalid(format!(
            "{name:?}: not a valid database file name (a plain name inside the data directory)"
        )));
    }
    Ok(())
}

/// Checks the name of a database about to be created: [`check_db_name`],
/// and no control character (a newline, a carriage return, a tab...).
/// `db_archive -s` lists database names one per line for pipes
/// (`xargs -d '\n'`) and the backup manifest keeps one per line, so a
/// newline would split a name in two there and a carriage return would be
/// dropped by line readers. Names already in a log are only held to
/// [`check_db_name`], so recovery still reads what older versions wrote.
pub fn check_new_db_name(name: &str) -> Result<()> {
    check_db_name(name)?;
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{name:?}: not a valid database file name (control characters such as a newline are not allowed: names are listed one per line)"
        )));
    }
    Ok(())
}
