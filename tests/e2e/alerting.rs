//! Alerting through the outbox, against the faithful fakes of PagerDuty, Slack, Jira and
//! GitHub (`tocsin_tests::fakes`): who is told what when an incident opens, changes and
//! resolves; retries, `Retry-After`, dead letters; and no payload a real service would
//! refuse.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tocsin_api::auth::{self, Grant};
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_tests::fakes::{Fakes, Scripted};

use crate::api::Api;

const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const WEBHOOK_SECRET: &str = "s3cret-signing-key";

/// Notifiers pointing at the fakes: bender pages, tickets in Jira and chats in Slack;
/// flexo tickets in GitHub, chats in Slack and tells a webhook.
/// A notifiers file pointing every notifier at the fakes, with these routes (YAML lines).
/// Tickets settle in 2 s, not the default 30 s: the fake Jira's search lags 500 ms, and a
/// restart within that lag must wait for it, not outlast a test's patience.
fn notifiers_file(fakes: &Fakes, attempts: u32, routes: &str) -> String {
    let url = &fakes.url;
    format!(
        r##"
public-url: http://tocsin.test
retry: {{ attempts: {attempts}, first: 10ms, max: 50ms }}
notifiers:
  pd: {{ kind: pagerduty, routing-key: "{ROUTING_KEY}", url: "{url}" }}
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{url}" }}
  jira: {{ kind: jira, url: "{url}", email: tocsin@example.com, token: jira-token, project: OPS, close-transition: Done, settle: 2s }}
  gh: {{ kind: github, token: ghp_test, repository: example/ops, url: "{url}", settle: 2s }}
  hook: {{ kind: webhook, url: "{url}/webhook", secret: "{WEBHOOK_SECRET}" }}
routes:
{routes}
"##
    )
}

fn notifiers(fakes: &Fakes, attempts: u32) -> Arc<Notifiers> {
    let text = notifiers_file(
        fakes,
        attempts,
        "  - { team: bender, page: pd, ticket: jira, chat: slack }\n  - { team: flexo, ticket: gh, chat: slack, webhooks: [hook] }",
    );
    Arc::new(Notifiers::parse(&text).expect("notifiers parse"))
}

/// A real `tocsin serve` setup on a new SQLite file, notifying the fakes, with a token of
/// team bender.
struct Served {
    _dir: tempfile::TempDir,
    database: String,
    file: std::path::PathBuf,
    token: String,
}

impl Served {
    fn new(fakes: &Fakes, routes: &str) -> Self {
        let (dir, database) = tocsin_tests::sqlite_url();
        let file = dir.path().join("notifiers.yaml");
        std::fs::write(&file, notifiers_file(fakes, 8, routes)).expect("notifiers file");
        let token = tocsin_tests::create_token(&database, &["--team", "bender"]).expect("token");
        Self {
            _dir: dir,
            database,
            file,
            token,
        }
    }

    /// Starts (or restarts) the server.
    fn start(&self) -> tocsin_tests::Server {
        let args = ["--notifiers", self.file.to_str().expect("utf-8 path")];
        tocsin_tests::Server::start(&self.database, &args, &[]).expect("serves")
    }
}

/// GETs `path` from a server as `token`, as JSON.
async fn get_json(client: &reqwest::Client, url: &str, token: &str, path: &str) -> Value {
    client
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// An API whose incidents resolve 100 ms after their last alert recovers.
async fn api() -> Api {
    let (dir, url) = tocsin_tests::sqlite_url();
    api_on(&url, Some(dir)).await
}

async fn api_on(url: &str, dir: Option<tempfile::TempDir>) -> Api {
    let config = tocsin_pipeline::Config {
        refresh_every_ms: 0,
        grace_ms: 100,
        ..tocsin_pipeline::Config::default()
    };
    Api::with_config(url, dir, config).await
}

/// Runs outbox rounds at `now` until nothing is left to do.
async fn deliver(api: &Api, outbox: &Outbox, now: i64) {
    api.settle().await;
    for _ in 0..50 {
        if outbox.round(now).await.expect("round") == 0 {
            return;
        }
    }
    panic!("the outbox keeps finding work");
}

fn event(monitor: &str, instance: &str, status: &str, priority: &str) -> Value {
    json!({
        "alert": { "monitor": monitor, "status": status, "message": format!("{monitor} on {instance}: connection refused") },
        "context": { "service": "checkout", "region": "eu-west-1", "instance": instance },
        "alerting": { "priority": priority, "channel": "#checkout", "ticket-queue": "CHK" },
    })
}

/// Waits until the only incident of the token's team has `state`.
async fn incident_in(api: &Api, token: &str, state: &str) -> Value {
    for _ in 0..200 {
        let (_, list) = api.get(token, "/v1/incidents").await;
        if list["incidents"][0]["state"] == state {
            return list["incidents"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no incident reached {state}");
}

fn paths(fakes: &Fakes, service: &str) -> Vec<String> {
    fakes
        .requests_to(service)
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.split('?').next().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_high_incident_pages_once_tickets_and_chats_until_it_resolves() {
    pages_once_tickets_and_chats(api().await).await;
}

#[tokio::test]
async fn the_outbox_works_the_same_on_postgres() {
    pages_once_tickets_and_chats(api_on(&tocsin_tests::postgres_url().await, None).await).await;
}

async fn pages_once_tickets_and_chats(api: Api) {
    let fakes = Fakes::start().await.expect("fakes");
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes, 3));

    api.events(
        &api.bender,
        json!([event("Http5xx", "web-1", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    let incident = incident_in(&api, &api.bender, "open").await;
    let id = incident["id"].as_str().expect("id").to_owned();

    assert_eq!(
        fakes.pages(),
        std::slice::from_ref(&id),
        "one page, keyed by the incident id"
    );
    let trigger = &fakes.requests_to("pagerduty")[0].body;
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    let details = trigger["payload"]["custom_details"].to_string();
    assert!(
        details.contains("Http5xx on web-1: connection refused"),
        "what failed: {details}"
    );
    assert!(
        details.contains(&format!("http://tocsin.test/v1/incidents/{id}")),
        "a link back: {details}"
    );
    assert_eq!(paths(&fakes, "jira"), ["POST /rest/api/2/issue"]);
    let issue = &fakes.requests_to("jira")[0].body;
    assert_eq!(
        issue["fields"]["project"]["key"], "CHK",
        "the event's ticket queue"
    );
    let post = &fakes.requests_to("slack")[0].body;
    assert_eq!(post["channel"], "#checkout", "the event's channel");

    // A second alert joins: the Slack message is edited and the ticket commented on, and
    // nobody is paged again.
    api.events(
        &api.bender,
        json!([event("Http5xx", "web-2", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    assert_eq!(
        fakes.requests_to("pagerduty").len(),
        1,
        "never a second page"
    );
    assert_eq!(
        paths(&fakes, "slack"),
        [
            "POST /api/chat.postMessage",
            "POST /api/chat.update",
            "POST /api/chat.postMessage"
        ]
    );
    let reply = &fakes.requests_to("slack")[2].body;
    assert!(
        reply["thread_ts"].is_string(),
        "the change goes in the thread: {reply}"
    );
    assert_eq!(
        paths(&fakes, "jira")[1],
        "POST /rest/api/2/issue/CHK-1/comment".replace("CHK-1", &jira_key(&fakes))
    );

    // Both recover; after the grace period the page resolves and the ticket closes.
    api.events(
        &api.bender,
        json!([
            event("Http5xx", "web-1", "healthy", "high"),
            event("Http5xx", "web-2", "healthy", "high")
        ]),
    )
    .await;
    incident_in(&api, &api.bender, "resolved").await;
    deliver(&api, &outbox, now_ms()).await;
    let pd = fakes.requests_to("pagerduty");
    assert_eq!(
        pd.last().map(|r| r.body["event_action"].clone()),
        Some(json!("resolve"))
    );
    assert_eq!(
        pd.last().map(|r| r.body["dedup_key"].clone()),
        Some(json!(id))
    );
    let jira = paths(&fakes, "jira");
    let key = jira_key(&fakes);
    assert!(
        jira.contains(&format!("POST /rest/api/2/issue/{key}/transitions")),
        "{jira:?}"
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());

    let (_, sent) = api
        .get(&api.bender, &format!("/v1/notifications?incident={id}"))
        .await;
    let states: Vec<&str> = sent["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["state"].as_str())
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == "sent"),
        "{sent}"
    );
}

fn jira_key(fakes: &Fakes) -> String {
    fakes
        .issues()
        .first()
        .map(|(key, _)| key.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_low_incident_opens_a_github_issue_and_a_signed_webhook_without_paging() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes, 3));
    let (flexo, _) = auth::create(api.store.as_ref(), Grant::Team("flexo".into()), "")
        .await
        .expect("token");
    let mut low = event("DiskFree", "db-1", "unhealthy", "low");
    low["alerting"]["ticket-queue"] = json!("example/storage");
    api.events(&flexo, json!([low])).await;
    deliver(&api, &outbox, now_ms()).await;

    assert!(fakes.requests_to("pagerduty").is_empty(), "low never pages");
    assert_eq!(
        paths(&fakes, "github"),
        ["POST /repos/example/storage/issues"]
    );
    let issue = &fakes.requests_to("github")[0];
    assert!(
        issue
            .headers
            .iter()
            .any(|(k, v)| k == "user-agent" && v.starts_with("Tocsin/"))
    );
    let hook = &fakes.requests_to("webhook")[0];
    let header = |name: &str| {
        hook.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let timestamp: i64 = header("x-tocsin-timestamp").parse().expect("timestamp");
    assert!(
        tocsin_notify::webhook::verify(
            WEBHOOK_SECRET.as_bytes(),
            timestamp,
            hook.raw.as_bytes(),
            &header("x-tocsin-signature")
        ),
        "the receiver can check the signature"
    );
    assert!(!tocsin_notify::webhook::verify(
        b"wrong",
        timestamp,
        hook.raw.as_bytes(),
        &header("x-tocsin-signature")
    ));
    assert_eq!(hook.body["action"], "open");

    let mut healthy = event("DiskFree", "db-1", "healthy", "low");
    healthy["alerting"]["ticket-queue"] = json!("example/storage");
    api.events(&flexo, json!([healthy])).await;
    incident_in(&api, &flexo, "resolved").await;
    deliver(&api, &outbox, now_ms()).await;
    let github = paths(&fakes, "github");
    // A comment when every alert is healthy (resolving), then at the resolution a
    // comment and the close.
    assert_eq!(github.len(), 4, "{github:?}");
    assert!(
        github[1].ends_with("/comments") && github[2].ends_with("/comments"),
        "{github:?}"
    );
    assert!(github[3].starts_with("PATCH"), "{github:?}");
    assert_eq!(fakes.requests_to("github")[3].body["state"], "closed");
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_notifier_that_fails_then_succeeds_delivers_once() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes, 3));
    // The first request (the page) gets a 500, then everything works.
    fakes.script(
        "pagerduty",
        [Scripted {
            status: 500,
            ..Scripted::default()
        }],
    );
    api.events(
        &api.bender,
        json!([event("Http5xx", "web-1", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    // The retry is due after its backoff; run the outbox as if that time had passed.
    deliver(&api, &outbox, now_ms() + 60_000).await;
    let pd = fakes.requests_to("pagerduty");
    assert_eq!(pd.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 202]);
    assert_eq!(fakes.pages().len(), 1);
    let (_, list) = api.get(&api.bender, "/v1/notifications").await;
    let page = list["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .find(|n| n["kind"] == "pagerduty")
        .cloned()
        .expect("page");
    assert_eq!(page["state"], "sent");
    assert_eq!(page["attempts"], 2);
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_spent_budget_dead_letters_until_retried() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes, 2));
    fakes.script(
        "pagerduty",
        [Scripted {
            status: 429,
            retry_after: Some(120),
            ..Scripted::default()
        }],
    );
    api.events(
        &api.bender,
        json!([event("Http5xx", "web-1", "unhealthy", "high")]),
    )
    .await;
    let started = now_ms();
    deliver(&api, &outbox, started).await;
    let (_, list) = api
        .get(&api.bender, "/v1/notifications?state=pending")
        .await;
    let page = &list["notifications"][0];
    assert_eq!(page["kind"], "pagerduty", "{list}");
    assert!(
        page["dueAt"].as_i64().unwrap_or(0) >= started + 120_000,
        "waits for Retry-After: {page}"
    );
    // A minute later it is still waiting; two minutes later it goes.
    deliver(&api, &outbox, started + 60_000).await;
    assert_eq!(fakes.requests_to("pagerduty").len(), 1);
    deliver(&api, &outbox, started + 121_000).await;
    assert_eq!(fakes.requests_to("pagerduty").len(), 2);

    // Another incident: two failures spend a budget of two attempts, so its page is
    // dead, visible, and can be queued again.
    fakes.script(
        "pagerduty",
        [
            Scripted {
                status: 503,
                ..Scripted::default()
            },
            Scripted {
                status: 503,
                ..Scripted::default()
            },
        ],
    );
    api.events(
        &api.bender,
        json!([event("Latency", "web-2", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    deliver(&api, &outbox, now_ms() + 60_000).await;
    let (_, dead) = api.get(&api.bender, "/v1/notifications?state=dead").await;
    let dead = dead["notifications"].as_array().expect("list").clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{dead:?}"
    );
    let id = dead[0]["id"].as_str().expect("id");
    let (status, _) = api
        .request(
            &api.bender,
            "POST",
            &format!("/v1/notifications/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::ACCEPTED);
    deliver(&api, &outbox, now_ms()).await;
    let (_, after) = api
        .get(
            &api.bender,
            &format!(
                "/v1/notifications?incident={}",
                dead[0]["incidentId"].as_str().unwrap_or_default()
            ),
        )
        .await;
    assert!(
        after["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .all(|n| n["state"] == "sent"),
        "{after}"
    );
    let (status, _) = api
        .request(&api.bender, "POST", "/v1/notifications/nope/retry", None)
        .await;
    assert_eq!(status, axum::http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refusal_is_dead_at_once_and_secrets_never_show() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let text = format!(
        "notifiers:\n  slack: {{ kind: slack, token: not-a-bot-token, channel: '#ops', url: '{}' }}\nroutes:\n  - {{ chat: slack }}\n",
        fakes.url
    );
    let notifiers = Arc::new(Notifiers::parse(&text).expect("parse"));
    let outbox = Outbox::new(api.store.clone(), notifiers.clone());
    api.events(
        &api.bender,
        json!([event("Http5xx", "web-1", "unhealthy", "low")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    let (_, dead) = api.get(&api.bender, "/v1/notifications?state=dead").await;
    assert_eq!(
        dead["notifications"][0]["lastError"], "slack: not_authed",
        "{dead}"
    );
    assert_eq!(
        dead["notifications"][0]["attempts"], 1,
        "a refusal is not retried"
    );
    let shown = format!("{dead} {} {notifiers:?}", notifiers.public(None));
    assert!(!shown.contains("not-a-bot-token"), "{shown}");
}

#[tokio::test]
async fn sigkill_during_delivery_then_restart_delivers_each_notification_and_pages_once() {
    let fakes = Fakes::start().await.expect("fakes");
    let served = Served::new(&fakes, "  - { page: pd, ticket: jira, chat: slack }");
    let token = served.token.clone();
    let server = served.start();

    // PagerDuty and Jira act on the first request at once but answer it only after 5 s:
    // the server is killed while it waits, so it never learns that they did.
    let held = Scripted {
        delay: Some(Duration::from_secs(5)),
        ..Scripted::default()
    };
    fakes.script("pagerduty", [held.clone()]);
    fakes.script("jira", [held]);
    let client = reqwest::Client::new();
    let events: Vec<Value> = ["Http5xx", "Latency", "DiskFree"]
        .iter()
        .map(|monitor| event(monitor, "web-1", "unhealthy", "high"))
        .collect();
    let answer = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&token)
        .json(&events)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fakes.requests_to("pagerduty").is_empty() || fakes.requests_to("jira").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().expect("SIGKILL");

    let restarted = served.start();
    // Three incidents, each told to PagerDuty, Jira and Slack.
    all_sent(&client, &restarted.url, &token, 9, Duration::from_secs(30)).await;
    let mut pages = fakes.pages();
    pages.sort();
    pages.dedup();
    assert_eq!(
        fakes.pages().len(),
        3,
        "each incident paged once: {:?}",
        fakes.pages()
    );
    assert_eq!(pages.len(), 3);
    assert_eq!(
        fakes.issues().len(),
        3,
        "no second ticket after the restart: {:?}",
        fakes.issues()
    );
    // Slack's API has no idempotency key: a post in flight at the kill may be repeated.
    let posts = fakes.requests_to("slack");
    let mut titles: Vec<String> = posts.iter().map(|r| r.body["text"].to_string()).collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 3, "each incident posted: {titles:?}");
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

/// A notifier that hangs (PagerDuty takes the first page but never answers within the
/// request timeout of 10 s): that delivery times out and is retried, PagerDuty's dedup
/// keeps it one page, and meanwhile Slack and a second incident's page go out at once.
#[tokio::test]
async fn a_hanging_notifier_times_out_and_is_retried_and_holds_nothing_else_up() {
    let fakes = Fakes::start().await.expect("fakes");
    let served = Served::new(&fakes, "  - { page: pd, chat: slack }");
    let token = served.token.clone();
    let server = served.start();
    fakes.script(
        "pagerduty",
        [Scripted {
            delay: Some(Duration::from_secs(60)),
            ..Scripted::default()
        }],
    );
    let client = reqwest::Client::new();
    let post = async |monitor: &str| {
        let answer = client
            .post(format!("{}/v1/events", server.url))
            .bearer_auth(&token)
            .json(&event(monitor, "web-1", "unhealthy", "high"))
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), 202);
    };
    post("Http5xx").await;
    let started = std::time::Instant::now();
    while fakes.requests_to("pagerduty").is_empty() || fakes.requests_to("slack").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the page and the post start at once: {:?}",
            fakes.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the first page hangs, a second incident is paged and posted at once.
    post("Latency").await;
    let second = std::time::Instant::now();
    while fakes.requests_to("pagerduty").len() < 2 || fakes.requests_to("slack").len() < 2 {
        assert!(
            second.elapsed() < Duration::from_secs(5),
            "a hanging page held up another incident: {:?}",
            fakes.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "all of this happened while the first page still hung"
    );

    // The hung page times out and its retry is answered.
    let list = all_sent(&client, &server.url, &token, 4, Duration::from_secs(40)).await;
    let hung = list["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["notifier"] == "pd" && n["attempts"].as_i64() > Some(1))
        .unwrap_or_else(|| panic!("the hung page was retried: {list}"));
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "given up only at the request timeout"
    );
    assert_eq!(hung["state"], "sent");
    assert_eq!(
        fakes.pages().len(),
        2,
        "one page per incident: {:?}",
        fakes.pages()
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

/// The server hands a new incident to the outbox in memory and sends before it records:
/// an update that arrives while the first post is still in flight waits for it, edits
/// the message that post created, and every delivery ends recorded as sent. The
/// sender's `traceparent` reaches the history, the incident and the notifications.
#[tokio::test]
async fn an_update_waits_for_the_new_incidents_post_in_flight_and_the_trace_id_follows() {
    let fakes = Fakes::start().await.expect("fakes");
    let served = Served::new(&fakes, "  - { page: pd, chat: slack }");
    let token = served.token.clone();
    let server = served.start();
    fakes.script(
        "slack",
        [Scripted {
            delay: Some(Duration::from_millis(800)),
            ..Scripted::default()
        }],
    );
    let client = reqwest::Client::new();
    let send = |body: Value| {
        client
            .post(format!("{}/v1/events", server.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // The sender's W3C trace id follows the event to the incident and its notifications.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!([event("Http5xx", "web-1", "unhealthy", "high")]))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);
    let echoed = answer.headers()["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        echoed.starts_with(&format!("00-{trace}-")) && echoed.len() == 55,
        "the answer names the same trace: {echoed}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fakes.requests_to("slack").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no post started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The post is held for 800 ms; a second alert joins the incident meanwhile.
    let answer = send(json!([event("Http5xx", "web-2", "unhealthy", "high")]))
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);
    let fresh = answer.headers()["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        fresh.len() == 55 && !fresh.contains(trace),
        "a request without traceparent starts a trace of its own: {fresh}"
    );

    // The open to PagerDuty and Slack, the update to both.
    let list = all_sent(&client, &server.url, &token, 4, Duration::from_secs(20)).await;
    assert_eq!(
        paths(&fakes, "slack"),
        [
            "POST /api/chat.postMessage",
            "POST /api/chat.update",
            "POST /api/chat.postMessage"
        ],
        "one post, then an edit of it and a reply in its thread: {list}"
    );
    let slack = fakes.requests_to("slack");
    assert!(
        slack[1].body["ts"].is_string(),
        "the edit names the post: {}",
        slack[1].body
    );
    assert_eq!(slack[2].body["thread_ts"], slack[1].body["ts"]);
    assert_eq!(fakes.pages().len(), 1, "paged once");
    let page = fakes.requests_to("pagerduty")[0].body.to_string();
    assert!(
        page.contains(trace),
        "the page carries the trace id: {page}"
    );
    assert!(
        slack[0].body.to_string().contains(trace),
        "so does the chat"
    );
    let incidents = get_json(&client, &server.url, &token, "/v1/incidents").await;
    assert_eq!(incidents["incidents"][0]["trace_id"], trace);
    let history = get_json(&client, &server.url, &token, "/v1/history").await;
    let traced: Vec<&Value> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["trace_id"] == trace)
        .collect();
    assert_eq!(
        traced.len(),
        1,
        "the first event carries the trace: {history}"
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

/// Routes set through the API: a team's route wins over the file's catch-all, a
/// service's over the team's; each names only configured notifiers of the right kind,
/// only for the caller's own team, and never shows a secret.
#[tokio::test]
async fn routes_set_through_the_api_choose_the_notifiers() {
    let fakes = Fakes::start().await.expect("fakes");
    let url = &fakes.url;
    let text = format!(
        "notifiers:\n  pd: {{ kind: pagerduty, routing-key: \"{ROUTING_KEY}\", url: \"{url}\" }}\n  \
         slack: {{ kind: slack, token: xoxb-secret-token, channel: \"#ops\", url: \"{url}\" }}\n  \
         jira: {{ kind: jira, url: \"{url}\", email: tocsin@example.com, token: jira-secret, project: OPS }}\n  \
         gh: {{ kind: github, token: ghp_secret, repository: example/ops, url: \"{url}\" }}\n\
         routes:\n  - {{ ticket: jira }}\n"
    );
    let notifiers = Arc::new(Notifiers::parse(&text).expect("notifiers"));
    let api = api().await.with_notifiers(notifiers.clone());
    let outbox = Outbox::new(api.store.clone(), notifiers);
    let bender = api.bender.clone();

    // The file's catch-all: a ticket in Jira.
    api.events(
        &bender,
        json!([event("Http5xx", "web-1", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    assert_eq!(paths(&fakes, "jira"), ["POST /rest/api/2/issue"]);
    assert!(fakes.requests_to("slack").is_empty() && fakes.pages().is_empty());

    // The team's route: chat only.
    let (status, body) = api
        .request(
            &bender,
            "PUT",
            "/v1/routes/bender",
            Some(json!({ "chat": "slack" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["team"], "bender");
    api.events(
        &bender,
        json!([event("Latency", "web-1", "unhealthy", "high")]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    assert_eq!(paths(&fakes, "slack"), ["POST /api/chat.postMessage"]);
    assert_eq!(
        fakes.requests_to("jira").len(),
        1,
        "no ticket by the file's route"
    );

    // The service's route wins over the team's: a page and a GitHub issue.
    let (status, body) = api
        .request(
            &bender,
            "PUT",
            "/v1/routes/bender/checkout",
            Some(json!({ "page": "pd", "ticket": "gh" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut disk = event("DiskFree", "web-1", "unhealthy", "high");
    disk["alerting"]["ticket-queue"] = json!("example/ops");
    api.events(&bender, json!([disk])).await;
    deliver(&api, &outbox, now_ms()).await;
    assert_eq!(fakes.pages().len(), 1, "paged by the service's route");
    assert_eq!(paths(&fakes, "github"), ["POST /repos/example/ops/issues"]);
    assert_eq!(fakes.requests_to("slack").len(), 1, "not the team's chat");

    // Bad routes are refused, saying why, and change nothing.
    for (route, why) in [
        (json!({ "page": "nobody" }), "no notifier named \"nobody\""),
        (
            json!({ "page": "slack" }),
            "\"slack\" is a slack notifier, expected pagerduty",
        ),
        (json!({}), "at least one notifier"),
        (
            json!({ "chat": "slack", "secret": "x" }),
            "unknown field `secret`",
        ),
        (json!({ "webhooks": "slack" }), "webhooks"),
    ] {
        let (status, body) = api
            .request(&bender, "PUT", "/v1/routes/bender", Some(route.clone()))
            .await;
        assert_eq!(status, 400, "{route}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(why),
            "{route}: {body}"
        );
    }
    let (status, body) = api
        .request(
            &bender,
            "PUT",
            "/v1/routes/flexo",
            Some(json!({ "chat": "slack" })),
        )
        .await;
    assert_eq!(status, 403, "another team's route: {body}");

    let (status, list) = api.get(&bender, "/v1/routes").await;
    assert_eq!(status, 200);
    assert_eq!(list["routes"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        list["routes"][0]["chat"], "slack",
        "the team's route is unchanged: {list}"
    );
    assert_eq!(list["file"][0]["ticket"], "jira");
    for secret in [
        "xoxb-secret-token",
        "jira-secret",
        "ghp_secret",
        ROUTING_KEY,
    ] {
        assert!(!list.to_string().contains(secret), "{secret} shown: {list}");
    }

    let (status, _) = api
        .request(&bender, "DELETE", "/v1/routes/bender/checkout", None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = api
        .request(&bender, "DELETE", "/v1/routes/bender/checkout", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

/// Waits until the server lists exactly `count` notifications, all sent; returns the
/// list.
async fn all_sent(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    count: usize,
    within: Duration,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let list = get_json(client, url, token, "/v1/notifications").await;
        let all = list["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if all.len() == count && all.iter().all(|n| n["state"] == "sent") {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not everything was delivered: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_collectors(mut event: Value) -> Value {
    event["plugins"] = json!([
        { "type": "markdown", "params": { "title": "Owner", "content": "Owned by the ${context.service} team" } },
        { "type": "runbook", "params": { "id": "TSG-CHECKOUT-1" } },
        { "type": "cluster-health" },
        { "type": "recent-changes" },
        { "type": "previous-incidents" },
        { "type": "runbook", "params": { "id": "TSG-MISSING" } },
    ]);
    event
}

#[tokio::test]
async fn collectors_put_runbook_health_and_changes_on_the_incident_and_its_page() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let collectors = tocsin_collect::Collectors::new(api.store.clone());
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes, 3)).with_collectors(collectors);

    let request = axum::http::Request::put("/v1/runbooks/TSG-CHECKOUT-1")
        .header("authorization", format!("Bearer {}", api.bender))
        .header("content-type", "text/markdown")
        .body(axum::body::Body::from(
            "## Restart\n1. `kubectl rollout restart deploy/checkout`\n",
        ))
        .expect("request");
    let (status, runbook, _) = api.call(request).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{runbook}");
    let (status, change) = api
        .request(&api.bender, "POST", "/v1/changes", Some(json!({ "service": "checkout", "kind": "deploy", "description": "v2.3.1: new connection pool", "link": "https://ci.example.com/run/812" })))
        .await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{change}");

    api.events(
        &api.bender,
        json!([with_collectors(event(
            "Http5xx",
            "web-1",
            "unhealthy",
            "high"
        ))]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    let incident = incident_in(&api, &api.bender, "open").await;
    let (_, detail) = api
        .get(
            &api.bender,
            &format!("/v1/incidents/{}", incident["id"].as_str().expect("id")),
        )
        .await;
    let context = detail["context"].as_array().expect("context").clone();
    let section = |title: &str| -> Value {
        context
            .iter()
            .find(|s| s["title"].as_str().is_some_and(|t| t.starts_with(title)))
            .cloned()
            .unwrap_or_else(|| panic!("no {title} section: {context:?}"))
    };
    assert_eq!(section("Owner")["markdown"], "Owned by the checkout team");
    assert!(
        section("Runbook TSG-CHECKOUT-1")["markdown"]
            .as_str()
            .unwrap_or_default()
            .contains("kubectl rollout restart")
    );
    assert!(
        section("Cluster health")["markdown"]
            .as_str()
            .unwrap_or_default()
            .contains("**1 of 1**"),
        "{context:?}"
    );
    assert!(
        section("Recent changes to checkout")["markdown"]
            .as_str()
            .unwrap_or_default()
            .contains("v2.3.1: new connection pool")
    );
    assert!(
        section("Previous incidents")["markdown"]
            .as_str()
            .unwrap_or_default()
            .starts_with("None")
    );
    // A collector that fails says why, and the others are not affected.
    let missing = section("runbook");
    assert!(
        missing["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no runbook \"TSG-MISSING\""),
        "{missing}"
    );

    // The page and the ticket carry the context: what to do and where to look.
    let details = fakes.requests_to("pagerduty")[0].body["payload"]["custom_details"].to_string();
    assert!(details.contains("kubectl rollout restart"), "{details}");
    let ticket = fakes.requests_to("jira")[0].body["fields"]["description"].to_string();
    assert!(ticket.contains("v2.3.1: new connection pool"), "{ticket}");
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn runbooks_and_changes_refuse_bad_input_clearly() {
    let api = api().await;
    let put = |token: &str, id: &str, body: Vec<u8>| {
        axum::http::Request::put(format!("/v1/runbooks/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::from(body))
            .expect("request")
    };
    let (status, _, _) = api
        .call(put(&api.bender, "TSG-1", b"# Steps".to_vec()))
        .await;
    assert_eq!(status, axum::http::StatusCode::OK);
    for (token, id, body, expected, message) in [
        (
            api.bender.as_str(),
            "bad%20id!",
            b"x".to_vec(),
            400,
            "invalid runbook id",
        ),
        (
            api.bender.as_str(),
            "TSG-2",
            b"   ".to_vec(),
            400,
            "cannot be empty",
        ),
        (api.bender.as_str(), "TSG-2", vec![0xff, 0xfe], 400, "UTF-8"),
        (
            api.bender.as_str(),
            "TSG-2",
            vec![b'x'; 300 * 1024],
            413,
            "256 KiB",
        ),
        (api.admin.as_str(), "TSG-2", b"x".to_vec(), 400, "?team="),
    ] {
        let (status, answer, _) = api.call(put(token, id, body)).await;
        assert_eq!(status.as_u16(), expected, "{id}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{message}: {answer}"
        );
    }
    let (_, runbook) = api.get(&api.bender, "/v1/runbooks/TSG-1").await;
    assert_eq!(
        runbook["markdown"], "# Steps",
        "refused writes change nothing"
    );

    for (change, message) in [
        (
            json!({ "service": "checkout", "kind": "rollback", "description": "x" }),
            "not a kind of change",
        ),
        (
            json!({ "service": "checkout", "kind": "deploy", "description": "" }),
            "description",
        ),
        (
            json!({ "service": "checkout", "kind": "deploy", "description": "x", "color": "red" }),
            "unknown field",
        ),
        (
            json!({ "service": "checkout", "kind": "deploy", "description": "x", "at": "yesterday" }),
            "at",
        ),
    ] {
        let (status, answer) = api
            .request(&api.bender, "POST", "/v1/changes", Some(change))
            .await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{message}: {answer}"
        );
    }
    let (status, _) = api.get(&api.bender, "/v1/changes").await;
    assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
}

/// A team no route takes is told nothing and costs the outbox nothing: its notices are
/// cleared without reading its incidents or running their collectors, while a routed
/// team's incident beside it is collected for and notified as ever.
#[tokio::test]
async fn a_team_without_a_route_is_neither_collected_for_nor_notified() {
    let api = api().await;
    let fakes = Fakes::start().await.expect("fakes");
    let only_bender = Arc::new(
        Notifiers::parse(&notifiers_file(
            &fakes,
            3,
            "  - { team: bender, chat: slack }",
        ))
        .expect("notifiers parse"),
    );
    let collectors = tocsin_collect::Collectors::new(api.store.clone());
    let outbox = Outbox::new(api.store.clone(), only_bender).with_collectors(collectors);
    let (flexo, _) = auth::create(api.store.as_ref(), Grant::Team("flexo".into()), "")
        .await
        .expect("token");
    let owner = |team: &str| {
        let mut e = event("Http5xx", "web-1", "unhealthy", "high");
        e["plugins"] = json!([{ "type": "markdown", "params": { "title": "Owner", "content": format!("owned by {team}") } }]);
        e
    };
    api.events(&flexo, json!([owner("flexo")])).await;
    api.events(&api.bender, json!([owner("bender")])).await;
    deliver(&api, &outbox, now_ms()).await;

    let flexo_incident = incident_in(&api, &flexo, "open").await;
    let (_, detail) = api
        .get(
            &flexo,
            &format!(
                "/v1/incidents/{}",
                flexo_incident["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(detail["context"], json!([]), "no collector ran: {detail}");
    let (_, told) = api.get(&flexo, "/v1/notifications").await;
    assert_eq!(told["notifications"], json!([]), "{told}");

    let bender_incident = incident_in(&api, &api.bender, "open").await;
    let (_, detail) = api
        .get(
            &api.bender,
            &format!(
                "/v1/incidents/{}",
                bender_incident["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(
        detail["context"][0]["markdown"], "owned by bender",
        "{detail}"
    );
    let posts = fakes.requests_to("slack");
    assert_eq!(posts.len(), 1, "bender's incident only: {posts:?}");
    assert!(!format!("{posts:?}").contains("flexo"), "{posts:?}");
    // Nothing is left for a later round.
    assert_eq!(outbox.round(now_ms()).await.expect("round"), 0);
}
