//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::commands::postgres as commands;
use super::context::postgres as context;
use super::logs::postgres as logs;
use super::outbox::postgres as outbox;
use super::pipeline::postgres as shared;
use super::plugins::postgres as plugins;
use tocsin_model::views::{
    AuditEntry, HistoryEntry, HistoryQuery, IncidentDetail, IncidentQuery, IncidentSummary,
    SuppressionRecord,
};
use super::{
    AlertQuery, AlertState, Appended, Change, ContextSection, DeadLetter, Delivery, DeliveryQuery,
    EVENT_IDS, LAG, LogsQuery, NewVersion, PluginRow, Record, Runbook, Store, StoreError,
    StoredRoute, TokenRecord, from_millis, millis,
};
use tocsin_model::catalogue::Service;
use tocsin_model::rows::{CommandOutcome, CommandRow};
use tocsin_model::rows::{Incoming, Outcome, Rules, Snapshot, TrackedRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and migrates the database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn append(&self, records: Vec<Record>) -> Result<Appended, StoreError> {
        // One statement per batch: each column travels as one array and UNNEST zips them
        // back into rows (PostgreSQL's fast path for bulk inserts).
        let text = |f: fn(&Record) -> &str| records.iter().map(f).collect::<Vec<&str>>();
        let maybe =
            |f: fn(&Record) -> Option<i64>| records.iter().map(f).collect::<Vec<Option<i64>>>();
        let mut tx = self.pool.begin().await?;
        // Appends take turns across processes, so journal order (seq) is commit order and
        // a stage's cursor never moves past an append that commits later.
        sqlx::query("SELECT pg_advisory_xact_lock(7406113)")
            .execute(&mut *tx)
            .await?;
        // The counters are read by the same statement, in a snapshot taken after the lock.
        let (first, last, count, generation, config): (Option<i64>, Option<i64>, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "WITH stored AS (INSERT INTO journal (id, team, fingerprint, source, received_at, monitor, status, labels, \
                 reported_since, reported_count, event, trace_id) \
             SELECT id, team, fp, src, rcv, mon, st, lab::jsonb, rs, rc, ev::jsonb, tr \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], \
                         $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[]) \
                 WITH ORDINALITY AS t(id, team, fp, src, rcv, mon, st, lab, rs, rc, ev, tr, n) \
             ORDER BY n RETURNING seq) \
             SELECT MIN(seq), MAX(seq), COUNT(*), \
                 (SELECT seq FROM progress WHERE stage = 'generation'), \
                 (SELECT seq FROM progress WHERE stage = 'config') \
             FROM stored",
        )
        .bind(text(|r| &r.id))
        .bind(text(|r| &r.team))
        .bind(text(|r| &r.fingerprint))
        .bind(text(|r| r.source))
        .bind(records.iter().map(|r| r.received).collect::<Vec<i64>>())
        .bind(text(|r| &r.monitor))
        .bind(text(|r| r.status.as_str()))
        .bind(text(|r| &r.labels))
        .bind(maybe(|r| r.reported_since))
        .bind(maybe(|r| r.reported_count))
        .bind(text(|r| &r.event))
        .bind(
            records
                .iter()
                .map(|r| r.trace_id.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        // A sequence skips numbers a failed append took, so the seqs are checked.
        Ok(Appended {
            first: match (first, last) {
                (Some(first), Some(last)) if last - first + 1 == count => Some(first),
                _ => None,
            },
            versions: (generation.unwrap_or(0), config.unwrap_or(0)),
        })
    }

    async fn lag(&self) -> Result<u64, StoreError> {
        let lag: i64 = sqlx::query_scalar(LAG).fetch_one(&self.pool).await?;
        Ok(lag as u64)
    }

    async fn journal_after(&self, after: i64, max: usize) -> Result<Vec<Incoming>, StoreError> {
        shared::journal_after(&self.pool, after, max).await
    }

    async fn journal_bodies(
        &self,
        seqs: &[i64],
    ) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError> {
        shared::journal_bodies(&self.pool, seqs).await
    }

    async fn versions(&self) -> Result<(i64, i64), StoreError> {
        shared::versions(&self.pool).await
    }

    async fn tracked_page(
        &self,
        after: Option<(String, String)>,
        limit: i64,
    ) -> Result<Vec<TrackedRow>, StoreError> {
        shared::tracked_page(&self.pool, after, limit).await
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        shared::snapshot(&self.pool).await
    }

    async fn rules(&self, now: i64) -> Result<Rules, StoreError> {
        let mut rules = shared::rules(&self.pool, now).await?;
        // Read after the version: at least as new as it.
        rules.routes = std::sync::Arc::new(outbox::routes(&self.pool, None).await?);
        Ok(rules)
    }

    async fn commit(&self, outcome: &Outcome, generation: i64) -> Result<(), StoreError> {
        shared::commit(&self.pool, outcome, generation, true).await
    }

    async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(shared::prune(&self.pool, before).await?
            + plugins::prune_dead_letters(&self.pool, before).await?
            + outbox::prune(&self.pool, before).await?
            + context::prune(&self.pool, before).await?
            + commands::prune(&self.pool, before).await?)
    }

    async fn put_service(&self, service: &Service, now: i64) -> Result<(), StoreError> {
        shared::put_service(&self.pool, service, now).await
    }

    async fn services(&self, team: Option<&str>) -> Result<Vec<Service>, StoreError> {
        shared::services(&self.pool, team).await
    }

    async fn service(&self, name: &str) -> Result<Option<Service>, StoreError> {
        shared::service(&self.pool, name).await
    }

    async fn create_suppression(
        &self,
        record: &SuppressionRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        shared::create_suppression(&self.pool, record, now).await
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
        shared::retime_suppression(&self.pool, id, start, end, actor, action, detail, now).await
    }

    async fn suppressions(
        &self,
        id: Option<&str>,
        team: Option<&str>,
        now: i64,
    ) -> Result<Vec<SuppressionRecord>, StoreError> {
        shared::suppressions(&self.pool, id, team, now).await
    }

    async fn audit_trail(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        shared::audit_trail(&self.pool, id).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        shared::history(&self.pool, query).await
    }

    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentSummary>, StoreError> {
        shared::incidents(&self.pool, query).await
    }

    async fn incident(
        &self,
        id: &str,
        team: Option<&str>,
    ) -> Result<Option<IncidentDetail>, StoreError> {
        let (mut detail, sections) = tokio::try_join!(
            shared::incident(&self.pool, id, team),
            context::context(&self.pool, id)
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
        shared::finished_incident(&self.pool, id, team, close, who, now).await
    }

    async fn drops(
        &self,
        team: Option<&str>,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        shared::drops(&self.pool, team).await
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(
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
            sql.push(" AND labels ->> ")
                .push_bind(key)
                .push(" = ")
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
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let labels: serde_json::Value = row.try_get("labels")?;
                let status: String = row.try_get("status")?;
                Ok(AlertState {
                    fingerprint: row.try_get("fingerprint")?,
                    team: row.try_get("team")?,
                    monitor: row.try_get("monitor")?,
                    labels: match labels {
                        serde_json::Value::Object(map) => map,
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "labels are not an object: {other}"
                            )));
                        }
                    },
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
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn event_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&format!("{EVENT_IDS} ORDER BY id"))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn create_token(&self, token: &TokenRecord, hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, hash, team, admin, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(hash)
        .bind(&token.team)
        .bind(token.admin)
        .bind(&token.description)
        .bind(millis(token.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, team, admin, description, created_at, revoked_at FROM tokens \
             WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| token_record(&row)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, team, admin, description, created_at, revoked_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(millis(at))
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_plugin_version(&self, new: &NewVersion<'_>) -> Result<i64, StoreError> {
        plugins::put_version(&self.pool, new).await
    }

    async fn plugins(&self, team: Option<&str>) -> Result<Vec<PluginRow>, StoreError> {
        plugins::plugins(&self.pool, team).await
    }

    async fn plugin_component(
        &self,
        team: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        plugins::component(&self.pool, team, name, version).await
    }

    async fn activate_plugin(
        &self,
        team: &str,
        name: &str,
        version: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        plugins::activate(&self.pool, team, name, version, at).await
    }

    async fn delete_plugin(&self, team: &str, name: &str) -> Result<bool, StoreError> {
        plugins::delete(&self.pool, team, name).await
    }

    async fn plugin_state(
        &self,
        team: &str,
        name: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        plugins::state(&self.pool, team, name).await
    }

    async fn save_plugin_state(
        &self,
        team: &str,
        name: &str,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        plugins::save_state(&self.pool, team, name, puts, deletes).await
    }

    async fn put_dead_letter(&self, letter: &DeadLetter, body: &[u8]) -> Result<(), StoreError> {
        plugins::put_dead_letter(&self.pool, letter, body).await
    }

    async fn dead_letters(
        &self,
        team: &str,
        plugin: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        plugins::dead_letters(&self.pool, team, plugin, limit).await
    }

    async fn notices(&self, limit: i64) -> Result<Vec<tocsin_model::rows::NoticeRow>, StoreError> {
        outbox::notices(&self.pool, limit).await
    }

    async fn expand_notices(
        &self,
        notices: &[String],
        deliveries: &[Delivery],
    ) -> Result<(), StoreError> {
        outbox::expand(&self.pool, notices, deliveries).await
    }

    async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        outbox::due(&self.pool, now, limit).await
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        outbox::next_due(&self.pool).await
    }

    async fn claim_delivery(
        &self,
        id: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        outbox::claim(&self.pool, id, lease_until, now).await
    }

    async fn release_deliveries(&self, now: i64) -> Result<u64, StoreError> {
        outbox::release(&self.pool, now).await
    }

    async fn settle_delivery(
        &self,
        id: &str,
        state: &str,
        due_at: i64,
        error: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        outbox::settle(&self.pool, id, state, due_at, error, now).await
    }

    async fn routes(&self, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError> {
        outbox::routes(&self.pool, team).await
    }

    async fn put_route(&self, route: &StoredRoute) -> Result<(), StoreError> {
        outbox::put_route(&self.pool, route).await
    }

    async fn delete_route(&self, team: &str, service: Option<&str>) -> Result<bool, StoreError> {
        outbox::delete_route(&self.pool, team, service).await
    }

    async fn delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
    ) -> Result<Option<String>, StoreError> {
        outbox::reference(&self.pool, incident_id, notifier).await
    }

    async fn set_delivery_ref(
        &self,
        incident_id: &str,
        notifier: &str,
        reference: &str,
    ) -> Result<(), StoreError> {
        outbox::set_reference(&self.pool, incident_id, notifier, reference).await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        outbox::deliveries(&self.pool, query).await
    }

    async fn retry_delivery(
        &self,
        id: &str,
        team: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        outbox::retry(&self.pool, id, team, now).await
    }

    async fn put_runbook(&self, runbook: &Runbook) -> Result<(), StoreError> {
        context::put_runbook(&self.pool, runbook).await
    }

    async fn runbook(&self, team: &str, id: &str) -> Result<Option<Runbook>, StoreError> {
        context::runbook(&self.pool, team, id).await
    }

    async fn put_change(&self, change: &Change) -> Result<(), StoreError> {
        context::put_change(&self.pool, change).await
    }

    async fn changes(
        &self,
        team: Option<&str>,
        service: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Change>, StoreError> {
        context::changes(&self.pool, team, service, since, limit).await
    }

    async fn put_context(
        &self,
        incident_id: &str,
        sections: &[ContextSection],
    ) -> Result<(), StoreError> {
        context::put_context(&self.pool, incident_id, sections).await
    }

    async fn context(&self, incident_id: &str) -> Result<Vec<ContextSection>, StoreError> {
        context::context(&self.pool, incident_id).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        super::check_migrations(&MIGRATOR, &applied)
    }

    async fn request_command(&self, row: &CommandRow) -> Result<(), StoreError> {
        commands::request(&self.pool, row).await
    }

    async fn pending_commands(&self, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
        commands::pending(&self.pool, limit).await
    }

    async fn finish_command(
        &self,
        id: &str,
        outcome: CommandOutcome,
        at: i64,
    ) -> Result<(), StoreError> {
        commands::finish(&self.pool, id, outcome, at).await
    }

    async fn command_outcome(&self, id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        commands::outcome(&self.pool, id).await
    }

    async fn put_logs_query(&self, query: &LogsQuery) -> Result<(), StoreError> {
        logs::put(&self.pool, query).await
    }

    async fn logs_queries(&self, team: Option<&str>) -> Result<Vec<LogsQuery>, StoreError> {
        logs::list(&self.pool, team).await
    }

    async fn logs_query(&self, team: &str, name: &str) -> Result<Option<LogsQuery>, StoreError> {
        logs::get(&self.pool, team, name).await
    }

    async fn delete_logs_query(&self, team: &str, name: &str) -> Result<bool, StoreError> {
        logs::delete(&self.pool, team, name).await
    }
}

fn token_record(row: &sqlx::postgres::PgRow) -> Result<TokenRecord, StoreError> {
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
