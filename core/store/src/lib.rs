//! Where Tocsin keeps what it must not lose: the event journal, alert state and tokens.
//!
//! Two real backends behind one trait: SQLite (embedded, the default, a file in WAL
//! mode) and PostgreSQL (when the URL says `postgres://`). Both are tested alike.

mod commands;
mod context;
mod logs;
mod outbox;
mod pipeline;
mod plugins;
mod postgres;
mod sqlite;

pub use context::{Change, Runbook};
pub use logs::LogsQuery;
pub use outbox::{Delivery, DeliveryQuery};
pub use pipeline::{incident_from, suppression_state};
pub use plugins::{DeadLetter, NewVersion, PluginRow};

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use tocsin_model::catalogue::Service;
use tocsin_model::clock::millis;
use tocsin_model::notice::StoredRoute;
use tocsin_model::views::ContextSection;
use tocsin_model::event::{Event, Fingerprint, Status};
use tocsin_model::rows::{CommandOutcome, CommandRow, Incoming, Outcome, Rules, Snapshot, TrackedRow};
use tocsin_model::views::{
    AuditEntry, HistoryEntry, HistoryQuery, IncidentDetail, IncidentQuery, IncidentSummary,
    SuppressionRecord,
};

pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, Synchronous};

/// A store failure. Callers map it to a 500 and log it; its text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a backend Tocsin does not have.
    #[error("unsupported database URL \"{0}\": use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A stored row no longer parses (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Another process committed pipeline state since this one loaded it.
    #[error("another process moved the pipeline on; reloading its state")]
    Conflict,
}

/// An event that passed validation, stamped with its id and receipt time.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The event's id, returned to the sender.
    pub id: uuid::Uuid,
    /// Team that owns the event ("" when an admin sent it without a `team` label).
    pub team: String,
    /// Where it came from (`api`, later adapters and plugins).
    pub source: &'static str,
    /// When Tocsin received it.
    pub received_at: OffsetDateTime,
    /// The alert identity.
    pub fingerprint: Fingerprint,
    /// The event as the sender gave it.
    pub event: Event,
}

impl Accepted {
    /// Stamps a validated event with a new time-ordered id.
    pub fn new(
        event: Event,
        team: String,
        source: &'static str,
        received_at: OffsetDateTime,
    ) -> Self {
        let fingerprint = event.fingerprint();
        Self {
            id: uuid::Uuid::now_v7(),
            team,
            source,
            received_at,
            fingerprint,
            event,
        }
    }

    /// When the check entered its status: as reported, or else the receipt time.
    pub fn since(&self) -> OffsetDateTime {
        self.event.alert.since.unwrap_or(self.received_at)
    }

    /// Encodes the event as the journal stores it, with the trace id of the request that
    /// brought it. Called by each request (in parallel) so that the journal's single
    /// writer only binds ready values.
    pub fn into_record(self, trace_id: Option<&str>) -> Record {
        Record {
            trace_id: trace_id.map(str::to_owned),
            id: self.id.to_string(),
            fingerprint: self.fingerprint.to_string(),
            source: self.source,
            // Serializing our own plain types to JSON cannot fail.
            event: serde_json::to_string(&self.event).unwrap_or_default(),
            labels: serde_json::to_string(&self.event.context).unwrap_or_default(),
            status: self.event.alert.status,
            reported_since: self.event.alert.since.map(millis),
            reported_count: self
                .event
                .alert
                .count
                .map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            monitor: self.event.alert.monitor,
            team: self.team,
            received: millis(self.received_at),
        }
    }
}

/// One accepted event as the journal stores it, every value encoded.
#[derive(Debug, Clone)]
pub struct Record {
    id: String,
    team: String,
    fingerprint: String,
    source: &'static str,
    received: i64,
    monitor: String,
    status: Status,
    /// The context labels, as a JSON object.
    labels: String,
    reported_since: Option<i64>,
    reported_count: Option<i64>,
    /// The event as given, as JSON.
    event: String,
    /// The W3C trace id of the request that brought it.
    trace_id: Option<String>,
}

impl Record {
    /// The event's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The journal row the pipeline reads for this record, once it is stored at `seq`.
    pub fn incoming(&self, seq: i64) -> Incoming {
        Incoming {
            seq,
            id: self.id.clone(),
            team: self.team.clone(),
            fingerprint: self.fingerprint.clone(),
            source: self.source.to_owned(),
            received_at: self.received,
            monitor: self.monitor.clone(),
            status: self.status,
            labels: self.labels.clone(),
            reported_since: self.reported_since,
            reported_count: self.reported_count,
            event: self.event.clone(),
            trace_id: self.trace_id.clone(),
        }
    }
}

/// The current state of one alert identity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertState {
    /// Hex fingerprint of monitor + labels.
    pub fingerprint: String,
    /// Owning team ("" when none).
    pub team: String,
    /// The check's name.
    pub monitor: String,
    /// The alert's labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The last status seen.
    pub status: Status,
    /// Since when it has had this status.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    /// Runs of the check in this status (as reported, or counted by Tocsin).
    pub count: i64,
    /// First event for this identity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: OffsetDateTime,
    /// Latest event for this identity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: OffsetDateTime,
    /// Id of the latest event.
    pub last_event: String,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    /// Only this team's alerts; `None` lists every team's (admins only).
    pub team: Option<String>,
    /// Only alerts of teams other than this one.
    pub other_than: Option<String>,
    /// Only alerts with this status.
    pub status: Option<Status>,
    /// Only alerts with this monitor.
    pub monitor: Option<String>,
    /// Only alerts carrying every one of these labels with these values.
    pub labels: Vec<(String, String)>,
    /// Resume after this (team, fingerprint).
    pub after: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

/// A stored token, without the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    /// Public id, used to revoke it.
    pub id: String,
    /// The team it acts for; `None` for admin tokens.
    pub team: Option<String>,
    /// Whether it may act for every team.
    pub admin: bool,
    /// A note from whoever created it.
    pub description: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// What an append tells beyond its success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// The seq of the first record, when the records got consecutive seqs in their order.
    pub first: Option<i64>,
    /// The pipeline's commit counter and the catalogue's change counter ([`Store::versions`])
    /// as read in the append's transaction, after its inserts: a change committed before
    /// the append is counted in them.
    pub versions: (i64, i64),
}

/// Where Tocsin keeps its state. Every method is one transaction: it happens entirely
/// or not at all.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events to the journal in one transaction; when it returns `Ok` the events
    /// survive a crash. Says which seqs the records got and the pipeline's counters as
    /// that transaction saw them, so the pipeline can take the records without reading
    /// them or the counters back.
    async fn append(&self, records: Vec<Record>) -> Result<Appended, StoreError>;
    /// Journal events the pipeline has not processed yet.
    async fn lag(&self) -> Result<u64, StoreError>;
    /// Journal rows after `after`, oldest first, at most `max`, without their bodies.
    async fn journal_after(&self, after: i64, max: usize) -> Result<Vec<Incoming>, StoreError>;
    /// Labels and event (JSON) of these journal rows, by seq.
    async fn journal_bodies(
        &self,
        seqs: &[i64],
    ) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError>;
    /// The pipeline's commit counter and the catalogue/suppression change counter.
    async fn versions(&self) -> Result<(i64, i64), StoreError>;
    /// One page of alert states, after (team, fingerprint), for loading the pipeline.
    async fn tracked_page(
        &self,
        after: Option<(String, String)>,
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
    /// Deletes history and finished incidents older than `before`; returns rows removed.
    async fn prune(&self, before: i64) -> Result<u64, StoreError>;
    /// Creates or replaces a service.
    async fn put_service(&self, service: &Service, now: i64) -> Result<(), StoreError>;
    /// Services in name order, one team's or all.
    async fn services(&self, team: Option<&str>) -> Result<Vec<Service>, StoreError>;
    /// One service.
    async fn service(&self, name: &str) -> Result<Option<Service>, StoreError>;
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
    /// The event history.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Incidents, newest first.
    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentSummary>, StoreError>;
    /// One incident with its alerts and timeline.
    async fn incident(
        &self,
        id: &str,
        team: Option<&str>,
    ) -> Result<Option<IncidentDetail>, StoreError>;
    /// Acks or closes a resolved incident (the pipeline no longer holds it).
    async fn finished_incident(
        &self,
        id: &str,
        team: Option<&str>,
        close: bool,
        who: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Events stopped so far, by reason: one team's, or (`None`) every team's summed.
    async fn drops(
        &self,
        team: Option<&str>,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError>;
    /// Lists alert states in (team, fingerprint) order.
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError>;
    /// Number of accepted events still traceable by id: waiting in the journal, kept in
    /// the history, or the latest event of their alert (other steady repeats only count).
    async fn event_count(&self) -> Result<u64, StoreError>;
    /// Their ids, oldest first.
    async fn event_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Stores a new token (its hash only).
    async fn create_token(&self, token: &TokenRecord, hash: &str) -> Result<(), StoreError>;
    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, revoked ones included.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; `false` when no live token has this id.
    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError>;
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
    /// A plugin's dead letters, newest first.
    async fn dead_letters(
        &self,
        team: &str,
        plugin: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// Notices the pipeline left that the outbox has not turned into deliveries yet,
    /// oldest first.
    async fn notices(&self, limit: i64) -> Result<Vec<tocsin_model::rows::NoticeRow>, StoreError>;
    /// Replaces notices by their deliveries, in one transaction.
    async fn expand_notices(
        &self,
        notices: &[String],
        deliveries: &[Delivery],
    ) -> Result<(), StoreError>;
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
        state: &str,
        due_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Routes set through the API, of one team or (`None`) of all.
    async fn routes(&self, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError>;
    /// Sets a route, replacing the one of the same team and service.
    async fn put_route(&self, route: &StoredRoute) -> Result<(), StoreError>;
    /// Removes a route; `false` when there was none.
    async fn delete_route(&self, team: &str, service: Option<&str>) -> Result<bool, StoreError>;
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
    /// Deliveries, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;
    /// Queues a dead delivery again; `false` when there is no such dead delivery.
    async fn retry_delivery(
        &self,
        id: &str,
        team: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Creates or replaces a runbook of its team (ids are per team).
    async fn put_runbook(&self, runbook: &Runbook) -> Result<(), StoreError>;
    /// One runbook of a team.
    async fn runbook(&self, team: &str, id: &str) -> Result<Option<Runbook>, StoreError>;
    /// Records a change of a service.
    async fn put_change(&self, change: &Change) -> Result<(), StoreError>;
    /// A service's changes since `since` (Unix ms) recorded by one team (`None`: by
    /// any), newest first.
    async fn changes(
        &self,
        team: Option<&str>,
        service: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Change>, StoreError>;
    /// Replaces the context collected for an incident.
    async fn put_context(
        &self,
        incident_id: &str,
        sections: &[ContextSection],
    ) -> Result<(), StoreError>;
    /// The context collected for an incident.
    async fn context(&self, incident_id: &str) -> Result<Vec<ContextSection>, StoreError>;
    /// Ready to serve: the database answers and every migration is applied.
    async fn ready(&self) -> Result<(), StoreError>;
    /// Records an incident command for the pipeline to apply.
    async fn request_command(&self, row: &CommandRow) -> Result<(), StoreError>;
    /// Commands not applied yet, oldest first.
    async fn pending_commands(&self, limit: i64) -> Result<Vec<CommandRow>, StoreError>;
    /// Records what became of a command.
    async fn finish_command(
        &self,
        id: &str,
        outcome: CommandOutcome,
        at: i64,
    ) -> Result<(), StoreError>;
    /// What became of a command; `None` while it is pending.
    async fn command_outcome(&self, id: &str) -> Result<Option<CommandOutcome>, StoreError>;
    /// Creates or replaces a team's logs query.
    async fn put_logs_query(&self, query: &LogsQuery) -> Result<(), StoreError>;
    /// One team's logs queries (`None`: every team's), by team and name.
    async fn logs_queries(&self, team: Option<&str>) -> Result<Vec<LogsQuery>, StoreError>;
    /// One logs query of a team.
    async fn logs_query(&self, team: &str, name: &str) -> Result<Option<LogsQuery>, StoreError>;
    /// Removes a logs query of a team; `false` when the team has none of that name.
    async fn delete_logs_query(&self, team: &str, name: &str) -> Result<bool, StoreError>;
}

/// Options that are not part of the database URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// SQLite's `synchronous` setting (ignored by PostgreSQL).
    pub synchronous: Synchronous,
}

/// Opens the store a URL names, creating a SQLite file on first use, and applies
/// pending migrations.
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options.synchronous).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact(url)))
    }
}

/// A URL with its password, if any, replaced, so it can be logged: the one after the
/// user name, and a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Sizes to split `n` rows into: 256s, then 32s, 4s and 1s. Multi-row statements of only
/// four shapes, so each is prepared once and then served from the statement cache, and
/// few statements per batch.
fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    for size in [256, 32, 4, 1] {
        while n >= size {
            sizes.push(size);
            n -= size;
        }
    }
    sizes
}

/// Compares the migrations a database has applied with the ones this build carries.
fn check_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), StoreError> {
    match migrator.iter().find(|m| !applied.contains(&m.version)) {
        Some(missing) => Err(StoreError::Corrupt(format!(
            "migration {} ({}) is not applied",
            missing.version, missing.description
        ))),
        None => Ok(()),
    }
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

/// Journal events the pipeline has not processed yet: processed ones leave the journal
/// (same SQL on both backends).
const LAG: &str = "SELECT COUNT(*) FROM journal \
    WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline')";

/// Ids of accepted events still traceable: waiting in the journal, in the history, or
/// as the latest event of their alert (same SQL on both backends). Processed rows may
/// stay in the journal a while (they are deleted 2,000 at a time): only those after the
/// cursor are waiting.
const EVENT_IDS: &str = "SELECT id FROM journal WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline') \
    UNION SELECT id FROM history WHERE source <> 'tocsin' UNION SELECT last_event FROM alerts";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://tocsin.db"), "sqlite://tocsin.db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }
}
