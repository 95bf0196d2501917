//! Progress on a terminal: the library's [`Progress`] reports drawn as indicatif bars and
//! spinners on stderr, or not at all under `--json`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use storectl::progress::Progress;

/// A bar or spinner that the library's reports move.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar of `length` units drawn with `template`, or a hidden one when `show` is false.
    pub fn new(show: bool, length: Option<u64>, template: &str) -> Bar {
        let bar = match (show, length) {
            (false, _) => ProgressBar::hidden(),
            (true, Some(n)) => ProgressBar::new(n),
            (true, None) => ProgressBar::no_length(),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar(bar)
    }

    /// A spinner with the latest message.
    pub fn spinner(show: bool) -> Bar {
        Bar::new(show, None, "{spinner} [{elapsed}] {msg}")
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn message(&self, text: &str) {
        self.0.set_message(text.to_string());
    }

    fn advance(&self, units: u64) {
        self.0.inc(units);
    }

    fn grow(&self, units: u64) {
        self.0.inc_length(units);
    }
}
