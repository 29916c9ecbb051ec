//! Incidents and the event history as the API and the notifiers read them, and the acks
//! and closes of incidents the pipeline no longer holds: written once for both backends,
//! as in [`crate::pipeline`].

use std::collections::HashMap;

use tocsin_model::event::{Priority, Status};
use tocsin_model::rows::{IncidentRow, Outcome, TimelineKind};
use tocsin_model::views::{
    HistoryEntry, HistoryQuery, IncidentAlert, IncidentDetail, IncidentQuery, IncidentSummary,
    TimelineEntry,
};

use crate::decode::{history_outcome, json, priority, state, status, time, timeline_kind};
use crate::error::StoreError;

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
            kind: entry.kind,
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

macro_rules! backend {
    ($db:ty, $jsonb:literal, $text:literal, $batched:literal, $backend:ident) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        pub(crate) fn incident_row(row: &<$db as sqlx::Database>::Row) -> Result<IncidentRow, StoreError> {
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
                sql.push(" AND outcome = ").push_bind(outcome.as_str());
            }
            if let Some(fingerprint) = &query.fingerprint {
                // A tracked alert's rows by its id (`history_by_alert`), and the rows
                // recorded before it was tracked by the fingerprint (`history_untracked`).
                sql.push(" AND (alert IN (");
                crate::alerts::$backend::ids_by_key(&mut sql, fingerprint, query.team.as_deref());
                sql.push(") OR (alert IS NULL AND fingerprint = ").push_bind(fingerprint.clone()).push("))");
            }
            if let Some((at, id)) = &query.after {
                sql.push(" AND (processed_at, id) > (").push_bind(*at).push(", ")
                    .push_bind(id.clone()).push(")");
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
                        outcome: history_outcome(row.try_get("outcome")?)?,
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
            if let Some(priority) = query.priority {
                sql.push(" AND priority = ").push_bind(priority.as_str());
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
                     ON h.alert = m.alert AND h.id = m.last_event \
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
                    kind: timeline_kind(row.try_get("kind")?)?,
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
                        .push_bind(if close { TimelineKind::Closed } else { TimelineKind::Acked }.as_str())
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
pub(crate) mod sqlite {
    backend!(sqlx::Sqlite, "", "", true, sqlite);
}

/// The functions for PostgreSQL.
pub(crate) mod postgres {
    backend!(sqlx::Postgres, "::jsonb", "::text", false, postgres);
}
