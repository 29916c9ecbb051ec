//! The store's traits, one per stage, so that each consumer sees only what it may touch:
//! ingest the journal, the pipeline its state, the outbox its deliveries, the API the
//! admin writes, the plugin host the plugins. [`Store`] is all of them, which each
//! backend is. Every method is one transaction: it happens entirely or not at all.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use tocsin_model::catalogue::Service;
use tocsin_model::notice::{DeliveryState, StoredRoute};
use tocsin_model::rows::{
    CommandOutcome, CommandRow, Incoming, NoticeRow, Outcome, Rules, Snapshot, TrackedRow,
};
use tocsin_model::views::{
    AuditEntry, ContextSection, HistoryEntry, HistoryQuery, IncidentDetail, IncidentQuery,
    IncidentSummary, SuppressionRecord,
};

use crate::alerts::{AlertQuery, AlertState};
use crate::context::{Change, Runbook};
use crate::error::StoreError;
use crate::journal::{Appended, Record};
use crate::lease::Lease;
use crate::logs::LogsQuery;
use crate::outbox::{Delivery, DeliveryQuery, StoreHealth};
use crate::pipeline::Encoded;
use crate::plugins::{DeadLetter, NewVersion, PluginRow};
use crate::tokens::TokenRecord;

/// What ingest needs: the journal it appends accepted events to, and what the journal
/// holds. The API's append path and the local journal writer take it.
#[async_trait::async_trait]
pub trait JournalStore: Send + Sync + 'static {
    /// Appends events to the journal in one transaction; when it returns `Ok` the events
    /// survive a crash. Says which seqs the records got and the pipeline's counters as
    /// that transaction saw them, so the pipeline can take the records without reading
    /// them or the counters back.
    async fn append(&self, records: Vec<Record>) -> Result<Appended, StoreError>;
    /// Journal events the pipeline has not processed yet.
    async fn lag(&self) -> Result<u64, StoreError>;
    /// Number of accepted events still traceable by id: waiting in the journal, kept in
    /// the history, or the latest event of their alert (other steady repeats only count).
    async fn event_count(&self) -> Result<u64, StoreError>;
    /// Their ids, oldest first.
    async fn event_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Ready to serve: the database answers and every migration is applied.
    async fn ready(&self) -> Result<(), StoreError>;
}

/// Reads every stage may make: incidents, alerts, the catalogue, and what was collected
/// or delivered. Nothing here writes.
#[async_trait::async_trait]
pub trait ViewStore: Send + Sync + 'static {
    /// Incidents, newest first.
    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentSummary>, StoreError>;
    /// One incident with its alerts and timeline.
    async fn incident(
        &self,
        id: &str,
        team: Option<&str>,
    ) -> Result<Option<IncidentDetail>, StoreError>;
    /// Lists alert states in (team, fingerprint) order.
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError>;
    /// The event history.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Events stopped so far, by reason: one team's, or (`None`) every team's summed.
    async fn drops(&self, team: Option<&str>) -> Result<HashMap<String, i64>, StoreError>;
    /// Services in name order, one team's or all.
    async fn services(&self, team: Option<&str>) -> Result<Vec<Service>, StoreError>;
    /// One service.
    async fn service(&self, name: &str) -> Result<Option<Service>, StoreError>;
    /// Suppressions newest first (one by id; those `team` may see: its own and the
    /// teamless ones that stopped or hold its events; or all), with their state at `now`.
    async fn suppressions(
        &self,
        id: Option<&str>,
        team: Option<&str>,
        now: i64,
    ) -> Result<Vec<SuppressionRecord>, StoreError>;
    /// A suppression's audit trail.
    async fn audit_trail(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError>;
    /// Routes set through the API, of one team or (`None`) of all.
    async fn routes(&self, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError>;
    /// Deliveries, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;
    /// The context collected for an incident.
    async fn context(&self, incident_id: &str) -> Result<Vec<ContextSection>, StoreError>;
    /// One runbook of a team.
    async fn runbook(&self, team: &str, id: &str) -> Result<Option<Runbook>, StoreError>;
    /// A service's changes since `since` (Unix ms) recorded by one team (`None`: by
    /// any), newest first.
    async fn changes(
        &self,
        team: Option<&str>,
        service: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Change>, StoreError>;
    /// One logs query of a team.
    async fn logs_query(&self, team: &str, name: &str) -> Result<Option<LogsQuery>, StoreError>;
    /// One team's logs queries (`None`: every team's), by team and name.
    async fn logs_queries(&self, team: Option<&str>) -> Result<Vec<LogsQuery>, StoreError>;
    /// A plugin's dead letters, newest first.
    async fn dead_letters(
        &self,
        team: &str,
        plugin: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// What became of a command; `None` while it is pending.
    async fn command_outcome(&self, id: &str) -> Result<Option<CommandOutcome>, StoreError>;
    /// The outbox's depth and the database's size, for `/metrics`.
    async fn health(&self) -> Result<StoreHealth, StoreError>;
}

/// What the pipeline (engine and runner) needs: the journal from its cursor, its own
/// state, the rules it applies, its commits, and the incident commands it applies.
#[async_trait::async_trait]
pub trait PipelineStore: ViewStore {
    /// Journal rows after `after`, oldest first, at most `max`: without their bodies
    /// where the journal keeps those apart (SQLite), with them where a read brings them
    /// anyway (PostgreSQL's blocks).
    async fn journal_after(&self, after: i64, max: usize) -> Result<Vec<Incoming>, StoreError>;
    /// Labels and event (JSON) of these journal rows, by seq.
    async fn journal_bodies(
        &self,
        seqs: &[i64],
    ) -> Result<HashMap<i64, (String, String)>, StoreError>;
    /// The pipeline's commit counter and the catalogue/suppression change counter.
    async fn versions(&self) -> Result<(i64, i64), StoreError>;
    /// Takes the pipeline's lease, waiting up to `wait` for another process to give it
    /// up; `None` if it did not. Processes that share a database (the Lambda functions)
    /// take turns with it instead of undoing each other's batches; the commit counter
    /// keeps them exact either way.
    async fn lease(&self, wait: Duration) -> Result<Option<Lease>, StoreError>;
    /// One page of alert states, after the alert id `after`, in id order, for loading
    /// the pipeline.
    async fn tracked_page(
        &self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<TrackedRow>, StoreError>;
    /// The pipeline's cursor, held events and open incidents.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// The service catalogue and the suppressions not ended by `since` (unix ms; the
    /// pipeline passes now minus retention, so late events and ended holds still see
    /// a suppression that ended).
    async fn rules(&self, since: i64) -> Result<Rules, StoreError>;
    /// Writes a batch's outcome (and removes its events from the journal) if the
    /// pipeline's commit counter is still `generation`.
    async fn commit(&self, outcome: &Outcome, generation: i64) -> Result<(), StoreError>;
    /// Builds the statements that write `outcome`, without touching the database (CPU
    /// only): a runner that is behind builds the next batch's while this one commits.
    fn encode(&self, outcome: &Outcome) -> Encoded;
    /// [`Self::commit`] of an outcome [`Self::encode`] built.
    async fn commit_encoded(&self, encoded: Encoded, generation: i64) -> Result<(), StoreError>;
    /// Deletes history and finished incidents older than `before`; returns rows removed.
    async fn prune(&self, before: i64) -> Result<u64, StoreError>;
    /// Acks or closes a resolved incident (the pipeline no longer holds it).
    async fn finished_incident(
        &self,
        id: &str,
        team: Option<&str>,
        close: bool,
        who: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Commands not applied yet, oldest first.
    async fn pending_commands(&self, limit: i64) -> Result<Vec<CommandRow>, StoreError>;
    /// Records what became of a command.
    async fn finish_command(
        &self,
        id: &str,
        outcome: CommandOutcome,
        at: i64,
    ) -> Result<(), StoreError>;
}

/// What the outbox needs: the notices the pipeline left, the deliveries they become,
/// what notifiers know incidents by, and the context the collectors gathered.
#[async_trait::async_trait]
pub trait OutboxStore: ViewStore {
    /// Notices the pipeline left that the outbox has not turned into deliveries yet,
    /// oldest first.
    async fn notices(&self, limit: i64) -> Result<Vec<NoticeRow>, StoreError>;
    /// Replaces notices by their deliveries, in one transaction; returns the ids of the
    /// deliveries stored (one already stored for the same notice and notifier, by another
    /// process, is kept instead).
    async fn expand_notices(
        &self,
        notices: &[String],
        deliveries: &[Delivery],
    ) -> Result<Vec<String>, StoreError>;
    /// Pending deliveries due by `now`, oldest first, each the first pending one of its
    /// incident and notifier.
    async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>, StoreError>;
    /// When the next pending delivery is due.
    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError>;
    /// Counts an attempt before it is made and leases the delivery until `lease_until`;
    /// `false` when it is no longer pending.
    async fn claim_delivery(
        &self,
        id: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Makes every pending delivery due now (at start: the attempts of a process that
    /// died); returns how many.
    async fn release_deliveries(&self, now: i64) -> Result<u64, StoreError>;
    /// Settles an attempt: `sent`, `dead`, or `pending` again at `due_at`.
    async fn settle_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        due_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// What a notifier knows an incident by (Slack message, issue key, …).
    async fn delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Remembers what a notifier knows an incident by.
    async fn set_delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
        reference: &str,
    ) -> Result<(), StoreError>;
    /// Replaces the context collected for an incident.
    async fn put_context(
        &self,
        incident_id: &str,
        sections: &[ContextSection],
    ) -> Result<(), StoreError>;
}

/// What the API changes on behalf of teams and admins: the catalogue, suppressions,
/// routes, runbooks, changes and logs queries, tokens, retries and incident commands.
#[async_trait::async_trait]
pub trait AdminStore: ViewStore {
    /// Creates or replaces a service.
    async fn put_service(&self, service: &Service, now: i64) -> Result<(), StoreError>;
    /// Stores a new suppression, audited.
    async fn create_suppression(
        &self,
        record: &SuppressionRecord,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Moves a suppression's start and end, audited as `action` with `detail` (JSON).
    #[allow(clippy::too_many_arguments)]
    async fn retime_suppression(
        &self,
        id: &str,
        start: i64,
        end: i64,
        actor: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Sets a route, replacing the one of the same team and service.
    async fn put_route(&self, route: &StoredRoute) -> Result<(), StoreError>;
    /// Removes a route; `false` when there was none.
    async fn delete_route(&self, team: &str, service: Option<&str>) -> Result<bool, StoreError>;
    /// Queues a dead delivery again; `false` when there is no such dead delivery.
    async fn retry_delivery(
        &self,
        id: &str,
        team: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Records an incident command for the pipeline to apply.
    async fn request_command(&self, row: &CommandRow) -> Result<(), StoreError>;
    /// Creates or replaces a runbook of its team (ids are per team).
    async fn put_runbook(&self, runbook: &Runbook) -> Result<(), StoreError>;
    /// Records a change of a service.
    async fn put_change(&self, change: &Change) -> Result<(), StoreError>;
    /// Creates or replaces a team's logs query.
    async fn put_logs_query(&self, query: &LogsQuery) -> Result<(), StoreError>;
    /// Removes a logs query of a team; `false` when the team has none of that name.
    async fn delete_logs_query(&self, team: &str, name: &str) -> Result<bool, StoreError>;
    /// Stores a new token (its hash only).
    async fn create_token(&self, token: &TokenRecord, hash: &str) -> Result<(), StoreError>;
    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, revoked ones included.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; `false` when no live token has this id.
    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError>;
}

/// What the plugin host needs: versions and their components, plugin state, and the
/// dead letters of failed transformer calls.
#[async_trait::async_trait]
pub trait PluginStore: Send + Sync + 'static {
    /// Stores a new version of a plugin and makes it active; returns its number.
    async fn put_plugin_version(&self, new: &NewVersion<'_>) -> Result<i64, StoreError>;
    /// Plugins with their versions (not their bytes), one team's or all.
    async fn plugins(&self, team: Option<&str>) -> Result<Vec<PluginRow>, StoreError>;
    /// The bytes of one version of a plugin.
    async fn plugin_component(
        &self,
        team: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// The precompiled artifact of the component with this SHA-256 for an engine of this
    /// compatibility hash, if one was stored.
    async fn plugin_artifact(
        &self,
        sha256: &str,
        engine: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores the precompiled artifact of a component for an engine hash. Only the
    /// plugin host calls this, with what its own compiler produced.
    async fn put_plugin_artifact(
        &self,
        sha256: &str,
        engine: &str,
        artifact: &[u8],
        at: i64,
    ) -> Result<(), StoreError>;
    /// Makes a stored version of a plugin active.
    async fn activate_plugin(
        &self,
        team: &str,
        name: &str,
        version: i64,
        at: i64,
    ) -> Result<(), StoreError>;
    /// Removes a plugin with its versions, state and dead letters; `false` when absent.
    async fn delete_plugin(&self, team: &str, name: &str) -> Result<bool, StoreError>;
    /// A plugin's key/value state.
    async fn plugin_state(
        &self,
        team: &str,
        name: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Writes and removes keys of a plugin's state.
    async fn save_plugin_state(
        &self,
        team: &str,
        name: &str,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError>;
    /// Keeps the input of a failed transformer call.
    async fn put_dead_letter(&self, letter: &DeadLetter, body: &[u8]) -> Result<(), StoreError>;
}

/// Everything a backend stores: every stage's trait. The local server holds one and
/// hands each stage its own view of it.
pub trait Store: JournalStore + PipelineStore + OutboxStore + AdminStore + PluginStore {}

impl<T> Store for T where T: JournalStore + PipelineStore + OutboxStore + AdminStore + PluginStore {}
