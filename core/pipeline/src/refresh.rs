//! Steady refreshes: a steady repeat's `count`, `last_seen` and `last_event` wait in
//! memory and are written in rounds, each spread over most of the refresh interval, so
//! that they never hold the database's single writer for long while appends and
//! notifications wait behind it (see docs/pipeline.md and docs/benchmarks.md).

use crate::state::AlertKey;

/// Most steady refreshes written per batch while a refresh cycle is under way.
pub(crate) const REFRESH_SLICE: usize = 200;
/// A refresh cycle spreads its writes over this share of the interval (in quarters),
/// leaving the rest as slack for batches that carried none.
const REFRESH_SPREAD_QUARTERS: i64 = 3;
/// Fewest refreshes a quiet system wakes up to write.
pub(crate) const REFRESH_MIN_WAKE: usize = 25;

/// How long a refresh cycle's writes are spread over, for a refresh interval of
/// `every` ms.
pub(crate) fn spread(every: i64) -> i64 {
    every * REFRESH_SPREAD_QUARTERS / 4
}

/// One round of writing steady refreshes. Each batch writes the share of the round that
/// is due by its time, so the writes are spread evenly over the interval.
#[derive(Debug)]
pub(crate) struct RefreshCycle {
    pub(crate) started: i64,
    /// The alerts unflushed when the cycle started: each is written in this cycle, so
    /// none waits longer than the interval and the cycle's spread.
    pub(crate) keys: Vec<AlertKey>,
    pub(crate) total: usize,
}

impl RefreshCycle {
    pub(crate) fn written(&self) -> usize {
        self.total - self.keys.len()
    }

    /// How many of the cycle's refreshes are due by `now`, spread over `spread` ms.
    pub(crate) fn due(&self, now: i64, spread: i64) -> usize {
        let elapsed = (now - self.started).clamp(0, spread.max(1)) as u128;
        let due = (self.total as u128 * elapsed).div_ceil(spread.max(1) as u128) as usize;
        due.clamp(1, self.total)
    }

    /// When at least `n` more refreshes are due.
    pub(crate) fn next_due(&self, n: usize, spread: i64) -> i64 {
        let target = (self.written() + n).min(self.total) as i64;
        self.started + spread * target / self.total.max(1) as i64
    }
}
