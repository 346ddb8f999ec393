//! Section 9: replication (`db_replicate`, issue 12), the master and the
//! client run as an operator runs them, beside our writer:
//!
//! * lag under a sustained 1,000 commits/s: the writer paces its commits
//!   (`--rate`) and prints an `ACK` line as each returns; a probe opens the
//!   standby read-only every few milliseconds and reads b.db's `last`. A
//!   commit's lag is the time from its acknowledgment to the end of the
//!   first probe that saw it (an upper bound: it includes the probe);
//! * the primary's commits/s with a master running and without (1 and 8
//!   threads), on the larger environment;
//! * a restore (`db_replicate -R`) of the larger environment from a
//!   directory store, against `cp -r && sync` of the same store;
//! * failover time, SIGKILL of the primary to the first commit the standby
//!   accepts as the new primary, following db_hotfailover(7): stop the
//!   master (it ships what the primary made durable), let the client catch
//!   up and stop it, `db_recover -c`, open and commit; on both environment
//!   sizes;
//! * what logging a bulk load in full costs: `db_load` of the load section's
//!   records into a new database with a master running, and without.
//!
//! The environments are the section's own, built as the others' are (the
//! other sections grow theirs by gigabytes of log).

use crate::measure::{self, all, median, median_secs, Sample};
use crate::report::Goal;
use crate::workload::{self, fresh, log_bytes, remove};
use crate::{mib, parse_rate, say, Bench, R};
use libcore::replica::status::{report, Report};
use libcore::{Env, EnvOptions, Lsn, OsVfs};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The sustained commit rate of the lag row.
const RATE: f64 = 1000.0;
/// The pause between two probes of the standby.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// How long a condition on the replication state may take to hold.
const PATIENCE: Duration = Duration::from_secs(300);

/// A `db_replicate` daemon run by the bench: stopped with SIGINT as an
/// operator stops it, killed if the bench fails first.
struct Daemon {
    child: Option<Child>,
    what: String,
}

impl Daemon {
    fn start(bench: &Bench, master: bool, home: &Path) -> R<Daemon> {
        let mut c = bench.ours.tool("db_replicate");
        if master {
            c.arg("-M");
        }
        c.arg("-h")
            .arg(home)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let what = format!("{c:?}");
        let child = c.spawn().map_err(|e| format!("{what}: {e}"))?;
        Ok(Daemon {
            child: Some(child),
            what,
        })
    }

    /// SIGINT, then the exit (by that signal: a clean stop).
    fn stop(mut self) -> R<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{}: ended early ({st})", self.what));
        }
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !sent.success() {
            return Err(format!("{}: could not send SIGINT", self.what));
        }
        child
            .wait()
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.what))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Names the store in `home`'s DB_CONFIG.
fn config(home: &Path, store: &Path) -> R<()> {
    let p = home.join("DB_CONFIG");
    std::fs::write(&p, format!("repl_store {}\n", store.display()))
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// What `db_stat -r` would report for `dir`.
fn status(dir: &Path) -> R<Report> {
    let vfs = OsVfs::shared();
    report(&vfs, dir, &|spec| libcore::replica::open_dir(&vfs, spec)).map_err(|e| e.to_string())
}

fn wait_until(what: &str, mut done: impl FnMut() -> R<bool>) -> R<()> {
    let start = Instant::now();
    while !done()? {
        if start.elapsed() > PATIENCE {
            return Err(format!("replication: {what}: not after {PATIENCE:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Waits until the store holds a complete base.
fn wait_base(store: &Path) -> R<()> {
    wait_until("the master's first base", || {
        Ok(status(store)
            .map(|r| r.newest_base.is_some())
            .unwrap_or(false))
    })
}

/// The end of the store's log as the master last posted it.
fn shipped(store: &Path) -> R<Lsn> {
    status(store)?
        .master
        .map(|m| m.shipped)
        .ok_or_else(|| format!("{}: no master status", store.display()))
}

/// Waits until the standby applied the store's log up to `at`.
fn wait_applied(standby: &Path, at: Lsn) -> R<()> {
    wait_until("the standby catching up", || {
        Ok(status(standby)
            .ok()
            .and_then(|r| r.client)
            .is_some_and(|c| c.applied >= at))
    })
}

/// Waits until the master has shipped what the primary had made durable
/// when the wait began (as its next status says), and the standby (if
/// any) has applied that much.
fn wait_caught_up(store: &Path, standby: Option<&Path>) -> R<()> {
    let since = now_ms();
    let mut durable = None;
    wait_until("the master's status", || {
        durable = status(store)?
            .master
            .filter(|m| m.updated_ms > since)
            .map(|m| m.durable);
        Ok(durable.is_some())
    })?;
    let durable = durable.unwrap_or(Lsn::ZERO);
    wait_until("the master catching up", || Ok(shipped(store)? >= durable))?;
    match standby {
        Some(sb) => wait_applied(sb, durable),
        None => Ok(()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// b.db's `last` on the standby, through a read-only view (`None` while
/// the standby is not restored yet, or moved under the view).
fn standby_last(standby: &Path) -> Option<u64> {
    let env = Env::open(standby, EnvOptions::read_only()).ok()?;
    let b = env.open_db("b.db").ok()?;
    let v = env.get(&b, b"last").ok()??;
    String::from_utf8(v).ok()?.parse().ok()
}

/// The `q` quantile (0..=1) of `xs`, a value that was measured.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Each acknowledged commit's lag: from its ACK to the end of the first
/// probe that saw it (never seen: infinite).
fn lags(acks: &[(u64, Instant)], probes: &[(Instant, u64)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(acks.len());
    let mut p = 0;
    for &(j, at) in acks {
        while p < probes.len() && probes[p].1 < j {
            p += 1;
        }
        out.push(match probes.get(p) {
            Some(&(seen, _)) => seen.saturating_duration_since(at).as_secs_f64(),
            None => f64::INFINITY,
        });
    }
    out
}

/// One lag run: its lags and the rate the writer sustained.
struct LagRun {
    lags: Vec<f64>,
    rate: f64,
    probes: usize,
}

impl Bench {
    /// Section 9.
    pub fn replication(&mut self) -> R<()> {
        say("9. db_replicate: lag at 1,000 commits/s, primary with a master, restore, failover, bulk loads");
        // Environments of their own, as built (the other sections' grow
        // their logs by gigabytes).
        let (small, large) = (self.size.env_small, self.size.env_large);
        say(&format!(
            "9. building environments: {small} and {large} records of 1000 bytes"
        ));
        for (name, records) in [("repl-small", small), ("repl-large", large)] {
            remove(&self.dir(name));
            workload::build_ours(&self.ours, &self.dir(name), records, &self.work)?;
        }
        self.repl_lag()?;
        self.repl_restore_and_commits()?;
        self.repl_failover()?;
        self.repl_bulk()?;
        remove(&self.dir("repl-small"));
        remove(&self.dir("repl-large"));
        Ok(())
    }

    fn repl_dirs(&self, prefix: &str) -> R<(PathBuf, PathBuf, PathBuf)> {
        let (p, s, st) = (
            self.dir(&format!("{prefix}-primary")),
            self.dir(&format!("{prefix}-standby")),
            self.dir(&format!("{prefix}-store")),
        );
        for d in [&p, &s, &st] {
            fresh(d)?;
        }
        config(&p, &st)?;
        config(&s, &st)?;
        Ok((p, s, st))
    }

    fn repl_lag(&mut self) -> R<()> {
        let secs = self.size.repl_secs;
        let mut runs = Vec::new();
        for _ in 0..self.runs() {
            runs.push(self.lag_run(secs)?);
        }
        let p = |q: f64| -> Vec<f64> { runs.iter().map(|r| quantile(&r.lags, q)).collect() };
        let (p50, p99) = (median(&p(0.5)), median(&p(0.99)));
        let rate = median(&runs.iter().map(|r| r.rate).collect::<Vec<_>>());
        let n: usize = runs.iter().map(|r| r.lags.len()).sum::<usize>() / runs.len().max(1);
        let probe_ms = runs
            .iter()
            .map(|r| secs * 1000.0 / r.probes.max(1) as f64)
            .fold(0.0, f64::max);
        let r = self.row(
            "9",
            format!("standby lag, sustained {RATE:.0} commits/s (sync), {secs} s"),
            format!("p50 {:.0} ms, p99 {:.0} ms", p50 * 1000.0, p99 * 1000.0),
            format!("{n} commits at {rate:.0}/s, probe every {probe_ms:.0} ms"),
        );
        r.ratio = Some(p99);
        r.ratio_is = "p99 s";
        r.goal = Goal::AtMost(1.0);
        r.runs = format!(
            "p99 {} / p50 {} ms",
            all(&p(0.99).iter().map(|x| x * 1000.0).collect::<Vec<_>>(), 0),
            all(&p(0.5).iter().map(|x| x * 1000.0).collect::<Vec<_>>(), 0)
        );
        Ok(())
    }

    /// A fresh primary (a few hundred commits), a master and a caught-up
    /// standby; then `secs` of paced commits while a probe watches the
    /// standby, and two seconds more for the last ones to arrive.
    fn lag_run(&self, secs: f64) -> R<LagRun> {
        let (prim, sb, store) = self.repl_dirs("lag")?;
        measure::time(self.ours.writer().arg(&prim).args(["-n", "300"]))?;
        let master = Daemon::start(self, true, &prim)?;
        wait_base(&store)?;
        let client = Daemon::start(self, false, &sb)?;
        wait_caught_up(&store, Some(&sb))?;
        let count = (RATE * secs) as u64;
        let mut w = self.ours.writer();
        w.arg(&prim)
            .args(["--rate", &RATE.to_string(), "-c", "1000", "-n"])
            .arg(count.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut writer = w.spawn().map_err(|e| format!("writer: {e}"))?;
        let out = writer.stdout.take().ok_or("writer: no stdout")?;
        let acks = Mutex::new(Vec::new());
        let probes = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let began = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(j) = line.strip_prefix("ACK ").and_then(|j| j.parse().ok()) {
                        acks.lock().unwrap().push((j, Instant::now()));
                    }
                }
            });
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(last) = standby_last(&sb) {
                        probes.lock().unwrap().push((Instant::now(), last));
                    }
                    std::thread::sleep(PROBE_EVERY);
                }
            });
            let st = writer.wait();
            let elapsed = began.elapsed();
            let want = acks.lock().unwrap().last().map(|a| a.0).unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline
                && probes.lock().unwrap().last().is_none_or(|p| p.1 < want)
            {
                std::thread::sleep(PROBE_EVERY);
            }
            stop.store(true, Ordering::Relaxed);
            match st {
                Ok(s) if s.success() => Ok(elapsed),
                Ok(s) => Err(format!("writer: {s}")),
                Err(e) => Err(format!("writer: {e}")),
            }
        })
        .and_then(|elapsed| {
            master.stop()?;
            client.stop()?;
            let acks = acks.into_inner().unwrap();
            let probes = probes.into_inner().unwrap();
            for d in [&prim, &sb, &store] {
                remove(d);
            }
            Ok(LagRun {
                rate: acks.len() as f64 / elapsed.as_secs_f64(),
                lags: lags(&acks, &probes),
                probes: probes.len(),
            })
        })
    }

    /// The restore row, then the primary's commits/s with a master and
    /// without, on a copy of the larger environment.
    fn repl_restore_and_commits(&mut self) -> R<()> {
        let prim = self.dir("rc-primary");
        let store = self.dir("rc-store");
        remove(&prim);
        fresh(&store)?;
        workload::cp_r(&self.dir("repl-large"), &prim)?;
        config(&prim, &store)?;
        let master = Daemon::start(self, true, &prim)?;
        wait_base(&store)?;
        wait_caught_up(&store, None)?;
        master.stop()?;
        self.repl_restore(&store)?;
        let secs = self.size.commit_secs;
        for threads in [1, 8] {
            let (mut alone, mut with) = (Vec::new(), Vec::new());
            let writer = || {
                let mut w = self.ours.writer();
                w.arg(&prim)
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
                let master = Daemon::start(self, true, &prim)?;
                wait_caught_up(&store, None)?;
                measure::sync();
                with.push(parse_rate(
                    &measure::run(&mut writer(), true)?.stdout,
                    "writer",
                )?);
                master.stop()?;
            }
            let (a, w) = (median(&alone), median(&with));
            let r = self.row(
                "9",
                format!("primary commits/s with a master running, sync, {threads} thread(s)"),
                format!("{w:.0} commits/s"),
                format!("{a:.0} commits/s without"),
            );
            r.ratio = Some(w / a);
            r.ratio_is = "with/without";
            r.goal = Goal::AtLeast(0.95);
            r.runs = format!("{} vs {}", all(&with, 0), all(&alone, 0));
        }
        remove(&prim);
        remove(&store);
        Ok(())
    }

    /// `db_replicate -R` of the store against `cp -r && sync` of it.
    fn repl_restore(&mut self, store: &Path) -> R<()> {
        let bytes = workload::dir_bytes(store);
        let (out, cp) = (self.dir("rc-restored"), self.dir("rc-cp"));
        let settle = |dir: &Path| {
            measure::sync();
            remove(dir);
            measure::sync();
        };
        let (mut ours, mut cps): (Vec<Sample>, Vec<Sample>) = (Vec::new(), Vec::new());
        for _ in 0..self.runs() {
            settle(&out);
            fresh(&out)?;
            config(&out, store)?;
            measure::sync();
            ours.push(measure::time(
                self.ours.tool("db_replicate").arg("-R").arg("-h").arg(&out),
            )?);
            settle(&out);
            cps.push(measure::time(
                Command::new("sh")
                    .args(["-c", "cp -r \"$1\" \"$2\" && sync", "-"])
                    .arg(store)
                    .arg(&cp),
            )?);
            settle(&cp);
        }
        let (o, c) = (median_secs(&ours), median_secs(&cps));
        let r = self.row(
            "9",
            format!(
                "db_replicate -R from a directory store, {:.0} MiB",
                mib(bytes)
            ),
            format!("{o:.2} s"),
            format!("{c:.2} s (cp -r && sync of the store)"),
        );
        r.ratio = Some(o / c);
        r.ratio_is = "ours/cp+sync";
        r.goal = Goal::AtMost(1.2);
        r.runs = format!(
            "{} vs {}",
            measure::all_secs(&ours, 2),
            measure::all_secs(&cps, 2)
        );
        Ok(())
    }

    fn repl_failover(&mut self) -> R<()> {
        let mut medians = Vec::new();
        for name in ["repl-small", "repl-large"] {
            let env = self.dir(name);
            let size = mib(workload::dir_bytes(&env));
            let mut times = Vec::new();
            for _ in 0..self.runs() {
                times.push(self.failover_run(&env)?);
            }
            let f = median(&times);
            medians.push(f);
            let r = self.row(
                "9",
                format!(
                    "failover, {size:.0} MiB env: SIGKILL of the primary to the standby's first commit"
                ),
                format!("{f:.2} s"),
                "-".into(),
            );
            r.ratio = Some(f);
            r.ratio_is = "s";
            r.goal = Goal::AtMost(2.0);
            r.runs = all(&times, 2);
        }
        let r = self.row(
            "9",
            "failover time, larger env vs smaller".into(),
            format!("{:.2} s", medians[1]),
            format!("{:.2} s", medians[0]),
        );
        r.ratio = Some(medians[1] / medians[0]);
        r.ratio_is = "large/small";
        r.goal = Goal::AtMost(1.2);
        Ok(())
    }

    /// A primary (a copy of `env`) under a paced writer with a master and
    /// a caught-up standby; then the failover of db_hotfailover(7),
    /// timed from the SIGKILL to the standby's first commit.
    fn failover_run(&self, env: &Path) -> R<f64> {
        let (prim, sb, store) = self.repl_dirs("fo")?;
        remove(&prim);
        workload::cp_r(env, &prim)?;
        config(&prim, &store)?;
        let mut writer = self
            .ours
            .writer()
            .arg(&prim)
            .args(["--rate", &RATE.to_string(), "-c", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("writer: {e}"))?;
        let mut run = || -> R<f64> {
            let master = Daemon::start(self, true, &prim)?;
            wait_base(&store)?;
            let client = Daemon::start(self, false, &sb)?;
            wait_caught_up(&store, Some(&sb))?;
            std::thread::sleep(Duration::from_secs(1));
            let t0 = Instant::now();
            let _ = writer.kill();
            let _ = writer.wait();
            master.stop()?;
            wait_applied(&sb, shipped(&store)?)?;
            client.stop()?;
            measure::time(self.ours.tool("db_recover").arg("-c").arg("-h").arg(&sb))?;
            measure::time(self.ours.writer().arg(&sb).args(["-n", "1"]))?;
            Ok(t0.elapsed().as_secs_f64())
        };
        let r = run();
        let _ = writer.kill();
        let _ = writer.wait();
        for d in [&prim, &sb, &store] {
            remove(d);
        }
        r
    }

    fn repl_bulk(&mut self) -> R<()> {
        let n = self.size.load_records;
        let dump = self.dir("repl-load.dump");
        workload::write_hex_dump(&dump, n)?;
        let (dir, store) = (self.dir("repl-load"), self.dir("repl-load-store"));
        let mut t: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        let mut logged = [0u64; 2];
        for _ in 0..self.runs() {
            for (i, with) in [false, true].into_iter().enumerate() {
                fresh(&dir)?;
                fresh(&store)?;
                config(&dir, &store)?;
                measure::time(self.ours.writer().arg(&dir).args(["-n", "10"]))?;
                let master = if with {
                    let m = Daemon::start(self, true, &dir)?;
                    wait_base(&store)?;
                    Some(m)
                } else {
                    None
                };
                let before = log_bytes(&dir);
                measure::sync();
                t[i].push(measure::time(
                    self.ours
                        .tool("db_load")
                        .arg("-f")
                        .arg(&dump)
                        .arg("-h")
                        .arg(&dir)
                        .arg("c.db"),
                )?);
                logged[i] = log_bytes(&dir).saturating_sub(before);
                if let Some(m) = master {
                    m.stop()?;
                }
            }
        }
        remove(&dir);
        remove(&store);
        let _ = std::fs::remove_file(&dump);
        let (a, w) = (median_secs(&t[0]), median_secs(&t[1]));
        let r = self.row(
            "9",
            format!("db_load of {n} records into a new db with a master running (logged in full)"),
            format!("{w:.2} s, {:.1} MiB log", mib(logged[1])),
            format!("{a:.2} s, {:.1} MiB log without", mib(logged[0])),
        );
        r.ratio = Some(w / a);
        r.ratio_is = "with/without time";
        r.goal = Goal::None;
        r.runs = format!(
            "{} vs {}",
            measure::all_secs(&t[1], 2),
            measure::all_secs(&t[0], 2)
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_lags_until_the_first_probe_that_sees_it() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let acks = [(1, at(0)), (2, at(10)), (3, at(20))];
        let probes = [(at(5), 0), (at(15), 2), (at(40), 3)];
        let l = lags(&acks, &probes);
        assert_eq!(l.len(), 3);
        assert!((l[0] - 0.015).abs() < 1e-9 && (l[1] - 0.005).abs() < 1e-9);
        assert!((l[2] - 0.020).abs() < 1e-9);
        assert!(lags(&[(4, at(0))], &probes)[0].is_infinite());
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.99), 4.0);
    }
}
