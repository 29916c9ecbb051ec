//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::journal::{Appended, Record};
use crate::options::{Migrations, StoreOptions};
use crate::pipeline::postgres::commit;
use tocsin_model::rows::Outcome;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and migrates the database, or checks that it is migrated (see
    /// [`Migrations`]).
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.connections.unwrap_or(16).max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        match options.migrations {
            Migrations::Apply => MIGRATOR.run(&pool).await?,
            Migrations::Require => {
                // No migrations table at all is the same answer as a missing migration.
                let applied: Vec<i64> =
                    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                        .fetch_all(&pool)
                        .await
                        .map_err(|_| StoreError::NotMigrated("no migration is applied".into()))?;
                crate::forward::check_migrations(&MIGRATOR, &applied)?;
            }
        }
        Ok(Self { pool })
    }
}

impl PostgresStore {
    /// Appends to the journal (see [`crate::JournalStore::append`]).
    pub(crate) async fn append_records(
        &self,
        records: Vec<Record>,
    ) -> Result<Appended, StoreError> {
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

    /// Commits a batch's outcome (see [`crate::PipelineStore::commit`]).
    pub(crate) async fn commit_outcome(
        &self,
        outcome: &Outcome,
        generation: i64,
    ) -> Result<(), StoreError> {
        commit(&self.pool, outcome, generation, true).await
    }
}

crate::forward::stages!(PostgresStore, postgres, read: pool, write: pool);
