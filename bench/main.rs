//! `make bench`: the performance table of the project, every figure of ours
//! next to an anchor measured in the same run (`cp -r`, the same work on a
//! 10x larger environment, or Berkeley DB 5.3 doing the same), median of
//! `--runs` runs.
//!
//! ```text
//! bench [--size tiny|small|1G] [--runs N] [--out DIR] [--only 1,3] [--no-bdb]
//! ```
//!
//! Sections (the rows of the performance issue):
//! 1. full `db_hotbackup` vs `cp -r` and `db5.3_hotbackup`;
//! 2. `db_hotbackup -u` after N MiB of new log, on an environment and on
//!    one 10x larger (plot `u-time.svg`);
//! 3. `db_recover -c` vs `db5.3_recover -c` on the same transactions
//!    (plot `recovery-time.svg`), and their peak RSS recovering one huge
//!    transaction;
//! 4. `db_load` of a dump vs `db5.3_load` of the same dump, sorted and
//!    shuffled;
//! 5. commits/s, sync and nosync, 1 and 8 threads, vs libdb;
//! 6. the primary's commits/s while `db_hotbackup` runs in a loop (self-
//!    paced by default, and with the self-pacing, the write-behind or both
//!    turned off, and with `-r`), and an idle primary's backup time with
//!    and without the self-pacing;
//! 7. `db_archive` latency with many log files vs few;
//! 8. `db_hotbackup` peak RSS;
//! 9. replication (`db_replicate`, replicate.rs): standby lag at 1,000
//!    commits/s, the primary's commits/s with a master, a restore from a
//!    directory store vs `cp -r && sync`, failover time on both sizes, and
//!    what logging a bulk load in full costs.
//! 10. `db_replicate` on an S3 store (a local SeaweedFS): the standby's lag
//!     under 1,000 commits/s, a restore from S3 vs from a directory store,
//!     the primary's commits/s with an S3 master running (`s3.rs`).
//! 11. commits/s while 4 threads read in snapshots (each looping: take a
//!     snapshot, read a range of 100 keys, drop it), sync and nosync:
//!     paced to 500 snapshots/s each over commits/s without readers;
//!     flat out over commits/s beside 4 threads doing the same reads flat
//!     out from a `BTreeMap` (the same processor load without the engine);
//!     flat out over without.
//!
//! Timings are warm-cache: `sync` (untimed) before each timed run. The
//! table goes to stdout and, with the machine description, to
//! `DIR/results.md` (also `results.tsv` and the two SVG plots). Our tools
//! are taken from the directory above this executable (target/release for
//! `make bench`), so a debug build benchmarks debug tools: `make test`
//! runs `--size tiny` that way, as a smoke test that never looks at the
//! numbers.

mod bdb;
mod measure;
mod plot;
mod replicate;
mod report;
mod s3;
mod workload;

use bdb::Bdb;
use measure::{all, all_secs, median, median_secs, peak_rss_mib, Sample};
use report::{Goal, Row};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use workload::{fresh, log_bytes, log_files, remove, Ours};

/// The `db_hotbackup -r` cap of the paced rows of section 6, MiB/s.
const PACE_MIB: u32 = 32;

/// How the backups of section 6 run. The two environment variables are
/// the bench's switches (ops/pacing.rs, ops/copy.rs), not operators'.
#[derive(Debug, Clone, Copy)]
enum Copier {
    /// As `db_hotbackup` runs by default.
    Default,
    /// `BDBTOOLS_SELF_PACING=0`: write-behind only.
    NoSelfPacing,
    /// Neither self-pacing nor write-behind: the copy before issue 14.
    Neither,
    /// `-r PACE_MIB`.
    Capped,
}

impl Copier {
    fn label(self) -> String {
        match self {
            Copier::Default => "default: self-paced".into(),
            Copier::NoSelfPacing => "self-pacing off".into(),
            Copier::Neither => "self-pacing and write-behind off".into(),
            Copier::Capped => format!("-r {PACE_MIB}"),
        }
    }

    fn configure(self, c: &mut Command) {
        match self {
            Copier::Default => {}
            Copier::NoSelfPacing => {
                c.env("BDBTOOLS_SELF_PACING", "0");
            }
            Copier::Neither => {
                c.env("BDBTOOLS_SELF_PACING", "0")
                    .env("BDBTOOLS_WRITE_BEHIND", "0");
            }
            Copier::Capped => {
                c.arg("-r").arg(PACE_MIB.to_string());
            }
        }
    }
}

/// How big each part of the run is.
struct Size {
    name: &'static str,
    /// Environment records (1000-byte values) of the smaller and the 10x
    /// larger environment.
    env_small: u64,
    env_large: u64,
    load_records: u64,
    /// New log before each `-u`, MiB.
    u_mib: Vec<f64>,
    /// Transactions replayed by catastrophic recovery.
    recovery_txns: Vec<u64>,
    /// MiB of values in the one transaction of the recovery-memory row.
    big_txn_mib: u64,
    commit_secs: f64,
    /// Seconds of paced commits in each standby lag run.
    repl_secs: f64,
    /// Log files for the db_archive latency: few, many.
    archive_logs: (usize, usize),
    runs: usize,
}

impl Size {
    fn named(name: &str) -> Option<Size> {
        Some(match name {
            "tiny" => Size {
                name: "tiny",
                env_small: 1_000,
                env_large: 10_000,
                load_records: 20_000,
                u_mib: vec![0.25, 1.0],
                recovery_txns: vec![1_000, 2_000],
                big_txn_mib: 8,
                commit_secs: 0.3,
                repl_secs: 1.0,
                archive_logs: (10, 100),
                runs: 1,
            },
            "small" => Size {
                name: "small",
                env_small: 10_000,
                env_large: 100_000,
                load_records: 1_000_000,
                u_mib: vec![1.0, 4.0, 16.0],
                recovery_txns: vec![20_000, 40_000, 80_000],
                big_txn_mib: 100,
                commit_secs: 3.0,
                repl_secs: 10.0,
                archive_logs: (100, 10_000),
                runs: 3,
            },
            "1G" => Size {
                name: "1G",
                env_small: 104_858,
                env_large: 1_048_576,
                load_records: 1_000_000,
                u_mib: vec![1.0, 4.0, 16.0, 64.0],
                recovery_txns: vec![50_000, 100_000, 200_000, 400_000],
                big_txn_mib: 100,
                commit_secs: 5.0,
                repl_secs: 20.0,
                archive_logs: (100, 10_000),
                runs: 3,
            },
            _ => return None,
        })
    }
}

/// Whose tool a measurement runs: ours, or Berkeley DB 5.3's.
#[derive(Clone, Copy)]
enum Engine {
    Ours,
    Bdb,
}

struct Bench {
    ours: Ours,
    bdb: Result<Bdb, String>,
    size: Size,
    work: PathBuf,
    out: PathBuf,
    rows: Vec<Row>,
    /// Full-backup samples, kept for the peak-memory row.
    full_backups: Vec<Sample>,
    /// Size of the larger environment when it was fully backed up, MiB.
    large_mib: f64,
    incremental_backups: Vec<Sample>,
}

type R<T> = Result<T, String>;

fn say(s: &str) {
    eprintln!("== {s}");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Parses the `RATE <per second> <commits> <seconds>` line of the writer
/// and of bdb_env.
fn parse_rate(out: &str, who: &str) -> R<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix("RATE "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{who}: no RATE line in its output: {out:?}"))
}

/// The pairs read of the `READS <pairs>` line of the writer's output.
fn parse_reads(out: &str) -> R<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix("READS "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("writer: no READS line in its output: {out:?}"))
}

impl Bench {
    fn runs(&self) -> usize {
        self.size.runs
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn row(
        &mut self,
        section: &'static str,
        what: String,
        ours: String,
        anchor: String,
    ) -> &mut Row {
        self.rows.push(Row {
            section,
            what,
            ours,
            anchor,
            ratio: None,
            ratio_is: "",
            goal: Goal::None,
            runs: String::new(),
        });
        let n = self.rows.len() - 1;
        &mut self.rows[n]
    }

    fn bdb(&self) -> Option<&Bdb> {
        self.bdb.as_ref().ok()
    }

    /// Section 1 (and the samples for 8).
    fn full_backup(&mut self) -> R<()> {
        let env = self.dir("large");
        let bytes = workload::dir_bytes(&env);
        say(&format!(
            "1. full db_hotbackup vs cp -r, {:.0} MiB environment",
            mib(bytes)
        ));
        let (bk, cp) = (self.dir("bk"), self.dir("cp"));
        let (mut ours, mut cps, mut cpsync) = (Vec::new(), Vec::new(), Vec::new());
        // Each timed copy starts from the same state: the previous copy
        // written out (untimed sync), then deleted, then synced. Without the
        // first sync a plain `cp -r`'s copy was deleted before it reached
        // the disk, and whichever run followed a copy that had (ours, on
        // this discard-mounted disk) paid for its deletion: ours measured
        // 3.87 s against `cp -r && sync`'s 3.08 s, 2.7 s against 3.2 s when
        // both follow the same kind of deletion.
        let settle = |dir: &Path| {
            measure::sync();
            remove(dir);
            measure::sync();
        };
        // One untimed copy first: the environment was just built, and the
        // disk is still busy with that (the first timed run was 35% slower
        // than the others).
        workload::cp_r(&env, &cp)?;
        settle(&cp);
        for _ in 0..self.runs() {
            settle(&bk);
            ours.push(measure::time(
                self.ours
                    .tool("db_hotbackup")
                    .arg("-h")
                    .arg(&env)
                    .arg("-b")
                    .arg(&bk),
            )?);
            settle(&bk);
            cps.push(workload::cp_r(&env, &cp)?);
            settle(&cp);
            cpsync.push(measure::time(
                Command::new("sh")
                    .args(["-c", "cp -r \"$1\" \"$2\" && sync", "-"])
                    .arg(&env)
                    .arg(&cp),
            )?);
            settle(&cp);
        }
        let (o, c, cs) = (median_secs(&ours), median_secs(&cps), median_secs(&cpsync));
        let secs = |v: &[Sample]| all_secs(v, 2);
        let r = self.row(
            "1",
            format!("full db_hotbackup, {:.0} MiB env", mib(bytes)),
            format!("{o:.2} s"),
            format!("{c:.2} s (cp -r)"),
        );
        r.ratio = Some(o / c);
        r.ratio_is = "ours/cp";
        r.goal = Goal::AtMost(1.0);
        r.runs = format!("{} vs {}", secs(&ours), secs(&cps));
        let r = self.row(
            "1",
            "full db_hotbackup vs cp -r && sync".into(),
            format!("{o:.2} s"),
            format!("{cs:.2} s (cp -r && sync)"),
        );
        r.ratio = Some(o / cs);
        r.ratio_is = "ours/cp+sync";
        r.goal = Goal::AtMost(1.0);
        r.runs = secs(&cpsync);
        if let Some(bdb_env) = self.bdb().map(|_| self.dir("bdb-large")) {
            let bbk = self.dir("bdb-bk");
            let mut theirs = Vec::new();
            for _ in 0..self.runs() {
                settle(&bbk);
                theirs.push(measure::time(
                    Command::new("db5.3_hotbackup")
                        .arg("-h")
                        .arg(&bdb_env)
                        .arg("-b")
                        .arg(&bbk),
                )?);
            }
            remove(&bbk);
            let t = median_secs(&theirs);
            let r = self.row(
                "1",
                format!(
                    "vs db5.3_hotbackup, same records ({:.0} MiB env)",
                    mib(workload::dir_bytes(&bdb_env))
                ),
                format!("{o:.2} s"),
                format!("{t:.2} s"),
            );
            r.ratio = Some(o / t);
            r.ratio_is = "ours/bdb";
            r.goal = Goal::AtMost(1.0);
            r.runs = secs(&theirs);
        }
        self.full_backups = ours;
        self.large_mib = mib(bytes);
        Ok(())
    }

    /// Section 2: -u after N MiB of log on both environment sizes.
    fn incremental(&mut self) -> R<()> {
        say("2. db_hotbackup -u after N MiB of new log, 1x and 10x environment");
        let envs = [self.dir("small"), self.dir("large")];
        let bks = [self.dir("ubk-small"), self.dir("ubk-large")];
        for (env, bk) in envs.iter().zip(&bks) {
            remove(bk);
            measure::time(
                self.ours
                    .tool("db_hotbackup")
                    .arg("-h")
                    .arg(env)
                    .arg("-b")
                    .arg(bk),
            )?;
        }
        let sizes = [
            mib(workload::dir_bytes(&envs[0])),
            mib(workload::dir_bytes(&envs[1])),
        ];
        let mut series = [Vec::new(), Vec::new()];
        let mut all_u = Vec::new();
        for &n in &self.size.u_mib.clone() {
            let mut t: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..self.runs() {
                for i in 0..2 {
                    workload::grow_ours(&self.ours, &envs[i], (n * 1_048_576.0) as u64)?;
                    measure::sync();
                    t[i].push(measure::time(
                        self.ours
                            .tool("db_hotbackup")
                            .arg("-u")
                            .arg("-h")
                            .arg(&envs[i])
                            .arg("-b")
                            .arg(&bks[i]),
                    )?);
                }
            }
            let (s, l) = (median_secs(&t[0]), median_secs(&t[1]));
            series[0].push((n, s));
            series[1].push((n, l));
            let secs = |v: &[Sample]| all_secs(v, 3);
            let r = self.row(
                "2",
                format!(
                    "-u after {n} MiB log, {:.0} vs {:.0} MiB env",
                    sizes[1], sizes[0]
                ),
                format!("{l:.3} s"),
                format!("{s:.3} s"),
            );
            r.ratio = Some(l / s);
            r.ratio_is = "10x/1x";
            r.goal = Goal::AtMost(1.1);
            r.runs = format!("{} vs {}", secs(&t[1]), secs(&t[0]));
            all_u.extend(t[1].iter().copied());
        }
        for bk in &bks {
            remove(bk);
        }
        self.incremental_backups = all_u;
        let [s, l] = series;
        let chart = plot::Chart {
            title: "db_hotbackup -u: time against new log size",
            x_label: "new log since the last backup (MiB)",
            y_label: "seconds",
            series: vec![
                plot::Series {
                    name: format!("{:.0} MiB environment", sizes[0]),
                    points: s,
                },
                plot::Series {
                    name: format!("{:.0} MiB environment", sizes[1]),
                    points: l,
                },
            ],
        };
        write(&self.out.join("u-time.svg"), &chart.svg())
    }

    /// `db_recover -c` (ours or db5.3's, by `engine`) of a fresh copy of
    /// `env` at `copy`, timed, once per run; the copy is removed after.
    fn time_recoveries(&self, env: &Path, copy: &Path, engine: Engine) -> R<Vec<Sample>> {
        let mut v = Vec::new();
        for _ in 0..self.runs() {
            remove(copy);
            let mut recover = match engine {
                Engine::Ours => {
                    workload::cp_r(env, copy)?;
                    self.ours.tool("db_recover")
                }
                Engine::Bdb => {
                    Bdb::copy_for_recovery(env, copy)?;
                    Command::new("db5.3_recover")
                }
            };
            measure::sync();
            v.push(measure::time(recover.arg("-c").arg("-h").arg(copy))?);
        }
        remove(copy);
        Ok(v)
    }

    /// Section 3: catastrophic recovery of the same transactions.
    fn recovery(&mut self) -> R<()> {
        say("3. db_recover -c vs db5.3_recover -c, same transactions");
        let (mut ours_pts, mut bdb_pts) = (Vec::new(), Vec::new());
        let counts = self.size.recovery_txns.clone();
        for (i, &k) in counts.iter().enumerate() {
            let (env, copy) = (self.dir("rec"), self.dir("rec-copy"));
            fresh(&env)?;
            measure::time(
                self.ours
                    .writer()
                    .arg(&env)
                    .arg("-n")
                    .arg(k.to_string())
                    .arg("--nosync"),
            )?;
            let log = log_bytes(&env);
            let ours = self.time_recoveries(&env, &copy, Engine::Ours)?;
            remove(&env);
            let o = median_secs(&ours);
            ours_pts.push((mib(log), o));
            let mut theirs = None;
            if let Some(bdb) = self.bdb() {
                std::fs::create_dir_all(&env).map_err(|e| format!("{}: {e}", env.display()))?;
                measure::time(
                    bdb.env()
                        .arg(&env)
                        .arg("write")
                        .arg(k.to_string())
                        .arg("nosync")
                        .stderr(std::process::Stdio::null()),
                )?;
                let v = self.time_recoveries(&env, &copy, Engine::Bdb)?;
                remove(&env);
                let t = median_secs(&v);
                bdb_pts.push((mib(log), t));
                theirs = Some((t, v));
            }
            if i + 1 < counts.len() {
                continue;
            }
            let secs = |v: &[Sample]| all_secs(v, 3);
            let (anchor, ratio, runs) = match &theirs {
                Some((t, v)) => (
                    format!("{t:.2} s, {:.0} txn/s", k as f64 / t),
                    Some(t / o),
                    format!("{} vs {}", secs(&ours), secs(v)),
                ),
                None => ("-".into(), None, secs(&ours)),
            };
            let r = self.row(
                "3",
                format!("db_recover -c of {k} txns"),
                format!(
                    "{o:.2} s, {:.1} MiB log, {:.0} txn/s, {:.0} MiB/s",
                    mib(log),
                    k as f64 / o,
                    mib(log) / o
                ),
                anchor,
            );
            r.ratio = ratio;
            r.ratio_is = "bdb/ours time";
            r.goal = Goal::AtLeast(3.0);
            r.runs = runs;
        }
        let mut series = vec![plot::Series {
            name: "db_recover -c (ours)".into(),
            points: ours_pts,
        }];
        if !bdb_pts.is_empty() {
            series.push(plot::Series {
                name: "db5.3_recover -c".into(),
                points: bdb_pts,
            });
        }
        let chart = plot::Chart {
            title: "catastrophic recovery: time against log size (same transactions)",
            x_label: "log replayed (MiB of our log; libdb replays the same transactions)",
            y_label: "seconds",
            series,
        };
        write(&self.out.join("recovery-time.svg"), &chart.svg())
    }

    /// Section 3, memory: peak RSS of `db_recover -c` replaying one
    /// transaction of `big_txn_mib` MiB of values, and of
    /// `db5.3_recover -c` replaying the same transaction.
    fn recovery_memory(&mut self) -> R<()> {
        let mib_v = self.size.big_txn_mib;
        say(&format!(
            "3. db_recover -c peak RSS, one {mib_v} MiB transaction"
        ));
        let (env, copy) = (self.dir("bigtxn"), self.dir("bigtxn-copy"));
        fresh(&env)?;
        measure::time(
            self.ours
                .writer()
                .arg(&env)
                .arg("--big")
                .arg(mib_v.to_string())
                .arg("--nosync"),
        )?;
        let log = log_bytes(&env);
        let ours = self.time_recoveries(&env, &copy, Engine::Ours)?;
        remove(&env);
        let mut theirs = Vec::new();
        if let Some(bdb) = self.bdb() {
            fresh(&env)?;
            measure::time(
                bdb.env()
                    .arg(&env)
                    .arg("big")
                    .arg(mib_v.to_string())
                    .arg("nosync"),
            )?;
            theirs = self.time_recoveries(&env, &copy, Engine::Bdb)?;
            remove(&env);
        }
        let m = peak_rss_mib(&ours);
        let rss = |v: &[Sample]| {
            all(
                &v.iter()
                    .map(|s| s.max_rss_kib as f64 / 1024.0)
                    .collect::<Vec<_>>(),
                1,
            )
        };
        let anchor = match theirs.is_empty() {
            true => "-".to_string(),
            false => format!(
                "{:.1} MiB ({:.2} s, db5.3_recover)",
                peak_rss_mib(&theirs),
                median_secs(&theirs)
            ),
        };
        let r = self.row(
            "3",
            format!("db_recover -c peak RSS, one {mib_v} MiB transaction"),
            format!(
                "{m:.1} MiB ({:.2} s, {:.1} MiB log)",
                median_secs(&ours),
                mib(log)
            ),
            anchor,
        );
        r.ratio = Some(m);
        r.ratio_is = "MiB";
        r.goal = Goal::AtMost(32.0);
        r.runs = format!("{} vs {}", rss(&ours), rss(&theirs));
        Ok(())
    }

    /// Section 4: db_load of the same dump, sorted (as every dump of a
    /// B-tree is) and shuffled.
    fn load(&mut self) -> R<()> {
        self.load_one(false)?;
        self.load_one(true)
    }

    fn load_one(&mut self, shuffled: bool) -> R<()> {
        let n = self.size.load_records;
        let order = if shuffled { "shuffled" } else { "sorted" };
        say(&format!("4. db_load vs db5.3_load, {n} {order} records"));
        let dump = self.dir("load.dump");
        match shuffled {
            true => workload::write_shuffled_hex_dump(&dump, n)?,
            false => workload::write_hex_dump(&dump, n)?,
        }
        let dir = self.dir("load");
        let mut ours = Vec::new();
        let mut log = 0;
        for _ in 0..self.runs() {
            fresh(&dir)?;
            measure::sync();
            ours.push(measure::time(
                self.ours
                    .tool("db_load")
                    .arg("-f")
                    .arg(&dump)
                    .arg("-h")
                    .arg(&dir)
                    .arg("a.db"),
            )?);
            log = log_bytes(&dir);
        }
        let o = median_secs(&ours);
        let rate = |s: f64| n as f64 / s;
        let mut theirs = Vec::new();
        if self.bdb().is_some() {
            for _ in 0..self.runs() {
                fresh(&dir)?;
                measure::sync();
                theirs.push(measure::time(
                    Command::new("db5.3_load")
                        .arg("-f")
                        .arg(&dump)
                        .arg(dir.join("a.db")),
                )?);
            }
        }
        remove(&dir);
        let _ = std::fs::remove_file(&dump);
        let rates = |v: &[Sample]| all(&v.iter().map(|s| rate(s.secs)).collect::<Vec<_>>(), 0);
        let (anchor, ratio) = if theirs.is_empty() {
            ("-".to_string(), None)
        } else {
            let t = median_secs(&theirs);
            (
                format!(
                    "{:.0} rec/s ({t:.2} s, {:.1} MiB RSS)",
                    rate(t),
                    peak_rss_mib(&theirs)
                ),
                Some(t / o),
            )
        };
        let r = self.row(
            "4",
            match shuffled {
                true => format!("db_load of {n} shuffled records (dump format)"),
                false => format!("db_load of {n} records (dump format)"),
            },
            format!(
                "{:.0} rec/s ({o:.2} s, {:.1} MiB RSS, {:.1} MiB log)",
                rate(o),
                peak_rss_mib(&ours),
                mib(log)
            ),
            anchor,
        );
        r.ratio = ratio;
        r.ratio_is = "ours/bdb rec/s";
        r.goal = Goal::AtLeast(if shuffled { 1.0 } else { 1.5 });
        r.runs = format!("{} vs {}", rates(&ours), rates(&theirs));
        Ok(())
    }

    /// Section 5: commits/s.
    fn commits(&mut self) -> R<()> {
        let secs = self.size.commit_secs;
        say(&format!(
            "5. commits/s, sync and nosync, 1 and 8 threads, {secs} s a run"
        ));
        let dir = self.dir("commits");
        for (threads, nosync) in [(1, false), (8, false), (1, true), (8, true)] {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for _ in 0..self.runs() {
                fresh(&dir)?;
                measure::sync();
                let mut w = self.ours.writer();
                w.arg(&dir)
                    .arg("--threads")
                    .arg(threads.to_string())
                    .arg("--seconds")
                    .arg(secs.to_string());
                if nosync {
                    w.arg("--nosync");
                }
                ours.push(parse_rate(&measure::run(&mut w, true)?.stdout, "writer")?);
                if let Some(bdb) = self.bdb() {
                    fresh(&dir)?;
                    measure::sync();
                    let mut b = bdb.env();
                    b.arg(&dir)
                        .arg("run")
                        .arg(secs.to_string())
                        .arg(threads.to_string());
                    if nosync {
                        b.arg("nosync");
                    }
                    theirs.push(parse_rate(&measure::run(&mut b, true)?.stdout, "bdb_env")?);
                }
            }
            remove(&dir);
            let o = median(&ours);
            let mode = if nosync { "nosync" } else { "sync" };
            let (anchor, ratio) = if theirs.is_empty() {
                ("-".to_string(), None)
            } else {
                let t = median(&theirs);
                (format!("{t:.0} commits/s (libdb)"), Some(o / t))
            };
            let r = self.row(
                "5",
                format!("commits/s, {mode}, {threads} thread(s)"),
                format!("{o:.0} commits/s"),
                anchor,
            );
            r.ratio = ratio;
            r.ratio_is = "ours/bdb";
            r.goal = if nosync {
                Goal::None
            } else {
                Goal::AtLeast(1.0)
            };
            r.runs = format!("{} vs {}", all(&ours, 0), all(&theirs, 0));
        }
        Ok(())
    }

    /// Section 11: what snapshot readers cost the writer: commits/s of one
    /// writer thread beside 4 snapshot-reading threads, (a) paced to a
    /// steady read load, over commits/s alone; (b) reading flat out, over
    /// commits/s beside 4 threads doing the same reads flat out from a
    /// `BTreeMap` (the same processor load without the engine: on a small
    /// machine any busy threads take the writer's processor, and this
    /// anchor separates that from what the engine adds); (c) flat out over
    /// alone, no goal. All four runs interleaved (a drift in the machine's
    /// load hits them alike).
    fn snapshot_readers(&mut self) -> R<()> {
        const READERS: usize = 4;
        const RANGE: usize = 100;
        const PACE: u32 = 500;
        let secs = self.size.commit_secs;
        say(&format!(
            "11. commits/s with {READERS} snapshot readers ({RANGE}-key ranges; paced at {PACE} snapshots/s each, and flat out) and without, {secs} s a run"
        ));
        let dir = self.dir("snapshots");
        #[derive(Clone, Copy, PartialEq)]
        enum Readers {
            None,
            Paced,
            Flat,
            FromMemory,
        }
        let all_kinds = [
            Readers::None,
            Readers::Paced,
            Readers::Flat,
            Readers::FromMemory,
        ];
        for nosync in [false, true] {
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); all_kinds.len()];
            let mut reads: Vec<Vec<f64>> = vec![Vec::new(); all_kinds.len()];
            for _ in 0..self.runs() {
                for (i, kind) in all_kinds.iter().enumerate() {
                    fresh(&dir)?;
                    measure::sync();
                    let mut w = self.ours.writer();
                    w.arg(&dir).arg("--seconds").arg(secs.to_string());
                    if nosync {
                        w.arg("--nosync");
                    }
                    if *kind != Readers::None {
                        w.arg("--readers")
                            .arg(READERS.to_string())
                            .arg("--range")
                            .arg(RANGE.to_string());
                    }
                    match kind {
                        Readers::Paced => {
                            w.arg("--reader-rate").arg(PACE.to_string());
                        }
                        Readers::FromMemory => {
                            w.arg("--readers-from-memory");
                        }
                        Readers::None | Readers::Flat => {}
                    }
                    let out = measure::run(&mut w, true)?.stdout;
                    rates[i].push(parse_rate(&out, "writer")?);
                    if *kind != Readers::None {
                        reads[i].push(parse_reads(&out)? / secs);
                    }
                }
            }
            remove(&dir);
            let mode = if nosync { "nosync" } else { "sync" };
            let m = |i: usize| median(&rates[i]);
            let r = |i: usize| median(&reads[i]);
            let rows = [
                (
                    1,
                    0,
                    format!(
                        "commits/s, {mode}, {READERS} snapshot readers at {PACE} snapshots/s each"
                    ),
                    format!("{:.0} commits/s without readers", m(0)),
                    "with/without",
                    Goal::AtLeast(0.9),
                ),
                (
                    2,
                    3,
                    format!("commits/s, {mode}, {READERS} snapshot readers flat out"),
                    format!(
                        "{:.0} commits/s beside {READERS} readers of a BTreeMap ({:.0} pairs/s)",
                        m(3),
                        r(3)
                    ),
                    "snapshots/memory",
                    Goal::AtLeast(0.9),
                ),
                (
                    2,
                    0,
                    format!("commits/s, {mode}, {READERS} snapshot readers flat out, over alone"),
                    format!("{:.0} commits/s without readers", m(0)),
                    "with/without",
                    Goal::None,
                ),
            ];
            for (ours, anchor, what, theirs, ratio_is, goal) in rows {
                let row = self.row(
                    "11",
                    what,
                    format!("{:.0} commits/s ({:.0} pairs/s read)", m(ours), r(ours)),
                    theirs,
                );
                row.ratio = Some(m(ours) / m(anchor));
                row.ratio_is = ratio_is;
                row.goal = goal;
                row.runs = format!("{} vs {}", all(&rates[ours], 0), all(&rates[anchor], 0));
            }
        }
        Ok(())
    }

    /// Section 6: the primary's commit rate while backups run: as they
    /// run by default (self-paced by the primary's commit wait, with
    /// write-behind), with the self-pacing turned off, with neither (the
    /// copy before issue 14), and capped with `-r`; then the time of one
    /// backup of the idle primary with and without the self-pacing.
    fn primary_during_backup(&mut self) -> R<()> {
        let secs = self.size.commit_secs;
        say(&format!(
            "6. primary commits/s alone and while db_hotbackup runs in a loop (default, no self-pacing, neither, -r {PACE_MIB})"
        ));
        let env = self.dir("large");
        let bk = self.dir("loop-bk");
        for (how, threads) in [
            (Copier::Default, 1),
            (Copier::Default, 8),
            (Copier::NoSelfPacing, 1),
            (Copier::NoSelfPacing, 8),
            (Copier::Neither, 1),
            (Copier::Neither, 8),
            (Copier::Capped, 1),
            (Copier::Capped, 8),
        ] {
            let (mut alone, mut during) = (Vec::new(), Vec::new());
            let mut backups = 0;
            let writer = || {
                let mut w = self.ours.writer();
                w.arg(&env)
                    .arg("--threads")
                    .arg(threads.to_string())
                    .arg("--seconds")
                    .arg(secs.to_string());
                w
            };
            for _ in 0..self.runs() {
                measure::sync();
                alone.push(parse_rate(
                    &measure::run(&mut writer(), true)?.stdout,
                    "writer",
                )?);
                measure::sync();
                let stop = std::sync::atomic::AtomicBool::new(false);
                let (rate, n) = std::thread::scope(|s| -> R<(f64, usize)> {
                    let looper = s.spawn(|| self.backup_loop(&env, &bk, how, &stop));
                    let rate = measure::run(&mut writer(), true)
                        .and_then(|f| parse_rate(&f.stdout, "writer"));
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    let n = looper
                        .join()
                        .map_err(|_| "backup loop panicked".to_string())??;
                    Ok((rate?, n))
                })?;
                during.push(rate);
                backups += n;
                remove(&bk);
            }
            let (a, d) = (median(&alone), median(&during));
            let r = self.row(
                "6",
                format!(
                    "primary commits/s during backups ({}), sync, {threads} thread(s)",
                    how.label()
                ),
                format!("{d:.0} commits/s ({backups} backups done)"),
                format!("{a:.0} commits/s alone"),
            );
            r.ratio = Some(d / a);
            r.ratio_is = "during/alone";
            r.goal = match how {
                Copier::Default | Copier::Capped => Goal::AtLeast(0.9),
                Copier::NoSelfPacing | Copier::Neither => Goal::None,
            };
            r.runs = format!("{} vs {}", all(&during, 0), all(&alone, 0));
        }
        self.idle_primary_backup(&env, &bk)
    }

    /// Section 6, last row: one full backup of the primary while it is
    /// idle (its region still holds the samples of the last writer), self-
    /// paced against the self-pacing turned off, interleaved.
    fn idle_primary_backup(&mut self, env: &Path, bk: &Path) -> R<()> {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        let settle = |dir: &Path| {
            measure::sync();
            remove(dir);
            measure::sync();
        };
        for _ in 0..self.runs() {
            for (how, into) in [(Copier::Default, &mut on), (Copier::NoSelfPacing, &mut off)] {
                settle(bk);
                let mut c = self.ours.tool("db_hotbackup");
                how.configure(&mut c);
                into.push(measure::time(c.arg("-h").arg(env).arg("-b").arg(bk))?);
            }
        }
        settle(bk);
        let (a, b) = (median_secs(&on), median_secs(&off));
        let r = self.row(
            "6",
            "full db_hotbackup of the idle primary, self-paced vs not".to_string(),
            format!("{a:.2} s"),
            format!("{b:.2} s without self-pacing"),
        );
        r.ratio = Some(a / b);
        r.ratio_is = "paced/unpaced";
        r.goal = Goal::AtMost(1.1);
        r.runs = format!("{} vs {}", all_secs(&on, 2), all_secs(&off, 2));
        Ok(())
    }

    /// Full backups of `env` one after another until `stop`; the one
    /// running then is killed (the writer's window is over). Returns how
    /// many completed.
    fn backup_loop(
        &self,
        env: &Path,
        bk: &Path,
        how: Copier,
        stop: &std::sync::atomic::AtomicBool,
    ) -> R<usize> {
        let mut done = 0;
        // Start once the writer has opened the environment.
        std::thread::sleep(Duration::from_millis(50));
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            remove(bk);
            let mut c = self.ours.tool("db_hotbackup");
            how.configure(&mut c);
            c.arg("-h").arg(env).arg("-b").arg(bk);
            c.stdout(std::process::Stdio::null());
            let mut child = c.spawn().map_err(|e| format!("db_hotbackup: {e}"))?;
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(done);
                }
                match child.try_wait() {
                    Ok(Some(st)) if st.success() => break,
                    Ok(Some(st)) => return Err(format!("db_hotbackup in the loop: {st}")),
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => return Err(format!("db_hotbackup in the loop: {e}")),
                }
            }
            done += 1;
        }
        Ok(done)
    }

    /// Section 7: db_archive latency against the number of log files.
    fn archive(&mut self) -> R<()> {
        let (few, many) = self.size.archive_logs;
        say(&format!(
            "7. db_archive latency with {few} and {many} log files"
        ));
        let mut lat = Vec::new();
        for (name, count) in [("arch-few", few), ("arch-many", many)] {
            let env = self.dir(name);
            fresh(&env)?;
            let mut w = self.ours.writer();
            w.arg(&env)
                .args(["--nosync", "--lg-max", "4096", "-c", "500"]);
            workload::run_until(w, &env, Duration::from_secs(900), |h| {
                log_files(h).len() >= count
            })?;
            measure::time(
                self.ours
                    .tool("db_checkpoint")
                    .arg("-1")
                    .arg("-h")
                    .arg(&env),
            )?;
            let files = log_files(&env).len();
            let runs = self.runs().max(5) * 2 + 1;
            let mut unused = Vec::new();
            let mut listed = 0;
            for _ in 0..runs {
                let f = measure::run(self.ours.tool("db_archive").arg("-h").arg(&env), true)?;
                listed = f.stdout.lines().count();
                unused.push(f.sample.secs * 1000.0);
            }
            let mut every = Vec::new();
            for _ in 0..runs {
                every.push(
                    measure::time(self.ours.tool("db_archive").arg("-l").arg("-h").arg(&env))?.secs
                        * 1000.0,
                );
            }
            // The floor: reading the directory at all (the kernel's
            // getdents), measured as `ls -f`, which neither sorts nor stats.
            let mut ls = Vec::new();
            for _ in 0..runs {
                ls.push(measure::time(Command::new("ls").arg("-f").arg(&env))?.secs * 1000.0);
            }
            lat.push((files, listed, unused, every, ls));
            remove(&env);
        }
        let [(f0, l0, u0, e0, _), (f1, l1, u1, e1, ls1)] = [lat.remove(0), lat.remove(0)];
        let floor = median(&ls1);
        for (flag, few_ms, many_ms, what) in [
            ("", &u0, &u1, format!("{l1} vs {l0} listed")),
            ("-l ", &e0, &e1, "every log".into()),
        ] {
            let (a, b) = (median(few_ms), median(many_ms));
            let r = self.row(
                "7",
                format!("db_archive {flag}with {f1} log files ({what})"),
                format!("{b:.1} ms"),
                format!("{a:.1} ms with {f0} files"),
            );
            r.ratio = Some(b);
            r.ratio_is = "ms";
            r.goal = Goal::AtMost(10.0);
            r.runs = format!("{} vs {}", all(many_ms, 1), all(few_ms, 1));
            // Flat: no work per log file beyond reading the directory.
            let r = self.row(
                "7",
                format!("db_archive {flag}with {f1} log files vs reading the directory"),
                format!("{b:.1} ms"),
                format!("{floor:.1} ms (ls -f)"),
            );
            r.ratio = Some(b / floor);
            r.ratio_is = "ours/ls -f";
            r.goal = Goal::AtMost(1.5);
            r.runs = all(&ls1, 1);
        }
        Ok(())
    }

    /// Section 8, from the samples of 1 and 2.
    fn memory(&mut self) {
        let large = self.large_mib;
        for (what, samples) in [
            ("full", self.full_backups.clone()),
            ("-u", self.incremental_backups.clone()),
        ] {
            if samples.is_empty() {
                continue;
            }
            let m = peak_rss_mib(&samples);
            let r = self.row(
                "8",
                format!("db_hotbackup {what} peak RSS, {large:.0} MiB env"),
                format!("{m:.1} MiB"),
                "-".into(),
            );
            r.ratio = Some(m);
            r.ratio_is = "MiB";
            r.goal = Goal::AtMost(32.0);
            r.runs = all(
                &samples
                    .iter()
                    .map(|s| s.max_rss_kib as f64 / 1024.0)
                    .collect::<Vec<_>>(),
                1,
            );
        }
    }
}

fn write(path: &Path, text: &str) -> R<()> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// What the reader of the results needs to judge them.
fn machine(work: &Path) -> String {
    let cpu = sh("sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1");
    let mem = sh("awk '/MemTotal/{printf \"%.1f GiB\", $2/1048576}' /proc/meminfo");
    let fs = sh(&format!(
        "df -T '{}' | awk 'NR==2{{print $2\" on \"$1\", \"$5\" free\"}}'",
        work.display()
    ));
    format!(
        "- {} CPUs ({cpu}), {mem} RAM, Linux {}\n- scratch directory {} on {fs}\n- commit {}, {}\n",
        sh("nproc"),
        sh("uname -r"),
        work.display(),
        sh("git rev-parse --short HEAD 2>/dev/null || echo unknown"),
        sh("date -u '+%Y-%m-%d %H:%M UTC'")
    )
}

fn usage() -> ! {
    eprintln!(
        "usage: bench [--size tiny|small|1G] [--runs N] [--out DIR] [--only 1,2,...] [--no-bdb]"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut size_name = std::env::var("BENCH_SIZE").unwrap_or_else(|_| "small".into());
    let mut runs: Option<usize> = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok());
    let mut out = PathBuf::from("target/bench");
    let mut only: Option<Vec<u32>> = None;
    let mut use_bdb = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => size_name = it.next().cloned().unwrap_or_else(|| usage()),
            "--runs" => {
                runs = Some(
                    it.next()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--out" => out = it.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--only" => {
                only = Some(
                    it.next()
                        .unwrap_or_else(|| usage())
                        .split(',')
                        .map(|s| s.parse().unwrap_or_else(|_| usage()))
                        .collect(),
                )
            }
            "--no-bdb" => use_bdb = false,
            _ => usage(),
        }
    }
    let Some(mut size) = Size::named(&size_name) else {
        eprintln!("bench: unknown size {size_name:?} (tiny, small or 1G)");
        std::process::exit(2);
    };
    if let Some(r) = runs {
        size.runs = r.max(1);
    }
    if let Err(e) = run(size, out, only, use_bdb) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(size: Size, out: PathBuf, only: Option<Vec<u32>>, use_bdb: bool) -> R<()> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell where the tools are")?
        .to_path_buf();
    for tool in [
        "db_load",
        "db_hotbackup",
        "db_recover",
        "db_archive",
        "db_checkpoint",
        "db_replicate",
        "db_stat",
        "examples/writer",
    ] {
        if !bin.join(tool).exists() {
            return Err(format!(
                "{}: missing (cargo build --release --bins --examples)",
                bin.join(tool).display()
            ));
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let tmp = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    let work = tmp.join(format!("bench.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("bdb_env.c");
    let bdb = if use_bdb {
        Bdb::find(&source, &work)
    } else {
        Err("--no-bdb".into())
    };
    let mut b = Bench {
        ours: Ours { bin },
        bdb,
        size,
        work: work.clone(),
        out: out.clone(),
        rows: Vec::new(),
        full_backups: Vec::new(),
        large_mib: 0.0,
        incremental_backups: Vec::new(),
    };
    let load_start = sh("cut -d' ' -f1-3 /proc/loadavg");
    let r = b.all(only.as_deref());
    remove(&work);
    println!("{}", report::text(&b.rows));
    r?;
    let bdb_note = match &b.bdb {
        Ok(_) => {
            "Berkeley DB 5.3 anchors: db5.3-util and bench/bdb_env.c against libdb-5.3".to_string()
        }
        Err(e) => format!("Berkeley DB 5.3 anchors left out: {e}"),
    };
    let md = format!(
        "# make bench: size {}, median of {} run(s)\n\n{}- load average {} at the start, {} at the end\n- {bdb_note}\n\n{}\nCommand: `{}`. Plots: `u-time.svg`, `recovery-time.svg`.\n",
        b.size.name,
        b.size.runs,
        machine(&tmp),
        load_start,
        sh("cut -d' ' -f1-3 /proc/loadavg"),
        report::markdown(&b.rows),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    write(&out.join("results.md"), &md)?;
    write(&out.join("results.tsv"), &report::tsv(&b.rows))?;
    eprintln!(
        "== results in {}/results.md (and .tsv, u-time.svg, recovery-time.svg)",
        out.display()
    );
    Ok(())
}

impl Bench {
    fn all(&mut self, only: Option<&[u32]>) -> R<()> {
        let want = |n: u32| only.is_none_or(|o| o.contains(&n));
        if let Err(e) = &self.bdb {
            say(&format!("Berkeley DB anchors left out: {e}"));
        }
        if [1, 2, 6, 8, 9, 10].iter().any(|&n| want(n)) {
            let (small, large) = (self.size.env_small, self.size.env_large);
            say(&format!(
                "building environments: {small} and {large} records of 1000 bytes"
            ));
            workload::build_ours(&self.ours, &self.dir("small"), small, &self.work)?;
            workload::build_ours(&self.ours, &self.dir("large"), large, &self.work)?;
            if want(1) {
                if let Some(bdb) = self.bdb() {
                    bdb.build(&self.dir("bdb-large"), large)?;
                }
            }
        }
        if want(1) || want(8) {
            self.full_backup()?;
        }
        if want(2) || want(8) {
            self.incremental()?;
        }
        if want(3) {
            self.recovery()?;
            self.recovery_memory()?;
        }
        if want(4) {
            self.load()?;
        }
        if want(5) {
            self.commits()?;
        }
        if want(6) {
            self.primary_during_backup()?;
        }
        if want(7) {
            self.archive()?;
        }
        if want(8) {
            self.memory();
        }
        if want(9) {
            self.replication()?;
        }
        if want(10) {
            self.s3()?;
        }
        if want(11) {
            self.snapshot_readers()?;
        }
        Ok(())
    }
}
