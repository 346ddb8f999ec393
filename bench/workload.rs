//! The data the benchmarks work on, and the environments built from it,
//! ours and Berkeley DB's with the same records.
//!
//! Records of an environment: keys `k%010d` (the writer's key format, so
//! the writer continues after them) with 1000-byte printable values; the
//! "1,000,000 records" load uses `k%08d` keys with 16-byte values, as the
//! issue's figure does.

use crate::measure::{self, Sample};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes of one environment record's value.
pub const VALUE_LEN: usize = 1000;

/// Where our binaries are.
#[derive(Clone)]
pub struct Ours {
    pub bin: PathBuf,
}

impl Ours {
    pub fn tool(&self, name: &str) -> Command {
        Command::new(self.bin.join(name))
    }

    /// The load generator (tests/writer.rs).
    pub fn writer(&self) -> Command {
        Command::new(self.bin.join("examples").join("writer"))
    }
}

fn io(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

/// The printable 1000-byte value of environment record `i`.
fn env_value(i: u64, buf: &mut Vec<u8>) {
    buf.clear();
    let start = (i % 26) as u8;
    buf.extend((0..VALUE_LEN - 6).map(|n| b'a' + (start + (n % 26) as u8) % 26));
    buf.extend_from_slice(format!("{:06}", i % 1_000_000).as_bytes());
}

/// Writes a `db_load -T` input of records `first..first+count`.
pub fn write_text_dump(path: &Path, first: u64, count: u64) -> Result<(), String> {
    let f = File::create(path).map_err(|e| io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut v = Vec::with_capacity(VALUE_LEN);
    for i in first..first + count {
        env_value(i, &mut v);
        writeln!(w, "k{i:010}").map_err(|e| io(path, e))?;
        w.write_all(&v).map_err(|e| io(path, e))?;
        w.write_all(b"\n").map_err(|e| io(path, e))?;
    }
    w.flush().map_err(|e| io(path, e))
}

/// Writes a `db_dump` format (bytevalue) dump of `count` records with keys
/// `k%08d` and 16-byte values, readable by our `db_load` and `db5.3_load`.
pub fn write_hex_dump(path: &Path, count: u64) -> Result<(), String> {
    write_hex_dump_in(path, count, 1)
}

/// The same records, in the order `i * stride mod count` (a stride prime
/// to `count` visits each once): shuffled input for db_load.
pub fn write_shuffled_hex_dump(path: &Path, count: u64) -> Result<(), String> {
    let stride = (7919..).find(|s| gcd(*s, count) == 1).unwrap_or(1);
    write_hex_dump_in(path, count, stride)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn write_hex_dump_in(path: &Path, count: u64, stride: u64) -> Result<(), String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let f = File::create(path).map_err(|e| io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let line = |w: &mut BufWriter<File>, bytes: &[u8]| -> std::io::Result<()> {
        let mut out = Vec::with_capacity(2 + 2 * bytes.len());
        out.push(b' ');
        for b in bytes {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
        out.push(b'\n');
        w.write_all(&out)
    };
    let r = (|| -> std::io::Result<()> {
        w.write_all(b"VERSION=3\nformat=bytevalue\ntype=btree\ndb_pagesize=4096\nHEADER=END\n")?;
        for n in 0..count {
            let i = n * stride % count;
            line(&mut w, format!("k{i:08}").as_bytes())?;
            line(&mut w, format!("value-{i:010}").as_bytes())?;
        }
        w.write_all(b"DATA=END\n")?;
        w.flush()
    })();
    r.map_err(|e| io(path, e))
}

/// Builds our environment at `home` with `records` environment records in
/// a.db (one `db_load`: sorted input into a new database is a bulk load
/// of bounded memory) and `last` = records in b.db, so the writer
/// continues after them; then a checkpoint and `db_archive -d`, as an
/// operator's environment at rest would look.
pub fn build_ours(ours: &Ours, home: &Path, records: u64, scratch: &Path) -> Result<(), String> {
    std::fs::create_dir_all(home).map_err(|e| io(home, e))?;
    let dump = scratch.join("env.txt");
    write_text_dump(&dump, 0, records)?;
    let load = |db: &str| {
        measure::time(
            ours.tool("db_load")
                .args(["-T", "-f"])
                .arg(&dump)
                .arg("-h")
                .arg(home)
                .arg(db),
        )
    };
    load("a.db")?;
    std::fs::write(&dump, format!("last\n{records}\n")).map_err(|e| io(&dump, e))?;
    load("b.db")?;
    let _ = std::fs::remove_file(&dump);
    measure::time(ours.tool("db_checkpoint").arg("-1").arg("-h").arg(home))?;
    measure::time(ours.tool("db_archive").arg("-d").arg("-h").arg(home))?;
    Ok(())
}

/// Total bytes of the log files (`log.*`) in `home`.
pub fn log_bytes(home: &Path) -> u64 {
    log_files(home)
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The log files of `home`.
pub fn log_files(home: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(home) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("log."))
        .map(|e| e.path())
        .collect()
}

/// Total bytes of every file under `dir` (what `du -b` would say).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs `writer` (a command that writes to `home` until killed) until
/// `done(home)` holds, then SIGKILLs it: a primary that keeps running, cut
/// at an arbitrary point. Gives up after `limit`.
pub fn run_until(
    mut writer: Command,
    home: &Path,
    limit: Duration,
    done: impl Fn(&Path) -> bool,
) -> Result<(), String> {
    let what = format!("{writer:?}");
    let mut child: Child = writer
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let start = Instant::now();
    let outcome = loop {
        if done(home) {
            break Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            break Err(format!("{what}: ended early ({st})"));
        }
        if start.elapsed() > limit {
            break Err(format!("{what}: still not done after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Grows the log of our environment `home` by at least `bytes` with the
/// writer in nosync mode, then kills it. Returns the bytes it grew by.
pub fn grow_ours(ours: &Ours, home: &Path, bytes: u64) -> Result<u64, String> {
    let base = log_bytes(home);
    let mut w = ours.writer();
    w.arg(home).arg("--nosync");
    run_until(w, home, Duration::from_secs(600), |h| {
        log_bytes(h) >= base + bytes
    })?;
    Ok(log_bytes(home).saturating_sub(base))
}

/// Copies the directory `from` to `to` with `cp -r` (our tools are not
/// what is measured here).
pub fn cp_r(from: &Path, to: &Path) -> Result<Sample, String> {
    measure::time(Command::new("cp").arg("-r").arg(from).arg(to))
}

/// Removes `dir` if it exists.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// `dir`, empty (the writer and the tools want an existing home).
pub fn fresh(dir: &Path) -> Result<(), String> {
    remove(dir);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))
}
