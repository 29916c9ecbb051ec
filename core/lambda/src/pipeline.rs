//! The `pipeline` function: a batch of nudges drains the journal. The engine stays in
//! memory between invocations of a warm instance; the store's commit counter tells when
//! another instance moved the pipeline on, and the engine is then loaded again.
//!
//! Exactly once across redeliveries and concurrent invocations comes from the store, as
//! on one machine: each batch's effects commit with the cursor, and a commit made from a
//! stale engine (another invocation committed since it loaded) is refused and retried
//! from a fresh one. Two invocations on one grouping key make one incident. So that
//! concurrent invocations do not undo each other's batches, they take turns through the
//! store's pipeline lease (on PostgreSQL an advisory lock, which needs a connection of
//! its own: the pool needs two).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use tocsin_model::clock::now_ms;
use tocsin_model::plugin::{Filter, Plugins};
use tocsin_pipeline::worker::{self, MAX_BATCH};
use tocsin_pipeline::{Config, Engine};
use tocsin_store::{PipelineStore, StoreError};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::batch::{Consumer, nudged};
use crate::nudge::Nudge;
use crate::settings::Queues;

/// How often a batch is tried again from a freshly loaded engine when another
/// invocation committed first.
const CONFLICT_RETRIES: usize = 3;

/// The pipeline function's state, kept across the invocations of one instance.
pub struct PipelineFunction {
    store: Arc<dyn PipelineStore>,
    config: Config,
    plugins: Option<Arc<dyn Plugins>>,
    engine: Mutex<Option<Engine>>,
    queues: Queues,
}

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Journal rows processed.
    pub events: usize,
    /// Whether it stopped at its deadline with rows left (it woke itself for the rest).
    pub more: bool,
}

impl PipelineFunction {
    /// A pipeline over `store` running `plugins`' filters.
    pub fn new(
        store: Arc<dyn PipelineStore>,
        config: Config,
        plugins: Option<Arc<dyn Plugins>>,
        queues: Queues,
    ) -> Self {
        Self {
            store,
            config,
            plugins,
            engine: Mutex::new(None),
            queues,
        }
    }

    /// Applies the commands waiting in the store, processes every journal row committed
    /// before the call and the timers due, and writes the steady refreshes; wakes the
    /// notifier if notices were left. Stops at `deadline` and wakes itself for the rest.
    pub async fn drain(&self, deadline: Instant) -> Result<Drained, String> {
        let mut slot = self.engine.lock().await;
        // A plugin uploaded, rolled back or removed through another process is used from
        // this batch on (one query when nothing changed).
        if let Some(plugins) = &self.plugins
            && let Err(e) = plugins.refresh().await
        {
            warn!(error = %e, "cannot check the plugins for changes; running the ones loaded");
        }
        // Invocations take turns: the one that waited drains what is left after the
        // other (usually nothing) rather than race it batch by batch.
        let wait = deadline.saturating_duration_since(Instant::now());
        let lease = match self.store.lease(wait).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                return Err(
                    "another invocation held the pipeline lease until this one's deadline".into(),
                );
            }
            Err(e) => return Err(e.to_string()),
        };
        let drained = self.drain_leased(&mut slot, deadline).await;
        lease.release().await;
        drained
    }

    async fn drain_leased(
        &self,
        slot: &mut Option<Engine>,
        deadline: Instant,
    ) -> Result<Drained, String> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.drain_with(slot, deadline).await {
                Ok((drained, noticed)) => {
                    if noticed {
                        self.wake(Nudge::Outbox).await;
                    }
                    if drained.more {
                        self.wake(Nudge::Journal).await;
                    }
                    if drained.events > 0 {
                        info!(
                            events = drained.events,
                            more = drained.more,
                            "journal drained"
                        );
                    }
                    return Ok(drained);
                }
                Err(StoreError::Conflict) if tries < CONFLICT_RETRIES => {
                    warn!("another invocation moved the pipeline on; loading its state again");
                    *slot = None;
                }
                Err(e) => {
                    // The engine may be ahead of the database: the next call loads it.
                    *slot = None;
                    return Err(e.to_string());
                }
            }
        }
    }

    async fn drain_with(
        &self,
        slot: &mut Option<Engine>,
        deadline: Instant,
    ) -> Result<(Drained, bool), StoreError> {
        let engine = match slot {
            Some(engine) => engine,
            None => {
                let mut loaded = worker::load(self.store.as_ref(), self.config).await?;
                if let Some(plugins) = &self.plugins {
                    let filter: Arc<dyn Filter> = plugins.clone();
                    loaded.set_plugins(filter);
                }
                slot.insert(loaded)
            }
        };
        let store = self.store.as_ref();
        worker::apply_commands(store, engine).await?;
        let mut drained = Drained::default();
        loop {
            let n = worker::step(store, engine, MAX_BATCH, now_ms()).await?;
            drained.events += n;
            if n == 0 {
                break;
            }
            if Instant::now() >= deadline {
                drained.more = true;
                break;
            }
        }
        // Commands recorded while the journal drained.
        worker::apply_commands(store, engine).await?;
        worker::flush(store, engine).await?;
        Ok((drained, engine.take_noticed()))
    }

    async fn wake(&self, nudge: Nudge) {
        let queue = match nudge {
            Nudge::Outbox => &self.queues.notify,
            _ => &self.queues.pipeline,
        };
        if let Some(queue) = queue
            && let Err(e) = queue.nudge(nudge, Duration::ZERO).await
        {
            warn!(error = %e, ?nudge, "cannot wake the next stage; the next tick does");
        }
    }
}

#[async_trait::async_trait]
impl Consumer for PipelineFunction {
    /// Handles a batch: drains the journal once for every nudge in it, and moves what
    /// is not a nudge to the dead-letter queue.
    async fn handle(&self, messages: &[SqsMessage], deadline: Instant) -> SqsBatchResponse {
        let work = async { self.drain(deadline).await.map(|_| ()) };
        nudged(messages, self.queues.pipeline_dlq.as_ref(), work).await
    }
}
