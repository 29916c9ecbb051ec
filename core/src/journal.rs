//! The durable append: one writer task commits the events of many concurrent requests in
//! one transaction (group commit), then answers each request.
//!
//! A commit costs about the same for 1 event as for 1,000, so under load the writer
//! takes whatever has queued up while the previous commit ran. A request is answered
//! only after its events are committed; if the commit fails, every request in it fails
//! and none of their events is stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, error, info_span};

use crate::store::{Accepted, Store};

/// Most events committed in one transaction.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Requests waiting for the writer before senders wait too (back-pressure).
const QUEUE_DEPTH: usize = 1_024;

/// The journal could not take the events; nothing of them is stored.
#[derive(Debug, thiserror::Error)]
#[error("the journal could not store the events")]
pub struct JournalError;

struct Append {
    events: Vec<Accepted>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// A handle to the journal's writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    queue: mpsc::Sender<Append>,
}

impl Journal {
    /// Starts the writer task. It stops once every handle is dropped and the queue is
    /// drained, so a graceful shutdown still commits what was accepted.
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let writer = tokio::spawn(write(store, requests));
        (Self { queue }, writer)
    }

    /// Appends events durably; returns once they are committed.
    pub async fn append(&self, events: Vec<Accepted>) -> Result<(), JournalError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Append { events, done })
            .await
            .map_err(|_| JournalError)?;
        committed.await.map_err(|_| JournalError)?
    }
}

async fn write(store: Arc<dyn Store>, mut requests: mpsc::Receiver<Append>) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        let mut n = group[0].events.len();
        while n < MAX_GROUP_EVENTS {
            match requests.try_recv() {
                Ok(next) => {
                    n += next.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(n);
        let mut waiting = Vec::with_capacity(group.len());
        for append in group {
            events.extend(append.events);
            waiting.push(append.done);
        }
        let requests_in_group = waiting.len();
        let outcome = store
            .append(&events)
            .instrument(info_span!(
                "journal.commit",
                events = n,
                requests = requests_in_group
            ))
            .await;
        match &outcome {
            Ok(()) => debug!(events = n, requests = requests_in_group, "journal commit"),
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
