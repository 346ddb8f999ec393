//! The backup directory of `db_hotbackup` (`-b`): what it holds, whether a
//! full backup or an update may write there, and how a full backup replaces
//! the previous one so that the directory holds a complete backup at every
//! moment, through a Ctrl-C or a power loss.
//!
//! What a target can hold ([`survey`]) and what each command does there:
//!
//! | the target holds                                   | full backup | `-u`     |
//! | -------------------------------------------------- | ----------- | -------- |
//! | nothing (missing, empty, or only leftovers of ours) | makes one   | refused  |
//! | a complete backup of this source (its manifest)     | replaces it | updates  |
//! | a complete backup of another environment            | refused     | refused  |
//! | environment files without a manifest: a primary, live or stopped, a copy that was failed over to and took commits, a backup an older version left unfinished | refused | refused |
//! | a file that belongs to no environment               | refused     | ignored  |
//! | a standby `db_replicate` keeps (`__db.replica`, or `__db.restoring`) | refused | refused |
//! | a new backup half moved into place                  | the move is finished first, then as above | same |
//!
//! Every refusal is one line naming the directory and what it holds, and
//! changes nothing. Nothing here ever deletes a file that is not a
//! backup's: the only files removed are those of a complete backup of the
//! same source being replaced, and what an interrupted `db_hotbackup` left.
//!
//! Leftovers of an interrupted run are ours, never a reason to refuse, and
//! the next run removes them ([`settle`]): the staging directory, temporary
//! files `.tmp.*`, the lock file.
//!
//! Replacing a backup. The new backup is built in the staging directory
//! `.db_hotbackup.new` *inside* the target (so it works when the target is
//! a mount point and needs no right on its parent) while the old backup
//! stays whole beside it. Then ([`replace`]):
//!
//! 1. the new backup's files and its manifest are durable in the staging
//!    directory;
//! 2. the target's manifest is replaced, atomically, by a *commit record*:
//!    from this moment the new backup is the backup. Every reader that
//!    meets the record finishes the move before anything else (`db_hotbackup`,
//!    `db_recover`); any other reads the record as a manifest it cannot
//!    parse and refuses, so nothing ever opens a half-moved directory;
//! 3. the old files that the new backup does not have are removed, the new
//!    ones put in place (each hard-linked beside its place, then renamed
//!    over it inside its directory: a rename between two directories may
//!    lose the file at a power loss), each directory fsynced;
//! 4. the staging manifest is put over the commit record: done;
//! 5. the staging directory is removed.
//!
//! Steps 3 to 5 only use what the record and the staging manifest say, and
//! each is idempotent (the staging copies stay until step 5), so the move
//! can be run again from step 3 after a crash anywhere in it, as often as
//! needed.
//!
//! An atomic swap of a sibling directory with the target (`renameat2`
//! `RENAME_EXCHANGE`) was considered: it needs this same path anyway for a
//! target that is a mount point, a parent we may not write, or a file
//! system without the call, and would add a second set of crash states in
//! a directory the operator did not name.

use crate::engine::owner::{self, OwnerLock, LOCK_FILE};
use crate::error::{Error, Location, Result};
use crate::ops::replica::restore::MARK_FILE as RESTORE_MARK;
use crate::ops::replica::status::STATE_FILE as STANDBY_STATE;
use crate::storage::config::Config;
use crate::storage::layout::{is_env_internal, probe_db, Layout};
use crate::storage::vfs::{OpenMode, SharedVfs};
use crate::types::Lsn;
use crate::wal::manifest::{Manifest, MANIFEST_FILE};
use crate::wal::{parse_log_name, FIRST_RECORD_OFFSET};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The directory inside the target where a full backup is built.
pub const STAGING_DIR: &str = ".db_hotbackup.new";
/// First line of the commit record, which stands in for the manifest while
/// a new backup moves into place (and is no manifest to any other reader).
const COMMIT_MAGIC: &str = "bdbtools-backup-commit 1";

/// Where a full backup into `target` is built.
pub fn staging(target: &Path) -> PathBuf {
    target.join(STAGING_DIR)
}

/// What a backup directory holds.
#[derive(Debug)]
pub enum Holds {
    /// The directory does not exist.
    Missing,
    /// Nothing, or only what an interrupted `db_hotbackup` leaves.
    Empty,
    /// A complete backup: its manifest.
    Backup(Box<Manifest>),
    /// A new backup was being moved into place when `db_hotbackup` stopped.
    Moving,
    /// An environment's files, without a backup manifest.
    Environment(Signs),
}

/// What makes a directory an environment, for the message refusing it.
#[derive(Debug, Default)]
pub struct Signs {
    pub databases: usize,
    /// Log file numbers, ascending.
    pub logs: Vec<u32>,
    pub region: bool,
    pub config: bool,
    /// A process holding the directory's owner lock.
    pub owner: Option<u32>,
}

impl Signs {
    fn any(&self) -> bool {
        self.databases > 0 || !self.logs.is_empty() || self.region || self.config
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.databases {
            0 => {}
            1 => parts.push("1 database file".to_string()),
            n => parts.push(format!("{n} database files")),
        }
        match (self.logs.first(), self.logs.last()) {
            (Some(a), Some(b)) if a == b => parts.push(format!("log file {a}")),
            (Some(a), Some(b)) => parts.push(format!("log files {a} to {b}")),
            _ => {}
        }
        if self.region {
            parts.push("a region file".into());
        }
        if self.config {
            parts.push("DB_CONFIG".into());
        }
        if let Some(pid) = self.owner {
            parts.push(format!("open by process {pid}"));
        }
        parts.join(", ")
    }
}

/// What `survey` found.
#[derive(Debug)]
pub struct Survey {
    pub holds: Holds,
    /// The first file (by name) that belongs to no environment.
    pub foreign: Option<PathBuf>,
    /// A file that makes the directory a standby kept by `db_replicate`
    /// (its state, or the mark of a restore under way).
    pub standby: Option<PathBuf>,
}

/// Looks at `target` and at `dirs` (the directories a backup there would
/// write) without changing anything.
pub fn survey(vfs: &SharedVfs, target: &Path, dirs: &[PathBuf]) -> Result<Survey> {
    let mut out = Survey {
        holds: Holds::Missing,
        foreign: None,
        standby: None,
    };
    if !vfs.exists(target) {
        return Ok(out);
    }
    if !vfs.is_dir(target) {
        return Err(Error::invalid(format!(
            "{}: not a directory",
            target.display()
        )));
    }
    if moving(vfs, target)? {
        out.holds = Holds::Moving;
        return Ok(out);
    }
    let mut all = vec![target.to_path_buf()];
    for d in own_dirs(vfs, target)
        .into_iter()
        .chain(dirs.iter().cloned())
    {
        if !all.contains(&d) {
            all.push(d);
        }
    }
    let mut signs = Signs::default();
    for dir in &all {
        if !vfs.is_dir(dir) {
            continue;
        }
        for (name, is_dir) in entries(vfs, dir)? {
            if is_dir {
                continue; // the staging directory, a layout directory, or the operator's: never written
            }
            let p = dir.join(&name);
            // A symbolic link, a FIFO or a device is nobody's environment
            // file, whatever its name.
            let name = if is_regular(vfs, &p) {
                name.to_str()
            } else {
                None
            };
            match name {
                Some(LOCK_FILE | MANIFEST_FILE) => {}
                Some(STANDBY_STATE | RESTORE_MARK) => {
                    signs.region = true;
                    out.standby.get_or_insert(p);
                }
                Some(n) if n.starts_with(".tmp.") => {}
                Some(n) if n == crate::engine::region::REGION_FILE => signs.region = true,
                Some("DB_CONFIG") => signs.config = true,
                Some(n) if parse_log_name(n).is_some() => {
                    signs.logs.extend(parse_log_name(n));
                }
                Some(n) if is_env_internal(n) => signs.region = true,
                Some(_) if probe_db(vfs, &p).is_some() => signs.databases += 1,
                _ => {
                    if out.foreign.is_none() {
                        out.foreign = Some(p);
                    }
                }
            }
        }
    }
    signs.logs.sort_unstable();
    signs.owner = owner::live_owner(vfs, target);
    out.holds = match Manifest::read(vfs, target)? {
        Some(m) => Holds::Backup(Box::new(m)),
        None if signs.any() => Holds::Environment(signs),
        None => Holds::Empty,
    };
    Ok(out)
}

/// Refuses a full backup of `home` (environment id `src_env`) into what
/// `survey` found there.
pub fn check_full(sv: &Survey, target: &Path, home: &Path, src_env: u64) -> Result<()> {
    if let Some(f) = &sv.foreign {
        return Err(foreign(f));
    }
    if let Some(f) = &sv.standby {
        return Err(standby(target, f));
    }
    match &sv.holds {
        Holds::Missing | Holds::Empty | Holds::Moving => Ok(()),
        Holds::Backup(m) if m.env_id == src_env => Ok(()),
        Holds::Backup(m) => Err(other_env(target, home, m.env_id, src_env)),
        Holds::Environment(s) => Err(not_a_backup(target, s)),
    }
}

/// Refuses an update of the backup in `target` from `home`.
pub fn check_update(sv: &Survey, target: &Path, home: &Path, src_env: u64) -> Result<()> {
    if let Some(f) = &sv.standby {
        return Err(standby(target, f));
    }
    match &sv.holds {
        Holds::Missing => Err(Error::invalid(format!(
            "{}: no such directory: there is no backup to update (make one with a full db_hotbackup)",
            target.display()
        ))),
        Holds::Empty => Err(Error::invalid(format!(
            "{}: holds no backup to update (make one with a full db_hotbackup)",
            target.display()
        ))),
        Holds::Backup(m) if m.env_id != src_env => {
            Err(other_env(target, home, m.env_id, src_env))
        }
        Holds::Environment(s) => Err(not_a_backup(target, s)),
        Holds::Backup(_) | Holds::Moving => Ok(()),
    }
}

fn foreign(path: &Path) -> Error {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    Error::invalid(format!(
        "{}: holds {name}, which belongs to no environment; refusing to write a backup there (nothing was changed)",
        dir.display()
    ))
}

/// A standby's home holds a backup manifest too, but its client owns it:
/// a backup there would move its log and manifest under the client (or
/// replace them), and the client's record of what it applied would no
/// longer match.
fn standby(target: &Path, file: &Path) -> Error {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    Error::invalid(format!(
        "{}: is a standby kept by db_replicate ({name}); refusing to write a backup there (nothing was changed): its client keeps it up to date from the replica store; back up into another directory",
        target.display()
    ))
}

fn other_env(target: &Path, home: &Path, theirs: u64, ours: u64) -> Error {
    Error::invalid(format!(
        "{}: holds a backup of another environment (id {theirs:016x}; {} is {ours:016x}); refusing to overwrite it (nothing was changed): back up into another directory, or move this one aside first",
        target.display(),
        home.display()
    ))
}

fn not_a_backup(target: &Path, s: &Signs) -> Error {
    Error::invalid(format!(
        "{}: holds an environment that is not a backup ({}; no backup manifest): a primary, a copy that was failed over to, or an unfinished backup; refusing to overwrite it (nothing was changed): back up into another directory, or move this one aside first",
        target.display(),
        s.describe()
    ))
}

/// Finishes what an interrupted `db_hotbackup` left in `target`: a new
/// backup half moved into place is moved the rest of the way, the staging
/// directory and temporary files are removed. The caller holds the
/// target's owner lock.
pub fn settle(vfs: &SharedVfs, target: &Path, say: &mut dyn FnMut(String)) -> Result<()> {
    if !vfs.is_dir(target) {
        return Ok(());
    }
    if moving(vfs, target)? {
        say(format!(
            "{}: finishing the move of a new backup into place, interrupted earlier",
            target.display()
        ));
        finish_move(vfs, target)?;
    }
    discard_staging(vfs, target)?;
    let mut dirs = vec![target.to_path_buf()];
    dirs.extend(own_dirs(vfs, target));
    for dir in dirs.iter().filter(|d| vfs.is_dir(d)) {
        let mut removed = false;
        for (name, is_dir) in entries(vfs, dir)? {
            if !is_dir && name.to_string_lossy().starts_with(".tmp.") {
                vfs.remove(&dir.join(&name))?;
                removed = true;
            }
        }
        if removed {
            vfs.sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Removes the staging directory of `target` and everything in it (all of
/// it is an unfinished backup's, or what a finished move left).
pub fn discard_staging(vfs: &SharedVfs, target: &Path) -> Result<()> {
    let s = staging(target);
    if vfs.exists(&s) {
        remove_tree(vfs, &s)?;
        vfs.sync_dir(target)?;
    }
    Ok(())
}

/// A new, empty staging directory (an old one is removed first).
pub fn fresh_staging(vfs: &SharedVfs, target: &Path) -> Result<PathBuf> {
    discard_staging(vfs, target)?;
    let s = staging(target);
    vfs.create_dir(&s, 0o700)?;
    vfs.sync_dir(target)?;
    Ok(s)
}

/// Replaces the backup in `target` by the complete one in its staging
/// directory (see the module documentation). `config`: the new backup has
/// a DB_CONFIG.
pub fn replace(vfs: &SharedVfs, target: &Path, config: bool) -> Result<()> {
    let record = CommitRecord {
        config,
        clean: own_dirs(vfs, target)
            .iter()
            .filter_map(|d| d.strip_prefix(target).ok().map(Path::to_path_buf))
            .collect(),
    };
    record.write(vfs, target)?;
    finish_move(vfs, target)
}

/// For `db_recover`: finishes a move of a new backup into `home` that an
/// interrupted `db_hotbackup` left half done, so recovery sees one whole
/// backup. Nothing happens when there is none.
pub fn finish_interrupted(vfs: &SharedVfs, home: &Path, lock_timeout: Duration) -> Result<()> {
    if !vfs.is_dir(home) || !moving(vfs, home)? {
        return Ok(());
    }
    let _lock = OwnerLock::acquire(vfs, home, lock_timeout)?;
    if moving(vfs, home)? {
        finish_move(vfs, home)?;
    }
    Ok(())
}

/// Where catastrophic recovery of the backup in `layout` starts: the
/// manifest's start, or the first record of the first log file it lists
/// when that is later (the log files before it were trimmed, and any
/// still there are stale: an interrupted trim). `None` without a manifest.
pub fn recovery_start(vfs: &SharedVfs, layout: &Layout) -> Result<Option<Lsn>> {
    let Some(m) = Manifest::read(vfs, &layout.home)? else {
        return Ok(None);
    };
    let first_listed = m
        .files
        .iter()
        .filter_map(|f| {
            Path::new(&f.name)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_log_name)
        })
        .min();
    Ok(Some(match first_listed {
        Some(n) => m.start.max(Lsn::new(n, FIRST_RECORD_OFFSET)),
        None => m.start,
    }))
}

/// True when `dir`'s manifest is a commit record.
fn moving(vfs: &SharedVfs, dir: &Path) -> Result<bool> {
    let path = Manifest::path(dir);
    if !vfs.exists(&path) {
        return Ok(false);
    }
    let h = vfs.open(&path, OpenMode::Read)?;
    let mut head = vec![0u8; COMMIT_MAGIC.len() + 1];
    let n = h.read_at(&mut head, 0)?;
    Ok(n == head.len() && head.starts_with(COMMIT_MAGIC.as_bytes()) && head[n - 1] == b'\n')
}

/// What the move of a new backup into place needs to know beyond the
/// staging manifest.
struct CommitRecord {
    /// The new backup has a DB_CONFIG (it is not in the manifest's list).
    config: bool,
    /// The old backup's data and log directories inside the target,
    /// relative to it: their old files go too.
    clean: Vec<PathBuf>,
}

impl CommitRecord {
    fn text(&self) -> String {
        let mut s = format!(
            "{COMMIT_MAGIC}\n# db_hotbackup stopped while moving a new backup into place from {STAGING_DIR}: db_hotbackup or db_recover finishes the move\nconfig {}\n",
            u8::from(self.config)
        );
        for d in &self.clean {
            s.push_str(&format!("clean {}\n", d.display()));
        }
        s
    }

    fn read(vfs: &SharedVfs, dir: &Path) -> Result<CommitRecord> {
        let path = Manifest::path(dir);
        let h = vfs.open(&path, OpenMode::Read)?;
        let len = h.len()?.min(1 << 20) as usize;
        let mut buf = vec![0u8; len];
        let n = h.read_at(&mut buf, 0)?;
        buf.truncate(n);
        let bad = |what: &str| Error::corrupt(&path, Location::Whole, what.to_string());
        let text = String::from_utf8(buf).map_err(|_| bad("commit record is not text"))?;
        let mut rec = CommitRecord {
            config: false,
            clean: Vec::new(),
        };
        for line in text.lines().skip(1).filter(|l| !l.starts_with('#')) {
            match line.split_once(' ') {
                Some(("config", v)) => rec.config = v == "1",
                Some(("clean", d)) if inside_rel(Path::new(d)) => rec.clean.push(PathBuf::from(d)),
                _ => {
                    return Err(bad(&format!(
                        "commit record line {line:?} is not understood"
                    )))
                }
            }
        }
        Ok(rec)
    }

    /// Atomically replaces `dir`'s manifest with this record.
    fn write(&self, vfs: &SharedVfs, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!(
            ".tmp.{MANIFEST_FILE}.commit.{}",
            std::process::id()
        ));
        if vfs.exists(&tmp) {
            vfs.remove(&tmp)?;
        }
        let h = vfs.open(&tmp, OpenMode::CreateNew(0o600))?;
        let done = h
            .write_at(self.text().as_bytes(), 0)
            .and_then(|_| h.sync())
            .and_then(|_| vfs.rename(&tmp, &Manifest::path(dir)));
        if done.is_err() {
            let _ = vfs.remove(&tmp);
        }
        done?;
        vfs.sync_dir(dir)
    }
}

/// Steps 3 to 5 of a replacement (module documentation); idempotent.
fn finish_move(vfs: &SharedVfs, target: &Path) -> Result<()> {
    let record = CommitRecord::read(vfs, target)?;
    let s = staging(target);
    let Some(new) = Manifest::read(vfs, &s)? else {
        return Err(Error::corrupt(
            Manifest::path(target),
            Location::Whole,
            format!("a new backup was being moved into place from {STAGING_DIR}, which holds no manifest: the move cannot be finished"),
        ));
    };
    let mut keep: BTreeSet<PathBuf> = new
        .files
        .iter()
        .map(|f| PathBuf::from(&f.name))
        .filter(|p| inside_rel(p))
        .collect();
    if record.config {
        keep.insert(PathBuf::from("DB_CONFIG"));
    }
    // 3a. The old backup's files that the new one does not have.
    let mut dirs: BTreeSet<PathBuf> = record.clean.iter().cloned().collect();
    dirs.insert(PathBuf::new());
    dirs.extend(
        keep.iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf)),
    );
    for rel in &dirs {
        let dir = target.join(rel);
        if !vfs.is_dir(&dir) {
            continue;
        }
        let mut removed = false;
        for (name, is_dir) in entries(vfs, &dir)? {
            let Some(n) = name.to_str() else { continue };
            let p = dir.join(n);
            let stays = is_dir
                || n == LOCK_FILE
                || n == MANIFEST_FILE
                || keep.contains(&rel.join(n))
                || !is_backup_file(vfs, &p, n);
            if !stays {
                vfs.remove(&p)?;
                removed = true;
            }
        }
        if removed {
            vfs.sync_dir(&dir)?;
        }
    }
    // 3b. The new files, into place. The staging copies stay until the
    // whole backup is in place, so the move can always be run again.
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in &keep {
        let to = target.join(rel);
        if let Some(parent) = to.parent() {
            make_dirs(vfs, target, parent)?;
            touched.insert(parent.to_path_buf());
        }
        place(vfs, &s.join(rel), &to)?;
    }
    for d in &touched {
        vfs.sync_dir(d)?;
    }
    // 4. The manifest over the commit record.
    place(vfs, &Manifest::path(&s), &Manifest::path(target))?;
    vfs.sync_dir(target)?;
    // 5. What is left of the staging directory.
    discard_staging(vfs, target)
}

/// Puts the file `from` at `to` (another directory), replacing what is
/// there in one step: a hard link under a temporary name beside `to`, then
/// a rename inside that directory. Unlike a rename between directories,
/// which a power loss may split (the old name gone, the new one never
/// written), this never loses the file: `from` stays until the caller
/// removes it after syncing `to`'s directory.
fn place(vfs: &SharedVfs, from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".tmp.{name}.{}", std::process::id()));
    if vfs.exists(&tmp) {
        vfs.remove(&tmp)?;
    }
    vfs.hard_link(from, &tmp)?;
    vfs.rename(&tmp, to)
}

/// A file a backup holds (and a replacement may remove): a database, a log
/// file, DB_CONFIG, a region or temporary file.
fn is_backup_file(vfs: &SharedVfs, path: &Path, name: &str) -> bool {
    is_env_internal(name)
        || parse_log_name(name).is_some()
        || (is_regular(vfs, path) && probe_db(vfs, path).is_some())
}

fn is_regular(vfs: &SharedVfs, p: &Path) -> bool {
    vfs.symlink_metadata(p).is_ok_and(|m| m.is_file())
}

/// Creates `dir` (and its parents up to `root`) when missing, each made
/// durable in its parent.
fn make_dirs(vfs: &SharedVfs, root: &Path, dir: &Path) -> Result<()> {
    if vfs.is_dir(dir) || dir == root {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(root);
    make_dirs(vfs, root, parent)?;
    vfs.create_dir(dir, 0o700)?;
    vfs.sync_dir(parent)
}

/// Removes `dir` and everything under it (files and symbolic links are
/// unlinked, never followed).
fn remove_tree(vfs: &SharedVfs, dir: &Path) -> Result<()> {
    for (name, is_dir) in entries(vfs, dir)? {
        let p = dir.join(&name);
        if is_dir {
            remove_tree(vfs, &p)?;
        } else {
            vfs.remove(&p)?;
        }
    }
    vfs.remove_dir(dir)
}

/// The names in `dir`, sorted, each with whether it is a directory (a
/// symbolic link is not one).
fn entries(vfs: &SharedVfs, dir: &Path) -> Result<Vec<(std::ffi::OsString, bool)>> {
    let mut names = vfs.list(dir)?;
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            Ok((n, vfs.symlink_metadata(&p)?.is_dir()))
        })
        .collect()
}

/// The data and log directories the target's own DB_CONFIG names inside
/// it (a `-D` backup's layout); none when it has no usable DB_CONFIG.
fn own_dirs(vfs: &SharedVfs, target: &Path) -> Vec<PathBuf> {
    if !vfs.exists(&target.join("DB_CONFIG")) {
        return Vec::new();
    }
    let Ok(config) = Config::read_with(vfs.as_ref(), target) else {
        return Vec::new();
    };
    let layout = Layout::with_config(target, config);
    let mut out: Vec<PathBuf> = Vec::new();
    for d in layout.data_dirs.iter().chain([&layout.log_dir]) {
        let inside = d.strip_prefix(target).map(inside_rel).unwrap_or(false);
        if inside && !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

/// A non-empty relative path that stays inside its base.
fn inside_rel(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::OsVfs;

    fn holds(dir: &Path) -> (Holds, Option<PathBuf>) {
        let sv = survey(&OsVfs::shared(), dir, &[]).unwrap();
        (sv.holds, sv.foreign)
    }

    /// An environment with one database and a log, closed.
    fn environment(dir: &Path) -> u64 {
        let env = crate::Env::open(dir, crate::EnvOptions::create()).unwrap();
        let mut t = env.begin().unwrap();
        t.create_db("a.db", None).unwrap();
        t.commit().unwrap();
        env.close().unwrap();
        crate::wal::LogCursor::open(OsVfs::shared(), dir)
            .unwrap()
            .env_id()
            .unwrap()
    }

    #[test]
    fn every_state_of_a_target_is_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        assert!(matches!(holds(&t).0, Holds::Missing));
        std::fs::create_dir(&t).unwrap();
        assert!(matches!(holds(&t).0, Holds::Empty));
        // What an interrupted run leaves is nobody's environment.
        std::fs::write(t.join(LOCK_FILE), b"123").unwrap();
        std::fs::write(t.join(".tmp.a.db.99"), b"half").unwrap();
        std::fs::create_dir(staging(&t)).unwrap();
        std::fs::write(staging(&t).join("a.db"), b"half").unwrap();
        let (h, foreign) = holds(&t);
        assert!(matches!(h, Holds::Empty) && foreign.is_none(), "{h:?}");
        // An environment without a manifest, live or not.
        let id = environment(&t);
        let (h, _) = holds(&t);
        let Holds::Environment(s) = h else {
            panic!("{h:?}")
        };
        assert_eq!((s.databases, s.logs.len(), s.owner), (1, 1, None));
        let lock = OwnerLock::acquire(&OsVfs::shared(), &t, Duration::from_secs(1)).unwrap();
        match holds(&t).0 {
            Holds::Environment(s) => {
                assert_eq!(s.owner, Some(std::process::id()));
                assert!(s.describe().contains("open by process"));
            }
            other => panic!("{other:?}"),
        }
        drop(lock);
        let e = check_full(&survey(&OsVfs::shared(), &t, &[]).unwrap(), &t, &t, id)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a backup") && e.contains("1 database file"),
            "{e}"
        );
        // With a manifest it is a backup, of this environment or another.
        let m = Manifest {
            env_id: id,
            ..Manifest::default()
        };
        m.write(&OsVfs::shared(), &t).unwrap();
        let sv = survey(&OsVfs::shared(), &t, &[]).unwrap();
        assert!(matches!(sv.holds, Holds::Backup(_)));
        check_full(&sv, &t, &t, id).unwrap();
        check_update(&sv, &t, &t, id).unwrap();
        let e = check_full(&sv, &t, &t, id ^ 1).unwrap_err().to_string();
        assert!(e.contains("another environment"), "{e}");
        // A file of no environment is named.
        std::fs::write(t.join("notes.txt"), b"mine").unwrap();
        let sv = survey(&OsVfs::shared(), &t, &[]).unwrap();
        assert_eq!(sv.foreign, Some(t.join("notes.txt")));
        assert!(check_full(&sv, &t, &t, id).is_err());
        check_update(&sv, &t, &t, id).unwrap();
        // A commit record: a move half done.
        CommitRecord {
            config: false,
            clean: Vec::new(),
        }
        .write(&OsVfs::shared(), &t)
        .unwrap();
        assert!(matches!(holds(&t).0, Holds::Moving));
    }
}
