//! How fast a copy of a live environment may go (every copy of
//! `db_hotbackup`): as fast as the disk allows while the primary is idle
//! or gone, and slower while the primary's synchronous commits wait longer
//! for their log flush than they need alone, because the copy's writes
//! fill the disk's queue in front of them (bench row 6).
//!
//! * The primary publishes in its region, every 50 ms with commits, the
//!   mean time its commits waited for the flush and the floor of that
//!   (engine/commit_wait.rs). The copy reads the region at most every
//!   [`LOOK_EVERY`] (a shared lock that never waits: the owner is never
//!   held up).
//! * A new sample above the floor by more than [`TOLERANCE_PCT`] cuts the
//!   copy's rate in proportion (at most to an eighth, at least by a
//!   third); one within it raises the rate by [`STEP`] (AIMD, as TCP does
//!   for a shared link). No new sample for [`IDLE_AFTER`]: the primary is
//!   idle (or gone, or never there), and the rate doubles back to none.
//! * A copy of an environment with a live owner starts at [`START_RATE`]
//!   until a sample says how busy the owner is, or [`START_WINDOW`]
//!   without one says it is idle.
//! * While the primary is busy ([`Pacer::primary_busy`]) copies do not
//!   write behind (copy.rs): its log fsyncs waited behind that stream of
//!   write-outs.
//! * `-r` stays what it was, a cap on the average rate over the whole
//!   backup, applied on top.
//! * The environment variable `BDBTOOLS_SELF_PACING=0` turns the
//!   self-pacing off, for the bench's comparison only (bench/main.rs row
//!   6); it is not an operator's setting.
//!
//! Pacing only ever sleeps between chunks: what is copied, and how, is the
//! same at any rate.

use crate::engine::region::{Region, RegionState};
use crate::storage::vfs::SharedVfs;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the copy looks at the primary's region.
pub const LOOK_EVERY: Duration = Duration::from_millis(20);
/// Without a new commit-wait sample for this long the primary is idle.
pub const IDLE_AFTER: Duration = Duration::from_millis(200);
/// How much above its floor the commit wait may be before the copy slows.
pub const TOLERANCE_PCT: u64 = 10;
/// What one good sample adds to the rate, bytes/s.
pub const STEP: f64 = 4.0 * MIB;
/// The copy never goes slower than this, bytes/s.
pub const MIN_RATE: f64 = 4.0 * MIB;
/// What a copy of an environment with a live owner starts at, bytes/s,
/// until the owner's commit wait says how busy it is (or `START_WINDOW`
/// without a sample says it is idle). Starting flat out, every backup
/// began with a burst of a hundred MiB or so before the first sample, and
/// a one-thread primary felt each (bench row 6).
pub const START_RATE: f64 = 128.0 * MIB;
/// How long a copy stays at `START_RATE` without a sample before it takes
/// the owner for idle: a busy owner's second sample (the first new one)
/// comes within about 100 ms of the copy's lease (it publishes every
/// 50 ms); waiting the whole `IDLE_AFTER` cost an idle owner's backup of
/// 1.3 GB 12% of its time (at 64 MiB/s), this 4% (bench row 6).
pub const START_WINDOW: Duration = Duration::from_millis(120);
/// A rate above this is no limit at all, bytes/s.
const NO_LIMIT: f64 = 4096.0 * MIB;
const MIB: f64 = (1u64 << 20) as f64;

/// Paces one backup's copies (shared by all its files): a `-r` cap and the
/// self-pacing by the primary's commit wait, either or both.
#[derive(Debug)]
pub struct Pacer {
    cap: Option<u64>,
    primary: Option<Region>,
    st: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// For the cap: when the first byte went, and how many have gone.
    start: Option<Instant>,
    total: u64,
    /// For the self-pacing.
    adapt: Adapt,
    /// Bytes since the adaptive rate last changed, and since when.
    since: Instant,
    bytes: u64,
    looked: Option<Instant>,
}

impl Pacer {
    /// A pacer for a copy of the environment at `home`: self-paced by its
    /// owner's commit wait (unless turned off for the bench), capped at
    /// `cap` bytes/s if given.
    pub fn for_env(vfs: &SharedVfs, home: &Path, cap: Option<u64>) -> Pacer {
        let primary = self_pacing().then(|| Region::at(vfs, home));
        Pacer::new(cap, primary)
    }

    fn new(cap: Option<u64>, primary: Option<Region>) -> Pacer {
        let now = Instant::now();
        let owned = primary
            .as_ref()
            .and_then(|r| r.try_read())
            .is_some_and(|s| s.owner_pid != 0);
        Pacer {
            cap: cap.map(|c| c.max(1)),
            primary,
            st: Mutex::new(State {
                start: None,
                total: 0,
                adapt: Adapt::new(now, owned),
                since: now,
                bytes: 0,
                looked: None,
            }),
        }
    }

    /// Counts `n` more bytes copied and sleeps while the copy is ahead of
    /// the cap or of the rate the primary allows now.
    pub fn pace(&self, n: u64) {
        let wait = {
            let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = *st.start.get_or_insert(now);
            st.total += n;
            let capped = self
                .cap
                .map_or(Duration::ZERO, |c| ahead_by(st.total, c, now - start));
            capped.max(self.adaptive_wait(&mut st, n, now))
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// A pacer without a cap or a primary whose self-pacing allows `rate`
    /// (`None`: no limit), for tests.
    #[cfg(test)]
    pub(crate) fn test_with_rate(rate: Option<f64>) -> Pacer {
        let p = Pacer::new(None, None);
        p.st.lock().unwrap_or_else(|e| e.into_inner()).adapt.rate = rate;
        p
    }

    /// Whether the primary is busy now: its commits are being waited for
    /// and the self-pacing limits the copy. Copies then leave their
    /// write-out to the periodic fsyncs instead of starting it chunk by
    /// chunk (copy.rs `write_behind`): measured at full size, a
    /// one-thread primary kept 0.86 of its commits with write-behind and
    /// 0.94 without, eight threads 0.85 and 0.90, while an idle primary's
    /// backup takes 4-6 s with it and 7-13 s without.
    pub fn primary_busy(&self) -> bool {
        let st = self.st.lock().unwrap_or_else(|e| e.into_inner());
        st.adapt.rate.is_some()
    }

    /// The sleep the self-pacing asks for after `n` more bytes.
    fn adaptive_wait(&self, st: &mut State, n: u64, now: Instant) -> Duration {
        let Some(region) = &self.primary else {
            return Duration::ZERO;
        };
        st.bytes += n;
        if st.looked.is_none_or(|t| now - t >= LOOK_EVERY) {
            st.looked = Some(now);
            let measured = st.bytes as f64 / (now - st.since).as_secs_f64().max(1e-3);
            let before = st.adapt.rate;
            st.adapt.look(region.try_read().as_ref(), measured, now);
            if st.adapt.rate != before {
                st.since = now;
                st.bytes = 0;
            }
        }
        match st.adapt.rate {
            Some(r) => ahead_by(st.bytes, r as u64, now - st.since),
            None => Duration::ZERO,
        }
    }
}

/// The self-pacing's state: the rate it allows (`None`: no limit) and
/// what it last saw of the primary.
#[derive(Debug, Clone)]
pub(crate) struct Adapt {
    pub rate: Option<f64>,
    commits: Option<u64>,
    fresh: Instant,
}

impl Adapt {
    /// The state at a copy's start: at `START_RATE` when the environment
    /// has a live owner (`owned`), else flat out (idle until a sample says
    /// otherwise).
    pub fn new(now: Instant, owned: bool) -> Adapt {
        Adapt {
            rate: owned.then_some(START_RATE),
            commits: None,
            fresh: match owned {
                true => now.checked_sub(IDLE_AFTER - START_WINDOW).unwrap_or(now),
                false => now.checked_sub(IDLE_AFTER).unwrap_or(now),
            },
        }
    }

    /// One look at the region (`None`: none readable right now); the copy
    /// went at `measured` bytes/s since the rate last changed.
    pub fn look(&mut self, st: Option<&RegionState>, measured: f64, now: Instant) {
        let sample = st.filter(|s| s.commit_wait.recent != 0 && s.owner_pid != 0);
        let new = sample.filter(|s| self.commits.is_some_and(|c| c != s.commits));
        if let Some(s) = sample {
            self.commits = Some(s.commits);
        }
        match new {
            Some(s) => {
                self.fresh = now;
                let (recent, floor) = (
                    u64::from(s.commit_wait.recent),
                    u64::from(s.commit_wait.floor).max(1),
                );
                let current = self.rate.unwrap_or(measured).max(MIN_RATE);
                self.rate = Some(if recent * 100 > floor * (100 + TOLERANCE_PCT) {
                    // Proportional cut: a wait 4x its floor takes the
                    // rate to a quarter at once, not in two halvings.
                    let factor = (floor as f64 / recent as f64).clamp(0.125, 0.67);
                    (current * factor).max(MIN_RATE)
                } else {
                    current + STEP
                });
            }
            None if now - self.fresh >= IDLE_AFTER => {
                self.rate = self.rate.map(|r| r * 2.0).filter(|&r| r < NO_LIMIT);
            }
            None => {}
        }
    }
}

/// Whether copies pace themselves by the primary: yes, unless
/// `BDBTOOLS_SELF_PACING` is `0` (the bench's comparison only).
fn self_pacing() -> bool {
    std::env::var_os("BDBTOOLS_SELF_PACING").is_none_or(|v| v != "0")
}

/// How far a copy of `bytes` done after `elapsed` is ahead of `rate`
/// bytes a second (zero when it is behind).
pub(crate) fn ahead_by(bytes: u64, rate: u64, elapsed: Duration) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64).saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::region::CommitWaitSample;

    #[test]
    fn the_pacer_waits_exactly_as_long_as_the_copy_is_ahead() {
        let s = Duration::from_secs;
        assert_eq!(ahead_by(10 << 20, 10 << 20, s(0)), s(1));
        assert_eq!(ahead_by(10 << 20, 10 << 20, s(1)), Duration::ZERO);
        assert_eq!(ahead_by(10 << 20, 10 << 20, s(3)), Duration::ZERO);
        assert_eq!(ahead_by(30 << 20, 10 << 20, s(1)), s(2));
        assert_eq!(ahead_by(5, 0, s(0)), s(5), "a zero rate counts as 1 byte/s");
    }

    fn region(commits: u64, recent: u16, floor: u16) -> RegionState {
        RegionState {
            owner_pid: 7,
            commits,
            commit_wait: CommitWaitSample { recent, floor },
            ..RegionState::default()
        }
    }

    #[test]
    fn slows_while_commits_wait_longer_than_alone_and_recovers_when_idle() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let fast = 400.0 * MIB;
        let mut a = Adapt::new(t0, false);
        // No region, or one without a sample: flat out.
        a.look(None, fast, ms(1));
        a.look(Some(&RegionState::default()), fast, ms(2));
        assert_eq!(a.rate, None);
        // The first sample only gives the count to compare with.
        a.look(Some(&region(10, 400, 100)), fast, ms(3));
        assert_eq!(a.rate, None);
        // Commits went on waiting 4x their floor: a quarter of the rate.
        a.look(Some(&region(20, 400, 100)), fast, ms(4));
        assert_eq!(a.rate, Some(100.0 * MIB));
        // The same sample read again is not new: nothing changes.
        a.look(Some(&region(20, 400, 100)), fast, ms(5));
        assert_eq!(a.rate, Some(100.0 * MIB));
        // Within the tolerance: one step up.
        a.look(Some(&region(30, 109, 100)), fast, ms(6));
        assert_eq!(a.rate, Some(100.0 * MIB + STEP));
        // Far above: never below the minimum.
        a.look(Some(&region(40, 60000, 100)), fast, ms(7));
        a.look(Some(&region(50, 60000, 100)), fast, ms(8));
        assert_eq!(a.rate, Some(MIN_RATE));
        // No new sample for IDLE_AFTER: the rate doubles until it is none.
        let mut t = 8 + IDLE_AFTER.as_millis() as u64;
        while a.rate.is_some() {
            a.look(Some(&region(50, 60000, 100)), fast, ms(t));
            t += 1;
        }
        assert!(t < 8 + IDLE_AFTER.as_millis() as u64 + 20, "{t}");
    }

    /// A copy of a live owner's environment starts at `START_RATE`, not
    /// flat out: a busy owner's first sample cuts from there, an idle
    /// owner's silence lifts the limit after `START_WINDOW`.
    #[test]
    fn a_copy_of_a_live_owner_starts_at_the_start_rate() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut busy = Adapt::new(t0, true);
        assert_eq!(busy.rate, Some(START_RATE));
        busy.look(Some(&region(10, 400, 100)), START_RATE, ms(20));
        busy.look(Some(&region(20, 400, 100)), START_RATE, ms(70));
        // (both within START_WINDOW: the owner was never taken for idle)
        assert_eq!(busy.rate, Some(START_RATE / 4.0));
        let mut idle = Adapt::new(t0, true);
        let mut t = 1;
        while idle.rate.is_some() {
            idle.look(Some(&RegionState::default()), START_RATE, ms(t));
            t += 20;
        }
        let ramp = START_WINDOW.as_millis() as u64;
        assert!(t > ramp && t < ramp + 20 * 12, "flat out after {t} ms");
    }
}
