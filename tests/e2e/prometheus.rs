//! The Alertmanager-compatible API with the real clients: Debian's `prometheus` sends an
//! alert that fires and later resolves, and `amtool` adds, queries and expires silences.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_tests::{Server, create_token, free_port, sqlite_url};

const AMTOOL: &str = "/usr/bin/amtool";

fn need(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: run infra/deps.sh (it installs prometheus and prometheus-alertmanager)"
    );
}

/// `host:port` of a server's base URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// The `InstanceDown` alert of the scrape target, as Tocsin sees it.
async fn instance_down(server: &Server, token: &str) -> Option<Value> {
    let page: Value = reqwest::Client::new()
        .get(format!("{}/v1/alerts?monitor=InstanceDown", server.url))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    page["alerts"].as_array()?.first().cloned()
}

/// Polls until the alert has `status`, for at most a minute.
async fn wait_for(server: &Server, token: &str, status: &str, prometheus: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(alert) = instance_down(server, token).await
            && alert["status"] == status
        {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} InstanceDown alert within a minute; prometheus log:\n{}\ntocsin log:\n{}",
            std::fs::read_to_string(prometheus).unwrap_or_default(),
            server.stderr().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn prometheus_sends_an_alert_that_fires_and_then_resolves() {
    let (dir, database) = sqlite_url();
    let token = create_token(&database, &["--team", "bender"]).expect("token");
    let server = Server::start(&database, &[], &[]).expect("tocsin serves");

    // The scrape target is down at first: `up == 0` fires InstanceDown.
    let target = free_port();
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      authorization:
        credentials: {token}
      static_configs:
        - targets: ["{tocsin}"]
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ["127.0.0.1:{target}"]
        labels: {{ service: checkout, region: local }}
"#,
        tocsin = authority(&server.url)
    );
    let rules = r#"
groups:
  - name: tocsin
    rules:
      - alert: InstanceDown
        expr: up == 0
        labels: { severity: critical }
        annotations:
          summary: "{{ $labels.instance }} is down"
          runbook_url: https://runbooks.example.com/InstanceDown
"#;
    let log_path = dir.path().join("prometheus.log");
    let _prometheus = tocsin_tests::start_prometheus(dir.path(), &config, rules);

    let firing = wait_for(&server, &token, "unhealthy", &log_path).await;
    assert_eq!(firing["team"], "bender");
    assert_eq!(firing["labels"]["instance"], format!("127.0.0.1:{target}"));
    assert_eq!(firing["labels"]["job"], "checkout");
    assert_eq!(firing["labels"]["service"], "checkout");
    assert_eq!(firing["labels"]["severity"], "critical");
    let incidents: Value = reqwest::Client::new()
        .get(format!("{}/v1/incidents", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("incidents")
        .json()
        .await
        .expect("json");
    assert_eq!(incidents["incidents"][0]["priority"], "high", "{incidents}");

    // The target comes up: Prometheus resolves the alert and says so with an endsAt.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", target))
        .await
        .expect("target port");
    let metrics = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { "checkout_requests_total 1\n" }),
    );
    tokio::spawn(async move { axum::serve(listener, metrics).await });
    let resolved = wait_for(&server, &token, "healthy", &log_path).await;
    assert_eq!(
        resolved["fingerprint"], firing["fingerprint"],
        "the same alert"
    );
}

/// Runs amtool against Tocsin; returns (success, stdout, stderr).
fn amtool(url: &str, http_config: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(AMTOOL)
        .arg(format!("--alertmanager.url={url}"))
        .arg(format!("--http.config.file={}", http_config.display()))
        .args(args)
        .output()
        .expect("amtool runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn amtool_adds_queries_and_expires_silences() {
    need(AMTOOL);
    let (dir, database) = sqlite_url();
    let token = create_token(&database, &["--team", "bender"]).expect("token");
    let server = Server::start(&database, &[], &[]).expect("tocsin serves");
    let http_config = dir.path().join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {token}\n"),
    )
    .expect("http config");
    let url = server.url.clone();
    let run = move |args: &[&str]| amtool(&url, &http_config, args);

    let (ok, stdout, stderr) = run(&[
        "silence",
        "add",
        "alertname=InstanceDown",
        "instance=~web-.*",
        "--comment=kernel upgrade",
        "--author=bpannell",
        "--duration=2h",
    ]);
    assert!(ok, "amtool silence add failed: {stderr}");
    let id = stdout.trim().to_owned();
    assert!(!id.is_empty(), "amtool printed the new silence's id");

    // It is a Tocsin suppression, with its regex target.
    let suppression: Value = reqwest::Client::new()
        .get(format!("{}/v1/suppressions/{id}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("suppression")
        .json()
        .await
        .expect("json");
    assert_eq!(
        suppression["targets"][0]["monitor"], "InstanceDown",
        "{suppression}"
    );
    assert_eq!(suppression["targets"][0]["instance"], "~web-.*");
    assert_eq!(suppression["metadata"]["engineer"], "bpannell");

    let (ok, stdout, stderr) = run(&["silence", "query", "-o", "json"]);
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("amtool prints JSON");
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["comment"], "kernel upgrade");
    let (ok, stdout, stderr) = run(&["silence", "query", "-q", "alertname=InstanceDown"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), id);
    let (_, stdout, _) = run(&["silence", "query", "-q", "alertname=DiskFull"]);
    assert_eq!(stdout.trim(), "", "the filter applies");

    // A negative matcher is refused with Tocsin's reason.
    let (ok, _, stderr) = run(&[
        "silence",
        "add",
        "alertname=InstanceDown",
        "instance!=web-1",
        "--comment=all but one",
    ]);
    assert!(!ok, "a negative matcher must be refused");
    assert!(stderr.contains("negative matcher"), "{stderr}");

    let (ok, _, stderr) = run(&["silence", "expire", &id]);
    assert!(ok, "{stderr}");
    let (_, stdout, _) = run(&["silence", "query", "-q"]);
    assert_eq!(stdout.trim(), "", "an expired silence is no longer active");
    let (ok, stdout, stderr) = run(&["silence", "query", "--expired", "-q"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), id);
}
