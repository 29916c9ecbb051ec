//! Notifiers are the operator's, shared by every team: what a team sees of them, which
//! ones it may route to, which channels, projects and repositories its events may
//! reach, and Jira's eventually consistent search, through the API and the outbox
//! against the fakes of `tocsin_tests::fakes`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tocsin_api::auth::{self, Grant};
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_tests::fakes::{Fakes, Scripted};

use crate::api::Api;

/// A notifiers file over the fakes: Slack and GitHub shared by bender and flexo, each
/// with its own channels and repositories; a GitHub notifier and a webhook open to
/// flexo only; Jira open to every team with no allow-list (today's files).
fn file(url: &str) -> String {
    format!(
        r##"
public-url: http://tocsin.test
retry: {{ attempts: 8, first: 10ms, max: 50ms }}
notifiers:
  slack:
    kind: slack
    token: xoxb-test-token
    channel: "#ops"
    url: "{url}"
    channels:
      bender: ["#bender-on-call", "#checkout-alerts"]
      flexo: ["#flexo-private"]
  gh:
    kind: github
    token: ghp_test
    repository: example/ops
    url: "{url}"
    repositories:
      bender: [example/bender-web]
      flexo: [flexo/private-repo]
  flexo-gh:
    kind: github
    token: ghp_flexo
    repository: flexo/ops
    url: "{url}"
    teams: [flexo]
  flexo-hook:
    kind: webhook
    url: "https://hooks:hunter2@hooks.example.com/flexo?key=${{env:HOOK_KEY}}#frag"
    secret: s3cret
    teams: [flexo]
  jira: {{ kind: jira, url: "{url}", email: tocsin@example.com, token: jira-token, project: OPS, close-transition: Done, settle: 2s }}
routes:
  - {{ team: bender, ticket: gh, chat: slack }}
  - {{ team: flexo, ticket: flexo-gh, chat: slack, webhooks: [flexo-hook] }}
"##
    )
}

fn notifiers(url: &str) -> Arc<Notifiers> {
    let env = |name: &str| (name == "HOOK_KEY").then(|| "k3y-from-the-env".to_owned());
    Arc::new(Notifiers::parse_with(&file(url), &env).expect("notifiers parse"))
}

/// An API over a new SQLite file sending to `notifiers`, whose incidents resolve
/// 100 ms after their last alert recovers; and a flexo token.
async fn api(notifiers: Arc<Notifiers>) -> (Api, String) {
    let (dir, url) = tocsin_tests::sqlite_url();
    let config = tocsin_pipeline::Config {
        refresh_every_ms: 0,
        grace_ms: 100,
        ..tocsin_pipeline::Config::default()
    };
    let api = Api::with_config(&url, Some(dir), config)
        .await
        .with_notifiers(notifiers);
    let (flexo, _) = auth::create(api.store.as_ref(), Grant::Team("flexo".into()), "")
        .await
        .expect("token");
    (api, flexo)
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

fn event(monitor: &str, status: &str, alerting: Value) -> Value {
    json!({
        "alert": { "monitor": monitor, "status": status },
        "context": { "service": "checkout", "region": "eu-west-1", "instance": "web-1" },
        "alerting": alerting,
    })
}

/// `METHOD /path` of each request to a service, without the query.
fn paths(fakes: &Fakes, service: &str) -> Vec<String> {
    fakes
        .requests_to(service)
        .iter()
        .map(|r| {
            let path = r.path.split('?').next().unwrap_or_default();
            format!("{} {path}", r.method)
        })
        .collect()
}

#[tokio::test]
async fn a_team_sees_only_the_notifiers_open_to_it_its_own_routes_and_no_url_secrets() {
    let (api, flexo) = api(notifiers("http://127.0.0.1:9")).await;

    let (status, bender) = api.get(&api.bender, "/v1/notifiers").await;
    assert_eq!(status, StatusCode::OK, "{bender}");
    let shown: Vec<&String> = bender["notifiers"]
        .as_object()
        .expect("notifiers")
        .keys()
        .collect();
    assert_eq!(shown, ["gh", "jira", "slack"], "{bender}");
    assert_eq!(
        bender["routes"],
        json!([{ "team": "bender", "ticket": "gh", "chat": "slack" }]),
        "only bender's own route"
    );
    assert_eq!(
        bender["notifiers"]["gh"]["repositories"],
        json!(["example/bender-web"]),
        "what bender may name, not flexo's list"
    );
    let text = bender.to_string();
    for hidden in ["flexo", "hunter2", "k3y-from-the-env"] {
        assert!(!text.contains(hidden), "{hidden} shown to bender: {text}");
    }

    let (_, flexo) = api.get(&flexo, "/v1/notifiers").await;
    assert_eq!(
        flexo["notifiers"]["flexo-hook"]["url"], "https://hooks.example.com/flexo",
        "scheme, host and path only: {flexo}"
    );
    assert!(!flexo.to_string().contains("bender"), "{flexo}");

    // An admin sees every notifier and route, and the URLs just as cut.
    let (_, all) = api.get(&api.admin, "/v1/notifiers").await;
    assert_eq!(all["routes"].as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(all["notifiers"]["flexo-hook"]["teams"], json!(["flexo"]));
    let text = all.to_string();
    for secret in ["hunter2", "k3y-from-the-env", "frag", "s3cret", "ghp_"] {
        assert!(!text.contains(secret), "{secret} shown to an admin: {text}");
    }
}

#[tokio::test]
async fn a_route_naming_a_notifier_closed_to_the_team_is_refused_like_an_unknown_one() {
    let (api, flexo) = api(notifiers("http://127.0.0.1:9")).await;
    let (status, closed) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/routes/bender",
            Some(json!({ "ticket": "flexo-gh", "webhooks": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{closed}");
    assert_eq!(
        closed["error"],
        "ticket: no notifier named \"flexo-gh\" is open to team \"bender\""
    );
    let (_, unknown) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/routes/bender",
            Some(json!({ "ticket": "nope" })),
        )
        .await;
    assert_eq!(
        unknown["error"], "ticket: no notifier named \"nope\" is open to team \"bender\"",
        "a closed notifier and a missing one read the same"
    );
    let (status, answer) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/routes/bender/checkout",
            Some(json!({ "webhooks": ["flexo-hook"] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, routes) = api.get(&api.bender, "/v1/routes").await;
    assert_eq!(routes["routes"], json!([]), "nothing was stored");
    // The team the notifier is open to may route to it.
    let (status, answer) = api
        .request(
            &flexo,
            "PUT",
            "/v1/routes/flexo",
            Some(json!({ "ticket": "flexo-gh" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn hostile_ticket_queues_are_refused_and_no_request_leaves_the_allowed_repositories() {
    let fakes = Fakes::start().await.expect("fakes");
    let notifiers = notifiers(&fakes.url);
    let (api, _) = api(notifiers.clone()).await;
    let outbox = Outbox::new(api.store.clone(), notifiers);

    for (queue, error) in [
        (
            "flexo/private-repo",
            "GitHub repository \"flexo/private-repo\" is not open to team \"bender\"",
        ),
        (
            "../../orgs/flexo/teams?x=#",
            "invalid ticket queue \"../../orgs/flexo/teams?x=#\": expected a GitHub repository as owner/repo (letters, digits, ., - and _) or a Jira project key such as OPS (A-Z, 0-9, _)",
        ),
    ] {
        let body = event("Disk", "unhealthy", json!({ "ticket-queue": queue }));
        let (status, answer) = api
            .post(Some(&api.bender), "application/json", body.to_string())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{queue}: {answer}");
        assert_eq!(
            answer["rejected"],
            json!([{ "index": 0, "field": "alerting.ticket-queue", "error": error }]),
        );
    }
    // In a batch, only the hostile item is refused.
    let (status, answer) = api
        .post(
            Some(&api.bender),
            "application/json",
            json!([
                event(
                    "Disk",
                    "unhealthy",
                    json!({ "ticket-queue": "example/bender-web" })
                ),
                event(
                    "Cpu",
                    "unhealthy",
                    json!({ "ticket-queue": "flexo/private-repo" })
                ),
            ])
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert!(answer["ids"][1].is_null(), "{answer}");

    // A service's default queue is rendered and checked when the ticket is opened: a
    // refused one is dead, saying why, and nothing is sent.
    let (status, service) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/billing",
            Some(json!({ "alerting": { "ticket-queue": "flexo/private-repo" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{service}");
    let mut billing = event("Disk", "unhealthy", json!({}));
    billing["context"]["service"] = json!("billing");
    api.events(&api.bender, json!([billing])).await;
    deliver(&api, &outbox, now_ms()).await;

    assert_eq!(
        paths(&fakes, "github"),
        ["POST /repos/example/bender-web/issues"],
        "only the allowed repository is reached"
    );
    assert!(fakes.requests_to("unknown").is_empty());
    let (_, dead) = api.get(&api.bender, "/v1/notifications?state=dead").await;
    let errors: Vec<&str> = dead["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|n| n["kind"] == "github")
        .filter_map(|n| n["lastError"].as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "GitHub repository \"flexo/private-repo\" is not open to team \"bender\" on notifier \"gh\""
        ]
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn channel_and_ticket_queue_templates_are_rendered_then_checked() {
    let fakes = Fakes::start().await.expect("fakes");
    let notifiers = notifiers(&fakes.url);
    let (api, _) = api(notifiers.clone()).await;
    let outbox = Outbox::new(api.store.clone(), notifiers);
    let mut templated = event(
        "Http5xx",
        "unhealthy",
        json!({ "channel": "#${context.service}-alerts", "ticket-queue": "example/${context.repo}" }),
    );
    templated["context"]["repo"] = json!("bender-web");
    api.events(&api.bender, json!([templated.clone()])).await;
    deliver(&api, &outbox, now_ms()).await;

    let slack = fakes.requests_to("slack");
    assert_eq!(slack.len(), 1, "{:?}", paths(&fakes, "slack"));
    assert_eq!(slack[0].body["channel"], "#checkout-alerts");
    assert_eq!(
        paths(&fakes, "github"),
        ["POST /repos/example/bender-web/issues"]
    );
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    let id = incidents["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, incident) = api.get(&api.bender, &format!("/v1/incidents/{id}")).await;
    let alert = &incident["alert_list"][0];
    assert_eq!(
        (&alert["channel"], &alert["ticket_queue"]),
        (&json!("#checkout-alerts"), &json!("example/bender-web")),
        "shown as used: {incident}"
    );

    // A template that renders to a queue the team may not reach is refused as such.
    let mut hostile = templated;
    hostile["alert"]["monitor"] = json!("Latency");
    hostile["context"]["repo"] = json!("../../orgs");
    let (status, answer) = api
        .post(Some(&api.bender), "application/json", hostile.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["rejected"][0]["field"], "alerting.ticket-queue");
    assert!(
        answer["rejected"][0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid ticket queue \"example/../../orgs\"")),
        "{answer}"
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

/// Jira Cloud answers 410 Gone on `GET /rest/api/2/search`; its successor's results
/// are eventually consistent. An attempt whose create reached Jira but whose answer
/// was lost leaves no key: the retry searches the new endpoint, and while the new issue
/// does not show yet it waits out the notifier's settle period instead of opening a
/// second one. The incident's comments and transition then reach that one issue.
#[tokio::test]
async fn jira_keeps_one_ticket_per_incident_when_a_created_issue_is_not_searchable_yet() {
    let fakes = Fakes::start().await.expect("fakes");
    fakes.set_search_lag(Duration::from_millis(800));
    let text = file(&fakes.url).replace(
        "  - { team: bender, ticket: gh, chat: slack }",
        "  - { team: bender, ticket: jira }",
    );
    let notifiers =
        Arc::new(Notifiers::parse_with(&text, &|_| Some("k".into())).expect("notifiers parse"));
    let (api, _) = api(notifiers.clone()).await;
    let outbox = Outbox::new(api.store.clone(), notifiers);
    // Jira creates the issue, but a gateway answers 502.
    fakes.script(
        "jira",
        [Scripted {
            status: 502,
            acted: true,
            ..Scripted::default()
        }],
    );
    api.events(
        &api.bender,
        json!([event(
            "Http5xx",
            "unhealthy",
            json!({ "ticket-queue": "CHK" })
        )]),
    )
    .await;
    deliver(&api, &outbox, now_ms()).await;
    assert_eq!(fakes.issues().len(), 1);

    // The retry comes before the issue shows in search: it waits.
    outbox.round(now_ms() + 100).await.expect("round");
    assert_eq!(
        paths(&fakes, "jira"),
        ["POST /rest/api/2/issue", "GET /rest/api/3/search/jql"]
    );
    let search = &fakes.requests_to("jira")[1];
    assert_eq!(search.status, 200);
    assert_eq!(
        search.body["jql"],
        format!("labels = \"{}\"", fakes.issues()[0].1[1])
    );
    let (_, pending) = api
        .get(&api.bender, "/v1/notifications?state=pending")
        .await;
    assert!(
        pending["notifications"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("search does not show it yet")),
        "{pending}"
    );
    assert_eq!(
        fakes.issues().len(),
        1,
        "no second issue while it may exist"
    );

    // Once the settle period has passed the issue shows, and is the incident's.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    deliver(&api, &outbox, now_ms() + 100).await;
    let key = fakes.issues()[0].0.clone();
    let (_, sent) = api.get(&api.bender, "/v1/notifications?state=sent").await;
    assert_eq!(sent["notifications"][0]["kind"], "jira", "{sent}");

    api.events(
        &api.bender,
        json!([event(
            "Http5xx",
            "healthy",
            json!({ "ticket-queue": "CHK" })
        )]),
    )
    .await;
    for _ in 0..200 {
        let (_, list) = api.get(&api.bender, "/v1/incidents").await;
        if list["incidents"][0]["state"] == "resolved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    deliver(&api, &outbox, now_ms() + 100).await;
    let jira = paths(&fakes, "jira");
    assert_eq!(fakes.issues().len(), 1, "one ticket: {:?}", fakes.issues());
    for expected in [
        format!("POST /rest/api/2/issue/{key}/comment"),
        format!("POST /rest/api/2/issue/{key}/transitions"),
    ] {
        assert!(jira.contains(&expected), "{expected} in {jira:?}");
    }
    assert!(
        jira.iter().all(|p| !p.contains("/rest/api/2/search")),
        "the removed search is never called: {jira:?}"
    );
    let (_, dead) = api.get(&api.bender, "/v1/notifications?state=dead").await;
    assert_eq!(dead["notifications"], json!([]), "{dead}");
    assert_eq!(fakes.violations(), Vec::<String>::new());
}
