//! Copying environment files safely while their owner writes them
//! (`db_copy`, and every copy `db_hotbackup` makes).
//!
//! * Database files are read in large chunks and checked page by page: a
//!   page whose checksum fails (a read that raced a write) is read again
//!   until it holds; one that still fails after `MAX_REREADS` reads is
//!   reported by file and page number and the copy fails.
//! * Log files are copied as bytes up to their end at the time of reading
//!   (the active file may grow meanwhile; a half-written record at the end
//!   is a torn tail that recovery of the copy cuts).
//! * The copy goes to a temporary name in the target directory, created
//!   exclusively (so a planted symlink is never followed), with the source's
//!   permission bits set before any data is written; it is fsynced, given
//!   the source's times, renamed into place, and the directory fsynced. An
//!   interrupted copy never leaves a half file under the real name, and the
//!   source is only ever read.
//! * Where the copies go is decided before anything is written, as `cp`
//!   decides it: a target that must be a directory (`-t`, several sources,
//!   a trailing slash) and is not one is refused, never made a file.

use crate::error::{Error, Location, Result};
pub use crate::ops::pacing::Pacer;
use crate::progress::{self, Phase, Progress};
use crate::storage::layout::probe_db;
use crate::storage::page::{self, PageCheck};
use crate::storage::vfs::{OpenMode, SharedVfs, VFile};
use crate::types::PageNo;
use crate::wal::parse_log_name;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many times a page that fails its checksum is read again.
pub const MAX_REREADS: u32 = 50;
/// Bytes read per call.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Database { page_size: u32 },
    Log,
}

/// How `copy_into` copies (`db_copy`'s flags, and a backup's pacing).
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions<'a> {
    /// `-F`: plain reads, no page checks (only where reads are atomic).
    pub plain: bool,
    /// How fast the copy may go, shared by every file of one backup
    /// (`-r`, and the self-pacing by the primary: ops/pacing.rs).
    pub pace: Option<&'a Pacer>,
    /// Told of each chunk copied (the caller starts the phase).
    pub progress: Option<&'a dyn Progress>,
}

impl CopyOptions<'_> {
    /// After `len` bytes were written at `off`: write-behind, unless the
    /// primary is busy (see `Pacer::primary_busy`).
    pub(crate) fn written(&self, out: &dyn VFile, off: u64, len: u64) {
        if !self.pace.is_some_and(|p| p.primary_busy()) {
            write_behind(out, off, len);
        }
    }

    /// After each chunk of `n` bytes written: the pace, then the progress.
    pub(crate) fn chunk_done(&self, n: u64) {
        if let Some(p) = self.pace {
            p.pace(n);
        }
        progress::advance(self.progress, n);
    }
}

#[derive(Debug, Clone)]
/// What one file's copy did.
pub struct CopyReport {
    /// The file copied.
    pub source: PathBuf,
    /// Where its copy is.
    pub target: PathBuf,
    /// A database (with its page size) or a log file: how it was read.
    pub kind: FileKind,
    /// How many bytes were written.
    pub bytes: u64,
    /// Pages read more than once before their checksum held.
    pub rereads: u64,
    /// crc32 of the bytes written.
    pub crc: u32,
}

/// What kind of environment file `path` is, or an error naming it.
pub fn classify(vfs: &SharedVfs, path: &Path) -> Result<FileKind> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if parse_log_name(name).is_some() {
        return Ok(FileKind::Log);
    }
    if !vfs.exists(path) {
        return Err(Error::io(
            path,
            "open",
            std::io::Error::from_raw_os_error(2),
        ));
    }
    // An open that fails (permissions) says why better than the probe.
    vfs.open(path, OpenMode::Read)?;
    match probe_db(vfs, path) {
        Some(ps) => Ok(FileKind::Database { page_size: ps }),
        // Removed since the open (a database dropped while a backup runs):
        // not found, not "not a database".
        None if !vfs.exists(path) => Err(Error::io(
            path,
            "open",
            std::io::Error::from_raw_os_error(2),
        )),
        None => Err(Error::corrupt(
            path,
            Location::Whole,
            "not a database or log file of an environment",
        )),
    }
}

/// Copies `src` to the file `dst` (not a directory).
pub fn copy_file(
    vfs: &SharedVfs,
    src: &Path,
    dst: &Path,
    opts: CopyOptions<'_>,
) -> Result<CopyReport> {
    let kind = classify(vfs, src)?;
    let meta = vfs.metadata(src)?;
    let dir = match dst.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dst
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a file name", dst.display())))?;
    let tmp = dir.join(format!(
        ".tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if vfs.exists(&tmp) {
        vfs.remove(&tmp)?;
    }
    let mode = meta.mode;
    let out = vfs.open(&tmp, OpenMode::CreateNew(mode & 0o700))?;
    let result = (|| -> Result<CopyReport> {
        // Exactly the source's bits (the umask may have taken some away;
        // never more than the source has).
        out.set_mode(mode)?;
        let input = vfs.open(src, OpenMode::Read)?;
        let (bytes, rereads, crc) =
            with_background_sync(out.as_ref(), |nudge| match (kind, opts.plain) {
                (FileKind::Database { page_size }, false) => copy_pages(
                    input.as_ref(),
                    out.as_ref(),
                    page_size as usize,
                    nudge,
                    opts,
                ),
                _ => copy_bytes(input.as_ref(), out.as_ref(), nudge, opts),
            })?;
        out.sync()?;
        out.set_times(meta.accessed, meta.modified)?;
        vfs.rename(&tmp, dst)?;
        vfs.sync_dir(&dir)?;
        Ok(CopyReport {
            source: src.to_path_buf(),
            target: dst.to_path_buf(),
            kind,
            bytes,
            rereads,
            crc,
        })
    })();
    if result.is_err() {
        let _ = vfs.remove(&tmp);
    }
    result
}

/// Bytes written between two nudges of the background flush.
const SYNC_EVERY: u64 = 32 << 20;

/// Runs `copy` while a second thread fsyncs `out` each time `copy` nudges
/// it (every `SYNC_EVERY` bytes), so writing back to disk overlaps reading
/// and checking instead of all happening in the final fsync. Any fsync
/// error fails the copy.
fn with_background_sync<T>(
    out: &dyn VFile,
    copy: impl FnOnce(&dyn Fn()) -> Result<T>,
) -> Result<T> {
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let syncer = sc.spawn(move || -> Result<()> {
            while rx.recv().is_ok() {
                out.sync()?;
            }
            Ok(())
        });
        let nudge = move || {
            let _ = tx.try_send(());
        };
        let copied = copy(&nudge);
        drop(nudge);
        let synced = syncer
            .join()
            .unwrap_or_else(|_| Err(Error::invalid("the background fsync thread panicked")));
        let v = copied?;
        synced?;
        Ok(v)
    })
}

fn copy_bytes(
    input: &dyn VFile,
    out: &dyn VFile,
    nudge: &dyn Fn(),
    opts: CopyOptions<'_>,
) -> Result<(u64, u64, u32)> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    let mut h = crc32fast::Hasher::new();
    loop {
        let n = input.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        out.write_at(&buf[..n], off)?;
        opts.written(out, off, n as u64);
        if off / SYNC_EVERY != (off + n as u64) / SYNC_EVERY {
            nudge();
        }
        opts.chunk_done(n as u64);
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok((off, 0, h.finalize()))
}

fn copy_pages(
    input: &dyn VFile,
    out: &dyn VFile,
    ps: usize,
    nudge: &dyn Fn(),
    opts: CopyOptions<'_>,
) -> Result<(u64, u64, u32)> {
    let per = (CHUNK / ps).max(1);
    let mut buf = vec![0u8; per * ps];
    let mut off = 0u64;
    let mut rereads = 0u64;
    let mut h = crc32fast::Hasher::new();
    loop {
        let n = input.read_at(&mut buf, off)?;
        // Only whole pages: a partial page at the end is being appended.
        let whole = n / ps * ps;
        if whole == 0 {
            break;
        }
        for (i, page_buf) in buf[..whole].chunks_mut(ps).enumerate() {
            let no = PageNo(((off / ps as u64) + i as u64) as u32);
            rereads += settle_page(input, page_buf, no, off + (i * ps) as u64)?;
        }
        out.write_at(&buf[..whole], off)?;
        opts.written(out, off, whole as u64);
        h.update(&buf[..whole]);
        if off / SYNC_EVERY != (off + whole as u64) / SYNC_EVERY {
            nudge();
        }
        opts.chunk_done(whole as u64);
        off += whole as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok((off, rereads, h.finalize()))
}

/// How far behind its writes a copy tells the file system to drop what is
/// on disk: far enough that the write-out started then has finished.
const DROP_BEHIND: u64 = 8 << 20;

/// After `len` bytes were written at `off`: starts their write-out, and
/// asks again for the range `DROP_BEHIND` earlier, written out by now, so
/// the cache drops it. The copy's dirty data stays at a few MiB instead of
/// all it wrote since the last fsync, and the pages it made never push
/// the primary's out of the cache. Advice only: a file system that
/// refuses it changes nothing, so its error is not the copy's.
pub(crate) fn write_behind(out: &dyn VFile, off: u64, len: u64) {
    if !kernel_tools() {
        return;
    }
    let _ = out.write_behind(off, len);
    if let Some(earlier) = off.checked_sub(DROP_BEHIND) {
        let _ = out.write_behind(earlier, len);
    }
}

/// Whether copies use [`write_behind`]: yes, unless the environment
/// variable `BDBTOOLS_WRITE_BEHIND` is `0` (for the bench's comparison
/// only, see bench/main.rs; not an operator's setting).
fn kernel_tools() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BDBTOOLS_WRITE_BEHIND").is_none_or(|v| v != "0"))
}

/// Re-reads one page until its checksum holds. All-zero pages (space the
/// file has but no write reached) are copied as they are.
pub(crate) fn settle_page(input: &dyn VFile, buf: &mut [u8], no: PageNo, at: u64) -> Result<u64> {
    let mut tries = 0u32;
    loop {
        match page::check(buf, no) {
            PageCheck::Ok | PageCheck::Unwritten => return Ok(u64::from(tries)),
            bad => {
                if tries >= MAX_REREADS {
                    let what = match bad {
                        PageCheck::WrongNumber(n) => {
                            format!("page holds page {n} after {tries} reads")
                        }
                        _ => format!("checksum still fails after {tries} reads (corrupt page)"),
                    };
                    return Err(Error::corrupt(input.path(), Location::Page(no), what));
                }
                tries += 1;
                std::thread::sleep(Duration::from_micros(200 * u64::from(tries)));
                let n = input.read_at(buf, at)?;
                if n < buf.len() {
                    return Err(Error::corrupt(
                        input.path(),
                        Location::Page(no),
                        "file shrank while being copied",
                    ));
                }
            }
        }
    }
}

/// Where the copies of [`copy_into`] go, decided before anything is
/// written so that a mistyped target never becomes a file or a temporary
/// file somewhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    /// Into this existing directory, one file per source, same base name.
    IntoDir,
    /// Onto this file name (one source; its directory exists).
    OntoFile,
}

/// How `cp` reads its target: it must be an existing directory when the
/// caller says so (`-t`), when there are several sources, or when it ends
/// in a slash; otherwise an existing directory is copied into and any other
/// name is the copy's name, in a directory that must exist. The errors name
/// `target` with the OS's reason, as `cp` does (`target directory
/// 'missing': No such file or directory`).
fn destination(
    vfs: &SharedVfs,
    target: &Path,
    sources: usize,
    target_is_dir: bool,
) -> Result<Destination> {
    let slash = target.as_os_str().as_bytes().ends_with(b"/");
    if vfs.is_dir(target) {
        return Ok(Destination::IntoDir);
    }
    if target_is_dir || sources != 1 || slash {
        return Err(Error::io(
            target,
            "target directory",
            not_a_dir(vfs, target),
        ));
    }
    let parent = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !vfs.is_dir(parent) {
        return Err(Error::io(target, "create", not_a_dir(vfs, parent)));
    }
    Ok(Destination::OntoFile)
}

/// Why `path`, which is not a directory, cannot be used as one: ENOTDIR
/// when something else is there, ENOENT when nothing is.
fn not_a_dir(vfs: &SharedVfs, path: &Path) -> std::io::Error {
    const ENOENT: i32 = 2;
    const ENOTDIR: i32 = 20;
    let code = if vfs.exists(path) { ENOTDIR } else { ENOENT };
    std::io::Error::from_raw_os_error(code)
}

/// Copies each source into `target`: into it when it is a directory (one
/// file per source, same base name), or onto it when there is a single
/// source and `target` is not a directory (see `destination`; with
/// `target_is_dir`, as `cp -t`, it must be one). Stops at the first
/// failure. `opts.progress` hears one `Phase::Copy` over every source.
pub fn copy_into(
    vfs: &SharedVfs,
    sources: &[PathBuf],
    target: &Path,
    target_is_dir: bool,
    opts: CopyOptions,
    mut each: impl FnMut(&CopyReport),
) -> Result<Vec<CopyReport>> {
    let into_dir = destination(vfs, target, sources.len(), target_is_dir)? == Destination::IntoDir;
    if opts.progress.is_some() {
        progress::start(opts.progress, Phase::Copy, Some(total_size(vfs, sources)));
    }
    let mut out = Vec::new();
    for src in sources {
        let dst = if into_dir {
            let name = src
                .file_name()
                .ok_or_else(|| Error::invalid(format!("{}: not a file name", src.display())))?;
            target.join(name)
        } else {
            target.to_path_buf()
        };
        if same_file(vfs, src, &dst) {
            return Err(Error::invalid(format!(
                "{}: source and target are the same file",
                src.display()
            )));
        }
        let r = copy_file(vfs, src, &dst, opts)?;
        each(&r);
        out.push(r);
    }
    progress::finish(opts.progress);
    Ok(out)
}

/// The sizes of `files` added up, for a progress total (one that cannot
/// be opened counts 0: its copy names it).
pub(crate) fn total_size<P: AsRef<Path>>(vfs: &SharedVfs, files: &[P]) -> u64 {
    files
        .iter()
        .filter_map(|f| {
            vfs.open(f.as_ref(), OpenMode::Read)
                .and_then(|h| h.len())
                .ok()
        })
        .sum()
}

fn same_file(vfs: &SharedVfs, a: &Path, b: &Path) -> bool {
    match (vfs.metadata(a), vfs.metadata(b)) {
        (Ok(x), Ok(y)) => x.same_file(&y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: write-behind starts the write-out of every chunk at
    /// once, and while the primary is busy that stream of writes sat in
    /// front of each of its log fsyncs (bench row 6: a one-thread
    /// primary kept 0.86 of its commits with it, 0.94 without). A copy
    /// whose pacer sees a busy primary leaves write-out to its periodic
    /// fsyncs; one of an idle primary (or none) still writes behind.
    #[test]
    fn a_copy_writes_behind_only_while_the_primary_is_idle() {
        use crate::storage::vfs::{OpenMode, Vfs};
        use crate::storage::vfs_layer::FileLayer;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(Box<dyn VFile>, AtomicUsize);
        impl FileLayer for Counting {
            fn lower(&self) -> &dyn VFile {
                &*self.0
            }
            fn write_behind(&self, off: u64, len: u64) -> Result<()> {
                self.1.fetch_add(1, Ordering::Relaxed);
                self.0.write_behind(off, len)
            }
        }
        let d = tempfile::tempdir().unwrap();
        let f = crate::storage::vfs::OsVfs
            .open(&d.path().join("f"), OpenMode::CreateNew(0o600))
            .unwrap();
        let f = Counting(f, AtomicUsize::new(0));
        let behind = |opts: CopyOptions<'_>| {
            let before = f.1.load(Ordering::Relaxed);
            opts.written(&f, 0, 4096);
            f.1.load(Ordering::Relaxed) - before
        };
        assert_eq!(behind(CopyOptions::default()), 1, "no pacer");
        let idle = Pacer::test_with_rate(None);
        let busy = Pacer::test_with_rate(Some(8.0 * 1048576.0));
        let with = |p| CopyOptions {
            pace: Some(p),
            ..CopyOptions::default()
        };
        assert_eq!(behind(with(&idle)), 1, "idle primary");
        assert_eq!(behind(with(&busy)), 0, "busy primary");
    }

    use crate::engine::env::{Env, EnvOptions};
    use crate::storage::vfs::OsVfs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_keep_mode_and_times_and_a_corrupt_page_fails_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("h");
        std::fs::create_dir(&home).unwrap();
        let env = Env::open(&home, EnvOptions::create()).unwrap();
        {
            let mut t = env.begin().unwrap();
            let db = t.create_db("a.db", Some(512)).unwrap();
            for i in 0..200u32 {
                t.put(&db, &i.to_be_bytes(), &[3u8; 50]).unwrap();
            }
            t.commit().unwrap();
        }
        env.close().unwrap();
        let src = home.join("a.db");
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vfs = OsVfs::shared();
        let bk = d.path().join("bk");
        std::fs::create_dir(&bk).unwrap();
        let r = copy_into(
            &vfs,
            std::slice::from_ref(&src),
            &bk,
            false,
            CopyOptions::default(),
            |_| {},
        )
        .unwrap();
        assert_eq!(r[0].rereads, 0);
        let copy = bk.join("a.db");
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&src).unwrap());
        let m = std::fs::metadata(&copy).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            m.modified().unwrap(),
            std::fs::metadata(&src).unwrap().modified().unwrap()
        );
        // Damage page 2 for good: the copy fails naming file and page and
        // leaves nothing under the real name or a temporary one.
        let mut raw = std::fs::read(&src).unwrap();
        raw[2 * 512 + 100] ^= 0xff;
        std::fs::write(&src, raw).unwrap();
        let bk2 = d.path().join("bk2");
        std::fs::create_dir(&bk2).unwrap();
        let e = copy_into(&vfs, &[src], &bk2, false, CopyOptions::default(), |_| {}).unwrap_err();
        assert!(e.to_string().contains("a.db: page 2:"), "{e}");
        assert_eq!(std::fs::read_dir(&bk2).unwrap().count(), 0);
    }
}
