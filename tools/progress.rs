//! Progress bars on a terminal: the tools' [`Progress`] for the long work
//! of `db_hotbackup`, `db_recover`, `db_load`, `db_copy` and
//! `db_replicate`, drawn with `indicatif` on standard error.
//!
//! Contract:
//! * a bar is drawn only when standard error is a terminal and
//!   `BDBTOOLS_PROGRESS` is not `0`; otherwise [`on_stderr`] gives `None`
//!   and not one byte more is written than without it, so scripts, logs
//!   and the Berkeley DB-compatible outputs are unchanged;
//! * one bar at a time (one per phase: its name, bytes done of the total,
//!   the rate and the time left; a spinner with the bytes and the rate when
//!   the total is unknown), cleared when the phase or the work ends, so a
//!   finished run leaves the terminal as it would without bars;
//! * every other line a tool prints while a bar may be drawn goes through
//!   [`suspend`] (`cli::warn` and the `-v` lines do), which takes the bar
//!   off the screen, prints, and draws it again: lines never interleave
//!   with a bar. The harness clears the bar ([`clear`]) when the tool's
//!   work returns, before its error line or the rest of its output;
//! * the bar never hides the cursor or changes the terminal's modes, so a
//!   Ctrl-C that kills a tool mid-bar leaves a terminal in its usual state
//!   (the tools that catch the signal clear the bar before they report).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use libcore::progress::{Phase, Progress};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The environment variable that turns the bars off when it is `0`.
pub const ENV_VAR: &str = "BDBTOOLS_PROGRESS";

/// How often a bar is redrawn when nothing advances (the rate and the
/// time left move on, and a spinner turns).
const TICK: Duration = Duration::from_millis(200);

/// The bar on the screen now, if any: one per process, so that
/// [`suspend`] and [`clear`] find it from anywhere.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn bar() -> MutexGuard<'static, Option<ProgressBar>> {
    BAR.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process shows progress bars: standard error is a terminal
/// and `BDBTOOLS_PROGRESS` is not `0`.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os(ENV_VAR).is_none_or(|v| v != "0")
}

/// The progress a tool passes to libcore: bars on standard error when
/// [`enabled`], else `None` (nothing is shown, nothing is printed).
pub fn on_stderr() -> Option<Arc<dyn Progress>> {
    enabled().then(|| Arc::new(Bars) as Arc<dyn Progress>)
}

/// Draws each phase as a bar on standard error (see the module comment).
struct Bars;

impl Progress for Bars {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let mut slot = bar();
        if let Some(old) = slot.take() {
            done(&old);
        }
        let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        b.set_style(style(phase, total.is_some()));
        b.set_message(phase.name());
        b.enable_steady_tick(TICK);
        b.force_draw();
        *slot = Some(b);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = bar().as_ref() {
            b.inc(bytes);
        }
    }

    fn finish(&self) {
        clear();
    }
}

/// A bar as wide as the terminal leaves room for, when the total is
/// known; else a spinner with the bytes so far, or only the time for a
/// phase that counts no bytes (a load's commit).
fn style(phase: Phase, with_total: bool) -> ProgressStyle {
    let template = match (with_total, phase) {
        (true, _) => "{msg:<14} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
        (false, Phase::Commit) => "{msg:<14} {spinner} {elapsed}",
        (false, _) => "{msg:<14} {spinner} {bytes} {bytes_per_sec} {elapsed}",
    };
    // The templates are constants: a bad one is a bug any run shows.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .tick_chars("|/-\\ ")
}

/// Shows where the phase ended, then takes the bar off the screen.
fn done(b: &ProgressBar) {
    b.force_draw();
    b.finish_and_clear();
}

/// Takes the bar (if any) off the screen for good: when a tool's work is
/// over or failed, before it prints its last lines.
pub fn clear() {
    let old = bar().take();
    if let Some(b) = old {
        done(&b);
    }
}

/// Runs `print` (which writes a line to standard output or error) with
/// the bar off the screen, then draws the bar again.
pub fn suspend<R>(print: impl FnOnce() -> R) -> R {
    let current = bar().clone();
    match current {
        Some(b) => b.suspend(print),
        None => print(),
    }
}
