//! Running a command and measuring it: wall time (a monotonic clock around
//! spawn and reap) and the child's peak resident set size, which only the
//! kernel knows after the child is gone, so the child is reaped with
//! `wait4(2)` and its `rusage` instead of `std::process::Child::wait`.

use std::process::{Command, Stdio};
use std::time::Instant;

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

/// `struct rusage` of Linux on 64-bit targets: two timevals, then 14 longs
/// of which `ru_maxrss` (KiB) is the first.
#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub secs: f64,
    pub max_rss_kib: u64,
}

/// What a finished command left behind.
pub struct Finished {
    pub sample: Sample,
    pub stdout: String,
}

/// Runs `cmd` to completion with stdin closed and stderr passed through,
/// capturing stdout only when `capture` (otherwise it goes to /dev/null, so
/// a tool's listing costs what writing it costs, not a terminal).
/// A non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command, capture: bool) -> Result<Finished, String> {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    cmd.stdout(if capture {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    // Read stdout before reaping, so a chatty child cannot block on a full
    // pipe while we wait for it.
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        out.read_to_string(&mut stdout)
            .map_err(|e| format!("{what}: reading its output: {e}"))?;
    }
    let pid = child.id() as i32;
    let mut status = 0i32;
    let mut usage = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: pid is our own unreaped child (std never waits for it: we
    // drop `child` without calling wait), and both pointers are to live,
    // correctly laid out locals.
    let r = loop {
        let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    drop(child);
    if r < 0 {
        return Err(format!(
            "{what}: wait4: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (signalled, code) = (status & 0x7f, (status >> 8) & 0xff);
    if signalled != 0 {
        return Err(format!("{what}: killed by signal {signalled}"));
    }
    if code != 0 {
        return Err(format!("{what}: exit status {code}"));
    }
    Ok(Finished {
        sample: Sample {
            secs,
            max_rss_kib: usage.maxrss.max(0) as u64,
        },
        stdout,
    })
}

/// Runs `cmd` and returns its sample (stdout discarded).
pub fn time(cmd: &mut Command) -> Result<Sample, String> {
    run(cmd, false).map(|f| f.sample)
}

/// The median of `xs` (the lower middle one for an even count: a value
/// that was really measured).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get((v.len().max(1) - 1) / 2).copied().unwrap_or(f64::NAN)
}

/// Median seconds of `samples`.
pub fn median_secs(samples: &[Sample]) -> f64 {
    median(&samples.iter().map(|s| s.secs).collect::<Vec<_>>())
}

/// Largest peak RSS of `samples`, in MiB.
pub fn peak_rss_mib(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0
}

/// All values, for the "runs" column: "0.31/0.29/0.30".
pub fn all(xs: &[f64], decimals: usize) -> String {
    xs.iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// Every run's seconds, for the "runs" column.
pub fn all_secs(samples: &[Sample], decimals: usize) -> String {
    all(
        &samples.iter().map(|s| s.secs).collect::<Vec<_>>(),
        decimals,
    )
}

/// Flushes dirty pages of the whole system, so one run's write-back does
/// not land in the next run's time.
pub fn sync() {
    let _ = Command::new("sync").status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_picks_a_measured_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn run_reports_exit_status_and_rss() {
        let f = run(Command::new("sh").args(["-c", "echo hi"]), true).unwrap();
        assert_eq!(f.stdout, "hi\n");
        assert!(f.sample.max_rss_kib > 0);
        let e = run(Command::new("sh").args(["-c", "exit 3"]), false)
            .err()
            .unwrap();
        assert!(e.ends_with("exit status 3"), "{e}");
    }
}
