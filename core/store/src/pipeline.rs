//! The pipeline's own tables (migration 0002): the state it loads at start, the rules it
//! applies, and the commit of a batch's outcome, and SQLite's journal read from the
//! cursor (PostgreSQL's journal is in blocks: `crate::journal::postgres`).
//! Written once for both backends: the SQL is the same, `QueryBuilder` picks each
//! backend's placeholders, and the macro below instantiates the functions for SQLite and
//! for PostgreSQL. The differences are the JSONB columns the foundation gave PostgreSQL
//! (`$jsonb` casts text in) and the journal's shape.

use std::collections::HashMap;
use std::sync::Arc;

use tocsin_model::event::Priority;
use tocsin_model::rows::{
    ActiveSuppression, AlertRow, HeldRow, Hold, Incoming, Outcome, Rules, Snapshot, TrackedRow,
};
use tocsin_model::suppression::Matcher;

use crate::decode::status;
use crate::error::StoreError;

/// Rows per multi-row statement: well under SQLite's and PostgreSQL's bound-value limits.
pub(crate) const CHUNK: usize = 400;
/// The sizes [`shaped`] splits rows into.
const SHAPES: [usize; 5] = [CHUNK, 100, 25, 5, 1];

/// `items` in chunks of [`CHUNK`] rows, the rest in chunks of 100, 25, 5 and 1: a
/// multi-row statement of each table then has one of five shapes. A connection keeps
/// the statements it ran prepared (a hundred of them); with a shape for every length of
/// the last chunk, the writer prepared a statement of hundreds of values for most
/// batches, and each pushed one it would use again out of its cache. A `batched`
/// commit's statements go as one text, new every time anyway: their rows are only split
/// at [`CHUNK`].
pub(crate) fn shaped<T>(mut items: &[T], batched: bool) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = match batched {
            true => items.len().min(CHUNK),
            false => SHAPES.into_iter().find(|&size| size <= items.len())?,
        };
        if size == 0 {
            return None;
        }
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// A batch's outcome as the statements that write it, built ahead of its commit (see
/// [`crate::PipelineStore::encode`]).
pub struct Encoded {
    pub(crate) statements: Statements,
    /// The journal rows to delete once the commit is in (SQLite's journal file).
    pub(crate) journal_delete_to: Option<i64>,
}

/// The statements of an [`Encoded`] outcome, for the store that built them.
pub(crate) enum Statements {
    Sqlite(Vec<sqlx::QueryBuilder<'static, sqlx::Sqlite>>),
    Postgres(Vec<sqlx::QueryBuilder<'static, sqlx::Postgres>>),
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (backend, statements) = match &self.statements {
            Statements::Sqlite(s) => ("sqlite", s.len()),
            Statements::Postgres(s) => ("postgres", s.len()),
        };
        f.debug_struct("Encoded")
            .field("backend", &backend)
            .field("statements", &statements)
            .finish()
    }
}

/// What a store answers when handed statements another backend built (a bug).
pub(crate) fn foreign(backend: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "a batch's statements were built for another database than {backend}"
    ))
}

macro_rules! backend {
    ($db:ty, $jsonb:literal, $batched:literal, $backend:ident, $agg:literal, $array:literal, $insert:literal, $update:literal) => {
        /// Whether a (small) commit's statements go to the database in one call.
        const BATCHED: bool = $batched;
        /// Most rows of an outcome whose statements go in one call.
        const BATCHED_ROWS: usize = 256;
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        /// The pipeline's commit counter and the catalogue's change counter.
        pub async fn versions(pool: &Pool) -> Result<(i64, i64), StoreError> {
            let rows = sqlx::query("SELECT stage, seq FROM progress WHERE stage IN ('generation', 'config')")
                .fetch_all(pool)
                .await?;
            let mut out = (0, 0);
            for row in rows {
                let stage: String = row.try_get("stage")?;
                let seq: i64 = row.try_get("seq")?;
                match stage.as_str() {
                    "generation" => out.0 = seq,
                    _ => out.1 = seq,
                }
            }
            Ok(out)
        }

        /// One page of alert states for the engine, in id order (the order the pipeline
        /// first tracked them, which is the table's own: a page is read in sequence).
        ///
        /// The page comes back as one JSON array built by the database: a million rows
        /// decoded one by one through the driver took 8 µs each (8 s at every start of
        /// a server tracking a million alerts), where the database reads them in 0.7 s.
        pub async fn tracked_page(pool: &Pool, after: Option<i64>, limit: i64) -> Result<Vec<TrackedRow>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(concat!(
                "SELECT CAST(", $agg, "(", $array,
                "(id, team, fingerprint, status, passed, hold, since, count, transitions) \
                 ORDER BY id) AS TEXT) FROM (SELECT id, team, fingerprint, status, \
                 passed, hold, since, count, transitions FROM alerts WHERE id > ",
            ));
            sql.push_bind(after.unwrap_or(i64::MIN));
            sql.push(" ORDER BY id LIMIT ").push_bind(limit).push(") AS page");
            let page: Option<String> = sql.build_query_scalar().fetch_one(pool).await?;
            type Tracked = (i64, String, String, String, String, Option<String>, i64, i64, String);
            let rows: Vec<Tracked> = match page {
                Some(page) => serde_json::from_str(&page)
                    .map_err(|e| StoreError::Corrupt(format!("a page of alert states: {e}")))?,
                None => Vec::new(),
            };
            rows.into_iter()
                .map(|(id, team, fingerprint, reported, passed, hold, since, count, transitions)| {
                    Ok(TrackedRow {
                        id,
                        team,
                        fingerprint,
                        status: status(&reported)?,
                        passed: status(&passed)?,
                        hold: hold.as_deref().and_then(Hold::parse),
                        since,
                        count,
                        transitions,
                    })
                })
                .collect()
        }

        /// Cursor, held events and open incidents.
        pub async fn snapshot(pool: &Pool) -> Result<Snapshot, StoreError> {
            let mut snapshot = Snapshot::default();
            for row in sqlx::query("SELECT stage, seq FROM progress").fetch_all(pool).await? {
                let stage: String = row.try_get("stage")?;
                let seq: i64 = row.try_get("seq")?;
                match stage.as_str() {
                    "pipeline" => snapshot.cursor = seq,
                    "generation" => snapshot.generation = seq,
                    _ => {}
                }
            }
            for row in sqlx::query("SELECT team, fingerprint, kind, due_at, suppression_id, id, source, received_at, event, trace_id FROM held")
                .fetch_all(pool)
                .await?
            {
                let kind: String = row.try_get("kind")?;
                snapshot.held.push(HeldRow {
                    team: row.try_get("team")?,
                    fingerprint: row.try_get("fingerprint")?,
                    kind: Hold::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("hold \"{kind}\"")))?,
                    due_at: row.try_get("due_at")?,
                    suppression_id: row.try_get("suppression_id")?,
                    id: row.try_get("id")?,
                    source: row.try_get("source")?,
                    received_at: row.try_get("received_at")?,
                    event: row.try_get("event")?,
                    trace_id: row.try_get("trace_id")?,
                });
            }
            let rows = sqlx::query("SELECT * FROM incidents WHERE state IN ('open', 'resolving') ORDER BY opened_at")
                .fetch_all(pool)
                .await?;
            for row in &rows {
                snapshot.incidents.push(crate::incidents::$backend::incident_row(row)?);
            }
            // Only the key's columns, in the key's order (SQLite keeps the rows in that
            // tree): sorting a million members (a wide outage) by `joined_at` took 14 s
            // at each start. One row per incident and team, its fingerprints a JSON
            // array (see `tracked_page` for why).
            let rows = sqlx::query(concat!(
                "SELECT m.incident_id, m.team, CAST(", $agg, "(m.fingerprint) AS TEXT) AS fingerprints \
                 FROM incident_alerts m JOIN incidents i ON i.id = m.incident_id \
                 WHERE i.state IN ('open', 'resolving') GROUP BY m.incident_id, m.team",
            ))
            .fetch_all(pool)
            .await?;
            snapshot.members.reserve(rows.len());
            for row in rows {
                let fingerprints: String = row.try_get("fingerprints")?;
                snapshot.members.push((
                    row.try_get("incident_id")?,
                    row.try_get("team")?,
                    serde_json::from_str(&fingerprints).map_err(|e| {
                        StoreError::Corrupt(format!("an incident's members: {e}"))
                    })?,
                ));
            }
            Ok(snapshot)
        }


        /// The catalogue and the suppressions that have not ended by `now`.
        pub async fn rules(pool: &Pool, now: i64) -> Result<Rules, StoreError> {
            let (_, version) = versions(pool).await?;
            let mut rules = Rules { version, ..Rules::default() };
            for service in crate::catalogue::$backend::services(pool, None).await? {
                rules.services.insert(service.name.clone(), Arc::new(service));
            }
            let mut sql = QueryBuilder::<$db>::new("SELECT id, team, start_time, end_time, targets FROM suppressions WHERE end_time > ");
            sql.push_bind(now).push(" ORDER BY start_time, id");
            for row in sql.build().fetch_all(pool).await? {
                let id: String = row.try_get("id")?;
                let targets: String = row.try_get("targets")?;
                let targets: Vec<std::collections::BTreeMap<String, String>> = serde_json::from_str(&targets)
                    .map_err(|e| StoreError::Corrupt(format!("suppression {id} targets: {e}")))?;
                match Matcher::compile(&targets) {
                    Ok(matcher) => rules.suppressions.push(ActiveSuppression {
                        team: row.try_get("team")?,
                        start: row.try_get("start_time")?,
                        end: row.try_get("end_time")?,
                        id,
                        matcher,
                    }),
                    Err(errors) => tracing::error!(suppression = %id, ?errors, "stored suppression no longer compiles; ignored"),
                }
            }
            Ok(rules)
        }

        /// Ends one statement of a commit. When `batched` (SQLite, a small outcome) the
        /// statements of a commit run in one call to the connection's thread: each call
        /// costs a round trip as dear as a small statement, and the way from an event to
        /// its page is mostly such round trips. A large outcome runs statement by
        /// statement: each of its statements is then one the connection has prepared
        /// before, while the text of all of them together would be new every time.
        fn end(out: &mut Vec<QueryBuilder<'static, $db>>, sql: &mut QueryBuilder<'static, $db>, batched: bool) {
            if batched {
                sql.push(";\n");
            } else {
                out.push(std::mem::replace(sql, QueryBuilder::new("")));
            }
        }

        /// Writes one batch's outcome in one transaction, given as its statements (see
        /// [`encode`]), if the pipeline's commit counter is still `generation` (else
        /// another process committed: [`StoreError::Conflict`]).
        pub async fn commit_statements(
            pool: &Pool,
            statements: Vec<QueryBuilder<'static, $db>>,
            generation: i64,
        ) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            let mut bump = QueryBuilder::<$db>::new("UPDATE progress SET seq = seq + 1 WHERE stage = 'generation' AND seq = ");
            bump.push_bind(generation);
            if bump.build().execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(StoreError::Conflict);
            }
            for mut statement in statements {
                statement.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// The statements that write one batch's outcome, built apart from its
        /// transaction: a pipeline that is behind builds the next batch's while the
        /// database's writer runs this one's (building them took a fifth of a wide
        /// outage's commit, the writer waiting). Processed journal rows go with them
        /// when the journal is in the same database (`with_journal`); else the caller
        /// deletes them.
        ///
        /// SQLite's writes are `OR FAIL` (`$insert`, `$update`): a statement inside a
        /// transaction that writes many rows and may abort on a constraint keeps a
        /// statement journal, a copy of every page it changes so that it can undo only
        /// itself (a tenth of the writer's time in a wide outage). A failed statement
        /// fails the whole commit here, which rolls everything back, so there is nothing
        /// to undo one statement at a time. (An upsert's `DO UPDATE` still aborts.)
        pub fn encode(outcome: &Outcome, with_journal: bool) -> Vec<QueryBuilder<'static, $db>> {
            let rows = outcome.alerts.len() + outcome.refreshed.len() + outcome.history.len()
                + outcome.held_put.len() + outcome.held_delete.len() + outcome.incidents.len()
                + outcome.members.len() + outcome.timeline.len() + outcome.notices.len();
            let batched = BATCHED && rows <= BATCHED_ROWS;
            let mut out = Vec::new();
            let mut sql = QueryBuilder::<'static, $db>::new("");
            if let Some(to) = outcome.journal_delete_to.filter(|_| with_journal) {
                sql.push(crate::journal::$backend::DELETE_TO);
                sql.push_bind(to);
                end(&mut out, &mut sql, batched);
            }
            if let Some(to) = outcome.journal_to {
                sql.push("UPDATE progress SET seq = ");
                sql.push_bind(to).push(" WHERE stage = 'pipeline'");
                end(&mut out, &mut sql, batched);
            }
            // New alerts are inserted with the id the pipeline gave them; tracked ones
            // are updated by id (the table's own key), never looked up by fingerprint.
            let (new, tracked): (Vec<&AlertRow>, Vec<&AlertRow>) = outcome.alerts.iter().partition(|a| a.new);
            for chunk in shaped(&new, batched) {
                sql.push(concat!(
                    $insert, " alerts (id, team, fingerprint, monitor, labels, status, passed, hold, since, count, \
                     first_seen, last_seen, reported_since, reported_count, last_event, transitions) ",
                ));
                sql.push_values(chunk, |mut v, a| {
                    v.push_bind(a.id)
                        .push_bind(a.team.clone())
                        .push_bind(a.fingerprint.clone())
                        .push_bind(a.monitor.clone())
                        .push_bind(a.labels.clone())
                        .push_unseparated($jsonb)
                        .push_bind(a.status.as_str())
                        .push_bind(a.passed.as_str())
                        .push_bind(a.hold.map(Hold::as_str))
                        .push_bind(a.since)
                        .push_bind(a.count)
                        .push_bind(a.first_seen)
                        .push_bind(a.last_seen)
                        .push_bind(a.reported_since)
                        .push_bind(a.reported_count)
                        .push_bind(a.last_event.clone())
                        .push_bind(a.transitions.clone());
                });
                end(&mut out, &mut sql, batched);
            }
            if !new.is_empty() {
                for statement in crate::alerts::$backend::key_merge() {
                    sql.push(statement);
                    end(&mut out, &mut sql, batched);
                }
            }
            for chunk in shaped(&tracked, batched) {
                sql.push(
                    "WITH v (id, status, passed, hold, since, count, last_seen, reported_since, reported_count, \
                     last_event, transitions) AS (",
                );
                sql.push_values(chunk, |mut v, a| {
                    v.push_bind(a.id)
                        .push_bind(a.status.as_str())
                        .push_bind(a.passed.as_str())
                        .push_bind(a.hold.map(Hold::as_str))
                        .push_bind(a.since)
                        .push_bind(a.count)
                        .push_bind(a.last_seen)
                        .push_bind(a.reported_since)
                        .push_bind(a.reported_count)
                        .push_bind(a.last_event.clone())
                        .push_bind(a.transitions.clone());
                });
                sql.push(concat!(
                    ") ", $update, " alerts SET status = v.status, passed = v.passed, hold = v.hold, since = v.since, \
                     count = v.count, last_seen = v.last_seen, reported_since = v.reported_since, \
                     reported_count = v.reported_count, last_event = v.last_event, transitions = v.transitions \
                     FROM v WHERE alerts.id = v.id",
                ));
                end(&mut out, &mut sql, batched);
            }
            // Steady repeats: only the refreshed columns, joined on a list of values.
            for chunk in shaped(&outcome.refreshed, batched) {
                sql.push(
                    "WITH v (id, since, count, last_seen, reported_since, reported_count, last_event) AS (",
                );
                sql.push_values(chunk, |mut v, a| {
                    v.push_bind(a.id)
                        .push_bind(a.since)
                        .push_bind(a.count)
                        .push_bind(a.last_seen)
                        .push_bind(a.reported_since)
                        .push_bind(a.reported_count)
                        .push_bind(a.last_event.clone());
                });
                sql.push(concat!(
                    ") ", $update, " alerts SET since = v.since, count = v.count, last_seen = v.last_seen, \
                     reported_since = v.reported_since, reported_count = v.reported_count, last_event = v.last_event \
                     FROM v WHERE alerts.id = v.id",
                ));
                end(&mut out, &mut sql, batched);
            }
            for chunk in shaped(&outcome.history, batched) {
                sql.push(concat!(
                    $insert, " history (id, alert, team, fingerprint, source, received_at, processed_at, monitor, \
                     status, labels, outcome, reason, suppression_id, incident_id, priority, event, trace_id) ",
                ));
                sql.push_values(chunk, |mut v, h| {
                    v.push_bind(h.id.clone())
                        .push_bind(h.alert)
                        .push_bind(h.team.clone())
                        .push_bind(h.fingerprint.clone())
                        .push_bind(h.source.clone())
                        .push_bind(h.received_at)
                        .push_bind(h.processed_at)
                        .push_bind(h.monitor.clone())
                        .push_bind(h.status.as_str())
                        .push_bind(h.labels.clone())
                        .push_bind(h.outcome.as_str())
                        .push_bind(h.reason.clone())
                        .push_bind(h.suppression_id.clone())
                        .push_bind(h.incident_id.clone())
                        .push_bind(h.priority.map(Priority::as_str))
                        .push_bind(h.event.clone())
                        .push_bind(h.trace_id.clone());
                });
                end(&mut out, &mut sql, batched);
            }
            for (team, fingerprint) in &outcome.held_delete {
                sql.push("DELETE FROM held WHERE team = ");
                sql.push_bind(team.clone()).push(" AND fingerprint = ").push_bind(fingerprint.clone());
                end(&mut out, &mut sql, batched);
            }
            for chunk in shaped(&outcome.held_put, batched) {
                sql.push(concat!(
                    $insert, " held (team, fingerprint, kind, due_at, suppression_id, id, source, received_at, event, trace_id) ",
                ));
                sql.push_values(chunk, |mut v, h| {
                    v.push_bind(h.team.clone())
                        .push_bind(h.fingerprint.clone())
                        .push_bind(h.kind.as_str())
                        .push_bind(h.due_at)
                        .push_bind(h.suppression_id.clone())
                        .push_bind(h.id.clone())
                        .push_bind(h.source.clone())
                        .push_bind(h.received_at)
                        .push_bind(h.event.clone())
                        .push_bind(h.trace_id.clone());
                });
                sql.push(
                    " ON CONFLICT (team, fingerprint) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at, \
                     suppression_id = excluded.suppression_id, id = excluded.id, source = excluded.source, \
                     received_at = excluded.received_at, event = excluded.event, trace_id = excluded.trace_id",
                );
                end(&mut out, &mut sql, batched);
            }
            // One row at a time: an incident that stops taking alerts must free its key
            // before the incident that takes it is written (the unique index).
            for i in &outcome.incidents {
                sql.push(
                    "INSERT INTO incidents (id, team, key, open_key, state, priority, title, service, region, window_ms, \
                     alerts, unhealthy, opened_at, updated_at, last_alert_at, resolve_at, resolved_at, acked_at, acked_by, \
                     closed_at, closed_by, trace_id) ",
                );
                sql.push_values(std::iter::once(i), |mut v, i| {
                    v.push_bind(i.id.clone())
                        .push_bind(i.team.clone())
                        .push_bind(i.key.clone())
                        .push_bind(i.open_key.clone())
                        .push_bind(i.state.as_str())
                        .push_bind(i.priority.as_str())
                        .push_bind(i.title.clone())
                        .push_bind(i.service.clone())
                        .push_bind(i.region.clone())
                        .push_bind(i.window_ms)
                        .push_bind(i.alerts)
                        .push_bind(i.unhealthy)
                        .push_bind(i.opened_at)
                        .push_bind(i.updated_at)
                        .push_bind(i.last_alert_at)
                        .push_bind(i.resolve_at)
                        .push_bind(i.resolved_at)
                        .push_bind(i.acked_at)
                        .push_bind(i.acked_by.clone())
                        .push_bind(i.closed_at)
                        .push_bind(i.closed_by.clone())
                        .push_bind(i.trace_id.clone());
                });
                sql.push(
                    " ON CONFLICT (id) DO UPDATE SET open_key = excluded.open_key, state = excluded.state, \
                     priority = excluded.priority, alerts = excluded.alerts, unhealthy = excluded.unhealthy, \
                     updated_at = excluded.updated_at, last_alert_at = excluded.last_alert_at, resolve_at = excluded.resolve_at, \
                     resolved_at = excluded.resolved_at, acked_at = excluded.acked_at, acked_by = excluded.acked_by, \
                     closed_at = excluded.closed_at, closed_by = excluded.closed_by",
                );
                end(&mut out, &mut sql, batched);
            }
            // Keyed by incident and alert id: a new incident's members are appended.
            for chunk in shaped(&outcome.members, batched) {
                sql.push(concat!(
                    $insert, " incident_alerts (incident_id, alert, team, fingerprint, monitor, labels, status, \
                     priority, joined_at, updated_at, last_event) ",
                ));
                sql.push_values(chunk, |mut v, m| {
                    v.push_bind(m.incident_id.clone())
                        .push_bind(m.alert)
                        .push_bind(m.team.clone())
                        .push_bind(m.fingerprint.clone())
                        .push_bind(m.monitor.clone())
                        .push_bind(m.labels.clone())
                        .push_bind(m.status.as_str())
                        .push_bind(m.priority.as_str())
                        .push_bind(m.joined_at)
                        .push_bind(m.updated_at)
                        .push_bind(m.last_event.clone());
                });
                sql.push(
                    " ON CONFLICT (incident_id, alert) DO UPDATE SET status = excluded.status, \
                     priority = excluded.priority, updated_at = excluded.updated_at, last_event = excluded.last_event",
                );
                end(&mut out, &mut sql, batched);
            }
            for chunk in shaped(&outcome.timeline, batched) {
                sql.push(concat!($insert, " incident_timeline (incident_id, at, kind, detail) "));
                sql.push_values(chunk, |mut v, t| {
                    v.push_bind(t.incident_id.clone()).push_bind(t.at).push_bind(t.kind.as_str()).push_bind(t.detail.clone());
                });
                end(&mut out, &mut sql, batched);
            }
            // The duty to tell someone commits with the change that calls for it.
            for chunk in shaped(&outcome.notices, batched) {
                sql.push(concat!($insert, " notices (id, incident_id, team, action, at) "));
                sql.push_values(chunk, |mut v, n| {
                    v.push_bind(n.id.clone())
                        .push_bind(n.incident_id.clone())
                        .push_bind(n.team.clone())
                        .push_bind(n.action.as_str())
                        .push_bind(n.at);
                });
                end(&mut out, &mut sql, batched);
            }
            if !outcome.drops.is_empty() {
                sql.push(concat!($insert, " drops (team, reason, count) "));
                sql.push_values(&outcome.drops, |mut v, (team, reason, n)| {
                    v.push_bind(team.clone()).push_bind(reason.clone()).push_bind(*n);
                });
                sql.push(" ON CONFLICT (team, reason) DO UPDATE SET count = drops.count + excluded.count");
                end(&mut out, &mut sql, batched);
            }
            if !sql.sql().is_empty() {
                out.push(sql);
            }
            out
        }

        /// Deletes history and finished incidents last changed before `before`.
        pub async fn prune(pool: &Pool, before: i64) -> Result<u64, StoreError> {
            let mut tx = pool.begin().await?;
            let mut removed = 0;
            for sql in [
                "DELETE FROM history WHERE processed_at < ",
                "DELETE FROM incident_timeline WHERE incident_id IN (SELECT id FROM incidents WHERE state IN ('resolved', 'closed') AND updated_at < ",
                "DELETE FROM incident_alerts WHERE incident_id IN (SELECT id FROM incidents WHERE state IN ('resolved', 'closed') AND updated_at < ",
                "DELETE FROM incidents WHERE state IN ('resolved', 'closed') AND updated_at < ",
            ] {
                let mut q = QueryBuilder::<$db>::new(sql);
                q.push_bind(before);
                if sql.contains("IN (SELECT") {
                    q.push(")");
                }
                removed += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        }

    };
}

/// The functions for SQLite.
pub(crate) mod sqlite {
    backend!(
        sqlx::Sqlite,
        "",
        true,
        sqlite,
        "json_group_array",
        "json_array",
        "INSERT OR FAIL INTO",
        "UPDATE OR FAIL"
    );

    /// Journal rows after `after`, oldest first, without their body (labels, event):
    /// [`journal_bodies`] reads those for the rows that need them.
    pub async fn journal_after(
        pool: &Pool,
        after: i64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        // One JSON array for the batch, as `tracked_page` reads alert states: a pipeline
        // that has fallen behind reads every row back, and sqlx decodes rows one by one.
        let mut sql = QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT CAST(json_group_array(json_array(seq, id, team, fingerprint, source, \
             received_at, monitor, status, reported_since, reported_count, trace_id) \
             ORDER BY seq) AS TEXT) FROM (SELECT * FROM journal WHERE seq > ",
        );
        sql.push_bind(after);
        sql.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::try_from(max).unwrap_or(i64::MAX))
            .push(")");
        let page: Option<String> = sql.build_query_scalar().fetch_one(pool).await?;
        /// One row of the array, its fields in the order `json_array` lists them (serde
        /// reads a struct from a sequence).
        #[derive(serde::Deserialize)]
        struct Row {
            seq: i64,
            id: String,
            team: String,
            fingerprint: String,
            source: String,
            received_at: i64,
            monitor: String,
            status: String,
            reported_since: Option<i64>,
            reported_count: Option<i64>,
            trace_id: Option<String>,
        }
        let rows: Vec<Row> = match page {
            Some(page) => serde_json::from_str(&page)
                .map_err(|e| StoreError::Corrupt(format!("a page of the journal: {e}")))?,
            None => Vec::new(),
        };
        rows.into_iter()
            .map(|row| {
                Ok(Incoming {
                    seq: row.seq,
                    id: row.id,
                    team: row.team,
                    fingerprint: row.fingerprint,
                    source: row.source,
                    received_at: row.received_at,
                    monitor: row.monitor,
                    status: status(&row.status)?,
                    labels: String::new(),
                    reported_since: row.reported_since,
                    reported_count: row.reported_count,
                    event: String::new(),
                    trace_id: row.trace_id,
                })
            })
            .collect()
    }

    /// Labels and event of these journal rows, by seq.
    ///
    /// As one JSON array per statement, as [`journal_after`] reads the rows: a pipeline
    /// behind a wide outage needs the body of every row, and sqlx decoded them one by
    /// one (a fifth of the pipeline's time per batch of 5,000 new identities). When most
    /// of the span from the first seq to the last is needed, the span is read, 1,000
    /// rows a statement, and the rows not needed are left out; else the seqs are listed.
    pub async fn journal_bodies(
        pool: &Pool,
        seqs: &[i64],
    ) -> Result<HashMap<i64, (String, String)>, StoreError> {
        const SELECT: &str = "SELECT CAST(json_group_array(json_array(seq, labels, event)) AS TEXT) \
                              FROM journal WHERE seq ";
        /// Most rows of a span read in one statement.
        const BODIES_PAGE: usize = 1_000;
        let mut bodies = HashMap::with_capacity(seqs.len());
        let mut wanted = seqs.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let seqs = wanted.as_slice();
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return Ok(bodies);
        };
        let span = usize::try_from(last - first)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut statements = Vec::new();
        if span <= seqs.len().saturating_mul(2) {
            // In pieces: a page stays a few hundred KB whatever the batch's size.
            for piece in seqs.chunks(BODIES_PAGE) {
                let (Some(first), Some(last)) = (piece.first(), piece.last()) else {
                    continue;
                };
                let mut sql = QueryBuilder::<sqlx::Sqlite>::new(SELECT);
                sql.push("BETWEEN ")
                    .push_bind(*first)
                    .push(" AND ")
                    .push_bind(*last);
                statements.push(sql);
            }
        } else {
            for chunk in shaped(seqs, false) {
                let mut sql = QueryBuilder::<sqlx::Sqlite>::new(SELECT);
                sql.push("IN (");
                let mut list = sql.separated(", ");
                for seq in chunk {
                    list.push_bind(*seq);
                }
                sql.push(")");
                statements.push(sql);
            }
        }
        for mut sql in statements {
            let page: Option<String> = sql.build_query_scalar().fetch_one(pool).await?;
            let rows: Vec<(i64, String, String)> = match page {
                Some(page) => serde_json::from_str(&page)
                    .map_err(|e| StoreError::Corrupt(format!("journal bodies: {e}")))?,
                None => Vec::new(),
            };
            for (seq, labels, event) in rows {
                if seqs.binary_search(&seq).is_ok() {
                    bodies.insert(seq, (labels, event));
                }
            }
        }
        Ok(bodies)
    }
}

/// The functions for PostgreSQL.
pub(crate) mod postgres {
    backend!(
        sqlx::Postgres,
        "::jsonb",
        false,
        postgres,
        "json_agg",
        "json_build_array",
        "INSERT INTO",
        "UPDATE"
    );
}

#[cfg(test)]
mod tests {
    use super::shaped;

    fn sizes(n: usize, batched: bool) -> Vec<usize> {
        let rows: Vec<usize> = (0..n).collect();
        let chunks: Vec<&[usize]> = shaped(&rows, batched).collect();
        let joined: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, rows, "every row once, in order");
        chunks.iter().map(|c| c.len()).collect()
    }

    #[test]
    fn a_commit_s_statements_take_one_of_five_shapes() {
        assert_eq!(sizes(0, false), Vec::<usize>::new());
        assert_eq!(sizes(1_037, false), [400, 400, 100, 100, 25, 5, 5, 1, 1]);
        assert_eq!(
            sizes(5_000, false),
            [400; 12]
                .iter()
                .copied()
                .chain([100, 100])
                .collect::<Vec<_>>()
        );
        for n in 0..2_000 {
            assert!(
                sizes(n, false)
                    .iter()
                    .all(|s| [400, 100, 25, 5, 1].contains(s))
            );
        }
    }

    #[test]
    fn a_batched_commit_s_rows_are_split_only_at_the_chunk() {
        assert_eq!(sizes(7, true), [7]);
        assert_eq!(sizes(0, true), Vec::<usize>::new());
        assert_eq!(sizes(401, true), [400, 1]);
    }
}
