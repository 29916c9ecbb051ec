//! The alert-state stage: applies journal events, in order, to the current state of each
//! alert identity (status, since, count, first and last seen) that `GET /v1/alerts`
//! shows.
//!
//! It runs behind the journal rather than inside the 202: an append then costs one
//! sequential write per event, and this stage amortises the scattered writes to the
//! alert table over large batches. Its cursor moves in the same transaction as its
//! writes, so after a crash it resumes exactly where it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{Instrument as _, debug, error, info_span};

use crate::store::Store;

/// Most events applied in one transaction: large enough to amortise the writes, small
/// enough that the journal's appends never wait long for the database.
const MAX_BATCH: usize = 5_000;

/// Pause after a partial batch. Under load, waiting a little lets events of the same
/// alerts accumulate, so one transaction rewrites each alert's page once for many
/// events instead of once per handful; it is also the most `GET /v1/alerts` lags.
const PACE: Duration = Duration::from_millis(100);

/// Wakes the stage when the journal commits, and stops it.
#[derive(Debug, Default)]
pub struct Signal {
    wake: Notify,
    stopping: AtomicBool,
}

impl Signal {
    /// New events are in the journal.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Apply what is left, then stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Applies the journal to alert state until stopped; a failed batch is retried after a
/// pause (nothing is lost: the cursor did not move).
pub async fn run(store: Arc<dyn Store>, signal: Arc<Signal>) {
    loop {
        let applied = store
            .track(MAX_BATCH)
            .instrument(info_span!("state.batch"))
            .await;
        match applied {
            Ok(0) => {
                if signal.stopping.load(Ordering::SeqCst) {
                    break;
                }
                // The timeout covers events appended by another process (the CLI, or a
                // second function on PostgreSQL) that cannot wake this one.
                let _ = tokio::time::timeout(Duration::from_secs(1), signal.wake.notified()).await;
            }
            Ok(n) => {
                debug!(events = n, "alert state applied");
                if n < MAX_BATCH && !signal.stopping.load(Ordering::SeqCst) {
                    tokio::time::sleep(PACE).await;
                }
            }
            Err(e) => {
                if signal.stopping.load(Ordering::SeqCst) {
                    // The cursor is durable: the next start resumes from it.
                    error!(error = %e, "applying the journal to alert state failed while stopping; leaving the rest for the next start");
                    break;
                }
                error!(error = %e, "applying the journal to alert state failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
