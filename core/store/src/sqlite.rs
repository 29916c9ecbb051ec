//! The embedded backend: two SQLite files in WAL mode, the database and the journal's,
//! each with one writer connection (SQLite admits one writer per file anyway), and a
//! few readers that never wait for either.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row as _, Sqlite};
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::commands::sqlite as commands;
use super::context::sqlite as context;
use super::logs::sqlite as logs;
use super::outbox::sqlite as outbox;
use super::pipeline::sqlite as shared;
use super::plugins::sqlite as plugins;
use tocsin_model::views::{
    AuditEntry, HistoryEntry, HistoryQuery, IncidentDetail, IncidentQuery, IncidentSummary,
    SuppressionRecord,
};
use super::{
    AlertQuery, AlertState, Appended, Change, ContextSection, DeadLetter, Delivery, DeliveryQuery,
    EVENT_IDS, LAG, LogsQuery, NewVersion, PluginRow, Record, Runbook, Store, StoreError,
    StoredRoute, TokenRecord, chunk_sizes, from_millis, millis,
};
use tocsin_model::catalogue::Service;
use tocsin_model::rows::{CommandOutcome, CommandRow};
use tocsin_model::rows::{Incoming, Outcome, Rules, Snapshot, TrackedRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite's `synchronous` setting: what a commit waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// A commit is in the WAL file before it returns: it survives a crash or SIGKILL of
    /// the process, not a power cut. The default.
    #[default]
    Normal,
    /// A commit is fsynced before it returns: it survives a power cut too, at a cost.
    Full,
}

/// The SQLite store.
///
/// The journal is a database file of its own (`tocsin.journal.db` beside `tocsin.db`),
/// attached to every connection as schema `j`, with a writer of its own: appends
/// never wait for the pipeline's commits, nor those for appends. SQLite admits one
/// writer per file, and with one file for both, the way of each event to its page was
/// mostly waiting for the other's commits.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    _checkpointer: Arc<AbortOnDrop>,
    /// Writes everything but the journal.
    writer: SqlitePool,
    /// Writes the journal: appends and the deletes of processed rows.
    journal: SqlitePool,
    readers: SqlitePool,
}

/// The schema name of the journal's file on every connection (spelled out in the SQL
/// texts below and in migration 0008).
const JOURNAL_SCHEMA: &str = "j";

/// The journal's table, in its own file. The seq is never reused below the pipeline's
/// cursor (AUTOINCREMENT, and [`JOURNAL_SEQ_FLOOR`] when the file is new).
const JOURNAL_TABLE: &str = "CREATE TABLE IF NOT EXISTS j.journal (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL,
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    source         TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    monitor        TEXT NOT NULL,
    status         TEXT NOT NULL,
    labels         TEXT NOT NULL,
    reported_since INTEGER,
    reported_count INTEGER,
    event          TEXT NOT NULL,
    trace_id       TEXT
)";

/// Whether the journal's seq counter is missing or below the pipeline's cursor.
const JOURNAL_BELOW_FLOOR: &str =
    "SELECT COALESCE((SELECT seq FROM j.sqlite_sequence WHERE name = 'journal'), -1)
    < COALESCE((SELECT seq FROM main.progress WHERE stage = 'pipeline'), 0)";

/// A journal file that is new (first start, or lost) numbers its rows after the
/// pipeline's cursor, never at or below it, where the pipeline would skip them.
const JOURNAL_SEQ_FLOOR: &str = "INSERT INTO j.sqlite_sequence (name, seq)
    SELECT 'journal', COALESCE((SELECT seq FROM main.progress WHERE stage = 'pipeline'), 0)
    WHERE NOT EXISTS (SELECT 1 FROM j.sqlite_sequence WHERE name = 'journal');
UPDATE j.sqlite_sequence SET seq = (SELECT seq FROM main.progress WHERE stage = 'pipeline')
    WHERE name = 'journal' AND seq < (SELECT seq FROM main.progress WHERE stage = 'pipeline')";

/// Where the journal of the database file `main` lives: `tocsin.db` → `tocsin.journal.db`.
fn journal_path(main: &std::path::Path) -> std::path::PathBuf {
    let stem = main.file_stem().unwrap_or_default().to_string_lossy();
    let name = match main.extension() {
        Some(ext) => format!("{stem}.journal.{}", ext.to_string_lossy()),
        None => format!("{stem}.journal"),
    };
    main.with_file_name(name)
}

/// The statements that attach the journal's `file` to a new connection as
/// [`JOURNAL_SCHEMA`], with the main file's settings and a page cache of `cache_kib`.
fn attach_journal(file: &std::path::Path, synchronous: &str, cache_kib: i64) -> Arc<str> {
    format!(
        "ATTACH DATABASE '{}' AS {JOURNAL_SCHEMA};
         PRAGMA {JOURNAL_SCHEMA}.journal_mode = WAL;
         PRAGMA {JOURNAL_SCHEMA}.synchronous = {synchronous};
         PRAGMA {JOURNAL_SCHEMA}.journal_size_limit = 67108864;
         PRAGMA {JOURNAL_SCHEMA}.cache_size = -{cache_kib};",
        file.to_string_lossy().replace('\'', "''")
    )
    .into()
}

/// A pool's `after_connect` hook that runs `sql` on each new connection.
fn on_connect(
    sql: Arc<str>,
) -> impl for<'c> Fn(
    &'c mut sqlx::SqliteConnection,
    sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>>
+ Send
+ Sync
+ 'static {
    move |conn, _| {
        let sql = sql.clone();
        Box::pin(async move {
            sqlx::Executor::execute(conn, &*sql).await?;
            Ok(())
        })
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file of `url`, and the journal's file
    /// beside it, and migrates them.
    pub async fn open(url: &str, synchronous: Synchronous) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            // Another process (`tocsin token create`) may hold the write lock briefly.
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            // Checkpoints run on a connection of their own (below), never inside a commit:
            // a checkpoint copies pages and fsyncs, and the writer must not wait for that.
            .pragma("wal_autocheckpoint", "0")
            // When a checkpoint lets the WAL start over, cut the file back to 64 MiB
            // rather than keeping its high-water mark on disk.
            .pragma("journal_size_limit", "67108864");
        let journal_file = journal_path(options.get_filename());
        let synchronous = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        let attach = |cache_kib| attach_journal(&journal_file, synchronous, cache_kib);
        // Page caches: the writers' hold the pages every commit touches (journal tail,
        // alert rows); readers and the checkpointer need little. Their sum bounds what
        // SQLite adds to the process's memory.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(on_connect(attach(1024)))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-32768")
                    .thread_name(|_| "sqlite-writer".into()),
            )
            .await?;
        // Before the migrations: the one that moves the journal out of the main file
        // (0008) copies its rows into this table.
        sqlx::query(JOURNAL_TABLE).execute(&writer).await?;
        MIGRATOR.run(&writer).await?;
        // Read first: a CLI opening the store beside a busy server then takes no write
        // lock on the journal's file.
        let below_floor: bool = sqlx::query_scalar(JOURNAL_BELOW_FLOOR)
            .fetch_one(&writer)
            .await?;
        if below_floor {
            sqlx::raw_sql(JOURNAL_SEQ_FLOOR).execute(&writer).await?;
        }
        let journal = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(on_connect(attach(8192)))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-1024")
                    // An append of each size up to ONE_TRIP_APPEND is a statement of its
                    // own.
                    .statement_cache_capacity(2 * ONE_TRIP_APPEND)
                    .thread_name(|_| "sqlite-journal".into()),
            )
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .after_connect(on_connect(attach(1024)))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-4096")
                    .thread_name(|n| format!("sqlite-reader-{n}")),
            )
            .await?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(on_connect(attach(1024)))
            .connect_with(
                options
                    .pragma("cache_size", "-1024")
                    .thread_name(|_| "sqlite-checkpt".into()),
            )
            .await?;
        let checkpointer = tokio::spawn(checkpoint(
            checkpoints,
            [("main", writer.clone()), (JOURNAL_SCHEMA, journal.clone())],
        ))
        .abort_handle();
        Ok(Self {
            writer,
            journal,
            readers,
            _checkpointer: Arc::new(AbortOnDrop(checkpointer)),
        })
    }
}

/// Appends of up to this many events run as one call to the journal writer's thread.
const ONE_TRIP_APPEND: usize = 256;
/// The pipeline's counters, as an append reads them after its inserts.
const APPEND_COUNTERS: &str = "(SELECT seq FROM progress WHERE stage = 'generation'), \
     (SELECT seq FROM progress WHERE stage = 'config')";

impl SqliteStore {
    /// An append as one call to the journal writer's thread: the transaction, its inserts, the
    /// read of the seqs and counters and the commit in one multi-statement query. Each
    /// call costs a round trip between threads, and a small append was six of them.
    async fn append_in_one_trip(&self, mut records: Vec<Record>) -> Result<Appended, StoreError> {
        let n = records.len() as i64;
        // Deferred: the first insert takes the journal file's write lock, and the read
        // of the counters a snapshot of the main file. IMMEDIATE would lock both files'
        // writers.
        let mut sql = QueryBuilder::<Sqlite>::new("BEGIN;\n");
        let mut start = 0;
        for size in chunk_sizes(records.len()) {
            push_journal_insert(&mut sql, &mut records[start..start + size]);
            sql.push(";\n");
            start += size;
        }
        sql.push(format_args!(
            "SELECT last_insert_rowid(), {APPEND_COUNTERS};\nCOMMIT"
        ));
        let mut conn = self.journal.acquire().await?;
        let rows = match sql.build().fetch_all(&mut *conn).await {
            Ok(rows) => rows,
            Err(e) => {
                // A statement failed and the ones after it did not run: end the
                // transaction. When that fails too (or there was none), the connection
                // is not trusted again.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    conn.close_on_drop();
                }
                return Err(e.into());
            }
        };
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("an append read back nothing".into()))?;
        let last: i64 = row.try_get(0)?;
        let generation: Option<i64> = row.try_get(1)?;
        let config: Option<i64> = row.try_get(2)?;
        Ok(Appended {
            first: Some(last - n + 1),
            versions: (generation.unwrap_or(0), config.unwrap_or(0)),
        })
    }
}

/// Adds one multi-row insert of `records` into the journal to `sql`, moving their values
/// into the statement (this is the journal writer's hot path).
fn push_journal_insert(sql: &mut QueryBuilder<'_, Sqlite>, records: &mut [Record]) {
    sql.push(
        "INSERT INTO journal (id, team, fingerprint, source, received_at, monitor, status, labels, \
         reported_since, reported_count, event, trace_id) ",
    );
    sql.push_values(records, |mut values, record| {
        values
            .push_bind(std::mem::take(&mut record.id))
            .push_bind(std::mem::take(&mut record.team))
            .push_bind(std::mem::take(&mut record.fingerprint))
            .push_bind(record.source)
            .push_bind(record.received)
            .push_bind(std::mem::take(&mut record.monitor))
            .push_bind(record.status.as_str())
            .push_bind(std::mem::take(&mut record.labels))
            .push_bind(record.reported_since)
            .push_bind(record.reported_count)
            .push_bind(std::mem::take(&mut record.event))
            .push_bind(record.trace_id.take());
    });
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn append(&self, mut records: Vec<Record>) -> Result<Appended, StoreError> {
        let n = records.len() as i64;
        if records.len() <= ONE_TRIP_APPEND {
            return self.append_in_one_trip(records).await;
        }
        let mut tx = self.journal.begin().await?;
        let mut start = 0;
        let mut last = None;
        for size in chunk_sizes(records.len()) {
            let mut insert = QueryBuilder::<Sqlite>::new("");
            push_journal_insert(&mut insert, &mut records[start..start + size]);
            last = Some(insert.build().execute(&mut *tx).await?.last_insert_rowid());
            start += size;
        }
        let (generation, config): (Option<i64>, Option<i64>) =
            sqlx::query_as(&format!("SELECT {APPEND_COUNTERS}"))
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        // The transaction held the only writer, and AUTOINCREMENT numbers its rows one
        // after the other in insertion order.
        Ok(Appended {
            first: last.map(|last| last - n + 1),
            versions: (generation.unwrap_or(0), config.unwrap_or(0)),
        })
    }

    async fn lag(&self) -> Result<u64, StoreError> {
        let lag: i64 = sqlx::query_scalar(LAG).fetch_one(&self.readers).await?;
        Ok(lag as u64)
    }

    async fn journal_after(&self, after: i64, max: usize) -> Result<Vec<Incoming>, StoreError> {
        shared::journal_after(&self.readers, after, max).await
    }

    async fn journal_bodies(
        &self,
        seqs: &[i64],
    ) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError> {
        shared::journal_bodies(&self.readers, seqs).await
    }

    async fn versions(&self) -> Result<(i64, i64), StoreError> {
        shared::versions(&self.readers).await
    }

    async fn tracked_page(
        &self,
        after: Option<(String, String)>,
        limit: i64,
    ) -> Result<Vec<TrackedRow>, StoreError> {
        shared::tracked_page(&self.readers, after, limit).await
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        shared::snapshot(&self.writer).await
    }

    async fn rules(&self, now: i64) -> Result<Rules, StoreError> {
        let mut rules = shared::rules(&self.writer, now).await?;
        // Read after the version: at least as new as it.
        rules.routes = Arc::new(outbox::routes(&self.writer, None).await?);
        Ok(rules)
    }

    async fn commit(&self, outcome: &Outcome, generation: i64) -> Result<(), StoreError> {
        shared::commit(&self.writer, outcome, generation, false).await?;
        if let Some(to) = outcome.journal_delete_to {
            // The processed rows leave the journal's file on its own writer, after the
            // commit that moved the cursor past them and without the pipeline waiting:
            // until then they are only rows behind the cursor, and a delete that fails
            // (or never runs: a crash) is covered by the next.
            let journal = self.journal.clone();
            tokio::spawn(async move {
                let deleted = sqlx::query("DELETE FROM journal WHERE seq <= ?")
                    .bind(to)
                    .execute(&journal)
                    .await;
                if let Err(e) = deleted {
                    warn!(error = %e, "deleting processed journal rows failed; the next delete covers them");
                }
            });
        }
        Ok(())
    }

    async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(shared::prune(&self.writer, before).await?
            + plugins::prune_dead_letters(&self.writer, before).await?
            + outbox::prune(&self.writer, before).await?
            + context::prune(&self.writer, before).await?
            + commands::prune(&self.writer, before).await?)
    }

    async fn put_service(&self, service: &Service, now: i64) -> Result<(), StoreError> {
        shared::put_service(&self.writer, service, now).await
    }

    async fn services(&self, team: Option<&str>) -> Result<Vec<Service>, StoreError> {
        shared::services(&self.readers, team).await
    }

    async fn service(&self, name: &str) -> Result<Option<Service>, StoreError> {
        shared::service(&self.readers, name).await
    }

    async fn create_suppression(
        &self,
        record: &SuppressionRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        shared::create_suppression(&self.writer, record, now).await
    }

    async fn retime_suppression(
        &self,
        id: &str,
        start: i64,
        end: i64,
        actor: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        shared::retime_suppression(&self.writer, id, start, end, actor, action, detail, now).await
    }

    async fn suppressions(
        &self,
        id: Option<&str>,
        team: Option<&str>,
        now: i64,
    ) -> Result<Vec<SuppressionRecord>, StoreError> {
        shared::suppressions(&self.readers, id, team, now).await
    }

    async fn audit_trail(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        shared::audit_trail(&self.readers, id).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        shared::history(&self.readers, query).await
    }

    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentSummary>, StoreError> {
        shared::incidents(&self.readers, query).await
    }

    async fn incident(
        &self,
        id: &str,
        team: Option<&str>,
    ) -> Result<Option<IncidentDetail>, StoreError> {
        let (mut detail, sections) = tokio::try_join!(
            shared::incident(&self.readers, id, team),
            context::context(&self.readers, id)
        )?;
        if let Some(detail) = &mut detail {
            detail.context = sections;
        }
        Ok(detail)
    }

    async fn finished_incident(
        &self,
        id: &str,
        team: Option<&str>,
        close: bool,
        who: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        shared::finished_incident(&self.writer, id, team, close, who, now).await
    }

    async fn drops(
        &self,
        team: Option<&str>,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        shared::drops(&self.readers, team).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT team, fingerprint, monitor, labels, status, since, count, first_seen, last_seen, last_event \
             FROM alerts WHERE 1 = 1",
        );
        if let Some(team) = &query.team {
            sql.push(" AND team = ").push_bind(team);
        }
        if let Some(team) = &query.other_than {
            sql.push(" AND team <> ").push_bind(team);
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(monitor) = &query.monitor {
            sql.push(" AND monitor = ").push_bind(monitor);
        }
        for (key, value) in &query.labels {
            // Keys are validated label names, but they are bound, never spliced.
            sql.push(" AND json_extract(labels, ")
                .push_bind(format!("$.\"{key}\""))
                .push(") = ")
                .push_bind(value);
        }
        if let Some((team, fingerprint)) = &query.after {
            sql.push(" AND (team, fingerprint) > (")
                .push_bind(team)
                .push(", ")
                .push_bind(fingerprint)
                .push(")");
        }
        sql.push(" ORDER BY team, fingerprint LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.readers).await?;
        rows.iter()
            .map(|row| {
                let labels: String = row.try_get("labels")?;
                let status: String = row.try_get("status")?;
                Ok(AlertState {
                    fingerprint: row.try_get("fingerprint")?,
                    team: row.try_get("team")?,
                    monitor: row.try_get("monitor")?,
                    labels: serde_json::from_str(&labels)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    status: status.parse().map_err(StoreError::Corrupt)?,
                    since: from_millis(row.try_get("since")?)?,
                    count: row.try_get("count")?,
                    first_seen: from_millis(row.try_get("first_seen")?)?,
                    last_seen: from_millis(row.try_get("last_seen")?)?,
                    last_event: row.try_get("last_event")?,
                })
            })
            .collect()
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({EVENT_IDS}) AS ids"))
            .fetch_one(&self.readers)
            .await?;
        Ok(n as u64)
    }

    async fn event_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&format!("{EVENT_IDS} ORDER BY id"))
            .fetch_all(&self.readers)
            .await?)
    }

    async fn create_token(&self, token: &TokenRecord, hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, hash, team, admin, description, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(hash)
        .bind(&token.team)
        .bind(token.admin)
        .bind(&token.description)
        .bind(millis(token.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, team, admin, description, created_at, revoked_at FROM tokens \
             WHERE hash = ? AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| token_record(&row)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, team, admin, description, created_at, revoked_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(millis(at))
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_plugin_version(&self, new: &NewVersion<'_>) -> Result<i64, StoreError> {
        plugins::put_version(&self.writer, new).await
    }

    async fn plugins(&self, team: Option<&str>) -> Result<Vec<PluginRow>, StoreError> {
        plugins::plugins(&self.readers, team).await
    }

    async fn plugin_component(
        &self,
        team: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        plugins::component(&self.readers, team, name, version).await
    }

    async fn activate_plugin(
        &self,
        team: &str,
        name: &str,
        version: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        plugins::activate(&self.writer, team, name, version, at).await
    }

    async fn delete_plugin(&self, team: &str, name: &str) -> Result<bool, StoreError> {
        plugins::delete(&self.writer, team, name).await
    }

    async fn plugin_state(
        &self,
        team: &str,
        name: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        plugins::state(&self.readers, team, name).await
    }

    async fn save_plugin_state(
        &self,
        team: &str,
        name: &str,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        plugins::save_state(&self.writer, team, name, puts, deletes).await
    }

    async fn put_dead_letter(&self, letter: &DeadLetter, body: &[u8]) -> Result<(), StoreError> {
        plugins::put_dead_letter(&self.writer, letter, body).await
    }

    async fn dead_letters(
        &self,
        team: &str,
        plugin: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        plugins::dead_letters(&self.readers, team, plugin, limit).await
    }

    async fn notices(&self, limit: i64) -> Result<Vec<tocsin_model::rows::NoticeRow>, StoreError> {
        outbox::notices(&self.readers, limit).await
    }

    async fn expand_notices(
        &self,
        notices: &[String],
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        outbox::expand(&self.writer, notices, deliveries).await
    }

    async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        outbox::due(&self.readers, now, limit).await
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        outbox::next_due(&self.readers).await
    }

    async fn claim_delivery(
        &self,
        id: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        outbox::claim(&self.writer, id, lease_until, now).await
    }

    async fn release_deliveries(&self, now: i64) -> Result<u64, StoreError> {
        outbox::release(&self.writer, now).await
    }

    async fn settle_delivery(
        &self,
        id: &str,
        state: &str,
        due_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        outbox::settle(&self.writer, id, state, due_at, error, now).await
    }

    async fn routes(&self, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError> {
        outbox::routes(&self.readers, team).await
    }

    async fn put_route(&self, route: &StoredRoute) -> Result<(), StoreError> {
        outbox::put_route(&self.writer, route).await
    }

    async fn delete_route(&self, team: &str, service: Option<&str>) -> Result<bool, StoreError> {
        outbox::delete_route(&self.writer, team, service).await
    }

    async fn delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
    ) -> Result<Option<String>, StoreError> {
        outbox::reference(&self.readers, incident_id, notifier).await
    }

    async fn set_delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
        reference: &str,
    ) -> Result<(), StoreError> {
        outbox::set_reference(&self.writer, incident_id, notifier, reference).await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        outbox::deliveries(&self.readers, query).await
    }

    async fn retry_delivery(
        &self,
        id: &str,
        team: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        outbox::retry(&self.writer, id, team, now).await
    }

    async fn put_runbook(&self, runbook: &Runbook) -> Result<(), StoreError> {
        context::put_runbook(&self.writer, runbook).await
    }

    async fn runbook(&self, team: &str, id: &str) -> Result<Option<Runbook>, StoreError> {
        context::runbook(&self.readers, team, id).await
    }

    async fn put_change(&self, change: &Change) -> Result<(), StoreError> {
        context::put_change(&self.writer, change).await
    }

    async fn changes(
        &self,
        team: Option<&str>,
        service: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Change>, StoreError> {
        context::changes(&self.readers, team, service, since, limit).await
    }

    async fn put_context(
        &self,
        incident_id: &str,
        sections: &[ContextSection],
    ) -> Result<(), StoreError> {
        context::put_context(&self.writer, incident_id, sections).await
    }

    async fn context(&self, incident_id: &str) -> Result<Vec<ContextSection>, StoreError> {
        context::context(&self.readers, incident_id).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.readers)
                .await?;
        super::check_migrations(&MIGRATOR, &applied)
    }

    async fn request_command(&self, row: &CommandRow) -> Result<(), StoreError> {
        commands::request(&self.writer, row).await
    }

    async fn pending_commands(&self, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
        commands::pending(&self.readers, limit).await
    }

    async fn finish_command(
        &self,
        id: &str,
        outcome: CommandOutcome,
        at: i64,
    ) -> Result<(), StoreError> {
        commands::finish(&self.writer, id, outcome, at).await
    }

    async fn command_outcome(&self, id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        commands::outcome(&self.readers, id).await
    }

    async fn put_logs_query(&self, query: &LogsQuery) -> Result<(), StoreError> {
        logs::put(&self.writer, query).await
    }

    async fn logs_queries(&self, team: Option<&str>) -> Result<Vec<LogsQuery>, StoreError> {
        logs::list(&self.readers, team).await
    }

    async fn logs_query(&self, team: &str, name: &str) -> Result<Option<LogsQuery>, StoreError> {
        logs::get(&self.readers, team, name).await
    }

    async fn delete_logs_query(&self, team: &str, name: &str) -> Result<bool, StoreError> {
        logs::delete(&self.writer, team, name).await
    }
}

/// WAL size (in pages, 64 MiB at SQLite's 4 KiB) past which a checkpoint makes the WAL
/// start over, at the cost of holding the writer for the few pages left (and their
/// fsyncs: 3-8 ms here). Doing that every second held every 100th commit up by as much.
const WAL_RESTART_PAGES: i64 = 16_384;
/// How often committed pages are copied from the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Every second, copies committed pages from the WAL into the database file, and lets the
/// WAL start over once it holds more than [`WAL_RESTART_PAGES`], so it stays bounded: a
/// WAL that only grows slows every read and write (each looks pages up in its index) and
/// fills the disk.
///
/// The bulk is copied on a connection of its own (PASSIVE: it holds nobody up). The
/// writer commits meanwhile, so under load that copy never ends with the whole WAL
/// copied, and only then may the next commit start the WAL over. When the WAL is past
/// its bound, the few pages committed meanwhile are then copied on the writer's own
/// connection, between two of its transactions: no commit can slip in, nobody waits on a
/// lock, and the writer's next commit starts the WAL over. A quiet system needs no such
/// pass: the bulk copies everything and the next commit starts the WAL over.
///
/// The main file and the journal's are checkpointed in turn, each with its own writer.
async fn checkpoint(bulk: SqlitePool, files: [(&'static str, SqlitePool); 2]) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        every.tick().await;
        for (schema, writer) in &files {
            let run = async |pool: &SqlitePool| {
                sqlx::query_as::<_, (i64, i64, i64)>(&format!(
                    "PRAGMA {schema}.wal_checkpoint(PASSIVE)"
                ))
                .fetch_one(pool)
                .await
            };
            let started = std::time::Instant::now();
            let (wal, copied) = match run(&bulk).await {
                Ok((_, wal, copied)) => (wal, copied),
                Err(e) => {
                    warn!(error = %e, schema, "WAL checkpoint failed; retrying");
                    continue;
                }
            };
            let bulk_took = started.elapsed();
            if wal <= WAL_RESTART_PAGES {
                debug!(schema, wal, copied, ?bulk_took, "WAL checkpoint");
                continue;
            }
            match run(writer).await {
                Ok((_, wal, rest)) => debug!(
                    schema,
                    wal,
                    copied,
                    rest,
                    restarts = rest == wal,
                    ?bulk_took,
                    rest_took = ?(started.elapsed() - bulk_took),
                    "WAL checkpoint"
                ),
                Err(e) => warn!(error = %e, schema, "WAL checkpoint failed; retrying"),
            }
        }
    }
}

/// Stops the checkpoint task with the last handle on the store.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn token_record(row: &sqlx::sqlite::SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        admin: row.try_get("admin")?,
        description: row.try_get("description")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_millis)
            .transpose()?,
    })
}
