//! The notifier kinds and their fields, as the file writes them.

use std::time::Duration;

use serde::Deserialize;

use crate::config::access::QueueKind;

/// A secret: shown as `***` everywhere but on the wire to its service.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One notifier: a service Tocsin talks to, with its credentials and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Notifier {
    /// PagerDuty Events API v2.
    Pagerduty {
        /// The service's 32-character integration (routing) key.
        #[serde(rename = "routing-key")]
        routing_key: Secret,
        /// Base URL (default `https://events.pagerduty.com`).
        #[serde(default)]
        url: Option<String>,
    },
    /// Slack Web API.
    Slack {
        /// Bot token (`xoxb-…`).
        token: Secret,
        /// Channel when neither event nor service names one.
        #[serde(default)]
        channel: Option<String>,
        /// Base URL (default `https://slack.com`).
        #[serde(default)]
        url: Option<String>,
    },
    /// Jira Cloud REST API v2.
    Jira {
        /// The site, such as `https://example.atlassian.net`.
        url: String,
        /// The account's email (Basic auth user).
        email: String,
        /// Its API token.
        token: Secret,
        /// Project key when neither event nor service names a ticket queue.
        #[serde(default)]
        project: Option<String>,
        /// Issue type of new issues (default `Bug`).
        #[serde(default = "bug", rename = "issue-type")]
        issue_type: String,
        /// Transition (by name) applied when the incident resolves; none keeps it open.
        #[serde(default, rename = "close-transition")]
        close_transition: Option<String>,
        /// How long a new issue may take to show in Jira's search (eventually
        /// consistent): after an attempt that may have created one, no second is
        /// created before this has passed (default 30s).
        #[serde(default = "settle", with = "duration")]
        settle: Duration,
    },
    /// GitHub issues.
    Github {
        /// A token allowed to write issues.
        token: Secret,
        /// `owner/repo` when neither event nor service names a ticket queue.
        #[serde(default)]
        repository: Option<String>,
        /// Close the issue when the incident resolves (default true).
        #[serde(default = "yes")]
        close: bool,
        /// As Jira's `settle`: after an attempt that may have created an issue, no
        /// second is created before this has passed (default 30s).
        #[serde(default = "settle", with = "duration")]
        settle: Duration,
        /// Base URL (default `https://api.github.com`).
        #[serde(default)]
        url: Option<String>,
    },
    /// A generic webhook, signed with HMAC-SHA256.
    Webhook {
        /// Where to post.
        url: String,
        /// The shared signing secret.
        secret: Secret,
    },
}

fn bug() -> String {
    "Bug".into()
}

fn yes() -> bool {
    true
}

fn settle() -> Duration {
    Duration::from_secs(30)
}

/// Durations written as `30s`, `2m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// The longest `settle` accepted: a ticket is never held back longer than this.
    const MAX_SETTLE: Duration = Duration::from_secs(600);

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(de)?;
        let parsed =
            tocsin_model::event::parse_duration(&text).map_err(serde::de::Error::custom)?;
        if parsed > MAX_SETTLE {
            return Err(serde::de::Error::custom(format!(
                "settle \"{text}\" is over the maximum of 10m"
            )));
        }
        Ok(parsed)
    }
}

impl Notifier {
    /// What a queue names on this notifier, if it takes one.
    pub fn queue_kind(&self) -> Option<QueueKind> {
        match self {
            Self::Slack { .. } => Some(QueueKind::Channel),
            Self::Jira { .. } => Some(QueueKind::Project),
            Self::Github { .. } => Some(QueueKind::Repository),
            Self::Pagerduty { .. } | Self::Webhook { .. } => None,
        }
    }

    /// The channel, project or repository used when the incident names none.
    pub fn default_queue(&self) -> Option<&str> {
        match self {
            Self::Slack { channel, .. } => channel.as_deref(),
            Self::Jira { project, .. } => project.as_deref(),
            Self::Github { repository, .. } => repository.as_deref(),
            Self::Pagerduty { .. } | Self::Webhook { .. } => None,
        }
    }

    /// How long a new ticket may take to show in the notifier's search; `None` for a
    /// notifier that opens no tickets.
    pub fn settle(&self) -> Option<Duration> {
        match self {
            Self::Jira { settle, .. } | Self::Github { settle, .. } => Some(*settle),
            _ => None,
        }
    }

    /// `pagerduty`, `slack`, `jira`, `github` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pagerduty { .. } => "pagerduty",
            Self::Slack { .. } => "slack",
            Self::Jira { .. } => "jira",
            Self::Github { .. } => "github",
            Self::Webhook { .. } => "webhook",
        }
    }
}
