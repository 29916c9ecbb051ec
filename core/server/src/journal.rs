//! The durable append: one writer task commits the events of many concurrent requests in
//! one transaction (group commit), then answers each request.
//!
//! A commit costs about the same for 1 event as for 1,000, so under load the writer
//! takes whatever has queued up while the previous commit ran. A request is answered
//! only after its events are committed; if the commit fails, every request in it fails
//! and none of their events is stored.
//!
//! The writer runs on a thread of its own (a single-threaded runtime, started by
//! [`crate::start`]): it is the one serial step of ingest, and on the shared runtime each
//! of its database round trips would wait behind request parsing.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, error, info_span};

use crate::feed::Feed;
use crate::pressure::Pressure;
use tocsin_api::AppendError;
use tocsin_pipeline::worker::Signal;
use tocsin_store::{JournalStore, Record};

/// Most events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Requests waiting for the writer before senders wait too (back-pressure).
const QUEUE_DEPTH: usize = 1_024;

/// The journal could not take the events; nothing of them is stored.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the journal could not store the events")]
pub struct JournalError {
    /// The database's outage, if that is why: the same append succeeds once it ends.
    outage: Option<tocsin_store::Outage>,
}

struct Append {
    records: Vec<Record>,
    /// The seq of the request's last event, once committed.
    done: oneshot::Sender<Result<i64, JournalError>>,
}

/// A handle to the journal's writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    queue: mpsc::Sender<Append>,
    /// The lag bound appends reserve room in, and the writer reports commits to.
    pressure: Arc<Pressure>,
}

/// The writer's end of a [`Journal`]: run it on a thread of its own.
#[derive(Debug)]
pub struct Writer {
    requests: mpsc::Receiver<Append>,
    pressure: Arc<Pressure>,
}

/// A journal handle and its writer, holding appends to `pressure`'s bound. The writer
/// stops once every handle is dropped and the queue is drained.
pub fn channel(pressure: Arc<Pressure>) -> (Journal, Writer) {
    let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
    (
        Journal {
            queue,
            pressure: pressure.clone(),
        },
        Writer { requests, pressure },
    )
}

impl Writer {
    /// Commits appends until every journal handle is gone; each commit's rows go to
    /// `feed` (when it has room) and wake the pipeline through `signal`.
    pub async fn run(self, store: Arc<dyn JournalStore>, feed: &Feed, signal: &Signal) {
        write(store, self.requests, feed, signal, &self.pressure).await;
    }
}

impl Journal {
    /// Whether the writer is still taking appends (it stops only on shutdown or when its
    /// thread could not start).
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Appends events durably; returns once they are committed, with the seq of the
    /// last (`None` when there was nothing to append). Refused, storing nothing, when
    /// they would take the lag past its bound.
    pub async fn append(&self, records: Vec<Record>) -> Result<Option<i64>, AppendError> {
        if records.is_empty() {
            return Ok(None);
        }
        let _room = self
            .pressure
            .reserve(records.len() as u64)
            .map_err(AppendError::Busy)?;
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Append { records, done })
            .await
            .map_err(|_| AppendError::Failed)?;
        match committed.await {
            Ok(Ok(last)) => Ok(Some(last)),
            Ok(Err(JournalError {
                outage: Some(outage),
            })) => Err(AppendError::Outage(outage)),
            _ => Err(AppendError::Failed),
        }
    }
}

async fn write(
    store: Arc<dyn JournalStore>,
    mut requests: mpsc::Receiver<Append>,
    feed: &Feed,
    signal: &Signal,
    pressure: &Pressure,
) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        let mut n = group[0].records.len();
        while n < MAX_GROUP_EVENTS {
            match requests.try_recv() {
                Ok(next) => {
                    n += next.records.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let requests_in_group = group.len();
        let started = std::time::Instant::now();
        let mut records = Vec::with_capacity(n);
        let mut waiting = Vec::with_capacity(group.len());
        for append in group {
            records.extend(append.records);
            // Each request's last event, as an offset in the group.
            waiting.push((records.len() as i64 - 1, append.done));
        }
        // The rows as the pipeline reads them, handed over once committed (unless the
        // pipeline lags behind and reads the journal anyway).
        let fed: Option<Vec<_>> = feed
            .has_room(n)
            .then(|| records.iter().map(|r| r.incoming(0)).collect());
        // Validation guarantees that the database accepts every valid event (no NUL in
        // any string, bounded sizes), so a failed commit is the database failing, for
        // every request alike: they all get a 500 and none of their events is stored.
        let outcome = store
            .append(records)
            .instrument(info_span!(
                "journal.commit",
                events = n,
                requests = requests_in_group
            ))
            .await;
        let took = started.elapsed();
        metrics::histogram!("tocsin_journal_commit_duration_seconds").record(took.as_secs_f64());
        metrics::histogram!("tocsin_journal_commit_events").record(n as f64);
        match &outcome {
            Ok(appended) => {
                if let Some(first) = appended.first {
                    pressure.committed(first, n as u64);
                }
                if let (Some(first), Some(mut rows)) = (appended.first, fed) {
                    for (seq, row) in (first..).zip(rows.iter_mut()) {
                        row.seq = seq;
                    }
                    feed.push(rows, appended.versions);
                }
                signal.wake();
                debug!(events = n, requests = requests_in_group, elapsed = ?started.elapsed(), "journal commit");
            }
            Err(e) => {
                error!(error = %e, events = n, "journal commit failed; nothing of its requests is stored")
            }
        }
        let first = match &outcome {
            Ok(appended) => Ok(appended.first.unwrap_or(0)),
            Err(e) => Err(JournalError { outage: e.outage() }),
        };
        for (last, done) in waiting {
            // A sender that gave up (client went away) still had its events committed.
            let _ = done.send(first.map(|first| first + last));
        }
    }
}

#[async_trait::async_trait]
impl tocsin_api::Append for Journal {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        Journal::append(self, records).await.map(|_| ())
    }

    fn is_running(&self) -> bool {
        Journal::is_running(self)
    }
}
