//! Where Tocsin keeps what it must not lose: the event journal, alert state and tokens.
//!
//! Two real backends behind one trait: SQLite (embedded, the default, a file in WAL
//! mode) and PostgreSQL (when the URL says `postgres://`). Both are tested alike.

mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::event::{Event, Fingerprint, Status};

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
}

/// An event that passed validation, with everything the store needs precomputed.
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
    /// The event as the sender gave it, `since` filled in with the receipt time.
    pub event: Event,
    /// `since` as the check reported it, `None` when it did not.
    pub reported_since: Option<OffsetDateTime>,
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

/// Where Tocsin keeps its state. Every method is one transaction: it happens entirely
/// or not at all.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events to the journal and updates their alerts' state, in one
    /// transaction; when it returns `Ok` the events survive a crash.
    async fn append(&self, events: &[Accepted]) -> Result<(), StoreError>;
    /// Lists alert states in (team, fingerprint) order.
    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError>;
    /// Number of events in the journal.
    async fn journal_len(&self) -> Result<u64, StoreError>;
    /// Ids of every event in the journal, oldest first.
    async fn journal_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Stores a new token (its hash only).
    async fn create_token(&self, token: &TokenRecord, hash: &str) -> Result<(), StoreError>;
    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, revoked ones included.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; `false` when no live token has this id.
    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError>;
    /// Ready to serve: the database answers and every migration is applied.
    async fn ready(&self) -> Result<(), StoreError>;
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

/// A URL with its password, if any, replaced, so it can be logged.
pub fn redact(url: &str) -> String {
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

/// Splits a batch into rounds in which each alert identity appears at most once, so an
/// upsert statement never touches a row twice (PostgreSQL refuses that) and the events
/// of one identity still apply in the order they arrived.
fn rounds<'r, 'a>(rows: &'r [Row<'a>]) -> Vec<Vec<&'r Row<'a>>> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(rows.len());
    let mut rounds: Vec<Vec<&Row<'a>>> = Vec::new();
    for row in rows {
        let n = seen
            .entry((row.team, row.fingerprint.as_str()))
            .or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(row);
        *n += 1;
    }
    rounds
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

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

/// One journal row and its alert upsert, as a JSON object: a batch travels to the
/// database as one JSON array bound to one parameter, so each statement is prepared once
/// and costs one round trip whatever the batch size; the database unpacks it with
/// `json_each` (SQLite) or `jsonb_array_elements` (PostgreSQL).
#[derive(Serialize)]
struct Row<'a> {
    id: String,
    team: &'a str,
    fingerprint: String,
    source: &'a str,
    received: i64,
    /// Tocsin's `since`: the reported one, or the receipt time.
    since: i64,
    /// Tocsin's `count` for a new status: the reported one, or 1.
    count: i64,
    reported_since: Option<i64>,
    reported_count: Option<i64>,
    event: &'a Event,
}

impl<'a> Row<'a> {
    fn of(accepted: &'a Accepted) -> Self {
        let received = millis(accepted.received_at);
        let reported_count = accepted.event.alert.count.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
        Row {
            id: accepted.id.to_string(),
            team: &accepted.team,
            fingerprint: accepted.fingerprint.to_string(),
            source: accepted.source,
            received,
            since: accepted.reported_since.map_or(received, millis),
            count: reported_count.unwrap_or(1),
            reported_since: accepted.reported_since.map(millis),
            reported_count,
            event: &accepted.event,
        }
    }
}

/// The JSON arrays a batch is written with: all rows for the journal, and one array per
/// round for the alert upserts (the same text when there is one round, the usual case).
struct Payload {
    journal: String,
    rounds: Vec<String>,
}

impl Payload {
    fn of(events: &[Accepted]) -> Self {
        let rows: Vec<Row<'_>> = events.iter().map(Row::of).collect();
        // Serializing our own plain types cannot fail.
        let journal = serde_json::to_string(&rows).unwrap_or_default();
        let rounds = rounds(&rows);
        let rounds = if rounds.len() == 1 {
            vec![journal.clone()]
        } else {
            rounds.iter().map(|round| serde_json::to_string(round).unwrap_or_default()).collect()
        };
        Self { journal, rounds }
    }
}

/// The `ON CONFLICT` clause shared by both backends: an unchanged status keeps Tocsin's
/// `since` and counts up unless the check reported its own; a change starts afresh.
const ALERT_UPSERT: &str = " ON CONFLICT (team, fingerprint) DO UPDATE SET \
    since = CASE WHEN alerts.status = excluded.status \
        THEN COALESCE(excluded.reported_since, alerts.since) ELSE excluded.since END, \
    count = CASE WHEN alerts.status = excluded.status \
        THEN COALESCE(excluded.reported_count, alerts.count + 1) ELSE excluded.count END, \
    status = excluded.status, \
    last_seen = excluded.last_seen, \
    reported_since = excluded.reported_since, \
    reported_count = excluded.reported_count, \
    last_event = excluded.last_event";

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
    }
}
