//! Teams are tenants: a team's suppressions and service catalogue entries act on that
//! team's alerts only, and what it learns through them says nothing of other teams'.
//! Two team tokens, bender and flexo, share one API.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tocsin_api::auth::{self, Grant};
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_tests::fakes::Fakes;

use crate::api::Api;

fn at(offset_minutes: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::minutes(offset_minutes))
        .format(&Rfc3339)
        .expect("formats")
}

fn alert(status: &str, service: &str, instance: &str) -> Value {
    json!({"alert": {"monitor": "Disk", "status": status},
           "context": {"service": service, "region": "eu-west-1a", "instance": instance}})
}

fn draft(targets: Value) -> Value {
    json!({"description": "storage upgrade", "startTime": at(-1), "endTime": at(60),
           "targets": targets})
}

async fn team(api: &Api, name: &str) -> String {
    auth::create(api.store.as_ref(), Grant::Team(name.into()), "")
        .await
        .expect("token")
        .0
}

/// The `error` of an answer (the Alertmanager API answers a bare string).
fn error(answer: &Value) -> &str {
    answer["error"]
        .as_str()
        .or_else(|| answer.as_str())
        .unwrap_or_default()
}

async fn open_incidents(api: &Api, token: &str) -> Vec<Value> {
    let (_, page) = api.get(token, "/v1/incidents?state=open").await;
    page["incidents"].as_array().expect("incidents").clone()
}

#[tokio::test]
async fn a_teams_suppression_or_silence_does_not_stop_another_teams_alert() {
    let api = Api::sqlite().await;
    let flexo = team(&api, "flexo").await;
    let (status, created) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["team"], "bender");
    let silence = json!({
        "matchers": [{"name": "instance", "value": "s-2", "isRegex": false, "isEqual": true}],
        "startsAt": at(-1), "endsAt": at(60), "createdBy": "bpannell", "comment": "disk swap"});
    let (status, silenced) = api
        .request(&api.bender, "POST", "/api/v2/silences", Some(silence))
        .await;
    assert_eq!(status, StatusCode::OK, "{silenced}");

    api.events(
        &flexo,
        json!([
            alert("unhealthy", "storage", "s-1"),
            alert("unhealthy", "storage", "s-2")
        ]),
    )
    .await;
    let incidents = open_incidents(&api, &flexo).await;
    assert_eq!(incidents.len(), 1, "flexo's incident opens");
    assert_eq!(incidents[0]["alerts"], 2, "neither alert is suppressed");
    let (_, stopped) = api.get(&flexo, "/v1/history?outcome=suppressed").await;
    assert_eq!(stopped["events"], json!([]), "{stopped}");

    // The suppression still stops bender's own alert.
    api.events(&api.bender, json!([alert("unhealthy", "storage", "s-1")]))
        .await;
    let (_, suppressed) = api
        .get(&api.bender, &format!("/v1/suppressions/{id}/suppressed"))
        .await;
    let teams: Vec<&str> = suppressed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["team"].as_str())
        .collect();
    assert_eq!(teams, ["bender"], "{suppressed}");
    assert!(open_incidents(&api, &api.bender).await.is_empty());
    // flexo has nothing to do with bender's suppression.
    let (status, _) = api.get(&flexo, &format!("/v1/suppressions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn previews_and_the_share_guard_count_only_the_teams_own_alerts() {
    let api = Api::sqlite().await;
    let flexo = team(&api, "flexo").await;
    // bender: 12 storage alerts of 20; flexo: 30 storage alerts.
    let mut mine: Vec<Value> = (0..12)
        .map(|i| alert("healthy", "storage", &format!("b-{i}")))
        .collect();
    mine.extend((0..8).map(|i| alert("healthy", "bender", &format!("b-{i}"))));
    api.events(&api.bender, Value::Array(mine)).await;
    let theirs: Vec<Value> = (0..30)
        .map(|i| alert("healthy", "storage", &format!("f-{i}")))
        .collect();
    api.events(&flexo, Value::Array(theirs)).await;

    let preview = |token: String, uri: &'static str, targets: Value| {
        let api = &api;
        async move {
            let (status, answer) = api.request(&token, "POST", uri, Some(draft(targets))).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    };
    let narrow = preview(
        api.bender.clone(),
        "/v1/suppressions/preview",
        json!([{"service": "storage", "instance": "~b-[0-3]"}]),
    )
    .await;
    assert_eq!(
        (&narrow["matched"], &narrow["known"]),
        (&json!(4), &json!(20))
    );
    let wide = preview(
        api.bender.clone(),
        "/v1/suppressions/preview",
        json!([{"service": "storage"}]),
    )
    .await;
    assert_eq!((&wide["matched"], &wide["known"]), (&json!(12), &json!(20)));
    assert_eq!(wide["refused"], true);
    assert!(
        wide["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .all(|a| a["team"] == "bender"),
        "{wide}"
    );
    let (status, refused) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&refused).contains("would match 12 of 20 known alerts (60.0%)"),
        "{refused}"
    );
    // flexo's own view of the same draft: only its alerts.
    let theirs = preview(
        flexo.clone(),
        "/v1/suppressions/preview",
        json!([{"service": "storage", "instance": "~b-[0-3]"}]),
    )
    .await;
    assert_eq!(
        (&theirs["matched"], &theirs["known"], &theirs["alerts"]),
        (&json!(0), &json!(30), &json!([]))
    );
    // An admin sees the fleet, or one team's share of it.
    let all = preview(
        api.admin.clone(),
        "/v1/suppressions/preview",
        json!([{"service": "storage"}]),
    )
    .await;
    assert_eq!((&all["matched"], &all["known"]), (&json!(42), &json!(50)));
    let one = preview(
        api.admin.clone(),
        "/v1/suppressions/preview?team=flexo",
        json!([{"service": "storage"}]),
    )
    .await;
    assert_eq!((&one["matched"], &one["known"]), (&json!(30), &json!(30)));
    let (status, answer) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions/preview?team=flexo",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

#[tokio::test]
async fn an_admins_suppression_of_every_team_shows_to_the_team_it_stopped_and_only_an_admin_ends_it()
 {
    an_admins_suppression_shows_to_the_team_it_stopped(Api::sqlite().await).await;
}

#[tokio::test]
async fn an_admins_suppression_shows_to_the_team_it_stopped_on_postgres() {
    let api = Api::on(&tocsin_tests::postgres_url().await, None).await;
    an_admins_suppression_shows_to_the_team_it_stopped(api).await;
}

async fn an_admins_suppression_shows_to_the_team_it_stopped(api: Api) {
    let flexo = team(&api, "flexo").await;
    let hermes = team(&api, "hermes").await;
    let (status, created) = api
        .request(
            &api.admin,
            "POST",
            "/v1/suppressions",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("team").is_none(), "every team's: {created}");
    let id = created["id"].as_str().expect("id").to_owned();
    api.events(&flexo, json!([alert("unhealthy", "storage", "s-1")]))
        .await;
    api.events(&api.bender, json!([alert("unhealthy", "storage", "s-1")]))
        .await;
    assert!(open_incidents(&api, &flexo).await.is_empty());
    assert!(open_incidents(&api, &api.bender).await.is_empty());

    let (status, seen) = api.get(&flexo, &format!("/v1/suppressions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["targets"], json!([{"service": "storage"}]));
    let (_, list) = api.get(&flexo, "/v1/suppressions").await;
    assert_eq!(list["suppressions"][0]["id"], id.as_str(), "{list}");
    let (_, silences) = api.get(&flexo, "/api/v2/silences").await;
    assert_eq!(silences[0]["id"], id.as_str(), "{silences}");
    let (_, suppressed) = api
        .get(&flexo, &format!("/v1/suppressions/{id}/suppressed"))
        .await;
    let events = suppressed["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "only flexo's own event: {suppressed}");
    assert_eq!(events[0]["team"], "flexo");

    for (method, uri, body) in [
        (
            "PATCH",
            format!("/v1/suppressions/{id}"),
            Some(json!({"endTime": at(5)})),
        ),
        ("DELETE", format!("/v1/suppressions/{id}"), None),
        ("DELETE", format!("/api/v2/silence/{id}"), None),
    ] {
        let (status, answer) = api.request(&flexo, method, &uri, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
        assert!(error(&answer).contains("only an admin"), "{answer}");
    }
    let (_, after) = api.get(&api.admin, &format!("/v1/suppressions/{id}")).await;
    assert_eq!(after["state"], "active");
    assert_eq!(after["endTime"], seen["endTime"]);
    assert_eq!(after["audit"].as_array().map(Vec::len), Some(1), "{after}");

    // A team none of whose alerts it stopped does not see it.
    let (status, _) = api.get(&hermes, &format!("/v1/suppressions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = api.get(&hermes, "/v1/suppressions").await;
    assert_eq!(list["suppressions"], json!([]));

    let (status, ended) = api
        .request(
            &api.admin,
            "DELETE",
            &format!("/v1/suppressions/{id}"),
            None,
        )
        .await;
    assert_eq!((status, &ended["state"]), (StatusCode::OK, &json!("ended")));
}

#[tokio::test]
async fn an_admin_may_suppress_the_alerts_of_one_named_team() {
    let api = Api::sqlite().await;
    let flexo = team(&api, "flexo").await;
    let (status, created) = api
        .request(
            &api.admin,
            "POST",
            "/v1/suppressions?team=flexo",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["team"], "flexo");
    api.events(&flexo, json!([alert("unhealthy", "storage", "s-1")]))
        .await;
    api.events(&api.bender, json!([alert("unhealthy", "storage", "s-1")]))
        .await;
    assert!(open_incidents(&api, &flexo).await.is_empty());
    assert_eq!(open_incidents(&api, &api.bender).await.len(), 1);
    let (status, answer) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions?team=flexo",
            Some(draft(json!([{"service": "storage"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

#[tokio::test]
async fn a_team_cannot_claim_a_service_name_another_teams_alerts_carry() {
    cannot_claim_a_name_in_use(Api::sqlite().await).await;
}

#[tokio::test]
async fn a_team_cannot_claim_a_service_name_in_use_on_postgres() {
    cannot_claim_a_name_in_use(Api::on(&tocsin_tests::postgres_url().await, None).await).await;
}

async fn cannot_claim_a_name_in_use(api: Api) {
    let flexo = team(&api, "flexo").await;
    api.events(&flexo, json!([alert("healthy", "flexo-web", "w1")]))
        .await;
    let (status, answer) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/flexo-web",
            Some(json!({"retired": ["w1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        error(&answer),
        "service \"flexo-web\" is already the service of another team's alerts: pick another name, or ask an admin to assign it"
    );
    let (status, _) = api.get(&api.admin, "/v1/services/flexo-web").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    let (status, mine) = api
        .request(&flexo, "PUT", "/v1/services/flexo-web", Some(json!({})))
        .await;
    assert_eq!((status, &mine["team"]), (StatusCode::OK, &json!("flexo")));
    let (status, answer) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/flexo-web",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(!error(&answer).contains("team \"flexo\""), "{answer}");
    let (status, _) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/bender-web",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "an unused name is free to take");
}

#[tokio::test]
async fn another_teams_entry_for_a_name_does_not_retire_demote_or_route_the_teams_alerts() {
    let api = Api::sqlite().await;
    let flexo = team(&api, "flexo").await;
    let fakes = Fakes::start().await.expect("fakes");
    let notifiers = format!(
        "notifiers:\n  slack: {{ kind: slack, token: xoxb-test-token, channel: \"#ops\", url: \"{}\" }}\nroutes:\n  - {{ team: flexo, chat: slack }}\n  - {{ team: bender, chat: slack }}\n",
        fakes.url
    );
    let outbox = Outbox::new(
        api.store.clone(),
        Arc::new(Notifiers::parse(&notifiers).expect("notifiers")),
    );
    // An admin gave bender the name flexo's events use.
    let (status, entry) = api
        .request(
            &api.admin,
            "PUT",
            "/v1/services/flexo-web",
            Some(
                json!({"team": "bender", "customer-facing": false, "retired": ["w1"],
                        "alerting": {"channel": "#bender-ops"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");

    let mut page = alert("unhealthy", "flexo-web", "w1");
    page["alerting"] = json!({"priority": "high"});
    api.events(&flexo, json!([page])).await;
    let incidents = open_incidents(&api, &flexo).await;
    assert_eq!(incidents.len(), 1, "w1 is not retired for flexo");
    assert_eq!(incidents[0]["priority"], "high", "not demoted");
    api.settle().await;
    for _ in 0..20 {
        if outbox.round(now_ms()).await.expect("round") == 0 {
            break;
        }
    }
    let chats = fakes.requests_to("slack");
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_eq!(chats[0].body["channel"], "#ops", "not bender's channel");

    // The entry still holds for its owner.
    api.events(&api.bender, json!([alert("unhealthy", "flexo-web", "w1")]))
        .await;
    let (_, dropped) = api.get(&api.bender, "/v1/history?outcome=dropped").await;
    assert!(
        dropped["events"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("retired-host: w1"),
        "{dropped}"
    );
}

#[tokio::test]
async fn settings_bodies_that_are_not_objects_are_refused_and_change_nothing() {
    let api = Api::sqlite().await;
    let (status, answer) = api
        .request(&api.bender, "PUT", "/v1/services/x", Some(json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error(&answer),
        "the body must be an object of fields, got an array"
    );
    let (status, _) = api.get(&api.bender, "/v1/services/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    let (_, created) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions",
            Some(draft(json!([{"service": "bender"}]))),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, answer) = api
        .request(
            &api.bender,
            "PATCH",
            &format!("/v1/suppressions/{id}"),
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("got an array"), "{answer}");
    let (_, detail) = api
        .get(&api.bender, &format!("/v1/suppressions/{id}"))
        .await;
    let actions: Vec<&str> = detail["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["created"], "no edit was audited");
}

/// `tocsin serve` hands each new incident to the outbox with its service's entry: that
/// handoff too must skip an entry another team holds under the incident's service name.
#[tokio::test]
async fn the_served_handoff_does_not_route_an_incident_by_another_teams_entry() {
    let fakes = Fakes::start().await.expect("fakes");
    let (dir, database) = tocsin_tests::sqlite_url();
    let file = dir.path().join("notifiers.yaml");
    std::fs::write(
        &file,
        format!(
            "notifiers:\n  slack: {{ kind: slack, token: xoxb-test-token, channel: \"#ops\", url: \"{}\" }}\nroutes:\n  - {{ chat: slack }}\n",
            fakes.url
        ),
    )
    .expect("notifiers file");
    let admin = tocsin_tests::create_token(&database, &["--admin"]).expect("token");
    let flexo = tocsin_tests::create_token(&database, &["--team", "flexo"]).expect("token");
    let server = tocsin_tests::Server::start(
        &database,
        &["--notifiers", file.to_str().expect("utf-8 path")],
        &[],
    )
    .expect("serves");
    let client = reqwest::Client::new();
    let answer = client
        .put(format!("{}/v1/services/flexo-web", server.url))
        .bearer_auth(&admin)
        .json(&json!({"team": "bender", "alerting": {"channel": "#bender-ops"}}))
        .send()
        .await
        .expect("put");
    assert_eq!(answer.status(), 200);
    let answer = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&flexo)
        .json(&json!([alert("unhealthy", "flexo-web", "w1")]))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fakes.requests_to("slack").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no chat message");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let chats = fakes.requests_to("slack");
    assert_eq!(chats[0].body["channel"], "#ops", "not bender's channel");
    server.kill().expect("stops");
}
