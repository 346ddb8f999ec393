//! The region file `__db.001`: a small block of shared state that the owner
//! of an environment keeps current and other processes (the tools) read and,
//! for requests and backup leases, write. Layout of version 2
//! (little-endian, see man/db_format.5):
//!
//! ```text
//! offset size field
//!   0    4   magic "RGN1"
//!   4    4   version (2)
//!   8    4   owner pid (0: no live owner recorded)
//!  12    4   flags (bit 0: clean shutdown)
//!  16    8   environment id (same as in every log header)
//!  24    8   LSN of the last checkpoint record
//!  32    8   redo LSN of the last checkpoint
//!  40    8   time of the last checkpoint (unix seconds)
//!  48    8   checkpoints requested by other processes (counter)
//!  56    8   checkpoints done for those requests (counter)
//!  64    8   transactions committed since the owner opened
//!  72    8   end of log when last written (LSN)
//!  80    8   the last backup lease id handed out
//!  88    4   N, the number of lease slots that follow (8)
//!  92    2   commit wait: the mean time a synchronous commit waited for
//!            its log fsync over the owner's last 50 ms with commits,
//!            in units of 4 us (saturating; 0: none measured yet);
//!            written only while a lease is held (a copy is running)
//!  94    2   commit wait floor: the lowest of those means, rising 1% a
//!            sample so it follows a changed workload (same units)
//!  96  32*N  backup lease slots, each:
//!              +0  4  pid of the backup (0: free slot)
//!              +4  4  first log file it still needs
//!              +8  8  expiry (unix seconds)
//!             +16  8  lease id (unique in this region)
//!             +24  8  start time of that pid (clock ticks since boot; 0: unknown)
//! 96+32N 4   crc32 of every byte before it
//! ```
//!
//! Version 1 (100 bytes, one lease at offset 64) is still read; its lease
//! becomes the first slot, and the next write is version 2.
//!
//! Leases: every running hot backup holds one of its own, so two backups
//! at once never strip each other's protection; removing one matches its id
//! and never touches another's. A lease is void once its process is gone
//! (no such pid, a zombie, or a pid reused by a process started at another
//! time) or its expiry has passed; void leases are dropped when the next
//! one is taken. `db_archive -d` keeps every log file from the lowest live
//! lease's file on.
//!
//! Locking: every read-modify-write takes an exclusive `flock` on the file,
//! readers a shared one, so a tool posting a request and the owner recording
//! a checkpoint never lose each other's update. No wait is unbounded: a
//! process stopped (SIGSTOP) or hung while it holds the lock must not hang
//! anybody else. The owner never waits at all ([`OwnerRegion`]: an update
//! that finds the lock taken is kept and applied by a later one); a tool
//! waits up to [`LOCK_WAIT`] and then fails with one line naming the file.
//! The region is a cache of facts that can be rebuilt from the log: a
//! missing or damaged region is never an error for the tools, they read the
//! log instead. Only the leases cannot be rebuilt, so a tool that must honour
//! them ([`Region::while_leases_held`]) fails rather than guess when it cannot
//! read them.
//!
//! The file, its lock and its writes go through the environment's `Vfs`,
//! so the power-loss model treats the region as an ordinary file (it is
//! never fsynced: after a power loss it may be missing, old or torn, and
//! its CRC makes a torn one read as absent). Reading `/proc` (a lease
//! holder's start time, the lock holders named in an error) does not: those
//! are facts about processes, not files of the environment.

use crate::error::{Error, Result};
use crate::storage::codec::{crc32, get_u32, get_u64, put_u32, put_u64};
use crate::storage::vfs::{LockKind, OpenMode, SharedVfs, VFile};
use crate::types::Lsn;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const REGION_FILE: &str = "__db.001";
const MAGIC: u32 = 0x314e_4752; // "RGN1"
const VERSION: u32 = 2;
const FLAG_CLEAN: u32 = 1;
/// Lease slots a region written by this version holds.
pub const MAX_LEASES: usize = 8;
const HEADER: usize = 96;
const SLOT: usize = 32;
/// The size of a region written by this version.
pub const REGION_SIZE: usize = HEADER + MAX_LEASES * SLOT + 4;
/// Version 1: 100 bytes, one lease.
const V1_SIZE: usize = 100;
/// More slots than this in a file is damage, not a region.
const SLOTS_LIMIT: usize = 64;
/// How long a tool waits for the region's lock before it gives up. Its
/// holders keep it for microseconds; only a stopped or hung process keeps
/// it longer.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// One running hot backup's claim on the log: files from `first_log` on
/// stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupLease {
    pub pid: u32,
    pub first_log: u32,
    pub expires: u64,
    /// Unique in its region: what removing this lease matches.
    pub id: u64,
    /// When `pid` started (clock ticks after boot, `/proc/PID/stat` field
    /// 22), so that a reused pid does not keep a dead backup's lease; 0
    /// when unknown.
    pub pid_start: u64,
}

impl BackupLease {
    /// True while the backup that took it can still be running: its
    /// process exists (not a zombie, not a reused pid) and it has not
    /// expired.
    pub fn is_live(&self, now: u64) -> bool {
        if self.pid == 0 || self.expires < now {
            return false;
        }
        match process_info(self.pid) {
            Some((state, start)) => {
                state != 'Z' && state != 'X' && (self.pid_start == 0 || self.pid_start == start)
            }
            None => false,
        }
    }
}

/// State letter and start time of a process, from `/proc/PID/stat` (read
/// with `std::fs`: a fact about a process, not a file of the environment).
fn process_info(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: the fields after it follow the
    // last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; field 22 is the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether the process `pid` that started at `start` (0: any) still runs
/// on this host (a zombie or a reused pid does not).
pub fn process_running(pid: u32, start: u64) -> bool {
    match process_info(pid) {
        Some((state, s)) => state != 'Z' && state != 'X' && (start == 0 || start == s),
        None => false,
    }
}

/// The start time of this process, for its leases.
pub fn own_start_time() -> u64 {
    process_info(std::process::id())
        .map(|(_, s)| s)
        .unwrap_or(0)
}

/// The commit wait the owner publishes (offsets 92 and 94), in units of
/// [`CommitWaitSample::UNIT_US`] microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitWaitSample {
    /// The mean over the owner's last interval with synchronous commits.
    pub recent: u16,
    /// The lowest mean seen, slowly rising: what the commits need alone.
    pub floor: u16,
}

impl CommitWaitSample {
    pub const UNIT_US: u64 = 4;

    /// `us` microseconds in the region's units, saturating.
    pub fn units(us: u64) -> u16 {
        u16::try_from(us.div_ceil(Self::UNIT_US)).unwrap_or(u16::MAX)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionState {
    pub owner_pid: u32,
    pub clean_shutdown: bool,
    pub env_id: u64,
    pub last_ckp: Lsn,
    pub ckp_redo: Lsn,
    pub ckp_time: u64,
    pub ckp_requested: u64,
    pub ckp_done: u64,
    pub commits: u64,
    pub log_end: Lsn,
    /// The last lease id handed out.
    pub last_lease_id: u64,
    /// What the owner's synchronous commits felt lately: backups pace
    /// themselves by it (ops/pacing.rs, engine/commit_wait.rs).
    pub commit_wait: CommitWaitSample,
    /// Every lease recorded, void ones included until the next
    /// [`RegionState::add_lease`] drops them.
    pub leases: Vec<BackupLease>,
}

impl RegionState {
    /// The leases that still protect something.
    pub fn live_leases(&self, now: u64) -> Vec<BackupLease> {
        self.leases
            .iter()
            .filter(|l| l.is_live(now))
            .copied()
            .collect()
    }

    /// The live lease with the lowest first log file: no log file from
    /// there on may be removed.
    pub fn lowest_live_lease(&self, now: u64) -> Option<BackupLease> {
        self.live_leases(now)
            .into_iter()
            .min_by_key(|l| (l.first_log, l.id))
    }

    /// Records a new lease and returns it, after dropping the void ones;
    /// `None` when every slot holds a live lease.
    pub fn add_lease(
        &mut self,
        pid: u32,
        pid_start: u64,
        first_log: u32,
        expires: u64,
        now: u64,
    ) -> Option<BackupLease> {
        self.leases.retain(|l| l.is_live(now));
        if self.leases.len() >= MAX_LEASES {
            return None;
        }
        self.last_lease_id += 1;
        let lease = BackupLease {
            pid,
            first_log,
            expires,
            id: self.last_lease_id,
            pid_start,
        };
        self.leases.push(lease);
        Some(lease)
    }

    /// Moves the expiry of lease `id` to `expires`; false when the lease
    /// is gone (void and dropped by someone else).
    pub fn renew_lease(&mut self, id: u64, expires: u64) -> bool {
        match self.leases.iter_mut().find(|l| l.id == id) {
            Some(l) => {
                l.expires = l.expires.max(expires);
                true
            }
            None => false,
        }
    }

    /// Moves the first log file lease `id` keeps forward to `first_log`
    /// (never back: a file it let go may be gone) and its expiry to
    /// `expires`; false when the lease is gone. A replication master
    /// holds one lease for as long as it runs and moves it as it ships.
    pub fn advance_lease(&mut self, id: u64, first_log: u32, expires: u64) -> bool {
        match self.leases.iter_mut().find(|l| l.id == id) {
            Some(l) => {
                l.first_log = l.first_log.max(first_log);
                l.expires = l.expires.max(expires);
                true
            }
            None => false,
        }
    }

    /// Removes the lease `id` (and only it).
    pub fn remove_lease(&mut self, id: u64) {
        self.leases.retain(|l| l.id != id);
    }

    fn encode(&self) -> Vec<u8> {
        let slots = self.leases.len().max(MAX_LEASES);
        let mut b = vec![0u8; HEADER + slots * SLOT + 4];
        put_u32(&mut b, 0, MAGIC);
        put_u32(&mut b, 4, VERSION);
        put_u32(&mut b, 8, self.owner_pid);
        put_u32(&mut b, 12, if self.clean_shutdown { FLAG_CLEAN } else { 0 });
        put_u64(&mut b, 16, self.env_id);
        put_u64(&mut b, 24, self.last_ckp.to_u64());
        put_u64(&mut b, 32, self.ckp_redo.to_u64());
        put_u64(&mut b, 40, self.ckp_time);
        put_u64(&mut b, 48, self.ckp_requested);
        put_u64(&mut b, 56, self.ckp_done);
        put_u64(&mut b, 64, self.commits);
        put_u64(&mut b, 72, self.log_end.to_u64());
        put_u64(&mut b, 80, self.last_lease_id);
        put_u32(&mut b, 88, slots as u32);
        b[92..94].copy_from_slice(&self.commit_wait.recent.to_le_bytes());
        b[94..96].copy_from_slice(&self.commit_wait.floor.to_le_bytes());
        for (i, l) in self.leases.iter().enumerate() {
            let at = HEADER + i * SLOT;
            put_u32(&mut b, at, l.pid);
            put_u32(&mut b, at + 4, l.first_log);
            put_u64(&mut b, at + 8, l.expires);
            put_u64(&mut b, at + 16, l.id);
            put_u64(&mut b, at + 24, l.pid_start);
        }
        let end = b.len() - 4;
        let c = crc32(&b[..end]);
        put_u32(&mut b, end, c);
        b
    }

    fn decode(b: &[u8]) -> Option<RegionState> {
        if b.len() < 8 || get_u32(b, 0) != MAGIC {
            return None;
        }
        match get_u32(b, 4) {
            1 => RegionState::decode_v1(b),
            VERSION => RegionState::decode_v2(b),
            _ => None,
        }
    }

    fn decode_v2(b: &[u8]) -> Option<RegionState> {
        if b.len() < HEADER + 4 {
            return None;
        }
        let slots = get_u32(b, 88) as usize;
        let end = HEADER + slots.min(SLOTS_LIMIT + 1) * SLOT;
        if slots > SLOTS_LIMIT || b.len() < end + 4 || get_u32(b, end) != crc32(&b[..end]) {
            return None;
        }
        let leases = (0..slots)
            .map(|i| HEADER + i * SLOT)
            .map(|at| BackupLease {
                pid: get_u32(b, at),
                first_log: get_u32(b, at + 4),
                expires: get_u64(b, at + 8),
                id: get_u64(b, at + 16),
                pid_start: get_u64(b, at + 24),
            })
            .filter(|l| l.pid != 0)
            .collect();
        Some(RegionState {
            owner_pid: get_u32(b, 8),
            clean_shutdown: get_u32(b, 12) & FLAG_CLEAN != 0,
            env_id: get_u64(b, 16),
            last_ckp: Lsn::from_u64(get_u64(b, 24)),
            ckp_redo: Lsn::from_u64(get_u64(b, 32)),
            ckp_time: get_u64(b, 40),
            ckp_requested: get_u64(b, 48),
            ckp_done: get_u64(b, 56),
            commits: get_u64(b, 64),
            log_end: Lsn::from_u64(get_u64(b, 72)),
            last_lease_id: get_u64(b, 80),
            commit_wait: CommitWaitSample {
                recent: u16::from_le_bytes([b[92], b[93]]),
                floor: u16::from_le_bytes([b[94], b[95]]),
            },
            leases,
        })
    }

    /// Version 1: the same facts, another order, and one lease slot (at
    /// 64: pid, first log file, expiry) whose holder is trusted by pid
    /// alone.
    fn decode_v1(b: &[u8]) -> Option<RegionState> {
        if b.len() < V1_SIZE || get_u32(b, 96) != crc32(&b[..96]) {
            return None;
        }
        let old = BackupLease {
            pid: get_u32(b, 64),
            first_log: get_u32(b, 68),
            expires: get_u64(b, 72),
            id: 0,
            pid_start: 0,
        };
        Some(RegionState {
            owner_pid: get_u32(b, 8),
            clean_shutdown: get_u32(b, 12) & FLAG_CLEAN != 0,
            env_id: get_u64(b, 16),
            last_ckp: Lsn::from_u64(get_u64(b, 24)),
            ckp_redo: Lsn::from_u64(get_u64(b, 32)),
            ckp_time: get_u64(b, 40),
            ckp_requested: get_u64(b, 48),
            ckp_done: get_u64(b, 56),
            commits: get_u64(b, 80),
            log_end: Lsn::from_u64(get_u64(b, 88)),
            last_lease_id: 0,
            commit_wait: CommitWaitSample::default(),
            leases: if old.pid != 0 { vec![old] } else { Vec::new() },
        })
    }
}

/// Which lock a caller wants and how long it may wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Give up at once when another process holds it.
    Never,
    /// Up to this long.
    Upto(Duration),
}

/// A handle on `home/__db.001`.
#[derive(Clone)]
pub struct Region {
    vfs: SharedVfs,
    path: PathBuf,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("path", &self.path).finish()
    }
}

impl Region {
    pub fn at(vfs: &SharedVfs, home: &Path) -> Region {
        Region {
            vfs: vfs.clone(),
            path: home.join(REGION_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current state, or `None` when there is no valid region file or
    /// its lock stayed taken for [`LOCK_WAIT`]. Never an error: the region
    /// is only a cache of what the log says.
    pub fn read(&self) -> Option<RegionState> {
        self.read_waiting(Wait::Upto(LOCK_WAIT)).ok().flatten()
    }

    /// Like [`Region::read`] without waiting: `None` also when another
    /// process holds the lock right now (the owner's way).
    pub fn try_read(&self) -> Option<RegionState> {
        self.read_waiting(Wait::Never).ok().flatten()
    }

    /// Runs `f` on the region's state (`None`: no valid region) while
    /// holding its lock shared, waiting for it up to [`LOCK_WAIT`]: no
    /// lease can be added until `f` returns. `db_archive -d` removes logs
    /// inside it, so a lease granted after it read the leases cannot see a
    /// file it protects removed after all.
    pub fn while_leases_held<T>(
        &self,
        f: impl FnOnce(Option<RegionState>) -> Result<T>,
    ) -> Result<T> {
        let file = match self.vfs.open(&self.path, OpenMode::Read) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return f(None),
            Err(e) => return Err(e),
        };
        let wait = Wait::Upto(LOCK_WAIT);
        if !self.lock(file.as_ref(), LockKind::Shared, wait)? {
            return Err(self.busy(wait));
        }
        // A region that cannot be read is an error, never "no leases".
        let out = match read_all(file.as_ref()) {
            Ok(bytes) => f(RegionState::decode(&bytes)),
            Err(e) => Err(e),
        };
        let _ = file.unlock();
        out
    }

    fn read_waiting(&self, wait: Wait) -> Result<Option<RegionState>> {
        let f = match self.vfs.open(&self.path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if !self.lock(f.as_ref(), LockKind::Shared, wait)? {
            return Err(self.busy(wait));
        }
        let res = read_all(f.as_ref());
        let _ = f.unlock();
        Ok(RegionState::decode(&res?))
    }

    /// Read-modify-write under an exclusive lock, waiting for it up to
    /// [`LOCK_WAIT`] (then an error naming the file). A missing or invalid
    /// region starts from `RegionState::default()`; only the owner creates
    /// the file (`create`), other processes update an existing one.
    pub fn update<T>(&self, create: bool, f: impl FnOnce(&mut RegionState) -> T) -> Result<T> {
        let wait = Wait::Upto(LOCK_WAIT);
        self.modify(create, wait, f)?.ok_or_else(|| self.busy(wait))
    }

    /// Like [`Region::update`] without waiting: `Ok(None)`, and `f` not
    /// called, when another process holds the lock right now.
    pub fn try_update<T>(
        &self,
        create: bool,
        f: impl FnOnce(&mut RegionState) -> T,
    ) -> Result<Option<T>> {
        self.modify(create, Wait::Never, f)
    }

    fn modify<T>(
        &self,
        create: bool,
        wait: Wait,
        f: impl FnOnce(&mut RegionState) -> T,
    ) -> Result<Option<T>> {
        let mode = if create {
            OpenMode::Create(0o600)
        } else {
            OpenMode::ReadWrite
        };
        let file = self.vfs.open(&self.path, mode)?;
        if !self.lock(file.as_ref(), LockKind::Exclusive, wait)? {
            return Ok(None);
        }
        let res = self.rewrite(file.as_ref(), f);
        let _ = file.unlock();
        res.map(Some)
    }

    /// The read-modify-write itself, under the lock: an unreadable or
    /// invalid region starts from the default state.
    fn rewrite<T>(&self, file: &dyn VFile, f: impl FnOnce(&mut RegionState) -> T) -> Result<T> {
        let old = read_all(file);
        let old_len = old.as_ref().map(|b| b.len()).unwrap_or(0);
        let mut st = old
            .ok()
            .and_then(|b| RegionState::decode(&b))
            .unwrap_or_default();
        let out = f(&mut st);
        let enc = st.encode();
        file.write_at(&enc, 0)?;
        if old_len > enc.len() {
            file.set_len(enc.len() as u64)?;
        }
        Ok(out)
    }

    /// Takes the lock on `f`; `false` when it stayed taken for the wait.
    fn lock(&self, f: &dyn VFile, kind: LockKind, wait: Wait) -> Result<bool> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if f.try_lock(kind)? {
                return Ok(true);
            }
            let left = match wait {
                Wait::Never => return Ok(false),
                Wait::Upto(d) => d.saturating_sub(start.elapsed()),
            };
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// The error of a lock that stayed taken.
    fn busy(&self, wait: Wait) -> Error {
        let secs = match wait {
            Wait::Upto(d) => d.as_secs(),
            Wait::Never => 0,
        };
        let ino = self.vfs.metadata(&self.path).map(|m| m.ino).ok();
        let by = match ino.map(lock_holders).unwrap_or_default().as_slice() {
            [] => String::from("another process"),
            pids => format!(
                "pid {}",
                pids.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", pid ")
            ),
        };
        Error::io(
            &self.path,
            "lock",
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("held by {by} for more than {secs} s (a stopped or hung process?)"),
            ),
        )
    }
}

/// Every byte of `file`.
fn read_all(file: &dyn VFile) -> Result<Vec<u8>> {
    let len = usize::try_from(file.len()?).unwrap_or(usize::MAX);
    let mut b = vec![0u8; len.min(REGION_SIZE * 16)];
    let n = file.read_at(&mut b, 0)?;
    b.truncate(n);
    Ok(b)
}

/// The pids holding a `flock` on inode `ino`, from `/proc/locks` (empty
/// when that cannot be read). `/proc` is read with `std::fs`: it is about
/// processes, not a file of the environment.
fn lock_holders(ino: u64) -> Vec<u32> {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF" (a blocked
    // waiter's line has "->" after the number).
    let mut pids: Vec<u32> = locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
            (f.get(1) == Some(&"FLOCK") && inode == ino)
                .then(|| f.get(4)?.parse().ok())
                .flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// One region update of the owner, kept until it can be applied.
type Pending = Box<dyn FnOnce(&mut RegionState) + Send>;

/// The owner's side of the region: it never waits for the lock, so a tool
/// stopped while holding it cannot hang a checkpoint or a commit. An
/// update that finds the lock taken is kept, and applied (with every other
/// kept one, in order) by the next update or [`OwnerRegion::flush`] that
/// gets it. The owner's updates set facts to their latest values, so
/// applying them late gives the same region as applying them on time.
pub struct OwnerRegion {
    region: Region,
    pending: Mutex<Vec<Pending>>,
}

impl std::fmt::Debug for OwnerRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerRegion")
            .field("path", &self.region.path)
            .finish()
    }
}

impl OwnerRegion {
    pub fn new(region: Region) -> OwnerRegion {
        OwnerRegion {
            region,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Applies `f` now if the lock is free, else with the next update
    /// that finds it free. Creates the file if needed.
    pub fn publish(&self, f: impl FnOnce(&mut RegionState) + Send + 'static) -> Result<()> {
        let mut pending = super::lock(&self.pending);
        pending.push(Box::new(f));
        self.apply(&mut pending).map(|_| ())
    }

    /// Applies the kept updates if the lock is free; `true` when none is
    /// left.
    pub fn flush(&self) -> Result<bool> {
        let mut pending = super::lock(&self.pending);
        if pending.is_empty() {
            return Ok(true);
        }
        self.apply(&mut pending)
    }

    fn apply(&self, pending: &mut Vec<Pending>) -> Result<bool> {
        let done = self.region.try_update(true, |s| {
            for f in pending.drain(..) {
                f(s);
            }
        })?;
        Ok(done.is_some())
    }

    /// The state, or `None` when it is not there, not valid, or locked by
    /// another process right now.
    pub fn try_read(&self) -> Option<RegionState> {
        self.region.try_read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::OsVfs;
    use fs2::FileExt;
    use std::fs;

    fn lease(pid: u32, first_log: u32) -> BackupLease {
        BackupLease {
            pid,
            first_log,
            expires: crate::types::now_secs() + 60,
            id: 0,
            pid_start: 0,
        }
    }

    #[test]
    fn region_round_trips_and_damage_reads_as_absent() {
        let d = tempfile::tempdir().unwrap();
        let r = Region::at(&OsVfs::shared(), d.path());
        assert_eq!(r.read(), None);
        r.update(true, |s| {
            s.owner_pid = 42;
            s.last_ckp = Lsn::new(3, 40);
            s.leases.push(lease(7, 2));
            s.commit_wait = CommitWaitSample {
                recent: 300,
                floor: 0xfe01,
            };
        })
        .unwrap();
        let s = r.read().unwrap();
        assert_eq!(
            (s.owner_pid, s.last_ckp, s.leases[0].first_log),
            (42, Lsn::new(3, 40), 2)
        );
        assert_eq!((s.commit_wait.recent, s.commit_wait.floor), (300, 0xfe01));
        assert_eq!(CommitWaitSample::units(1 << 40), u16::MAX, "saturates");
        assert_eq!(fs::metadata(r.path()).unwrap().len(), REGION_SIZE as u64);
        let n = r.update(false, |s| {
            s.ckp_requested += 1;
            s.ckp_requested
        });
        assert_eq!(n.unwrap(), 1);
        let mut raw = fs::read(r.path()).unwrap();
        raw[30] ^= 1;
        fs::write(r.path(), raw).unwrap();
        assert_eq!(r.read(), None);
    }

    /// A region written by version 1 (one lease at offset 64) is read, its
    /// lease kept as the first slot, and rewritten as version 2.
    #[test]
    fn a_version_1_region_is_read_and_its_lease_kept() {
        let d = tempfile::tempdir().unwrap();
        let r = Region::at(&OsVfs::shared(), d.path());
        let me = std::process::id();
        let mut b = [0u8; V1_SIZE];
        put_u32(&mut b, 0, MAGIC);
        put_u32(&mut b, 4, 1);
        put_u32(&mut b, 8, 99);
        put_u64(&mut b, 16, 0xabc);
        put_u64(&mut b, 32, Lsn::new(4, 40).to_u64());
        put_u32(&mut b, 64, me);
        put_u32(&mut b, 68, 3);
        put_u64(&mut b, 72, crate::types::now_secs() + 60);
        put_u64(&mut b, 80, 17);
        put_u64(&mut b, 88, Lsn::new(5, 100).to_u64());
        let c = crc32(&b[..96]);
        put_u32(&mut b, 96, c);
        fs::write(r.path(), b).unwrap();
        let s = r.read().unwrap();
        assert_eq!(
            (s.owner_pid, s.env_id, s.ckp_redo, s.commits, s.log_end),
            (99, 0xabc, Lsn::new(4, 40), 17, Lsn::new(5, 100))
        );
        let now = crate::types::now_secs();
        assert_eq!(
            s.lowest_live_lease(now).map(|l| (l.pid, l.first_log)),
            Some((me, 3))
        );
        let id = r
            .update(false, |s| {
                s.add_lease(me, own_start_time(), 5, now + 60, now)
            })
            .unwrap()
            .unwrap()
            .id;
        let s = r.read().unwrap();
        assert_eq!(
            s.live_leases(now).len(),
            2,
            "the old lease is kept beside the new"
        );
        assert_ne!(id, 0);
        assert_eq!(fs::metadata(r.path()).unwrap().len(), REGION_SIZE as u64);
    }

    #[test]
    fn void_leases_are_dropped_and_a_full_table_refuses() {
        let now = crate::types::now_secs();
        let me = std::process::id();
        let mut s = RegionState::default();
        // Dead: pid 0 is never a lease, an expired one, a pid whose start
        // time differs (reused), a pid that does not exist.
        s.leases.push(BackupLease {
            expires: now - 1,
            ..lease(me, 1)
        });
        s.leases.push(BackupLease {
            pid_start: own_start_time() + 1,
            ..lease(me, 1)
        });
        s.leases.push(lease(u32::MAX - 1, 1));
        assert_eq!(s.lowest_live_lease(now), None);
        let start = own_start_time();
        assert_ne!(start, 0, "/proc gives this process's start time");
        let mut ids = Vec::new();
        for i in 0..MAX_LEASES as u32 {
            ids.push(s.add_lease(me, start, 10 - i, now + 60, now).unwrap().id);
        }
        assert_eq!(s.leases.len(), MAX_LEASES, "the void ones went");
        assert!(s.add_lease(me, start, 1, now + 60, now).is_none());
        assert_eq!(s.lowest_live_lease(now).unwrap().first_log, 10 - 7);
        assert!(s.advance_lease(ids[7], 2, now + 60), "never moved back");
        assert_eq!(s.lowest_live_lease(now).unwrap().first_log, 10 - 7);
        assert!(s.advance_lease(ids[7], 20, now + 60));
        assert_eq!(s.lowest_live_lease(now).unwrap().first_log, 10 - 6);
        assert!(!s.advance_lease(999, 20, now));
        s.remove_lease(ids[7]);
        assert_eq!(s.lowest_live_lease(now).unwrap().first_log, 10 - 6);
        assert_eq!(s.leases.len(), MAX_LEASES - 1);
    }

    /// A lock held elsewhere: tools give up after the wait with an error
    /// naming the file; the owner's updates never wait, are kept, and land
    /// once the lock is free.
    #[test]
    fn a_held_lock_never_blocks_the_owner_and_times_out_for_tools() {
        let d = tempfile::tempdir().unwrap();
        let r = Region::at(&OsVfs::shared(), d.path());
        r.update(true, |s| s.owner_pid = 1).unwrap();
        let holder = fs::File::open(r.path()).unwrap();
        holder.lock_exclusive().unwrap();
        let e = r.update(false, |s| s.ckp_requested += 1).unwrap_err();
        assert!(e.to_string().contains(REGION_FILE), "{e}");
        assert!(r.while_leases_held(|_| Ok(())).is_err());
        assert_eq!(r.read(), None);
        let owner = OwnerRegion::new(r.clone());
        owner.publish(|s| s.owner_pid = 2).unwrap();
        owner.publish(|s| s.commits = 5).unwrap();
        assert!(!owner.flush().unwrap());
        FileExt::unlock(&holder).unwrap();
        assert!(owner.flush().unwrap());
        let s = r.read().unwrap();
        assert_eq!((s.owner_pid, s.commits), (2, 5));
    }
}
