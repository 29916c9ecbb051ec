//! The isolation matrix (docs/security.md, teams as tenants), against a real `tocsin serve` with
//! notifiers: teams bender and flexo each own one of every object; then, for every route
//! of `/openapi.json`, flexo acts on bender's objects by id, by name, with `?team=` and
//! with filters. Every answer must be a refusal (403, 404) or flexo's own data, no
//! answer may carry anything of bender's, and afterwards everything bender sees is as it
//! was, and bender's next alert still opens an incident and pages.
//!
//! The route list comes from the served OpenAPI document: a route with no row here
//! fails the test, so a new route cannot ship without its isolation row.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tocsin_tests::fakes::Fakes;
use tocsin_tests::plugins::component;

/// Strings that only bender's objects carry; none may reach flexo.
const RUNBOOK_SECRET: &str = "runbook-secret-7731";
const CHANGE_SECRET: &str = "change-secret-5521";
const HOOK_SECRET: &str = "hook-secret-key-9043";

/// How an answer to flexo may look.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 403 or 404: bender's object, or acting for bender.
    Denied,
    /// A 2xx answer with flexo's own data only (or a 400 for what flexo may not say).
    Own,
}

/// One request flexo makes.
struct Try {
    method: &'static str,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    expect: Expect,
}

fn attempt(method: &'static str, path: impl Into<String>, expect: Expect) -> Try {
    Try {
        method,
        path: path.into(),
        body: None,
        expect,
    }
}

fn with_json(method: &'static str, path: impl Into<String>, body: Value, expect: Expect) -> Try {
    Try {
        method,
        path: path.into(),
        body: Some(("application/json", body.to_string().into_bytes())),
        expect,
    }
}

/// What bender owns, by id.
struct Owned {
    incident: String,
    suppression: String,
    silence: String,
    notifications: Vec<String>,
    fingerprints: Vec<String>,
    events: Vec<String>,
}

struct World {
    server: tocsin_tests::Server,
    fakes: Fakes,
    client: reqwest::Client,
    bender: String,
    flexo: String,
    _dir: tempfile::TempDir,
}

impl World {
    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(token);
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn json(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self
            .call(
                token,
                method,
                path,
                body.map(|b| ("application/json", b.to_string().into_bytes())),
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// A time `minutes` from now, as RFC 3339.
fn at(minutes: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn event(monitor: &str, service: &str, instance: &str) -> Value {
    json!({
        "alert": {"monitor": monitor, "status": "unhealthy", "message": format!("{monitor} failed")},
        "context": {"service": service, "region": "eu-west-1", "instance": instance},
        "alerting": {"priority": "high"},
    })
}

async fn world() -> World {
    let fakes = Fakes::start().await.expect("fakes");
    let (dir, database) = tocsin_tests::sqlite_url();
    let file = dir.path().join("notifiers.yaml");
    let url = &fakes.url;
    std::fs::write(
        &file,
        format!(
            r##"
public-url: http://tocsin.test
retry: {{ attempts: 3, first: 10ms, max: 50ms }}
notifiers:
  pd: {{ kind: pagerduty, routing-key: "0123456789abcdef0123456789abcdef", url: "{url}" }}
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{url}" }}
  jira: {{ kind: jira, url: "{url}", email: tocsin@example.com, token: jira-token, project: OPS, close-transition: Done }}
  hook: {{ kind: webhook, url: "{url}/webhook?key={HOOK_SECRET}", secret: webhook-signing-secret }}
routes:
  - {{ team: flexo, page: pd, chat: slack, webhooks: [hook] }}
"##
        ),
    )
    .expect("notifiers file");
    let bender = tocsin_tests::create_token(&database, &["--team", "bender"]).expect("token");
    let flexo = tocsin_tests::create_token(&database, &["--team", "flexo"]).expect("token");
    let args = ["--notifiers", file.to_str().expect("utf-8 path")];
    let server =
        tocsin_tests::Server::start(&database, &args, &[("TOCSIN_LOG", "info")]).expect("serves");
    World {
        server,
        fakes,
        // A connection per request: a refused upload leaves its connection closing.
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        bender,
        flexo,
        _dir: dir,
    }
}

/// Gives `team` one of every object, named after the team; returns bender's ids.
async fn populate(w: &World, token: &str, team: &str) -> Owned {
    let service = format!("{team}-web");
    w.json(
        token,
        "PUT",
        &format!("/v1/services/{service}"),
        Some(json!({"retired": [format!("{team}-old-1")]})),
    )
    .await;
    w.json(
        token,
        "PUT",
        &format!("/v1/routes/{team}"),
        Some(json!({"page": "pd", "ticket": "jira", "chat": "slack"})),
    )
    .await;
    let (status, text) = w
        .call(
            token,
            "PUT",
            &format!("/v1/runbooks/TSG-{team}-1"),
            Some((
                "text/markdown",
                format!("Restart {team}: {RUNBOOK_SECRET}-{team}").into_bytes(),
            )),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    w.json(
        token,
        "PUT",
        &format!("/v1/logs-queries/{team}-errors"),
        Some(json!({"sql": format!("SELECT line FROM logs WHERE service = :service -- {team}-query-secret"),
                    "description": format!("{team}'s errors")})),
    )
    .await;
    w.json(
        token,
        "POST",
        "/v1/changes",
        Some(json!({"service": service, "kind": "deploy",
                    "description": format!("{team} rolled out v42 {CHANGE_SECRET}-{team}")})),
    )
    .await;
    for (name, kind, package) in [
        (format!("{team}-chaos"), "filter", "chaos"),
        (format!("{team}-nagios"), "transformer", "nagios"),
    ] {
        let (status, text) = w
            .call(
                token,
                "PUT",
                &format!("/v1/plugins/{name}?kind={kind}"),
                Some(("application/wasm", component(package))),
            )
            .await;
        assert_eq!(status, 201, "{text}");
    }
    // A dead letter: a line the Nagios transformer cannot read.
    let (status, text) = w
        .call(
            token,
            "POST",
            &format!("/v1/ingest/{team}-nagios?service={service}"),
            Some(("text/plain", b"not a nagios line".to_vec())),
        )
        .await;
    assert_eq!(status, 422, "{text}");
    let suppression = w
        .json(
            token,
            "POST",
            "/v1/suppressions",
            Some(json!({"description": format!("{team} maintenance"),
                "startTime": at(-60), "endTime": at(24 * 60),
                "metadata": {"ticket": format!("{team}-42")},
                "targets": [{"service": service, "monitor": format!("{team}Maintained")}]})),
        )
        .await;
    let silence = w
        .json(
            token,
            "POST",
            "/api/v2/silences",
            Some(json!({"matchers": [{"name": "alertname", "value": format!("{team}Silenced"), "isRegex": false, "isEqual": true}],
                "startsAt": at(-60), "endsAt": at(24 * 60),
                "createdBy": team, "comment": "silenced"})),
        )
        .await;
    let mut counted = event(&format!("{team}Counted"), &service, &format!("{team}-2"));
    counted["filters"] =
        json!([{"type": "plugin", "params": {"name": format!("{team}-chaos"), "mode": "count"}}]);
    let sent = w
        .json(
            token,
            "POST",
            "/v1/events",
            Some(json!([
                event(&format!("{team}Secret"), &service, &format!("{team}-1")),
                event(&format!("{team}Maintained"), &service, &format!("{team}-1")),
                event(
                    &format!("{team}Retired"),
                    &service,
                    &format!("{team}-old-1")
                ),
                counted,
            ])),
        )
        .await;
    let events: Vec<String> = sent["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    assert_eq!(events.len(), 4, "{sent}");
    // Wait for the incidents and for every notification to be delivered.
    let mut incident = String::new();
    for _ in 0..300 {
        let incidents = w.json(token, "GET", "/v1/incidents", None).await;
        let notifications = w.json(token, "GET", "/v1/notifications", None).await;
        let settled = notifications["notifications"]
            .as_array()
            .is_some_and(|n| !n.is_empty() && n.iter().all(|d| d["state"] == "sent"));
        // The secret alert's incident (of the others, one was suppressed, one came from
        // a retired host and the chaos filter reports the last).
        if let Some(list) = incidents["incidents"].as_array()
            && !list.is_empty()
            && settled
        {
            incident = list[0]["id"].as_str().expect("id").to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notifications = w.json(token, "GET", "/v1/notifications", None).await;
    assert!(
        !incident.is_empty(),
        "{team}'s incidents were not notified: {} {notifications}",
        w.json(token, "GET", "/v1/incidents", None).await
    );
    let alerts = w.json(token, "GET", "/v1/alerts", None).await;
    Owned {
        incident,
        suppression: suppression["id"].as_str().expect("id").to_owned(),
        silence: silence["silenceID"].as_str().expect("id").to_owned(),
        notifications: notifications["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect(),
        fingerprints: alerts["alerts"]
            .as_array()
            .expect("list")
            .iter()
            .map(|a| a["fingerprint"].as_str().expect("fingerprint").to_owned())
            .collect(),
        events,
    }
}

/// Everything bender can read, by path, to compare before and after flexo's tries.
async fn seen_by_bender(w: &World, b: &Owned) -> BTreeMap<String, Value> {
    let paths = [
        "/v1/alerts".to_owned(),
        "/v1/history".to_owned(),
        "/v1/incidents".to_owned(),
        format!("/v1/incidents/{}", b.incident),
        "/v1/suppressions".to_owned(),
        format!("/v1/suppressions/{}", b.suppression),
        format!("/v1/suppressions/{}/suppressed", b.suppression),
        "/api/v2/silences".to_owned(),
        format!("/api/v2/silence/{}", b.silence),
        "/v1/services".to_owned(),
        "/v1/services/bender-web".to_owned(),
        "/v1/routes".to_owned(),
        "/v1/runbooks/TSG-bender-1".to_owned(),
        "/v1/changes?service=bender-web".to_owned(),
        "/v1/notifications".to_owned(),
        "/v1/plugins".to_owned(),
        "/v1/plugins/bender-chaos".to_owned(),
        "/v1/plugins/bender-nagios/dead-letters".to_owned(),
        "/v1/notifiers".to_owned(),
        "/v1/logs-queries".to_owned(),
        "/v1/logs-queries/bender-errors".to_owned(),
    ];
    let mut seen = BTreeMap::new();
    for path in paths {
        let value = w.json(&w.bender, "GET", &path, None).await;
        seen.insert(path, value);
    }
    seen
}

/// Every route of the API with what flexo tries on it.
fn matrix(b: &Owned) -> BTreeMap<&'static str, Vec<Try>> {
    use Expect::{Denied, Own};
    let incident = &b.incident;
    let suppression = &b.suppression;
    let silence = &b.silence;
    let notification = &b.notifications[0];
    let draft = |targets: Value| {
        json!({"description": "flexo's", "startTime": at(-60),
               "endTime": at(24 * 60), "metadata": {}, "targets": targets})
    };
    let am_alert = json!([{"labels": {"alertname": "benderSecret", "service": "bender-web",
                                      "instance": "flexo-9", "team": "bender"}}]);
    BTreeMap::from([
        (
            "POST /v1/events",
            vec![
                with_json(
                    "POST",
                    "/v1/events",
                    json!({"alert": {"monitor": "benderSecret", "status": "healthy"},
                "context": {"service": "bender-web", "region": "eu-west-1", "instance": "bender-1", "team": "bender"}}),
                    Own,
                ),
                // Events are the token's team's: a `?team=` changes nothing.
                with_json(
                    "POST",
                    "/v1/events?team=bender",
                    event("benderSecret", "bender-web", "flexo-9"),
                    Own,
                ),
            ],
        ),
        (
            "GET /v1/alerts",
            vec![
                attempt("GET", "/v1/alerts?team=bender", Denied),
                attempt("GET", "/v1/alerts?label=service:bender-web", Own),
                attempt("GET", "/v1/alerts?monitor=benderSecret", Own),
            ],
        ),
        (
            "GET /v1/history",
            vec![
                attempt("GET", "/v1/history?team=bender", Denied),
                attempt("GET", "/v1/history", Own),
                attempt("GET", "/v1/history?outcome=suppressed", Own),
            ],
        ),
        (
            "GET /v1/routes",
            vec![
                attempt("GET", "/v1/routes?team=bender", Denied),
                attempt("GET", "/v1/routes", Own),
            ],
        ),
        (
            "PUT /v1/routes/{team}",
            vec![with_json(
                "PUT",
                "/v1/routes/bender",
                json!({"chat": "slack"}),
                Denied,
            )],
        ),
        (
            "DELETE /v1/routes/{team}",
            vec![attempt("DELETE", "/v1/routes/bender", Denied)],
        ),
        (
            "PUT /v1/routes/{team}/{service}",
            vec![with_json(
                "PUT",
                "/v1/routes/bender/bender-web",
                json!({"chat": "slack"}),
                Denied,
            )],
        ),
        (
            "DELETE /v1/routes/{team}/{service}",
            vec![attempt("DELETE", "/v1/routes/bender/bender-web", Denied)],
        ),
        (
            "GET /v1/services",
            vec![
                attempt("GET", "/v1/services", Own),
                attempt("GET", "/v1/services?team=bender", Denied),
            ],
        ),
        (
            "GET /v1/services/{name}",
            vec![attempt("GET", "/v1/services/bender-web", Denied)],
        ),
        (
            "PUT /v1/services/{name}",
            vec![
                with_json(
                    "PUT",
                    "/v1/services/bender-web",
                    json!({"customer-facing": false}),
                    Denied,
                ),
                with_json(
                    "PUT",
                    "/v1/services/bender-web",
                    json!({"team": "bender", "retired": ["bender-1"]}),
                    Denied,
                ),
            ],
        ),
        (
            "GET /v1/suppressions",
            vec![
                attempt("GET", "/v1/suppressions", Own),
                attempt("GET", "/v1/suppressions?team=bender", Denied),
            ],
        ),
        (
            "POST /v1/suppressions",
            vec![
                with_json(
                    "POST",
                    "/v1/suppressions?team=bender",
                    draft(json!([{"service": "flexo-web"}])),
                    Denied,
                ),
                // Past the share guard is an admin's act.
                with_json(
                    "POST",
                    "/v1/suppressions?force=true",
                    draft(json!([{"service": "flexo-web"}])),
                    Denied,
                ),
                // flexo may silence a service name of its own alerts only: it changes nothing
                // of bender's, which the last check of the test proves.
                with_json(
                    "POST",
                    "/v1/suppressions",
                    draft(json!([{"service": "bender-web", "monitor": "benderAfter"}])),
                    Own,
                ),
            ],
        ),
        (
            "POST /v1/suppressions/preview",
            vec![
                with_json(
                    "POST",
                    "/v1/suppressions/preview",
                    draft(json!([{"service": "bender-web"}])),
                    Own,
                ),
                with_json(
                    "POST",
                    "/v1/suppressions/preview?team=bender",
                    draft(json!([{"service": "bender-web"}])),
                    Denied,
                ),
            ],
        ),
        (
            "GET /v1/suppressions/{id}",
            vec![attempt(
                "GET",
                format!("/v1/suppressions/{suppression}"),
                Denied,
            )],
        ),
        (
            "PATCH /v1/suppressions/{id}",
            vec![with_json(
                "PATCH",
                format!("/v1/suppressions/{suppression}"),
                json!({"endTime": at(1)}),
                Denied,
            )],
        ),
        (
            "DELETE /v1/suppressions/{id}",
            vec![attempt(
                "DELETE",
                format!("/v1/suppressions/{suppression}"),
                Denied,
            )],
        ),
        (
            "GET /v1/suppressions/{id}/suppressed",
            vec![attempt(
                "GET",
                format!("/v1/suppressions/{suppression}/suppressed"),
                Denied,
            )],
        ),
        (
            "GET /v1/incidents",
            vec![
                attempt("GET", "/v1/incidents", Own),
                attempt("GET", "/v1/incidents?team=bender", Denied),
            ],
        ),
        (
            "GET /v1/incidents/{id}",
            vec![attempt("GET", format!("/v1/incidents/{incident}"), Denied)],
        ),
        (
            "POST /v1/incidents/{id}/ack",
            vec![attempt(
                "POST",
                format!("/v1/incidents/{incident}/ack"),
                Denied,
            )],
        ),
        (
            "POST /v1/incidents/{id}/close",
            vec![attempt(
                "POST",
                format!("/v1/incidents/{incident}/close"),
                Denied,
            )],
        ),
        (
            "GET /v1/runbooks/{id}",
            vec![
                attempt("GET", "/v1/runbooks/TSG-bender-1", Denied),
                attempt("GET", "/v1/runbooks/TSG-bender-1?team=bender", Denied),
            ],
        ),
        (
            "PUT /v1/runbooks/{id}",
            vec![
                Try {
                    method: "PUT",
                    path: "/v1/runbooks/TSG-bender-1?team=bender".into(),
                    body: Some(("text/markdown", b"flexo was here".to_vec())),
                    expect: Denied,
                },
                // The same id is flexo's own runbook: bender's stays as it was.
                Try {
                    method: "PUT",
                    path: "/v1/runbooks/TSG-bender-1".into(),
                    body: Some(("text/markdown", b"flexo's own text".to_vec())),
                    expect: Own,
                },
            ],
        ),
        (
            "POST /v1/changes",
            vec![
                with_json(
                    "POST",
                    "/v1/changes?team=bender",
                    json!({"service": "bender-web", "kind": "deploy", "description": "rolled back"}),
                    Denied,
                ),
                with_json(
                    "POST",
                    "/v1/changes",
                    json!({"service": "bender-web", "kind": "deploy", "description": "rolled back"}),
                    Own,
                ),
            ],
        ),
        (
            "GET /v1/changes",
            vec![
                attempt("GET", "/v1/changes?service=bender-web", Own),
                attempt("GET", "/v1/changes?service=bender-web&team=bender", Denied),
            ],
        ),
        (
            "GET /v1/notifications",
            vec![
                attempt("GET", "/v1/notifications", Own),
                attempt("GET", "/v1/notifications?team=bender", Denied),
                attempt("GET", format!("/v1/notifications?incident={incident}"), Own),
            ],
        ),
        (
            "POST /v1/notifications/{id}/retry",
            vec![attempt(
                "POST",
                format!("/v1/notifications/{notification}/retry"),
                Denied,
            )],
        ),
        (
            "GET /v1/notifiers",
            vec![attempt("GET", "/v1/notifiers", Own)],
        ),
        (
            "GET /v1/plugins",
            vec![
                attempt("GET", "/v1/plugins", Own),
                attempt("GET", "/v1/plugins?team=bender", Denied),
            ],
        ),
        (
            "PUT /v1/plugins/{name}",
            vec![Try {
                method: "PUT",
                path: "/v1/plugins/bender-chaos?kind=filter&team=bender".into(),
                body: Some(("application/wasm", component("chaos"))),
                expect: Denied,
            }],
        ),
        (
            "GET /v1/plugins/{name}",
            vec![
                attempt("GET", "/v1/plugins/bender-chaos", Denied),
                attempt("GET", "/v1/plugins/bender-chaos?team=bender", Denied),
            ],
        ),
        (
            "DELETE /v1/plugins/{name}",
            vec![
                attempt("DELETE", "/v1/plugins/bender-chaos", Denied),
                attempt("DELETE", "/v1/plugins/bender-chaos?team=bender", Denied),
            ],
        ),
        (
            "POST /v1/plugins/{name}/rollback",
            vec![attempt("POST", "/v1/plugins/bender-chaos/rollback", Denied)],
        ),
        (
            "POST /v1/plugins/{name}/test",
            vec![with_json(
                "POST",
                "/v1/plugins/bender-chaos/test",
                json!({"events": [event("x", "flexo-web", "f-1")], "config": {"mode": "count"}}),
                Denied,
            )],
        ),
        (
            "GET /v1/plugins/{name}/dead-letters",
            vec![
                attempt("GET", "/v1/plugins/bender-nagios/dead-letters", Denied),
                attempt(
                    "GET",
                    "/v1/plugins/bender-nagios/dead-letters?team=bender",
                    Denied,
                ),
            ],
        ),
        (
            "POST /v1/ingest/{plugin}",
            vec![Try {
                method: "POST",
                path: "/v1/ingest/bender-nagios?service=bender-web".into(),
                body: Some((
                    "text/plain",
                    b"PROCESS_SERVICE_CHECK_RESULT;bender-1;HTTP;0;OK".to_vec(),
                )),
                expect: Denied,
            }],
        ),
        (
            "POST /v1/webhooks/datadog",
            vec![with_json(
                "POST",
                "/v1/webhooks/datadog?team=bender",
                json!({"id": "1", "title": "t", "alert_transition": "Triggered"}),
                Own,
            )],
        ),
        (
            "POST /v1/webhooks/loggly",
            vec![with_json(
                "POST",
                "/v1/webhooks/loggly?team=bender&service=bender-web",
                json!({"alert_name": "benderSecret"}),
                Own,
            )],
        ),
        (
            "POST /api/v2/alerts",
            vec![
                with_json("POST", "/api/v2/alerts", am_alert.clone(), Own),
                with_json("POST", "/api/v2/alerts?team=bender", am_alert, Own),
            ],
        ),
        (
            "GET /api/v2/silences",
            vec![
                attempt("GET", "/api/v2/silences", Own),
                attempt(
                    "GET",
                    "/api/v2/silences?filter=alertname%3D%22benderSilenced%22",
                    Own,
                ),
            ],
        ),
        (
            "POST /api/v2/silences",
            vec![
                with_json(
                    "POST",
                    "/api/v2/silences",
                    json!({"id": silence, "matchers": [{"name": "alertname", "value": "x", "isRegex": false, "isEqual": true}],
                "startsAt": at(-60), "endsAt": at(60), "createdBy": "flexo", "comment": "take over"}),
                    Denied,
                ),
                with_json(
                    "POST",
                    "/api/v2/silences",
                    json!({"matchers": [{"name": "alertname", "value": "benderAfter", "isRegex": false, "isEqual": true}],
                "startsAt": at(-60), "endsAt": at(24 * 60), "createdBy": "flexo", "comment": "flexo's own"}),
                    Own,
                ),
            ],
        ),
        (
            "GET /api/v2/silence/{id}",
            vec![attempt("GET", format!("/api/v2/silence/{silence}"), Denied)],
        ),
        (
            "DELETE /api/v2/silence/{id}",
            vec![attempt(
                "DELETE",
                format!("/api/v2/silence/{silence}"),
                Denied,
            )],
        ),
        (
            "GET /api/v2/status",
            vec![attempt("GET", "/api/v2/status", Own)],
        ),
        (
            "GET /v1/logs-queries",
            vec![
                attempt("GET", "/v1/logs-queries", Own),
                attempt("GET", "/v1/logs-queries?team=bender", Denied),
            ],
        ),
        (
            "GET /v1/logs-queries/{name}",
            vec![
                attempt("GET", "/v1/logs-queries/bender-errors", Denied),
                attempt("GET", "/v1/logs-queries/bender-errors?team=bender", Denied),
            ],
        ),
        (
            "PUT /v1/logs-queries/{name}",
            vec![
                with_json(
                    "PUT",
                    "/v1/logs-queries/bender-errors?team=bender",
                    json!({"sql": "SELECT 1"}),
                    Denied,
                ),
                // The same name is flexo's own query: bender's stays as it was.
                with_json(
                    "PUT",
                    "/v1/logs-queries/bender-errors",
                    json!({"sql": "SELECT 2"}),
                    Own,
                ),
            ],
        ),
        (
            "DELETE /v1/logs-queries/{name}",
            vec![
                attempt("DELETE", "/v1/logs-queries/bender-errors", Denied),
                attempt(
                    "DELETE",
                    "/v1/logs-queries/bender-errors?team=bender",
                    Denied,
                ),
            ],
        ),
        // Only the caller's own token: its id, team and admin flag.
        ("GET /v1/whoami", vec![attempt("GET", "/v1/whoami", Own)]),
        ("GET /healthz", vec![attempt("GET", "/healthz", Own)]),
        ("GET /readyz", vec![attempt("GET", "/readyz", Own)]),
        // The metrics name every team: a team token is refused.
        ("GET /metrics", vec![attempt("GET", "/metrics", Denied)]),
    ])
}

/// `METHOD /path` of every operation the served OpenAPI document lists.
async fn routes(w: &World) -> BTreeSet<String> {
    let doc = w.json(&w.flexo, "GET", "/openapi.json", None).await;
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn no_team_reads_or_changes_another_teams_objects_through_any_route() {
    let w = world().await;
    let b = populate(&w, &w.bender, "bender").await;
    let f = populate(&w, &w.flexo, "flexo").await;
    let before = seen_by_bender(&w, &b).await;

    let matrix = matrix(&b);
    let served = routes(&w).await;
    let rows: BTreeSet<String> = matrix.keys().map(|k| (*k).to_owned()).collect();
    let missing: Vec<_> = served.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "routes with no row in the isolation matrix: {missing:?}"
    );
    let stale: Vec<_> = rows.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "rows for routes that no longer exist: {stale:?}"
    );

    // What only bender's data holds; the team's name counts unless flexo wrote it.
    let mut secrets: Vec<String> = vec![
        RUNBOOK_SECRET.into(),
        CHANGE_SECRET.into(),
        HOOK_SECRET.into(),
        "bender-query-secret".into(),
        b.incident.clone(),
        b.suppression.clone(),
        b.silence.clone(),
    ];
    secrets.extend(b.notifications.iter().cloned());
    secrets.extend(b.fingerprints.iter().cloned());
    secrets.extend(b.events.iter().cloned());
    let mut failures = Vec::new();
    for (route, tries) in &matrix {
        assert!(!tries.is_empty(), "{route} has an empty row");
        for t in tries {
            let (status, text) = w.call(&w.flexo, t.method, &t.path, t.body.clone()).await;
            let what = format!("{route}: flexo {} {}", t.method, t.path);
            let ok = match t.expect {
                Expect::Denied => status == 403 || status == 404,
                Expect::Own => (200..300).contains(&status) || status == 400,
            };
            if !ok {
                failures.push(format!(
                    "{what} answered {status} ({:?} expected): {text}",
                    t.expect
                ));
            }
            let request = format!(
                "{} {}",
                t.path,
                t.body
                    .as_ref()
                    .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            )
            .to_lowercase();
            let lower = text.to_lowercase();
            for secret in &secrets {
                if !request.contains(&secret.to_lowercase())
                    && lower.contains(&secret.to_lowercase())
                {
                    failures.push(format!("{what} revealed bender's {secret}: {text}"));
                }
            }
            if !request.contains("bender") && lower.contains("bender") {
                failures.push(format!("{what} named team bender's data: {text}"));
            }
        }
    }

    // Every route that takes a body answers a malformed one with a 4xx, on the caller's
    // own objects, where the body is read.
    for (route, status, text) in malformed_bodies(&w, &f).await {
        failures.push(format!(
            "{route} answered a malformed body with {status}: {text}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing of bender's changed.
    let after = seen_by_bender(&w, &b).await;
    for (path, value) in &before {
        assert_eq!(
            Some(value),
            after.get(path),
            "GET {path} as bender changed after flexo's tries"
        );
    }

    // The server's log carries no token and no notifier secret.
    let log = w.server.stderr().join("\n");
    for secret in [&w.bender, &w.flexo, &HOOK_SECRET.to_owned()] {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret: {log}"
        );
    }

    // And flexo's own suppression and silence of the same names do not silence bender:
    // bender's next alert opens an incident and pages.
    let pages = w.fakes.pages().len();
    w.json(
        &w.bender,
        "POST",
        "/v1/events",
        Some(event("benderAfter", "bender-web", "bender-1")),
    )
    .await;
    for _ in 0..200 {
        if w.fakes.pages().len() > pages {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bender's alert was silenced by flexo's suppression or silence: no page");
}

/// Sends `{"alert": [` to every route whose OpenAPI operation takes a body, with its
/// path filled with flexo's own objects; returns the routes that did not answer 4xx.
async fn malformed_bodies(w: &World, f: &Owned) -> Vec<(String, u16, String)> {
    let doc = w.json(&w.flexo, "GET", "/openapi.json", None).await;
    let mut wrong = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            // Routes whose body is free text or bytes (a runbook, a plugin, a raw
            // payload for a transformer) have no malformed form.
            if operation["requestBody"]["content"]
                .get("application/json")
                .is_none()
            {
                continue;
            }
            let id = if template.starts_with("/v1/incidents") {
                f.incident.as_str()
            } else if template.starts_with("/v1/suppressions") {
                f.suppression.as_str()
            } else if template.starts_with("/api/v2/silence") {
                f.silence.as_str()
            } else if template.starts_with("/v1/notifications") {
                f.notifications[0].as_str()
            } else {
                "TSG-flexo-1"
            };
            let plugin = if template.contains("ingest") {
                "flexo-nagios"
            } else {
                "flexo-chaos"
            };
            let path = template
                .replace("{id}", id)
                .replace("{team}", "flexo")
                .replace("{service}", "flexo-web")
                .replace(
                    "{name}",
                    if template.starts_with("/v1/services") {
                        "flexo-web"
                    } else {
                        plugin
                    },
                )
                .replace("{plugin}", plugin);
            let method = method.to_uppercase();
            let (status, text) = w
                .call(
                    &w.flexo,
                    &method,
                    &path,
                    Some(("application/json", br#"{"alert": ["#.to_vec())),
                )
                .await;
            if !(400..500).contains(&status) {
                wrong.push((format!("{method} {template}"), status, text));
            }
        }
    }
    wrong
}
