//! The pipeline through the API: suppressions and their guards, the service catalogue,
//! incidents, and grouping under concurrent writers on both databases.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::Api;

fn at(offset_minutes: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::minutes(offset_minutes))
        .format(&Rfc3339)
        .expect("formats")
}

fn alert(monitor: &str, status: &str, service: &str, instance: &str) -> Value {
    json!({"alert": {"monitor": monitor, "status": status},
           "context": {"service": service, "region": "eu-west-1a", "instance": instance}})
}

fn draft(targets: Value) -> Value {
    json!({"description": "Updating Bender", "startTime": at(-1), "endTime": at(60),
           "metadata": {"ticket": "BENDER-42"}, "targets": targets})
}

/// A fleet of 40 known alerts: 20 of bender, 20 of flexo.
async fn fleet(api: &Api) {
    let mut events = Vec::new();
    for i in 0..20 {
        events.push(alert("Health", "healthy", "bender", &format!("b-{i}")));
        events.push(alert("Health", "healthy", "flexo", &format!("f-{i}")));
    }
    api.events(&api.bender, Value::Array(events)).await;
    api.settle().await;
}

#[tokio::test]
async fn suppressions_that_break_a_rule_are_refused_with_the_reason() {
    let api = Api::sqlite().await;
    fleet(&api).await;
    let cases = [
        (draft(json!([])), "targets"),
        (draft(json!([{}])), "targets[0]"),
        (draft(json!([{"instance": "~b-.*"}])), "only regex labels"),
        (
            draft(json!([{"service": "bender", "instance": "~.*"}])),
            "empty string",
        ),
        (
            json!({"description": "x", "startTime": at(10), "endTime": at(5), "targets": [{"service": "bender"}]}),
            "endTime",
        ),
        (
            json!({"description": "x", "startTime": at(0), "endTime": at(8 * 24 * 60), "targets": [{"service": "bender"}]}),
            "endTime",
        ),
        (draft(json!([{"service": "bender"}])), "refused"),
    ];
    for (body, expected) in cases {
        let (status, answer) = api
            .request(&api.bender, "POST", "/v1/suppressions", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            error.contains(expected),
            "{body}: {error:?} should mention {expected:?}"
        );
    }
    // The share guard: half the fleet. A team cannot force it; an admin can.
    let wide = draft(json!([{"service": "bender"}]));
    let (status, _) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions?force=true",
            Some(wide.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = api
        .request(
            &api.admin,
            "POST",
            "/v1/suppressions?force=true",
            Some(wide),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["forced"], true);
    let (_, list) = api
        .request(&api.bender, "GET", "/v1/suppressions", None)
        .await;
    assert_eq!(
        list["suppressions"],
        json!([]),
        "a team sees only its own suppressions"
    );
}

#[tokio::test]
async fn preview_shows_what_a_draft_would_match() {
    let api = Api::sqlite().await;
    fleet(&api).await;
    let (status, preview) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions/preview",
            Some(draft(
                json!([{"service": "bender", "instance": "~b-[0-3]"}]),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        (
            preview["matched"].as_u64(),
            preview["known"].as_u64(),
            preview["refused"].as_bool()
        ),
        (Some(4), Some(40), Some(false))
    );
    let instances: Vec<&str> = preview["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["labels"]["instance"].as_str())
        .collect();
    assert_eq!(instances.len(), 4);
    assert!(
        instances
            .iter()
            .all(|i| ["b-0", "b-1", "b-2", "b-3"].contains(i)),
        "{instances:?}"
    );
    let (_, wide) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions/preview",
            Some(draft(json!([{"service": "bender"}]))),
        )
        .await;
    assert_eq!(wide["refused"], true, "{wide}");
    // Another team's preview counts only that team's alerts: these are not among them.
    let (flexo, _) = tocsin_api::auth::create(
        api.store.as_ref(),
        tocsin_api::auth::Grant::Team("flexo".into()),
        "",
    )
    .await
    .expect("token");
    let (_, other) = api
        .request(
            &flexo,
            "POST",
            "/v1/suppressions/preview",
            Some(draft(
                json!([{"service": "bender", "instance": "~b-[0-3]"}]),
            )),
        )
        .await;
    assert_eq!(
        (
            other["matched"].as_u64(),
            other["known"].as_u64(),
            other["alerts"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0), Some(0)),
        "{other}"
    );
}

#[tokio::test]
async fn suppressed_events_are_recorded_and_every_change_is_audited() {
    let api = Api::sqlite().await;
    fleet(&api).await;
    let (status, created) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions",
            Some(draft(json!([{"service": "bender", "instance": "b-1"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["state"], "active");
    api.events(
        &api.bender,
        json!([
            alert("Health", "unhealthy", "bender", "b-1"),
            alert("Health", "unhealthy", "bender", "b-2")
        ]),
    )
    .await;

    let (_, suppressed) = api
        .request(
            &api.bender,
            "GET",
            &format!("/v1/suppressions/{id}/suppressed"),
            None,
        )
        .await;
    let events = suppressed["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{suppressed}");
    assert_eq!(events[0]["labels"]["instance"], "b-1");
    assert_eq!(events[0]["outcome"], "suppressed");
    let (_, incidents) = api
        .request(&api.bender, "GET", "/v1/incidents?state=open", None)
        .await;
    let incidents = incidents["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["alerts"], 1, "only b-2 reached grouping");

    let (status, edited) = api
        .request(
            &api.bender,
            "PATCH",
            &format!("/v1/suppressions/{id}"),
            Some(json!({"endTime": at(120)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (status, _) = api
        .request(
            &api.bender,
            "PATCH",
            &format!("/v1/suppressions/{id}"),
            Some(json!({"endTime": at(-30)})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an end before the start is refused"
    );
    let (status, ended) = api
        .request(
            &api.bender,
            "DELETE",
            &format!("/v1/suppressions/{id}"),
            None,
        )
        .await;
    assert_eq!(
        (status, ended["state"].as_str()),
        (StatusCode::OK, Some("ended"))
    );
    let (_, detail) = api
        .request(&api.bender, "GET", &format!("/v1/suppressions/{id}"), None)
        .await;
    let actions: Vec<&str> = detail["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["created", "edited", "ended"]);
    assert!(
        detail["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .all(|a| a["actor"].as_str().is_some_and(|s| !s.is_empty()))
    );

    // Still unhealthy when its suppression ended: the next report goes on to grouping.
    api.events(
        &api.bender,
        json!([alert("Health", "unhealthy", "bender", "b-1")]),
    )
    .await;
    let (_, incidents) = api
        .request(&api.bender, "GET", "/v1/incidents?state=open", None)
        .await;
    assert_eq!(incidents["incidents"][0]["alerts"], 2, "{incidents}");
}

#[tokio::test]
async fn the_catalogue_lowers_priority_drops_retired_hosts_and_belongs_to_its_team() {
    let api = Api::sqlite().await;
    let (status, service) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/bender",
            Some(json!({"lifecycle": "testing", "retired": ["b-old"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(service["team"], "bender");
    let (status, answer) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/flexo",
            Some(json!({"team": "flexo"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/bender",
            Some(json!({"lifecycle": "staging"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().unwrap_or("").contains("lifecycle"),
        "{answer}"
    );

    let mut high = alert("Health", "unhealthy", "bender", "b-1");
    high["alerting"] = json!({"priority": "high"});
    api.events(
        &api.bender,
        json!([high, alert("Health", "unhealthy", "bender", "b-old")]),
    )
    .await;
    let (_, incidents) = api.request(&api.bender, "GET", "/v1/incidents", None).await;
    assert_eq!(incidents["incidents"][0]["priority"], "low", "{incidents}");
    assert_eq!(
        incidents["incidents"][0]["alerts"], 1,
        "the retired host is not in it"
    );
    let (_, dropped) = api
        .request(&api.bender, "GET", "/v1/history?outcome=dropped", None)
        .await;
    let reasons: Vec<&str> = dropped["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 1, "{dropped}");
    assert!(reasons[0].starts_with("retired-host: b-old"), "{reasons:?}");
    assert_eq!(dropped["drops"]["retired-host"], 1);
    let (_, passed) = api
        .request(&api.bender, "GET", "/v1/history?outcome=passed", None)
        .await;
    assert!(
        passed["events"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("service is in testing"),
        "{passed}"
    );
}

#[tokio::test]
async fn incidents_are_acknowledged_closed_for_good_and_scoped_to_their_team() {
    let api = Api::sqlite().await;
    api.events(
        &api.bender,
        json!([
            alert("Health", "unhealthy", "bender", "b-1"),
            alert("Health", "unhealthy", "bender", "b-2")
        ]),
    )
    .await;
    let (_, page) = api.request(&api.bender, "GET", "/v1/incidents", None).await;
    let id = page["incidents"][0]["id"].as_str().expect("id").to_owned();
    let (status, acked) = api
        .request(
            &api.bender,
            "POST",
            &format!("/v1/incidents/{id}/ack"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert!(acked["acked_at"].is_string());
    let (status, detail) = api
        .request(&api.bender, "GET", &format!("/v1/incidents/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["alert_list"].as_array().map(Vec::len), Some(2));
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    // The two alerts came in one request, so one batch: one entry names both.
    assert_eq!(kinds, ["opened", "alert-joined", "acked"], "{detail}");
    let joined = detail["timeline"][1]["detail"].as_str().unwrap_or("");
    assert!(
        joined.starts_with("2 alerts joined: Health on bender") && joined.contains("b-2"),
        "{joined}"
    );

    let (status, closed) = api
        .request(
            &api.bender,
            "POST",
            &format!("/v1/incidents/{id}/close"),
            None,
        )
        .await;
    assert_eq!(
        (status, closed["state"].as_str()),
        (StatusCode::OK, Some("closed")),
        "{closed}"
    );
    let (status, again) = api
        .request(
            &api.bender,
            "POST",
            &format!("/v1/incidents/{id}/close"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    api.events(
        &api.bender,
        json!([alert("Health", "unhealthy", "bender", "b-3")]),
    )
    .await;
    let (_, open) = api
        .request(&api.bender, "GET", "/v1/incidents?state=open", None)
        .await;
    assert_eq!(open["incidents"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        open["incidents"][0]["id"],
        id.as_str(),
        "a closed incident takes no new alerts"
    );

    let (flexo, _) = tocsin_api::auth::create(
        api.store.as_ref(),
        tocsin_api::auth::Grant::Team("flexo".into()),
        "",
    )
    .await
    .expect("token");
    let (status, _) = api
        .request(&flexo, "GET", &format!("/v1/incidents/{id}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another team's incident is invisible"
    );
    let (status, _) = api
        .request(&flexo, "POST", &format!("/v1/incidents/{id}/ack"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Many writers at once, one grouping key: exactly one open incident with every alert.
async fn one_open_incident_under_concurrent_writers(api: Api) {
    let api = std::sync::Arc::new(api);
    let mut writers = Vec::new();
    for w in 0..16 {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let events: Vec<Value> = (0..5)
                    .map(|j| alert("Dns", "unhealthy", "bender", &format!("w{w}-{i}-{j}")))
                    .collect();
                api.events(&api.bender, Value::Array(events)).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let (_, page) = api
        .request(&api.admin, "GET", "/v1/incidents?state=open", None)
        .await;
    let incidents = page["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{page}");
    assert_eq!(incidents[0]["alerts"], 16 * 10 * 5);
    assert_eq!(incidents[0]["unhealthy"], 16 * 10 * 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_to_one_key_open_exactly_one_incident_on_sqlite() {
    one_open_incident_under_concurrent_writers(Api::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_to_one_key_open_exactly_one_incident_on_postgres() {
    one_open_incident_under_concurrent_writers(
        Api::on(&tocsin_tests::postgres_url().await, None).await,
    )
    .await;
}

#[tokio::test]
async fn pipeline_state_survives_a_restart() {
    let (dir, url) = tocsin_tests::sqlite_url();
    let api = Api::on(&url, None).await;
    let mut held = alert("Health", "unhealthy", "bender", "b-9");
    held["filters"] = json!([{"type": "ignore-flap", "params": {"min-age": "2s"}}]);
    api.events(
        &api.bender,
        json!([alert("Health", "unhealthy", "bender", "b-1"), held]),
    )
    .await;
    api.settle().await;
    let (_, before) = api
        .request(&api.admin, "GET", "/v1/incidents?state=open", None)
        .await;
    let id = before["incidents"][0]["id"].clone();
    drop(api);
    let api = Api::on(&url, Some(dir)).await;
    api.events(
        &api.bender,
        json!([alert("Health", "unhealthy", "bender", "b-2")]),
    )
    .await;
    // The ignore-flap hold is released by its timer after the restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, after) = api
            .request(&api.admin, "GET", "/v1/incidents?state=open", None)
            .await;
        assert_eq!(
            after["incidents"].as_array().map(Vec::len),
            Some(1),
            "{after}"
        );
        assert_eq!(
            after["incidents"][0]["id"], id,
            "the restarted pipeline joins the same incident"
        );
        if after["incidents"][0]["alerts"] == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the held alert was not released: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn retention_prunes_history_and_finished_incidents_but_not_open_ones() {
    let api = Api::sqlite().await;
    api.events(
        &api.bender,
        json!([
            alert("Health", "unhealthy", "bender", "b-1"),
            alert("Disk", "unhealthy", "bender", "b-1")
        ]),
    )
    .await;
    let (_, page) = api.request(&api.bender, "GET", "/v1/incidents", None).await;
    let closed = page["incidents"][0]["id"].as_str().expect("id").to_owned();
    let (status, _) = api
        .request(
            &api.bender,
            "POST",
            &format!("/v1/incidents/{closed}/close"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, history) = api.request(&api.bender, "GET", "/v1/history", None).await;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(2));

    let future = tocsin_model::clock::now_ms() + 60_000;
    assert!(api.store.prune(future).await.expect("prunes") > 0);
    let (_, history) = api.request(&api.bender, "GET", "/v1/history", None).await;
    assert_eq!(history["events"], json!([]));
    let (_, page) = api.request(&api.bender, "GET", "/v1/incidents", None).await;
    let left: Vec<&str> = page["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["state"].as_str())
        .collect();
    assert_eq!(
        left,
        ["open"],
        "the closed incident is pruned, the open one stays"
    );
    let (status, _) = api
        .request(&api.bender, "GET", &format!("/v1/incidents/{closed}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
