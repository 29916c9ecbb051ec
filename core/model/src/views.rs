//! What the API shows of the pipeline's tables: history, incidents, suppressions and
//! their audit trail, with times as RFC 3339 and labels as objects.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::event::{Priority, Status};
use crate::rows::{HistoryOutcome, IncidentState, TimelineKind};
use crate::suppression::Draft;

/// An event the pipeline kept, with what happened to it and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The event's id (as returned by `POST /v1/events`).
    pub id: String,
    /// Owning team.
    pub team: String,
    /// Alert identity.
    pub fingerprint: String,
    /// Where it came from (`api`, `tocsin` for alerts Tocsin raised itself).
    pub source: String,
    /// When Tocsin received it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// When the pipeline decided.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub processed_at: OffsetDateTime,
    /// The check.
    pub monitor: String,
    /// Its status.
    pub status: Status,
    /// Its labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    /// What became of it.
    pub outcome: HistoryOutcome,
    /// Why, such as `state-unchanged`, `retired-host: …`, `suppressed: <id>`.
    pub reason: String,
    /// The suppression that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression_id: Option<String>,
    /// The event as it was received (after its adapter or transformer plugin): its
    /// message, `since`, `count` and settings.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// The incident it went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Its priority after the dynamic pre-filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The W3C trace id of the request that brought it (none for Tocsin's own events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Which history to list.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this team's (admins: `None` for all).
    pub team: Option<String>,
    /// Only events this suppression stopped.
    pub suppression_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<HistoryOutcome>,
    /// Only this alert.
    pub fingerprint: Option<String>,
    /// Events processed after this one (the `next` cursor).
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: u32,
}

/// An incident, without its alerts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentSummary {
    /// Its id (also the dedup key of its notifications).
    pub id: String,
    /// The W3C trace id of the request whose event opened it: the same id is on that
    /// event in the history, in Tocsin's logs and in every notification about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Owning team.
    pub team: String,
    /// The grouping key its alerts share.
    pub key: String,
    /// `open`, `resolving`, `resolved` or `closed`.
    pub state: IncidentState,
    /// Whether it still takes new alerts of its key.
    pub accepting: bool,
    /// The highest priority of its alerts.
    pub priority: Priority,
    /// Monitor, service and region of the alert that opened it.
    pub title: String,
    /// Its service, if the first alert had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Its region, if the first alert had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Alerts in it.
    pub alerts: i64,
    /// Of which unhealthy now.
    pub unhealthy: i64,
    /// When it opened.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When it resolves unless an alert re-triggers (state `resolving`).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolves_at: Option<OffsetDateTime>,
    /// When it resolved.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<OffsetDateTime>,
    /// When it was acknowledged, and by whom.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acked_at: Option<OffsetDateTime>,
    /// Token id that acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    /// When it was closed, and by whom.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<OffsetDateTime>,
    /// Token id that closed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// One alert of an incident.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentAlert {
    /// Alert identity.
    pub fingerprint: String,
    /// The check.
    pub monitor: String,
    /// Its labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    /// Its status as the incident knows it.
    pub status: Status,
    /// Its priority.
    pub priority: Priority,
    /// When it joined.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// The id of its latest event.
    pub last_event: String,
    /// Its latest event's message: the check's output, a monitor's link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Slack channel its latest event asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The ticket queue its latest event asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_queue: Option<String>,
    /// Its latest event as received (for collectors; not shown).
    #[serde(skip)]
    pub event: Option<crate::event::Event>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: TimelineKind,
    /// What happened, for a human.
    pub detail: String,
}

/// An incident with its alerts and timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: IncidentSummary,
    /// Its alerts, in the order they joined.
    #[serde(rename = "alert_list")]
    pub alert_list: Vec<IncidentAlert>,
    /// What happened, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Context its collectors gathered (runbook, logs, cluster health, …), with the
    /// failures of those that failed.
    pub context: Vec<ContextSection>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    /// Only this team's (admins: `None` for all).
    pub team: Option<String>,
    /// Only in this state.
    pub state: Option<IncidentState>,
    /// Only of this service.
    pub service: Option<String>,
    /// Only of this priority.
    pub priority: Option<Priority>,
    /// Only with this grouping key.
    pub key: Option<String>,
    /// Opened before this one (the `next` cursor: newest first).
    pub before: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// A stored suppression.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuppressionRecord {
    /// Its id.
    pub id: String,
    /// The team that owns it (none when an admin made it for everyone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The suppression as written.
    #[serde(flatten)]
    pub draft: Draft,
    /// `scheduled`, `active` or `ended`, at the time of the answer.
    pub state: &'static str,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Token id of its creator.
    pub created_by: String,
    /// Whether an admin forced it past the share guard.
    pub forced: bool,
}

/// One change to a suppression.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Token id that made it.
    pub actor: String,
    /// `created`, `edited` or `ended`.
    pub action: String,
    /// What changed.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// One section of an incident's context, or why its collector failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextSection {
    /// Heading.
    pub title: String,
    /// CommonMark body (empty when the collector failed).
    pub markdown: String,
    /// Why the collector failed; empty when it worked.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// When it was collected, Unix ms.
    pub collected_at: i64,
}
