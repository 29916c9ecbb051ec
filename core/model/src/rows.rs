//! The rows passed between stages: what the journal hands the pipeline, what the
//! pipeline hands the store in one transaction per batch ([`Outcome`]), and what it
//! loads to resume ([`Snapshot`], [`Rules`]). Plain data, one field per column.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalogue::Service;
use crate::event::{Event, Priority, Status};
use crate::notice::StoredRoute;
use crate::suppression::Matcher;

/// One journal row, as the pipeline reads it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Journal position.
    pub seq: i64,
    /// Event id.
    pub id: String,
    /// Owning team.
    pub team: String,
    /// Alert identity (hex).
    pub fingerprint: String,
    /// Where it came from.
    pub source: String,
    /// Receipt time, unix ms.
    pub received_at: i64,
    /// The check's name.
    pub monitor: String,
    /// Reported status.
    pub status: Status,
    /// Context labels as JSON.
    pub labels: String,
    /// `alert.since` as sent, unix ms.
    pub reported_since: Option<i64>,
    /// `alert.count` as sent.
    pub reported_count: Option<i64>,
    /// The event as JSON.
    pub event: String,
    /// The W3C trace id of the request that brought it.
    pub trace_id: Option<String>,
}

/// Why an alert's reported status has not reached grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Waiting for its `ignore-flap` min-age.
    IgnoreFlap,
    /// Flapping: changes are counted, not passed on.
    Flapping,
    /// Under a suppression.
    Suppressed,
    /// From a retired instance.
    Retired,
    /// Dropped by a team's filter plugin.
    Plugin,
}

impl Hold {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IgnoreFlap => "ignore-flap",
            Self::Flapping => "flapping",
            Self::Suppressed => "suppressed",
            Self::Retired => "retired-host",
            Self::Plugin => "plugin",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ignore-flap" => Self::IgnoreFlap,
            "flapping" => Self::Flapping,
            "suppressed" => Self::Suppressed,
            "retired-host" => Self::Retired,
            "plugin" => Self::Plugin,
            _ => return None,
        })
    }
}

/// What became of an event, as its history row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryOutcome {
    /// It reached grouping.
    Passed,
    /// A pre-filter stopped it (the reason says which).
    Dropped,
    /// It waits: an `ignore-flap` hold, or its alert is flapping.
    Held,
    /// A suppression stopped it.
    Suppressed,
}

impl HistoryOutcome {
    /// Every outcome, in the order the docs list them.
    pub const ALL: [Self; 4] = [Self::Passed, Self::Dropped, Self::Held, Self::Suppressed];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Dropped => "dropped",
            Self::Held => "held",
            Self::Suppressed => "suppressed",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl PartialEq<&str> for HistoryOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for HistoryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an incident's timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TimelineKind {
    /// The incident opened with its first alert.
    Opened,
    /// Another alert joined it.
    AlertJoined,
    /// One of its alerts recovered.
    AlertHealthy,
    /// One of its alerts failed again.
    AlertUnhealthy,
    /// Every alert is healthy: it resolves after the grace period.
    Resolving,
    /// An alert re-triggered within the grace period.
    Reopened,
    /// It resolved by itself.
    Resolved,
    /// Its grouping window ended: later alerts of its key open a new incident.
    WindowExpired,
    /// Someone acknowledged it.
    Acked,
    /// Someone closed it.
    Closed,
}

impl TimelineKind {
    /// Every kind.
    pub const ALL: [Self; 10] = [
        Self::Opened,
        Self::AlertJoined,
        Self::AlertHealthy,
        Self::AlertUnhealthy,
        Self::Resolving,
        Self::Reopened,
        Self::Resolved,
        Self::WindowExpired,
        Self::Acked,
        Self::Closed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::AlertJoined => "alert-joined",
            Self::AlertHealthy => "alert-healthy",
            Self::AlertUnhealthy => "alert-unhealthy",
            Self::Resolving => "resolving",
            Self::Reopened => "reopened",
            Self::Resolved => "resolved",
            Self::WindowExpired => "window-expired",
            Self::Acked => "acked",
            Self::Closed => "closed",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl PartialEq<&str> for TimelineKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// At least one alert is unhealthy.
    Open,
    /// Every alert is healthy; it resolves after the grace period unless one re-triggers.
    Resolving,
    /// Resolved by itself.
    Resolved,
    /// Closed by a human: final.
    Closed,
}

impl IncidentState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolving => "resolving",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "open" => Self::Open,
            "resolving" => Self::Resolving,
            "resolved" => Self::Resolved,
            "closed" => Self::Closed,
            _ => return None,
        })
    }
}

/// An alert's row in the `alerts` table.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// The alert's id, which the pipeline gives in the order it first tracks alerts.
    pub id: i64,
    /// Not in the table yet: inserted, where a tracked alert's row is updated.
    pub new: bool,
    pub team: String,
    pub fingerprint: String,
    pub monitor: String,
    pub labels: String,
    pub status: Status,
    pub passed: Status,
    pub hold: Option<Hold>,
    pub since: i64,
    pub count: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub reported_since: Option<i64>,
    pub reported_count: Option<i64>,
    pub last_event: String,
    pub transitions: String,
}

/// What a steady repeat changes in its alert's row.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct AlertRefresh {
    /// The alert's id ([`AlertRow::id`]): the row is updated by it.
    pub id: i64,
    pub since: i64,
    pub count: i64,
    pub last_seen: i64,
    pub reported_since: Option<i64>,
    pub reported_count: Option<i64>,
    pub last_event: String,
}

/// An event kept in the history, with what happened to it.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub id: String,
    /// The id of its alert ([`AlertRow::id`]); `None` when the identity was not tracked
    /// (dropped before it ever passed).
    pub alert: Option<i64>,
    pub team: String,
    pub fingerprint: String,
    pub source: String,
    pub received_at: i64,
    pub processed_at: i64,
    pub monitor: String,
    pub status: Status,
    pub labels: String,
    pub outcome: HistoryOutcome,
    pub reason: String,
    pub suppression_id: Option<String>,
    pub incident_id: Option<String>,
    pub priority: Option<Priority>,
    pub event: String,
    pub trace_id: Option<String>,
}

/// An event held back, as stored.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct HeldRow {
    pub team: String,
    pub fingerprint: String,
    pub kind: Hold,
    pub due_at: Option<i64>,
    pub suppression_id: Option<String>,
    pub id: String,
    pub source: String,
    pub received_at: i64,
    pub event: String,
    pub trace_id: Option<String>,
}

/// An incident's row.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: String,
    pub team: String,
    pub key: String,
    pub open_key: Option<String>,
    pub state: IncidentState,
    pub priority: Priority,
    pub title: String,
    pub service: Option<String>,
    pub region: Option<String>,
    pub window_ms: i64,
    pub alerts: i64,
    pub unhealthy: i64,
    pub opened_at: i64,
    pub updated_at: i64,
    pub last_alert_at: i64,
    pub resolve_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    /// The trace id of the event that opened it.
    pub trace_id: Option<String>,
}

/// One alert of an incident.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct MemberRow {
    pub incident_id: String,
    /// The id of its alert ([`AlertRow::id`]).
    pub alert: i64,
    pub team: String,
    pub fingerprint: String,
    pub monitor: String,
    pub labels: String,
    pub status: Status,
    pub priority: Priority,
    pub joined_at: i64,
    pub updated_at: i64,
    pub last_event: String,
}

/// One entry of an incident's timeline.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub incident_id: String,
    pub at: i64,
    pub kind: TimelineKind,
    pub detail: String,
}

/// A duty to tell people about an incident, written with the change that caused it.
#[allow(missing_docs)] // One field per column of migration 0004.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: String,
    pub incident_id: String,
    pub team: String,
    pub action: crate::notice::Action,
    pub at: i64,
}

/// Everything one batch changes, written by the store in one transaction.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The journal rows up to here are processed.
    pub journal_to: Option<i64>,
    /// The journal rows up to here leave the journal. Processed rows are deleted a few
    /// thousand at a time: a delete per batch rewrote the journal's pages once more on
    /// every commit.
    pub journal_delete_to: Option<i64>,
    pub alerts: Vec<AlertRow>,
    /// Alerts that only saw steady repeats: only these columns change.
    pub refreshed: Vec<AlertRefresh>,
    pub history: Vec<HistoryRow>,
    pub held_put: Vec<HeldRow>,
    pub held_delete: Vec<(String, String)>,
    /// Incidents that stopped taking alerts come first (their key frees up before a new
    /// incident takes it).
    pub incidents: Vec<IncidentRow>,
    pub members: Vec<MemberRow>,
    pub timeline: Vec<TimelineRow>,
    /// Events stopped, by (team, reason).
    pub drops: Vec<(String, String, i64)>,
    /// Incidents to tell people about (the outbox delivers them).
    pub notices: Vec<NoticeRow>,
}

impl Outcome {
    /// Whether the batch only moved the cursor and counted dropped events (steady
    /// repeats, nothing else to write): such a batch need not be committed on its own,
    /// its cursor and counts can go with the next commit. A crash in between replays its
    /// events onto state that never counted them.
    pub fn moves_only_cursor(&self) -> bool {
        self.journal_to.is_some() && self.journal_delete_to.is_none() && self.writes_no_rows()
    }

    /// Whether the batch changed nothing at all.
    pub fn is_empty(&self) -> bool {
        self.journal_to.is_none() && self.journal_delete_to.is_none() && self.writes_no_rows()
    }

    /// Whether no table but the journal's cursor (and drop counters) changes.
    fn writes_no_rows(&self) -> bool {
        self.alerts.is_empty()
            && self.refreshed.is_empty()
            && self.history.is_empty()
            && self.held_put.is_empty()
            && self.held_delete.is_empty()
            && self.incidents.is_empty()
            && self.members.is_empty()
            && self.timeline.is_empty()
            && self.notices.is_empty()
    }
}

/// An alert's state as loaded at start.
#[allow(missing_docs)] // One field per column of migrations 0002 and 0017.
#[derive(Debug, Clone)]
pub struct TrackedRow {
    /// The alert's id: the order in which the pipeline first tracked it.
    pub id: i64,
    pub team: String,
    pub fingerprint: String,
    pub status: Status,
    pub passed: Status,
    pub hold: Option<Hold>,
    pub since: i64,
    pub count: i64,
    pub transitions: String,
}

/// What the engine needs from the store to resume.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Journal rows up to here are processed.
    pub cursor: i64,
    /// The pipeline's commit counter.
    pub generation: i64,
    pub held: Vec<HeldRow>,
    /// Incidents still open or resolving.
    pub incidents: Vec<IncidentRow>,
    /// Their alerts: (incident id, team, fingerprints), in no order.
    pub members: Vec<(String, String, Vec<String>)>,
}

/// A stored suppression the pipeline matches events against.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Clone)]
pub struct ActiveSuppression {
    pub id: String,
    /// The team whose alerts it may stop; `None` for an admin's suppression of every
    /// team's.
    pub team: Option<String>,
    pub start: i64,
    pub end: i64,
    pub matcher: Matcher,
}

impl ActiveSuppression {
    /// Whether it stops `event` of `team` at `at`: a team's suppression never stops
    /// another team's alerts, however its targets read.
    pub fn stops(&self, team: &str, event: &Event, at: i64) -> bool {
        self.start <= at
            && at < self.end
            && self.team.as_deref().is_none_or(|own| own == team)
            && self.matcher.matches(&event.alert.monitor, &event.context)
    }
}

/// The catalogue, suppressions and routes, reloaded whenever one changes.
#[allow(missing_docs)] // One field per column of migration 0002.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// The `config` counter they were read at.
    pub version: i64,
    pub services: HashMap<String, Arc<Service>>,
    pub suppressions: Vec<ActiveSuppression>,
    /// The routes set through the API, of every team: new incidents are handed to the
    /// outbox with them.
    pub routes: Arc<Vec<StoredRoute>>,
}

impl Rules {
    /// The catalogue entry for service `name` as it applies to `team`'s events: only the
    /// entry's owner gets its retired hosts, priority lowering and defaults, so a name
    /// another team took cannot steer this team's alerts.
    pub fn service_for(&self, team: &str, name: &str) -> Option<&Arc<Service>> {
        self.services
            .get(name)
            .filter(|service| service.spec.team.as_deref() == Some(team))
    }
}

/// A new incident's notice handed to the outbox in memory, with what it is rendered from
/// as the pipeline committed it: the outbox need not read any of it back.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The notice (in the database too).
    pub notice: NoticeRow,
    /// The committed batch that opened the incident.
    pub batch: Arc<Outcome>,
    /// The incident's service, as the batch saw it.
    pub service: Option<Arc<Service>>,
    /// The routes set through the API, as the batch saw them.
    pub routes: Arc<Vec<StoredRoute>>,
}

/// Something a human asks of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Acknowledge it: someone is on it.
    Ack,
    /// Close it, for good.
    Close,
}

impl Command {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Close => "close",
        }
    }

    /// The command of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ack" => Some(Self::Ack),
            "close" => Some(Self::Close),
            _ => None,
        }
    }
}

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Done (or there was nothing to change: acknowledged twice, already finished).
    Applied,
    /// No such incident for the command's team.
    NotFound,
    /// A close of an incident already closed.
    Closed,
}

impl CommandOutcome {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::NotFound => "not-found",
            Self::Closed => "closed",
        }
    }

    /// The outcome of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "applied" => Some(Self::Applied),
            "not-found" => Some(Self::NotFound),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// An incident command waiting for the pipeline, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// Its id (UUIDv7).
    pub id: String,
    /// The incident it is about.
    pub incident_id: String,
    /// The team whose incident it must be; `None` for an admin's.
    pub team: Option<String>,
    /// What is asked.
    pub command: Command,
    /// The token id of whoever asked.
    pub who: String,
    /// When it was asked, unix ms.
    pub requested_at: i64,
}

/// Why an incident command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    /// No incident has this id (for this caller).
    #[error("no incident with id {0}")]
    NotFound(String),
    /// It is closed already; closing is final.
    #[error("incident {0} is closed; later events open a new incident")]
    Closed(String),
}
