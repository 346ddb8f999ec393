//! Section 9: `db_replicate` with an S3 store, against a local SeaweedFS
//! server (the `s3store` test server; `weed` must be installed):
//!
//! - the standby's lag (`db_stat -r`'s `Lag in seconds`, sampled every
//!   100 ms on the standby) while a writer commits as fast as it can (at
//!   least the 1,000 commits/s of the target on a disk that allows it; the
//!   rate reached is in the row): p99 <= 1 s;
//! - a restore of the environment (`db_replicate -R`) from the S3 store
//!   and from a directory store holding the same, and how much of it is
//!   fetching the base's files (the rest is the log and its redo);
//! - the primary's commits/s with an S3 master running, over without
//!   (the server running in both): with the server as the tests run it
//!   (data on the primary's disk), and standing in for a store on another
//!   machine (data on a memory file system, nice 19: >= 0.95), with the
//!   processor time the master and the server took.

use crate::measure::{self, median};
use crate::report::Goal;
use crate::workload::{self, remove};
use crate::{parse_rate, say, Bench, R};
use libcore::replica::{ReplicaStore, StoreSpec};
use s3store::testsupport::SeaweedServer;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the S3 server of the primary-commits row keeps its data.
#[derive(Clone, Copy)]
enum StoreDisk {
    /// On the primary's disk (this machine's temporary directory): the
    /// server's writes compete with the primary's fsyncs.
    Primary,
    /// On a memory file system and at nice 19: standing in for a store on
    /// another machine (no writes to the primary's disk, only processor
    /// time the primary leaves idle).
    Memory,
}

/// Processor seconds (user and system, all threads) process `pid` used so
/// far; 0 when unknown. /proc's clock ticks are 1/100 s on Linux.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in ")".
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15, the 12th and 13th after ")".
    (tick(11) + tick(12)) / 100.0
}

/// The AWS variables that point a tool at the server.
fn aws(cmd: &mut Command, srv: &SeaweedServer) {
    let (k, s) = srv.keys();
    cmd.env("AWS_ACCESS_KEY_ID", k)
        .env("AWS_SECRET_ACCESS_KEY", s)
        .env("AWS_ENDPOINT_URL", srv.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
}

fn set_store(home: &Path, store: &str) -> R<()> {
    std::fs::write(home.join("DB_CONFIG"), format!("repl_store {store}\n"))
        .map_err(|e| format!("{}: {e}", home.display()))
}

fn spawn(b: &Bench, srv: &SeaweedServer, home: &Path, args: &[&str]) -> R<Child> {
    let mut c = b.ours.tool("db_replicate");
    aws(&mut c, srv);
    c.args(args)
        .arg("-h")
        .arg(home)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("db_replicate: {e}"))
}

fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

/// The `db_stat -r` value labelled `label` for `home`.
fn stat_r(b: &Bench, srv: &SeaweedServer, home: &Path, label: &str) -> R<Option<String>> {
    let mut c = b.ours.tool("db_stat");
    aws(&mut c, srv);
    let out = measure::run(c.arg("-r").arg("-h").arg(home), true)?;
    Ok(out
        .stdout
        .lines()
        .find_map(|l| l.strip_suffix(&format!("\t{label}")).map(str::to_owned)))
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> R<bool>) -> R<()> {
    let start = Instant::now();
    while !f()? {
        if start.elapsed() > limit {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

impl Bench {
    /// Section 9 (see the module documentation).
    pub fn s3(&mut self) -> R<()> {
        say("10. db_replicate on S3 (a local SeaweedFS): lag, restore, primary's commits/s");
        let srv = SeaweedServer::start().map_err(|e| format!("SeaweedFS: {e}"))?;
        let env = self.dir("small");
        let primary = self.dir("s3-primary");
        remove(&primary);
        workload::cp_r(&env, &primary)?;
        let url = format!("s3://{}/bench", s3store::testsupport::BUCKET);
        set_store(&primary, &url)?;
        self.s3_commits(&srv, &primary, StoreDisk::Primary)?;
        self.s3_lag(&srv, &primary, &url)?;
        self.s3_restore(&srv, &primary, &url)?;
        drop(srv);
        // A stand-in for a store off the primary's machine: its server
        // writes to memory, not the primary's disk, and runs at nice 19,
        // on the processor time the primary leaves (this machine has two
        // cores; the server spends about 30 ns of processor a log byte).
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let off = SeaweedServer::start_in(shm, 19).map_err(|e| format!("SeaweedFS: {e}"))?;
            self.s3_commits(&off, &primary, StoreDisk::Memory)?;
        }
        remove(&primary);
        Ok(())
    }

    /// The writer's commits/s alone and with an S3 master running (the
    /// server running in both), and the processor time the master and the
    /// server took per second of the runs with the master.
    fn s3_commits(&mut self, srv: &SeaweedServer, primary: &Path, disk: StoreDisk) -> R<()> {
        let secs = self.size.commit_secs;
        let writer = |b: &Bench| {
            let mut w = b.ours.writer();
            w.arg(primary).arg("--seconds").arg(secs.to_string());
            w
        };
        let (mut alone, mut with) = (Vec::new(), Vec::new());
        let (mut master_cpu, mut server_cpu, mut span) = (0.0, 0.0, 0.0);
        for _ in 0..self.runs() {
            measure::sync();
            alone.push(parse_rate(
                &measure::run(&mut writer(self), true)?.stdout,
                "writer",
            )?);
            let master = spawn(self, srv, primary, &["-M"])?;
            wait_for("the master's first base", Duration::from_secs(120), || {
                Ok(stat_r(self, srv, primary, "Newest base")?.is_some_and(|v| v != "-"))
            })?;
            measure::sync();
            let cpu_before = (cpu_secs(Some(master.id())), cpu_secs(srv.pid()));
            let began = Instant::now();
            let rate =
                measure::run(&mut writer(self), true).and_then(|f| parse_rate(&f.stdout, "writer"));
            span += began.elapsed().as_secs_f64();
            master_cpu += cpu_secs(Some(master.id())) - cpu_before.0;
            server_cpu += cpu_secs(srv.pid()) - cpu_before.1;
            stop(master);
            with.push(rate?);
        }
        let (a, w) = (median(&alone), median(&with));
        let (store, goal) = match disk {
            StoreDisk::Primary => ("store's data on the primary's disk", Goal::None),
            StoreDisk::Memory => (
                "server standing in for another machine: data in memory, nice 19",
                Goal::AtLeast(0.95),
            ),
        };
        let r = self.row(
            "10",
            format!("primary commits/s with an S3 master running, sync, 1 thread ({store})"),
            format!(
                "{w:.0} commits/s (master {:.0} ms, server {:.0} ms CPU a second)",
                1000.0 * master_cpu / span.max(1e-9),
                1000.0 * server_cpu / span.max(1e-9)
            ),
            format!("{a:.0} commits/s alone (server idle)"),
        );
        r.ratio = Some(w / a);
        r.ratio_is = "with/alone";
        r.goal = goal;
        r.runs = format!("{} vs {}", measure::all(&with, 0), measure::all(&alone, 0));
        Ok(())
    }

    /// The standby's lag under a writer of up to 1,000 commits/s.
    fn s3_lag(&mut self, srv: &SeaweedServer, primary: &Path, url: &str) -> R<()> {
        let standby = self.dir("s3-standby");
        remove(&standby);
        std::fs::create_dir_all(&standby).map_err(|e| e.to_string())?;
        set_store(&standby, url)?;
        let master = spawn(self, srv, primary, &["-M"])?;
        let client = spawn(self, srv, &standby, &[])?;
        let r = (|| -> R<(Vec<f64>, f64)> {
            wait_for("the standby's restore", Duration::from_secs(300), || {
                Ok(stat_r(self, srv, &standby, "Next LSN expected")?.is_some())
            })?;
            let secs = (self.size.commit_secs * 3.0).max(2.0);
            let count = (secs * 1000.0) as u64;
            let mut w = self.ours.writer();
            w.arg(primary)
                .args(["-n", &count.to_string(), "-i", "0"])
                .stdout(Stdio::null());
            let start = Instant::now();
            let mut child = w.spawn().map_err(|e| format!("writer: {e}"))?;
            let mut lags = Vec::new();
            while child.try_wait().map_err(|e| e.to_string())?.is_none() {
                if let Some(l) = stat_r(self, srv, &standby, "Lag in seconds")? {
                    lags.push(l.parse::<f64>().map_err(|e| format!("lag {l:?}: {e}"))?);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let rate = count as f64 / start.elapsed().as_secs_f64();
            Ok((lags, rate))
        })();
        stop(client);
        stop(master);
        remove(&standby);
        let (lags, rate) = r?;
        let p99 = percentile(&lags, 0.99);
        let r = self.row(
            "10",
            format!("standby lag on S3, writer at {rate:.0} commits/s"),
            format!("p99 {p99:.2} s"),
            format!(
                "p50 {:.2} s, max {:.2} s, {} samples",
                percentile(&lags, 0.5),
                percentile(&lags, 1.0),
                lags.len()
            ),
        );
        r.ratio = Some(p99);
        r.ratio_is = "p99 s";
        r.goal = Goal::AtMost(1.0);
        Ok(())
    }

    /// `db_replicate -R` from the S3 store and from a directory store of
    /// the same environment, and the base's files fetched alone.
    fn s3_restore(&mut self, srv: &SeaweedServer, primary: &Path, url: &str) -> R<()> {
        let dir_store = self.dir("dir-store");
        remove(&dir_store);
        std::fs::create_dir_all(&dir_store).map_err(|e| e.to_string())?;
        let dir_primary = self.dir("dir-primary");
        remove(&dir_primary);
        workload::cp_r(primary, &dir_primary)?;
        for f in ["__db.epoch", "__db.001"] {
            let _ = std::fs::remove_file(dir_primary.join(f));
        }
        set_store(&dir_primary, &dir_store.display().to_string())?;
        let master = spawn(self, srv, &dir_primary, &["-M"])?;
        let based = wait_for(
            "the directory store's base",
            Duration::from_secs(300),
            || Ok(stat_r(self, srv, &dir_primary, "Newest base")?.is_some_and(|v| v != "-")),
        );
        stop(master);
        based?;
        let target = self.dir("restored");
        let (mut s3, mut dir) = (Vec::new(), Vec::new());
        for _ in 0..self.runs() {
            for (store, out) in [
                (url.to_string(), &mut s3),
                (dir_store.display().to_string(), &mut dir),
            ] {
                remove(&target);
                std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
                set_store(&target, &store)?;
                measure::sync();
                let mut c = self.ours.tool("db_replicate");
                aws(&mut c, srv);
                out.push(measure::time(c.arg("-R").arg("-h").arg(&target))?);
            }
        }
        remove(&target);
        let base_s3 = self.fetch_base(srv, url, &target)?;
        let base_dir = self.fetch_base(srv, &dir_store.display().to_string(), &target)?;
        remove(&target);
        remove(&dir_store);
        remove(&dir_primary);
        let (s, d) = (measure::median_secs(&s3), measure::median_secs(&dir));
        let mib = workload::dir_bytes(primary) as f64 / 1_048_576.0;
        let r = self.row(
            "10",
            format!("db_replicate -R of a {mib:.0} MiB env, S3 vs directory store"),
            format!("{s:.2} s"),
            format!("{d:.2} s (directory)"),
        );
        r.ratio = Some(s / d);
        r.ratio_is = "s3/dir";
        r.runs = format!(
            "{} vs {}",
            measure::all_secs(&s3, 2),
            measure::all_secs(&dir, 2)
        );
        let (segs, log_mib) = self.log_to_fetch(srv, url)?;
        let r = self.row(
            "10",
            format!(
                "of which the base's files (the rest: {segs} log segments, {log_mib:.1} MiB, and redo)"
            ),
            format!("{:.2} s, {:.1} MiB", base_s3.0, base_s3.1),
            format!("{:.2} s (directory)", base_dir.0),
        );
        r.ratio = Some(base_s3.0 / s.max(1e-9));
        r.ratio_is = "files/all (s3)";
        Ok(())
    }

    /// Seconds and MiB to fetch the newest base's files from `store` into
    /// `scratch`, as a restore's first phase does.
    fn fetch_base(&self, srv: &SeaweedServer, store: &str, scratch: &Path) -> R<(f64, f64)> {
        let vfs = libcore::OsVfs::shared();
        let spec = StoreSpec::parse(scratch, Path::new(store));
        let st: std::sync::Arc<dyn ReplicaStore> = match &spec {
            StoreSpec::Dir(_) => {
                libcore::replica::open_dir(&vfs, &spec).map_err(|e| e.to_string())?
            }
            StoreSpec::S3 { prefix, .. } => std::sync::Arc::new(
                s3store::S3Store::open(srv.config(prefix)).map_err(|e| e.to_string())?,
            ),
        };
        let b = libcore::replica::restore::choose(&*st, Default::default())
            .map_err(|e| e.to_string())?
            .ok_or("no base in the store")?;
        std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
        measure::sync();
        let start = Instant::now();
        let mut bytes = 0u64;
        for f in &b.files {
            let key = libcore::replica::layout::base_file_key(b.number, f.index);
            let sum = st
                .get_to_file(&key, &*vfs, &scratch.join(format!("f{}", f.index)))
                .map_err(|e| e.to_string())?
                .ok_or("a base file is missing")?;
            bytes += sum.size;
        }
        Ok((start.elapsed().as_secs_f64(), bytes as f64 / 1_048_576.0))
    }

    /// How many segments, and MiB of log, a restore of the newest base
    /// fetches from `store`.
    fn log_to_fetch(&self, srv: &SeaweedServer, url: &str) -> R<(usize, f64)> {
        let prefix = url.splitn(4, '/').nth(3).unwrap_or("");
        let st = s3store::S3Store::open(srv.config(prefix)).map_err(|e| e.to_string())?;
        let b = libcore::replica::restore::choose(&st, Default::default())
            .map_err(|e| e.to_string())?
            .ok_or("no base in the store")?;
        let segs =
            libcore::replica::segment::list_from(&st, b.start.file).map_err(|e| e.to_string())?;
        let bytes: u64 = segs
            .iter()
            .map(|s| u64::from(s.2.offset - s.1.offset))
            .sum();
        Ok((segs.len(), bytes as f64 / 1_048_576.0))
    }
}
