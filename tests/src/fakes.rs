//! Faithful fakes of the SaaS Tocsin notifies: PagerDuty's Events API v2, Slack's Web
//! API, Jira Cloud's REST API v2 (with v3's JQL search, whose results are eventually
//! consistent; the removed `GET /rest/api/2/search` answers 410 Gone as Jira Cloud
//! does) and GitHub's issues API, on one loopback HTTP server.
//!
//! Each request is recorded and checked against the service's documented format:
//! required fields, types, limits and the auth header. A request the real service would
//! refuse gets the real service's error answer and is recorded with its violations, so
//! a test can assert that none happened. Answers can be scripted (a 500, a 429 with
//! `Retry-After`) to exercise retries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch, post};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `pagerduty`, `slack`, `jira` or `github`.
    pub service: &'static str,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` when it was not JSON).
    pub body: Value,
    /// The body as sent (webhooks only; others keep the parsed `body`).
    pub raw: String,
    /// What the real service would have refused, empty when the request was valid.
    pub violations: Vec<String>,
    /// The status the fake answered.
    pub status: u16,
}

/// A scripted answer, used once, before the normal behaviour.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    /// Status to answer with; 0 answers normally (after the delay).
    pub status: u16,
    /// `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// Act on the request at once, but answer only after this long.
    pub delay: Option<std::time::Duration>,
    /// With `status`: act on the request as normal, then answer `status` anyway (a
    /// gateway that failed after the service did the work).
    pub acted: bool,
}

/// How long a new Jira issue takes to show in search by default: Jira Cloud's search
/// is eventually consistent.
pub const JIRA_SEARCH_LAG: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: std::collections::HashMap<&'static str, VecDeque<Scripted>>,
    next_id: u64,
    /// Issues created (Jira keys or GitHub numbers) with their labels, so a search
    /// finds them as the real services would.
    issues: Vec<(String, Vec<String>)>,
    /// When each Jira issue (by key) shows in search.
    searchable_at: std::collections::HashMap<String, std::time::Instant>,
    /// How long a new Jira issue takes to show in search.
    search_lag: Option<std::time::Duration>,
    /// PagerDuty dedup keys with an open (triggered, unresolved) page.
    open_pages: Vec<String>,
    /// Pages PagerDuty would have raised: triggers of a key with no open page.
    pages: Vec<String>,
}

/// The running fake; stops when dropped.
#[derive(Clone)]
pub struct Fakes {
    /// Base URL, such as `http://127.0.0.1:40123`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Fakes {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v2/enqueue", post(pagerduty))
            .route("/api/{method}", post(slack))
            .route("/rest/api/2/issue", post(jira_create))
            .route("/rest/api/2/issue/{key}/comment", post(jira_comment))
            .route(
                "/rest/api/2/issue/{key}/transitions",
                get(jira_transitions).post(jira_transition),
            )
            .route("/rest/api/2/search", any(jira_removed_search))
            .route("/rest/api/3/search/jql", get(jira_search).post(jira_search))
            .route(
                "/repos/{owner}/{repo}/issues",
                post(github_create).get(github_list),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(github_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}",
                patch(github_update),
            )
            .route("/webhook", post(webhook))
            .fallback(any(unknown))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url,
            inner,
            _stop: Arc::new(stop),
        })
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests to one service.
    pub fn requests_to(&self, service: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.service == service)
            .collect()
    }

    /// Every violation of a documented format so far, with the request's path.
    pub fn violations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| {
                r.violations
                    .iter()
                    .map(move |v| format!("{} {}: {v}", r.method, r.path))
            })
            .collect()
    }

    /// Answers the next requests to `service` (`pagerduty`, `slack`, `jira`, `github`,
    /// `webhook`) with these first.
    pub fn script(&self, service: &'static str, answers: impl IntoIterator<Item = Scripted>) {
        self.lock()
            .script
            .entry(service)
            .or_default()
            .extend(answers);
    }

    /// The pages PagerDuty would have raised (dedup keys, in order): a trigger raises
    /// one only when its key has no open page, as PagerDuty deduplicates.
    pub fn pages(&self) -> Vec<String> {
        self.lock().pages.clone()
    }

    /// Issues created in Jira or GitHub, with their labels.
    pub fn issues(&self) -> Vec<(String, Vec<String>)> {
        self.lock().issues.clone()
    }

    /// Makes new Jira issues show in search only after `lag` (default
    /// [`JIRA_SEARCH_LAG`]).
    pub fn set_search_lag(&self, lag: std::time::Duration) {
        self.lock().search_lag = Some(lag);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// One request to a fake: the parts every handler records, and the fake's state.
struct Exchange {
    inner: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl axum::extract::FromRequestParts<Shared> for Exchange {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        inner: &Shared,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            inner: inner.clone(),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

/// What a fake answers: its refusal when the request broke the service's rules, or
/// its normal answer.
struct Answers {
    refusal: (StatusCode, Value),
    ok: (StatusCode, Value),
}

impl Exchange {
    /// Records the request and answers it: a scripted answer first if one waits, then
    /// the refusal when there are `violations`, else the normal answer.
    async fn answer(
        self,
        service: &'static str,
        body: Value,
        violations: Vec<String>,
        answers: Answers,
    ) -> Response {
        self.answer_with(service, body, violations, answers, |_| {})
            .await
    }

    /// [`Exchange::answer`], running `on_ok` on the fake's state when the request is
    /// served normally (the fake's memory of pages and issues changes only then).
    async fn answer_with(
        self,
        service: &'static str,
        body: Value,
        violations: Vec<String>,
        answers: Answers,
        on_ok: impl FnOnce(&mut Inner) + Send,
    ) -> Response {
        let scripted = lock(&self.inner)
            .script
            .get_mut(service)
            .and_then(VecDeque::pop_front);
        let delay = scripted.as_ref().and_then(|s| s.delay);
        let scripted = scripted.filter(|s| s.status != 0);
        let response = {
            let mut inner = lock(&self.inner);
            let (status, response) = match (&scripted, violations.is_empty()) {
                (Some(s), valid) => {
                    if s.acted && valid {
                        on_ok(&mut inner);
                    }
                    let status =
                        StatusCode::from_u16(s.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let mut response =
                        (status, axum::Json(json!({ "error": "scripted" }))).into_response();
                    if let Some(after) = s.retry_after
                        && let Ok(value) = after.to_string().parse()
                    {
                        response.headers_mut().insert("retry-after", value);
                    }
                    (status, response)
                }
                (None, true) => {
                    on_ok(&mut inner);
                    let (status, body) = answers.ok;
                    (status, (status, axum::Json(body)).into_response())
                }
                (None, false) => {
                    let (status, body) = answers.refusal;
                    (status, (status, axum::Json(body)).into_response())
                }
            };
            inner.requests.push(self.record(
                service,
                body,
                String::new(),
                violations,
                status.as_u16(),
            ));
            response
        };
        // The service has acted on the request; only its answer is late (a client that
        // gives up meanwhile does not undo it).
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        response
    }

    fn record(
        &self,
        service: &'static str,
        body: Value,
        raw: String,
        violations: Vec<String>,
        status: u16,
    ) -> Recorded {
        Recorded {
            service,
            method: self.method.to_string(),
            path: self.uri.to_string(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
            raw,
            violations,
            status,
        }
    }
}

fn labels_of(body: &Value, pointer: &str) -> Vec<String> {
    body.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect()
}

/// One query parameter, decoded.
fn form_query(uri: &Uri, name: &str) -> String {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn next_id(inner: &Shared) -> u64 {
    let mut inner = lock(inner);
    inner.next_id += 1;
    inner.next_id
}

/// Parses a JSON body, noting a violation when it is not JSON or not sent as JSON.
fn json_body(headers: &HeaderMap, body: &Bytes, violations: &mut Vec<String>) -> Value {
    if !header(headers, "content-type").starts_with("application/json") {
        violations.push(format!(
            "Content-Type must be application/json, got \"{}\"",
            header(headers, "content-type")
        ));
    }
    serde_json::from_slice(body).unwrap_or_else(|e| {
        violations.push(format!("body is not JSON: {e}"));
        Value::Null
    })
}

fn text_field(body: &Value, pointer: &str, max: usize, violations: &mut Vec<String>) -> String {
    match body.pointer(pointer) {
        Some(Value::String(s)) if s.is_empty() => {
            violations.push(format!("{pointer} is empty"));
            String::new()
        }
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                violations.push(format!(
                    "{pointer} is {} characters, at most {max}",
                    s.chars().count()
                ));
            }
            s.clone()
        }
        Some(other) => {
            violations.push(format!("{pointer} must be a string, got {other}"));
            String::new()
        }
        None => {
            violations.push(format!("{pointer} is required"));
            String::new()
        }
    }
}

/// PagerDuty Events API v2: `POST /v2/enqueue`.
async fn pagerduty(ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    let event = json_body(&ex.headers, &body, &mut v);
    let key = text_field(&event, "/routing_key", 32, &mut v);
    if key.len() != 32 {
        v.push(format!(
            "routing_key must be the 32-character integration key, got {} characters",
            key.len()
        ));
    }
    let action = text_field(&event, "/event_action", 16, &mut v);
    if !["trigger", "acknowledge", "resolve"].contains(&action.as_str()) {
        v.push(format!(
            "event_action must be trigger, acknowledge or resolve, got \"{action}\""
        ));
    }
    let dedup = event
        .get("dedup_key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if dedup.chars().count() > 255 {
        v.push("dedup_key is over 255 characters".into());
    }
    if action == "trigger" {
        text_field(&event, "/payload/summary", 1024, &mut v);
        text_field(&event, "/payload/source", 1024, &mut v);
        let severity = text_field(&event, "/payload/severity", 16, &mut v);
        if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
            v.push(format!(
                "payload.severity must be critical, error, warning or info, got \"{severity}\""
            ));
        }
        if let Some(ts) = event.pointer("/payload/timestamp").and_then(Value::as_str)
            && time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            v.push(format!("payload.timestamp \"{ts}\" is not ISO 8601"));
        }
        if let Some(details) = event.pointer("/payload/custom_details")
            && !details.is_object()
        {
            v.push("payload.custom_details must be an object".into());
        }
        for link in event
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if link.get("href").and_then(Value::as_str).is_none() {
                v.push("links[].href is required".into());
            }
        }
    } else if dedup.is_empty() {
        v.push(format!("dedup_key is required to {action}"));
    }
    if body.len() > 512 * 1024 {
        v.push("event over 512 KiB".into());
    }
    let dedup_key = if dedup.is_empty() {
        format!("generated-{}", next_id(&ex.inner))
    } else {
        dedup
    };
    let key = dedup_key.clone();
    ex.answer_with("pagerduty", event, v.clone(), Answers { refusal: (
            StatusCode::BAD_REQUEST,
            json!({ "status": "invalid event", "message": "Event object is invalid", "errors": v }),
        ), ok: (
            StatusCode::ACCEPTED,
            json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key }),
        ) }, move |state| match action.as_str() {
            "trigger" if !state.open_pages.contains(&key) => {
                state.open_pages.push(key.clone());
                state.pages.push(key);
            }
            "resolve" => state.open_pages.retain(|k| *k != key),
            _ => {}
        })
    .await
}

fn slack_blocks(body: &Value, v: &mut Vec<String>) {
    let Some(blocks) = body.get("blocks") else {
        return;
    };
    let Some(blocks) = blocks.as_array() else {
        v.push("blocks must be an array".into());
        return;
    };
    if blocks.len() > 50 {
        v.push(format!("{} blocks, at most 50", blocks.len()));
    }
    for (i, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "header" => {
                if block.pointer("/text/type").and_then(Value::as_str) != Some("plain_text") {
                    v.push(format!("blocks[{i}]: a header's text must be plain_text"));
                }
                text_field(block, "/text/text", 150, v);
            }
            "section" => {
                text_field(block, "/text/text", 3000, v);
            }
            "context" => {
                let n = block
                    .get("elements")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if n == 0 || n > 10 {
                    v.push(format!(
                        "blocks[{i}]: a context needs 1-10 elements, got {n}"
                    ));
                }
            }
            "divider" | "actions" | "image" | "rich_text" => {}
            other => v.push(format!("blocks[{i}]: unknown block type \"{other}\"")),
        }
    }
}

/// Slack Web API: `chat.postMessage` and `chat.update`.
async fn slack(Path(api_method): Path<String>, ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    let auth = header(&ex.headers, "authorization");
    if !auth.starts_with("Bearer xoxb-") && !auth.starts_with("Bearer xoxp-") {
        v.push("Authorization must be \"Bearer xoxb-…\" (a bot token)".into());
    }
    let message = json_body(&ex.headers, &body, &mut v);
    let channel = text_field(&message, "/channel", 80, &mut v);
    let has_text = message
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !has_text && message.get("blocks").is_none() {
        v.push("text or blocks is required".into());
    }
    if let Some(text) = message.get("text").and_then(Value::as_str)
        && text.chars().count() > 40_000
    {
        v.push("text over 40,000 characters".into());
    }
    slack_blocks(&message, &mut v);
    let ts = match api_method.as_str() {
        "chat.postMessage" => format!("1700000000.{:06}", next_id(&ex.inner)),
        "chat.update" => text_field(&message, "/ts", 32, &mut v),
        other => {
            v.push(format!("unknown method {other}"));
            String::new()
        }
    };
    let error = if v.iter().any(|e| e.starts_with("Authorization")) {
        "not_authed"
    } else {
        "invalid_arguments"
    };
    // Slack answers 200 with `ok: false` for a refused call.
    ex.answer("slack", message, v, Answers { refusal: (StatusCode::OK, json!({ "ok": false, "error": error })), ok: (StatusCode::OK, json!({ "ok": true, "channel": if channel.starts_with('C') { channel } else { "C0TOCSIN01".into() }, "ts": ts })) })
    .await
}

fn jira_auth(headers: &HeaderMap, v: &mut Vec<String>) {
    if !header(headers, "authorization").starts_with("Basic ") {
        v.push("Authorization must be Basic (email:API token)".into());
    }
}

/// Jira: `POST /rest/api/2/issue`.
async fn jira_create(ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    jira_auth(&ex.headers, &mut v);
    let issue = json_body(&ex.headers, &body, &mut v);
    let project = text_field(&issue, "/fields/project/key", 64, &mut v);
    let summary = text_field(&issue, "/fields/summary", 255, &mut v);
    if summary.contains('\n') {
        v.push("fields.summary must be one line".into());
    }
    text_field(&issue, "/fields/issuetype/name", 64, &mut v);
    if let Some(description) = issue.pointer("/fields/description") {
        match description.as_str() {
            Some(d) if d.chars().count() > 32_767 => {
                v.push("fields.description over 32,767 characters".into())
            }
            Some(_) => {}
            None => v.push("fields.description must be a string in API v2".into()),
        }
    }
    for label in issue
        .pointer("/fields/labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if label.as_str().is_none_or(|l| l.contains(' ')) {
            v.push(format!("labels cannot contain spaces: {label}"));
        }
    }
    let n = next_id(&ex.inner);
    let key = format!("{project}-{n}");
    let labels = labels_of(&issue, "/fields/labels");
    ex.answer_with("jira", issue, v.clone(), Answers { refusal: (StatusCode::BAD_REQUEST, json!({ "errorMessages": [], "errors": { "fields": v.join("; ") } })), ok: (StatusCode::CREATED, json!({ "id": format!("{}", 10_000 + n), "key": key, "self": "http://jira/rest/api/2/issue" })) }, move |state| {
        let lag = state.search_lag.unwrap_or(JIRA_SEARCH_LAG);
        state.searchable_at.insert(key.clone(), std::time::Instant::now() + lag);
        state.issues.push((key, labels));
    })
    .await
}

/// Jira: `POST /rest/api/2/issue/{key}/comment`.
async fn jira_comment(Path(_key): Path<String>, ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    jira_auth(&ex.headers, &mut v);
    let comment = json_body(&ex.headers, &body, &mut v);
    text_field(&comment, "/body", 32_767, &mut v);
    let n = next_id(&ex.inner);
    ex.answer(
        "jira",
        comment,
        v.clone(),
        Answers {
            refusal: (StatusCode::BAD_REQUEST, json!({ "errorMessages": v })),
            ok: (StatusCode::CREATED, json!({ "id": n.to_string() })),
        },
    )
    .await
}

/// Jira: `GET /rest/api/2/issue/{key}/transitions`.
async fn jira_transitions(Path(_key): Path<String>, ex: Exchange) -> Response {
    let mut v = Vec::new();
    jira_auth(&ex.headers, &mut v);
    ex.answer(
        "jira",
        Value::Null,
        v.clone(),
        Answers {
            refusal: (StatusCode::UNAUTHORIZED, json!({ "errorMessages": v })),
            ok: (
                StatusCode::OK,
                json!({ "transitions": [
            { "id": "11", "name": "To Do", "to": { "name": "To Do" } },
            { "id": "21", "name": "In Progress", "to": { "name": "In Progress" } },
            { "id": "31", "name": "Done", "to": { "name": "Done" } },
        ] }),
            ),
        },
    )
    .await
}

/// Jira: `POST /rest/api/2/issue/{key}/transitions`.
async fn jira_transition(Path(_key): Path<String>, ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    jira_auth(&ex.headers, &mut v);
    let request = json_body(&ex.headers, &body, &mut v);
    let id = text_field(&request, "/transition/id", 16, &mut v);
    if !["11", "21", "31"].contains(&id.as_str()) {
        v.push(format!("transition {id} is not available"));
    }
    ex.answer(
        "jira",
        request,
        v.clone(),
        Answers {
            refusal: (StatusCode::BAD_REQUEST, json!({ "errorMessages": v })),
            ok: (StatusCode::NO_CONTENT, Value::Null),
        },
    )
    .await
}

/// Jira Cloud's removed `GET /rest/api/2/search` (and v3's): 410 Gone, with Jira's
/// message, recorded as a violation.
async fn jira_removed_search(ex: Exchange) -> Response {
    let message = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046";
    ex.answer(
        "jira",
        Value::Null,
        vec![format!("{message} (410 Gone)")],
        Answers {
            refusal: (
                StatusCode::GONE,
                json!({ "errorMessages": [message], "errors": {} }),
            ),
            ok: (StatusCode::GONE, Value::Null),
        },
    )
    .await
}

/// Jira: `GET /rest/api/3/search/jql?jql=…` (or `POST` with a JSON body): the issues
/// whose label the JQL names, among those old enough to show in search. Only
/// `labels = "…"` is understood; the answer pages with `nextPageToken` / `isLast`.
async fn jira_search(ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    jira_auth(&ex.headers, &mut v);
    let request = if ex.method == Method::POST {
        json_body(&ex.headers, &body, &mut v)
    } else {
        let max = form_query(&ex.uri, "maxResults");
        json!({
            "jql": form_query(&ex.uri, "jql"),
            "fields": form_query(&ex.uri, "fields"),
            "maxResults": if max.is_empty() { Value::Null } else { max.parse::<u64>().map(Value::from).unwrap_or(Value::Null) },
        })
    };
    let jql = request["jql"].as_str().unwrap_or_default().to_owned();
    if jql.is_empty() {
        v.push("jql is required".into());
    }
    if let Some(max) = request.get("maxResults").filter(|m| !m.is_null())
        && max.as_u64().is_none_or(|m| m > 5000)
    {
        v.push(format!("maxResults must be 0-5000, got {max}"));
    }
    let now = std::time::Instant::now();
    let found: Vec<Value> = {
        let inner = lock(&ex.inner);
        inner
            .issues
            .iter()
            .filter(|(key, _)| inner.searchable_at.get(key).is_some_and(|at| *at <= now))
            .filter(|(_, labels)| labels.iter().any(|l| jql == format!("labels = \"{l}\"")))
            .map(|(key, _)| {
                let n: u64 = key.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or_default();
                let id = (10_000 + n).to_string();
                json!({ "id": id, "key": key, "self": format!("http://jira/rest/api/3/issue/{id}"), "fields": {} })
            })
            .collect()
    };
    ex.answer(
        "jira",
        request,
        v.clone(),
        Answers {
            refusal: (StatusCode::BAD_REQUEST, json!({ "errorMessages": v })),
            ok: (StatusCode::OK, json!({ "issues": found, "isLast": true })),
        },
    )
    .await
}

fn github_headers(headers: &HeaderMap, v: &mut Vec<String>) {
    if !header(headers, "authorization").starts_with("Bearer ")
        && !header(headers, "authorization").starts_with("token ")
    {
        v.push("Authorization must be \"Bearer <token>\"".into());
    }
    if header(headers, "user-agent").is_empty() {
        v.push("User-Agent is required by GitHub".into());
    }
    if header(headers, "accept") != "application/vnd.github+json" {
        v.push(format!(
            "Accept should be application/vnd.github+json, got \"{}\"",
            header(headers, "accept")
        ));
    }
}

/// GitHub: `POST /repos/{owner}/{repo}/issues`.
async fn github_create(
    Path((owner, repo)): Path<(String, String)>,
    ex: Exchange,
    body: Bytes,
) -> Response {
    let mut v = Vec::new();
    github_headers(&ex.headers, &mut v);
    let issue = json_body(&ex.headers, &body, &mut v);
    text_field(&issue, "/title", 1024, &mut v);
    if let Some(body) = issue.get("body").and_then(Value::as_str)
        && body.chars().count() > 65_536
    {
        v.push("body is too long (maximum is 65536 characters)".into());
    }
    let n = next_id(&ex.inner);
    let labels = labels_of(&issue, "/labels");
    ex.answer_with("github", issue, v.clone(), Answers { refusal: (StatusCode::UNPROCESSABLE_ENTITY, json!({ "message": "Validation Failed", "errors": v })), ok: (StatusCode::CREATED, json!({ "number": n, "html_url": format!("https://github.com/{owner}/{repo}/issues/{n}") })) }, move |state| state.issues.push((n.to_string(), labels)))
    .await
}

/// GitHub: `GET /repos/{owner}/{repo}/issues?labels=…&state=all`.
async fn github_list(Path(_p): Path<(String, String)>, ex: Exchange) -> Response {
    let mut v = Vec::new();
    github_headers(&ex.headers, &mut v);
    let wanted = form_query(&ex.uri, "labels");
    let found: Vec<Value> = lock(&ex.inner)
        .issues
        .iter()
        .filter(|(_, labels)| wanted.split(',').all(|w| labels.iter().any(|l| l == w)))
        .filter_map(|(number, _)| number.parse::<u64>().ok())
        .map(|number| json!({ "number": number }))
        .collect();
    ex.answer(
        "github",
        Value::Null,
        v.clone(),
        Answers {
            refusal: (
                StatusCode::UNAUTHORIZED,
                json!({ "message": "Bad credentials" }),
            ),
            ok: (StatusCode::OK, Value::Array(found)),
        },
    )
    .await
}

/// GitHub: `POST /repos/{owner}/{repo}/issues/{number}/comments`.
async fn github_comment(
    Path(_p): Path<(String, String, u64)>,
    ex: Exchange,
    body: Bytes,
) -> Response {
    let mut v = Vec::new();
    github_headers(&ex.headers, &mut v);
    let comment = json_body(&ex.headers, &body, &mut v);
    text_field(&comment, "/body", 65_536, &mut v);
    let n = next_id(&ex.inner);
    ex.answer(
        "github",
        comment,
        v.clone(),
        Answers {
            refusal: (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Validation Failed", "errors": v }),
            ),
            ok: (StatusCode::CREATED, json!({ "id": n })),
        },
    )
    .await
}

/// GitHub: `PATCH /repos/{owner}/{repo}/issues/{number}`.
async fn github_update(
    Path(_p): Path<(String, String, u64)>,
    ex: Exchange,
    body: Bytes,
) -> Response {
    let mut v = Vec::new();
    github_headers(&ex.headers, &mut v);
    let update = json_body(&ex.headers, &body, &mut v);
    if let Some(state) = update.get("state").and_then(Value::as_str)
        && state != "open"
        && state != "closed"
    {
        v.push(format!("state must be open or closed, got \"{state}\""));
    }
    if let Some(reason) = update.get("state_reason").and_then(Value::as_str)
        && !["completed", "not_planned", "reopened"].contains(&reason)
    {
        v.push(format!("state_reason \"{reason}\" is not valid"));
    }
    ex.answer(
        "github",
        update,
        v.clone(),
        Answers {
            refusal: (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Validation Failed", "errors": v }),
            ),
            ok: (StatusCode::OK, json!({ "state": "closed" })),
        },
    )
    .await
}

/// A generic webhook receiver: records the raw body and headers, so a test can check
/// the signature as a receiver would.
async fn webhook(ex: Exchange, body: Bytes) -> Response {
    let mut v = Vec::new();
    let parsed = json_body(&ex.headers, &body, &mut v);
    for name in ["x-tocsin-signature", "x-tocsin-timestamp"] {
        if header(&ex.headers, name).is_empty() {
            v.push(format!("{name} is missing"));
        }
    }
    let scripted = lock(&ex.inner)
        .script
        .get_mut("webhook")
        .and_then(VecDeque::pop_front);
    let status = scripted.filter(|s| s.status != 0).map_or(204, |s| s.status);
    let raw = String::from_utf8_lossy(&body).into_owned();
    let record = ex.record("webhook", parsed, raw, v, status);
    lock(&ex.inner).requests.push(record);
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::NO_CONTENT)
        .into_response()
}

async fn unknown(ex: Exchange, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let missing = format!("no such endpoint {} {}", ex.method, ex.uri.path());
    ex.answer(
        "unknown",
        body,
        vec![missing],
        Answers {
            refusal: (StatusCode::NOT_FOUND, json!({ "message": "Not Found" })),
            ok: (StatusCode::NOT_FOUND, Value::Null),
        },
    )
    .await
}
