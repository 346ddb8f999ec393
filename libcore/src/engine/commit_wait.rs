//! What the owner's synchronous commits feel: how long each waited for its
//! log flush. Committers add to two atomics (no lock, no system call); the
//! owner's housekeeping thread turns them every 50 ms into a sample for the
//! region ([`CommitWaitSample`]), where a hot backup on the same disk
//! reads it and slows down while the commits wait longer than they need
//! alone (ops/pacing.rs).
//!
//! The floor ("what the commits need alone") is the lowest mean seen,
//! rising 1% a sample, so it follows the workload when that changes (more
//! threads wait longer in their group) but not the few seconds a backup's
//! pressure lasts before the backup backs off.

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

/// The next sample from the previous one and a new mean (`us`).
pub fn next_sample(prev: CommitWaitSample, mean_us: u64) -> CommitWaitSample {
    let recent = CommitWaitSample::units(mean_us).max(1);
    let risen = if prev.floor == 0 {
        u16::MAX
    } else {
        // +1%, at least one unit, so a floor of a few units can rise too.
        prev.floor.saturating_add((prev.floor / 100).max(1))
    };
    CommitWaitSample {
        recent,
        floor: risen.min(recent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_takes_the_lowest_mean_and_rises_slowly() {
        let s = next_sample(CommitWaitSample::default(), 400);
        assert_eq!((s.recent, s.floor), (100, 100));
        let s = next_sample(s, 4000);
        assert_eq!(
            (s.recent, s.floor),
            (1000, 101),
            "a spike moves the floor 1%"
        );
        let s = next_sample(s, 200);
        assert_eq!((s.recent, s.floor), (50, 50));
        let w = CommitWait::default();
        assert_eq!(w.take_mean_us(), None);
        w.record(Duration::from_micros(100));
        w.record(Duration::from_micros(300));
        assert_eq!(w.take_mean_us(), Some(200));
        assert_eq!(w.take_mean_us(), None);
    }
}
