//! Tocsin watched as an operator watches it (docs/operations.md, "Watching Tocsin"): a
//! real `tocsin serve` scraped by Debian's `prometheus` with the shipped rules, every
//! panel of the shipped Grafana dashboard queried, `/metrics` refused to team tokens,
//! `promtool` checking the exposition and the rules, and back-pressure under a sustained
//! overload that keeps the journal under its bound, loses nothing acknowledged, fails
//! the canary and makes the lag rule fire.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tocsin_tests::fakes::Fakes;
use tocsin_tests::plugins::component;
use tocsin_tests::{Killed, Server, create_token, free_port, sqlite_url, workspace};

const PROMTOOL: &str = "/usr/bin/promtool";

fn rules_file() -> PathBuf {
    workspace().join("infra/prometheus/tocsin-rules.yml")
}

/// Debian's Prometheus scraping `target` (`host:port`) every 500 ms as job `tocsin`,
/// evaluating `rules`; returns it and its base URL.
fn prometheus(dir: &Path, target: &str, rules: &str) -> (Killed, String) {
    let config = format!(
        r#"
global:
  scrape_interval: 500ms
  evaluation_interval: 500ms
rule_files: ["rules.yml"]
scrape_configs:
  - job_name: tocsin
    static_configs:
      - targets: ["{target}"]
"#
    );
    tocsin_tests::start_prometheus(dir, &config, rules)
}

/// An instant query's result vector (empty while Prometheus is not up yet).
async fn query(prometheus: &str, expr: &str) -> Vec<Value> {
    let answer = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await;
    let Ok(answer) = answer else {
        return Vec::new();
    };
    let body: Value = answer.json().await.unwrap_or_default();
    assert_ne!(body["status"], "error", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("scrape");
    (answer.status().as_u16(), answer.text().await.expect("text"))
}

/// The value of the sample `series` (name and labels as rendered) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The metric names a scrape exports.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(text) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("promtool");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `tocsin serve` on `database` with `extra` flags, its metrics on an address of their
/// own and the canary every second; returns it and the metrics' address (`host:port`).
fn watched(database: &str, extra: &[&str]) -> (Server, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = extra.to_vec();
    args.extend(["--metrics-listen", &listen, "--canary", "1s"]);
    let server = Server::start(database, &args, &[]).expect("server starts");
    (server, listen)
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

fn unhealthy(monitor: &str, host: &str) -> Value {
    json!({"alert": {"monitor": monitor, "status": "unhealthy", "message": "down"},
           "context": {"service": "checkout", "host": host},
           "grouping": {"keys": ["${alert.monitor}"]}})
}

#[test]
fn the_rules_pass_promtool() {
    let rules = rules_file();
    let (ok, output) = promtool(&["check", "rules", &rules.to_string_lossy()], None);
    assert!(ok, "{output}");
    for alert in [
        "TocsinDown",
        "TocsinPipelineBehind",
        "TocsinDeliveriesDead",
        "TocsinOutboxStuck",
        "TocsinPluginFailing",
        "TocsinJournalGrowing",
        "TocsinCanaryFailing",
    ] {
        let text = std::fs::read_to_string(&rules).expect("rules");
        assert!(
            text.contains(&format!("alert: {alert}")),
            "{alert} is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_users_did_and_feed_every_dashboard_panel() {
    let fakes = Fakes::start().await.expect("fakes");
    let (dir, database) = sqlite_url();
    // A Slack notifier that works, and a webhook nobody listens on: its delivery dies.
    let notifiers = dir.path().join("notifiers.yml");
    std::fs::write(
        &notifiers,
        format!(
            r##"
public-url: http://tocsin.test
retry: {{ attempts: 1, first: 10ms, max: 50ms }}
notifiers:
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{}" }}
  nowhere: {{ kind: webhook, url: "http://127.0.0.1:{}/hook", secret: "s3cret-s3cret" }}
routes:
  - {{ team: bender, chat: slack, webhooks: [nowhere] }}
"##,
            fakes.url,
            free_port()
        ),
    )
    .expect("notifiers");
    let admin = create_token(&database, &["--admin"]).expect("admin token");
    let bender = create_token(&database, &["--team", "bender"]).expect("team token");
    let notifiers = notifiers.to_string_lossy();
    let (server, metrics) = watched(&database, &["--notifiers", &notifiers]);
    let metrics_url = format!("http://{metrics}/metrics");

    // A team token may not read every team's counts; an admin may, on the API's address.
    let (status, body) = scrape(&format!("{}/metrics", server.url), Some(&bender)).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = scrape(&format!("{}/metrics", server.url), None).await;
    assert_eq!(status, 401);
    let (status, _) = scrape(&format!("{}/metrics", server.url), Some(&admin)).await;
    assert_eq!(status, 200);

    // What bender does: a plugin that fails once, incidents, one closed, a bad event.
    let put = reqwest::Client::new()
        .put(format!("{}/v1/plugins/chaos?kind=filter", server.url))
        .bearer_auth(&bender)
        .body(component("chaos"))
        .send()
        .await
        .expect("upload");
    assert!(
        put.status().is_success(),
        "{}",
        put.text().await.unwrap_or_default()
    );
    // One event through the filter in the pipeline, which fails (dry runs count nothing).
    let mut filtered = unhealthy("fs", "web-9");
    filtered["filters"] = json!([{"type": "plugin", "params": {"name": "chaos", "mode": "error"}}]);
    let (status, receipt) = post(&server, &bender, "/v1/events", filtered).await;
    assert_eq!(status, 202, "{receipt}");
    let mut ids = Vec::new();
    for monitor in ["disk", "cpu", "memory"] {
        let (status, receipt) = post(
            &server,
            &bender,
            "/v1/events",
            json!([unhealthy(monitor, "web-1"), unhealthy(monitor, "web-2")]),
        )
        .await;
        assert_eq!(status, 202, "{receipt}");
        ids.extend(receipt["ids"].as_array().cloned().unwrap_or_default());
    }
    let (status, _) = post(
        &server,
        &bender,
        "/v1/events",
        json!({"alert": {"monitor": "disk", "status": "warning"}}),
    )
    .await;
    assert_eq!(status, 400);
    let deadline = Instant::now() + Duration::from_secs(20);
    let incidents = loop {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/v1/incidents", server.url))
            .bearer_auth(&bender)
            .send()
            .await
            .expect("incidents")
            .json()
            .await
            .expect("json");
        let incidents = page["incidents"].as_array().cloned().unwrap_or_default();
        // The failed filter lets its event through: four incidents.
        if incidents.len() == 4 || Instant::now() > deadline {
            break incidents;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(incidents.len(), 4, "{incidents:?}");
    let closed = incidents[0]["id"].as_str().expect("id").to_owned();
    let (status, _) = post(
        &server,
        &bender,
        &format!("/v1/incidents/{closed}/close"),
        json!({}),
    )
    .await;
    assert!(status < 300, "close answered {status}");

    // Prometheus scrapes while a steady stream of repeats comes in.
    let prom_dir = tempfile::tempdir().expect("dir");
    let rules = std::fs::read_to_string(rules_file()).expect("rules");
    let (_prometheus, prom) = prometheus(prom_dir.path(), &metrics, &rules);
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let (status, _) = post(
            &server,
            &bender,
            "/v1/events",
            json!([unhealthy("disk", "web-1"), unhealthy("cpu", "web-1")]),
        )
        .await;
        assert_eq!(status, 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, text) = scrape(&metrics_url, None).await;
    assert_eq!(status, 200);
    let (ok, output) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics: {output}");
    let accepted = sample(
        &text,
        r#"tocsin_events_accepted_total{source="api",team="bender"}"#,
    )
    .expect("accepted events counted");
    assert!(accepted >= 6.0, "{accepted}");
    assert_eq!(
        sample(
            &text,
            r#"tocsin_events_rejected_total{source="api",team="bender",reason="invalid"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tocsin_incidents_opened_total{team="bender",priority="low"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tocsin_incidents_resolved_total{team="bender",priority="low"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tocsin_plugin_errors_total{team="bender",plugin="chaos",kind="error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"tocsin_outbox_deliveries_total{notifier="nowhere",kind="webhook",outcome="dead"}"#
        )
        .is_some_and(|n| n >= 4.0),
        "every webhook delivery dies"
    );
    assert!(
        sample(
            &text,
            r#"tocsin_outbox_deliveries_total{notifier="slack",kind="slack",outcome="sent"}"#
        )
        .is_some_and(|n| n >= 4.0)
    );
    assert!(
        sample(
            &text,
            r#"tocsin_http_requests_total{method="POST",route="/v1/events",status="202"}"#
        )
        .is_some_and(|n| n >= 3.0)
    );
    assert_eq!(sample(&text, "tocsin_canary_ok"), Some(1.0));
    // bender's seven identities and the canary's, none flapping.
    assert_eq!(sample(&text, "tocsin_pipeline_tracked_alerts"), Some(8.0));
    assert_eq!(sample(&text, "tocsin_pipeline_flapping_alerts"), Some(0.0));
    assert_eq!(sample(&text, "tocsin_pipeline_lag_events"), Some(0.0));
    // No label grows with the data: no event or incident id anywhere.
    for id in ids
        .iter()
        .filter_map(Value::as_str)
        .chain(incidents.iter().filter_map(|i| i["id"].as_str()))
    {
        assert!(!text.contains(id), "{id} is in the metrics");
    }

    // Every panel of the dashboard has data, and names only metrics Tocsin exports.
    let names = exported(&text);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("infra/grafana/tocsin.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let metric = regex::Regex::new(r"tocsin_[a-z_]+").expect("regex");
    let mut empty = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in metric.find_iter(expr).map(|m| m.as_str()) {
                let base = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_sum"))
                    .or_else(|| name.strip_suffix("_count"))
                    .unwrap_or(name);
                assert!(
                    names.contains(base),
                    "panel {:?} names {name}, which Tocsin does not export",
                    panel["title"]
                );
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if !query(&prom, expr).await.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    empty.push(format!("{}: {expr}", panel["title"]));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    assert!(empty.is_empty(), "panels without data: {empty:#?}");
    // The scrape target is up, so the down rule is quiet.
    let up = query(&prom, r#"up{job="tocsin"}"#).await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
}

/// Sends batches of new identities from `senders` tasks until `stop`; returns the ids of
/// every event acknowledged with a 202 and the number of 503s.
async fn overload(
    server: &Server,
    token: &str,
    senders: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, u64) {
    let refused = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (url, token, stop, refused, next) = (
            server.url.clone(),
            token.to_owned(),
            stop.clone(),
            refused.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let first = next.fetch_add(1_000, Ordering::SeqCst);
                let batch: Vec<Value> = (first..first + 1_000)
                    .map(|i| {
                        json!({"alert": {"monitor": "load", "status": "healthy"},
                               "context": {"service": "load", "host": format!("host-{i}")}})
                    })
                    .collect();
                let Ok(answer) = client
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await
                else {
                    continue;
                };
                match answer.status().as_u16() {
                    202 => {
                        let receipt: Value = answer.json().await.expect("receipt");
                        ids.extend(
                            receipt["ids"]
                                .as_array()
                                .expect("ids")
                                .iter()
                                .filter_map(|id| id.as_str().map(str::to_owned)),
                        );
                    }
                    503 => {
                        assert!(answer.headers().contains_key("retry-after"));
                        refused.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("ingest answered {other}"),
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("sender"));
    }
    (ids, refused.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_overload_keeps_the_journal_under_its_bound_and_loses_nothing() {
    const BOUND: f64 = 10_000.0;
    let (_dir, database) = sqlite_url();
    let team = create_token(&database, &["--team", "bender"]).expect("team token");
    let (server, metrics) = watched(&database, &["--max-lag-events", "10000"]);
    let metrics_url = format!("http://{metrics}/metrics");
    // The lag rule as shipped, with its threshold and duration shrunk to this test's
    // seconds: it must fire in a real Prometheus while the pipeline is behind.
    let shipped = std::fs::read_to_string(rules_file()).expect("rules");
    let behind = "expr: tocsin_pipeline_lag_seconds > 60\n        for: 5m";
    assert!(
        shipped.contains(behind),
        "the lag rule changed: update this test"
    );
    let rules = shipped.replace(
        behind,
        "expr: tocsin_pipeline_lag_seconds > 0.2\n        for: 0s",
    );
    let prom_dir = tempfile::tempdir().expect("dir");
    let (_prometheus, prom) = prometheus(prom_dir.path(), &metrics, &rules);

    let stop = Arc::new(AtomicBool::new(false));
    // Two senders: enough to outrun the pipeline, light enough for the tests beside it.
    let load = overload(&server, &team, 2, stop.clone());
    let watch = async {
        let started = Instant::now();
        let (mut max_lag, mut not_ready, mut fired) = (0.0f64, None, false);
        // Probes that answered 503 right after one that did not: what the log tells.
        let (mut was_ready, mut spells, mut unready_probes) = (true, 0, 0);
        while started.elapsed() < Duration::from_secs(10) {
            let (_, text) = scrape(&metrics_url, None).await;
            max_lag = max_lag.max(sample(&text, "tocsin_pipeline_lag_events").unwrap_or(0.0));
            let ready = reqwest::get(format!("{}/readyz", server.url))
                .await
                .expect("readyz");
            spells += usize::from(was_ready && ready.status() == 503);
            was_ready = ready.status() != 503;
            if ready.status() == 503 {
                unready_probes += 1;
                not_ready = Some(ready.json::<Value>().await.expect("json"));
            }
            fired |= query(
                &prom,
                r#"ALERTS{alertname="TocsinPipelineBehind",alertstate="firing"}"#,
            )
            .await
            .len()
                == 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::SeqCst);
        (max_lag, not_ready, fired, spells, unready_probes)
    };
    let ((ids, refused), (max_lag, not_ready, fired, spells, unready_probes)) =
        tokio::join!(load, watch);
    // Readiness is logged when it changes, not at every probe.
    let logged = server
        .stderr()
        .iter()
        .filter(|line| line.contains("not ready") && !line.contains("database is not ready"))
        .count();
    assert_eq!(
        logged, spells,
        "{unready_probes} probes answered 503 in {spells} spells: the log should say so {spells} times"
    );
    assert!(refused > 0, "the load never met the bound: not an overload");
    // A refusal is counted, not logged: an overload must not flood the log. The first
    // word of a line is its timestamp, whose digits may well read 503.
    let flood: Vec<String> = server
        .stderr()
        .into_iter()
        .filter(|line| {
            line.split_once(' ')
                .is_some_and(|(_, rest)| rest.contains("503"))
        })
        .take(3)
        .collect();
    assert!(flood.is_empty(), "refusals logged: {flood:?}");
    assert!(
        max_lag <= BOUND,
        "the journal held {max_lag} events waiting, past the bound {BOUND}"
    );
    let not_ready = not_ready.expect("/readyz said not ready during the overload");
    assert!(
        not_ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("behind") || r.contains("canary")),
        "{not_ready}"
    );
    assert!(fired, "the lag rule did not fire in Prometheus");

    // Once the load stops the pipeline catches up, 202s resume, the canary gets through
    // (`/readyz` is 200 only once it has).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = scrape(&metrics_url, None).await;
        let ready = reqwest::get(format!("{}/readyz", server.url))
            .await
            .expect("readyz")
            .status();
        if sample(&text, "tocsin_pipeline_lag_events") == Some(0.0) && ready == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline did not catch up: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = post(&server, &team, "/v1/events", unhealthy("after", "web-1")).await;
    assert_eq!(status, 202, "ingest resumes");

    // Every event acknowledged with a 202 was processed: each is its alert's latest.
    let store = tocsin_store::open(&database, tocsin_store::StoreOptions::default())
        .await
        .expect("store");
    let known: BTreeSet<String> = store.event_ids().await.expect("ids").into_iter().collect();
    let lost: Vec<_> = ids
        .iter()
        .filter(|id| !known.contains(*id))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are gone, such as {lost:?}",
        ids.iter().filter(|id| !known.contains(*id)).count(),
        ids.len()
    );
    assert!(
        ids.len() >= 10_000,
        "only {} events acknowledged",
        ids.len()
    );
}

/// A span as an OTLP/HTTP receiver got it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace: String,
    span: String,
    parent: String,
}

/// A local OTLP/HTTP receiver: decodes every `POST /v1/traces` (protobuf) and keeps its
/// spans. Returns its base URL and what it received.
async fn otlp_receiver() -> (String, Arc<std::sync::Mutex<Vec<Received>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    let spans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut sink = sink.lock().expect("lock");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            sink.push(Received {
                                name: span.name,
                                trace: hex::encode(span.trace_id),
                                span: hex::encode(span.span_id),
                                parent: hex::encode(span.parent_span_id),
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_an_event_from_the_request_to_each_notification() {
    let fakes = Fakes::start().await.expect("fakes");
    let (receiver, spans) = otlp_receiver().await;
    let (dir, database) = sqlite_url();
    let notifiers = dir.path().join("notifiers.yml");
    std::fs::write(
        &notifiers,
        format!(
            r##"
public-url: http://tocsin.test
notifiers:
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{url}" }}
  pd: {{ kind: pagerduty, routing-key: "R0UT1NGKEY0123456789012345678901", url: "{url}" }}
routes:
  - {{ team: bender, page: pd, chat: slack }}
"##,
            url = fakes.url
        ),
    )
    .expect("notifiers");
    let bender = create_token(&database, &["--team", "bender"]).expect("team token");
    let server = Server::start(
        &database,
        &[
            "--notifiers",
            &notifiers.to_string_lossy(),
            "--otlp-endpoint",
            &receiver,
        ],
        &[],
    )
    .expect("server starts");

    // The sender's trace and its span, as a service calling Tocsin would send them.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sender = "00f067aa0ba902b7";
    let mut event = unhealthy("disk", "web-1");
    event["alerting"] = json!({"priority": "high"});
    event["plugins"] = json!([{"type": "markdown", "params": {"title": "Triage", "content": "Look at the disk."}}]);
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&bender)
        .header("traceparent", format!("00-{trace}-{sender}-01"))
        .json(&event)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);

    // Every stage's span arrives in the sender's trace: the request (under the sender's
    // span), the append, the pipeline's grouping, the collectors, each delivery.
    let wanted = [
        "request",
        "journal.append",
        "pipeline.incident",
        "collect",
        "delivery",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_trace = loop {
        let got: Vec<Received> = spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace == trace)
            .cloned()
            .collect();
        let deliveries = got.iter().filter(|s| s.name == "delivery").count();
        if (wanted.iter().all(|w| got.iter().any(|s| s.name == *w)) && deliveries >= 2)
            || Instant::now() > deadline
        {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    for name in wanted {
        assert!(
            names.contains(&name),
            "no {name} span in the trace: {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| **n == "delivery").count(),
        2,
        "a delivery span per notifier (PagerDuty and Slack): {names:?}"
    );
    let request = in_trace
        .iter()
        .find(|s| s.name == "request")
        .expect("request");
    assert_eq!(
        request.parent, sender,
        "the request hangs under the sender's span"
    );
    let append = in_trace
        .iter()
        .find(|s| s.name == "journal.append")
        .expect("append");
    assert_eq!(
        append.parent, request.span,
        "the append is part of the request"
    );
    // The stages after the journal share one parent in the trace.
    let later: BTreeSet<&str> = in_trace
        .iter()
        .filter(|s| ["pipeline.incident", "collect", "delivery"].contains(&s.name.as_str()))
        .map(|s| s.parent.as_str())
        .collect();
    assert_eq!(later.len(), 1, "{in_trace:?}");
    assert_eq!(fakes.pages().len(), 1, "one page");
}
