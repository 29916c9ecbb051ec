//! The scale-out backend: PostgreSQL, for when several processes (the Lambda functions)
//! share one database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::journal::postgres::BLOCK_EVENTS;
use crate::journal::{Appended, Record};
use crate::lease::{LEASE_KEY, Lease};
use crate::options::{Migrations, StoreOptions};
use crate::pipeline::postgres::{commit_statements, encode};
use crate::pipeline::{Encoded, Statements, foreign};
use tocsin_model::rows::{Incoming, Outcome};

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
    /// The database's size, for `/metrics` (its WAL is the server's, shared with every
    /// database on it: PostgreSQL's own exporters watch that).
    pub(crate) async fn database_bytes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await?;
        Ok(vec![("database".to_owned(), bytes.max(0) as u64)])
    }

    /// Appends to the journal (see [`crate::JournalStore::append`]) through the
    /// `journal_append` function (migrations 0013 and 0016): one round trip, no lock, so
    /// appends from many processes run side by side, and one row per block of events.
    pub(crate) async fn append_records(
        &self,
        records: Vec<Record>,
    ) -> Result<Appended, StoreError> {
        let (blocks, counts) = crate::journal::postgres::blocks(&records);
        let (first, generation, config): (Option<i64>, Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT * FROM journal_append($1, $2)")
                .bind(&blocks)
                .bind(&counts)
                .fetch_one(&self.pool)
                .await?;
        Ok(Appended {
            // One block's events have consecutive seqs; several blocks' do not.
            first: first.filter(|_| blocks.len() == 1),
            versions: (generation.unwrap_or(0), config.unwrap_or(0)),
        })
    }

    /// Journal events after `after` up to the horizon, oldest first, at most `max`, with
    /// their bodies: a block is read whole. Blocks are read a few at a time, as many as
    /// the blocks read so far suggest the rest of `max` takes, so that neither a backlog
    /// of large blocks nor one of single events costs more than a few round trips.
    pub(crate) async fn journal_rows(
        &self,
        after: i64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        let through = self.journal_horizon().await?;
        let mut rows = Vec::new();
        let (mut read_blocks, mut read_rows) = (0_usize, 0_usize);
        // A block holding an event after `after` starts less than a block's span before it.
        let mut from = after.saturating_sub(BLOCK_EVENTS);
        while rows.len() < max {
            let wanted = match read_blocks {
                0 => 8,
                _ => ((max - rows.len()) * read_blocks).div_ceil(read_rows.max(1)) + 1,
            };
            let blocks: Vec<(i64, String)> = sqlx::query_as(
                "SELECT first_seq, records FROM journal_blocks \
                 WHERE first_seq > $1 AND last_seq > $2 AND first_seq <= $3 \
                 ORDER BY first_seq LIMIT $4",
            )
            .bind(from)
            .bind(after)
            .bind(through.unwrap_or(i64::MAX))
            .bind(i64::try_from(wanted).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
            let Some((last, _)) = blocks.last() else {
                break;
            };
            from = *last;
            let done = blocks.len() < wanted;
            for (first, records) in &blocks {
                let before = rows.len();
                crate::journal::postgres::decode(*first, records, after, through, max, &mut rows)?;
                read_rows += rows.len() - before;
            }
            read_blocks += blocks.len();
            if done {
                break;
            }
        }
        Ok(rows)
    }

    /// Labels and event of these journal events, by seq (the pipeline has them from
    /// [`Self::journal_rows`] already; this reads the blocks that hold them).
    pub(crate) async fn journal_bodies_of(
        &self,
        seqs: &[i64],
    ) -> Result<HashMap<i64, (String, String)>, StoreError> {
        let (Some(&low), Some(&high)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(HashMap::new());
        };
        let wanted: HashSet<i64> = seqs.iter().copied().collect();
        let blocks: Vec<(i64, String)> = sqlx::query_as(
            "SELECT first_seq, records FROM journal_blocks \
             WHERE last_seq >= $1 AND first_seq <= $2 ORDER BY first_seq",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&self.pool)
        .await?;
        let mut rows = Vec::new();
        for (first, records) in blocks {
            crate::journal::postgres::decode(
                first,
                &records,
                low - 1,
                Some(high),
                usize::MAX,
                &mut rows,
            )?;
        }
        Ok(rows
            .into_iter()
            .filter(|row| wanted.contains(&row.seq))
            .map(|row| (row.seq, (row.labels, row.event)))
            .collect())
    }

    /// The highest seq the pipeline may read up to: every append that drew a seq up to
    /// it has finished, so no row at or below it can still appear. Appends commit out of
    /// seq order; without this bound a cursor could pass a row committed a moment later.
    ///
    /// The journal's last seq `V` (the last of the newest block drawn) is read, then a
    /// snapshot: every append that drew a seq up to `V` took its transaction id first (`journal_append`), so it is either
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
            // The last seq of the newest block drawn.
            let (last, called): (i64, bool) =
                sqlx::query_as("SELECT last_value, is_called FROM journal_block_seq")
                    .fetch_one(&self.pool)
                    .await?;
            let block = if called { last } else { last - 1 };
            let seq = (block + 1) * BLOCK_EVENTS - 1;
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
        self.commit_encoded_outcome(self.encode_outcome(outcome), generation)
            .await
    }

    /// The statements that write `outcome`, the processed journal blocks' delete
    /// among them (see [`crate::PipelineStore::encode`]).
    pub(crate) fn encode_outcome(&self, outcome: &Outcome) -> Encoded {
        Encoded {
            statements: Statements::Postgres(encode(outcome, true)),
            journal_delete_to: None,
        }
    }

    /// Commits an outcome encoded before (see [`crate::PipelineStore::commit_encoded`]).
    pub(crate) async fn commit_encoded_outcome(
        &self,
        encoded: Encoded,
        generation: i64,
    ) -> Result<(), StoreError> {
        let Statements::Postgres(statements) = encoded.statements else {
            return Err(foreign("PostgreSQL"));
        };
        commit_statements(&self.pool, statements, generation).await
    }
}

crate::forward::stages!(PostgresStore, postgres, read: pool, write: pool);
