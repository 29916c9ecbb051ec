//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::{
    ALERT_UPSERT, Accepted, AlertQuery, AlertState, Payload, Store, StoreError, TokenRecord, from_millis, millis,
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
    async fn append(&self, events: &[Accepted]) -> Result<(), StoreError> {
        let payload = Payload::of(events);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO journal (id, team, fingerprint, source, received_at, event) \
             SELECT r ->> 'id', r ->> 'team', r ->> 'fingerprint', r ->> 'source', \
                    (r ->> 'received')::bigint, r -> 'event' \
             FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n",
        )
        .bind(&payload.journal)
        .execute(&mut *tx)
        .await?;
        for round in &payload.rounds {
            sqlx::query(&format!(
                "INSERT INTO alerts (team, fingerprint, monitor, labels, status, since, count, \
                     first_seen, last_seen, reported_since, reported_count, last_event) \
                 SELECT r ->> 'team', r ->> 'fingerprint', r -> 'event' -> 'alert' ->> 'monitor', \
                     r -> 'event' -> 'context', r -> 'event' -> 'alert' ->> 'status', (r ->> 'since')::bigint, \
                     (r ->> 'count')::bigint, (r ->> 'received')::bigint, (r ->> 'received')::bigint, \
                     (r ->> 'reported_since')::bigint, (r ->> 'reported_count')::bigint, r ->> 'id' \
                 FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n{ALERT_UPSERT}"
            ))
            .bind(round)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
