//! Reading the log: `LogCursor` (recovery, `db_printlog`) and
//! `last_checkpoint` (`db_archive`, checkpoints, backup).
//!
//! A cursor sits *between* records, like a text cursor: `next` returns the
//! record after the position and moves past it, `prev` returns the record
//! before it and moves in front of it. Files are read through a window of
//! up to `READ_BUF` bytes, so walking a log costs one read per window, not
//! one per record. The window starts at `FIRST_READ` bytes and doubles with
//! each read: a short walk (the replication master looks at the newest few
//! records twenty times a second) reads little, a long one soon reads in
//! big steps.
//!
//! The newest file may end in a zero tail (`storage/logfiles.rs`): a record
//! header of zeros there (or zeros up to the file's end, fewer than a
//! header) is the end of the log whatever the policy; in an older file it
//! is `Error::Corrupt`, because an older file is cut to its last record
//! before the next one is created.
//!
//! What counts as the end of the log is decided by `OnBadRecord`: with
//! `EndOfLog` (the default), the first record of the *last* file whose
//! length, checksum or back link fails is the torn tail of a crash and ends
//! the log; the same in any earlier file is `Error::Corrupt` naming the file
//! and offset, because a file is synced before the log moves on to the next.
//! With `Fail` it is `Corrupt` everywhere. A record whose checksum holds but
//! whose payload does not decode is always `Corrupt`.

use super::record::TYPE_CHECKPOINT;
use super::{
    list_log_files, log_path, Checkpoint, FileHeader, Record, FILE_HEADER_SIZE,
    FIRST_RECORD_OFFSET, RECORD_HEADER_SIZE, REC_CRC, REC_LEN, REC_PREV_LEN, REC_TXN, REC_TYPE,
};
use crate::error::{Error, Location, Result};
use crate::storage::codec::{crc32_parts, get_u32, get_u64};
use crate::storage::logfiles::is_torn_creation;
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::{Lsn, TxnId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Size of one read while walking a log file, at most.
pub const READ_BUF: usize = 1 << 20;

/// Size of a file's first read. The master read 1 MiB, mostly of the newest
/// file's zero tail, on each of its twenty scans a second (20 MiB/s copied
/// for nothing; what that cost was within the noise of its profile).
const FIRST_READ: usize = 32 << 10;

/// Zeros where a record should be, in a file that is not the newest: the
/// file was cut to its last record before the next was created, so its
/// records were lost (damage), never a zero tail.
const ZEROS_IN_OLDER_FILE: &str =
    "zeros where a log record should be (a log file before the newest ends at its last record)";

/// What a bad record (length, checksum or back link fails) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadRecord {
    /// In the last log file: the torn tail, i.e. the end of the log. In an
    /// earlier file: `Error::Corrupt`.
    #[default]
    EndOfLog,
    /// `Error::Corrupt` wherever it is (strict reading; only the tests and
    /// the fuzz targets read so).
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    Fail,
}

/// A window of file bytes `[at, at + buf.len())`.
struct Window {
    buf: Vec<u8>,
    at: u64,
    /// Bytes the next read asks for (doubling up to `READ_BUF`).
    next: usize,
}

impl Window {
    fn new() -> Window {
        Window {
            buf: Vec::new(),
            at: 0,
            next: FIRST_READ,
        }
    }

    /// `n` bytes at `off`, or `None` when the file (of length `flen`) does
    /// not hold them. `backward` places a refilled window to end at the
    /// requested bytes, for walking towards the start of the file.
    fn get(
        &mut self,
        f: &dyn VFile,
        flen: u64,
        off: u64,
        n: usize,
        backward: bool,
    ) -> Result<Option<&[u8]>> {
        let end = match off.checked_add(n as u64) {
            Some(e) if e <= flen => e,
            _ => return Ok(None),
        };
        let hit = off >= self.at && end <= self.at + self.buf.len() as u64;
        if !hit {
            let size = self.next.max(n) as u64;
            self.next = (self.next * 2).min(READ_BUF);
            let start = if backward {
                end.saturating_sub(size)
            } else {
                off
            };
            let want = size.min(flen - start) as usize;
            self.buf.resize(want, 0);
            let got = f.read_at(&mut self.buf, start)?;
            self.buf.truncate(got);
            self.at = start;
            if end > start + got as u64 {
                return Ok(None);
            }
        }
        let s = (off - self.at) as usize;
        Ok(Some(&self.buf[s..s + n]))
    }
}

enum Frame {
    /// `off` is the end of the file.
    End,
    /// The bytes at `off` are zeros: a record header of zeros, or zeros up
    /// to the end of the file. The end of the records of a preallocated
    /// newest file.
    ZeroTail,
    /// Length, checksum or back link fails.
    Bad(String),
    Good {
        len: u32,
        prev_len: u32,
        ty: u8,
        txn: TxnId,
    },
}

/// Checks the framing of the record at `off`. `expect_prev` is the length
/// of the record before it, when known.
fn frame(
    f: &dyn VFile,
    w: &mut Window,
    flen: u64,
    off: u32,
    expect_prev: Option<u32>,
    backward: bool,
) -> Result<Frame> {
    let off64 = u64::from(off);
    if off64 == flen {
        return Ok(Frame::End);
    }
    let room = (flen.saturating_sub(off64)).min(RECORD_HEADER_SIZE as u64) as usize;
    if let Some(h) = w.get(f, flen, off64, room, backward)? {
        if h.iter().all(|&b| b == 0) {
            return Ok(Frame::ZeroTail);
        }
    }
    let h = match w.get(f, flen, off64, RECORD_HEADER_SIZE, backward)? {
        Some(h) => h,
        None => {
            return Ok(Frame::Bad(
                "record header runs past the end of the file".into(),
            ))
        }
    };
    let len = get_u32(h, REC_LEN);
    let prev_len = get_u32(h, REC_PREV_LEN);
    let crc = get_u32(h, REC_CRC);
    let ty = h[REC_TYPE];
    let txn = TxnId(get_u64(h, REC_TXN));
    if (len as usize) < RECORD_HEADER_SIZE {
        return Ok(Frame::Bad(format!("impossible record length {}", len)));
    }
    if off64 + u64::from(len) > flen || off.checked_add(len).is_none() {
        return Ok(Frame::Bad(format!(
            "record length {} runs past the end of the file",
            len
        )));
    }
    if let Some(p) = expect_prev {
        if p != prev_len {
            return Ok(Frame::Bad(format!(
                "record says the previous record has {} bytes, it has {}",
                prev_len, p
            )));
        }
    }
    let rec = match w.get(f, flen, off64, len as usize, backward)? {
        Some(r) => r,
        None => return Ok(Frame::Bad("record runs past the end of the file".into())),
    };
    if crc32_parts(&[&rec[..REC_CRC], &rec[REC_TYPE..]]) != crc {
        return Ok(Frame::Bad("record checksum mismatch".into()));
    }
    Ok(Frame::Good {
        len,
        prev_len,
        ty,
        txn,
    })
}

/// Decodes the record at `off` whose framing `frame` accepted.
fn decode_at(
    f: &dyn VFile,
    w: &mut Window,
    flen: u64,
    path: &Path,
    off: u32,
    len: u32,
    ty: u8,
) -> Result<Record> {
    let bytes = w
        .get(f, flen, u64::from(off), len as usize, false)?
        .ok_or_else(|| {
            Error::corrupt(
                path,
                Location::Offset(u64::from(off)),
                "log file shrank while being read",
            )
        })?;
    Record::decode(ty, &bytes[RECORD_HEADER_SIZE..])
        .map_err(|e| Error::corrupt(path, Location::Offset(u64::from(off)), e.0))
}

/// The length of the record that ends at `end` in `f` (0 if `end` is the
/// first record offset), found by walking the file's records from the
/// start. `end` must be a record boundary and everything before it valid.
pub(crate) fn last_record_len_before(f: &dyn VFile, path: &Path, end: u32) -> Result<u32> {
    let flen = f.len()?;
    let mut w = Window::new();
    let (mut off, mut last) = (FIRST_RECORD_OFFSET, 0u32);
    while off < end {
        match frame(f, &mut w, flen, off, Some(last), false)? {
            Frame::Good { len, .. } => {
                last = len;
                off += len;
            }
            Frame::End | Frame::ZeroTail => break,
            Frame::Bad(why) => {
                return Err(Error::corrupt(path, Location::Offset(u64::from(off)), why))
            }
        }
    }
    if off != end {
        return Err(Error::invalid(format!(
            "{}: log end offset {} is not a record boundary",
            path.display(),
            end
        )));
    }
    Ok(last)
}

/// Where the records of the log file at `path` end: the first offset at
/// which no valid record follows the ones before it (its zero tail, a
/// half-written or torn record, or its end). The size of a newest file is
/// not where its records end, so a reader of a live log (a backup's mark,
/// a replication master, `db_hotbackup -u`) asks this instead. Meant for
/// the newest file: damage in an older one also just ends its records
/// here. A file shorter than a header ends at its length.
pub fn records_end(vfs: &SharedVfs, path: &Path) -> Result<u32> {
    let f = vfs.open(path, OpenMode::Read)?;
    let flen = f.len()?;
    if flen <= u64::from(FIRST_RECORD_OFFSET) {
        return Ok(flen as u32);
    }
    let mut w = Window::new();
    let (mut off, mut last) = (FIRST_RECORD_OFFSET, 0u32);
    while let Frame::Good { len, .. } = frame(&*f, &mut w, flen, off, Some(last), false)? {
        last = len;
        off += len;
    }
    Ok(off)
}

/// One open log file.
struct FileReader {
    no: u32,
    path: PathBuf,
    file: Box<dyn VFile>,
    len: u64,
    win: Window,
}

impl FileReader {
    fn open(vfs: &SharedVfs, dir: &Path, no: u32) -> Result<FileReader> {
        let path = log_path(dir, no);
        let file = match vfs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Err(Error::LogGap { path }),
            Err(e) => return Err(e),
        };
        let len = file.len()?;
        Ok(FileReader {
            no,
            path,
            file,
            len,
            win: Window::new(),
        })
    }

    fn header(&mut self) -> Result<FileHeader> {
        let mut b = [0u8; FILE_HEADER_SIZE];
        let n = self.file.read_at(&mut b, 0)?;
        FileHeader::decode(&self.path, &b[..n], self.no)
    }

    fn frame(&mut self, off: u32, expect_prev: Option<u32>, backward: bool) -> Result<Frame> {
        frame(
            &*self.file,
            &mut self.win,
            self.len,
            off,
            expect_prev,
            backward,
        )
    }

    fn decode(&mut self, off: u32, len: u32, ty: u8) -> Result<Record> {
        decode_at(
            &*self.file,
            &mut self.win,
            self.len,
            &self.path,
            off,
            len,
            ty,
        )
    }

    fn corrupt(&self, off: u32, what: impl Into<String>) -> Error {
        Error::corrupt(&self.path, Location::Offset(u64::from(off)), what)
    }

    /// (end of valid records, length of the last one), walking the whole
    /// file. A zero tail ends the file only if it is the newest (`newest`),
    /// a bad record only if `torn_ok`.
    fn scan_end(&mut self, newest: bool, torn_ok: bool) -> Result<(u32, u32)> {
        let (mut off, mut last) = (FIRST_RECORD_OFFSET, 0u32);
        loop {
            match self.frame(off, Some(last), false)? {
                Frame::Good { len, .. } => {
                    last = len;
                    off += len;
                }
                Frame::End => return Ok((off, last)),
                Frame::ZeroTail if newest => return Ok((off, last)),
                Frame::ZeroTail => return Err(self.corrupt(off, ZEROS_IN_OLDER_FILE)),
                Frame::Bad(_) if torn_ok => return Ok((off, last)),
                Frame::Bad(why) => return Err(self.corrupt(off, why)),
            }
        }
    }
}

/// A record whose framing and checksum hold, its payload not decoded
/// (`LogCursor::next_raw`).
pub struct RawRecord<'a> {
    pub lsn: Lsn,
    pub txn: TxnId,
    /// The record type code.
    pub ty: u8,
    /// The payload, borrowed from the cursor's read window.
    pub payload: &'a [u8],
}

/// Reads the log of one directory forwards and backwards across files.
pub struct LogCursor {
    vfs: SharedVfs,
    dir: PathBuf,
    files: Vec<u32>,
    env_id: Option<u64>,
    policy: OnBadRecord,
    /// Position: index into `files` and offset in that file.
    idx: usize,
    off: u32,
    /// Length of the record that ends at `off`, when known.
    back_len: Option<u32>,
    reader: Option<FileReader>,
    ends: HashMap<u32, (u32, u32)>,
}

impl LogCursor {
    /// Opens the log in `dir` with the default `OnBadRecord::EndOfLog`.
    pub fn open(vfs: SharedVfs, dir: &Path) -> Result<LogCursor> {
        LogCursor::open_with(vfs, dir, OnBadRecord::EndOfLog)
    }

    /// Lists the log files and checks their headers: numbering without gaps
    /// (`Error::LogGap`), magic and version (`Error::Version`), checksum,
    /// file number and environment id (`Error::Corrupt`). A last file left
    /// torn by a crash during its creation is ignored. Positioned at the
    /// start of the first file.
    pub fn open_with(vfs: SharedVfs, dir: &Path, policy: OnBadRecord) -> Result<LogCursor> {
        LogCursor::open_from(vfs, dir, policy, 0)
    }

    /// Like `open_with`, over the files numbered `first` and up only:
    /// normal recovery needs nothing older than its checkpoint's redo
    /// file, so a gap (or a foreign file) before it does not matter.
    pub fn open_from(
        vfs: SharedVfs,
        dir: &Path,
        policy: OnBadRecord,
        first: u32,
    ) -> Result<LogCursor> {
        let mut files = list_log_files(&vfs, dir)?;
        files.retain(|&n| n >= first);
        for w in files.windows(2) {
            if w[1] != w[0] + 1 {
                return Err(Error::LogGap {
                    path: log_path(dir, w[0] + 1),
                });
            }
        }
        let mut ids: Vec<(u32, u64)> = Vec::with_capacity(files.len());
        for (i, &n) in files.iter().enumerate() {
            let mut r = FileReader::open(&vfs, dir, n)?;
            if i + 1 == files.len() && is_torn_creation(&*r.file)? {
                continue;
            }
            ids.push((n, r.header()?.env_id));
        }
        files.truncate(ids.len());
        let env_id = majority_env_id(&ids);
        if let Some(id) = env_id {
            if let Some(&(n, _)) = ids.iter().find(|(_, e)| *e != id) {
                return Err(Error::corrupt(
                    log_path(dir, n),
                    Location::Whole,
                    "log file of another environment",
                ));
            }
        }
        Ok(LogCursor {
            vfs,
            dir: dir.to_path_buf(),
            files,
            env_id,
            policy,
            idx: 0,
            off: FIRST_RECORD_OFFSET,
            back_len: Some(0),
            reader: None,
            ends: HashMap::new(),
        })
    }

    /// The present log file numbers, ascending and without gaps.
    pub fn files(&self) -> &[u32] {
        &self.files
    }

    pub fn env_id(&self) -> Option<u64> {
        self.env_id
    }

    /// The current position (`Lsn::ZERO` when there are no log files).
    pub fn position(&self) -> Lsn {
        match self.files.get(self.idx) {
            Some(&n) => Lsn::new(n, self.off),
            None => Lsn::ZERO,
        }
    }

    fn is_last(&self, idx: usize) -> bool {
        idx + 1 == self.files.len()
    }

    fn torn_ok(&self, idx: usize) -> bool {
        self.is_last(idx) && self.policy == OnBadRecord::EndOfLog
    }

    /// The reader of `files[self.idx]` (caller checked the index).
    fn reader(&mut self) -> Result<&mut FileReader> {
        let no = self.files[self.idx];
        let reuse = matches!(&self.reader, Some(r) if r.no == no);
        if !reuse {
            self.reader = Some(FileReader::open(&self.vfs, &self.dir, no)?);
        }
        match self.reader.as_mut() {
            Some(r) => Ok(r),
            None => Err(Error::invalid("log cursor has no open file")),
        }
    }

    /// (valid end, last record length) of `files[self.idx]`, cached.
    fn current_end(&mut self) -> Result<(u32, u32)> {
        let no = self.files[self.idx];
        if let Some(&e) = self.ends.get(&no) {
            return Ok(e);
        }
        let newest = self.is_last(self.idx);
        let torn_ok = self.torn_ok(self.idx);
        let e = self.reader()?.scan_end(newest, torn_ok)?;
        self.ends.insert(no, e);
        Ok(e)
    }

    /// Positions at a record boundary: `Lsn::ZERO` is the start of the first
    /// file, `(n, 0)` the start of file `n`. The record there is validated
    /// (or the position must be the end of its file's valid records). A file
    /// before the first present one is `Error::LogGap`.
    pub fn seek(&mut self, at: Lsn) -> Result<()> {
        let (first, last) = match (self.files.first(), self.files.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ if at.is_zero() => return Ok(()),
            _ => {
                return Err(Error::invalid(format!(
                    "{}: no log files, cannot position at {}",
                    self.dir.display(),
                    at
                )))
            }
        };
        let n = if at.is_zero() { first } else { at.file };
        if n < first {
            return Err(Error::LogGap {
                path: log_path(&self.dir, n),
            });
        }
        if n > last {
            return Err(Error::invalid(format!(
                "{}: log position {} is past the end of the log",
                self.dir.display(),
                at
            )));
        }
        let off = if at.offset == 0 {
            FIRST_RECORD_OFFSET
        } else {
            at.offset
        };
        if off < FIRST_RECORD_OFFSET {
            return Err(Error::invalid(format!(
                "log position {} is inside a file header",
                at
            )));
        }
        self.idx = (n - first) as usize;
        self.off = off;
        self.back_len = if off == FIRST_RECORD_OFFSET {
            Some(0)
        } else {
            None
        };
        if off == FIRST_RECORD_OFFSET {
            return Ok(());
        }
        let torn_ok = self.torn_ok(self.idx);
        let newest = self.is_last(self.idx);
        match self.reader()?.frame(off, None, false)? {
            Frame::Good { .. } | Frame::End => Ok(()),
            Frame::ZeroTail => {
                if newest && self.current_end()?.0 == off {
                    return Ok(());
                }
                let r = self.reader()?;
                Err(r.corrupt(off, "no log record starts here (zeros)"))
            }
            Frame::Bad(why) => {
                if torn_ok && self.current_end()?.0 == off {
                    return Ok(());
                }
                let r = self.reader()?;
                Err(r.corrupt(off, format!("no log record starts here ({})", why)))
            }
        }
    }

    /// The record after the position, crossing into later files; `None` at
    /// the end of the log.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(Lsn, TxnId, Record)>> {
        let Some(raw) = self.next_raw()? else {
            return Ok(None);
        };
        let (lsn, txn) = (raw.lsn, raw.txn);
        match Record::decode(raw.ty, raw.payload) {
            Ok(r) => Ok(Some((lsn, txn, r))),
            Err(e) => Err(self.corrupt_at(lsn, e.0)),
        }
    }

    /// `Error::Corrupt` naming the log file and offset of `lsn`.
    pub fn corrupt_at(&self, lsn: Lsn, what: impl Into<String>) -> Error {
        Error::corrupt(
            log_path(&self.dir, lsn.file),
            Location::Offset(u64::from(lsn.offset)),
            what,
        )
    }

    /// Like `next`, but the payload is not decoded: its type code and bytes
    /// (framing and checksum checked) are borrowed from the read window, so
    /// a reader that needs only some records, or only parts of them, copies
    /// nothing (redo). Decode errors are then the caller's to report, with
    /// `corrupt_at`.
    pub fn next_raw(&mut self) -> Result<Option<RawRecord<'_>>> {
        loop {
            if self.idx >= self.files.len() {
                return Ok(None);
            }
            let off = self.off;
            let expect = if off == FIRST_RECORD_OFFSET {
                Some(0)
            } else {
                self.back_len
            };
            let torn_ok = self.torn_ok(self.idx);
            let newest = self.is_last(self.idx);
            let r = self.reader()?;
            let no = r.no;
            match r.frame(off, expect, false)? {
                Frame::Good { len, ty, txn, .. } => {
                    self.off = off + len;
                    self.back_len = Some(len);
                    let lsn = Lsn::new(no, off);
                    let Some(r) = self.reader.as_mut() else {
                        return Err(Error::invalid("log cursor has no open file"));
                    };
                    let bytes = r
                        .win
                        .get(&*r.file, r.len, u64::from(off), len as usize, false)?
                        .ok_or_else(|| {
                            Error::corrupt(
                                &r.path,
                                Location::Offset(u64::from(off)),
                                "log file shrank while being read",
                            )
                        })?;
                    return Ok(Some(RawRecord {
                        lsn,
                        txn,
                        ty,
                        payload: &bytes[RECORD_HEADER_SIZE..],
                    }));
                }
                Frame::End => {
                    self.note_end(no, off);
                    if self.is_last(self.idx) {
                        return Ok(None);
                    }
                    self.idx += 1;
                    self.off = FIRST_RECORD_OFFSET;
                    self.back_len = Some(0);
                }
                Frame::ZeroTail if newest => {
                    self.note_end(no, off);
                    return Ok(None);
                }
                Frame::ZeroTail => return Err(r.corrupt(off, ZEROS_IN_OLDER_FILE)),
                Frame::Bad(_) if torn_ok => {
                    self.note_end(no, off);
                    return Ok(None);
                }
                Frame::Bad(why) => return Err(r.corrupt(off, why)),
            }
        }
    }

    /// Remembers where file `no` ends, found by walking forwards to `off`,
    /// so `end` (and `prev` from there) need not walk the file again: a
    /// recovery that read the whole log would otherwise scan its last file
    /// twice.
    fn note_end(&mut self, no: u32, off: u32) {
        if let Some(last) = self.back_len {
            self.ends.insert(no, (off, last));
        }
    }

    /// The record before the position, crossing into earlier files; `None`
    /// at the start of the first file.
    pub fn prev(&mut self) -> Result<Option<(Lsn, TxnId, Record)>> {
        loop {
            if self.idx >= self.files.len() {
                return Ok(None);
            }
            if self.off <= FIRST_RECORD_OFFSET {
                if self.idx == 0 {
                    return Ok(None);
                }
                self.idx -= 1;
                let (end, last) = self.current_end()?;
                self.off = end;
                self.back_len = Some(last);
                continue;
            }
            let off = self.off;
            let back = match self.back_len {
                Some(l) => l,
                None => {
                    let f = self.reader()?.frame(off, None, true)?;
                    match f {
                        Frame::Good { prev_len, .. } => prev_len,
                        Frame::End | Frame::ZeroTail | Frame::Bad(_) => {
                            let (end, last) = self.current_end()?;
                            if end != off {
                                let r = self.reader()?;
                                return Err(r.corrupt(off, "not a log record boundary"));
                            }
                            last
                        }
                    }
                }
            };
            let r = self.reader()?;
            if back == 0 || back > off - FIRST_RECORD_OFFSET {
                return Err(r.corrupt(off, format!("impossible previous record length {}", back)));
            }
            let start = off - back;
            match r.frame(start, None, true)? {
                Frame::Good {
                    len,
                    prev_len,
                    ty,
                    txn,
                } if len == back => {
                    let rec = r.decode(start, len, ty)?;
                    let lsn = Lsn::new(r.no, start);
                    self.off = start;
                    self.back_len = Some(prev_len);
                    return Ok(Some((lsn, txn, rec)));
                }
                Frame::Good { len, .. } => {
                    return Err(r.corrupt(
                        start,
                        format!("record has {} bytes, the next record says {}", len, back),
                    ))
                }
                Frame::End | Frame::ZeroTail => return Err(r.corrupt(start, "record missing")),
                Frame::Bad(why) => return Err(r.corrupt(start, why)),
            }
        }
    }

    /// After the log ended early in its last file: whether the bytes after
    /// the end are damage inside the log rather than a torn tail. They are
    /// when the bad record's length leads to a record whose framing holds and
    /// whose back link names a record of that length: a crash tears only the
    /// end of the last write, so intact records after a bad one mean the bad
    /// one was damaged later. `Error::Corrupt` (file and offset) then.
    /// Damage to a length field itself still reads as a torn tail.
    pub fn check_tail(&mut self) -> Result<()> {
        let end = self.end()?;
        if end.is_zero() {
            return Ok(());
        }
        let mut r = FileReader::open(&self.vfs, &self.dir, end.file)?;
        let Some(h) = r.win.get(
            &*r.file,
            r.len,
            u64::from(end.offset),
            RECORD_HEADER_SIZE,
            false,
        )?
        else {
            return Ok(());
        };
        let len = get_u32(h, REC_LEN);
        if (len as usize) < RECORD_HEADER_SIZE {
            return Ok(());
        }
        let Some(next) = end.offset.checked_add(len) else {
            return Ok(());
        };
        if u64::from(next) >= r.len {
            return Ok(());
        }
        match r.frame(next, Some(len), false)? {
            Frame::Good { .. } => Err(r.corrupt(
                end.offset,
                "damaged log record (the records after it are intact)",
            )),
            _ => Ok(()),
        }
    }

    /// The end of the valid log: where the next record would go
    /// (`Lsn::ZERO` when there are no log files). Walks the last file.
    pub fn end(&mut self) -> Result<Lsn> {
        let last = match self.files.last() {
            Some(&l) => l,
            None => return Ok(Lsn::ZERO),
        };
        if let Some(&(e, _)) = self.ends.get(&last) {
            return Ok(Lsn::new(last, e));
        }
        let mut r = FileReader::open(&self.vfs, &self.dir, last)?;
        let e = r.scan_end(true, self.policy == OnBadRecord::EndOfLog)?;
        self.ends.insert(last, e);
        Ok(Lsn::new(last, e.0))
    }
}

/// The most common environment id (ties go to the later file), so the odd
/// one out is the file that gets named.
fn majority_env_id(ids: &[(u32, u64)]) -> Option<u64> {
    let mut counts: HashMap<u64, (usize, u32)> = HashMap::new();
    for &(n, id) in ids {
        let c = counts.entry(id).or_insert((0, n));
        c.0 += 1;
        c.1 = c.1.max(n);
    }
    counts
        .into_iter()
        .max_by_key(|&(_, (count, latest))| (count, latest))
        .map(|(id, _)| id)
}

/// The newest checkpoint record and its LSN, without walking every log
/// file: the last file's header names the last checkpoint written before
/// the file was created, then only the last file is scanned for newer ones.
pub fn last_checkpoint(vfs: &SharedVfs, dir: &Path) -> Result<Option<(Lsn, Checkpoint)>> {
    last_checkpoint_in(vfs, dir, &list_log_files(vfs, dir)?)
}

/// [`last_checkpoint`] given the log files of `dir` (ascending), for a
/// caller that has listed the directory already.
pub fn last_checkpoint_in(
    vfs: &SharedVfs,
    dir: &Path,
    files: &[u32],
) -> Result<Option<(Lsn, Checkpoint)>> {
    let mut last = match files.last() {
        Some(&l) => l,
        None => return Ok(None),
    };
    let mut r = FileReader::open(vfs, dir, last)?;
    if is_torn_creation(&*r.file)? {
        if files.len() < 2 {
            return Ok(None);
        }
        last -= 1;
        r = FileReader::open(vfs, dir, last)?;
    }
    let hdr = r.header()?;
    let mut found = None;
    let (mut off, mut prev) = (FIRST_RECORD_OFFSET, 0u32);
    // The last file: a bad record is its torn tail.
    while let Frame::Good { len, ty, .. } = r.frame(off, Some(prev), false)? {
        if ty == TYPE_CHECKPOINT {
            if let Record::Checkpoint(c) = r.decode(off, len, ty)? {
                found = Some((Lsn::new(last, off), c));
            }
        }
        prev = len;
        off += len;
    }
    if found.is_some() {
        return Ok(found);
    }
    let at = hdr.last_ckp;
    if at.is_zero() {
        return Ok(None);
    }
    if at.file >= last || at.offset < FIRST_RECORD_OFFSET {
        return Err(Error::corrupt(
            &r.path,
            Location::Offset(crate::storage::logfiles::HDR_LAST_CKP as u64),
            format!("header names an impossible last checkpoint {}", at),
        ));
    }
    let mut c = FileReader::open(vfs, dir, at.file)?;
    if c.header()?.env_id != hdr.env_id {
        return Err(Error::corrupt(
            &c.path,
            Location::Whole,
            "log file of another environment",
        ));
    }
    if let Frame::Good { len, ty, .. } = c.frame(at.offset, None, false)? {
        if let Record::Checkpoint(ck) = c.decode(at.offset, len, ty)? {
            return Ok(Some((at, ck)));
        }
    }
    Err(c.corrupt(
        at.offset,
        format!(
            "no checkpoint record here, though the header of {} names one",
            r.path.display()
        ),
    ))
}
