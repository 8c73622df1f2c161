//! Rate limits for log lines about things clients or the machine can make happen over and over (refused
//! connections, a full log directory, accept failing for lack of descriptors): pure state machines that say
//! when a line is due, so the callers log it and tests check the decisions without a clock.

use std::time::{Duration, Instant};

/// How often a line about the same repeated event or condition may appear.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// At most one line per `interval` about a repeated event; the next allowed line says how many were left out.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle { interval, last: None, suppressed: 0 }
    }

    /// One more event at `now`: Some(events left unlogged since the last line) if this one is to be logged.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < self.interval) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// What to log about a condition that starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It started; `unlogged` earlier episodes (flapping within the throttle interval) were not logged.
    Started { unlogged: u64 },
    /// An episode whose start was logged ended.
    Ended,
}

/// One line when a condition starts and one when it ends (not one per failure), with starts throttled so a
/// flapping condition does not flood the log; an end is logged only if its start was.
#[derive(Debug)]
pub struct Episode {
    active: bool,
    start_logged: bool,
    starts: Throttle,
}

impl Episode {
    pub fn new(interval: Duration) -> Episode {
        Episode { active: false, start_logged: false, starts: Throttle::new(interval) }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The condition is (`active`) or is not present at `now`; returns the line due, if any.
    pub fn observe(&mut self, active: bool, now: Instant) -> Option<Transition> {
        if active == self.active {
            return None;
        }
        self.active = active;
        if active {
            let unlogged = self.starts.allow(now);
            self.start_logged = unlogged.is_some();
            unlogged.map(|unlogged| Transition::Started { unlogged })
        } else {
            std::mem::take(&mut self.start_logged).then_some(Transition::Ended)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_logs_the_first_event_then_one_per_interval_with_the_count_left_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = Throttle::new(s(10));
        let got: Vec<Option<u64>> = [0, 1, 9, 10, 11, 25].iter().map(|&at| t.allow(t0 + s(at))).collect();
        assert_eq!(got, [Some(0), None, None, Some(2), None, Some(1)]);
    }

    #[test]
    fn episodes_log_each_transition_once_and_throttle_flapping() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Episode::new(s(30));
        // (at second, condition present) -> line due
        let table = [
            (0, true, Some(Transition::Started { unlogged: 0 })),
            (1, true, None), // still full: no new line
            (2, true, None),
            (3, false, Some(Transition::Ended)),
            (4, false, None),
            (5, true, None), // flapping inside the interval: neither start nor end is logged
            (6, false, None),
            (7, true, None),
            (8, false, None),
            (40, true, Some(Transition::Started { unlogged: 2 })),
            (41, false, Some(Transition::Ended)),
        ];
        for (at, active, want) in table {
            assert_eq!(e.observe(active, t0 + s(at)), want, "at {at}s active={active}");
            assert_eq!(e.is_active(), active);
        }
    }
}
