//! What the pipeline tells the outbox: why a notification is sent ([`Action`]), where
//! an incident's notifications go ([`Route`], [`StoredRoute`]), and where each delivery
//! stands ([`DeliveryState`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not sent yet: due at its `due_at`, or being attempted.
    Pending,
    /// The notifier accepted it.
    Sent,
    /// It failed for good (a permanent error, or out of attempts); an operator may retry it.
    Dead,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => Self::Pending,
            "sent" => Self::Sent,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new incident: page (at `high`), open a ticket, post to Slack.
    Open,
    /// It changed: edit the Slack message, comment on the ticket; never a second page.
    Update,
    /// It resolved or was closed: resolve the page, comment on (and close) the ticket.
    Resolve,
}

impl Action {
    /// The name stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Update => "update",
            Self::Resolve => "resolve",
        }
    }
}

/// Which notifiers the incidents of a team (and service) go to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Only this team's incidents (default: every team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Only this service's incidents (default: every service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The PagerDuty notifier paged at `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// The Jira or GitHub notifier that gets a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The Slack notifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// Webhooks told about everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<String>,
}

/// A route set through the API: which configured notifiers a team's incidents (of one
/// service, or of all) go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredRoute {
    /// The team whose incidents it routes.
    pub team: String,
    /// Only this service's incidents; `None`: all of the team's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The PagerDuty notifier paged at `high`.
    pub page: Option<String>,
    /// The Jira or GitHub notifier that gets a ticket.
    pub ticket: Option<String>,
    /// The Slack notifier.
    pub chat: Option<String>,
    /// Webhooks told about everything.
    pub webhooks: Vec<String>,
    /// When it was last set, Unix ms.
    pub updated_at: i64,
    /// The token that set it.
    pub updated_by: String,
}

impl StoredRoute {
    /// As the outbox matches it.
    pub fn route(&self) -> Route {
        Route {
            team: Some(self.team.clone()),
            service: self.service.clone(),
            page: self.page.clone(),
            ticket: self.ticket.clone(),
            chat: self.chat.clone(),
            webhooks: self.webhooks.clone(),
        }
    }
}
