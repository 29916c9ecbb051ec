//! The durable append: one writer task commits the events of many concurrent requests in
//! one transaction (group commit), then answers each request.
//!
//! A commit costs about the same for 1 event as for 1,000, so under load the writer
//! takes whatever has queued up while the previous commit ran. A request is answered
//! only after its events are committed; if the commit fails, every request in it fails
//! and none of their events is stored.
//!
//! The writer runs on a thread of its own (a single-threaded runtime): it is the one
//! serial step of ingest, and on the shared runtime each of its database round trips
//! would wait behind request parsing. The pipeline that follows the journal runs on a
//! thread of its own, woken after each commit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, error, info_span};

use crate::pipeline::{self, Pipeline, worker};
use crate::store::{Record, Store};

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

impl Journal {
    /// Starts the writer thread and the pipeline behind it. They stop once every
    /// journal handle is dropped, the queue is drained and its events are processed, so a
    /// graceful shutdown still commits what was accepted; the returned receiver resolves
    /// then.
    pub fn start(
        store: Arc<dyn Store>,
        config: pipeline::Config,
    ) -> (Self, Pipeline, oneshot::Receiver<()>) {
        Self::start_with_plugins(store, config, None)
    }

    /// [`Journal::start`], with a plugin runtime whose filter plugins the pipeline runs.
    pub fn start_with_plugins(
        store: Arc<dyn Store>,
        config: pipeline::Config,
        plugins: Option<Arc<dyn crate::plugin::Filter>>,
    ) -> (Self, Pipeline, oneshot::Receiver<()>) {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let (finished, stopped) = oneshot::channel();
        let signal = Arc::new(worker::Signal::default());
        let (handle, inbox) = worker::channel(signal.clone());
        // The pipeline runs on a thread of its own: its CPU work (parsing, the engine)
        // never delays an append; the two meet only at the database (on SQLite not even
        // at a writer: the journal has a file and a writer of its own).
        let pipeline_store = store.clone();
        let pipeline_signal = signal.clone();
        let pipeline = std::thread::Builder::new()
            .name("tocsin-pipeline".into())
            .spawn(move || match current_thread_runtime() {
                Ok(runtime) => runtime.block_on(worker::run(
                    pipeline_store,
                    config,
                    plugins,
                    pipeline_signal,
                    inbox,
                )),
                Err(e) => {
                    error!(error = %e, "cannot start the pipeline; events stay in the journal")
                }
            });
        let spawned = std::thread::Builder::new()
            .name("tocsin-journal".into())
            .spawn(move || {
                match current_thread_runtime() {
                    Ok(runtime) => runtime.block_on(write(store, requests, &signal)),
                    Err(e) => {
                        error!(error = %e, "cannot start the journal writer; appends will fail")
                    }
                }
                // Appends are over: the pipeline processes what is left, then stops.
                signal.stop();
                match pipeline {
                    Ok(thread) => {
                        if thread.join().is_err() {
                            error!("the pipeline thread panicked; the rest stays in the journal for the next start");
                        }
                    }
                    Err(e) => error!(error = %e, "cannot spawn the pipeline; events stay in the journal"),
                }
                let _ = finished.send(());
            });
        if let Err(e) = spawned {
            // The queue's receiver is gone with the closure: every append fails cleanly.
            error!(error = %e, "cannot spawn the journal writer; appends will fail");
        }
        (Self { queue }, handle, stopped)
    }

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

fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn write(
    store: Arc<dyn Store>,
    mut requests: mpsc::Receiver<Append>,
    signal: &worker::Signal,
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
        let fed: Option<Vec<_>> = signal
            .feed()
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
                    signal.feed().push(rows, appended.versions);
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
