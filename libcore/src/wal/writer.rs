//! The appender of an open environment.
//!
//! Two locks: `app` serialises appenders (it is held by an `Appender` for as
//! long as the caller needs a stable end of log); `sync` guards the
//! durability state and is only ever held briefly. Lock order: `app` before
//! `sync`, and `flush` never takes `app`, so a committer waiting for its
//! fsync never blocks the next transaction from appending.
//!
//! Group commit: `flush` callers elect one leader at a time. The leader
//! notes how far the log has been written to the OS, fsyncs the current file
//! without holding a lock, then publishes the new durable LSN and wakes the
//! others; a waiter whose LSN that sync covered returns without its own
//! fsync. Older files are always synced when the log rotates away from them,
//! so only the current file ever holds unsynced bytes.
//!
//! Preallocation: a new file is created at `preallocated_len(lg_max)` (its
//! header and then zeros written to that length, both fsynced with the
//! directory before any record goes in), and records are written into its
//! zeros, so a commit's fdatasync writes data only, never a new file size
//! nor a block allocation. The zeros are written, not made by setting the
//! length: a file extended by `set_len` is sparse, every record written
//! into it allocated blocks, and each commit's fdatasync wrote the inode
//! too (seen in the writer's fdatasync stacks: `ext4_write_inode`);
//! written zeros gave one-thread sync commits about 15% more a second.
//! Rotation first cuts the current file to its last record and fsyncs the
//! cut, then creates the next file: only the newest file ever has a zero
//! tail. Reopening cuts whatever follows the end of the log (a torn
//! record, bytes of records a power loss kept after a lost one) and fsyncs
//! that before extending the file with zeros again, so no stale byte can
//! ever follow a new record.

use super::{
    list_log_files, log_path, preallocated_len, FileHeader, Record, FILE_HEADER_SIZE,
    FIRST_RECORD_OFFSET, LOG_FILE_MODE, MAX_RECORD_LEN, MIN_LG_MAX, RECORD_HEADER_SIZE, REC_CRC,
    REC_LEN, REC_PREV_LEN, REC_TXN, REC_TYPE,
};
use crate::error::{Error, Location, Result};
use crate::storage::codec::{crc32_parts, put_u32, put_u64};
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::{Lsn, TxnId};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct AppState {
    file: Arc<dyn VFile>,
    file_no: u32,
    /// Where the next record goes in `file`.
    offset: u32,
    /// Length of the last record in `file` (0 right after the header).
    prev_len: u32,
}

struct SyncState {
    /// The current file, for the group-commit leader.
    file: Arc<dyn VFile>,
    /// End of what has been handed to the OS.
    written: Lsn,
    /// End of what is known durable.
    durable: Lsn,
    /// A leader is inside fsync.
    syncing: bool,
    /// Set by the first failed write or fsync; never cleared.
    failed: Option<(PathBuf, String)>,
}

/// The appender of an open environment's log. `Send + Sync`; share it in an
/// `Arc`.
pub struct Log {
    vfs: SharedVfs,
    dir: PathBuf,
    env_id: u64,
    lg_max: u32,
    last_ckp: AtomicU64,
    app: Mutex<AppState>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

/// Proof that the log is durable before an LSN: everything logged before
/// [`Durable::upto`] survives a crash. Only [`Log::flush`] makes one, so a
/// function that takes a `&Durable` (the buffer pool's write-back) cannot be
/// called without having made the log durable first: the write-ahead rule,
/// kept by the types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    upto: Lsn,
}

impl Durable {
    /// Every record that starts before this LSN is durable (a durable
    /// point is always a record boundary).
    pub fn upto(&self) -> Lsn {
        self.upto
    }

    /// Whether a page stamped with `lsn` (the LSN of the last record that
    /// changed it) may be written to its data file.
    pub fn covers(&self, lsn: Lsn) -> bool {
        lsn < self.upto
    }
}

/// Exclusive append access; records appended through it are contiguous.
pub struct Appender<'a> {
    log: &'a Log,
    st: MutexGuard<'a, AppState>,
}

/// A lock that a panicking thread left poisoned still guards consistent
/// data here (every state change is a plain store after the I/O succeeded),
/// so the log keeps working instead of panicking in turn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_lg_max(lg_max: u32) -> Result<()> {
    if lg_max < MIN_LG_MAX {
        return Err(Error::invalid(format!(
            "log file size {} is too small (at least {} bytes)",
            lg_max, MIN_LG_MAX
        )));
    }
    Ok(())
}

impl Log {
    /// Starts the log of a new environment: writes `log.0000000001` with its
    /// header and fsyncs the file and `dir`.
    pub fn create(vfs: SharedVfs, dir: &Path, env_id: u64, lg_max: u32) -> Result<Log> {
        check_lg_max(lg_max)?;
        let existing = list_log_files(&vfs, dir)?;
        if let Some(&n) = existing.first() {
            return Err(Error::invalid(format!(
                "{}: log files already exist; not creating a new log",
                log_path(dir, n).display()
            )));
        }
        let file = create_file(&vfs, dir, 1, env_id, lg_max, Lsn::ZERO)?;
        Ok(Log::assemble(
            vfs,
            dir,
            env_id,
            lg_max,
            file,
            1,
            FIRST_RECORD_OFFSET,
            0,
            Lsn::ZERO,
        ))
    }

    /// Continues appending at `end` (the end of the valid log, as recovery
    /// found it). Bytes beyond `end` in its file (a zero tail, a torn tail,
    /// records a power loss kept after a lost one) are cut and the cut is
    /// fsynced, then the file is extended with zeros to its preallocated
    /// size again; a later log file that only holds a torn header (a crash
    /// while it was being created) is removed. A later file with a valid
    /// header is refused: `end` would not be the end of the log.
    pub fn open_at(
        vfs: SharedVfs,
        dir: &Path,
        env_id: u64,
        lg_max: u32,
        end: Lsn,
        last_ckp: Lsn,
    ) -> Result<Log> {
        check_lg_max(lg_max)?;
        if end.file == 0 || end.offset < FIRST_RECORD_OFFSET {
            return Err(Error::invalid(format!(
                "log end {} is not a position inside a log file",
                end
            )));
        }
        let path = log_path(dir, end.file);
        let file: Arc<dyn VFile> = Arc::from(vfs.open(&path, OpenMode::ReadWrite)?);
        let mut hdr = [0u8; FILE_HEADER_SIZE];
        let n = file.read_at(&mut hdr, 0)?;
        let h = FileHeader::decode(&path, &hdr[..n], end.file)?;
        if h.env_id != env_id {
            return Err(Error::corrupt(
                &path,
                Location::Whole,
                "log file of another environment",
            ));
        }
        let len = file.len()?;
        if u64::from(end.offset) > len {
            return Err(Error::invalid(format!(
                "{}: log end {} is past the end of the file ({} bytes)",
                path.display(),
                end,
                len
            )));
        }
        let prev_len = super::cursor::last_record_len_before(&*file, &path, end.offset)?;
        // Later files: only a torn creation may be there.
        let mut removed = false;
        for n in list_log_files(&vfs, dir)?
            .into_iter()
            .filter(|&n| n > end.file)
        {
            let p = log_path(dir, n);
            let f = vfs.open(&p, OpenMode::Read)?;
            if super::is_torn_creation(&*f)? {
                drop(f);
                vfs.remove(&p)?;
                removed = true;
            } else {
                return Err(Error::invalid(format!(
                    "{}: log file follows the end of the log at {}",
                    p.display(),
                    end
                )));
            }
        }
        if removed {
            vfs.sync_dir(dir)?;
        }
        if len > u64::from(end.offset) {
            file.set_len(u64::from(end.offset))?;
        }
        // What we read may still be only in the OS cache (a process crash
        // keeps it); make it durable before calling it durable. This also
        // makes the cut durable before the extension below: were only the
        // extension kept, stale bytes could follow the next records.
        file.sync()?;
        extend_with_zeros(&*file, u64::from(end.offset), lg_max)?;
        Ok(Log::assemble(
            vfs, dir, env_id, lg_max, file, end.file, end.offset, prev_len, last_ckp,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        vfs: SharedVfs,
        dir: &Path,
        env_id: u64,
        lg_max: u32,
        file: Arc<dyn VFile>,
        file_no: u32,
        offset: u32,
        prev_len: u32,
        last_ckp: Lsn,
    ) -> Log {
        let end = Lsn::new(file_no, offset);
        Log {
            vfs,
            dir: dir.to_path_buf(),
            env_id,
            lg_max,
            last_ckp: AtomicU64::new(last_ckp.to_u64()),
            app: Mutex::new(AppState {
                file: file.clone(),
                file_no,
                offset,
                prev_len,
            }),
            sync: Mutex::new(SyncState {
                file,
                written: end,
                durable: end,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
        }
    }

    /// Exclusive append access.
    pub fn lock(&self) -> Appender<'_> {
        Appender {
            log: self,
            st: lock(&self.app),
        }
    }

    /// Where the next record goes.
    pub fn end(&self) -> Lsn {
        lock(&self.sync).written
    }

    /// Everything before this LSN is durable.
    pub fn durable(&self) -> Lsn {
        lock(&self.sync).durable
    }

    /// The last checkpoint record, as written into headers of files created
    /// from now on. Appending a checkpoint record updates it by itself.
    pub fn last_ckp(&self) -> Lsn {
        Lsn::from_u64(self.last_ckp.load(Ordering::SeqCst))
    }

    pub fn set_last_ckp(&self, lsn: Lsn) {
        self.last_ckp.store(lsn.to_u64(), Ordering::SeqCst);
    }

    /// True once a write or fsync has failed.
    #[cfg(test)]
    pub fn is_failed(&self) -> bool {
        lock(&self.sync).failed.is_some()
    }

    fn failed_error(&self, f: &(PathBuf, String)) -> Error {
        Error::Failed {
            path: f.0.clone(),
            why: f.1.clone(),
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &lock(&self.sync).failed {
            Some(f) => Err(self.failed_error(f)),
            None => Ok(()),
        }
    }

    /// Records the first failure and wakes every waiter, then hands the
    /// original error back to the caller that hit it.
    fn fail(&self, e: Error) -> Error {
        let mut s = lock(&self.sync);
        if s.failed.is_none() {
            let path = match &e {
                Error::Io { path, .. } => path.clone(),
                _ => self.dir.clone(),
            };
            s.failed = Some((path, e.to_string()));
        }
        drop(s);
        self.synced.notify_all();
        e
    }

    /// Returns once everything up to and including the record at `upto` (or
    /// everything written, if `upto` is at or past the end) is durable,
    /// with the proof of how far it is. Concurrent callers share fsyncs.
    pub fn flush(&self, upto: Lsn) -> Result<Durable> {
        let mut s = lock(&self.sync);
        loop {
            if let Some(f) = &s.failed {
                return Err(self.failed_error(f));
            }
            if s.durable > upto || s.durable >= s.written {
                return Ok(Durable { upto: s.durable });
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.syncing = true;
            let file = s.file.clone();
            let target = s.written;
            drop(s);
            let r = file.sync();
            s = lock(&self.sync);
            s.syncing = false;
            match r {
                Ok(()) => {
                    if target > s.durable {
                        s.durable = target;
                    }
                    self.synced.notify_all();
                }
                Err(e) => {
                    drop(s);
                    return Err(self.fail(e));
                }
            }
        }
    }

    /// Waits, without starting an fsync itself, until the log is durable
    /// past `upto` through someone else's `flush`, for at most `limit`;
    /// returns whether it is. For readers waiting on a committer that is
    /// about to flush anyway: a reader that ran the fsync itself made the
    /// committer's durability wait on the reader being scheduled again
    /// after it (with busy readers on few cores, the longest part).
    pub fn await_durable(&self, upto: Lsn, limit: std::time::Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + limit;
        let mut s = lock(&self.sync);
        loop {
            if let Some(f) = &s.failed {
                return Err(self.failed_error(f));
            }
            if s.durable > upto || s.durable >= s.written {
                return Ok(true);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            s = self
                .synced
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Switches to a fresh log file now (the first owner of a copied
    /// environment does this, so its records never share a file with the
    /// source's). Takes the append lock: a thread holding an `Appender`
    /// calls `Appender::new_file` instead.
    pub fn new_file(&self) -> Result<()> {
        self.lock().new_file()
    }
}

/// Creates log file `n`: its header, then its preallocated size of zeros,
/// fsynced, then the directory fsynced, before any record goes in.
fn create_file(
    vfs: &SharedVfs,
    dir: &Path,
    n: u32,
    env_id: u64,
    lg_max: u32,
    last_ckp: Lsn,
) -> Result<Arc<dyn VFile>> {
    let path = log_path(dir, n);
    let file: Arc<dyn VFile> = Arc::from(vfs.open(&path, OpenMode::CreateNew(LOG_FILE_MODE))?);
    let h = FileHeader {
        file_no: n,
        lg_max,
        env_id,
        last_ckp,
    };
    file.write_at(&h.encode(), 0)?;
    write_zeros(
        &*file,
        FILE_HEADER_SIZE as u64,
        preallocated_len(lg_max).max(FILE_HEADER_SIZE as u64),
    )?;
    file.sync()?;
    vfs.sync_dir(dir)?;
    Ok(file)
}

/// Gives the newest file, whose records end at `end`, its zero tail back
/// (durably) when it is shorter than its preallocated size: an old
/// environment's file, or one recovery cut.
fn extend_with_zeros(file: &dyn VFile, end: u64, lg_max: u32) -> Result<()> {
    let full = preallocated_len(lg_max);
    let len = file.len()?;
    if full > end && len < full {
        write_zeros(file, len, full)?;
        file.sync()?;
    }
    Ok(())
}

/// Writes zeros over bytes `from..to` of `file` (allocated blocks, not a
/// hole: see the module comment), a MiB at a time.
fn write_zeros(file: &dyn VFile, from: u64, to: u64) -> Result<()> {
    const STEP: u64 = 1 << 20;
    let zeros = vec![0u8; to.saturating_sub(from).min(STEP) as usize];
    let mut off = from;
    while off < to {
        let n = (to - off).min(STEP) as usize;
        file.write_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Cuts the zero tail off a file the log is leaving (its records end at
/// `end`) and fsyncs the file, cut and records, so it ends at its last
/// record before the next file exists.
fn seal_file(file: &dyn VFile, end: u32) -> Result<()> {
    if file.len()? > u64::from(end) {
        file.set_len(u64::from(end))?;
    }
    file.sync()
}

impl Appender<'_> {
    /// Where a record of `record_len` bytes (framing included, see
    /// `Record::encoded_len`) would start if appended now.
    pub fn peek_lsn(&self, record_len: usize) -> Lsn {
        let (file, offset, _) = self.place(self.st.file_no, self.st.offset, record_len);
        Lsn::new(file, offset)
    }

    /// Where each record of a batch of these sizes would start.
    #[cfg(test)]
    pub fn peek_lsns(&self, record_lens: &[usize]) -> Vec<Lsn> {
        let (mut file, mut offset) = (self.st.file_no, self.st.offset);
        let mut out = Vec::with_capacity(record_lens.len());
        for &len in record_lens {
            let (f, o, _) = self.place(file, offset, len);
            out.push(Lsn::new(f, o));
            file = f;
            offset = o.saturating_add(u32::try_from(len).unwrap_or(u32::MAX));
        }
        out
    }

    /// (file, offset, rotate?) for a record of `len` bytes when the next
    /// free byte is (`file`, `offset`). A record goes into a fresh file when
    /// it would pass `lg_max` (a record bigger than `lg_max` goes alone into
    /// one).
    fn place(&self, file: u32, offset: u32, len: usize) -> (u32, u32, bool) {
        let end = u64::from(offset) + len as u64;
        if offset > FIRST_RECORD_OFFSET && end > u64::from(self.log.lg_max) {
            (file.saturating_add(1), FIRST_RECORD_OFFSET, true)
        } else {
            (file, offset, false)
        }
    }

    /// Switches to a fresh log file (see `Log::new_file`).
    pub fn new_file(&mut self) -> Result<()> {
        self.log.check_failed()?;
        self.rotate()
    }

    /// Writes a batch of records to the OS (one write per file it touches)
    /// and returns the LSN of each. Not durable until `Log::flush`. Nothing
    /// is written if a record is too large.
    pub fn append(&mut self, recs: &[(TxnId, &Record)]) -> Result<Vec<Lsn>> {
        self.log.check_failed()?;
        let mut encoded = Vec::with_capacity(recs.len());
        for (txn, rec) in recs {
            let (ty, payload) = rec.encode();
            let len = RECORD_HEADER_SIZE + payload.len();
            if len > MAX_RECORD_LEN {
                return Err(Error::invalid(format!(
                    "{} log record of {} bytes is too large (at most {})",
                    rec.name(),
                    len,
                    MAX_RECORD_LEN
                )));
            }
            encoded.push((*txn, ty, payload, len));
        }
        let mut lsns = Vec::with_capacity(recs.len());
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_at = self.st.offset;
        let mut last_ckp = None;
        for (txn, ty, payload, len) in encoded {
            let (_, _, rotate) = self.place(self.st.file_no, self.st.offset, len);
            if rotate {
                self.write_out(&buf, buf_at)?;
                buf.clear();
                self.rotate()?;
                buf_at = self.st.offset;
            }
            let lsn = Lsn::new(self.st.file_no, self.st.offset);
            let start = buf.len();
            buf.resize(start + RECORD_HEADER_SIZE, 0);
            let h = &mut buf[start..];
            put_u32(h, REC_LEN, len as u32);
            put_u32(h, REC_PREV_LEN, self.st.prev_len);
            h[REC_TYPE] = ty;
            put_u64(h, REC_TXN, txn.0);
            buf.extend_from_slice(&payload);
            let crc = crc32_parts(&[&buf[start..start + REC_CRC], &buf[start + REC_TYPE..]]);
            put_u32(&mut buf[start..], REC_CRC, crc);
            // place() guarantees offset + len fits below u32::MAX.
            self.st.offset += len as u32;
            self.st.prev_len = len as u32;
            if ty == super::record::TYPE_CHECKPOINT {
                last_ckp = Some(lsn);
            }
            lsns.push(lsn);
        }
        self.write_out(&buf, buf_at)?;
        if let Some(l) = last_ckp {
            self.log.set_last_ckp(l);
        }
        Ok(lsns)
    }

    /// Writes `buf` at `at` in the current file (whose in-memory end has
    /// already moved past it) and publishes the new written end.
    fn write_out(&mut self, buf: &[u8], at: u32) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.st.file.write_at(buf, u64::from(at)) {
            return Err(self.log.fail(e));
        }
        let end = Lsn::new(self.st.file_no, self.st.offset);
        let mut s = lock(&self.log.sync);
        if end > s.written {
            s.written = end;
        }
        Ok(())
    }

    /// Cuts the current file to its last record and makes it durable, then
    /// creates the next one (header, size, fsync, directory fsync) and
    /// makes it current.
    fn rotate(&mut self) -> Result<()> {
        let log = self.log;
        let next = match self.st.file_no.checked_add(1) {
            Some(n) => n,
            None => {
                return Err(log.fail(Error::invalid("log file numbers exhausted")));
            }
        };
        if let Err(e) = seal_file(&*self.st.file, self.st.offset) {
            return Err(log.fail(e));
        }
        let file = match create_file(
            &log.vfs,
            &log.dir,
            next,
            log.env_id,
            log.lg_max,
            log.last_ckp(),
        ) {
            Ok(f) => f,
            Err(e) => return Err(log.fail(e)),
        };
        self.st.file = file.clone();
        self.st.file_no = next;
        self.st.offset = FIRST_RECORD_OFFSET;
        self.st.prev_len = 0;
        let start = Lsn::new(next, FIRST_RECORD_OFFSET);
        let mut s = lock(&log.sync);
        s.file = file;
        s.written = start;
        s.durable = start;
        Ok(())
    }
}
