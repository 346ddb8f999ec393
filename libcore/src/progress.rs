//! How long operations tell their caller how far they are, without
//! printing (libcore never prints): a [`Progress`] the caller passes in
//! its options hears that a [`Phase`] starts (with its total in bytes when
//! known), that bytes of it are done, and that the work is over. The tools
//! draw a bar on a terminal with it; everything else passes nothing.
//!
//! Invariants:
//! * calls are cheap and rare: an operation advances once per chunk it
//!   copies (a MiB) or per [`STEP`] of log it replays, never per page or
//!   record, so an implementation may take a lock in each call;
//! * the advances of a phase add up to the bytes it actually copied,
//!   replayed or read (a file that grew while it was copied can pass its
//!   total; redo that stops at a time or a torn tail stays under it);
//! * a phase ends when the next one starts or when [`Progress::finish`] is
//!   called; an operation that fails calls neither, so the caller clears
//!   whatever it shows when the call returns.
//!
//! This module sits beside `error.rs` and `types.rs`, outside the layers:
//! every layer may report progress through it.

use std::fmt;
use std::io::{self, Read};

/// Bytes of log redo replays between two advances.
pub const STEP: u64 = 1 << 20;

/// The kinds of long work; each tool shows its [`name`](Phase::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// `db_hotbackup`: the database files (total: the sum of their sizes).
    CopyDatabases,
    /// `db_hotbackup`: the log files (total: their bytes to copy).
    CopyLogs,
    /// Replaying the log (total: the log bytes from where redo starts).
    Redo,
    /// `db_copy`: every file named (total: the sum of their sizes).
    Copy,
    /// `db_load`: the input read (total: its size when known).
    Load,
    /// `db_load`: committing the load and its checkpoint (no total).
    Commit,
    /// `db_replicate -M`: a base copied into the store.
    WriteBase,
    /// A restore from the store: the base's database files.
    FetchBase,
    /// A restore from the store: the log segments after the base (no
    /// total).
    FetchLog,
}

impl Phase {
    /// What a progress line calls the phase.
    pub fn name(self) -> &'static str {
        match self {
            Phase::CopyDatabases => "copy databases",
            Phase::CopyLogs => "copy logs",
            Phase::Redo => "redo",
            Phase::Copy => "copy",
            Phase::Load => "load",
            Phase::Commit => "commit",
            Phase::WriteBase => "write base",
            Phase::FetchBase => "fetch base",
            Phase::FetchLog => "fetch log",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hears how far a long operation is. Shared between threads (a replica
/// base is copied on one of its own), hence `Send + Sync` and `&self`.
pub trait Progress: Send + Sync {
    /// `phase` begins, ending the one before; `total` bytes when known.
    fn start(&self, phase: Phase, total: Option<u64>);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
    /// The operation's work is over (it still returns its result).
    fn finish(&self);
}

impl fmt::Debug for dyn Progress + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress")
    }
}

/// Hears nothing: for callers that must pass a [`Progress`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: Phase, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Tells `progress` (if any) that `phase` starts.
pub(crate) fn start(progress: Option<&dyn Progress>, phase: Phase, total: Option<u64>) {
    if let Some(p) = progress {
        p.start(phase, total);
    }
}

/// Tells `progress` (if any) that `bytes` more are done.
pub(crate) fn advance(progress: Option<&dyn Progress>, bytes: u64) {
    if let (Some(p), 1..) = (progress, bytes) {
        p.advance(bytes);
    }
}

/// Tells `progress` (if any) that the work is over.
pub(crate) fn finish(progress: Option<&dyn Progress>) {
    if let Some(p) = progress {
        p.finish();
    }
}

/// A reader that advances a [`Progress`] by the bytes each read returns:
/// what `db_load` wraps its input in (under its buffering, so one advance
/// per buffer refill).
pub struct ProgressRead<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<'a, R: Read> ProgressRead<'a, R> {
    /// Reads from `inner`, advancing `progress` by each read's count.
    pub fn new(inner: R, progress: &'a dyn Progress) -> ProgressRead<'a, R> {
        ProgressRead { inner, progress }
    }
}

impl<R: Read> Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        advance(Some(self.progress), n as u64);
        Ok(n)
    }
}

/// Keeps a running position (redo's place in the log) and advances a
/// [`Progress`] by the distance covered once it is [`STEP`] or more, and
/// at the end by whatever is left: one call per MiB, not per record.
pub(crate) struct Stepper<'a> {
    progress: Option<&'a dyn Progress>,
    /// The position the last advance reached.
    told: u64,
}

impl<'a> Stepper<'a> {
    /// Counting from position `from`.
    pub(crate) fn new(progress: Option<&'a dyn Progress>, from: u64) -> Stepper<'a> {
        Stepper {
            progress,
            told: from,
        }
    }

    /// Whether anyone listens (so the caller can skip computing positions).
    pub(crate) fn listening(&self) -> bool {
        self.progress.is_some()
    }

    /// The work has reached position `at`.
    pub(crate) fn reach(&mut self, at: u64) {
        if at >= self.told + STEP {
            self.flush(at);
        }
    }

    /// The work has reached `at` and stops there: advance by what is left.
    pub(crate) fn flush(&mut self, at: u64) {
        if at > self.told {
            advance(self.progress, at - self.told);
            self.told = at;
        }
    }
}

/// A [`Progress`] that records every call, for tests (`libcore::testing`).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Recorder {
    calls: std::sync::Mutex<Vec<Call>>,
}

/// One call a [`Recorder`] heard.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Start(Phase, Option<u64>),
    Advance(u64),
    Finish,
}

#[cfg(any(test, feature = "testing"))]
impl Recorder {
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Each phase started, with its total and the sum of its advances, in
    /// order (a phase started twice appears twice).
    pub fn phases(&self) -> Vec<(Phase, Option<u64>, u64)> {
        let mut out: Vec<(Phase, Option<u64>, u64)> = Vec::new();
        for c in self.calls() {
            match c {
                Call::Start(p, t) => out.push((p, t, 0)),
                Call::Advance(n) => match out.last_mut() {
                    Some(last) => last.2 += n,
                    None => panic!("an advance before any phase started"),
                },
                Call::Finish => {}
            }
        }
        out
    }

    /// The largest single advance: how coarse the calls are.
    pub fn largest_advance(&self) -> u64 {
        self.calls()
            .iter()
            .filter_map(|c| match c {
                Call::Advance(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn push(&self, c: Call) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }
}

#[cfg(any(test, feature = "testing"))]
impl Progress for Recorder {
    fn start(&self, phase: Phase, total: Option<u64>) {
        self.push(Call::Start(phase, total));
    }
    fn advance(&self, bytes: u64) {
        self.push(Call::Advance(bytes));
    }
    fn finish(&self) {
        self.push(Call::Finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepper_advances_once_per_step_and_the_rest_at_the_end() {
        let r = Recorder::default();
        let mut s = Stepper::new(Some(&r), 100);
        for at in (100..100 + 3 * STEP + 7).step_by(1000) {
            s.reach(at);
        }
        s.flush(100 + 3 * STEP + 7);
        let sum: u64 = r
            .calls()
            .iter()
            .map(|c| match c {
                Call::Advance(n) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(sum, 3 * STEP + 7);
        let calls = r.calls().len();
        assert!((3..=4).contains(&calls), "{:?}", r.calls());
        // Nothing is told twice, and going back tells nothing.
        s.flush(100 + 3 * STEP + 7);
        s.flush(50);
        assert_eq!(r.calls().len(), calls);
    }

    #[test]
    fn a_progress_read_advances_by_the_bytes_read() {
        let r = Recorder::default();
        let text = vec![7u8; 300_000];
        let mut out = Vec::new();
        let mut reader = std::io::BufReader::with_capacity(
            1 << 16,
            ProgressRead::new(std::io::Cursor::new(&text), &r),
        );
        std::io::copy(&mut reader, &mut out).unwrap();
        assert_eq!(out, text);
        let advanced: u64 = r
            .calls()
            .iter()
            .map(|c| match c {
                Call::Advance(n) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(advanced, 300_000);
    }
}
