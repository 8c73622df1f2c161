//! Progress of long operations on stderr, only when stderr is a terminal (never in pipes, logs or tests).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    label: &'static str,
    total: Option<u64>,
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(label: &'static str, total: Option<u64>) -> Progress {
        Progress { label, total, enabled: std::io::stderr().is_terminal(), last: None }
    }

    /// Shows `done` (at most every 200 ms).
    pub fn update(&mut self, done: u64) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let _ = write!(std::io::stderr(), "\r\x1b[K{}", line(self.label, done, self.total));
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

fn line(label: &str, done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) => format!("{label} {done}/{t}"),
        None => format!("{label} {done}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines() {
        assert_eq!(super::line("consumed", 5, Some(10)), "consumed 5/10");
        assert_eq!(super::line("produced", 7, None), "produced 7");
    }
}
