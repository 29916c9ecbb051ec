//! The pipeline's tables (migration 0002), written once for both backends: the SQL is
//! the same, `QueryBuilder` picks each backend's placeholders, and the macro below
//! instantiates the functions for SQLite and for PostgreSQL. The only differences are
//! the JSONB columns the foundation gave PostgreSQL (`$jsonb` casts text in, `$text`
//! casts it out).

use std::collections::HashMap;
use std::sync::Arc;

use tocsin_model::catalogue::{Service, ServiceSpec};
use tocsin_model::event::{Priority, Status};
use tocsin_model::rows::{ActiveSuppression, HeldRow, Hold, IncidentRow, IncidentState, Incoming, Outcome, Rules, Snapshot, TrackedRow};
use tocsin_model::suppression::{Draft, Matcher};

use super::StoreError;
use tocsin_model::views::{
    AuditEntry, HistoryEntry, HistoryQuery, IncidentAlert, IncidentDetail, IncidentQuery,
    IncidentSummary, SuppressionRecord, TimelineEntry,
};

/// Rows per multi-row statement: well under SQLite's and PostgreSQL's bound-value limits.
const CHUNK: usize = 400;

fn status(text: &str) -> Result<Status, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("status \"{text}\"")))
}

fn priority(text: &str) -> Result<Priority, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("priority \"{text}\"")))
}

fn state(text: &str) -> Result<IncidentState, StoreError> {
    IncidentState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("incident state \"{text}\"")))
}

fn time(ms: i64) -> Result<time::OffsetDateTime, StoreError> {
    super::from_millis(ms)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// An incident row as the API shows it.
fn summary_of(i: IncidentRow) -> Result<IncidentSummary, StoreError> {
    let opt = |ms: Option<i64>| ms.map(time).transpose();
    Ok(IncidentSummary {
        accepting: i.open_key.is_some(),
        opened_at: time(i.opened_at)?,
        updated_at: time(i.updated_at)?,
        resolves_at: opt(i.resolve_at)?,
        resolved_at: opt(i.resolved_at)?,
        acked_at: opt(i.acked_at)?,
        closed_at: opt(i.closed_at)?,
        id: i.id,
        team: i.team,
        key: i.key,
        state: i.state,
        priority: i.priority,
        title: i.title,
        service: i.service,
        region: i.region,
        alerts: i.alerts,
        unhealthy: i.unhealthy,
        acked_by: i.acked_by,
        closed_by: i.closed_by,
        trace_id: i.trace_id,
    })
}

/// One alert of an incident as the API shows it; `event` is its latest event (JSON),
/// which gives the check's message and where to notify.
#[allow(clippy::too_many_arguments)] // One per column of the member row.
fn alert_of(
    fingerprint: String,
    monitor: String,
    labels: &str,
    status: Status,
    priority: Priority,
    (joined_at, updated_at): (i64, i64),
    last_event: String,
    event: Option<&str>,
) -> Result<IncidentAlert, StoreError> {
    let event = event.map(json).unwrap_or_default();
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (message, channel, ticket_queue) = (
        text("/alert/message"),
        text("/alerting/channel"),
        text("/alerting/ticket-queue"),
    );
    let event: Option<tocsin_model::event::Event> = serde_json::from_value(event).ok();
    // Shown as they are used: rendered against the event they came with.
    let render = |text: Option<String>| match (text, &event) {
        (Some(text), Some(event)) => Some(tocsin_model::event::render(&text, event)),
        (text, _) => text,
    };
    Ok(IncidentAlert {
        message,
        channel: render(channel),
        ticket_queue: render(ticket_queue),
        event,
        fingerprint,
        monitor,
        labels: json(labels),
        status,
        priority,
        joined_at: time(joined_at)?,
        updated_at: time(updated_at)?,
        last_event,
    })
}

/// The incident `id` as a batch's outcome wrote it, without reading it back: `None`
/// unless the outcome holds all of it (a new incident, whose alerts all joined in the
/// batch and whose latest events are all in its history).
pub fn incident_from(outcome: &Outcome, id: &str) -> Option<IncidentDetail> {
    let row = outcome.incidents.iter().rev().find(|i| i.id == id)?;
    let mut members: Vec<_> = outcome
        .members
        .iter()
        .filter(|m| m.incident_id == id)
        .collect();
    if members.len() as i64 != row.alerts {
        return None;
    }
    members.sort_by(|a, b| (a.joined_at, &a.fingerprint).cmp(&(b.joined_at, &b.fingerprint)));
    let mut alert_list = Vec::with_capacity(members.len());
    for m in members {
        let event = outcome
            .history
            .iter()
            .find(|h| h.id == m.last_event && h.fingerprint == m.fingerprint && h.team == m.team)?;
        alert_list.push(
            alert_of(
                m.fingerprint.clone(),
                m.monitor.clone(),
                &m.labels,
                m.status,
                m.priority,
                (m.joined_at, m.updated_at),
                m.last_event.clone(),
                Some(&event.event),
            )
            .ok()?,
        );
    }
    let mut timeline = Vec::new();
    for entry in outcome.timeline.iter().filter(|t| t.incident_id == id) {
        timeline.push(TimelineEntry {
            at: time(entry.at).ok()?,
            kind: entry.kind.to_owned(),
            detail: entry.detail.clone(),
        });
    }
    timeline.sort_by_key(|t| t.at);
    Some(IncidentDetail {
        incident: summary_of(row.clone()).ok()?,
        alert_list,
        timeline,
        context: Vec::new(),
    })
}

/// A suppression's state at `now`.
pub fn suppression_state(start: i64, end: i64, now: i64) -> &'static str {
    if now < start {
        "scheduled"
    } else if now < end {
        "active"
    } else {
        "ended"
    }
}

macro_rules! backend {
    ($db:ty, $jsonb:literal, $text:literal, $batched:literal) => {
        /// Whether a (small) commit's statements go to the database in one call.
        const BATCHED: bool = $batched;
        /// Most rows of an outcome whose statements go in one call.
        const BATCHED_ROWS: usize = 256;
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        /// Journal rows after `after`, oldest first, without their body (labels, event):
        /// [`journal_bodies`] reads those for the rows that need them.
        pub async fn journal_after(pool: &Pool, after: i64, max: usize) -> Result<Vec<Incoming>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT seq, id, team, fingerprint, source, received_at, monitor, status, reported_since, \
                 reported_count, trace_id FROM journal WHERE seq > ",
            );
            sql.push_bind(after).push(" ORDER BY seq LIMIT ").push_bind(i64::try_from(max).unwrap_or(i64::MAX));
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(Incoming {
                        seq: row.try_get("seq")?,
                        id: row.try_get("id")?,
                        team: row.try_get("team")?,
                        fingerprint: row.try_get("fingerprint")?,
                        source: row.try_get("source")?,
                        received_at: row.try_get("received_at")?,
                        monitor: row.try_get("monitor")?,
                        status: status(row.try_get("status")?)?,
                        labels: String::new(),
                        reported_since: row.try_get("reported_since")?,
                        reported_count: row.try_get("reported_count")?,
                        event: String::new(),
                        trace_id: row.try_get("trace_id")?,
                    })
                })
                .collect()
        }

        /// Labels and event of these journal rows, by seq.
        pub async fn journal_bodies(pool: &Pool, seqs: &[i64]) -> Result<HashMap<i64, (String, String)>, StoreError> {
            let mut bodies = HashMap::with_capacity(seqs.len());
            for chunk in seqs.chunks(CHUNK) {
                let mut sql = QueryBuilder::<$db>::new(concat!(
                    "SELECT seq, labels", $text, " AS labels, event", $text, " AS event FROM journal WHERE seq IN ("
                ));
                let mut list = sql.separated(", ");
                for seq in chunk {
                    list.push_bind(*seq);
                }
                sql.push(")");
                for row in sql.build().fetch_all(pool).await? {
                    bodies.insert(row.try_get("seq")?, (row.try_get("labels")?, row.try_get("event")?));
                }
            }
            Ok(bodies)
        }

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

        /// One page of alert states for the engine, in (team, fingerprint) order.
        pub async fn tracked_page(pool: &Pool, after: Option<(String, String)>, limit: i64) -> Result<Vec<TrackedRow>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT team, fingerprint, status, passed, hold, since, count, transitions FROM alerts",
            );
            if let Some((team, fingerprint)) = after {
                sql.push(" WHERE (team > ").push_bind(team.clone()).push(" OR (team = ").push_bind(team)
                    .push(" AND fingerprint > ").push_bind(fingerprint).push("))");
            }
            sql.push(" ORDER BY team, fingerprint LIMIT ").push_bind(limit);
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let hold: Option<String> = row.try_get("hold")?;
                    Ok(TrackedRow {
                        team: row.try_get("team")?,
                        fingerprint: row.try_get("fingerprint")?,
                        status: status(row.try_get("status")?)?,
                        passed: status(row.try_get("passed")?)?,
                        hold: hold.as_deref().and_then(Hold::parse),
                        since: row.try_get("since")?,
                        count: row.try_get("count")?,
                        transitions: row.try_get("transitions")?,
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
                snapshot.incidents.push(incident_row(row)?);
            }
            let rows = sqlx::query(
                "SELECT m.incident_id, m.team, m.fingerprint, m.status FROM incident_alerts m \
                 JOIN incidents i ON i.id = m.incident_id WHERE i.state IN ('open', 'resolving') \
                 ORDER BY m.joined_at",
            )
            .fetch_all(pool)
            .await?;
            for row in rows {
                snapshot.members.push((
                    row.try_get("incident_id")?,
                    row.try_get("team")?,
                    row.try_get("fingerprint")?,
                    status(row.try_get("status")?)?,
                ));
            }
            Ok(snapshot)
        }

        fn incident_row(row: &<$db as sqlx::Database>::Row) -> Result<IncidentRow, StoreError> {
            Ok(IncidentRow {
                id: row.try_get("id")?,
                team: row.try_get("team")?,
                key: row.try_get("key")?,
                open_key: row.try_get("open_key")?,
                state: state(row.try_get("state")?)?,
                priority: priority(row.try_get("priority")?)?,
                title: row.try_get("title")?,
                service: row.try_get("service")?,
                region: row.try_get("region")?,
                window_ms: row.try_get("window_ms")?,
                alerts: row.try_get("alerts")?,
                unhealthy: row.try_get("unhealthy")?,
                opened_at: row.try_get("opened_at")?,
                updated_at: row.try_get("updated_at")?,
                last_alert_at: row.try_get("last_alert_at")?,
                resolve_at: row.try_get("resolve_at")?,
                resolved_at: row.try_get("resolved_at")?,
                acked_at: row.try_get("acked_at")?,
                acked_by: row.try_get("acked_by")?,
                closed_at: row.try_get("closed_at")?,
                closed_by: row.try_get("closed_by")?,
                trace_id: row.try_get("trace_id")?,
            })
        }

        /// The catalogue and the suppressions that have not ended by `now`.
        pub async fn rules(pool: &Pool, now: i64) -> Result<Rules, StoreError> {
            let (_, version) = versions(pool).await?;
            let mut rules = Rules { version, ..Rules::default() };
            for service in services(pool, None).await? {
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
        async fn end(tx: &mut sqlx::Transaction<'_, $db>, sql: &mut QueryBuilder<'_, $db>, batched: bool) -> Result<(), StoreError> {
            if batched {
                sql.push(";\n");
            } else {
                sql.build().execute(&mut **tx).await?;
                sql.reset();
            }
            Ok(())
        }

        /// Runs what [`end`] left.
        async fn finish(tx: &mut sqlx::Transaction<'_, $db>, sql: &mut QueryBuilder<'_, $db>) -> Result<(), StoreError> {
            if !sql.sql().is_empty() {
                sql.build().execute(&mut **tx).await?;
                sql.reset();
            }
            Ok(())
        }

        /// Writes one batch's outcome in one transaction, if the pipeline's commit counter
        /// is still `generation` (else another process committed: [`StoreError::Conflict`]).
        /// Processed journal rows go with it when the journal is in `pool`'s database
        /// (`with_journal`); else the caller deletes them.
        pub async fn commit(pool: &Pool, outcome: &Outcome, generation: i64, with_journal: bool) -> Result<(), StoreError> {
            let rows = outcome.alerts.len() + outcome.refreshed.len() + outcome.history.len()
                + outcome.held_put.len() + outcome.held_delete.len() + outcome.incidents.len()
                + outcome.members.len() + outcome.timeline.len() + outcome.notices.len();
            let batched = BATCHED && rows <= BATCHED_ROWS;
            let mut tx = pool.begin().await?;
            let mut bump = QueryBuilder::<$db>::new("UPDATE progress SET seq = seq + 1 WHERE stage = 'generation' AND seq = ");
            bump.push_bind(generation);
            if bump.build().execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(StoreError::Conflict);
            }
            let mut sql = QueryBuilder::<$db>::new("");
            if let Some(to) = outcome.journal_delete_to.filter(|_| with_journal) {
                sql.push("DELETE FROM journal WHERE seq <= ");
                sql.push_bind(to);
                end(&mut tx, &mut sql, batched).await?;
            }
            if let Some(to) = outcome.journal_to {
                sql.push("UPDATE progress SET seq = ");
                sql.push_bind(to).push(" WHERE stage = 'pipeline'");
                end(&mut tx, &mut sql, batched).await?;
            }
            for chunk in outcome.alerts.chunks(CHUNK) {
                sql.push(
                    "INSERT INTO alerts (team, fingerprint, monitor, labels, status, passed, hold, since, count, \
                     first_seen, last_seen, reported_since, reported_count, last_event, transitions) ",
                );
                sql.push_values(chunk, |mut v, a| {
                    v.push_bind(a.team.clone())
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
                sql.push(
                    " ON CONFLICT (team, fingerprint) DO UPDATE SET status = excluded.status, passed = excluded.passed, \
                     hold = excluded.hold, since = excluded.since, count = excluded.count, last_seen = excluded.last_seen, \
                     reported_since = excluded.reported_since, reported_count = excluded.reported_count, \
                     last_event = excluded.last_event, transitions = excluded.transitions",
                );
                end(&mut tx, &mut sql, batched).await?;
            }
            // Steady repeats: only the refreshed columns, joined on a list of values.
            for chunk in outcome.refreshed.chunks(CHUNK) {
                sql.push(
                    "WITH v (team, fingerprint, since, count, last_seen, reported_since, reported_count, last_event) AS (",
                );
                sql.push_values(chunk, |mut v, a| {
                    v.push_bind(a.team.clone())
                        .push_bind(a.fingerprint.clone())
                        .push_bind(a.since)
                        .push_bind(a.count)
                        .push_bind(a.last_seen)
                        .push_bind(a.reported_since)
                        .push_bind(a.reported_count)
                        .push_bind(a.last_event.clone());
                });
                sql.push(
                    ") UPDATE alerts SET since = v.since, count = v.count, last_seen = v.last_seen, \
                     reported_since = v.reported_since, reported_count = v.reported_count, last_event = v.last_event \
                     FROM v WHERE alerts.team = v.team AND alerts.fingerprint = v.fingerprint",
                );
                end(&mut tx, &mut sql, batched).await?;
            }
            for chunk in outcome.history.chunks(CHUNK) {
                sql.push(
                    "INSERT INTO history (id, team, fingerprint, source, received_at, processed_at, monitor, status, labels, \
                     outcome, reason, suppression_id, incident_id, priority, event, trace_id) ",
                );
                sql.push_values(chunk, |mut v, h| {
                    v.push_bind(h.id.clone())
                        .push_bind(h.team.clone())
                        .push_bind(h.fingerprint.clone())
                        .push_bind(h.source.clone())
                        .push_bind(h.received_at)
                        .push_bind(h.processed_at)
                        .push_bind(h.monitor.clone())
                        .push_bind(h.status.as_str())
                        .push_bind(h.labels.clone())
                        .push_bind(h.outcome)
                        .push_bind(h.reason.clone())
                        .push_bind(h.suppression_id.clone())
                        .push_bind(h.incident_id.clone())
                        .push_bind(h.priority.map(Priority::as_str))
                        .push_bind(h.event.clone())
                        .push_bind(h.trace_id.clone());
                });
                end(&mut tx, &mut sql, batched).await?;
            }
            for (team, fingerprint) in &outcome.held_delete {
                sql.push("DELETE FROM held WHERE team = ");
                sql.push_bind(team.clone()).push(" AND fingerprint = ").push_bind(fingerprint.clone());
                end(&mut tx, &mut sql, batched).await?;
            }
            for chunk in outcome.held_put.chunks(CHUNK) {
                sql.push(
                    "INSERT INTO held (team, fingerprint, kind, due_at, suppression_id, id, source, received_at, event, trace_id) ",
                );
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
                end(&mut tx, &mut sql, batched).await?;
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
                end(&mut tx, &mut sql, batched).await?;
            }
            for chunk in outcome.members.chunks(CHUNK) {
                sql.push(
                    "INSERT INTO incident_alerts (incident_id, team, fingerprint, monitor, labels, status, priority, \
                     joined_at, updated_at, last_event) ",
                );
                sql.push_values(chunk, |mut v, m| {
                    v.push_bind(m.incident_id.clone())
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
                    " ON CONFLICT (incident_id, team, fingerprint) DO UPDATE SET status = excluded.status, \
                     priority = excluded.priority, updated_at = excluded.updated_at, last_event = excluded.last_event",
                );
                end(&mut tx, &mut sql, batched).await?;
            }
            for chunk in outcome.timeline.chunks(CHUNK) {
                sql.push("INSERT INTO incident_timeline (incident_id, at, kind, detail) ");
                sql.push_values(chunk, |mut v, t| {
                    v.push_bind(t.incident_id.clone()).push_bind(t.at).push_bind(t.kind).push_bind(t.detail.clone());
                });
                end(&mut tx, &mut sql, batched).await?;
            }
            // The duty to tell someone commits with the change that calls for it.
            for chunk in outcome.notices.chunks(CHUNK) {
                sql.push("INSERT INTO notices (id, incident_id, team, action, at) ");
                sql.push_values(chunk, |mut v, n| {
                    v.push_bind(n.id.clone())
                        .push_bind(n.incident_id.clone())
                        .push_bind(n.team.clone())
                        .push_bind(n.action.as_str())
                        .push_bind(n.at);
                });
                end(&mut tx, &mut sql, batched).await?;
            }
            if !outcome.drops.is_empty() {
                sql.push("INSERT INTO drops (team, reason, count) ");
                sql.push_values(&outcome.drops, |mut v, (team, reason, n)| {
                    v.push_bind(team.clone()).push_bind(reason.clone()).push_bind(*n);
                });
                sql.push(" ON CONFLICT (team, reason) DO UPDATE SET count = drops.count + excluded.count");
                end(&mut tx, &mut sql, batched).await?;
            }
            finish(&mut tx, &mut sql).await?;
            tx.commit().await?;
            Ok(())
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

        async fn bump_config(tx: &mut sqlx::Transaction<'_, $db>) -> Result<(), StoreError> {
            sqlx::query("UPDATE progress SET seq = seq + 1 WHERE stage = 'config'")
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Creates or replaces a service.
        pub async fn put_service(pool: &Pool, service: &Service, now: i64) -> Result<(), StoreError> {
            let spec = serde_json::to_string(&service.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO services (name, team, spec, updated_at, updated_by) ");
            sql.push_values(std::iter::once(service), |mut v, s| {
                v.push_bind(s.name.clone())
                    .push_bind(s.spec.team.clone().unwrap_or_default())
                    .push_bind(spec.clone())
                    .push_bind(now)
                    .push_bind(s.updated_by.clone());
            });
            sql.push(
                " ON CONFLICT (name) DO UPDATE SET team = excluded.team, spec = excluded.spec, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            );
            sql.build().execute(&mut *tx).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Services in name order, one team's or all.
        pub async fn services(pool: &Pool, team: Option<&str>) -> Result<Vec<Service>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT name, team, spec, updated_at, updated_by FROM services");
            if let Some(team) = team {
                sql.push(" WHERE team = ").push_bind(team.to_owned());
            }
            sql.push(" ORDER BY name");
            sql.build().fetch_all(pool).await?.iter().map(service_row).collect()
        }

        /// One service.
        pub async fn service(pool: &Pool, name: &str) -> Result<Option<Service>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT name, team, spec, updated_at, updated_by FROM services WHERE name = ");
            sql.push_bind(name.to_owned());
            sql.build().fetch_optional(pool).await?.as_ref().map(service_row).transpose()
        }

        fn service_row(row: &<$db as sqlx::Database>::Row) -> Result<Service, StoreError> {
            let name: String = row.try_get("name")?;
            let spec: String = row.try_get("spec")?;
            let mut spec: ServiceSpec = serde_json::from_str(&spec)
                .map_err(|e| StoreError::Corrupt(format!("service {name}: {e}")))?;
            spec.team = Some(row.try_get("team")?);
            Ok(Service {
                name,
                spec,
                updated_at: time(row.try_get("updated_at")?)?,
                updated_by: row.try_get("updated_by")?,
            })
        }

        /// Stores a new suppression and its `created` audit entry.
        pub async fn create_suppression(pool: &Pool, record: &SuppressionRecord, now: i64) -> Result<(), StoreError> {
            let draft = &record.draft;
            let metadata = serde_json::to_string(&draft.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let targets = serde_json::to_string(&draft.targets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO suppressions (id, team, description, start_time, end_time, metadata, targets, \
                 created_at, created_by, forced) ",
            );
            sql.push_values(std::iter::once(record), |mut v, r| {
                v.push_bind(r.id.clone())
                    .push_bind(r.team.clone())
                    .push_bind(draft.description.clone())
                    .push_bind(super::super::millis(draft.start_time))
                    .push_bind(super::super::millis(draft.end_time))
                    .push_bind(metadata.clone())
                    .push_bind(targets.clone())
                    .push_bind(now)
                    .push_bind(r.created_by.clone())
                    .push_bind(r.forced);
            });
            sql.build().execute(&mut *tx).await?;
            let detail = serde_json::json!({ "suppression": draft, "forced": record.forced }).to_string();
            audit(&mut tx, &record.id, now, &record.created_by, "created", &detail).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn audit(tx: &mut sqlx::Transaction<'_, $db>, id: &str, at: i64, actor: &str, action: &str, detail: &str) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO suppression_audit (suppression_id, at, actor, action, detail) ");
            sql.push_values(std::iter::once(()), |mut v, ()| {
                v.push_bind(id.to_owned())
                    .push_bind(at)
                    .push_bind(actor.to_owned())
                    .push_bind(action.to_owned())
                    .push_bind(detail.to_owned());
            });
            sql.build().execute(&mut **tx).await?;
            Ok(())
        }

        /// Changes a suppression's start and end and audits the change as `action`.
        #[allow(clippy::too_many_arguments)]
        pub async fn retime_suppression(pool: &Pool, id: &str, start: i64, end: i64, actor: &str, action: &str, detail: &str, now: i64) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new("UPDATE suppressions SET start_time = ");
            sql.push_bind(start).push(", end_time = ").push_bind(end).push(" WHERE id = ").push_bind(id.to_owned());
            sql.build().execute(&mut *tx).await?;
            audit(&mut tx, id, now, actor, action, detail).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Suppressions, newest first: all, or those a team may see: its own, and those of
        /// no team (an admin's, for every team) that stopped or hold one of its events.
        pub async fn suppressions(pool: &Pool, id: Option<&str>, team: Option<&str>, now: i64) -> Result<Vec<SuppressionRecord>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT id, team, description, start_time, end_time, metadata, targets, created_at, created_by, forced \
                 FROM suppressions s WHERE 1 = 1",
            );
            if let Some(id) = id {
                sql.push(" AND id = ").push_bind(id.to_owned());
            }
            if let Some(team) = team {
                sql.push(" AND (team = ").push_bind(team.to_owned())
                    .push(" OR (team IS NULL AND (EXISTS (SELECT 1 FROM history h WHERE h.suppression_id = s.id AND h.team = ")
                    .push_bind(team.to_owned())
                    .push(") OR EXISTS (SELECT 1 FROM held d WHERE d.suppression_id = s.id AND d.team = ")
                    .push_bind(team.to_owned())
                    .push("))))");
            }
            sql.push(" ORDER BY created_at DESC, id DESC");
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let id: String = row.try_get("id")?;
                    let start: i64 = row.try_get("start_time")?;
                    let end: i64 = row.try_get("end_time")?;
                    let metadata: String = row.try_get("metadata")?;
                    let targets: String = row.try_get("targets")?;
                    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("suppression {id}: {e}"));
                    Ok(SuppressionRecord {
                        team: row.try_get("team")?,
                        draft: Draft {
                            description: row.try_get("description")?,
                            start_time: time(start)?,
                            end_time: time(end)?,
                            metadata: serde_json::from_str(&metadata).map_err(corrupt)?,
                            targets: serde_json::from_str(&targets).map_err(corrupt)?,
                        },
                        state: suppression_state(start, end, now),
                        created_at: time(row.try_get("created_at")?)?,
                        created_by: row.try_get("created_by")?,
                        forced: row.try_get("forced")?,
                        id,
                    })
                })
                .collect()
        }

        /// A suppression's audit trail, oldest first.
        pub async fn audit_trail(pool: &Pool, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT at, actor, action, detail FROM suppression_audit WHERE suppression_id = ");
            sql.push_bind(id.to_owned()).push(" ORDER BY at");
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let detail: String = row.try_get("detail")?;
                    Ok(AuditEntry {
                        at: time(row.try_get("at")?)?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        detail: json(&detail),
                    })
                })
                .collect()
        }

        /// History, oldest first, after the cursor.
        pub async fn history(pool: &Pool, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT id, team, fingerprint, source, received_at, processed_at, monitor, status, labels, outcome, \
                 reason, suppression_id, incident_id, priority, event, trace_id FROM history WHERE 1 = 1",
            );
            if let Some(team) = &query.team {
                sql.push(" AND team = ").push_bind(team.clone());
            }
            if let Some(id) = &query.suppression_id {
                sql.push(" AND suppression_id = ").push_bind(id.clone());
            }
            if let Some(outcome) = &query.outcome {
                sql.push(" AND outcome = ").push_bind(outcome.clone());
            }
            if let Some(fingerprint) = &query.fingerprint {
                sql.push(" AND fingerprint = ").push_bind(fingerprint.clone());
            }
            if let Some((at, id)) = &query.after {
                sql.push(" AND (processed_at > ").push_bind(*at).push(" OR (processed_at = ").push_bind(*at)
                    .push(" AND id > ").push_bind(id.clone()).push("))");
            }
            sql.push(" ORDER BY processed_at, id LIMIT ").push_bind(i64::from(query.limit));
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let labels: String = row.try_get("labels")?;
                    let event: String = row.try_get("event")?;
                    let priority_text: Option<String> = row.try_get("priority")?;
                    Ok(HistoryEntry {
                        event: json(&event),
                        id: row.try_get("id")?,
                        team: row.try_get("team")?,
                        fingerprint: row.try_get("fingerprint")?,
                        source: row.try_get("source")?,
                        received_at: time(row.try_get("received_at")?)?,
                        processed_at: time(row.try_get("processed_at")?)?,
                        monitor: row.try_get("monitor")?,
                        status: status(row.try_get("status")?)?,
                        labels: json(&labels),
                        outcome: row.try_get("outcome")?,
                        reason: row.try_get("reason")?,
                        suppression_id: row.try_get("suppression_id")?,
                        incident_id: row.try_get("incident_id")?,
                        priority: priority_text.as_deref().map(priority).transpose()?,
                        trace_id: row.try_get("trace_id")?,
                    })
                })
                .collect()
        }

        fn summary(row: &<$db as sqlx::Database>::Row) -> Result<IncidentSummary, StoreError> {
            summary_of(incident_row(row)?)
        }

        /// Incidents, newest first.
        pub async fn incidents(pool: &Pool, query: &IncidentQuery) -> Result<Vec<IncidentSummary>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT * FROM incidents WHERE 1 = 1");
            if let Some(team) = &query.team {
                sql.push(" AND team = ").push_bind(team.clone());
            }
            if let Some(state) = query.state {
                sql.push(" AND state = ").push_bind(state.as_str());
            }
            if let Some(service) = &query.service {
                sql.push(" AND service = ").push_bind(service.clone());
            }
            if let Some(key) = &query.key {
                sql.push(" AND key = ").push_bind(key.clone());
            }
            if let Some(before) = &query.before {
                sql.push(" AND id < ").push_bind(before.clone());
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
            sql.build().fetch_all(pool).await?.iter().map(summary).collect()
        }

        /// One incident with its alerts and timeline. The three reads go at once, each
        /// on a connection of its own: this is on the way from an event to its page.
        pub async fn incident(pool: &Pool, id: &str, team: Option<&str>) -> Result<Option<IncidentDetail>, StoreError> {
            let head = async {
                let mut sql = QueryBuilder::<$db>::new("SELECT * FROM incidents WHERE id = ");
                sql.push_bind(id.to_owned());
                if let Some(team) = team {
                    sql.push(" AND team = ").push_bind(team.to_owned());
                }
                sql.build().fetch_optional(pool).await
            };
            let members = async {
                let mut sql = QueryBuilder::<$db>::new(
                    // The latest event's message (the check's output, a monitor's link) comes
                    // from the history, found through the per-alert index.
                    "SELECT m.fingerprint, m.monitor, m.labels, m.status, m.priority, m.joined_at, m.updated_at, \
                     m.last_event, h.event FROM incident_alerts m LEFT JOIN history h \
                     ON h.team = m.team AND h.fingerprint = m.fingerprint AND h.id = m.last_event \
                     WHERE m.incident_id = ",
                );
                sql.push_bind(id.to_owned()).push(" ORDER BY m.joined_at, m.fingerprint");
                sql.build().fetch_all(pool).await
            };
            let entries = async {
                let mut sql = QueryBuilder::<$db>::new("SELECT at, kind, detail FROM incident_timeline WHERE incident_id = ");
                sql.push_bind(id.to_owned()).push(" ORDER BY at");
                sql.build().fetch_all(pool).await
            };
            let (row, members, entries) = tokio::try_join!(head, members, entries)?;
            let Some(row) = row else { return Ok(None) };
            let incident = summary(&row)?;
            let mut alert_list = Vec::with_capacity(members.len());
            for row in members {
                let labels: String = row.try_get("labels")?;
                let event: Option<String> = row.try_get("event")?;
                alert_list.push(alert_of(
                    row.try_get("fingerprint")?,
                    row.try_get("monitor")?,
                    &labels,
                    status(row.try_get("status")?)?,
                    priority(row.try_get("priority")?)?,
                    (row.try_get("joined_at")?, row.try_get("updated_at")?),
                    row.try_get("last_event")?,
                    event.as_deref(),
                )?);
            }
            let mut timeline = Vec::with_capacity(entries.len());
            for row in entries {
                timeline.push(TimelineEntry {
                    at: time(row.try_get("at")?)?,
                    kind: row.try_get("kind")?,
                    detail: row.try_get("detail")?,
                });
            }
            // Team-scoped reads check the team on the incident row; the alerts and
            // timeline of another team's incident were read but are not returned.
            Ok(Some(IncidentDetail { incident, alert_list, timeline, context: Vec::new() }))
        }

        /// Acknowledges or closes an incident the pipeline no longer holds (resolved):
        /// `Ok(false)` when there is no such resolved incident.
        pub async fn finished_incident(pool: &Pool, id: &str, team: Option<&str>, close: bool, who: &str, now: i64) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new(if close {
                "UPDATE incidents SET state = 'closed', closed_at = "
            } else {
                "UPDATE incidents SET acked_at = "
            });
            sql.push_bind(now);
            sql.push(if close { ", closed_by = " } else { ", acked_by = " }).push_bind(who.to_owned());
            sql.push(", updated_at = ").push_bind(now).push(" WHERE state = 'resolved' AND id = ").push_bind(id.to_owned());
            if !close {
                sql.push(" AND acked_at IS NULL");
            }
            if let Some(team) = team {
                sql.push(" AND team = ").push_bind(team.to_owned());
            }
            let changed = sql.build().execute(&mut *tx).await?.rows_affected() == 1;
            if changed {
                let mut sql = QueryBuilder::<$db>::new("INSERT INTO incident_timeline (incident_id, at, kind, detail) ");
                sql.push_values(std::iter::once(()), |mut v, ()| {
                    v.push_bind(id.to_owned())
                        .push_bind(now)
                        .push_bind(if close { "closed" } else { "acked" })
                        .push_bind(format!("{} by {who}", if close { "closed" } else { "acknowledged" }));
                });
                sql.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(changed)
        }

        /// Events stopped so far, by reason: one team's, or every team's summed.
        pub async fn drops(pool: &Pool, team: Option<&str>) -> Result<HashMap<String, i64>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT reason, CAST(SUM(count) AS BIGINT) AS count FROM drops");
            if let Some(team) = team {
                sql.push(" WHERE team = ").push_bind(team.to_owned());
            }
            sql.push(" GROUP BY reason");
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok((row.try_get("reason")?, row.try_get("count")?)))
                .collect()
        }
    };
}

/// The functions for SQLite.
pub(super) mod sqlite {
    backend!(sqlx::Sqlite, "", "", true);
}

/// The functions for PostgreSQL.
pub(super) mod postgres {
    backend!(sqlx::Postgres, "::jsonb", "::text", false);
}
