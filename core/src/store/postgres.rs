//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::{
    ALERT_INSERT, ALERT_UPSERT, AlertQuery, AlertState, LAG, Record, Store, StoreError,
    TokenRecord, from_millis, millis,
};

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
    async fn append(&self, records: Vec<Record>) -> Result<(), StoreError> {
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
        sqlx::query(
            "INSERT INTO journal (id, team, fingerprint, source, received_at, monitor, status, labels, \
                 reported_since, reported_count, event) \
             SELECT id, team, fp, src, rcv, mon, st, lab::jsonb, rs, rc, ev::jsonb \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], \
                         $8::text[], $9::int8[], $10::int8[], $11::text[]) \
                 WITH ORDINALITY AS t(id, team, fp, src, rcv, mon, st, lab, rs, rc, ev, n) \
             ORDER BY n",
        )
        .bind(text(|r| &r.id))
        .bind(text(|r| &r.team))
        .bind(text(|r| &r.fingerprint))
        .bind(text(|r| r.source))
        .bind(records.iter().map(|r| r.received).collect::<Vec<i64>>())
        .bind(text(|r| &r.monitor))
        .bind(text(|r| r.status))
        .bind(text(|r| &r.labels))
        .bind(maybe(|r| r.reported_since))
        .bind(maybe(|r| r.reported_count))
        .bind(text(|r| &r.event))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn track(&self, max: usize) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock makes concurrent trackers (several processes) take turns.
        let cursor: i64 =
            sqlx::query_scalar("SELECT seq FROM progress WHERE stage = 'alerts' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let end: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM (SELECT seq FROM journal WHERE seq > $1 ORDER BY seq LIMIT $2) AS batch",
        )
        .bind(cursor)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let Some(end) = end else { return Ok(0) };
        // PostgreSQL refuses to upsert one row twice in a statement: the events of one
        // alert are applied in rounds, its first event in round 1, its second in round 2…
        let rounds: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM journal \
             WHERE seq > $1 AND seq <= $2 GROUP BY team, fingerprint) AS per_alert",
        )
        .bind(cursor)
        .bind(end)
        .fetch_one(&mut *tx)
        .await?;
        let mut applied = 0;
        for round in 1..=rounds {
            applied += sqlx::query(&format!(
                "{ALERT_INSERT} FROM (SELECT *, row_number() OVER (PARTITION BY team, fingerprint ORDER BY seq) AS round \
                 FROM journal WHERE seq > $1 AND seq <= $2) AS j WHERE round = $3 ORDER BY seq{ALERT_UPSERT}"
            ))
            .bind(cursor)
            .bind(end)
            .bind(round)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query("UPDATE progress SET seq = $1 WHERE stage = 'alerts'")
            .bind(end)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(applied as usize)
    }

    async fn lag(&self) -> Result<u64, StoreError> {
        let lag: i64 = sqlx::query_scalar(LAG).fetch_one(&self.pool).await?;
        Ok(lag as u64)
    }

    async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT team, fingerprint, monitor, labels, status, since, count, first_seen, last_seen, last_event \
             FROM alerts WHERE 1 = 1",
        );
        if let Some(team) = &query.team {
            sql.push(" AND team = ").push_bind(team);
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

    async fn journal_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn journal_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM journal ORDER BY seq")
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

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        super::check_migrations(&MIGRATOR, &applied)
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
