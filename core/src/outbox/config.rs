//! The notifiers and routes of `tocsin serve --notifiers FILE` (YAML).
//!
//! Secrets are written as `${env:NAME}` so the file itself holds none; they are
//! resolved once at start, never logged (`Debug` redacts them) and never returned by
//! the API ([`Notifiers::public`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::parse_duration;

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

impl Notifier {
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

/// How often and how long a delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts before a delivery is dead.
    pub attempts: u32,
    /// Wait after the first failure; it doubles after each one.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RetryFile {
    attempts: Option<u32>,
    first: Option<String>,
    max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    retry: Option<RetryFile>,
    #[serde(default)]
    notifiers: BTreeMap<String, Notifier>,
    #[serde(default)]
    routes: Vec<Route>,
}

/// Everything the outbox needs to know about where notifications go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notifiers {
    /// Base of the links back to incidents (default `http://127.0.0.1:8080`).
    pub public_url: String,
    /// Retry budget.
    pub retry: Retry,
    /// Notifiers by name.
    pub notifiers: BTreeMap<String, Notifier>,
    /// Routes, most specific first when matched.
    pub routes: Vec<Route>,
}

/// What is wrong with a notifiers file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a field is wrong.
    #[error("invalid notifiers file: {0}")]
    Invalid(String),
    /// `${env:NAME}` names an unset variable.
    #[error("notifiers file: environment variable {0} is not set")]
    MissingEnv(String),
}

/// Checks that every notifier a route names exists and is of the kind its field needs;
/// the error starts with the field.
fn check_route(notifiers: &BTreeMap<String, Notifier>, route: &Route) -> Result<(), String> {
    let names = route
        .page
        .iter()
        .map(|n| (n, "page", &["pagerduty"][..]))
        .chain(
            route
                .ticket
                .iter()
                .map(|n| (n, "ticket", &["jira", "github"][..])),
        )
        .chain(route.chat.iter().map(|n| (n, "chat", &["slack"][..])))
        .chain(
            route
                .webhooks
                .iter()
                .map(|n| (n, "webhooks", &["webhook"][..])),
        );
    for (name, field, kinds) in names {
        let notifier = notifiers
            .get(name)
            .ok_or_else(|| format!("{field}: no notifier named \"{name}\""))?;
        if !kinds.contains(&notifier.kind()) {
            return Err(format!(
                "{field}: \"{name}\" is a {} notifier, expected {}",
                notifier.kind(),
                kinds.join(" or ")
            ));
        }
    }
    Ok(())
}

/// Replaces `${env:NAME}` with the variable's value.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::Invalid("unclosed ${env:".into()))?;
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| ConfigError::MissingEnv(name.to_owned()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Notifiers {
    /// Reads a notifiers file, resolving `${env:NAME}` from the process environment.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// [`Notifiers::parse`] with another environment (tests).
    pub fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = interpolate(text, env)?;
        let file: File =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut retry = Retry::default();
        if let Some(r) = file.retry {
            let duration = |field: &str, text: Option<String>, default: Duration| match text {
                Some(text) => parse_duration(&text)
                    .map_err(|e| ConfigError::Invalid(format!("retry.{field}: {e}"))),
                None => Ok(default),
            };
            retry.attempts = r.attempts.unwrap_or(retry.attempts).max(1);
            retry.first = duration("first", r.first, retry.first)?;
            retry.max = duration("max", r.max, retry.max)?;
        }
        for (i, route) in file.routes.iter().enumerate() {
            check_route(&file.notifiers, route)
                .map_err(|e| ConfigError::Invalid(format!("routes[{i}].{e}")))?;
        }
        Ok(Self {
            public_url: file
                .public_url
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            retry,
            notifiers: file.notifiers,
            routes: file.routes,
        })
    }

    /// The route for an incident: the one that names its team and service, then its
    /// team, then its service, then one naming neither. `stored` are the routes set
    /// through the API; at equal specificity they win over the file's.
    pub fn route<'a>(
        &'a self,
        team: &str,
        service: Option<&str>,
        stored: &'a [Route],
    ) -> Option<&'a Route> {
        let score = |route: &Route| {
            let team_ok = route.team.as_deref().is_none_or(|t| t == team);
            let service_ok = route.service.is_none() || route.service.as_deref() == service;
            (team_ok && service_ok)
                .then_some(u8::from(route.team.is_some()) * 2 + u8::from(route.service.is_some()))
        };
        // The file's routes first: `max_by_key` keeps the last of equals.
        self.routes
            .iter()
            .chain(stored)
            .filter_map(|route| Some((score(route)?, route)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, route)| route)
    }

    /// Why `route` cannot be used with these notifiers, if it cannot.
    pub fn check(&self, route: &Route) -> Result<(), String> {
        check_route(&self.notifiers, route)
    }

    /// The configuration without secrets, as the API shows it.
    pub fn public(&self) -> serde_json::Value {
        let notifiers: serde_json::Map<String, serde_json::Value> = self
            .notifiers
            .iter()
            .map(|(name, notifier)| {
                let detail = match notifier {
                    Notifier::Pagerduty { url, .. } => serde_json::json!({ "url": url }),
                    Notifier::Slack { channel, url, .. } => {
                        serde_json::json!({ "channel": channel, "url": url })
                    }
                    Notifier::Jira { url, email, project, issue_type, close_transition, .. } => {
                        serde_json::json!({ "url": url, "email": email, "project": project, "issueType": issue_type, "closeTransition": close_transition })
                    }
                    Notifier::Github { repository, close, url, .. } => {
                        serde_json::json!({ "repository": repository, "close": close, "url": url })
                    }
                    Notifier::Webhook { url, .. } => serde_json::json!({ "url": url }),
                };
                let mut detail = detail;
                detail["kind"] = notifier.kind().into();
                (name.clone(), detail)
            })
            .collect();
        serde_json::json!({
            "publicUrl": self.public_url,
            "retry": {
                "attempts": self.retry.attempts,
                "firstMs": self.retry.first.as_millis() as u64,
                "maxMs": self.retry.max.as_millis() as u64,
            },
            "notifiers": notifiers,
            "routes": self.routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r##"
public-url: https://tocsin.example.com/
retry: { attempts: 3, first: 2s, max: 1m }
notifiers:
  pd: { kind: pagerduty, routing-key: "${env:PD_KEY}" }
  slack: { kind: slack, token: "${env:SLACK}", channel: "#ops" }
  jira: { kind: jira, url: https://x.atlassian.net, email: a@b.c, token: "${env:JIRA}", project: OPS, close-transition: Done }
routes:
  - { page: pd, chat: slack }
  - { team: bender, page: pd, ticket: jira, chat: slack }
"##;

    fn env(name: &str) -> Option<String> {
        match name {
            "PD_KEY" => Some("0123456789abcdef0123456789abcdef".into()),
            "SLACK" => Some("xoxb-secret".into()),
            "JIRA" => Some("jira-secret".into()),
            _ => None,
        }
    }

    #[test]
    fn a_file_reads_with_its_secrets_from_the_environment() {
        let config = Notifiers::parse_with(FILE, &env).expect("valid");
        assert_eq!(config.public_url, "https://tocsin.example.com");
        assert_eq!(config.retry.attempts, 3);
        assert_eq!(config.retry.first, Duration::from_secs(2));
        let Some(Notifier::Slack { token, .. }) = config.notifiers.get("slack") else {
            panic!("slack notifier");
        };
        assert_eq!(token.expose(), "xoxb-secret");
        // Secrets never show: not in Debug, not in the API's view.
        let shown = format!("{config:?} {}", config.public());
        for secret in ["xoxb-secret", "jira-secret", "0123456789abcdef"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn routes_prefer_the_most_specific() {
        let config = Notifiers::parse_with(FILE, &env).expect("valid");
        assert_eq!(
            config
                .route("bender", Some("x"), &[])
                .and_then(|r| r.ticket.as_deref()),
            Some("jira")
        );
        assert_eq!(
            config
                .route("flexo", None, &[])
                .and_then(|r| r.ticket.as_deref()),
            None
        );
        assert_eq!(
            config
                .route("flexo", None, &[])
                .and_then(|r| r.chat.as_deref()),
            Some("slack")
        );
        // A stored route of equal specificity wins over the file's.
        let stored = [Route {
            team: Some("flexo".into()),
            chat: Some("other".into()),
            ..Route::default()
        }];
        assert_eq!(
            config
                .route("flexo", None, &stored)
                .and_then(|r| r.chat.as_deref()),
            Some("other")
        );
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        let missing = Notifiers::parse_with(FILE, &|_| None).expect_err("no env");
        assert!(missing.to_string().contains("PD_KEY"), "{missing}");
        let wrong = FILE.replace("- { page: pd, chat: slack }", "- { page: slack }");
        let err = Notifiers::parse_with(&wrong, &env).expect_err("wrong kind");
        assert!(
            err.to_string()
                .contains("routes[0].page: \"slack\" is a slack notifier"),
            "{err}"
        );
        let unknown = FILE.replace("chat: slack }\n  - { team", "chat: nope }\n  - { team");
        let err = Notifiers::parse_with(&unknown, &env).expect_err("unknown");
        assert!(
            err.to_string().contains("no notifier named \"nope\""),
            "{err}"
        );
    }
}
