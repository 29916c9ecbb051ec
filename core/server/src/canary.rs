//! The dead-man's switch (`tocsin serve --canary 30s`): every period Tocsin appends a
//! healthy heartbeat event of its own to the journal, through the same append as every
//! request, and waits for the pipeline to process it. The time from accept to processed
//! is `tocsin_canary_latency_seconds`; a canary not processed within the period (or
//! refused by the lag bound) makes `/readyz` fail and `tocsin_canary_ok` 0 until one
//! arrives in time again.
//!
//! The heartbeat is the alert `tocsin-canary` of team `tocsin` (service `tocsin`, no
//! grouping): always healthy, so it opens nothing; an admin sees it in `GET /v1/alerts`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use tocsin_model::event::Event;
use tocsin_model::team::Caller;

use crate::journal::Journal;
use crate::pressure::Pressure;

/// The team the heartbeat belongs to.
pub const TEAM: &str = "tocsin";

/// The canary's last round.
#[derive(Debug)]
pub struct Canary {
    every: Duration,
    failure: Mutex<Option<String>>,
}

impl Canary {
    /// A canary sent every `every`, expected back within the same time.
    pub fn new(every: Duration) -> Arc<Self> {
        Arc::new(Self {
            every,
            failure: Mutex::new(None),
        })
    }

    /// Why the last canary failed, while it has.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, failure: Option<String>) {
        metrics::gauge!("tocsin_canary_ok").set(if failure.is_none() { 1.0 } else { 0.0 });
        *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = failure;
    }

    /// Sends canaries until the task is stopped.
    pub async fn run(self: Arc<Self>, journal: Journal, pressure: Arc<Pressure>) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let failure = self.round(&journal, &pressure).await;
            if let Some(failure) = &failure {
                warn!(failure, "the canary failed");
            }
            self.set(failure);
        }
    }

    /// One heartbeat: appended, then waited for.
    async fn round(&self, journal: &Journal, pressure: &Pressure) -> Option<String> {
        let record = match heartbeat() {
            Ok(record) => record,
            Err(e) => return Some(format!("the canary event is invalid: {e}")),
        };
        let started = Instant::now();
        metrics::counter!("tocsin_canary_sent_total").increment(1);
        let seq = match journal.append(vec![record]).await {
            Ok(Some(seq)) => seq,
            Ok(None) => return Some("the canary was not appended".into()),
            Err(e) => return Some(format!("the journal refused the canary: {e}")),
        };
        match tokio::time::timeout(self.every, pressure.processed_to(seq)).await {
            Ok(()) => {
                let latency = started.elapsed();
                metrics::gauge!("tocsin_canary_latency_seconds").set(latency.as_secs_f64());
                debug!(?latency, "canary processed");
                None
            }
            Err(_) => {
                metrics::gauge!("tocsin_canary_latency_seconds")
                    .set(started.elapsed().as_secs_f64());
                Some(format!(
                    "the canary accepted {:.1} s ago is not processed yet (--canary {} s)",
                    started.elapsed().as_secs_f64(),
                    self.every.as_secs()
                ))
            }
        }
    }
}

/// The heartbeat, validated and stamped as an event sent by team `tocsin`.
fn heartbeat() -> Result<tocsin_store::Record, String> {
    let event: Event = serde_json::from_value(serde_json::json!({
        "alert": { "monitor": "tocsin-canary", "status": "healthy",
                   "message": "Tocsin's own heartbeat through the journal and the pipeline" },
        "context": { "service": "tocsin", "team": TEAM },
        "grouping": { "keys": [] },
    }))
    .map_err(|e| e.to_string())?;
    let caller = Caller {
        token_id: "canary".into(),
        team: Some(TEAM.into()),
        admin: false,
    };
    let batch = tocsin_ingest::accept(vec![event], &caller, "canary");
    match batch.accepted.into_iter().next() {
        Some(accepted) => Ok(accepted.into_record(None)),
        None => Err(batch
            .rejected
            .first()
            .map_or_else(String::new, |r| format!("{}: {}", r.field, r.error))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Canary;
    use crate::feed::Feed;
    use crate::journal;
    use crate::pressure::{Bound, Pressure};
    use tocsin_pipeline::worker::Signal;

    #[test]
    fn the_heartbeat_is_a_valid_event_of_team_tocsin() {
        if let Err(e) = super::heartbeat() {
            panic!("the heartbeat is refused: {e}");
        }
    }

    fn bound(events: u64) -> Bound {
        Bound {
            events: Some(events),
            age: None,
        }
    }

    #[tokio::test]
    async fn a_canary_the_full_journal_refuses_fails_and_says_why() {
        let pressure = Pressure::new(bound(10_000), 0);
        pressure.committed(1, 10_000);
        let (journal, _writer) = journal::channel(pressure.clone());
        let canary = Canary::new(Duration::from_millis(200));
        let failure = canary.round(&journal, &pressure).await.expect("it fails");
        assert!(
            failure.contains("refused the canary") && failure.contains("10000 events behind"),
            "{failure}"
        );
    }

    #[tokio::test]
    async fn a_canary_the_pipeline_does_not_reach_in_time_fails_then_one_it_reaches_passes() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = tocsin_store::open(&url, tocsin_store::StoreOptions::default())
            .await
            .expect("store");
        let pressure = Pressure::new(Bound::default(), 0);
        let (journal, writer) = journal::channel(pressure.clone());
        let (feed, signal) = (Arc::new(Feed::default()), Arc::new(Signal::default()));
        tokio::spawn(async move { writer.run(store, &feed, &signal).await });
        let canary = Canary::new(Duration::from_millis(200));
        // No pipeline moves the cursor: the heartbeat is committed but never processed.
        let failure = canary.round(&journal, &pressure).await.expect("it fails");
        assert!(failure.contains("is not processed yet"), "{failure}");
        // A pipeline that keeps up: the next heartbeat arrives.
        let keeping_up = pressure.clone();
        tokio::spawn(async move {
            loop {
                keeping_up.processed(i64::MAX - 1);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert_eq!(canary.round(&journal, &pressure).await, None);
    }
}
