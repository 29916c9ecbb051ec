//! Journal rows this process committed, handed to its pipeline thread in memory.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tocsin_model::rows::Incoming;
use tocsin_pipeline::worker::{self, Fed, MAX_BATCH};

/// Most journal rows waiting in memory for the pipeline.
const MAX_FED: usize = 2 * MAX_BATCH;

/// Journal rows this process committed, handed to the pipeline in memory so that it
/// need not read them back. The journal is still the record: the pipeline takes rows
/// from here only when they follow its cursor without a gap, and reads the database
/// otherwise (rows appended by another process, or while it lags behind).
#[derive(Debug, Default)]
pub struct Feed {
    rows: Mutex<VecDeque<FedRow>>,
}

/// A row with the counters its append read ([`tocsin_store::Appended::versions`]).
type FedRow = (Incoming, (i64, i64));

impl Feed {
    /// Whether `n` more rows fit: a pipeline that lags behind reads the journal anyway,
    /// and the rows would only take memory.
    pub fn has_room(&self, n: usize) -> bool {
        self.lock().len() + n <= MAX_FED
    }

    /// Rows just committed, in seq order, with the counters their append read.
    pub fn push(&self, rows: Vec<Incoming>, versions: (i64, i64)) {
        let mut fed = self.lock();
        if fed.len() + rows.len() <= MAX_FED {
            fed.extend(rows.into_iter().map(|row| (row, versions)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FedRow>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl worker::Feed for Feed {
    /// Up to `max` rows right after `cursor`, with no gap; `None` when the feed does not
    /// start right there.
    fn take(&self, cursor: i64, max: usize) -> Option<Fed> {
        let mut fed = self.lock();
        while fed.front().is_some_and(|(row, _)| row.seq <= cursor) {
            fed.pop_front();
        }
        if fed.front()?.0.seq != cursor + 1 {
            return None;
        }
        let mut taken = Fed {
            rows: Vec::with_capacity(fed.len().min(max)),
            versions: fed.front()?.1,
        };
        let mut next = cursor + 1;
        while taken.rows.len() < max && fed.front().is_some_and(|(row, _)| row.seq == next) {
            if let Some((row, versions)) = fed.pop_front() {
                taken.rows.push(row);
                taken.versions = versions;
            }
            next += 1;
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_pipeline::worker::Feed as _;

    fn row(seq: i64) -> Incoming {
        Incoming {
            seq,
            id: format!("e{seq}"),
            team: "ops".into(),
            fingerprint: "00".into(),
            source: "api".into(),
            received_at: 0,
            monitor: "m".into(),
            status: tocsin_model::Status::Healthy,
            labels: "{}".into(),
            reported_since: None,
            reported_count: None,
            event: "{}".into(),
            trace_id: None,
        }
    }

    fn seqs(fed: Option<Fed>) -> Option<Vec<i64>> {
        fed.map(|fed| fed.rows.iter().map(|r| r.seq).collect())
    }

    #[test]
    fn the_feed_gives_only_rows_right_after_the_cursor_and_stops_at_a_gap() {
        let feed = Feed::default();
        feed.push((4..=6).map(row).collect(), (0, 0));
        feed.push((9..=10).map(row).collect(), (0, 0));
        assert_eq!(seqs(feed.take(2, 100)), None, "row 3 is not in memory");
        assert_eq!(
            seqs(feed.take(4, 1)),
            Some(vec![5]),
            "older rows are dropped"
        );
        assert_eq!(
            seqs(feed.take(5, 100)),
            Some(vec![6]),
            "stops before the gap"
        );
        assert_eq!(
            seqs(feed.take(6, 100)),
            None,
            "7 and 8 are in the journal only"
        );
        assert_eq!(seqs(feed.take(8, 100)), Some(vec![9, 10]));
        assert_eq!(seqs(feed.take(10, 100)), None, "empty");
    }

    #[test]
    fn a_full_feed_takes_no_more_rows() {
        let feed = Feed::default();
        feed.push((1..=MAX_FED as i64).map(row).collect(), (0, 0));
        assert!(!feed.has_room(1));
        feed.push(vec![row(MAX_FED as i64 + 1)], (0, 0));
        let taken = feed.take(0, usize::MAX).expect("rows").rows;
        assert_eq!(
            taken.len(),
            MAX_FED,
            "the pipeline reads the rest from the journal"
        );
        assert!(feed.has_room(MAX_FED));
    }
}
