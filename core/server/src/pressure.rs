//! How far the pipeline is behind the journal, known in memory (no query per request),
//! and the bound past which ingest answers `503` (`tocsin serve --max-lag-events`,
//! `--max-lag-seconds`).
//!
//! The journal writer reports each commit (its seqs and size), the pipeline its cursor
//! after each batch. The lag is what was committed after the cursor; its age is that of
//! the oldest commit not yet processed. An append first reserves room for its events,
//! so requests in flight together cannot pass the bound: the journal never holds more
//! than the bound allows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use tocsin_api::Busy;

/// How long `/readyz` says "not ready" after an append was refused: as long as the
/// refused client is told to wait (`Retry-After: 1`).
pub const REFUSED_HOLD: Duration = Duration::from_secs(1);

/// When the lag refuses ingest. `None` fields: no bound of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bound {
    /// Most events waiting for the pipeline.
    pub events: Option<u64>,
    /// Oldest age of a waiting event.
    pub age: Option<Duration>,
}

/// The lag, and the bound it is held to.
#[derive(Debug)]
pub struct Pressure {
    bound: Bound,
    inner: Mutex<Inner>,
    /// The pipeline's cursor, for whoever waits on an event to be processed.
    cursor: watch::Sender<i64>,
}

#[derive(Debug)]
struct Inner {
    /// Commits after the cursor, oldest first.
    commits: VecDeque<Commit>,
    /// Events of all of them.
    total: u64,
    /// Events of appends in flight.
    reserved: u64,
    cursor: i64,
    /// When an append was last refused, and why.
    refused: Option<(Instant, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Commit {
    first: i64,
    last: i64,
    events: u64,
    at: Instant,
}

impl Commit {
    /// Its events after `cursor` (seqs are dense within a commit on SQLite; on
    /// PostgreSQL a commit's seqs are a block's, dense too).
    fn remaining(&self, cursor: i64) -> u64 {
        if cursor < self.first {
            self.events
        } else if cursor >= self.last {
            0
        } else {
            self.events.min(self.last.saturating_sub(cursor) as u64)
        }
    }
}

impl Pressure {
    /// No lag known yet but `backlog` events the pipeline has still to process (read
    /// from the store at start; their age counts from now).
    pub fn new(bound: Bound, backlog: u64) -> Arc<Self> {
        let mut commits = VecDeque::new();
        if backlog > 0 {
            // Seqs unknown: until the first commit says where they end, all of them wait.
            commits.push_back(Commit {
                first: i64::MIN,
                last: i64::MAX,
                events: backlog,
                at: Instant::now(),
            });
        }
        Arc::new(Self {
            bound,
            inner: Mutex::new(Inner {
                commits,
                total: backlog,
                reserved: 0,
                cursor: i64::MIN,
                refused: None,
            }),
            cursor: watch::channel(i64::MIN).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bound it holds.
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// `events` were committed with seqs from `first` (the writer, after a commit).
    pub fn committed(&self, first: i64, events: u64) {
        let mut inner = self.lock();
        if let Some(backlog) = inner.commits.back_mut()
            && backlog.last == i64::MAX
        {
            backlog.last = first - 1;
        }
        inner.commits.push_back(Commit {
            first,
            last: first + events as i64 - 1,
            events,
            at: Instant::now(),
        });
        inner.total += events;
    }

    /// The pipeline processed the journal up to `cursor`.
    pub fn processed(&self, cursor: i64) {
        let mut inner = self.lock();
        inner.cursor = cursor;
        while let Some(front) = inner.commits.front()
            && front.remaining(cursor) == 0
        {
            inner.total -= front.events;
            inner.commits.pop_front();
        }
        drop(inner);
        self.cursor.send_replace(cursor);
    }

    /// Events waiting for the pipeline, and the age of the oldest.
    pub fn lag(&self) -> (u64, Duration) {
        let inner = self.lock();
        Self::lag_of(&inner)
    }

    fn lag_of(inner: &Inner) -> (u64, Duration) {
        match inner.commits.front() {
            None => (0, Duration::ZERO),
            Some(front) => (
                inner.total - (front.events - front.remaining(inner.cursor)),
                front.at.elapsed(),
            ),
        }
    }

    /// Why ingest must wait now, if it must: the journal has no room for one more
    /// event (with what is in flight), or its oldest event is too old.
    pub fn busy(&self) -> Option<Busy> {
        let inner = self.lock();
        self.refusal(&inner, 1)
    }

    fn refusal(&self, inner: &Inner, adding: u64) -> Option<Busy> {
        let (events, age) = Self::lag_of(inner);
        if let Some(max) = self.bound.events
            && events + inner.reserved + adding > max
            && (events + inner.reserved > 0)
        {
            return Some(Busy {
                reason: format!(
                    "the pipeline is {events} events behind (bound {max}, --max-lag-events)"
                ),
                retry_after: 1,
            });
        }
        if let Some(max) = self.bound.age
            && age > max
        {
            return Some(Busy {
                reason: format!(
                    "the pipeline is {:.1} s behind (bound {} s, --max-lag-seconds)",
                    age.as_secs_f64(),
                    max.as_secs()
                ),
                retry_after: 1,
            });
        }
        None
    }

    /// Why the process is not ready to take ingest (`/readyz`): it is [`busy`](Self::busy),
    /// or it refused an append less than [`REFUSED_HOLD`] ago and the pipeline has not
    /// caught up since. A journal a few events short of its bound takes a single event
    /// but refuses every batch: a load balancer should see that node as not ready.
    pub fn refusing(&self) -> Option<String> {
        let inner = self.lock();
        if let Some(busy) = self.refusal(&inner, 1) {
            return Some(busy.reason);
        }
        match &inner.refused {
            Some((at, reason)) if at.elapsed() < REFUSED_HOLD && Self::lag_of(&inner).0 > 0 => {
                Some(format!(
                    "{reason}: an append was refused {:.1} s ago",
                    at.elapsed().as_secs_f64()
                ))
            }
            _ => None,
        }
    }

    /// Room for `events` more, held until the [`Reservation`] is dropped (once the
    /// append is committed and counted, or failed).
    pub fn reserve(self: &Arc<Self>, events: u64) -> Result<Reservation, Busy> {
        let mut inner = self.lock();
        if let Some(busy) = self.refusal(&inner, events) {
            inner.refused = Some((Instant::now(), busy.reason.clone()));
            return Err(busy);
        }
        inner.reserved += events;
        Ok(Reservation {
            pressure: self.clone(),
            events,
        })
    }

    /// Waits until the pipeline has processed the journal up to `seq`.
    pub async fn processed_to(&self, seq: i64) {
        let mut cursor = self.cursor.subscribe();
        let _ = cursor.wait_for(|cursor| *cursor >= seq).await;
    }

    /// Sets the lag gauges.
    pub fn sample(&self) {
        let (events, age) = self.lag();
        metrics::gauge!("tocsin_pipeline_lag_events").set(events as f64);
        metrics::gauge!("tocsin_pipeline_lag_seconds").set(age.as_secs_f64());
        metrics::gauge!("tocsin_pipeline_max_lag_events")
            .set(self.bound.events.unwrap_or(0) as f64);
        metrics::gauge!("tocsin_pipeline_max_lag_seconds")
            .set(self.bound.age.map_or(0.0, |a| a.as_secs_f64()));
    }
}

/// Room reserved in the bound for an append in flight.
#[derive(Debug)]
pub struct Reservation {
    pressure: Arc<Pressure>,
    events: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pressure.lock().reserved -= self.events;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(events: u64) -> Bound {
        Bound {
            events: Some(events),
            age: None,
        }
    }

    #[test]
    fn the_lag_is_what_was_committed_after_the_cursor() {
        let pressure = Pressure::new(Bound::default(), 0);
        pressure.committed(1, 100);
        pressure.committed(101, 50);
        assert_eq!(pressure.lag().0, 150);
        pressure.processed(40);
        assert_eq!(pressure.lag().0, 110);
        pressure.processed(100);
        assert_eq!(pressure.lag().0, 50);
        pressure.processed(150);
        assert_eq!(pressure.lag(), (0, Duration::ZERO));
    }

    #[test]
    fn a_backlog_at_start_waits_until_the_cursor_passes_it() {
        let pressure = Pressure::new(Bound::default(), 30);
        assert_eq!(pressure.lag().0, 30);
        pressure.committed(1_000, 10);
        assert_eq!(pressure.lag().0, 40);
        // Dense seqs (SQLite): the backlog ends at 999, so 20 of it are left.
        pressure.processed(979);
        assert_eq!(pressure.lag().0, 30);
        pressure.processed(999);
        assert_eq!(pressure.lag().0, 10);
    }

    #[test]
    fn appends_in_flight_together_cannot_pass_the_bound() {
        let pressure = Pressure::new(bound(1_000), 0);
        let first = pressure.reserve(600).expect("room for 600");
        assert!(pressure.reserve(600).is_err(), "600 + 600 > 1000");
        let second = pressure.reserve(400).expect("room for 400 more");
        pressure.committed(1, 600);
        drop(first);
        assert!(
            pressure.busy().is_some(),
            "600 committed and 400 in flight: the journal is full"
        );
        pressure.committed(601, 400);
        drop(second);
        let busy = pressure
            .reserve(1)
            .expect_err("the journal holds the bound");
        assert!(
            busy.reason.contains("1000 events behind"),
            "{}",
            busy.reason
        );
        pressure.processed(400);
        assert!(pressure.busy().is_none(), "room again");
        assert!(
            pressure.reserve(401).is_err(),
            "600 left, 401 more would pass 1,000"
        );
        pressure.processed(1_000);
        assert!(pressure.reserve(1_000).is_ok(), "room again once processed");
    }

    #[test]
    fn readiness_holds_not_ready_after_a_refused_batch_until_it_passes_or_the_pipeline_catches_up()
    {
        let pressure = Pressure::new(bound(1_000), 0);
        pressure.committed(1, 900);
        assert!(pressure.refusing().is_none(), "900 of 1,000: ready");
        assert!(pressure.reserve(200).is_err(), "900 + 200 > 1,000");
        assert!(pressure.busy().is_none(), "one more event still fits");
        let reason = pressure.refusing().expect("a batch was just refused");
        assert!(
            reason.contains("900 events behind") && reason.contains("refused"),
            "{reason}"
        );
        // Once the hold has passed, room for one event is ready again.
        pressure.lock().refused.as_mut().expect("refused").0 -= REFUSED_HOLD;
        assert!(pressure.refusing().is_none(), "the hold has passed");
        assert!(pressure.reserve(200).is_err());
        pressure.processed(900);
        assert!(pressure.refusing().is_none(), "caught up: ready at once");
        // At the bound itself, not ready with or without a refusal.
        pressure.committed(901, 1_000);
        assert!(
            pressure
                .refusing()
                .is_some_and(|r| r.contains("1000 events behind"))
        );
    }

    #[test]
    fn an_append_larger_than_the_bound_still_goes_through_an_empty_journal() {
        let pressure = Pressure::new(bound(100), 0);
        assert!(pressure.reserve(500).is_ok());
    }

    #[test]
    fn the_age_bound_refuses_once_the_oldest_waits_too_long() {
        let pressure = Pressure::new(
            Bound {
                events: None,
                age: Some(Duration::from_millis(20)),
            },
            0,
        );
        pressure.committed(1, 1);
        assert!(pressure.busy().is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            pressure
                .busy()
                .is_some_and(|b| b.reason.contains("--max-lag-seconds"))
        );
        pressure.processed(1);
        assert!(pressure.busy().is_none());
    }
}
