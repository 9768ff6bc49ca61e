//! Progress bars for the long phases (kernel matrices, AGOP, decoding).
//!
//! Bars draw on stderr only when it is a terminal (indicatif hides them
//! otherwise), so logs and tests stay clean; `quiet` hides them always. A
//! [`Phase`] clears its bar when dropped, on every exit path, so no caller
//! pairs a start with a finish; indicatif stays out of the crate's API.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Makes phase bars, or hidden ones when quiet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Never draw.
    pub quiet: bool,
}

impl Progress {
    /// A bar for a phase of `len` work units (pairs or images), drawn until
    /// the returned [`Phase`] is dropped.
    pub fn bar(&self, label: &str, len: u64) -> Phase {
        if self.quiet {
            return Phase::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {percent:>3}% {elapsed_precise} eta {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Phase(bar)
    }
}

/// One phase's bar (possibly hidden); cleared from the terminal on drop.
#[derive(Debug)]
pub struct Phase(ProgressBar);

impl Phase {
    /// A phase that never draws (inner work of a phase that has its own bar).
    pub fn hidden() -> Self {
        Phase(ProgressBar::hidden())
    }

    /// Shows `text` after the bar (a running figure: loss, accuracy).
    pub fn message(&self, text: &str) {
        self.0.set_message(text.to_string());
    }

    /// Advances by `n` work units.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
