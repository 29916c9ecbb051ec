//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::journal::{Appended, Record};
use crate::lease::{LEASE_KEY, Lease};
use crate::options::{Migrations, StoreOptions};
use crate::pipeline::postgres::commit;
use tocsin_model::rows::Outcome;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    horizon: Arc<tokio::sync::Mutex<Horizon>>,
}

/// How long a journal read waits for the appends in flight when it started.
const HORIZON_WAIT: Duration = Duration::from_millis(100);

/// The journal's read horizon (see [`PostgresStore::journal_horizon`]).
#[derive(Debug, Default)]
struct Horizon {
    /// Every append up to this seq has finished.
    safe: i64,
    /// A seq waiting to become safe, and the newest transaction in progress when it was
    /// read.
    waiting: Option<(i64, i64)>,
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
        Ok(Self {
            pool,
            horizon: Arc::default(),
        })
    }
}

impl PostgresStore {
    /// Appends to the journal (see [`crate::JournalStore::append`]) through the
    /// `journal_append` function (migration 0013): one round trip, no lock, so appends
    /// from many processes run side by side. Each column travels as one array and UNNEST
    /// zips them back into rows (PostgreSQL's fast path for bulk inserts).
    pub(crate) async fn append_records(
        &self,
        records: Vec<Record>,
    ) -> Result<Appended, StoreError> {
        let text = |f: fn(&Record) -> &str| records.iter().map(f).collect::<Vec<&str>>();
        let maybe =
            |f: fn(&Record) -> Option<i64>| records.iter().map(f).collect::<Vec<Option<i64>>>();
        // first_seq, last_seq, stored, generation, config (all NULL-able in SQL).
        type Row = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let (first, last, count, generation, config): Row = sqlx::query_as(
            "SELECT * FROM journal_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .fetch_one(&self.pool)
        .await?;
        // A sequence skips numbers a failed append took, and concurrent appends
        // interleave theirs, so the seqs are checked.
        Ok(Appended {
            first: match (first, last, count) {
                (Some(first), Some(last), Some(count)) if last - first + 1 == count => Some(first),
                _ => None,
            },
            versions: (generation.unwrap_or(0), config.unwrap_or(0)),
        })
    }

    /// The highest seq the pipeline may read up to: every append that drew a seq up to
    /// it has finished, so no row at or below it can still appear. Appends commit out of
    /// seq order; without this bound a cursor could pass a row committed a moment later.
    ///
    /// The journal's last seq `V` is read, then a snapshot: every append that drew a seq
    /// up to `V` took its transaction id first (`journal_append`), so it is either
    /// finished or among the snapshot's transactions in progress. `V` is safe once the
    /// newest of those has finished (a later snapshot's oldest transaction in progress
    /// is past it), which takes an append's few milliseconds: the call waits up to
    /// [`HORIZON_WAIT`] for it, so rows committed before the call are read. A pair still
    /// unfinished then (a long transaction elsewhere in the database) waits for the next
    /// call, and no newer pair replaces it, so a steady stream of appends never holds
    /// the horizon back for good.
    pub(crate) async fn journal_horizon(&self) -> Result<Option<i64>, StoreError> {
        let mut horizon = self.horizon.lock().await;
        let deadline = Instant::now() + HORIZON_WAIT;
        let mut fresh = false;
        loop {
            if let Some((seq, newest)) = horizon.waiting {
                let (oldest,): (i64,) =
                    sqlx::query_as("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8")
                        .fetch_one(&self.pool)
                        .await?;
                if oldest <= newest {
                    if Instant::now() >= deadline {
                        return Ok(Some(horizon.safe));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                horizon.safe = horizon.safe.max(seq);
                horizon.waiting = None;
            }
            if fresh {
                return Ok(Some(horizon.safe));
            }
            fresh = true;
            let (last, called): (i64, bool) =
                sqlx::query_as("SELECT last_value, is_called FROM journal_seq_seq")
                    .fetch_one(&self.pool)
                    .await?;
            let seq = if called { last } else { last - 1 };
            // A statement of its own: its snapshot is taken after the seq was read.
            let (newest,): (Option<i64>,) = sqlx::query_as(
                "SELECT MAX(x::text::int8) FROM pg_snapshot_xip(pg_current_snapshot()) AS x",
            )
            .fetch_one(&self.pool)
            .await?;
            match newest {
                None => {
                    horizon.safe = horizon.safe.max(seq);
                    return Ok(Some(horizon.safe));
                }
                Some(newest) => horizon.waiting = Some((seq, newest)),
            }
        }
    }

    /// Takes the pipeline's advisory lock on a connection of its own, trying every
    /// 20 ms for up to `wait`.
    pub(crate) async fn pipeline_lease(&self, wait: Duration) -> Result<Option<Lease>, StoreError> {
        let deadline = Instant::now() + wait;
        let mut connection = self.pool.acquire().await?;
        loop {
            let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(LEASE_KEY)
                .fetch_one(&mut *connection)
                .await?;
            if taken {
                return Ok(Some(Lease::postgres(connection)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
