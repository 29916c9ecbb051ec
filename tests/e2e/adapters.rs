//! The built-in adapters through the API: Datadog and Loggly webhooks and the
//! Alertmanager-compatible alerts and silences, with realistic and hostile payloads.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::api::Api;

const DD_TRIGGERED: &str = include_str!("../fixtures/datadog/triggered.json");
const DD_RECOVERED: &str = include_str!("../fixtures/datadog/recovered.json");
const DD_OLD_TEMPLATE: &str = include_str!("../fixtures/datadog/old-template.json");
const DD_WRONG_TYPES: &str = include_str!("../fixtures/datadog/wrong-types.json");
const LOGGLY_ALERT: &str = include_str!("../fixtures/loggly/alert.json");
const LOGGLY_NO_LINK: &str = include_str!("../fixtures/loggly/no-link.json");
const PROMETHEUS_ALERTS: &str = include_str!("../fixtures/alertmanager/prometheus.json");

/// Posts `body` to `uri` with optional extra headers; returns status and JSON body.
async fn send(
    api: &Api,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, body, _) = api.call(request.body(body.into()).expect("request")).await;
    (status, body)
}

async fn alerts(api: &Api) -> Vec<Value> {
    let (_, page) = api.get(&api.admin, "/v1/alerts").await;
    page["alerts"].as_array().cloned().unwrap_or_default()
}

/// Checks that an error answer (`{"error"}`, or Alertmanager's bare string) says `what`.
fn says(answer: &Value, what: &str) {
    let text = answer["error"]
        .as_str()
        .or(answer.as_str())
        .unwrap_or_default();
    assert!(text.contains(what), "expected \"{what}\" in {answer}");
}

#[tokio::test]
async fn a_datadog_monitor_triggers_then_recovers() {
    let api = Api::sqlite().await;
    let header = [("x-tocsin-token", api.bender.as_str())];
    let (status, receipt) = send(&api, "/v1/webhooks/datadog", &header, DD_TRIGGERED).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["accepted"], 1);

    let alerts_now = alerts(&api).await;
    assert_eq!(alerts_now.len(), 1, "{alerts_now:?}");
    let alert = &alerts_now[0];
    assert_eq!(alert["monitor"], "datadog-148823456");
    assert_eq!(alert["status"], "unhealthy");
    assert_eq!(alert["team"], "bender");
    assert_eq!(
        alert["since"], "2025-11-22T11:00:00Z",
        "$DATE is epoch milliseconds"
    );
    for (key, value) in [
        ("env", "prod"),
        ("service", "checkout"),
        ("region", "eu-west-1"),
        ("host", "web-1"),
    ] {
        assert_eq!(alert["labels"][key], value, "{alert}");
    }
    assert!(
        alert["labels"].get("monitor").is_none(),
        "a bare tag is no label"
    );

    let (_, incidents) = api.get(&api.bender, "/v1/incidents?state=open").await;
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["priority"], "high", "P1 pages: {incidents}");
    assert_eq!(incident["service"], "checkout");
    // The incident shows the message, with the monitor's link.
    let (_, detail) = api
        .get(
            &api.bender,
            &format!("/v1/incidents/{}", incident["id"].as_str().expect("id")),
        )
        .await;
    let message = detail["alert_list"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.starts_with("Checkout latency above 2s"), "{detail}");
    assert!(
        message.contains("Datadog: https://app.datadoghq.eu/event/event?id=7423568117958712345"),
        "{message}"
    );

    // The recovery carries the same tags, so it is the same alert.
    let (status, receipt) = send(&api, "/v1/webhooks/datadog", &header, DD_RECOVERED).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let alerts_now = alerts(&api).await;
    assert_eq!(alerts_now.len(), 1);
    assert_eq!(alerts_now[0]["status"], "healthy");
}

#[tokio::test]
async fn a_payload_from_datadogs_default_template_is_read_from_its_title() {
    let api = Api::sqlite().await;
    let uri = format!("/v1/webhooks/datadog?token={}&service=storage", api.bender);
    let (status, receipt) = send(&api, &uri, &[], DD_OLD_TEMPLATE).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let alert = &alerts(&api).await[0];
    assert_eq!(alert["monitor"], "datadog-99887766");
    assert_eq!(alert["status"], "unhealthy");
    assert_eq!(
        alert["labels"]["service"], "storage",
        "query labels: {alert}"
    );
}

#[tokio::test]
async fn hostile_datadog_payloads_get_a_clear_error_and_leave_nothing() {
    let api = Api::sqlite().await;
    let header = [("x-tocsin-token", api.bender.as_str())];
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (
            DD_WRONG_TYPES.into(),
            StatusCode::BAD_REQUEST,
            "tags: expected text, got an object",
        ),
        (
            b"{\"alert_id\": \"1\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "transition: missing",
        ),
        (
            b"{\"transition\": \"Triggered\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "alert_id: missing",
        ),
        (
            b"{\"alert_id\": \"1\", \"transition\": \"Meltdown\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown transition \"Meltdown\"",
        ),
        (
            b"{\"alert_id\": \"1\", \"transition\": \"Triggered\", \"date\": \"last tuesday\"}"
                .to_vec(),
            StatusCode::BAD_REQUEST,
            "date: invalid time",
        ),
        (
            b"[1, 2, 3]".to_vec(),
            StatusCode::BAD_REQUEST,
            "expected a JSON object, got an array",
        ),
        (
            b"{\"alert_id\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            vec![b' '; 10 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "over 1048576 bytes",
        ),
    ];
    for (body, expected, message) in cases {
        let (status, answer) = send(&api, "/v1/webhooks/datadog", &header, body).await;
        assert_eq!(status, expected, "{answer}");
        says(&answer, message);
    }
    // A label that cannot be valid is named by the event's validation.
    let long = json!({ "alert_id": "1", "transition": "Triggered", "monitor": "has spaces in it" });
    let (status, answer) = send(&api, "/v1/webhooks/datadog", &header, long.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["rejected"][0]["field"], "alert.monitor", "{answer}");
    let (status, answer) = send(&api, "/v1/webhooks/datadog?high=P7", &header, DD_TRIGGERED).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    says(&answer, "unknown priority \"P7\"");
    assert!(alerts(&api).await.is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn bad_secrets_get_the_same_401_whatever_was_wrong() {
    let api = Api::sqlite().await;
    let (id_part, secret_part) = api.bender.rsplit_once('_').expect("token shape");
    let wrong_secret = format!("{id_part}_{}", "0".repeat(secret_part.len()));
    let wrong_id = format!("tocsin_000000000000_{secret_part}");
    let mut answers = Vec::new();
    for token in [
        wrong_secret.as_str(),
        wrong_id.as_str(),
        "nonsense",
        &api.bender[..api.bender.len() - 1],
    ] {
        for uri in [
            format!("/v1/webhooks/datadog?token={token}"),
            format!("/v1/webhooks/loggly?token={token}"),
        ] {
            let (status, answer) = send(&api, &uri, &[], DD_TRIGGERED).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            answers.push(answer);
        }
        let (status, answer) = send(
            &api,
            "/api/v2/alerts",
            &[("authorization", &format!("Bearer {token}"))],
            "[]",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Alertmanager's API answers errors with a bare string.
        answers.push(json!({ "error": answer }));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0]["error"], "invalid or revoked token");
    let (status, answer) = send(&api, "/v1/webhooks/loggly", &[], LOGGLY_ALERT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    says(&answer, "missing token");
    assert!(alerts(&api).await.is_empty());
}

#[tokio::test]
async fn a_loggly_alert_is_a_window_from_failure_to_recovery() {
    let api = Api::sqlite().await;
    let uri = format!(
        "/v1/webhooks/loggly?token={}&service=checkout&priority=high",
        api.bender
    );
    let (status, receipt) = send(&api, &uri, &[], LOGGLY_ALERT).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["accepted"], 2);

    let (_, history) = api.get(&api.bender, "/v1/history").await;
    let statuses: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses, ["unhealthy", "healthy"], "{history}");

    let alert = &alerts(&api).await[0];
    assert_eq!(alert["monitor"], "IndexOutOfBounds_Exception");
    assert_eq!(alert["status"], "healthy");
    // The search link's UTC time wins over the bare local one (11:46:40, UTC-4).
    assert_eq!(alert["since"], "2015-03-17T15:46:40Z");
    assert_eq!(alert["labels"]["source_group"], "checkout-web");
    assert_eq!(alert["labels"]["service"], "checkout");

    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["priority"], "high", "{incidents}");
    assert_eq!(
        incident["state"], "resolving",
        "resolves after the grace period: {incidents}"
    );
}

#[tokio::test]
async fn loggly_times_without_a_link_are_read_in_the_urls_zone() {
    let api = Api::sqlite().await;
    let uri = format!("/v1/webhooks/loggly?token={}&tz=-04:00", api.bender);
    let (status, receipt) = send(&api, &uri, &[], LOGGLY_NO_LINK).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    // "Nov 22 07:05:00" at UTC-4 is 11:05 UTC, in the year nearest to now.
    let alert = &alerts(&api).await[0];
    let since = alert["since"].as_str().unwrap_or_default();
    assert!(since.ends_with("-11-22T11:05:00Z"), "{alert}");
    assert_eq!(alert["monitor"], "5xx_burst");
    assert!(
        alert["labels"].get("source_group").is_none(),
        "N/A is no group"
    );

    for (query, message) in [
        ("tz=EST", "\"tz\""),
        ("priority=urgent", "\"priority\""),
        ("bad%20key=x", "invalid label key"),
    ] {
        let uri = format!("/v1/webhooks/loggly?token={}&{query}", api.bender);
        let (status, answer) = send(&api, &uri, &[], LOGGLY_NO_LINK).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        says(&answer, message);
    }
    let bad_time = LOGGLY_NO_LINK.replace("Nov 22 07:00:00", "Smarch 41 99:00:00");
    let uri = format!("/v1/webhooks/loggly?token={}", api.bender);
    let (status, answer) = send(&api, &uri, &[], bad_time).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    says(&answer, "start_time: invalid time");
    for (body, message) in [
        (
            "{\"alert_name\": 5, \"recent_hits\": \"x\"}",
            "recent_hits: expected an array",
        ),
        (
            "{\"alert_name\": {\"a\": 1}}",
            "alert_name: expected text, got an object",
        ),
        (
            "{\"alert_description\": \"no name\"}",
            "alert_name: missing",
        ),
        (
            "{\"alert_name\": \"x\", \"num_hits\": [1]}",
            "num_hits: expected a number",
        ),
    ] {
        let (status, answer) = send(&api, &uri, &[], body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        says(&answer, message);
    }
    let (status, _) = send(&api, &uri, &[], vec![b' '; 10 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        alerts(&api).await.len(),
        1,
        "only the valid alert was stored"
    );
}

#[tokio::test]
async fn prometheus_alerts_are_accepted_one_by_one() {
    let api = Api::sqlite().await;
    let bearer = format!("Bearer {}", api.bender);
    let (status, receipt) = send(
        &api,
        "/api/v2/alerts",
        &[("authorization", &bearer)],
        PROMETHEUS_ALERTS,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["accepted"], 2);
    assert_eq!(receipt["rejected"][0]["index"], 2);
    assert_eq!(receipt["rejected"][0]["field"], "labels.alertname");

    let alerts_now = alerts(&api).await;
    let down = alerts_now
        .iter()
        .find(|a| a["monitor"] == "InstanceDown")
        .expect("InstanceDown");
    assert_eq!(down["status"], "unhealthy");
    assert_eq!(down["labels"]["instance"], "web-1:9100");
    // An endsAt in the past is a resolved alert: healthy, never seen failing, so
    // nothing is raised.
    let disk = alerts_now
        .iter()
        .find(|a| a["monitor"] == "DiskFull")
        .expect("DiskFull");
    assert_eq!(disk["status"], "healthy");
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    assert_eq!(
        incidents["incidents"].as_array().map(Vec::len),
        Some(1),
        "{incidents}"
    );
    assert_eq!(
        incidents["incidents"][0]["priority"], "high",
        "severity=critical pages"
    );

    for (body, message) in [
        (
            "{\"labels\": {}}",
            "expected an array of alerts, got an object",
        ),
        (
            "[{\"labels\": {\"alertname\": \"X\"}, \"startsAt\": 17}]",
            "expected an RFC 3339 time, got a number",
        ),
        (
            "[{\"labels\": [\"alertname\"]}]",
            "expected an object of strings, got an array",
        ),
    ] {
        let (status, answer) =
            send(&api, "/api/v2/alerts", &[("authorization", &bearer)], body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.to_string().contains(message), "{message}: {answer}");
    }
    let (status, _) = send(
        &api,
        "/api/v2/alerts",
        &[("authorization", &bearer)],
        vec![b' '; 11 * 1024 * 1024],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn silences_are_suppressions_with_their_guards() {
    let api = Api::sqlite().await;
    let bearer = format!("Bearer {}", api.bender);
    let auth = [("authorization", bearer.as_str())];
    // Known alerts, so the share guard has a fleet to measure against.
    let fleet: Vec<Value> = (0..40)
        .map(|i| json!({ "alert": { "monitor": "InstanceDown", "status": "unhealthy" }, "context": { "service": "checkout", "instance": format!("web-{i}") } }))
        .collect();
    api.events(&api.bender, Value::Array(fleet)).await;
    api.settle().await;

    let silence = |matchers: Value| json!({ "matchers": matchers, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T02:00:00Z", "createdBy": "bpannell", "comment": "kernel upgrade" });
    let (status, created) = send(
        &api,
        "/api/v2/silences",
        &auth,
        silence(json!([
            { "name": "alertname", "value": "InstanceDown", "isRegex": false, "isEqual": true },
            { "name": "instance", "value": "web-1", "isRegex": false, "isEqual": true },
        ]))
        .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["silenceID"].as_str().expect("id").to_owned();

    // It is a suppression like any other.
    let (_, suppression) = api
        .get(&api.bender, &format!("/v1/suppressions/{id}"))
        .await;
    assert_eq!(
        suppression["targets"],
        json!([{ "monitor": "InstanceDown", "instance": "web-1" }])
    );
    assert_eq!(suppression["description"], "kernel upgrade");
    assert_eq!(suppression["metadata"]["engineer"], "bpannell");

    let (_, listed) = api
        .get(
            &api.bender,
            "/api/v2/silences?filter=instance%3D%22web-1%22",
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["matchers"][0]["name"], "alertname");
    assert_eq!(listed[0]["comment"], "kernel upgrade");
    let (_, none) = api
        .get(
            &api.bender,
            "/api/v2/silences?filter=instance%3D%22web-2%22",
        )
        .await;
    assert_eq!(none, json!([]));

    // Refused, each with its reason.
    for (matchers, message) in [
        (
            json!([{ "name": "alertname", "value": "InstanceDown", "isRegex": false, "isEqual": false }]),
            "negative matcher",
        ),
        (
            json!([{ "name": "alertname", "value": "InstanceDown", "isRegex": false, "isEqual": true }]),
            "refused",
        ),
        (
            json!([{ "name": "instance", "value": ".*", "isRegex": true, "isEqual": true }]),
            "exact",
        ),
    ] {
        let (status, answer) = send(
            &api,
            "/api/v2/silences",
            &auth,
            silence(matchers).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        says(&answer, message);
    }

    let request = Request::delete(format!("/api/v2/silence/{id}")).header("authorization", &bearer);
    let (status, _, _) = api
        .call(request.body(Body::empty()).expect("request"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, silence) = api.get(&api.bender, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(silence["status"]["state"], "expired");
    let (status, _) = api.get(&api.admin, "/api/v2/silence/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
