//! What the handlers are given: the store and, as trait objects, whatever the process
//! that serves the API has around it. The local server gives its journal writer and the
//! pipeline thread it runs; a process with no pipeline (a Lambda function) gives a
//! direct append and a queue message. The handlers see no difference.

use std::sync::Arc;

use tocsin_model::event::{Event, FieldError};
use tocsin_model::notice::Route;
use tocsin_model::plugin::Plugins;
use tocsin_model::suppression::Policy;
use tocsin_notify::config::Notifiers;
use tocsin_store::{JournalStore, Record, Store};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The durable append behind every ingest route.
    pub append: Arc<dyn Append>,
    /// Tells the pipeline, wherever it runs, that rules or commands wait for it.
    pub wake: Arc<dyn Wake>,
    /// The suppression guards.
    pub policy: Policy,
    /// Team plugins: the registry and the transformers `POST /v1/ingest/{plugin}` runs.
    pub plugins: Arc<dyn Plugins>,
    /// Where notifications go (shown without secrets by `GET /v1/notifiers`).
    pub notifiers: Arc<dyn Directory>,
    /// What the runner knows of its own health: back-pressure, the canary, the lag.
    pub watch: Arc<dyn Watch>,
    /// The metrics `GET /metrics` renders; `None` where the process exports none.
    pub metrics: Option<crate::exporter::Exporter>,
    /// What `/readyz` last answered, so that the log says when readiness changes.
    pub readiness: Readiness,
}

/// Whether the last `/readyz` of one served API answered "not ready".
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<std::sync::atomic::AtomicBool>);

impl Readiness {
    /// Records whether the process is ready now; returns whether it was not ready before.
    pub(crate) fn set_unready(&self, unready: bool) -> bool {
        self.0.swap(unready, std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the process serving the API knows of its own health beyond the database.
pub trait Watch: Send + Sync {
    /// Why ingest must wait now (a `503` with `Retry-After`), if it must.
    fn busy(&self) -> Option<Busy>;
    /// Why the process is not ready (`/readyz`), beyond the database, if it is not.
    fn unready(&self) -> Option<String>;
    /// Sets the gauges only the runner knows (the lag) before a scrape.
    fn sample(&self) {}
}

/// Ingest must wait: the pipeline is behind its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Why, for the client and `/readyz`.
    pub reason: String,
    /// When to try again, in seconds.
    pub retry_after: u64,
}

/// A runner with no bound and no canary: always takes events, always ready.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwatched;

impl Watch for Unwatched {
    fn busy(&self) -> Option<Busy> {
        None
    }

    fn unready(&self) -> Option<String> {
        None
    }
}

/// The durable append: events are accepted (a `202`) only once it returns `Ok`.
#[async_trait::async_trait]
pub trait Append: Send + Sync {
    /// Stores `records` durably; on `Err` none of them is stored.
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError>;
    /// Whether it takes appends now (`/readyz`).
    fn is_running(&self) -> bool;
}

/// The append failed; nothing of the request is stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The database failed (a `500`).
    #[error("the journal could not store the events")]
    Failed,
    /// The database takes no writes for now (a `503`): the same request succeeds once
    /// the outage ends.
    #[error("{}", .0.message())]
    Outage(tocsin_store::Outage),
    /// Taking the events would pass the pipeline's lag bound (a `503`).
    #[error("{}", .0.reason)]
    Busy(Busy),
}

/// Appends straight to the store's journal, one transaction per request: for a process
/// that runs no journal writer of its own.
#[derive(Clone)]
pub struct StoreAppend(pub Arc<dyn JournalStore>);

#[async_trait::async_trait]
impl Append for StoreAppend {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        if records.is_empty() {
            return Ok(());
        }
        self.0.append(records).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "journal append failed; nothing of the request is stored");
            e.outage().map_or(AppendError::Failed, AppendError::Outage)
        })
    }

    fn is_running(&self) -> bool {
        true
    }
}

/// Tells the pipeline that something waits for it in the store.
pub trait Wake: Send + Sync {
    /// Services, suppressions or routes changed.
    fn rules(&self);
    /// An incident command was recorded.
    fn command(&self);
}

/// A pipeline that finds changes by itself (it polls the store): nothing to tell.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWake;

impl Wake for NoWake {
    fn rules(&self) {}
    fn command(&self) {}
}

/// Where notifications go, as the API shows and checks it.
pub trait Directory: Send + Sync {
    /// The notifiers and routes a team (`None`: an admin) may see, without secrets.
    fn public(&self, team: Option<&str>) -> serde_json::Value;
    /// Why `team`'s `event` may not ask for the channel or queue it names, if it may not.
    fn check_event(&self, team: &str, event: &Event) -> Result<(), FieldError>;
    /// Why `route` cannot be used, if it cannot.
    fn check_route(&self, route: &Route) -> Result<(), String>;
    /// The routes of the notifiers file.
    fn file_routes(&self) -> &[Route];
}

impl Directory for Notifiers {
    fn public(&self, team: Option<&str>) -> serde_json::Value {
        Notifiers::public(self, team)
    }

    fn check_event(&self, team: &str, event: &Event) -> Result<(), FieldError> {
        Notifiers::check_event(self, team, event)
    }

    fn check_route(&self, route: &Route) -> Result<(), String> {
        self.check(route)
    }

    fn file_routes(&self) -> &[Route] {
        &self.routes
    }
}
