//! Team plugins through the API, with the real wasmtime runtime and the real components
//! built from `plugins/`: upload and validation, transformers on `POST /v1/ingest`,
//! filters in the pre-filter, collectors, state, rollback, restart, and hostile plugins
//! that must fail alone.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tocsin_tests::plugins::component;

use crate::api::Api;

/// Uploads bytes as a plugin of `kind` for the token's team.
async fn push(
    api: &Api,
    token: &str,
    name: &str,
    kind: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let request = Request::put(format!("/v1/plugins/{name}?kind={kind}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/wasm")
        .body(Body::from(bytes))
        .expect("request");
    let (status, body, _) = api.call(request).await;
    (status, body)
}

async fn pushed(api: &Api, name: &str, kind: &str, package: &str) -> Value {
    let (status, body) = push(api, &api.bender, name, kind, component(package)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Runs a plugin on a sample through `POST /v1/plugins/{name}/test`.
async fn test_run(api: &Api, name: &str, sample: Value) -> (StatusCode, Value) {
    api.request(
        &api.bender,
        "POST",
        &format!("/v1/plugins/{name}/test"),
        Some(sample),
    )
    .await
}

fn event(monitor: &str, status: &str, host: &str) -> Value {
    json!({"alert": {"monitor": monitor, "status": status}, "context": {"host": host, "region": "eu"}})
}

/// The chaos filter in `mode`, on one event; returns the answer of the dry run.
async fn chaos(api: &Api, mode: &str) -> (StatusCode, Value) {
    test_run(
        api,
        "chaos",
        json!({"events": [event("disk", "unhealthy", "web-1")], "config": {"mode": mode}}),
    )
    .await
}

async fn history(api: &Api, outcome: &str) -> Vec<Value> {
    let (_, body) = api
        .request(
            &api.bender,
            "GET",
            &format!("/v1/history?outcome={outcome}"),
            None,
        )
        .await;
    body["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_transformer_turns_nagios_lines_into_events() {
    let api = Api::with_plugins_sqlite().await;
    let info = pushed(&api, "nagios", "transformer", "nagios").await;
    assert_eq!(info["kind"], "transformer");
    assert_eq!(info["activeVersion"], 1);
    assert_eq!(
        info["versions"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );

    let body = "[1700000000] PROCESS_SERVICE_CHECK_RESULT;web-1;HTTP;2;CRITICAL - connection refused\n\
                PROCESS_HOST_CHECK_RESULT;web-2;0;PING OK\n";
    let request = Request::post("/v1/ingest/nagios?service=shop&region=eu")
        .header("authorization", format!("Bearer {}", api.bender))
        .header("content-type", "text/plain")
        .body(Body::from(body))
        .expect("request");
    let (status, receipt, _) = api.call(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["accepted"], 2, "{receipt}");

    let (_, alerts) = api.get(&api.bender, "/v1/alerts?monitor=http").await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["status"], "unhealthy", "{alerts}");
    assert_eq!(alert["labels"]["host"], "web-1");
    assert_eq!(
        alert["labels"]["service"], "shop",
        "query parameters become labels"
    );
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    assert_eq!(
        incidents["incidents"][0]["priority"], "high",
        "CRITICAL pages: {incidents}"
    );
}

#[tokio::test]
async fn a_sensu_event_becomes_a_tocsin_event() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "sensu", "transformer", "sensu").await;
    let sensu = json!({
        "entity": {"metadata": {"name": "db-3", "namespace": "default"}},
        "check": {"metadata": {"name": "check-disk", "labels": {"service": "orders"}},
                  "status": 1, "output": "disk 91% full\n", "last_ok": 1700000000}
    });
    let (status, run) = test_run(&api, "sensu", json!({"body": sensu.to_string()})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let event = &run["events"][0];
    assert_eq!(event["alert"]["monitor"], "check-disk");
    assert_eq!(event["alert"]["status"], "unhealthy");
    assert_eq!(event["alert"]["message"], "disk 91% full");
    assert_eq!(event["context"]["host"], "db-3");
    assert_eq!(event["context"]["service"], "orders");
    assert_eq!(event["alerting"]["priority"], "low");
}

#[tokio::test]
async fn a_failing_transformer_keeps_the_input_as_a_dead_letter_and_answers_422() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "nagios", "transformer", "nagios").await;
    let request = Request::post("/v1/ingest/nagios")
        .header("authorization", format!("Bearer {}", api.bender))
        .body(Body::from("PROCESS_SERVICE_CHECK_RESULT;web-1;HTTP;9;what"))
        .expect("request");
    let (status, body, _) = api.call(request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(
        error.contains("plugin \"nagios\"") && error.contains("unknown return code"),
        "{error}"
    );
    let (_, letters) = api
        .get(&api.bender, "/v1/plugins/nagios/dead-letters")
        .await;
    assert_eq!(
        letters["deadLetters"][0]["id"], body["deadLetter"],
        "{letters}"
    );
    assert_eq!(
        letters["deadLetters"][0]["body"],
        "PROCESS_SERVICE_CHECK_RESULT;web-1;HTTP;9;what"
    );
    assert_eq!(
        api.store.lag().await.expect("lag"),
        0,
        "nothing was ingested"
    );
    let (_, info) = api.get(&api.bender, "/v1/plugins/nagios").await;
    assert_eq!(info["stats"]["errors"]["error"], 1, "{info}");
    assert!(
        info["stats"]["lastError"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("return code")
    );
}

#[tokio::test]
async fn a_filter_plugin_drops_retired_hosts_in_the_prefilter() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "retired-hosts", "filter", "retired-hosts").await;
    let filters =
        json!([{"type": "plugin", "params": {"name": "retired-hosts", "hosts": ["web-7"]}}]);
    let mut retired = event("disk", "unhealthy", "web-7");
    retired["filters"] = filters.clone();
    let mut live = event("disk", "unhealthy", "web-1");
    live["filters"] = filters;
    api.events(&api.bender, json!([retired, live])).await;

    let dropped = history(&api, "dropped").await;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(
        dropped[0]["reason"],
        "plugin:retired-hosts: host web-7 is retired"
    );
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    assert_eq!(
        incidents["incidents"][0]["alerts"], 1,
        "only web-1: {incidents}"
    );
    let (_, info) = api.get(&api.bender, "/v1/plugins/retired-hosts").await;
    assert_eq!(info["stats"]["eventsIn"], 2, "one call judged both: {info}");
    assert_eq!(info["stats"]["calls"], 1, "{info}");
    assert_eq!(info["stats"]["eventsDropped"], 1);
}

#[tokio::test]
async fn a_service_lists_filter_plugins_for_its_events() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "retired-hosts", "filter", "retired-hosts").await;
    let (status, body) = api
        .request(
            &api.bender,
            "PUT",
            "/v1/services/shop",
            Some(json!({"filters": [{"type": "plugin", "params": {"name": "retired-hosts", "hosts": ["web-9"]}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut e = event("disk", "unhealthy", "web-9");
    e["context"]["service"] = json!("shop");
    api.events(&api.bender, json!([e])).await;
    let dropped = history(&api, "dropped").await;
    assert_eq!(
        dropped[0]["reason"], "plugin:retired-hosts: host web-9 is retired",
        "{dropped:?}"
    );
}

#[tokio::test]
async fn a_stateful_debounce_filter_remembers_across_batches() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "debounce", "filter", "debounce").await;
    let filters =
        json!([{"type": "plugin", "params": {"name": "debounce", "interval-ms": 600000}}]);
    let with_filter = |status: &str| {
        let mut e = event("disk", status, "web-1");
        e["filters"] = filters.clone();
        e
    };
    // Fails, recovers, fails again within the interval: the second failure is dropped.
    for status in ["unhealthy", "healthy", "unhealthy"] {
        api.events(&api.bender, json!([with_filter(status)])).await;
        api.settle().await;
    }
    let dropped = history(&api, "dropped").await;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("plugin:debounce: debounced"),
        "{dropped:?}"
    );
    let (_, info) = api.get(&api.bender, "/v1/plugins/debounce").await;
    assert_eq!(info["stateKeys"], 1, "{info}");
}

#[tokio::test]
async fn a_collector_links_runbooks() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "runbook-link", "collector", "runbook-link").await;
    let incident = json!({"id": "i-1", "team": "bender", "key": "disk | shop | eu", "title": "disk",
        "state": "open", "priority": "high", "openedAt": 0,
        "alerts": [{"monitor": "disk-full", "status": "unhealthy", "context": {"host": "web-1"}},
                   {"monitor": "cpu", "status": "healthy"}]});
    let (status, run) = test_run(
        &api,
        "runbook-link",
        json!({"incident": incident, "config": {"base": "https://wiki.example.com/runbooks/"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["sections"][0]["title"], "Runbooks");
    assert_eq!(
        run["sections"][0]["markdown"],
        "- [disk-full](https://wiki.example.com/runbooks/disk-full)"
    );
    let (status, run) = test_run(&api, "runbook-link", json!({"incident": incident})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .contains("params.base is required"),
        "{run}"
    );
}

/// A team's collector plugin runs when its incident opens: its section is on the
/// incident and in the page; a collector that fails shows why there, and the page
/// still goes.
#[tokio::test]
async fn a_collector_plugin_puts_its_section_on_the_incident_and_its_page() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "runbook-link", "collector", "runbook-link").await;
    let fakes = tocsin_tests::fakes::Fakes::start().await.expect("fakes");
    let notifiers = tocsin_notify::config::Notifiers::parse(&format!(
        "notifiers:\n  pd: {{ kind: pagerduty, routing-key: 0123456789abcdef0123456789abcdef, url: \"{}\" }}\n\
         routes:\n  - {{ team: bender, page: pd }}\n",
        fakes.url
    ))
    .expect("notifiers");
    let collectors = tocsin_collect::Collectors::new(api.store.clone())
        .with_plugins(api.collector.clone().expect("plugin runtime"));
    let outbox =
        tocsin_outbox::Outbox::new(api.store.clone(), notifiers.into()).with_collectors(collectors);
    let incident_with = |monitor: &str, params: Value| {
        json!({
            "alert": { "monitor": monitor, "status": "unhealthy" },
            "context": { "host": "web-1", "region": "eu" },
            "alerting": { "priority": "high" },
            "plugins": [{ "type": "plugin", "params": params }],
        })
    };
    api.events(
        &api.bender,
        json!([
            incident_with(
                "disk-full",
                json!({ "name": "runbook-link", "base": "https://wiki.example.com/runbooks/" })
            ),
            incident_with("cpu-hot", json!({ "name": "runbook-link" })),
        ]),
    )
    .await;
    api.settle().await;
    let now = tocsin_model::clock::now_ms();
    while outbox.round(now).await.expect("round") > 0 {}

    let (_, list) = api.get(&api.bender, "/v1/incidents").await;
    let incidents = list["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 2, "{list}");
    for summary in incidents {
        let id = summary["id"].as_str().expect("id");
        let (_, incident) = api.get(&api.bender, &format!("/v1/incidents/{id}")).await;
        let section = &incident["context"][0];
        if incident["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("disk-full")
        {
            assert_eq!(section["title"], "Runbooks", "{incident}");
            assert_eq!(
                section["markdown"],
                "- [disk-full](https://wiki.example.com/runbooks/disk-full)"
            );
        } else {
            assert!(
                section["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("params.base is required"),
                "the failure is on the incident: {incident}"
            );
        }
    }
    let pages = fakes.requests_to("pagerduty");
    assert_eq!(pages.len(), 2, "both paged, the failed collector too");
    assert!(
        pages.iter().any(|p| p
            .body
            .to_string()
            .contains("https://wiki.example.com/runbooks/disk-full")),
        "the page carries the runbook link"
    );
    assert_eq!(fakes.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn uploads_that_are_not_plugin_components_are_refused_with_a_clear_message() {
    let api = Api::with_plugins_sqlite().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            "not a WebAssembly binary",
        ),
        (
            "core",
            vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
            "core WebAssembly module, not a component",
        ),
        (
            "broken",
            vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xff, 0xff],
            "not a valid component",
        ),
        ("evil", component("bad-import"), "evil:net/socket"),
        (
            "wrong-world",
            component("nagios"),
            "does not export the tocsin:plugin filter world",
        ),
    ];
    for (name, bytes, expected) in cases {
        let (status, body) = push(&api, &api.bender, name, "filter", bytes).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or("");
        assert!(error.contains(expected), "{name}: {error}");
    }
    let (status, body) = push(&api, &api.bender, "nagios", "sorter", component("nagios")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = push(&api, &api.bender, "BadName", "filter", component("chaos")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, list) = api.get(&api.bender, "/v1/plugins").await;
    assert_eq!(list["plugins"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn hostile_plugins_fail_their_own_call_and_nothing_else() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    for (mode, expected) in [
        ("loop", "timed out after 50 ms"),
        ("memory", "exceeded its memory limit of 64 MiB"),
        ("recurse", "call stack exhausted"),
        ("flood", "a drop reason of 8388608 bytes; the limit is 4096"),
        ("miscount", "6 verdicts for 1 events"),
        ("panic", "chaos asked to panic"),
        ("error", "returned an error: chaos asked to fail"),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = chaos(&api, mode).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{mode}: {body}");
        let error = body["error"].as_str().unwrap_or("");
        assert!(
            error.contains("plugin \"chaos\"") && error.contains(expected),
            "{mode}: {error}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{mode} was stopped"
        );
        // The host and the plugin's next call are unaffected.
        let (status, body) = chaos(&api, "keep").await;
        assert_eq!(status, StatusCode::OK, "after {mode}: {body}");
        assert_eq!(body["verdicts"][0]["verdict"], "keep");
    }
    // Dry runs are not counted; a call from the pipeline is, with its last error.
    let (_, info) = api.get(&api.bender, "/v1/plugins/chaos").await;
    assert_eq!(info["stats"]["calls"], 0, "{info}");
    let mut e = event("disk", "unhealthy", "web-1");
    e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "memory"}}]);
    api.events(&api.bender, json!([e])).await;
    let (_, info) = api.get(&api.bender, "/v1/plugins/chaos").await;
    assert_eq!(info["stats"]["errors"]["memory"], 1, "{info}");
    assert_eq!(info["stats"]["lastError"]["kind"], "memory", "{info}");
}

#[tokio::test]
async fn the_sandbox_offers_no_files_environment_network_or_clock() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    // A real listener the plugin would reach if it had a network.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port().to_string();
    for (mode, config, refused) in [
        ("file", json!({"mode": "file"}), "file: Err"),
        ("dir", json!({"mode": "dir"}), "dir: Err"),
        ("env", json!({"mode": "env"}), "env: 0 vars, args 0"),
        ("net", json!({"mode": "net", "port": port}), "net: Err"),
        ("clock", json!({"mode": "clock"}), "clock: 0"),
    ] {
        let (status, body) = test_run(
            &api,
            "chaos",
            json!({"events": [event("disk", "unhealthy", "web-1")], "config": config}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{mode}: {body}");
        let seen = body["verdicts"][0]["value"].as_str().unwrap_or("");
        assert!(seen.starts_with(refused), "{mode}: the plugin saw {seen}");
    }
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn a_filter_that_fails_lets_the_event_pass_annotated() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    let mut e = event("disk", "unhealthy", "web-1");
    e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "loop"}}]);
    api.events(&api.bender, json!([e])).await;
    let passed = history(&api, "passed").await;
    assert_eq!(passed.len(), 1, "{passed:?}");
    let reason = passed[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("plugin:chaos failed open") && reason.contains("timed out"),
        "{reason}"
    );
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    assert_eq!(
        incidents["incidents"].as_array().map(Vec::len),
        Some(1),
        "the event went on"
    );
}

#[tokio::test]
async fn plugin_log_lines_and_stdio_are_captured() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    let (status, body) = chaos(&api, "log").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["log"],
        json!([
            "info: hello from chaos",
            "info: stdout line",
            "warn: stderr line"
        ])
    );
}

/// The lines shown here are the ones Tocsin's own log gets: one line each, whatever the
/// plugin put in them.
#[tokio::test]
async fn a_plugin_cannot_forge_log_lines_or_send_terminal_escapes() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    let (status, body) = test_run(
        &api,
        "chaos",
        json!({"events": [event("disk", "unhealthy", "web-1")],
               "config": {"mode": "forge", "line": "{\"level\":\"INFO\",\"message\":\"token revoked\"}"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["log"],
        json!([
            "error: real\\n{\"level\":\"INFO\",\"message\":\"token revoked\"}\\r\\u{1b}[31mred\\u{1b}[0m",
            "info: out\\u{1b}]0;title\\u{7}"
        ])
    );
}

#[tokio::test]
async fn a_dry_run_writes_no_state_but_real_calls_do() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    for _ in 0..2 {
        let (_, body) = chaos(&api, "count").await;
        assert_eq!(body["verdicts"][0]["value"], "calls: 1", "{body}");
    }
    let mut e = event("disk", "unhealthy", "web-1");
    e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "count"}}]);
    api.events(&api.bender, json!([e])).await;
    api.settle().await;
    let (_, body) = chaos(&api, "count").await;
    assert_eq!(
        body["verdicts"][0]["value"], "calls: 2",
        "the pipeline's call was kept: {body}"
    );
}

#[tokio::test]
async fn a_new_version_swaps_in_and_rollback_restores_the_previous() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "gate", "filter", "retired-hosts").await;
    let sample = json!({"events": [event("disk", "unhealthy", "web-7")], "config": {"hosts": ["web-7"], "mode": "keep"}});
    let (_, v1) = test_run(&api, "gate", sample.clone()).await;
    assert_eq!(v1["verdicts"][0]["verdict"], "drop", "{v1}");

    let info = pushed(&api, "gate", "filter", "chaos").await;
    assert_eq!(info["activeVersion"], 2);
    assert_eq!(info["versions"].as_array().map(Vec::len), Some(2));
    let (_, v2) = test_run(&api, "gate", sample.clone()).await;
    assert_eq!(
        v2["verdicts"][0]["verdict"], "keep",
        "version 2 is live without a restart: {v2}"
    );

    let (status, info) = api
        .request(&api.bender, "POST", "/v1/plugins/gate/rollback", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["activeVersion"], 1);
    let (_, back) = test_run(&api, "gate", sample).await;
    assert_eq!(back["verdicts"][0]["verdict"], "drop", "{back}");
    let (status, body) = api
        .request(&api.bender, "POST", "/v1/plugins/gate/rollback", None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no version before 1: {body}"
    );

    let (status, body) = push(
        &api,
        &api.bender,
        "gate",
        "collector",
        component("runbook-link"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a name keeps its kind: {body}"
    );

    let (status, _) = api
        .request(&api.bender, "DELETE", "/v1/plugins/gate", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&api.bender, "/v1/plugins/gate").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plugins_belong_to_their_team() {
    let api = Api::with_plugins_sqlite().await;
    pushed(&api, "chaos", "filter", "chaos").await;
    let (other, _) = tocsin_api::auth::create(
        api.store.as_ref(),
        tocsin_api::auth::Grant::Team("zoidberg".into()),
        "",
    )
    .await
    .expect("token");
    let (status, _) = api.get(&other, "/v1/plugins/chaos").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = api.get(&other, "/v1/plugins").await;
    assert_eq!(list["plugins"], json!([]));
    let (status, _) = api.get(&other, "/v1/plugins/chaos?team=bender").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another team's event naming the plugin does not run it: it fails open.
    let mut e = event("disk", "unhealthy", "web-1");
    e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "count"}}]);
    api.events(&other, json!([e])).await;
    let (_, passed) = api.get(&other, "/v1/history?outcome=passed").await;
    let reason = passed["events"][0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no plugin \"chaos\""), "{passed}");
    let (_, admin) = api.get(&api.admin, "/v1/plugins").await;
    assert_eq!(admin["plugins"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn oversized_uploads_are_refused_before_they_are_read() {
    let api = Api::with_plugins_sqlite().await;
    let request = Request::put("/v1/plugins/huge?kind=filter")
        .header("authorization", format!("Bearer {}", api.bender))
        .header("content-length", (65u64 << 20).to_string())
        .body(Body::from(vec![0u8; 16]))
        .expect("request");
    let (status, body, _) = api.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn plugins_survive_a_restart_with_their_state() {
    let (dir, url) = tocsin_tests::sqlite_url();
    {
        let api = Api::with_plugins(&url, None).await;
        let request = Request::put("/v1/plugins/chaos?kind=filter")
            .header("authorization", format!("Bearer {}", api.bender))
            .body(Body::from(component("chaos")))
            .expect("request");
        let (status, body, _) = api.call(request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut e = event("disk", "unhealthy", "web-1");
        e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "count"}}]);
        api.events(&api.bender, json!([e])).await;
        api.settle().await;
        // State is saved every second.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let api = Api::with_plugins(&url, Some(dir)).await;
    let (status, body) = test_run(
        &api,
        "chaos",
        json!({"events": [event("disk", "unhealthy", "web-1")], "config": {"mode": "count"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verdicts"][0]["value"], "calls: 2", "{body}");
}

#[tokio::test]
async fn a_python_transformer_works_like_a_rust_one() {
    let api = Api::with_plugins_sqlite().await;
    let bytes = tokio::task::spawn_blocking(tocsin_tests::plugins::python_zabbix)
        .await
        .expect("built");
    assert!(
        bytes.len() > 10 << 20,
        "a componentize-py component embeds the interpreter"
    );
    // Compiling it takes seconds; other requests are answered meanwhile.
    let api = std::sync::Arc::new(api);
    let upload = tokio::spawn({
        let api = api.clone();
        async move { push(&api, &api.bender, "zabbix", "transformer", bytes).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = api.get(&api.bender, "/v1/plugins").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !upload.is_finished(),
        "the list was answered while the upload compiled"
    );
    let (status, info) = upload.await.expect("upload");
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let alert = json!({"event_id": "42", "host": "db-1", "trigger": "High CPU load on db-1",
        "severity": "Disaster", "status": "PROBLEM", "message": "load 31.2",
        "tags": [{"tag": "Service", "value": "orders"}], "time": "1700000000"});
    let request = Request::post("/v1/ingest/zabbix")
        .header("authorization", format!("Bearer {}", api.bender))
        .header("content-type", "application/json")
        .body(Body::from(alert.to_string()))
        .expect("request");
    let (status, receipt, _) = api.call(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let (_, alerts) = api.get(&api.bender, "/v1/alerts").await;
    let stored = &alerts["alerts"][0];
    assert_eq!(stored["monitor"], "high-cpu-load-on-db-1", "{alerts}");
    assert_eq!(
        stored["labels"],
        json!({"host": "db-1", "service": "orders"})
    );
    let (_, incidents) = api.get(&api.bender, "/v1/incidents").await;
    assert_eq!(
        incidents["incidents"][0]["priority"], "high",
        "Disaster pages: {incidents}"
    );

    // Its errors are a 422 with the Python exception's message, like any plugin's.
    let request = Request::post("/v1/ingest/zabbix")
        .header("authorization", format!("Bearer {}", api.bender))
        .body(Body::from(
            "{\"host\": \"db-1\", \"trigger\": \"x\", \"status\": \"MAYBE\"}",
        ))
        .expect("request");
    let (status, body, _) = api.call(request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("status must be PROBLEM or RESOLVED"),
        "{body}"
    );
}

#[tokio::test]
async fn plugins_versions_state_and_dead_letters_work_on_postgresql() {
    let url = tocsin_tests::postgres_url().await;
    {
        let api = Api::with_plugins(&url, None).await;
        pushed(&api, "chaos", "filter", "chaos").await;
        pushed(&api, "chaos", "filter", "chaos").await;
        let mut e = event("disk", "unhealthy", "web-1");
        e["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "count"}}]);
        api.events(&api.bender, json!([e])).await;
        let dropped = history(&api, "dropped").await;
        assert_eq!(
            dropped[0]["reason"], "plugin:chaos: calls: 1",
            "{dropped:?}"
        );
        let (status, info) = api
            .request(&api.bender, "POST", "/v1/plugins/chaos/rollback", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["activeVersion"], 1);

        pushed(&api, "nagios", "transformer", "nagios").await;
        let request = Request::post("/v1/ingest/nagios")
            .header("authorization", format!("Bearer {}", api.bender))
            .body(Body::from(vec![0xff, 0xfe, 0x00]))
            .expect("request");
        let (status, body, _) = api.call(request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (_, letters) = api
            .get(&api.bender, "/v1/plugins/nagios/dead-letters")
            .await;
        assert_eq!(letters["deadLetters"][0]["body"], "fffe00", "{letters}");
        assert_eq!(letters["deadLetters"][0]["bodyHex"], true);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let api = Api::with_plugins(&url, None).await;
    let (_, info) = api.get(&api.bender, "/v1/plugins/chaos").await;
    assert_eq!(info["activeVersion"], 1, "{info}");
    assert_eq!(info["stateKeys"], 1, "{info}");
    let (_, run) = chaos(&api, "count").await;
    assert_eq!(run["verdicts"][0]["value"], "calls: 2", "{run}");
}

/// Rows of the SQLite file's `plugin_artifacts`: (engine, artifact size).
async fn artifacts(url: &str) -> Vec<(String, i64)> {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("opens");
    sqlx::query_as("SELECT engine, length(artifact) FROM plugin_artifacts ORDER BY engine")
        .fetch_all(&mut conn)
        .await
        .expect("lists artifacts")
}

async fn sql(url: &str, statement: &str, bytes: Option<Vec<u8>>) {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("opens");
    let mut query = sqlx::query(statement);
    if let Some(bytes) = bytes {
        query = query.bind(bytes);
    }
    query.execute(&mut conn).await.expect("runs");
}

/// Whether the `chaos` filter of a server started on `url` answers a dry run.
async fn chaos_runs(url: &str) -> bool {
    let api = Api::with_plugins(url, None).await;
    let (status, body) = chaos(&api, "keep").await;
    status == StatusCode::OK && body["verdicts"][0]["verdict"] == "keep"
}

#[tokio::test]
async fn a_restart_loads_plugins_from_their_precompiled_artifact_and_compiles_when_none_fits() {
    let (_dir, url) = tocsin_tests::sqlite_url();
    {
        let api = Api::with_plugins(&url, None).await;
        pushed(&api, "chaos", "filter", "chaos").await;
    }
    // The upload compiled the component once and stored what it compiled to.
    let stored = artifacts(&url).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let engine = stored[0].0.clone();
    assert!(stored[0].1 > 10_000, "{stored:?}");

    // With its component's bytes ruined, a restarted server can only run the plugin from
    // the artifact: it does, without compiling.
    sql(&url, "UPDATE plugin_versions SET component = X'00'", None).await;
    assert!(chaos_runs(&url).await, "loaded from the artifact");

    // An artifact of another engine (another release, other settings) does not fit: the
    // component is compiled again and an artifact for this engine stored beside it.
    sql(
        &url,
        "UPDATE plugin_versions SET component = ?",
        Some(component("chaos")),
    )
    .await;
    sql(
        &url,
        "UPDATE plugin_artifacts SET engine = 'another-engine'",
        None,
    )
    .await;
    assert!(chaos_runs(&url).await, "compiled again");
    let stored = artifacts(&url).await;
    let mut engines: Vec<&str> = stored.iter().map(|(e, _)| e.as_str()).collect();
    engines.sort_unstable();
    let mut expected = ["another-engine", engine.as_str()];
    expected.sort_unstable();
    assert_eq!(engines, expected, "{stored:?}");

    // An artifact that does not load (damaged) is not trusted: compiled again, replaced.
    sql(
        &url,
        "UPDATE plugin_artifacts SET artifact = X'0061736d0d000100'",
        None,
    )
    .await;
    assert!(chaos_runs(&url).await, "compiled again");
    let stored = artifacts(&url).await;
    assert!(
        stored
            .iter()
            .any(|(e, size)| *e == engine && *size > 10_000),
        "{stored:?}"
    );

    // Removing the plugin removes the artifacts of its component.
    let api = Api::with_plugins(&url, None).await;
    let (status, body) = api
        .request(&api.bender, "DELETE", "/v1/plugins/chaos", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(artifacts(&url).await, []);
}
