//! The local runner, and the composition root of `tocsin serve`: one process, one
//! database, every stage.
//!
//! ```text
//! HTTP ─▶ tocsin_api ─▶ Journal (group commit, thread "tocsin-journal")
//!                            │ rows in memory (Feed), wake (Signal)
//!                            ▼
//!                      pipeline runner (thread "tocsin-pipeline"; its commits on "pipeline-rt")
//!                            │ new incidents' notices in memory (Handoff)
//!                            ▼
//!                      outbox task ─▶ notifiers
//! ```
//!
//! The stages know nothing of this wiring: the API is given an [`Append`] and a [`Wake`],
//! the pipeline a [`Feed`] and a [`Handoff`] through its hooks, the outbox a fast path.
//! Everything also goes through the store, so that each stage can run in a process of
//! its own (the Lambda functions) with the same semantics.

pub mod canary;
pub mod feed;
mod handoff;
pub mod journal;
pub mod pressure;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{error, warn};

use tocsin_api::{AppState, Busy, Wake, Watch};
use tocsin_model::plugin::{Filter, Plugins};
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_pipeline::Config;
use tocsin_pipeline::worker::{self, Hooks, Signal};
use tocsin_store::Store;

pub use canary::Canary;
pub use feed::Feed;
pub use handoff::Handoff;
pub use journal::Journal;
pub use pressure::{Bound, Pressure};

/// The journal writer and the pipeline of one process, running on threads of their own.
pub struct Local {
    /// The durable append (drop every clone to stop the writer).
    pub journal: Journal,
    /// Wakes the pipeline.
    pub signal: Arc<Signal>,
    /// Where the pipeline hands new incidents' notices to the outbox.
    pub handoff: Arc<Handoff>,
    /// The pipeline's lag and its bound.
    pub pressure: Arc<Pressure>,
    /// The dead-man's switch, when one runs.
    pub canary: Option<Arc<Canary>>,
    /// Resolves once the writer has committed what was queued and the pipeline has
    /// processed it.
    pub stopped: oneshot::Receiver<()>,
}

impl Local {
    /// What the API is given: this journal, this pipeline's wake-up and lag, and the
    /// metrics `exporter` (if one is installed).
    pub fn state(
        &self,
        store: Arc<dyn Store>,
        config: &Config,
        plugins: Arc<dyn Plugins>,
        notifiers: Arc<Notifiers>,
        exporter: Option<tocsin_api::metrics::Exporter>,
    ) -> AppState {
        AppState {
            store,
            append: Arc::new(self.journal.clone()),
            wake: Arc::new(PipelineWake(self.signal.clone())),
            policy: config.policy,
            plugins,
            notifiers,
            watch: Arc::new(LocalWatch {
                pressure: self.pressure.clone(),
                canary: self.canary.clone(),
            }),
            metrics: exporter,
            readiness: tocsin_api::Readiness::default(),
        }
    }

    /// Sends the canary every `every` (`tocsin serve --canary`), once served.
    pub fn with_canary(mut self, every: Duration) -> Self {
        self.canary = Some(Canary::new(every));
        self
    }
}

/// The local runner's health: its lag bound and its canary.
#[derive(Debug)]
pub struct LocalWatch {
    /// The lag and its bound.
    pub pressure: Arc<Pressure>,
    /// The canary, when one runs.
    pub canary: Option<Arc<Canary>>,
}

impl Watch for LocalWatch {
    fn busy(&self) -> Option<Busy> {
        self.pressure.busy()
    }

    fn unready(&self) -> Option<String> {
        self.pressure
            .refusing()
            .or_else(|| self.canary.as_ref().and_then(|c| c.failure()))
    }

    fn sample(&self) {
        self.pressure.sample();
    }
}

impl worker::Progress for Pressure {
    fn processed(&self, cursor: i64) {
        Pressure::processed(self, cursor);
    }
}

/// The local pipeline's [`Wake`]: a command or a rule change wakes its thread at once.
#[derive(Debug, Clone)]
pub struct PipelineWake(pub Arc<Signal>);

impl Wake for PipelineWake {
    fn rules(&self) {
        self.0.wake();
    }

    fn command(&self) {
        self.0.command();
    }
}

/// Starts the journal writer and the pipeline behind it (running `filter`'s plugins),
/// holding ingest to `pressure`'s bound. They stop once every journal handle is dropped:
/// the queue is drained and its events are processed, so a graceful shutdown still
/// commits what was accepted.
pub fn start(
    store: Arc<dyn Store>,
    config: Config,
    filter: Option<Arc<dyn Filter>>,
    pressure: Arc<Pressure>,
) -> Local {
    let (journal, writer) = journal::channel(pressure.clone());
    let signal = Arc::new(Signal::default());
    let feed = Arc::new(Feed::default());
    let handoff = Arc::new(Handoff::default());
    let (finished, stopped) = oneshot::channel();
    // The pipeline runs on a thread of its own: its CPU work (parsing, the engine) never
    // delays an append; the two meet only at the database (on SQLite not even at a
    // writer: the journal has a file and a writer of its own).
    let hooks = Hooks {
        feed: Some(feed.clone()),
        handoff: Some(handoff.clone()),
        progress: Some(pressure.clone()),
    };
    let (pipeline_store, pipeline_signal) = (store.clone(), signal.clone());
    let pipeline = std::thread::Builder::new()
        .name("tocsin-pipeline".into())
        .spawn(move || match pipeline_runtime() {
            Ok(runtime) => runtime.block_on(worker::run(
                pipeline_store,
                config,
                filter,
                pipeline_signal,
                hooks,
            )),
            Err(e) => error!(error = %e, "cannot start the pipeline; events stay in the journal"),
        });
    let writer_signal = signal.clone();
    let spawned = std::thread::Builder::new()
        .name("tocsin-journal".into())
        .spawn(move || {
            match current_thread_runtime() {
                Ok(runtime) => runtime.block_on(writer.run(store, &feed, &writer_signal)),
                Err(e) => error!(error = %e, "cannot start the journal writer; appends will fail"),
            }
            // Appends are over: the pipeline processes what is left, then stops.
            writer_signal.stop();
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
        // The writer is gone with the closure: every append fails cleanly.
        error!(error = %e, "cannot spawn the journal writer; appends will fail");
    }
    Local {
        journal,
        signal,
        handoff,
        pressure,
        canary: None,
        stopped,
    }
}

/// The pipeline's runtime: the pipeline's loop runs on its own thread (`block_on`), and
/// what it spawns (the commit of a batch while it reads and processes the next) on one
/// worker thread beside it.
fn pipeline_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pipeline-rt")
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
}

fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build()
}

/// How long a blocking thread of a runtime of the server's waits for more work before
/// it exits. The engine processes a batch that is behind on such a thread (and the API
/// parses a large body on one), and what the thread allocated and freed stays resident
/// until it exits: a server that caught up with a wide outage gave back 40 MiB only
/// then (tokio's default is 10 s). Under load the threads are busy and stay.
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long a shutdown waits for the journal to commit and apply what was accepted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves the API on `listener` over a started [`Local`] runner, with the outbox
/// delivering beside it, until `shutdown` resolves; then stops taking requests, lets the
/// journal and the pipeline finish what was accepted and stops the outbox.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    local: Local,
    outbox: Outbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Local {
        journal,
        handoff,
        pressure,
        canary,
        stopped,
        ..
    } = local;
    let canary = canary.map(|canary| tokio::spawn(canary.run(journal.clone(), pressure)));
    let (stop_outbox, outbox_stopped) = oneshot::channel::<()>();
    // Always runs: without notifiers it clears the notices no route takes.
    let outbox = tokio::spawn(outbox.run(Some(handoff), async move {
        let _ = outbox_stopped.await;
    }));
    drop(journal);
    let served = axum::serve(listener, tocsin_ui::app(tocsin_api::app(state)))
        .with_graceful_shutdown(shutdown)
        .await;
    // The canary holds a journal handle: stop it so that the writer can finish.
    if let Some(canary) = canary {
        canary.abort();
        let _ = canary.await;
    }
    // The router (and its journal handles) is gone: the writer commits what is queued,
    // then stops. The wait is bounded: what is left unapplied stays in the journal for
    // the next start.
    if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
        warn!(
            "the journal did not finish within {SHUTDOWN_GRACE:?}; stopping anyway (nothing accepted is lost)"
        );
    }
    let _ = stop_outbox.send(());
    let _ = outbox.await;
    served
}
