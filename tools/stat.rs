//! `db_stat`: database (`-d`), environment (`-e`), log (`-l`) and
//! transaction (`-t`) statistics as Berkeley DB 5.3 prints them, one
//! `value<TAB>label` line each, with its number formats (`31KB 256B`,
//! `1Mb`, `12M`). The figures come from `libcore::stat`, read-only: it works
//! beside a live owner and never creates a file. `-r` reports replication
//! (`db_replicate`) for a primary's home, a standby's home or a replica
//! store directory. The lock, cache, mutex and replication-manager forms
//! have no subsystem behind them here and say so.

use std::io::Write;
use std::path::PathBuf;

use libcore::printlog::ctime;
use libcore::stat::{self, DbStat, LogStat, TxnStat};
use libcore::Lsn;

use crate::cli::{Parsed, Usage};

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Db { file: String, fast: bool },
    Env,
    Log,
    Txn,
    Repl,
}

#[derive(Debug)]
pub struct Args {
    home: PathBuf,
    mode: Mode,
    /// An option this environment cannot honour: its message.
    unsupported: Option<String>,
}

/// Options that ask for a subsystem we do not have, with the reason.
const UNSUPPORTED: [(char, &str); 9] = [
    ('c', "no lock subsystem"),
    ('C', "no lock subsystem"),
    ('m', "the buffer cache is private to the owner process"),
    ('M', "the buffer cache is private to the owner process"),
    ('R', "no replication subsystem"),
    ('x', "no mutex subsystem"),
    ('X', "no mutex subsystem"),
    ('a', "no replication subsystem"),
    ('Z', "no statistics counters to reset"),
];

pub fn parse(p: Parsed) -> Result<Args, Usage> {
    let mut modes = Vec::new();
    if let Some(file) = p.text('d')? {
        let fast = p.flag('f');
        modes.push(Mode::Db {
            file: file.to_owned(),
            fast,
        });
    }
    if p.flag('e') || p.flag('E') {
        modes.push(Mode::Env);
    }
    if p.flag('l') || p.flag('L') {
        modes.push(Mode::Log);
    }
    if p.flag('t') {
        modes.push(Mode::Txn);
    }
    if p.flag('r') {
        modes.push(Mode::Repl);
    }
    let unsupported = UNSUPPORTED.iter().find(|(c, _)| p.flag(*c));
    let selectors = modes.len()
        + ['c', 'C', 'm', 'M', 'R', 'x', 'X']
            .iter()
            .filter(|&&c| p.flag(c))
            .count();
    if selectors > 1 {
        return Err(Usage::msg("illegal option combination"));
    }
    let unsupported = if p.flag('P') {
        Some("-P: encryption is not supported (environments are never encrypted)".to_owned())
    } else if let (Some(db), true) = (p.text('d')?, p.flag('s')) {
        Some(format!(
            "{db}: multiple databases specified but not supported by file"
        ))
    } else {
        unsupported.map(|(c, why)| format!("-{c}: not supported by this environment ({why})"))
    };
    let mode = match modes.pop() {
        Some(m) => m,
        None if unsupported.is_some() => Mode::Env,
        None => return Err(Usage::new()),
    };
    Ok(Args {
        home: p.home(),
        mode,
        unsupported,
    })
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(why) = args.unsupported {
        anyhow::bail!(why);
    }
    let mut lines = Vec::new();
    match &args.mode {
        Mode::Db { file, fast } => db_lines(&mut lines, &stat::db(&args.home, file, *fast)?),
        Mode::Log => log_lines(&mut lines, &stat::log(&args.home)?),
        Mode::Txn => txn_lines(&mut lines, &stat::txn(&args.home)?),
        Mode::Repl => repl_lines(&mut lines, &{
            let vfs = libcore::OsVfs::shared();
            libcore::replica::status::report(&vfs, &args.home, &|spec| {
                crate::store::open(&vfs, spec)
            })?
        }),
        Mode::Env => {
            let e = stat::env(&args.home)?;
            line(&mut lines, ctime(now()), "Local time");
            line(&mut lines, env!("CARGO_PKG_VERSION"), "Environment version");
            line(&mut lines, stat::DB_VERSION, "Btree version");
            line(&mut lines, e.log.version, "Log version");
            line(&mut lines, format!("{:#x}", e.env_id), "Environment ID");
            line(&mut lines, e.owner.unwrap_or(0), "Owner process ID");
            let clean = e.region.map(|r| yes_no(r.clean_shutdown));
            line(
                &mut lines,
                clean.unwrap_or("-"),
                "Last owner shut down cleanly",
            );
            line(&mut lines, bytes(e.region_size as u64), "Region size");
            line(
                &mut lines,
                count(e.databases.len() as u64),
                "Number of databases",
            );
            for name in &e.databases {
                line(&mut lines, name, "Database file");
            }
            lines.push(SEPARATOR.to_owned());
            log_lines(&mut lines, &e.log);
            lines.push(SEPARATOR.to_owned());
            txn_lines(&mut lines, &e.txn);
        }
    }
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// `-r`: the replication report, Berkeley DB's field names where they fit
/// (`Next LSN expected`), ours for the rest.
fn repl_lines(lines: &mut Vec<String>, r: &libcore::replica::status::Report) {
    let now_ms = now() * 1000;
    let role = match r.role {
        "master" => "Environment configured as a replication master",
        "client" => "Environment configured as a replication client",
        _ => "Replica store",
    };
    lines.push(role.to_owned());
    line(lines, &r.store, "Replica store");
    let lsn = |l: Option<Lsn>| l.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
    let m = r.master.as_ref();
    line(lines, lsn(m.map(|m| m.durable)), "Primary's durable LSN");
    line(
        lines,
        lsn(m.map(|m| m.shipped)),
        "Shipped LSN (end of the store's log)",
    );
    if let Some(c) = &r.client {
        line(lines, c.applied, "Next LSN expected");
        line(
            lines,
            lsn(r.consistent),
            "Consistent LSN (standby's recovery point)",
        );
    }
    let behind = match (&r.client, m) {
        (Some(c), Some(m)) => Some((r.consistent.unwrap_or(c.applied), m.durable)),
        (None, Some(m)) => Some((m.shipped, m.durable)),
        _ => None,
    };
    let lag_bytes = behind.map(|(a, b)| {
        libcore::replica::status::Report::distance(a, b, u64::from(stat::DEFAULT_LG_MAX))
    });
    line(
        lines,
        lag_bytes
            .map(|b| b.to_string())
            .unwrap_or_else(|| "-".into()),
        "Lag in bytes",
    );
    line(
        lines,
        format!("{:.3}", r.lag_secs(now_ms)),
        "Lag in seconds",
    );
    match r.newest_base {
        Some((n, created)) => {
            line(lines, n, "Newest base");
            line(lines, ctime(created), "Newest base time");
            line(
                lines,
                now().saturating_sub(created),
                "Newest base age in seconds",
            );
        }
        None => line(lines, "-", "Newest base"),
    }
    match r.epoch {
        Some((e, begins)) => {
            line(lines, e, "Epoch (the store's newest primary)");
            line(lines, begins, "Epoch began at LSN");
        }
        None => line(lines, "-", "Epoch (the store's newest primary)"),
    }
    if let Some(c) = &r.client {
        line(lines, c.epoch, "Epoch of the last segment applied");
    }
    let lease = r.lease.as_ref().map(|l| l.describe(now_ms));
    line(lines, lease.unwrap_or_else(|| "-".into()), "Lease held by");
    if let Some(m) = m {
        line(lines, m.pid, "Master process ID");
        line(lines, ctime(m.updated_ms / 1000), "Master status time");
        line(lines, yes_no(m.stopped), "Master stopped cleanly");
    }
    let error = r
        .store_error
        .clone()
        .or_else(|| {
            r.client
                .as_ref()
                .map(|c| c.last_error.clone())
                .filter(|e| !e.is_empty())
        })
        .or_else(|| m.map(|m| m.last_error.clone()).filter(|e| !e.is_empty()));
    line(lines, error.unwrap_or_else(|| "-".into()), "Last error");
    if let Some(c) = r.client.as_ref().filter(|c| c.digest_checked) {
        let what = if c.digest_equal { "equal" } else { "DIFFERENT" };
        line(
            lines,
            format!("{} {what}", c.digest_at),
            "Last digest comparison",
        );
    }
}

const SEPARATOR: &str = "=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=-=";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn line(lines: &mut Vec<String>, value: impl std::fmt::Display, label: &str) {
    lines.push(format!("{value}\t{label}"));
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// An LSN as `db_stat -t` prints it: `file/offset`.
fn slash(l: Lsn) -> String {
    format!("{}/{}", l.file, l.offset)
}

fn db_lines(lines: &mut Vec<String>, s: &DbStat) {
    let t = s.tree.clone().unwrap_or_default();
    let ps = u64::from(s.page_size);
    let data = if s.tree.is_some() { t.entries } else { s.nkeys };
    line(lines, ctime(now()), "Local time");
    line(lines, format!("{:#x}", s.magic), "Btree magic number");
    line(lines, s.version, "Btree version number");
    line(lines, "Little-endian", "Byte order");
    line(lines, "", "Flags");
    line(lines, s.page_size, "Underlying database page size");
    line(lines, t.levels, "Number of levels in the tree");
    line(lines, count(s.nkeys), "Number of unique keys in the tree");
    line(lines, count(data), "Number of data items in the tree");
    let kinds = [
        ("internal", t.internal_pages, t.internal_bytes),
        ("leaf", t.leaf_pages, t.leaf_bytes),
        ("duplicate", 0, 0),
        ("overflow", t.overflow_pages, t.overflow_bytes),
    ];
    for (kind, pages, used) in kinds {
        let total = pages * ps;
        let free = total.saturating_sub(used);
        line(lines, count(pages), &format!("Number of tree {kind} pages"));
        line(
            lines,
            count(free),
            &format!(
                "Number of bytes free in tree {kind} pages ({}% ff)",
                fill(used, total)
            ),
        );
    }
    line(lines, 0, "Number of empty pages");
    line(
        lines,
        count(t.free_pages),
        "Number of pages on the free list",
    );
}

fn log_lines(lines: &mut Vec<String>, s: &LogStat) {
    line(lines, format!("{:#x}", s.magic), "Log magic number");
    line(lines, s.version, "Log version number");
    let mode = if s.file_mode == 0 {
        "0".to_owned()
    } else {
        format!("0{:o}", s.file_mode)
    };
    line(lines, mode, "Log file mode");
    line(
        lines,
        log_size(u64::from(s.lg_max)),
        "Current log file size",
    );
    line(
        lines,
        bytes(s.bytes_since_ckp),
        "Log bytes written since last checkpoint",
    );
    line(lines, s.end.file, "Current log file number");
    line(lines, s.end.offset, "Current log file offset");
    line(lines, s.end.file, "On-disk log file number");
    line(lines, s.end.offset, "On-disk log file offset");
    line(lines, s.first_file, "First log file number");
    line(lines, count(s.files as u64), "Number of log files");
    line(lines, bytes(s.total_bytes), "Bytes in log files");
}

fn txn_lines(lines: &mut Vec<String>, s: &TxnStat) {
    let (lsn, time) = s.last_ckp.unwrap_or((Lsn::ZERO, 0));
    line(lines, slash(lsn), "File/offset for last checkpoint LSN");
    let time = if s.last_ckp.is_some() {
        ctime(time)
    } else {
        "0".to_owned()
    };
    line(lines, time, "Checkpoint timestamp");
    line(
        lines,
        slash(s.redo_lsn),
        "File/offset where recovery starts",
    );
    line(
        lines,
        format!("{:#x}", s.max_txn.0),
        "Last transaction ID allocated",
    );
    line(
        lines,
        count(s.region_commits.unwrap_or(0)),
        "Number of transactions committed",
    );
    line(
        lines,
        count(s.commits_since_ckp),
        "Number of transactions committed since last checkpoint",
    );
    let last = s.last_commit_time.map(ctime).unwrap_or_else(|| "0".into());
    line(lines, last, "Last commit timestamp");
    lines.push("Active transactions:".to_owned());
}

/// A count as Berkeley DB's `__db_dl` prints it: in millions (`12M`) from
/// ten million up.
pub fn count(n: u64) -> String {
    if n < 10_000_000 {
        n.to_string()
    } else {
        format!("{}M", n / 1_000_000)
    }
}

/// A byte size as `__db_dlbytes` prints it: `4MB 549KB 78B`, `31KB 256B`,
/// `1GB 5MB`, `0`.
pub fn bytes(n: u64) -> String {
    const MB: u64 = 1 << 20;
    const GB: u64 = 1 << 30;
    if n == 0 {
        return "0".to_owned();
    }
    let (g, m, k, b) = (n / GB, n % GB / MB, n % MB / 1024, n % 1024);
    let parts: Vec<String> = [(g, "GB"), (m, "MB"), (k, "KB"), (b, "B")]
        .iter()
        .filter(|(v, _)| *v > 0)
        .map(|(v, unit)| format!("{v}{unit}"))
        .collect();
    parts.join(" ")
}

/// The log file size as `db_stat -l` prints it: `10Mb`, `512Kb` or bytes.
pub fn log_size(n: u64) -> String {
    if n != 0 && n.is_multiple_of(1 << 20) {
        format!("{}Mb", n >> 20)
    } else if n != 0 && n.is_multiple_of(1024) {
        format!("{}Kb", n >> 10)
    } else {
        n.to_string()
    }
}

/// Berkeley DB's fill factor: the part of `total` bytes in use, in whole
/// percent, truncated; 0 for no pages.
pub fn fill(used: u64, total: u64) -> u64 {
    (used.min(total) * 100).checked_div(total).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_like_berkeley_db() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(78), "78B");
        assert_eq!(bytes(32 * 1024), "32KB");
        assert_eq!(bytes(31 * 1024 + 256), "31KB 256B");
        assert_eq!(bytes(4 * (1 << 20) + 549 * 1024 + 78), "4MB 549KB 78B");
        assert_eq!(bytes(280 * 1024), "280KB");
        assert_eq!(bytes((1 << 30) + 5 * (1 << 20)), "1GB 5MB");
        assert_eq!(bytes(1 << 20), "1MB");
        assert_eq!(count(0), "0");
        assert_eq!(count(9_999_999), "9999999");
        assert_eq!(count(10_000_000), "10M");
        assert_eq!(count(123_456_789), "123M");
        assert_eq!(log_size(1 << 20), "1Mb");
        assert_eq!(log_size(10 << 20), "10Mb");
        assert_eq!(log_size(512 * 1024), "512Kb");
        assert_eq!(log_size(2_000_000), "2000000");
        assert_eq!(fill(249_690, 266_240), 93);
        assert_eq!(fill(0, 0), 0);
    }
}
