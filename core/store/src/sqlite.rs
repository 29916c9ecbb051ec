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
use tracing::{debug, warn};

use crate::error::StoreError;
use crate::journal::{Appended, Record, chunk_sizes};
use crate::pipeline::sqlite::{commit_statements, encode};
use crate::pipeline::{Encoded, Statements, foreign};
use tocsin_model::rows::Outcome;

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
    /// Reads the journal back for a pipeline that is behind: its pages are megabytes of
    /// JSON built by SQLite, whose allocations go to the C library's allocator, and that
    /// keeps what each thread's largest pages took. On one connection of its own (one
    /// thread) a million new identities left about 30 MiB less resident than on the four
    /// readers, and the API's reads never wait behind such a page.
    backlog: SqlitePool,
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
    pub async fn open(
        url: &str,
        synchronous: Synchronous,
        cache_mib: u32,
    ) -> Result<Self, StoreError> {
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
            // When a checkpoint lets the WAL start over, cut the file back to 256 MiB
            // rather than keeping its high-water mark on disk. Not less: a commit that
            // writes past the end of the file has the kernel allocate and zero each new
            // block first (frames are not block-aligned), and a wide outage commits tens
            // of MiB a batch, so a WAL cut back to 64 MiB was grown again at every restart
            // (a sixth of the writer's time).
            .pragma("journal_size_limit", "268435456");
        let journal_file = journal_path(options.get_filename());
        let synchronous = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        let attach = |cache_kib| attach_journal(&journal_file, synchronous, cache_kib);
        // Page caches: the writers' hold the pages every commit touches (journal tail,
        // alert rows); readers and the checkpointer need little. Their sum bounds what
        // SQLite adds to the process's memory (`cache_mib`: see
        // `crate::DEFAULT_SQLITE_CACHE_MIB`).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_connect(on_connect(attach(1024)))
            .connect_with(
                options
                    .clone()
                    .pragma(
                        "cache_size",
                        format!("-{}", u64::from(cache_mib.max(1)) * 1024),
                    )
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
        // The pools that only read (and the checkpointer's): the journal attached with a
        // 1 MiB cache, `cache_kib` of the main file's pages each.
        let reading = |connections: u32, cache_kib: u32, name: fn(u64) -> String| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .after_connect(on_connect(attach(1024)))
                .connect_with(
                    options
                        .clone()
                        .pragma("cache_size", format!("-{cache_kib}"))
                        .thread_name(name),
                )
        };
        let readers = reading(4, 4096, |n| format!("sqlite-reader-{n}")).await?;
        let backlog = reading(1, 1024, |_| "sqlite-backlog".into()).await?;
        let checkpoints = reading(1, 1024, |_| "sqlite-checkpt".into()).await?;
        let checkpointer = tokio::spawn(checkpoint(
            checkpoints,
            [("main", writer.clone()), (JOURNAL_SCHEMA, journal.clone())],
        ))
        .abort_handle();
        Ok(Self {
            writer,
            journal,
            readers,
            backlog,
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
    /// The size of the main file and of the journal's (pages in use and free), for
    /// `/metrics`.
    pub(crate) async fn database_bytes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut sizes = Vec::with_capacity(2);
        for (file, schema) in [("main", "main"), ("journal", JOURNAL_SCHEMA)] {
            let (pages, size): (i64, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT page_count FROM pragma_page_count('{schema}')), \
                        (SELECT page_size FROM pragma_page_size('{schema}'))"
            ))
            .fetch_one(&self.readers)
            .await?;
            sizes.push((file.to_owned(), (pages * size).max(0) as u64));
        }
        Ok(sizes)
    }

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

impl SqliteStore {
    /// Appends to the journal (see [`crate::JournalStore::append`]).
    pub(crate) async fn append_records(
        &self,
        mut records: Vec<Record>,
    ) -> Result<Appended, StoreError> {
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

    /// One process runs the pipeline over a SQLite file: nothing to take.
    pub(crate) async fn pipeline_lease(
        &self,
        _wait: Duration,
    ) -> Result<Option<crate::lease::Lease>, StoreError> {
        Ok(Some(crate::lease::Lease::local()))
    }

    /// Journal events after `after`, oldest first, at most `max`, without their bodies:
    /// the journal's one writer commits in seq order, so nothing bounds the read.
    pub(crate) async fn journal_rows(
        &self,
        after: i64,
        max: usize,
    ) -> Result<Vec<tocsin_model::rows::Incoming>, StoreError> {
        crate::pipeline::sqlite::journal_after(&self.backlog, after, max).await
    }

    /// Labels and event of these journal events, by seq.
    pub(crate) async fn journal_bodies_of(
        &self,
        seqs: &[i64],
    ) -> Result<std::collections::HashMap<i64, (String, String)>, StoreError> {
        crate::pipeline::sqlite::journal_bodies(&self.backlog, seqs).await
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

    /// The statements that write `outcome` (see [`crate::PipelineStore::encode`]).
    pub(crate) fn encode_outcome(&self, outcome: &Outcome) -> Encoded {
        Encoded {
            statements: Statements::Sqlite(encode(outcome, false)),
            journal_delete_to: outcome.journal_delete_to,
        }
    }

    /// Commits an outcome encoded before (see [`crate::PipelineStore::commit_encoded`]).
    pub(crate) async fn commit_encoded_outcome(
        &self,
        encoded: Encoded,
        generation: i64,
    ) -> Result<(), StoreError> {
        let Statements::Sqlite(statements) = encoded.statements else {
            return Err(foreign("SQLite"));
        };
        commit_statements(&self.writer, statements, generation).await?;
        if let Some(to) = encoded.journal_delete_to {
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
}

crate::forward::stages!(SqliteStore, sqlite, read: readers, write: writer);

/// WAL size (in pages, 64 MiB at SQLite's 4 KiB) past which a checkpoint makes the WAL
/// start over, at the cost of holding the writer for the few pages left and their
/// fsyncs: rare enough that commits are not held up by it (docs/benchmarks.md, the store).
const WAL_RESTART_PAGES: i64 = 16_384;
/// SQLite's page size (the default; Tocsin never changes it), for the WAL's size.
const WAL_PAGE_BYTES: i64 = 4096;
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
            let file = if *schema == "main" { "main" } else { "journal" };
            metrics::histogram!("tocsin_store_checkpoint_duration_seconds", "file" => file)
                .record(bulk_took.as_secs_f64());
            // Frames of a page each, at the page size Tocsin's files use.
            metrics::gauge!("tocsin_store_wal_bytes", "file" => file)
                .set((wal.max(0) * WAL_PAGE_BYTES) as f64);
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
