//! The `api` function's state: the whole HTTP API over the store, with the journal in
//! PostgreSQL as its durable append (a `202` means committed there) and a nudge to the
//! pipeline queue after each commit. No pipeline runs in this function.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use tocsin_api::{AppState, Append, AppendError, Directory, StoreAppend, Wake};
use tocsin_model::plugin::Plugins;
use tocsin_model::suppression::Policy;
use tocsin_store::{Record, Store};
use tracing::warn;

use crate::nudge::Nudge;
use crate::queue::Queue;

/// Appends in the request's own transaction, then wakes the pipeline. The events are
/// safe once the commit returns: a nudge that fails only delays them until the next
/// tick (a minute), so it never turns a commit into an error.
pub struct QueueAppend {
    journal: StoreAppend,
    pipeline: Option<Queue>,
}

#[async_trait::async_trait]
impl Append for QueueAppend {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        if records.is_empty() {
            return Ok(());
        }
        self.journal.append(records).await?;
        if let Some(queue) = &self.pipeline
            && let Err(e) = queue.nudge(Nudge::Journal, Duration::ZERO).await
        {
            warn!(error = %e, "events committed but the pipeline not woken; the next tick wakes it");
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        true
    }
}

/// Wakes the pipeline function for a recorded command (ack, close), which the API then
/// waits for; rule changes need no wake (the pipeline reads them at its next batch).
pub struct QueueWake {
    pipeline: Option<Queue>,
}

impl Wake for QueueWake {
    fn rules(&self) {}

    fn command(&self) {
        if let Some(queue) = self.pipeline.clone() {
            tokio::spawn(async move {
                if let Err(e) = queue.nudge(Nudge::Command, Duration::ZERO).await {
                    warn!(error = %e, "command recorded but the pipeline not woken; the next tick applies it");
                }
            });
        }
    }
}

/// The whole API as the `api` function serves it: requests that run or manage plugins
/// first bring the plugins in line with the store (one query when nothing changed), so
/// a plugin uploaded through one instance is used by every other.
pub fn app(state: AppState) -> Router {
    let plugins = state.plugins.clone();
    tocsin_api::app(state).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let plugins = plugins.clone();
            async move {
                let path = request.uri().path();
                if (path.starts_with("/v1/ingest/") || path.starts_with("/v1/plugins"))
                    && let Err(e) = plugins.refresh().await
                {
                    warn!(error = %e, "cannot check the plugins for changes; running the ones loaded");
                }
                next.run(request).await
            }
        },
    ))
}

/// The API's state in the `api` function.
pub fn state(
    store: Arc<dyn Store>,
    plugins: Arc<dyn Plugins>,
    notifiers: Arc<dyn Directory>,
    policy: Policy,
    pipeline: Option<Queue>,
) -> AppState {
    AppState {
        append: Arc::new(QueueAppend {
            journal: StoreAppend(store.clone()),
            pipeline: pipeline.clone(),
        }),
        wake: Arc::new(QueueWake { pipeline }),
        store,
        policy,
        plugins,
        notifiers,
        // No bound of its own (the journal is PostgreSQL's, the pipeline scales apart), no
        // canary, and no /metrics: a function reports through CloudWatch.
        watch: Arc::new(tocsin_api::Unwatched),
        metrics: None,
        readiness: tocsin_api::Readiness::default(),
    }
}
