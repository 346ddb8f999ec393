//! The readable form of log records that `db_printlog` prints, in Berkeley
//! DB 5.3's layout, and the walk over a range of the log that produces
//! them. Also the two time formats the tools share: `ctime` text and the
//! `[[CC]YY]MMDDhhmm.SS` stamp `db_recover -t` accepts, both in local time.
//!
//! One entry is a header line
//! `[file][offset]<name>: rec: <type> txnp <txn id, hex> prevlsn [f][o]`,
//! one TAB-indented `field: value` line per field, then a blank line. Byte
//! strings print as Berkeley DB prints a DBT (`len: %3d data: ...`): as text
//! when at least three quarters of the shown bytes are printable, otherwise
//! in hex, cut after `data_len` bytes with `...`.
//!
//! Our records carry no back link per transaction as Berkeley DB's do.
//! `prevlsn` is still exact: a transaction's records are one contiguous
//! batch in the log (see `log`), so the previous record of the same
//! transaction is the record just before, when it has the same transaction
//! id; otherwise (first record of a transaction, records outside one) it is
//! `[0][0]`, as Berkeley DB prints for a transaction's first record.
//!
//! The walk never writes: it resolves the layout, lists log files and reads
//! them. An empty or mistyped home is `Error::NotEnvironment`; an
//! environment whose creation was interrupted has no records.

use crate::error::Result;
use crate::storage::layout::Layout;
use crate::storage::vfs::OsVfs;
use crate::types::{Lsn, TxnId};
use crate::wal::{LogCursor, OnBadRecord, Record};
use std::fmt::{self, Write as _};
use std::path::Path;

/// How many bytes of a byte string are shown by default (Berkeley DB's
/// `ENV_DEF_DATA_LEN`).
pub const DEFAULT_DATA_LEN: usize = 100;

/// The name `db_printlog` shows for a record. Records with a Berkeley DB
/// counterpart carry its name (`__txn_regop` is a commit, `__txn_ckp` a
/// checkpoint, `__fop_*` file operations), so scripts that look for commits
/// and checkpoints keep working; page records have names of their own.
pub fn record_name(rec: &Record) -> &'static str {
    match rec {
        Record::FileCreate { .. } => "__fop_create",
        Record::FileRemove { .. } => "__fop_remove",
        Record::FileRename { .. } => "__fop_rename",
        Record::PageImage { .. } => "__db_pg_image",
        Record::PageDelta { .. } => "__db_pg_delta",
        Record::Commit { .. } => "__txn_regop",
        Record::Checkpoint(_) => "__txn_ckp",
        Record::BulkMarker { .. } => "__db_pg_bulk",
        Record::Epoch { .. } => "__rep_epoch",
    }
}

/// One log record ready to print (`Display` gives the whole entry,
/// blank line included).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where the record is in the log.
    pub lsn: Lsn,
    /// The transaction that wrote it (0 for records outside a transaction,
    /// such as checkpoints).
    pub txn: TxnId,
    /// The previous record of the same transaction, `Lsn::ZERO` if none.
    pub prev: Lsn,
    /// The record itself, decoded.
    pub record: Record,
    /// The environment id of the log files (commit and checkpoint records
    /// show it as `envid`, where Berkeley DB keeps it in the record).
    pub env_id: u64,
    /// Bytes of each byte string shown.
    pub data_len: usize,
}

/// Appends a byte string the way Berkeley DB's `__db_prbytes` does:
/// `len: %3d`, then ` data: ` and the first `max` bytes as text (non-printable
/// bytes as `\hex`) when fewer than a quarter of them are unprintable
/// (a final NUL does not count), otherwise as hex pairs; `...` when cut.
pub fn push_bytes(out: &mut String, bytes: &[u8], max: usize) {
    let _ = write!(out, "len: {:3}", bytes.len());
    if bytes.is_empty() {
        return;
    }
    out.push_str(" data: ");
    let shown = &bytes[..bytes.len().min(max)];
    let len = shown.len();
    let printable = |b: u8| (0x20..0x7f).contains(&b);
    let mut unprintable = 0usize;
    for (i, &b) in shown.iter().enumerate() {
        if !printable(b) && b != b'\t' && b != b'\n' {
            if i == len - 1 && b == 0 {
                break;
            }
            unprintable += 1;
            if unprintable >= len >> 2 {
                break;
            }
        }
    }
    if unprintable < len >> 2 {
        for &b in shown {
            if printable(b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\{:x}", b);
            }
        }
    } else {
        for &b in shown {
            let _ = write!(out, "{:02x}", b);
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{}{}: rec: {} txnp {:x} prevlsn {}",
            self.lsn,
            record_name(&self.record),
            self.record.type_code(),
            self.txn.0,
            self.prev
        );
        let n = self.data_len;
        let field = |t: &mut String, name: &str, v: &dyn fmt::Display| {
            let _ = writeln!(t, "\t{name}: {v}");
        };
        let bytes = |t: &mut String, name: &str, b: &[u8]| {
            let _ = write!(t, "\t{name}: ");
            push_bytes(t, b, n);
            t.push('\n');
        };
        let stamp = |t: &mut String, secs: u64| {
            let _ = writeln!(
                t,
                "\ttimestamp: {} ({}, {})",
                secs,
                ctime(secs),
                recover_stamp(secs)
            );
        };
        match &self.record {
            Record::FileCreate {
                file_id,
                page_size,
                name,
            } => {
                bytes(&mut t, "name", name);
                field(&mut t, "fileid", file_id);
                field(&mut t, "pgsize", page_size);
            }
            Record::FileRemove { file_id, name } => {
                bytes(&mut t, "name", name);
                field(&mut t, "fileid", file_id);
            }
            Record::FileRename { file_id, old, new } => {
                bytes(&mut t, "oldname", old);
                bytes(&mut t, "newname", new);
                field(&mut t, "fileid", file_id);
            }
            Record::PageImage {
                file_id,
                pgno,
                image,
            } => {
                field(&mut t, "fileid", file_id);
                field(&mut t, "pgno", pgno);
                bytes(&mut t, "page", image);
            }
            Record::PageDelta {
                file_id,
                pgno,
                prev_lsn,
                ranges,
            } => {
                field(&mut t, "fileid", file_id);
                field(&mut t, "pgno", pgno);
                field(&mut t, "pagelsn", prev_lsn);
                field(&mut t, "nranges", &ranges.len());
                for (off, b) in ranges {
                    field(&mut t, "offset", off);
                    bytes(&mut t, "data", b);
                }
            }
            Record::Commit { timestamp } => {
                field(&mut t, "opcode", &1);
                stamp(&mut t, *timestamp);
                field(&mut t, "envid", &self.env_id);
            }
            Record::Checkpoint(c) => {
                field(&mut t, "ckp_lsn", &c.redo_lsn);
                field(&mut t, "last_ckp", &c.last_ckp);
                stamp(&mut t, c.timestamp);
                field(&mut t, "envid", &self.env_id);
                field(&mut t, "nfiles", &c.files.len());
                for (id, name) in &c.files {
                    field(&mut t, "fileid", id);
                    bytes(&mut t, "name", name);
                }
            }
            Record::BulkMarker {
                file_id,
                first_new,
                last,
            } => {
                field(&mut t, "fileid", file_id);
                field(&mut t, "first_pgno", first_new);
                field(&mut t, "last_pgno", last);
            }
            Record::Epoch {
                epoch,
                begins,
                continues,
            } => {
                field(&mut t, "epoch", epoch);
                field(&mut t, "begins", begins);
                field(&mut t, "continues", continues);
            }
        }
        t.push('\n');
        f.write_str(&t)
    }
}

/// Which records to walk.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// First record shown (inclusive); the start of the log, or with
    /// `reverse` its end, when `None`.
    pub begin: Option<Lsn>,
    /// Last record shown (inclusive).
    pub end: Option<Lsn>,
    /// Walk from `begin` towards the start of the log.
    pub reverse: bool,
    /// Bytes of each byte string shown (`DEFAULT_DATA_LEN` by default, as
    /// Berkeley DB).
    pub data_len: usize,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            begin: None,
            end: None,
            reverse: false,
            data_len: DEFAULT_DATA_LEN,
        }
    }
}

/// The entries of a range of the log, one at a time.
pub struct Entries {
    cur: LogCursor,
    range: Range,
    env_id: u64,
    done: bool,
    /// Forward: the record before the next one (its LSN and transaction).
    before: Option<(Lsn, TxnId)>,
    /// Reverse: the next record to return, read ahead.
    pending: Option<(Lsn, TxnId, Record)>,
}

impl Entries {
    /// Opens the log of the environment at `home` for reading. A `begin`
    /// past the end of the log gives no entries; a `begin` that is not the
    /// start of a record is `Error::Corrupt`/`InvalidArgument` naming it.
    pub fn open(home: &Path, range: Range) -> Result<Entries> {
        let vfs = OsVfs::shared();
        let layout = Layout::resolve(&vfs, home)?;
        // An environment with nothing committed has no log: no entries.
        layout.env_log(&vfs)?;
        let mut cur = LogCursor::open_with(vfs, &layout.log_dir, OnBadRecord::EndOfLog)?;
        let env_id = cur.env_id().unwrap_or(0);
        let log_end = cur.end()?;
        let mut e = Entries {
            cur,
            range,
            env_id,
            done: false,
            before: None,
            pending: None,
        };
        match (range.reverse, range.begin) {
            (false, Some(b)) if !b.is_zero() && b >= log_end => e.done = true,
            (false, b) => {
                e.cur.seek(b.unwrap_or(Lsn::ZERO))?;
                if let Some((lsn, txn, _)) = e.cur.prev()? {
                    e.before = Some((lsn, txn));
                    e.cur.next()?;
                }
            }
            (true, Some(b)) if b >= log_end => e.done = true,
            (true, Some(b)) => {
                e.cur.seek(b)?;
                e.pending = e.cur.next()?;
                if e.pending.is_some() {
                    e.cur.prev()?;
                }
            }
            (true, None) => {
                e.cur.seek(log_end)?;
                e.pending = e.cur.prev()?;
            }
        }
        Ok(e)
    }

    fn entry(&self, lsn: Lsn, txn: TxnId, before: Option<(Lsn, TxnId)>, record: Record) -> Entry {
        let prev = match before {
            Some((l, t)) if txn.0 != 0 && t == txn => l,
            _ => Lsn::ZERO,
        };
        Entry {
            lsn,
            txn,
            prev,
            record,
            env_id: self.env_id,
            data_len: self.range.data_len,
        }
    }

    /// The next entry in walking order, `None` past the range or at the end
    /// of the log (a torn tail ends the log quietly; damage followed by
    /// intact records is `Error::Corrupt` naming the file and offset).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        if self.range.reverse {
            let Some((lsn, txn, rec)) = self.pending.take() else {
                self.done = true;
                return Ok(None);
            };
            if self.range.end.is_some_and(|e| lsn < e) {
                self.done = true;
                return Ok(None);
            }
            self.pending = self.cur.prev()?;
            let before = self.pending.as_ref().map(|(l, t, _)| (*l, *t));
            return Ok(Some(self.entry(lsn, txn, before, rec)));
        }
        let Some((lsn, txn, rec)) = self.cur.next()? else {
            self.done = true;
            self.cur.check_tail()?;
            return Ok(None);
        };
        if self.range.end.is_some_and(|e| lsn > e) {
            self.done = true;
            return Ok(None);
        }
        let before = self.before.replace((lsn, txn));
        Ok(Some(self.entry(lsn, txn, before, rec)))
    }
}

pub use crate::bdbtext::timefmt::{ctime, recover_stamp};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FileId;
    use crate::wal::Checkpoint;

    fn shown(b: &[u8], max: usize) -> String {
        let mut s = String::new();
        push_bytes(&mut s, b, max);
        s
    }

    #[test]
    fn byte_strings_print_like_berkeley_db() {
        assert_eq!(shown(b"", 100), "len:   0");
        assert_eq!(shown(b"a.db\0", 100), "len:   5 data: a.db\\0");
        assert_eq!(shown(b"k0000000002", 100), "len:  11 data: k0000000002");
        // Under four bytes the quarter rule leaves no room: hex.
        assert_eq!(shown(b"abc", 100), "len:   3 data: 616263");
        assert_eq!(
            shown(&[0, 1, 2, 3, 4, 5, 6, 7], 100),
            "len:   8 data: 0001020304050607"
        );
        assert_eq!(shown(b"__db.80000001", 4), "len:  13 data: __db...");
        assert_eq!(shown(&[0u8; 300], 2), "len: 300 data: 0000...");
    }

    #[test]
    fn entries_print_in_berkeley_db_layout() {
        let e = Entry {
            lsn: Lsn::new(1, 40),
            txn: TxnId(0x8000_0002),
            prev: Lsn::new(1, 20),
            record: Record::FileCreate {
                file_id: FileId(1),
                page_size: 4096,
                name: b"a.db".to_vec(),
            },
            env_id: 7,
            data_len: DEFAULT_DATA_LEN,
        };
        assert_eq!(
            e.to_string(),
            "[1][40]__fop_create: rec: 1 txnp 80000002 prevlsn [1][20]\n\
             \tname: len:   4 data: a.db\n\tfileid: 1\n\tpgsize: 4096\n\n"
        );
        let c = Entry {
            record: Record::Checkpoint(Checkpoint {
                redo_lsn: Lsn::new(1, 40),
                last_ckp: Lsn::ZERO,
                timestamp: 1_795_610_749,
                files: vec![(FileId(1), b"a.db".to_vec())],
            }),
            txn: TxnId(0),
            prev: Lsn::ZERO,
            ..e
        };
        let text = c.to_string();
        assert!(text.starts_with("[1][40]__txn_ckp: rec: 7 txnp 0 prevlsn [0][0]\n\tckp_lsn: [1][40]\n\tlast_ckp: [0][0]\n\ttimestamp: 1795610749 ("), "{text}");
        assert!(
            text.ends_with("\tenvid: 7\n\tnfiles: 1\n\tfileid: 1\n\tname: len:   4 data: a.db\n\n"),
            "{text}"
        );
    }
}
