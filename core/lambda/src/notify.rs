//! The `notify` function: a batch of nudges runs outbox rounds until nothing is left
//! that is due, with the outbox's semantics (docs/alerting.md). Invocations may run at
//! once: a notice is expanded by one of them (the others find its deliveries stored and
//! leave them), and a delivery is attempted by the one whose claim moved it from due to
//! leased, so an incident pages once.
//!
//! A retry waits in the store with its due time (at least the notifier's `Retry-After`);
//! an invocation that did work wakes the notifier again when the next one falls due (a
//! delayed message, up to SQS's 15 minutes), and the tick looks every minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use tocsin_model::clock::now_ms;
use tocsin_model::plugin::Plugins;
use tocsin_outbox::Outbox;
use tocsin_store::OutboxStore;
use tracing::{info, warn};

use crate::batch::{Consumer, nudged};
use crate::nudge::Nudge;
use crate::settings::Queues;

/// The notify function's state.
pub struct NotifyFunction {
    outbox: Outbox,
    store: Arc<dyn OutboxStore>,
    queues: Queues,
    plugins: Option<Arc<dyn Plugins>>,
}

impl NotifyFunction {
    /// The outbox over `store`.
    pub fn new(outbox: Outbox, store: Arc<dyn OutboxStore>, queues: Queues) -> Self {
        Self {
            outbox,
            store,
            queues,
            plugins: None,
        }
    }

    /// Checks `plugins` (the collectors' runtime) for another process's changes before
    /// each batch.
    pub fn with_plugins(mut self, plugins: Arc<dyn Plugins>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Rounds until none finds work or `deadline` passes; returns the notices and
    /// deliveries handled.
    pub async fn deliver(&self, deadline: Instant) -> Result<usize, String> {
        if let Some(plugins) = &self.plugins
            && let Err(e) = plugins.refresh().await
        {
            warn!(error = %e, "cannot check the plugins for changes; running the ones loaded");
        }
        let mut handled = 0;
        let mut more = false;
        loop {
            let n = self
                .outbox
                .round(now_ms())
                .await
                .map_err(|e| e.to_string())?;
            handled += n;
            if n == 0 {
                break;
            }
            if Instant::now() >= deadline {
                more = true;
                break;
            }
        }
        if handled > 0 {
            info!(handled, "outbox rounds");
            // The next retry (or the rest, at the deadline): wake the notifier then.
            let delay = if more {
                Some(Duration::ZERO)
            } else {
                match self.store.next_delivery_due().await {
                    Ok(Some(due)) => Some(Duration::from_millis(
                        u64::try_from(due - now_ms()).unwrap_or(0),
                    )),
                    Ok(None) => None,
                    Err(e) => {
                        warn!(error = %e, "cannot read when the next delivery is due; the tick looks");
                        None
                    }
                }
            };
            if let (Some(delay), Some(queue)) = (delay, &self.queues.notify)
                && let Err(e) = queue.nudge(Nudge::Outbox, delay).await
            {
                warn!(error = %e, "cannot wake the notifier for its next delivery; the tick does");
            }
        }
        Ok(handled)
    }
}

#[async_trait::async_trait]
impl Consumer for NotifyFunction {
    /// Handles a batch: one series of rounds for every nudge in it.
    async fn handle(&self, messages: &[SqsMessage], deadline: Instant) -> SqsBatchResponse {
        let work = async { self.deliver(deadline).await.map(|_| ()) };
        nudged(messages, self.queues.notify_dlq.as_ref(), work).await
    }
}
