//! What the owner's synchronous commits feel: how long each waited for its
//! log flush. Committers add to two atomics (no lock, no system call); the
//! owner's housekeeping thread turns them every 50 ms into a sample for the
//! region ([`CommitWaitSample`]), where a hot backup on the same disk
//! reads it and slows down while the commits wait longer than they need
//! alone (ops/pacing.rs).
//!
//! The floor ("what the commits need alone") is the lowest mean seen,
//! rising slowly so it follows the workload when that changes (more
//! threads wait longer in their group): 1% a sample while no copy holds a
//! lease, 0.02% a sample (doubling in about three minutes) while one does,
//! so it does not follow the copy's own pressure. It rose 1% a sample, but
//! at least one 4 us unit, always: a 100 us floor (25 units) rose 4% a
//! sample, 80% a second, and caught up with a copy's pressure before the
//! copy backed off (bench row 6, 1 thread: 0.81). The owner keeps the
//! floor in microseconds; the region gets it in units.

use super::region::CommitWaitSample;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct CommitWait {
    total_us: AtomicU64,
    count: AtomicU64,
}

impl CommitWait {
    /// One synchronous commit waited `d` for its flush.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The mean wait of the commits since the last call, microseconds;
    /// `None` when there were none.
    pub fn take_mean_us(&self) -> Option<u64> {
        let n = self.count.swap(0, Ordering::Relaxed);
        let total = self.total_us.swap(0, Ordering::Relaxed);
        (n > 0).then(|| total / n)
    }
}

/// How much the floor rises a sample (50 ms) while no copy holds a lease.
const RISE_FREE: f64 = 0.01;
/// How much it rises a sample while one does.
const RISE_LEASED: f64 = 0.0002;

/// What the owner's commits need alone (see the module comment); kept by
/// the owner's housekeeping thread between samples.
#[derive(Debug, Default, Clone, Copy)]
pub struct Floor {
    us: Option<f64>,
}

impl Floor {
    /// The sample for an interval whose commits waited `mean_us` on
    /// average; `leased` while a copy holds a lease.
    pub fn next(&mut self, mean_us: u64, leased: bool) -> CommitWaitSample {
        let mean = mean_us as f64;
        let rise = if leased { RISE_LEASED } else { RISE_FREE };
        let floor = self.us.map_or(mean, |f| (f * (1.0 + rise)).min(mean));
        self.us = Some(floor);
        let recent = CommitWaitSample::units(mean_us).max(1);
        CommitWaitSample {
            recent,
            floor: CommitWaitSample::units(floor.round() as u64)
                .max(1)
                .min(recent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_takes_the_lowest_mean_and_rises_slowly() {
        let mut f = Floor::default();
        let s = f.next(400, false);
        assert_eq!((s.recent, s.floor), (100, 100));
        let s = f.next(4000, false);
        assert_eq!((s.recent, s.floor), (1000, 101), "a spike moves it 1%");
        let s = f.next(200, false);
        assert_eq!((s.recent, s.floor), (50, 50));
        let w = CommitWait::default();
        assert_eq!(w.take_mean_us(), None);
        w.record(Duration::from_micros(100));
        w.record(Duration::from_micros(300));
        assert_eq!(w.take_mean_us(), Some(200));
        assert_eq!(w.take_mean_us(), None);
    }

    /// Regression: a floor of a few units rose at least one unit (4 us) a
    /// sample, 4% for a 100 us floor, so under a copy's steady pressure it
    /// caught up within a second and the copy stopped backing off. While
    /// a copy holds a lease, 100 samples (5 s) of pressure now move a
    /// 100 us floor 2%; without a lease it follows in a few seconds.
    #[test]
    fn under_a_copys_pressure_the_floor_stays_what_the_commits_need_alone() {
        let mut f = Floor::default();
        f.next(100, false);
        let mut s = CommitWaitSample::default();
        for _ in 0..100 {
            s = f.next(150, true);
        }
        assert_eq!(s.recent, 38);
        assert!(s.floor <= 26, "floor {} units after 5 s leased", s.floor);
        for _ in 0..100 {
            s = f.next(150, false);
        }
        assert_eq!(s.floor, s.recent, "unleased, it follows the workload");
    }
}
