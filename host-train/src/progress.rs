//! Progress bars for the long phases (kernel matrices, AGOP).
//!
//! Bars draw on stderr only when it is a terminal (indicatif hides them
//! otherwise), so logs and tests stay clean; `quiet` hides them always.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Makes phase bars, or hidden ones when quiet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Never draw.
    pub quiet: bool,
}

impl Progress {
    /// A bar for a phase of `len` work units (pairs or images).
    pub fn bar(&self, label: &str, len: u64) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {percent:>3}% {elapsed_precise} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
