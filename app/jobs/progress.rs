//! A progress bar on standard error for long jobs (exports, backfills), shown only when
//! standard error is a terminal so that cron logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use crate::metering::Progress;

const WIDTH: u64 = 30;

/// Draws `label [#####.....] 12/31 (40 s)` in place; a no-op off a terminal.
pub struct TerminalProgress {
    label: String,
    started: Instant,
    enabled: bool,
    last_drawn: Mutex<Option<u64>>,
}

impl TerminalProgress {
    pub fn new(label: impl Into<String>) -> TerminalProgress {
        TerminalProgress {
            label: label.into(),
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            last_drawn: Mutex::new(None),
        }
    }

    /// Ends the bar's line so later output starts on a fresh one.
    pub fn finish(&self) {
        let drawn = self.last_drawn.lock().map(|d| d.is_some()).unwrap_or(false);
        if self.enabled && drawn {
            eprintln!();
        }
    }
}

/// The bar's text, without the carriage return.
pub fn bar(label: &str, done: u64, total: u64, elapsed_secs: u64) -> String {
    let total = total.max(1);
    let done = done.min(total);
    let filled = done * WIDTH / total;
    format!(
        "{label} [{}{}] {done}/{total} ({elapsed_secs} s)",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize)
    )
}

impl Progress for TerminalProgress {
    fn step(&self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last_drawn.lock() else {
            return;
        };
        if *last == Some(done) {
            return;
        }
        *last = Some(done);
        let line = bar(&self.label, done, total, self.started.elapsed().as_secs());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_never_overflows() {
        assert_eq!(
            bar("export", 0, 4, 0),
            format!("export [{}] 0/4 (0 s)", ".".repeat(30))
        );
        assert_eq!(
            bar("export", 2, 4, 3),
            format!("export [{}{}] 2/4 (3 s)", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(
            bar("export", 9, 4, 3),
            format!("export [{}] 4/4 (3 s)", "#".repeat(30))
        );
    }
}
