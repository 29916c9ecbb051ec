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
use tocsin_pipeline::worker::Signal;
use tocsin_store::{JournalStore, Record};

/// Most events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Requests waiting for the writer before senders wait too (back-pressure).
const QUEUE_DEPTH: usize = 1_024;

/// The journal could not take the events; nothing of them is stored.
#[derive(Debug, thiserror::Error)]
#[error("the journal could not store the events")]
pub struct JournalError;

struct Append {
    records: Vec<Record>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// A handle to the journal's writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    queue: mpsc::Sender<Append>,
}

/// The writer's end of a [`Journal`]: run it on a thread of its own.
#[derive(Debug)]
pub struct Writer {
    requests: mpsc::Receiver<Append>,
}

/// A journal handle and its writer. The writer stops once every handle is dropped and
/// the queue is drained.
pub fn channel() -> (Journal, Writer) {
    let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
    (Journal { queue }, Writer { requests })
}

impl Writer {
    /// Commits appends until every journal handle is gone; each commit's rows go to
    /// `feed` (when it has room) and wake the pipeline through `signal`.
    pub async fn run(self, store: Arc<dyn JournalStore>, feed: &Feed, signal: &Signal) {
        write(store, self.requests, feed, signal).await;
    }
}

impl Journal {
    /// Whether the writer is still taking appends (it stops only on shutdown or when its
    /// thread could not start).
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Appends events durably; returns once they are committed.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Append { records, done })
            .await
            .map_err(|_| JournalError)?;
        committed.await.map_err(|_| JournalError)?
    }
}

async fn write(
    store: Arc<dyn JournalStore>,
    mut requests: mpsc::Receiver<Append>,
    feed: &Feed,
    signal: &Signal,
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
            waiting.push(append.done);
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
        match &outcome {
            Ok(appended) => {
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
                error!(error = %e, events = n, "journal commit failed; the requests get a 500")
            }
        }
        for done in waiting {
            // A sender that gave up (client went away) still had its events committed.
            let _ = done.send(outcome.as_ref().map(|_| ()).map_err(|_| JournalError));
        }
    }
}

#[async_trait::async_trait]
impl tocsin_api::Append for Journal {
    async fn append(&self, records: Vec<Record>) -> Result<(), tocsin_api::AppendError> {
        Journal::append(self, records)
            .await
            .map_err(|_| tocsin_api::AppendError)
    }

    fn is_running(&self) -> bool {
        Journal::is_running(self)
    }
}
