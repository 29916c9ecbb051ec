//! The notifiers and routes of `tocsin serve --notifiers FILE` (YAML).
//!
//! Secrets are written as `${env:NAME}` so the file itself holds none; they are
//! resolved once at start, never logged (`Debug` redacts them) and never returned by
//! the API ([`Notifiers::public`]).
//!
//! Notifiers are the operator's, shared by every team: each may be opened to some
//! teams only (`teams:`), and the Slack channels, Jira projects and GitHub repositories
//! a team may name on it are listed per team (`channels:`, `projects:`,
//! `repositories:`), so that an event or a route never makes Tocsin's credentials
//! reach what the operator did not open to its team.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use tocsin_model::event::{Event, FieldError, parse_duration};
pub use tocsin_model::notice::Route;

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

/// The longest `settle` accepted: a ticket is never held back longer than this.
const MAX_SETTLE: Duration = Duration::from_secs(600);

/// Durations written as `30s`, `2m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(de)?;
        let parsed = tocsin_model::event::parse_duration(&text).map_err(serde::de::Error::custom)?;
        if parsed > super::MAX_SETTLE {
            return Err(serde::de::Error::custom(format!(
                "settle \"{text}\" is over the maximum of 10m"
            )));
        }
        Ok(parsed)
    }
}

/// What a queue names on a notifier, with the service's syntax for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A Slack channel: `#name`, `name` or a channel id.
    Channel,
    /// A Jira project key, such as `OPS`.
    Project,
    /// A GitHub repository, `owner/repo`.
    Repository,
}

impl QueueKind {
    /// The key of a notifier's per-team allow-list in the notifiers file.
    pub fn allow_key(self) -> &'static str {
        match self {
            Self::Channel => "channels",
            Self::Project => "projects",
            Self::Repository => "repositories",
        }
    }

    /// What the value is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Self::Channel => "Slack channel",
            Self::Project => "Jira project",
            Self::Repository => "GitHub repository",
        }
    }

    /// What an event or service calls the value.
    fn field(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Project | Self::Repository => "ticket queue",
        }
    }

    /// The syntax the service takes, for messages.
    fn hint(self) -> &'static str {
        match self {
            Self::Channel => "a Slack channel: #name (letters, digits, - and _) or a channel id",
            Self::Project => "a Jira project key such as OPS (A-Z, 0-9, _)",
            Self::Repository => "a GitHub repository as owner/repo (letters, digits, ., - and _)",
        }
    }

    /// Checks `value` against the service's syntax, so that it can only ever name a
    /// channel, project or repository: never a path, a query or another endpoint.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            // Slack: lower-case names of letters, digits, `-` and `_` (at most 80), or
            // an upper-case id such as C0123ABCD.
            Self::Channel => {
                let name = value.strip_prefix('#').unwrap_or(value);
                (1..=80).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }
            // Jira: an upper-case letter, then upper-case letters, digits or `_`.
            Self::Project => {
                (2..=255).contains(&value.len())
                    && value.starts_with(|c: char| c.is_ascii_uppercase())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }
            // GitHub: an owner of letters, digits and `-` (at most 39, not starting
            // with `-`), one `/`, a repository of letters, digits, `.`, `-`, `_` (at
            // most 100, neither `.` nor `..`).
            Self::Repository => value.split_once('/').is_some_and(|(owner, repo)| {
                (1..=39).contains(&owner.len())
                    && !owner.starts_with('-')
                    && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && (1..=100).contains(&repo.len())
                    && repo != "."
                    && repo != ".."
                    && repo
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            }),
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "invalid {} \"{value}\": expected {}",
            self.field(),
            self.hint()
        ))
    }

    /// Whether two valid values name the same thing: Slack and GitHub ignore case, and
    /// `#` before a Slack channel is optional.
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            Self::Channel => a
                .trim_start_matches('#')
                .eq_ignore_ascii_case(b.trim_start_matches('#')),
            Self::Project => a == b,
            Self::Repository => a.eq_ignore_ascii_case(b),
        }
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

/// Who may use one notifier, and what each team may name on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The teams the notifier is open to; `None` opens it to every team.
    pub teams: Option<Vec<String>>,
    /// The channels, projects or repositories each team may name (the key `*` for
    /// every team); `None` allows any valid one. The notifier's default is always
    /// allowed to the teams it is open to.
    pub queues: Option<BTreeMap<String, Vec<String>>>,
}

impl Access {
    /// Whether `team` may use the notifier.
    pub fn open_to(&self, team: &str) -> bool {
        self.teams
            .as_ref()
            .is_none_or(|teams| teams.iter().any(|t| t == team))
    }

    /// The queues `team` may name, when the notifier lists them.
    fn queues_of<'a>(&'a self, team: &'a str) -> Option<impl Iterator<Item = &'a String>> {
        self.queues.as_ref().map(|queues| {
            queues
                .iter()
                .filter(move |(t, _)| t.as_str() == team || t.as_str() == "*")
                .flat_map(|(_, list)| list)
        })
    }
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
    /// Read as YAML first: `teams:` and the allow-list are taken out before the rest
    /// is read as the [`Notifier`].
    #[serde(default)]
    notifiers: BTreeMap<String, serde_yaml_ng::Value>,
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
    /// Who may use each notifier (by name; a notifier without an entry is open to
    /// every team and any valid queue).
    pub access: BTreeMap<String, Access>,
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

/// Checks that every notifier a route names exists, is of the kind its field needs and
/// is open to the route's team (a route for every team names only notifiers open to
/// every team); the error starts with the field. A notifier closed to the team is
/// refused exactly as one that does not exist, so a team learns nothing of it.
fn check_route(
    notifiers: &BTreeMap<String, Notifier>,
    access: &BTreeMap<String, Access>,
    route: &Route,
) -> Result<(), String> {
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
        let access = access.get(name);
        let notifier = match (&route.team, notifiers.get(name)) {
            (Some(team), notifier)
                if notifier.is_none() || access.is_some_and(|a| !a.open_to(team)) =>
            {
                return Err(format!(
                    "{field}: no notifier named \"{name}\" is open to team \"{team}\""
                ));
            }
            (_, None) => return Err(format!("{field}: no notifier named \"{name}\"")),
            (None, Some(_)) if access.is_some_and(|a| a.teams.is_some()) => {
                return Err(format!(
                    "{field}: \"{name}\" is open to some teams only; a route naming it names its team"
                ));
            }
            (_, Some(notifier)) => notifier,
        };
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

/// Reads one notifier of the file: its [`Access`] (`teams:` and the allow-list of its
/// kind) and the rest as the [`Notifier`].
fn read_notifier(value: serde_yaml_ng::Value) -> Result<(Notifier, Access), String> {
    let serde_yaml_ng::Value::Mapping(mut map) = value else {
        return Err("expected a mapping with kind and its settings".into());
    };
    let mut take = |key: &str| map.remove(serde_yaml_ng::Value::String(key.to_owned()));
    let teams: Option<Vec<String>> = take("teams")
        .map(serde_yaml_ng::from_value)
        .transpose()
        .map_err(|e| format!("teams: {e}"))?;
    // Only the allow-list of the notifier's own kind is taken out: another kind's is
    // left in, and refused below as an unknown field.
    let kind = map
        .get(serde_yaml_ng::Value::String("kind".into()))
        .and_then(serde_yaml_ng::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let allow_key = match kind.as_str() {
        "slack" => Some(QueueKind::Channel),
        "jira" => Some(QueueKind::Project),
        "github" => Some(QueueKind::Repository),
        _ => None,
    }
    .map(QueueKind::allow_key);
    let mut take = |key: &str| map.remove(serde_yaml_ng::Value::String(key.to_owned()));
    let queues: Option<BTreeMap<String, Vec<String>>> = allow_key
        .and_then(&mut take)
        .map(serde_yaml_ng::from_value)
        .transpose()
        .map_err(|e| format!("{}: {e}", allow_key.unwrap_or_default()))?;
    let notifier: Notifier =
        serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(map)).map_err(|e| e.to_string())?;
    for team in teams.iter().flatten() {
        tocsin_model::team::check_team_name(team).map_err(|e| format!("teams: {e}"))?;
    }
    if let Some(kind) = notifier.queue_kind() {
        if let Some(default) = notifier.default_queue() {
            kind.check(default)?;
        }
        for (team, list) in queues.iter().flatten() {
            if team != "*" {
                tocsin_model::team::check_team_name(team)
                    .map_err(|e| format!("{}.{team}: {e}", kind.allow_key()))?;
            }
            for queue in list {
                kind.check(queue)
                    .map_err(|e| format!("{}.{team}: {e}", kind.allow_key()))?;
            }
        }
    }
    Ok((notifier, Access { teams, queues }))
}

/// Shows a URL as scheme, host and path: a query, user name, password or fragment may
/// carry a key, and `${env:…}` has already put it there.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.path()
            )
        }
        Err(_) => "(not a valid URL)".to_owned(),
    }
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
        let mut notifiers = BTreeMap::new();
        let mut access = BTreeMap::new();
        for (name, value) in file.notifiers {
            let (notifier, rules) = read_notifier(value)
                .map_err(|e| ConfigError::Invalid(format!("notifiers.{name}: {e}")))?;
            notifiers.insert(name.clone(), notifier);
            if rules != Access::default() {
                access.insert(name, rules);
            }
        }
        for (i, route) in file.routes.iter().enumerate() {
            check_route(&notifiers, &access, route)
                .map_err(|e| ConfigError::Invalid(format!("routes[{i}].{e}")))?;
        }
        Ok(Self {
            public_url: file
                .public_url
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            retry,
            notifiers,
            access,
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
        check_route(&self.notifiers, &self.access, route)
    }

    /// Whether notifier `name` is open to `team`.
    pub fn open_to(&self, name: &str, team: &str) -> bool {
        self.access.get(name).is_none_or(|a| a.open_to(team))
    }

    /// Whether `team` may name `queue` on notifier `name` (of queue kind `kind`): the
    /// notifier's default always, else what its allow-list gives the team.
    fn allowed(
        &self,
        name: &str,
        notifier: &Notifier,
        kind: QueueKind,
        team: &str,
        queue: &str,
    ) -> bool {
        if notifier
            .default_queue()
            .is_some_and(|d| kind.same(d, queue))
        {
            return true;
        }
        match self.access.get(name).and_then(|a| a.queues_of(team)) {
            Some(mut listed) => listed.any(|q| kind.same(q, queue)),
            None => true,
        }
    }

    /// Where notifier `name` sends a `team`'s incident that asks for `wanted` (its
    /// rendered channel or ticket queue): `wanted` if the team may name it there, the
    /// notifier's default when nothing is wanted; an error naming the refused value
    /// otherwise. `None` for a notifier that takes no queue, or when there is none.
    pub fn queue_for(
        &self,
        name: &str,
        team: &str,
        wanted: Option<&str>,
    ) -> Result<Option<String>, String> {
        let Some(notifier) = self.notifiers.get(name) else {
            return Err(format!("notifier \"{name}\" is no longer configured"));
        };
        if !self.open_to(name, team) {
            return Err(format!(
                "notifier \"{name}\" is not open to team \"{team}\""
            ));
        }
        let Some(kind) = notifier.queue_kind() else {
            return Ok(None);
        };
        let Some(wanted) = wanted else {
            return Ok(notifier.default_queue().map(str::to_owned));
        };
        kind.check(wanted)?;
        if !self.allowed(name, notifier, kind, team, wanted) {
            return Err(format!(
                "{} \"{wanted}\" is not open to team \"{team}\" on notifier \"{name}\"",
                kind.noun()
            ));
        }
        Ok(Some(wanted.to_owned()))
    }

    /// Refuses an event whose `alerting.channel` or `alerting.ticket-queue`, rendered,
    /// no notifier open to its team would take: the wrong syntax for every one of them,
    /// or not on any allow-list of the team. When no notifier of that sort is open to
    /// the team the value is never used, and passes.
    pub fn check_event(&self, team: &str, event: &Event) -> Result<(), FieldError> {
        let Some(alerting) = &event.alerting else {
            return Ok(());
        };
        let wanted = [
            (
                "alerting.channel",
                alerting.channel.as_deref(),
                &[QueueKind::Channel][..],
            ),
            (
                "alerting.ticket-queue",
                alerting.ticket_queue.as_deref(),
                &[QueueKind::Project, QueueKind::Repository][..],
            ),
        ];
        for (field, value, kinds) in wanted {
            let Some(value) = value else { continue };
            let rendered = tocsin_model::event::render(value, event);
            // Kinds whose syntax the value breaks, and those that read it but do not
            // open it to this team.
            let (mut misread, mut closed) = (Vec::new(), Vec::new());
            let mut taken = false;
            for (name, notifier) in &self.notifiers {
                let Some(kind) = notifier.queue_kind().filter(|k| kinds.contains(k)) else {
                    continue;
                };
                if !self.open_to(name, team) {
                    continue;
                }
                if kind.check(&rendered).is_err() {
                    misread.push(kind);
                } else if self.allowed(name, notifier, kind, team, &rendered) {
                    taken = true;
                    break;
                } else {
                    closed.push(kind);
                }
            }
            if taken || (misread.is_empty() && closed.is_empty()) {
                continue;
            }
            let error = match (closed.first(), misread.as_slice()) {
                (Some(kind), _) => format!(
                    "{} \"{rendered}\" is not open to team \"{team}\"",
                    kind.noun()
                ),
                (None, misread) => {
                    let mut hints: Vec<&str> = misread.iter().map(|k| k.hint()).collect();
                    hints.sort_unstable();
                    hints.dedup();
                    format!(
                        "invalid {} \"{rendered}\": expected {}",
                        misread[0].field(),
                        hints.join(" or ")
                    )
                }
            };
            return Err(FieldError::new(field, error));
        }
        Ok(())
    }

    /// The configuration as `team` may see it (`None`: an admin, who sees all of it):
    /// the notifiers open to the team and its own routes, without secrets, each URL
    /// as scheme, host and path only.
    pub fn public(&self, team: Option<&str>) -> serde_json::Value {
        let notifiers: serde_json::Map<String, serde_json::Value> = self
            .notifiers
            .iter()
            .filter(|(name, _)| team.is_none_or(|team| self.open_to(name, team)))
            .map(|(name, notifier)| {
                let url = |url: &Option<String>| url.as_deref().map(shown_url);
                let detail = match notifier {
                    Notifier::Pagerduty { url: u, .. } => serde_json::json!({ "url": url(u) }),
                    Notifier::Slack { channel, url: u, .. } => {
                        serde_json::json!({ "channel": channel, "url": url(u) })
                    }
                    Notifier::Jira { url: u, email, project, issue_type, close_transition, settle, .. } => {
                        serde_json::json!({ "url": shown_url(u), "email": email, "project": project, "issueType": issue_type, "closeTransition": close_transition, "settleMs": settle.as_millis() as u64 })
                    }
                    Notifier::Github { repository, close, url: u, settle, .. } => {
                        serde_json::json!({ "repository": repository, "close": close, "url": url(u), "settleMs": settle.as_millis() as u64 })
                    }
                    Notifier::Webhook { url: u, .. } => serde_json::json!({ "url": shown_url(u) }),
                };
                let mut detail = detail;
                detail["kind"] = notifier.kind().into();
                if let Some(access) = self.access.get(name) {
                    if team.is_none() {
                        detail["teams"] = serde_json::json!(access.teams);
                    }
                    if let (Some(kind), Some(queues)) = (notifier.queue_kind(), &access.queues) {
                        // A team sees what it may name, never another team's list.
                        detail[kind.allow_key()] = match team {
                            None => serde_json::json!(queues),
                            Some(team) => serde_json::json!(access
                                .queues_of(team)
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()),
                        };
                    }
                }
                (name.clone(), detail)
            })
            .collect();
        let routes: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| team.is_none() || r.team.is_none() || r.team.as_deref() == team)
            .collect();
        serde_json::json!({
            "publicUrl": self.public_url,
            "retry": {
                "attempts": self.retry.attempts,
                "firstMs": self.retry.first.as_millis() as u64,
                "maxMs": self.retry.max.as_millis() as u64,
            },
            "notifiers": notifiers,
            "routes": routes,
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
        let shown = format!("{config:?} {}", config.public(None));
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

    #[test]
    fn queues_follow_each_services_syntax() {
        for ok in ["#bender-on-call", "ops", "C0123ABCD"] {
            assert_eq!(QueueKind::Channel.check(ok), Ok(()), "{ok}");
        }
        for ok in ["OPS", "CHK_2"] {
            assert_eq!(QueueKind::Project.check(ok), Ok(()), "{ok}");
        }
        for ok in ["example/ops", "a-b/c.d_e"] {
            assert_eq!(QueueKind::Repository.check(ok), Ok(()), "{ok}");
        }
        for (kind, bad) in [
            (QueueKind::Repository, "../../orgs/flexo/teams?x=#"),
            (QueueKind::Repository, "flexo/.."),
            (QueueKind::Repository, "flexo/repo/issues"),
            (QueueKind::Repository, "-x/repo"),
            (QueueKind::Project, "ops"),
            (QueueKind::Project, "OPS/../X"),
            (QueueKind::Channel, "#a b"),
            (QueueKind::Channel, "#x?y"),
        ] {
            let err = kind.check(bad).expect_err(bad);
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn a_file_route_must_name_notifiers_open_to_its_team() {
        let closed = FILE.replace(
            "pd: { kind: pagerduty, routing-key: \"${env:PD_KEY}\" }",
            "pd: { kind: pagerduty, routing-key: \"${env:PD_KEY}\", teams: [flexo] }",
        );
        let err = Notifiers::parse_with(&closed, &env).expect_err("closed to bender");
        assert!(
            err.to_string()
                .contains("routes[0].page: \"pd\" is open to some teams only"),
            "{err}"
        );
        let other_kind = FILE.replace("project: OPS,", "project: OPS, channels: { a: [\"#a\"] },");
        let err = Notifiers::parse_with(&other_kind, &env).expect_err("a Slack list on Jira");
        assert!(
            err.to_string()
                .contains("notifiers.jira: unknown field `channels`"),
            "{err}"
        );
        let bad = FILE.replace(
            "channel: \"#ops\" }",
            "channel: \"#ops\", channels: { bender: [\"../x\"] } }",
        );
        let err = Notifiers::parse_with(&bad, &env).expect_err("bad channel");
        assert!(
            err.to_string()
                .contains("channels.bender: invalid channel \"../x\""),
            "{err}"
        );
    }
}
