//! The real `tocsin` binary: serve, token, send, migrate.

use serde_json::{Value, json};
use tocsin_tests::{Server, create_token, sqlite_url, tocsin};

async fn post(server: &Server, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("server answers");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON answer"),
    )
}

#[tokio::test]
async fn serve_creates_the_database_and_says_how_to_get_a_token() {
    let (dir, url) = sqlite_url();
    assert!(!dir.path().join("tocsin.db").exists());
    let server = Server::start(&url, &[], &[]).expect("serves");
    assert!(
        dir.path().join("tocsin.db").exists(),
        "created on first run"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.stdout().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = server.stdout().join("\n");
    assert!(
        out.contains(&format!("tocsin token create --admin --database-url {url}")),
        "{out}"
    );
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn tokens_from_the_cli_open_and_close_the_api() {
    let (_dir, url) = sqlite_url();
    let server = Server::start(&url, &[], &[]).expect("serves");
    let bender = create_token(
        &url,
        &["--team", "bender", "--description", "nagios bridge"],
    )
    .expect("created");
    assert!(bender.starts_with("tocsin_"));
    let (status, _) = post(
        &server,
        &bender,
        &json!({"alert": {"monitor": "m", "status": "healthy"}}),
    )
    .await;
    assert_eq!(status, 202);

    let (ok, list, _) = tocsin(&["token", "list", "--database-url", &url]).expect("runs");
    assert!(ok);
    let row = list
        .lines()
        .find(|l| l.contains("team bender"))
        .expect("listed");
    assert!(
        row.contains("nagios bridge") && !list.contains(&bender[20..]),
        "no secret in: {list}"
    );
    let id = row.split_whitespace().next().expect("id column");

    let (ok, _, stderr) = tocsin(&["token", "revoke", id, "--database-url", &url]).expect("runs");
    assert!(ok, "{stderr}");
    let (status, body) = post(
        &server,
        &bender,
        &json!({"alert": {"monitor": "m", "status": "healthy"}}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid or revoked token")),
        "revocation is immediate"
    );

    let (ok, _, stderr) = tocsin(&["token", "revoke", id, "--database-url", &url]).expect("runs");
    assert!(
        !ok && stderr.contains(&format!("no live token with id \"{id}\"")),
        "{stderr}"
    );
    let (ok, _, stderr) = tocsin(&[
        "token",
        "create",
        "--team",
        "Bad Team",
        "--database-url",
        &url,
    ])
    .expect("runs");
    assert!(
        !ok && stderr.contains("invalid team name \"Bad Team\""),
        "{stderr}"
    );
    let (ok, _, stderr) = tocsin(&["token", "create", "--database-url", &url]).expect("runs");
    assert!(!ok && stderr.contains("--team"), "{stderr}");
}

#[tokio::test]
async fn send_posts_files_in_batches_and_reports_refusals() {
    let (dir, url) = sqlite_url();
    let server = Server::start(&url, &[], &[]).expect("serves");
    let admin = create_token(&url, &["--admin"]).expect("created");

    let yaml = dir.path().join("events.yaml");
    std::fs::write(&yaml, include_str!("../fixtures/blueprint-events.yaml")).expect("write");
    let big = dir.path().join("fleet.json");
    let fleet: Vec<Value> = (0..2_500)
        .map(|i| json!({"alert": {"monitor": "Ping", "status": "healthy"}, "context": {"instance": format!("i-{i}")}}))
        .collect();
    std::fs::write(&big, Value::Array(fleet).to_string()).expect("write");
    let (ok, out, err) = tocsin(&[
        "send",
        "--url",
        &server.url,
        "--token",
        &admin,
        yaml.to_str().expect("utf-8"),
        big.to_str().expect("utf-8"),
    ])
    .expect("runs");
    assert!(ok, "{out}{err}");
    assert!(out.contains("events.yaml: 2 accepted, 0 refused"), "{out}");
    assert!(
        out.contains("fleet.json: 2500 accepted, 0 refused"),
        "{out}"
    );
    assert!(err.contains("sent 2500/2500"), "progress on stderr: {err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"alert": {"monitor": "m", "status": "healthy"}}, {"alert": {"monitor": "m", "status": "warning"}}]"#)
        .expect("write");
    let (ok, out, _) = tocsin(&[
        "send",
        "--url",
        &server.url,
        "--token",
        &admin,
        bad.to_str().expect("utf-8"),
    ])
    .expect("runs");
    assert!(!ok, "a refusal fails the command");
    assert!(
        out.contains("bad.json: event 1: alert.status: unknown status \"warning\""),
        "{out}"
    );
    assert!(out.contains("bad.json: 1 accepted, 1 refused"), "{out}");

    let (ok, _, err) = tocsin(&[
        "send",
        "--url",
        &server.url,
        "--token",
        "nope",
        yaml.to_str().expect("utf-8"),
    ])
    .expect("runs");
    assert!(
        !ok && err.contains("401") && err.contains("invalid or revoked token"),
        "{err}"
    );
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let (_dir, url) = sqlite_url();
    let server = Server::start(
        &url,
        &["--log-format", "json"],
        &[("TOCSIN_LOG", "info,tower_http=debug")],
    )
    .expect("serves");
    let response = reqwest::Client::new()
        .get(format!("{}/healthz", server.url))
        .header("x-request-id", "req-from-test")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.headers()["x-request-id"], "req-from-test");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let logs = server.stderr();
        let parsed: Vec<Value> = logs
            .iter()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        if parsed
            .iter()
            .any(|l| l["span"]["request_id"] == "req-from-test")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with the request id: {logs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn suppress_from_automation_is_one_command() {
    let (_dir, url) = sqlite_url();
    let server = Server::start(&url, &[], &[]).expect("serves");
    let bender = create_token(&url, &["--team", "bender"]).expect("created");
    let (ok, out, err) = tocsin(&[
        "suppress",
        "create",
        "--for",
        "2h",
        "--target",
        "service=bender,region=eu-west-1a",
        "--target",
        "service=bender-db,monitor=~LeaderElection.*",
        "--ticket",
        "BENDER-42",
        "--engineer",
        "bpannell",
        "--description",
        "Windows updates",
        "--url",
        &server.url,
        "--token",
        &bender,
    ])
    .expect("runs");
    assert!(ok, "{err}");
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 36, "prints the id: {out}");
    assert!(err.contains("suppression active until"), "{err}");

    let (ok, out, _) = tocsin(&[
        "suppress",
        "list",
        "--json",
        "--url",
        &server.url,
        "--token",
        &bender,
    ])
    .expect("runs");
    assert!(ok);
    let list: Value = serde_json::from_str(&out).expect("JSON");
    let created = &list["suppressions"][0];
    assert_eq!(created["id"], id.as_str());
    assert_eq!(
        created["metadata"],
        json!({"ticket": "BENDER-42", "engineer": "bpannell"})
    );
    assert_eq!(
        created["targets"][1],
        json!({"service": "bender-db", "monitor": "~LeaderElection.*"})
    );

    // A rule broken: the server's message, and a failing exit status.
    let (ok, _, err) = tocsin(&[
        "suppress",
        "create",
        "--for",
        "30d",
        "--target",
        "service=bender",
        "--description",
        "too long",
        "--url",
        &server.url,
        "--token",
        &bender,
    ])
    .expect("runs");
    assert!(!ok);
    assert!(err.contains("endTime"), "{err}");

    let (ok, _, err) = tocsin(&[
        "suppress",
        "end",
        &id,
        "--url",
        &server.url,
        "--token",
        &bender,
    ])
    .expect("runs");
    assert!(ok, "{err}");
    let (_, out, _) =
        tocsin(&["suppress", "list", "--url", &server.url, "--token", &bender]).expect("runs");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&id) && l.contains("ended")),
        "{out}"
    );
}

#[tokio::test]
async fn a_scaffolded_plugin_builds_and_is_managed_from_the_cli() {
    let (dir, url) = sqlite_url();
    let server = Server::start(&url, &[], &[]).expect("serves");
    let bender = create_token(&url, &["--team", "bender"]).expect("created");
    let crate_dir = dir.path().join("drop-test-env");
    let crate_path = crate_dir.to_str().expect("utf-8 path");
    let (ok, _, err) = tocsin(&[
        "plugin",
        "new",
        "drop-test-env",
        "--kind",
        "filter",
        "--dir",
        crate_path,
    ])
    .expect("runs");
    assert!(ok, "{err}");
    // The scaffold builds as is (sharing the example plugins' target dir saves time).
    let target = tocsin_tests::workspace().join("plugins/target");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&crate_dir)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .status()
            .expect("cargo runs");
    assert!(status.success(), "the scaffold builds");
    let wasm = target.join("wasm32-wasip2/release/drop_test_env.wasm");
    let server_args = ["--url", server.url.as_str(), "--token", bender.as_str()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(server_args);
        tocsin(&all).expect("runs")
    };

    let (ok, out, err) = run(&[
        "plugin",
        "push",
        "drop-test-env",
        wasm.to_str().expect("path"),
        "--kind",
        "filter",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("drop-test-env version 1 is live"), "{out}");
    run(&[
        "plugin",
        "push",
        "drop-test-env",
        wasm.to_str().expect("path"),
        "--kind",
        "filter",
    ]);

    let sample = dir.path().join("sample.json");
    std::fs::write(
        &sample,
        json!({"events": [{"alert": {"monitor": "disk", "status": "unhealthy"}, "context": {"env": "test"}},
                          {"alert": {"monitor": "disk", "status": "unhealthy"}, "context": {"env": "prod"}}]})
        .to_string(),
    )
    .expect("sample written");
    let (ok, out, err) = run(&[
        "plugin",
        "test",
        "drop-test-env",
        sample.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let result: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        result["verdicts"][0],
        json!({"verdict": "drop", "value": "env test is not watched"})
    );
    assert_eq!(result["verdicts"][1], json!({"verdict": "keep"}));

    let (ok, out, _) = run(&["plugin", "list"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("drop-test-env") && l.contains("filter")),
        "{out}"
    );
    let (ok, out, err) = run(&["plugin", "rollback", "drop-test-env"]);
    assert!(ok, "{err}");
    assert!(out.contains("back at version 1"), "{out}");
    let (ok, _, err) = run(&["plugin", "rm", "drop-test-env"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["plugin", "rm", "drop-test-env"]);
    assert!(!ok && err.contains("404"), "{err}");
    // A core module: the server's message, and a failing exit status.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).expect("written");
    let (ok, _, err) = run(&[
        "plugin",
        "push",
        "core",
        core.to_str().expect("path"),
        "--kind",
        "filter",
    ]);
    assert!(!ok && err.contains("core WebAssembly module"), "{err}");
}

/// Migrating is a deploy step for processes that must not migrate on every start: a
/// PostgreSQL database that lacks the schema is refused with the command to run, `tocsin
/// migrate` brings it up to date (twice is harmless), and then it opens.
#[tokio::test]
async fn migrate_is_a_deploy_step_and_require_refuses_an_unmigrated_database() {
    use tocsin_store::{Migrations, StoreError, StoreOptions};
    let url = tocsin_tests::postgres_url().await;
    let require = StoreOptions {
        migrations: Migrations::Require,
        connections: Some(2),
        ..StoreOptions::default()
    };
    let refused = tocsin_store::open(&url, require)
        .await
        .map(|_| ())
        .expect_err("an empty database is refused");
    assert!(matches!(refused, StoreError::NotMigrated(_)), "{refused}");
    assert!(
        refused.to_string().contains("run `tocsin migrate"),
        "{refused}"
    );

    for _ in 0..2 {
        let (ok, _, stderr) = tocsin(&["migrate", "--database-url", &url]).expect("tocsin runs");
        assert!(ok, "{stderr}");
        assert!(stderr.contains("is up to date"), "{stderr}");
    }
    let store = tocsin_store::open(&url, require)
        .await
        .expect("a migrated database opens");
    store.ready().await.expect("and is ready");

    let (ok, _, stderr) =
        tocsin(&["migrate", "--database-url", "mysql://nowhere/db"]).expect("tocsin runs");
    assert!(!ok);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_as_retry_after_says_while_the_server_is_behind() {
    // A server that is behind for its first answer: 503 with Retry-After, as `tocsin
    // serve --max-lag-events` answers; then it takes the batch.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/v1/events",
        axum::routing::post(move || {
            let calls = seen.clone();
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "1")],
                        axum::Json(json!({"error": "the pipeline is 20000 events behind"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::ACCEPTED,
                        [("retry-after", "0")],
                        axum::Json(json!({"accepted": 1, "rejected": [], "ids": ["x"]})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.json");
    std::fs::write(
        &file,
        json!({"alert": {"monitor": "m", "status": "healthy"}}).to_string(),
    )
    .expect("file");
    let started = std::time::Instant::now();
    let file = file.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        tocsin(&["send", "--url", &url, "--token", "t", &file]).expect("send runs")
    })
    .await
    .expect("send");
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("1 accepted"), "{stdout}");
    assert!(stderr.contains("503"), "the wait is reported: {stderr}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After was not honoured"
    );
}
