//! The typed error of libcore. Each variant says what the caller does next;
//! `Display` is one sentence that names the file and the problem, because
//! the tools print it as their one-line error.

use crate::types::{Lsn, PageNo};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where inside a file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In this page of a database file (its number, counted from 0).
    Page(PageNo),
    /// At this byte offset from the start of the file (log files and
    /// other files that are not made of pages).
    Offset(u64),
    /// In the file as a whole (its length, its header, or its place among
    /// other files), not at one spot in it.
    Whole,
}

/// Every failure libcore reports. A variant says what went wrong and
/// where; [`Error::kind`] sorts them into the few classes a caller acts
/// on, and `Display` gives the one-line message the tools print.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed on `path`.
    Io {
        /// The file or directory the call was made on.
        path: PathBuf,
        /// The call that failed, as a short verb ("open", "read", "fsync").
        op: &'static str,
        /// The operating system's error; match its `kind()` or errno.
        source: io::Error,
    },
    /// Bytes on disk are not what the format allows (bad checksum that did
    /// not heal, impossible length, broken link).
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in the file the damage was found.
        at: Location,
        /// What is wrong there, for a person to read.
        what: String,
    },
    /// Redo needs a log record that is not there: a page is older than the
    /// change that should apply to it, and no later full image repaired it.
    LogSequence {
        /// The database file whose page is too old.
        path: PathBuf,
        /// The page that the missing record changed.
        page: PageNo,
        /// Where in the log the missing record should have been.
        missing: Lsn,
    },
    /// A log file between two present ones is missing.
    LogGap {
        /// The log file that should be there (the first one missing).
        path: PathBuf,
    },
    /// The file's format version (or magic) is one we do not read.
    Version {
        /// The file in the unknown format.
        path: PathBuf,
        /// Which version or magic was found and which ones are read.
        what: String,
    },
    /// The directory exists but holds no environment (and creating one was
    /// not asked for).
    NotEnvironment {
        /// The directory that was opened as an environment home.
        path: PathBuf,
    },
    /// A bad line in DB_CONFIG.
    Config {
        /// The `DB_CONFIG` file.
        path: PathBuf,
        /// The line's number, counted from 1.
        line: usize,
        /// The line as written.
        text: String,
        /// What is wrong with it.
        what: String,
    },
    /// Another process owns the environment.
    Locked {
        /// The environment's home directory.
        path: PathBuf,
        /// The owner's process id as its lock file records it (0 when the
        /// file does not hold a readable one).
        pid: u32,
    },
    /// A caller asked for something impossible (bad flag combination, key
    /// too large, unknown database).
    InvalidArgument(String),
    /// A named thing does not exist (database, key for an operation that
    /// requires it).
    NotFound(String),
    /// An earlier fsync failed: nothing more is written until recovery runs.
    Failed {
        /// The environment's home directory, or the log file whose write
        /// or fsync failed.
        path: PathBuf,
        /// The failure that stopped the environment.
        why: String,
    },
    /// A read-only view saw a page newer than its snapshot: the owner
    /// changed the environment under it. Callers refresh and retry.
    SnapshotMoved,
    /// A call that can never succeed from where it was made (it would wait
    /// for the calling thread itself, or the environment is already open
    /// in this process). Nothing was changed.
    Misuse(String),
    /// A replica store (a directory or an object store; `replica::store`)
    /// refused or failed an operation on `key` ("" for the store itself).
    /// `location` names the store without credentials. `fault` says
    /// whether trying again later can help.
    Store {
        /// The store's address without credentials (a directory or an
        /// `s3://bucket/prefix`).
        location: String,
        /// The object's key inside the store, "" for the store itself.
        key: String,
        /// The class of failure: whether a retry can help.
        fault: StoreFault,
        /// What the store said, for a person to read.
        what: String,
    },
    /// A database or file that is already there (`create_db` of a name in
    /// use, a file in the way that is not ours).
    Exists(String),
    /// Something ran out that only a new environment gives back
    /// (transaction or file ids).
    Exhausted(String),
    /// A defect in libcore itself: an internal rule was found broken.
    /// Nothing was committed by the call that reports it; please report
    /// it with the message.
    Internal(String),
}

/// What kind of failure a replica store reported, so a caller knows
/// whether to back off and retry (`Transient`) or to stop and say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The network, a timeout, a server error (HTTP 5xx, 429), a full or
    /// briefly failing disk: the same call may succeed later.
    Transient,
    /// Credentials refused or permission denied.
    Denied,
    /// The store itself does not exist (no such bucket or directory).
    Missing,
    /// An object is there but is not what was written: short, torn, a
    /// checksum that does not match, a foreign format.
    Corrupt,
    /// A caller mistake: a bad key, a bad store address or configuration.
    Invalid,
    /// Any other permanent failure.
    Failed,
    /// Fencing: the store belongs to another master (a newer epoch, or a
    /// live lease of this one). The master stops at once, never retries.
    Fenced,
}

/// The result of every fallible libcore call.
pub type Result<T> = std::result::Result<T, Error>;

/// What happened, in the few classes a caller acts on (`Error::kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system refused or failed a call (disk full, no
    /// permission, an I/O error). Fix the cause; the data is as it was.
    Io,
    /// Bytes on disk are not what the format allows, or a log file or
    /// record is missing: restore from a backup or run catastrophic
    /// recovery (`db_recover -c`).
    Corrupt,
    /// A file of a format version this program does not read.
    Version,
    /// Something another process holds (the environment's owner lock, a
    /// replica store's lease): wait and try again, or stop the other.
    Busy,
    /// A caller's mistake that can never succeed as asked: a bad argument
    /// or `DB_CONFIG` line, a handle of another environment, a call that
    /// would wait for its own thread, a write on a read-only view. Nothing
    /// was changed.
    Misuse,
    /// The named database, key, file or environment does not exist.
    NotFound,
    /// An earlier write or fsync failed: the environment refuses every
    /// further call until it is reopened (which runs recovery).
    Failed,
    /// A read-only view saw the owner change a page under it: reopen and
    /// retry.
    Retry,
    /// A replica store failed; `Error::store_fault` says how.
    Store,
    /// The database or file is already there.
    Exists,
    /// Transaction or file ids are used up: dump and reload into a new
    /// environment.
    Exhausted,
    /// A defect in libcore (please report it).
    Internal,
}

impl Error {
    /// An [`Error::Io`]: `op` (a short verb such as "open") failed on
    /// `path` with `source`.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// An [`Error::Corrupt`]: `path` is damaged at `at`; `what` says how.
    pub fn corrupt(path: impl Into<PathBuf>, at: Location, what: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            at,
            what: what.into(),
        }
    }

    /// An [`Error::InvalidArgument`]: the caller asked for something
    /// impossible; `msg` is the whole one-line message.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    /// An [`Error::Misuse`]: a call that can never succeed from where it
    /// was made; `msg` is the whole one-line message.
    pub fn misuse(msg: impl Into<String>) -> Error {
        Error::Misuse(msg.into())
    }

    /// An internal rule found broken (`Error::Internal`).
    pub(crate) fn internal(msg: impl Into<String>) -> Error {
        Error::Internal(msg.into())
    }

    /// An [`Error::Store`]: the store at `location` failed on `key` ("" for
    /// the store itself) with a `fault` of this class; `what` says how.
    pub fn store(
        location: impl Into<String>,
        key: impl Into<String>,
        fault: StoreFault,
        what: impl Into<String>,
    ) -> Error {
        Error::Store {
            location: location.into(),
            key: key.into(),
            fault,
            what: what.into(),
        }
    }

    /// What kind of error this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } | Error::LogSequence { .. } | Error::LogGap { .. } => {
                ErrorKind::Corrupt
            }
            Error::NotEnvironment { .. } => ErrorKind::NotFound,
            Error::Version { .. } => ErrorKind::Version,
            Error::Locked { .. } => ErrorKind::Busy,
            Error::InvalidArgument(_) | Error::Misuse(_) | Error::Config { .. } => {
                ErrorKind::Misuse
            }
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Exists(_) => ErrorKind::Exists,
            Error::Exhausted(_) => ErrorKind::Exhausted,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Failed { .. } => ErrorKind::Failed,
            Error::SnapshotMoved => ErrorKind::Retry,
            Error::Store {
                fault: StoreFault::Fenced,
                ..
            } => ErrorKind::Busy,
            Error::Store { .. } => ErrorKind::Store,
        }
    }

    /// The kind of a replica store failure (`None` for other errors).
    pub fn store_fault(&self) -> Option<StoreFault> {
        match self {
            Error::Store { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// True when retrying the same store operation later may succeed.
    pub fn is_transient(&self) -> bool {
        self.store_fault() == Some(StoreFault::Transient)
    }

    /// True when the thing asked for is not there: an ENOENT from the OS,
    /// or an [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            Error::NotFound(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, op, source } => {
                write!(f, "{}: {}: {}", path.display(), op, strip_os_suffix(source))
            }
            Error::Corrupt { path, at, what } => match at {
                Location::Page(p) => write!(f, "{}: page {}: {}", path.display(), p, what),
                Location::Offset(o) => write!(f, "{}: offset {}: {}", path.display(), o, what),
                Location::Whole => write!(f, "{}: {}", path.display(), what),
            },
            Error::LogSequence {
                path,
                page,
                missing,
            } => write!(
                f,
                "{}: page {}: log sequence error: the log record at {} that changed this page is missing",
                path.display(),
                page,
                missing
            ),
            Error::LogGap { path } => write!(
                f,
                "{}: log file missing: the log has a gap here (was it removed before it was copied?)",
                path.display()
            ),
            Error::Version { path, what } => write!(f, "{}: {}", path.display(), what),
            Error::NotEnvironment { path } => write!(
                f,
                "{}: not an environment (no log files or databases found)",
                path.display()
            ),
            Error::Config {
                path,
                line,
                text,
                what,
            } => write!(f, "{}: line {}: {}: {}", path.display(), line, what, text),
            Error::Locked { path, pid } => {
                write!(f, "{}: environment in use by pid {}", path.display(), pid)
            }
            Error::InvalidArgument(m) => write!(f, "{}", m),
            Error::NotFound(m) => write!(f, "{}", m),
            Error::Failed { path, why } => write!(
                f,
                "{}: environment failed ({}); run recovery",
                path.display(),
                why
            ),
            Error::SnapshotMoved => write!(f, "the environment changed during a read; retry"),
            Error::Misuse(m) => write!(f, "{}", m),
            Error::Exists(m) | Error::Exhausted(m) => write!(f, "{}", m),
            Error::Internal(m) => write!(f, "internal error (please report it): {}", m),
            Error::Store {
                location,
                key,
                what,
                ..
            } => {
                if key.is_empty() {
                    write!(f, "{}: {}", location, what)
                } else {
                    write!(f, "{}/{}: {}", location.trim_end_matches('/'), key, what)
                }
            }
        }
    }
}

/// `io::Error`'s Display appends " (os error 2)"; Berkeley DB prints the
/// bare strerror text, and so do we.
pub(crate) fn strip_os_suffix(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// No `source()`: `Display` already ends with the OS error's text, and an
// error chain printer (anyhow's `{:#}`, the tools' `cli::message`) would
// print it twice ("open: No such file or directory: No such file or
// directory"). Callers match the `source` field itself.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_drop_os_error_codes() {
        let e = Error::io(
            "/x/a.db",
            "open",
            io::Error::from_raw_os_error(2), // ENOENT
        );
        assert_eq!(e.to_string(), "/x/a.db: open: No such file or directory");
        assert!(e.is_not_found());
        let e = Error::corrupt("a.db", Location::Page(PageNo(3)), "checksum mismatch");
        assert_eq!(e.to_string(), "a.db: page 3: checksum mismatch");
    }
}
