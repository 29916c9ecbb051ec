//! The `tick` function, every minute: what the local runner's loops do on a clock.
//! It prunes history and finished incidents past retention, and wakes the pipeline
//! (whose batch fires the timers that are due: `ignore-flap` releases, resolve grace,
//! suppression ends, and it applies commands and catches events whose nudge was lost)
//! and the notifier when notices or deliveries wait (retries that are due). It runs no
//! plugin and holds no state.

use std::sync::Arc;
use std::time::Duration;

use tocsin_model::clock::now_ms;
use tocsin_store::Store;
use tracing::info;

use crate::nudge::Nudge;
use crate::settings::Queues;

/// What one tick did, as the function returns it.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Ticked {
    /// History rows and finished incidents pruned.
    pub pruned: u64,
    /// Whether the pipeline was woken.
    pub pipeline: bool,
    /// Whether the notifier was woken (something waits in the outbox).
    pub notify: bool,
}

/// One tick.
pub async fn tick(
    store: Arc<dyn Store>,
    retention_ms: i64,
    queues: &Queues,
) -> Result<Ticked, String> {
    let now = now_ms();
    let pruned = store
        .prune(now - retention_ms)
        .await
        .map_err(|e| format!("pruning failed: {e}"))?;
    let mut ticked = Ticked {
        pruned,
        ..Ticked::default()
    };
    if let Some(queue) = &queues.pipeline {
        queue
            .nudge(Nudge::Tick, Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
        ticked.pipeline = true;
    }
    let waiting = !store
        .notices(1)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
        || store
            .next_delivery_due()
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|due| due <= now);
    if waiting && let Some(queue) = &queues.notify {
        queue
            .nudge(Nudge::Outbox, Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
        ticked.notify = true;
    }
    info!(pruned = ticked.pruned, notify = ticked.notify, "tick");
    Ok(ticked)
}
