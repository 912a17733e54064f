//! Progress of a long wait (`wait`, `decommission --wait`): a bar on a terminal (indicatif,
//! drawn on stderr so results on stdout stay clean), nothing in scripts — there the verb
//! prints plain lines instead.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that is only drawn on a terminal.
pub struct Progress {
    bar: ProgressBar,
    drawn: bool,
}

impl Progress {
    /// A bar out of `total`, drawn only when stderr is a terminal.
    pub fn new(total: u64) -> Progress {
        let drawn = std::io::stderr().is_terminal();
        let target = if drawn {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template("[{bar:24}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar, drawn }
    }

    /// Whether the bar is drawn (a terminal): callers print plain lines otherwise.
    pub fn drawn(&self) -> bool {
        self.drawn
    }

    /// Moves the bar to `pos` of `total` with `message` beside it.
    pub fn set(&self, pos: u64, total: u64, message: String) {
        self.bar.set_length(total);
        self.bar.set_position(pos);
        self.bar.set_message(message);
    }

    /// Removes the bar (the verb then prints its result).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
