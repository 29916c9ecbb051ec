//! The HTTP conversations with each notifier: which requests an action takes, what
//! each answer means (sent, retry later, or give up), and what the notifier will know
//! the incident by afterwards.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use tocsin_model::notice::Action;
use tocsin_notify::Notice;
use tocsin_notify::config::Notifier;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered (or nothing was left to say); the notifier now knows the incident by
    /// this reference, if it gave one.
    Sent(Option<String>),
    /// Failed in a way that may pass: a network error, a 5xx, a 429. `after` is the
    /// service's `Retry-After`.
    Retry {
        /// Why.
        error: String,
        /// The wait the service asked for.
        after: Option<Duration>,
    },
    /// Refused for good (a 4xx other than 429): retrying cannot help.
    Dead(String),
}

/// Where an incident goes on a notifier, resolved from the event, the service and the
/// notifier's defaults.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Slack channel.
    pub channel: Option<String>,
    /// Jira project key or GitHub `owner/repo`.
    pub queue: Option<String>,
}

/// Talks to notifiers.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("Tocsin/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// Makes one attempt at telling `notifier` about `notice`. A ticket notifier with
    /// no `reference` opens a ticket: looking for one an earlier attempt may have
    /// opened is [`Sender::find_ticket`]'s, before.
    pub async fn deliver(
        &self,
        notifier: &Notifier,
        notice: &Notice<'_>,
        reference: Option<&str>,
        target: &Target,
    ) -> Attempt {
        let result = match notifier {
            Notifier::Pagerduty { routing_key, url } => {
                self.pagerduty(routing_key.expose(), url.as_deref(), notice, reference)
                    .await
            }
            Notifier::Slack {
                token,
                channel,
                url,
            } => {
                let channel = target.channel.clone().or_else(|| channel.clone());
                self.slack(token.expose(), url.as_deref(), channel, notice, reference)
                    .await
            }
            Notifier::Jira {
                url,
                email,
                token,
                project,
                issue_type,
                close_transition,
                ..
            } => {
                let project = target.queue.clone().or_else(|| project.clone());
                let jira = Jira {
                    url,
                    email,
                    token: token.expose(),
                    issue_type,
                    close_transition: close_transition.as_deref(),
                };
                self.jira(&jira, project, notice, reference).await
            }
            Notifier::Github {
                token,
                repository,
                close,
                url,
                ..
            } => {
                let repository = target.queue.clone().or_else(|| repository.clone());
                let base = url.as_deref().unwrap_or("https://api.github.com");
                self.github(token.expose(), base, repository, *close, notice, reference)
                    .await
            }
            Notifier::Webhook { url, secret } => {
                self.webhook(url, secret.expose().as_bytes(), notice).await
            }
        };
        match result {
            Ok(reference) => Attempt::Sent(reference),
            Err(attempt) => attempt,
        }
    }

    /// Sends a request; a 2xx gives its JSON body (or `Null`), anything else the attempt
    /// it amounts to.
    async fn call(&self, request: RequestBuilder) -> Result<Value, Attempt> {
        let response = request.send().await.map_err(|e| Attempt::Retry {
            error: format!("request failed: {}", without_url(&e)),
            after: None,
        })?;
        let status = response.status();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(500).collect();
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Attempt::Retry {
                error: format!("{status}: {excerpt}"),
                after,
            });
        }
        Err(Attempt::Dead(format!("{status}: {excerpt}")))
    }

    async fn pagerduty(
        &self,
        routing_key: &str,
        base: Option<&str>,
        notice: &Notice<'_>,
        reference: Option<&str>,
    ) -> Result<Option<String>, Attempt> {
        let url = format!(
            "{}/v2/enqueue",
            base.unwrap_or("https://events.pagerduty.com")
        );
        let paged = reference.is_some();
        let event = match notice.action {
            // Never a second page: once PagerDuty has one, updates go elsewhere.
            Action::Open | Action::Update if paged => return Ok(reference.map(str::to_owned)),
            // An update pages only when the incident became urgent since it opened.
            Action::Update
                if notice.incident.incident.priority != tocsin_model::event::Priority::High =>
            {
                return Ok(None);
            }
            Action::Resolve if !paged => return Ok(None),
            Action::Update => tocsin_notify::pagerduty::event(
                routing_key,
                &Notice {
                    action: Action::Open,
                    ..notice.clone()
                },
            ),
            _ => tocsin_notify::pagerduty::event(routing_key, notice),
        };
        let Some(event) = event else {
            return Ok(reference.map(str::to_owned));
        };
        self.call(self.client.post(url).json(&event)).await?;
        Ok(Some("paged".to_owned()))
    }

    async fn slack(
        &self,
        token: &str,
        base: Option<&str>,
        channel: Option<String>,
        notice: &Notice<'_>,
        reference: Option<&str>,
    ) -> Result<Option<String>, Attempt> {
        let base = base.unwrap_or("https://slack.com");
        let post = |body: &Value, method: &str| {
            self.client
                .post(format!("{base}/api/{method}"))
                .bearer_auth(token)
                .json(body)
        };
        let slack_ok = |answer: Value| -> Result<Value, Attempt> {
            if answer["ok"] == Value::Bool(true) {
                return Ok(answer);
            }
            let error = answer["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned();
            Err(if error == "ratelimited" {
                Attempt::Retry {
                    error: format!("slack: {error}"),
                    after: None,
                }
            } else {
                Attempt::Dead(format!("slack: {error}"))
            })
        };
        if let Some((channel_id, ts)) = reference.and_then(|r| r.split_once(' ')) {
            slack_ok(
                self.call(post(
                    &tocsin_notify::slack::update(channel_id, ts, notice),
                    "chat.update",
                ))
                .await?,
            )?;
            // An open that finds its message (an attempt before a crash posted it) only
            // refreshes it; a change also says what changed, in the thread.
            if notice.action != Action::Open {
                slack_ok(
                    self.call(post(
                        &tocsin_notify::slack::reply(channel_id, ts, notice),
                        "chat.postMessage",
                    ))
                    .await?,
                )?;
            }
            return Ok(reference.map(str::to_owned));
        }
        let channel = channel.ok_or_else(|| {
            Attempt::Dead("no Slack channel: set alerting.channel on the event or service, or channel on the notifier".into())
        })?;
        let answer = slack_ok(
            self.call(post(
                &tocsin_notify::slack::post(&channel, notice),
                "chat.postMessage",
            ))
            .await?,
        )?;
        let channel_id = answer["channel"].as_str().unwrap_or(&channel);
        let ts = answer["ts"].as_str().unwrap_or_default();
        Ok(Some(format!("{channel_id} {ts}")))
    }

    async fn jira(
        &self,
        jira: &Jira<'_>,
        project: Option<String>,
        notice: &Notice<'_>,
        reference: Option<&str>,
    ) -> Result<Option<String>, Attempt> {
        let request = |method: reqwest::Method, path: &[&str]| {
            Ok::<_, Attempt>(
                self.client
                    .request(
                        method,
                        endpoint(jira.url, &[&["rest", "api", "2"], path].concat())?,
                    )
                    .basic_auth(jira.email, Some(jira.token)),
            )
        };
        let Some(key) = reference else {
            if notice.action == Action::Resolve {
                return Ok(None);
            }
            let project = project.ok_or_else(|| Attempt::Dead("no Jira project: set alerting.ticket-queue on the event or service, or project on the notifier".into()))?;
            let created = self
                .call(request(reqwest::Method::POST, &["issue"])?.json(
                    &tocsin_notify::jira::create(&project, jira.issue_type, notice),
                ))
                .await?;
            return Ok(created["key"].as_str().map(str::to_owned));
        };
        if notice.action != Action::Open {
            self.call(
                request(reqwest::Method::POST, &["issue", key, "comment"])?
                    .json(&tocsin_notify::jira::comment(notice)),
            )
            .await?;
        }
        if notice.action == Action::Resolve
            && let Some(name) = jira.close_transition
        {
            let transitions = self
                .call(request(
                    reqwest::Method::GET,
                    &["issue", key, "transitions"],
                )?)
                .await?;
            let id = transitions["transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| {
                    t["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .and_then(|t| t["id"].as_str())
                .ok_or_else(|| {
                    Attempt::Dead(format!(
                        "jira: issue {key} has no transition named \"{name}\""
                    ))
                })?;
            self.call(
                request(reqwest::Method::POST, &["issue", key, "transitions"])?
                    .json(&serde_json::json!({ "transition": { "id": id } })),
            )
            .await?;
        }
        Ok(Some(key.to_owned()))
    }

    async fn github(
        &self,
        token: &str,
        base: &str,
        repository: Option<String>,
        close: bool,
        notice: &Notice<'_>,
        reference: Option<&str>,
    ) -> Result<Option<String>, Attempt> {
        let repository = repository.ok_or_else(|| {
            Attempt::Dead("no GitHub repository: set alerting.ticket-queue (owner/repo) on the event or service, or repository on the notifier".into())
        })?;
        let request = |method: reqwest::Method, path: &[&str]| {
            self.github_request(token, method, base, &repository, path)
        };
        let label = tocsin_notify::incident_label(&notice.incident.incident.id);
        let Some(number) = reference else {
            if notice.action == Action::Resolve {
                return Ok(None);
            }
            let mut issue = tocsin_notify::github::create(notice);
            if let Some(labels) = issue["labels"].as_array_mut() {
                labels.push(Value::String(label));
            }
            let created = self
                .call(request(reqwest::Method::POST, &["issues"])?.json(&issue))
                .await?;
            return Ok(created["number"].as_u64().map(|n| n.to_string()));
        };
        if notice.action != Action::Open {
            self.call(
                request(reqwest::Method::POST, &["issues", number, "comments"])?
                    .json(&tocsin_notify::github::comment(notice)),
            )
            .await?;
        }
        if notice.action == Action::Resolve && close {
            self.call(
                request(reqwest::Method::PATCH, &["issues", number])?
                    .json(&tocsin_notify::github::close()),
            )
            .await?;
        }
        Ok(Some(number.to_owned()))
    }

    /// A request to GitHub's `repos/{owner}/{repo}/…`, each part one path segment.
    fn github_request(
        &self,
        token: &str,
        method: reqwest::Method,
        base: &str,
        repository: &str,
        path: &[&str],
    ) -> Result<RequestBuilder, Attempt> {
        let (owner, repo) = repository.split_once('/').ok_or_else(|| {
            Attempt::Dead(format!(
                "invalid GitHub repository \"{repository}\": expected owner/repo"
            ))
        })?;
        let url = endpoint(base, &[&["repos", owner, repo], path].concat())?;
        Ok(self
            .client
            .request(method, url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"))
    }

    /// Looks for the ticket an earlier attempt may have opened for `incident_id`, by
    /// its `tocsin-<incident id>` label; `None` when the notifier shows none (yet:
    /// Jira's search is eventually consistent). Only ticket notifiers have tickets.
    pub async fn find_ticket(
        &self,
        notifier: &Notifier,
        incident_id: &str,
        target: &Target,
    ) -> Result<Option<String>, Attempt> {
        let label = tocsin_notify::incident_label(incident_id);
        match notifier {
            Notifier::Jira {
                url, email, token, ..
            } => {
                // `GET /rest/api/2/search` is gone from Jira Cloud (410); its successor
                // pages with tokens and returns ids unless asked for more.
                let jql = format!("labels = \"{label}\"");
                let found = self
                    .call(
                        self.client
                            .get(endpoint(url, &["rest", "api", "3", "search", "jql"])?)
                            .basic_auth(email, Some(token.expose()))
                            .query(&[
                                ("jql", jql.as_str()),
                                ("fields", "key"),
                                ("maxResults", "1"),
                            ]),
                    )
                    .await?;
                let issue = &found["issues"][0];
                Ok(issue["key"]
                    .as_str()
                    .or_else(|| issue["id"].as_str())
                    .map(str::to_owned))
            }
            Notifier::Github {
                token,
                repository,
                url,
                ..
            } => {
                let Some(repository) = target.queue.as_deref().or(repository.as_deref()) else {
                    return Ok(None);
                };
                let base = url.as_deref().unwrap_or("https://api.github.com");
                let found = self
                    .call(
                        self.github_request(
                            token.expose(),
                            reqwest::Method::GET,
                            base,
                            repository,
                            &["issues"],
                        )?
                        .query(&[("labels", label.as_str()), ("state", "all")]),
                    )
                    .await?;
                Ok(found[0]["number"].as_u64().map(|n| n.to_string()))
            }
            _ => Ok(None),
        }
    }

    async fn webhook(
        &self,
        url: &str,
        secret: &[u8],
        notice: &Notice<'_>,
    ) -> Result<Option<String>, Attempt> {
        let body = serde_json::to_vec(&tocsin_notify::webhook::body(notice)).unwrap_or_default();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = tocsin_notify::webhook::sign(secret, timestamp, &body);
        self.call(
            self.client
                .post(url)
                .header("content-type", "application/json")
                .header(
                    tocsin_notify::webhook::TIMESTAMP_HEADER,
                    timestamp.to_string(),
                )
                .header(tocsin_notify::webhook::SIGNATURE_HEADER, signature)
                .body(body),
        )
        .await?;
        Ok(None)
    }
}

/// Jira settings for one conversation.
struct Jira<'a> {
    url: &'a str,
    email: &'a str,
    token: &'a str,
    issue_type: &'a str,
    close_transition: Option<&'a str>,
}

/// `base` with `segments` appended, each percent-encoded as one path segment: a value
/// from an event or a service's answer can never add a segment, climb out with `..`,
/// or start a query.
fn endpoint(base: &str, segments: &[&str]) -> Result<reqwest::Url, Attempt> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| Attempt::Dead(format!("invalid notifier url: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| Attempt::Dead("invalid notifier url: it cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A request error without its URL, which may carry a secret in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        format!("cannot connect: {text}")
    } else {
        text
    }
}

/// The wait a `Retry-After` header asks for, in seconds (the HTTP-date form is not used
/// by the services Tocsin talks to).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
