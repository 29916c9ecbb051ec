//! Runbooks, changes, the collectors that read them and the history's drop counters,
//! with two teams, bender and flexo: each team reads and writes only its own, and an
//! incident's context is made of its own team's data only.

use std::sync::Arc;

use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tocsin_api::auth::{self, Grant};
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_tests::fakes::Fakes;

use crate::api::Api;

/// The API on a new SQLite file, and a token of team flexo beside bender's.
async fn sqlite() -> (Api, String) {
    with_flexo(Api::sqlite().await).await
}

/// The API on a new PostgreSQL database, and a token of team flexo.
async fn postgres() -> (Api, String) {
    with_flexo(Api::on(&tocsin_tests::postgres_url().await, None).await).await
}

async fn with_flexo(api: Api) -> (Api, String) {
    let (flexo, _) = auth::create(api.store.as_ref(), Grant::Team("flexo".into()), "")
        .await
        .expect("token");
    (api, flexo)
}

/// `PUT /v1/runbooks/{uri}` with a Markdown body, as `token`.
async fn put_runbook(api: &Api, token: &str, uri: &str, markdown: &str) -> (StatusCode, Value) {
    let request = Request::put(format!("/v1/runbooks/{uri}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/markdown")
        .body(axum::body::Body::from(markdown.to_owned()))
        .expect("request");
    let (status, body, _) = api.call(request).await;
    (status, body)
}

async fn post_change(api: &Api, token: &str, service: &str, description: &str) {
    let (status, change) = api
        .request(
            token,
            "POST",
            "/v1/changes",
            Some(json!({ "service": service, "kind": "deploy", "description": description })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{change}");
}

/// The descriptions of the changes a GET of `uri` lists.
async fn descriptions(api: &Api, token: &str, uri: &str) -> Vec<String> {
    let (status, changes) = api.get(token, uri).await;
    assert_eq!(status, StatusCode::OK, "{changes}");
    changes
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["description"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_team_cannot_read_or_list_another_teams_runbook_or_changes() {
    let (api, flexo) = sqlite().await;
    let (status, _) = put_runbook(&api, &flexo, "TSG-1", "# Flexo's private steps").await;
    assert_eq!(status, StatusCode::OK);
    post_change(
        &api,
        &flexo,
        "flexo-web",
        "flexo: v9 with the new secrets store",
    )
    .await;

    let (status, answer) = api.get(&api.bender, "/v1/runbooks/TSG-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, missing) = api.get(&api.bender, "/v1/runbooks/TSG-404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer["error"].as_str().map(|e| e.replace("TSG-1", "ID")),
        missing["error"]
            .as_str()
            .map(|e| e.replace("TSG-404", "ID")),
        "another team's runbook answers exactly like a missing one"
    );
    let (status, answer) = api.get(&api.bender, "/v1/runbooks/TSG-1?team=flexo").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(!answer.to_string().contains("private steps"), "{answer}");

    assert_eq!(
        descriptions(&api, &api.bender, "/v1/changes?service=flexo-web").await,
        Vec::<String>::new(),
        "bender lists no change of flexo's"
    );
    let (status, answer) = api
        .get(&api.bender, "/v1/changes?service=flexo-web&team=flexo")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(!answer.to_string().contains("secrets store"), "{answer}");

    // The owner and an admin acting for it still read them.
    let (_, own) = api.get(&flexo, "/v1/runbooks/TSG-1").await;
    assert_eq!(own["markdown"], "# Flexo's private steps");
    let (status, admin) = api.get(&api.admin, "/v1/runbooks/TSG-1?team=flexo").await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    assert_eq!(admin["team"], "flexo");
    assert_eq!(
        descriptions(&api, &flexo, "/v1/changes?service=flexo-web").await,
        ["flexo: v9 with the new secrets store"]
    );
    assert_eq!(
        descriptions(&api, &api.admin, "/v1/changes?service=flexo-web&team=flexo").await,
        ["flexo: v9 with the new secrets store"]
    );
}

#[tokio::test]
async fn two_teams_each_own_runbook_tsg_1_with_their_own_text() {
    let (api, flexo) = sqlite().await;
    two_teams_own_the_same_runbook_id(&api, &flexo).await;
}

#[tokio::test]
async fn two_teams_each_own_runbook_tsg_1_on_postgres() {
    let (api, flexo) = postgres().await;
    two_teams_own_the_same_runbook_id(&api, &flexo).await;
}

async fn two_teams_own_the_same_runbook_id(api: &Api, flexo: &str) {
    // bender writes first: the id must not become bender's for every team.
    let (status, answer) = put_runbook(api, &api.bender, "TSG-1", "# Bender: restart").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = put_runbook(api, flexo, "TSG-1", "# Flexo: fail over").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "flexo writes its own TSG-1: {answer}"
    );
    assert_eq!(answer["team"], "flexo");
    let (status, _) = put_runbook(api, &api.bender, "TSG-1", "# Bender: restart twice").await;
    assert_eq!(status, StatusCode::OK);

    let (_, bender) = api.get(&api.bender, "/v1/runbooks/TSG-1").await;
    assert_eq!(bender["markdown"], "# Bender: restart twice");
    assert_eq!(bender["team"], "bender");
    let (_, theirs) = api.get(flexo, "/v1/runbooks/TSG-1").await;
    assert_eq!(
        theirs["markdown"], "# Flexo: fail over",
        "bender's rewrite leaves flexo's text alone"
    );
    let (_, admin) = api.get(&api.admin, "/v1/runbooks/TSG-1?team=bender").await;
    assert_eq!(admin["markdown"], "# Bender: restart twice");
}

/// Notifiers pointing at the fakes: both teams chat in Slack (so that their incidents
/// are collected for and told about).
fn notifiers(fakes: &Fakes) -> Arc<Notifiers> {
    let text = format!(
        r##"
public-url: http://tocsin.test
retry: {{ attempts: 3, first: 10ms, max: 50ms }}
notifiers:
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{}" }}
routes:
  - {{ team: bender, chat: slack }}
  - {{ team: flexo, chat: slack }}
"##,
        fakes.url
    );
    Arc::new(Notifiers::parse(&text).expect("notifiers parse"))
}

/// An unhealthy alert of checkout in eu-west-1 on `instance`, with the collectors that
/// read Tocsin's own data.
fn unhealthy(instance: &str) -> Value {
    json!({
        "alert": { "monitor": "Http5xx", "status": "unhealthy" },
        "context": { "service": "checkout", "region": "eu-west-1", "instance": instance },
        "alerting": { "priority": "low" },
        "plugins": [
            { "type": "runbook", "params": { "id": "TSG-1" } },
            { "type": "recent-changes" },
            { "type": "cluster-health" },
            { "type": "previous-incidents" },
        ],
    })
}

/// The context sections of `token`'s only incident, by title prefix.
async fn context_of(api: &Api, token: &str) -> Vec<Value> {
    let (_, list) = api.get(token, "/v1/incidents").await;
    let incidents = list["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{list}");
    let id = incidents[0]["id"].as_str().expect("id");
    let (_, detail) = api.get(token, &format!("/v1/incidents/{id}")).await;
    detail["context"].as_array().expect("context").clone()
}

fn section(context: &[Value], title: &str) -> String {
    let found = context
        .iter()
        .find(|s| s["title"].as_str().is_some_and(|t| t.starts_with(title)))
        .unwrap_or_else(|| panic!("no {title} section: {context:?}"));
    assert_eq!(found["error"], Value::Null, "{found}");
    found["markdown"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_incidents_collectors_show_only_its_own_teams_runbook_changes_and_alerts() {
    let (api, flexo) = sqlite().await;
    collectors_read_only_the_incidents_team(&api, &flexo).await;
}

#[tokio::test]
async fn an_incidents_collectors_show_only_its_own_teams_data_on_postgres() {
    let (api, flexo) = postgres().await;
    collectors_read_only_the_incidents_team(&api, &flexo).await;
}

async fn collectors_read_only_the_incidents_team(api: &Api, flexo: &str) {
    let fakes = Fakes::start().await.expect("fakes");
    let outbox = Outbox::new(api.store.clone(), notifiers(&fakes))
        .with_collectors(tocsin_collect::Collectors::new(api.store.clone()));
    put_runbook(api, flexo, "TSG-1", "# Flexo: fail over to us-east-1").await;
    put_runbook(api, &api.bender, "TSG-1", "# Bender: restart checkout").await;
    post_change(api, flexo, "checkout", "flexo: v9 rolled out").await;
    post_change(api, &api.bender, "checkout", "bender: v2.3.1 new pool").await;
    // The forged change in flexo's service name that the issue describes.
    post_change(api, &api.bender, "checkout", "rolled back, all clear").await;

    // flexo's incident first, with three unhealthy alerts of the same service and region.
    api.events(
        flexo,
        json!([unhealthy("f-1"), unhealthy("f-2"), unhealthy("f-3")]),
    )
    .await;
    deliver(api, &outbox).await;
    api.events(&api.bender, json!([unhealthy("b-1")])).await;
    deliver(api, &outbox).await;

    let bender = context_of(api, &api.bender).await;
    assert_eq!(
        section(&bender, "Runbook TSG-1"),
        "# Bender: restart checkout"
    );
    let changes = section(&bender, "Recent changes to checkout");
    assert!(changes.contains("bender: v2.3.1 new pool"), "{changes}");
    assert!(!changes.contains("flexo: v9"), "{changes}");
    let health = section(&bender, "Cluster health");
    assert!(
        health.contains("**1 of 1**") && !health.contains("f-"),
        "only bender's own alert counts: {health}"
    );
    assert!(
        section(&bender, "Previous incidents").starts_with("None"),
        "flexo's incident with the same key is not bender's: {bender:?}"
    );

    let theirs = context_of(api, flexo).await;
    assert_eq!(
        section(&theirs, "Runbook TSG-1"),
        "# Flexo: fail over to us-east-1"
    );
    let changes = section(&theirs, "Recent changes to checkout");
    assert!(changes.contains("flexo: v9 rolled out"), "{changes}");
    assert!(
        !changes.contains("rolled back") && !changes.contains("bender"),
        "bender's change never reaches flexo's incident: {changes}"
    );
    let health = section(&theirs, "Cluster health");
    assert!(
        health.contains("**3 of 3**") && !health.contains("b-1"),
        "{health}"
    );
    assert_eq!(
        descriptions(api, flexo, "/v1/changes?service=checkout").await,
        ["flexo: v9 rolled out"],
        "nor flexo's listing"
    );
}

/// Runs outbox rounds until nothing is left to do.
async fn deliver(api: &Api, outbox: &Outbox) {
    api.settle().await;
    for _ in 0..50 {
        if outbox.round(now_ms()).await.expect("round") == 0 {
            return;
        }
    }
    panic!("the outbox keeps finding work");
}

/// `drops` of `GET /v1/history` (with `query`) as `token`, for `state-unchanged`.
async fn unchanged(api: &Api, token: &str, query: &str) -> (StatusCode, Value) {
    let (status, page) = api.get(token, &format!("/v1/history{query}")).await;
    (status, page["drops"]["state-unchanged"].clone())
}

#[tokio::test]
async fn history_drop_counters_are_each_teams_own() {
    let (api, flexo) = sqlite().await;
    let healthy = json!({
        "alert": { "monitor": "Health", "status": "healthy" },
        "context": { "service": "checkout", "region": "eu-west-1", "instance": "i-1" },
    });
    // A first healthy report and its steady repeats change nothing: each is counted.
    api.events(&api.bender, json!([healthy, healthy, healthy]))
        .await;
    api.events(&flexo, json!([healthy, healthy, healthy, healthy, healthy]))
        .await;

    assert_eq!(
        unchanged(&api, &api.bender, "").await,
        (StatusCode::OK, json!(3))
    );
    assert_eq!(
        unchanged(&api, &flexo, "").await,
        (StatusCode::OK, json!(5))
    );
    assert_eq!(
        unchanged(&api, &api.admin, "").await,
        (StatusCode::OK, json!(8)),
        "an admin sees every team's"
    );
    assert_eq!(
        unchanged(&api, &api.admin, "?team=flexo").await,
        (StatusCode::OK, json!(5))
    );
    let (status, page) = api.get(&api.bender, "/v1/history?team=flexo").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert_eq!(page["drops"], Value::Null, "{page}");
}

/// The migrations of `dialect` numbered below `below`, copied into `dir`: the schema
/// of an older build.
fn migrations_before(dir: &std::path::Path, dialect: &str, below: &str) -> std::path::PathBuf {
    let old = dir.join(format!("migrations-{dialect}-before-{below}"));
    std::fs::create_dir(&old).expect("mkdir");
    let all = tocsin_tests::workspace()
        .join("core/store/migrations")
        .join(dialect);
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.as_str() < below {
            std::fs::copy(&path, old.join(&name)).expect("copy");
        }
    }
    old
}

/// Rows as the builds before migration 0011 wrote them: runbook ids were global and
/// drop counters had no team.
const OLD_ROWS: [&str; 3] = [
    "INSERT INTO runbooks (id, team, markdown, updated_at, updated_by) VALUES ('TSG-1', 'bender', '# Old steps', 1, 't')",
    "INSERT INTO changes (id, team, service, kind, description, link, at, recorded_by) VALUES ('c1', 'bender', 'checkout', 'deploy', 'old deploy', '', 4102444800000, 't')",
    "INSERT INTO drops (reason, count) VALUES ('state-unchanged', 7)",
];

/// An upgraded database: bender keeps its runbook and change, flexo may now write the
/// same runbook id, and the old drop totals are an admin's only.
async fn upgraded_keeps_old_rows(api: &Api, flexo: &str) {
    let (_, runbook) = api.get(&api.bender, "/v1/runbooks/TSG-1").await;
    assert_eq!(runbook["markdown"], "# Old steps", "{runbook}");
    let (status, _) = put_runbook(api, flexo, "TSG-1", "# Flexo's own").await;
    assert_eq!(status, StatusCode::OK, "the old id is bender's only");
    assert_eq!(
        descriptions(
            api,
            &api.bender,
            "/v1/changes?service=checkout&since=2099-01-01T00:00:00Z"
        )
        .await,
        ["old deploy"]
    );
    assert_eq!(
        descriptions(
            api,
            flexo,
            "/v1/changes?service=checkout&since=2099-01-01T00:00:00Z"
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        unchanged(api, &api.admin, "").await,
        (StatusCode::OK, json!(7)),
        "an admin still reads the old totals"
    );
    assert_eq!(
        unchanged(api, &api.bender, "").await,
        (StatusCode::OK, Value::Null),
        "which are no team's"
    );
}

/// On SQLite the older schema stops at 0007: the store moves the journal to its own
/// file before 0008 runs.
#[tokio::test]
async fn sqlite_upgrade_keeps_runbooks_changes_and_drop_totals() {
    use sqlx::Connection as _;
    let (dir, url) = tocsin_tests::sqlite_url();
    let old = migrations_before(dir.path(), "sqlite", "0008");
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("opens");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("reads migrations")
        .run(&mut conn)
        .await
        .expect("old schema");
    for sql in OLD_ROWS {
        sqlx::query(sql).execute(&mut conn).await.expect("old row");
    }
    conn.close().await.expect("closes");
    let (api, flexo) = with_flexo(Api::on(&url, Some(dir)).await).await;
    upgraded_keeps_old_rows(&api, &flexo).await;
}

#[tokio::test]
async fn postgres_upgrade_keeps_runbooks_changes_and_drop_totals() {
    use sqlx::Connection as _;
    let url = tocsin_tests::postgres_url().await;
    let dir = tempfile::tempdir().expect("dir");
    let old = migrations_before(dir.path(), "postgres", "0011");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("reads migrations")
        .run(&mut conn)
        .await
        .expect("old schema");
    for sql in OLD_ROWS {
        sqlx::query(sql).execute(&mut conn).await.expect("old row");
    }
    conn.close().await.expect("closes");
    let (api, flexo) = with_flexo(Api::on(&url, None).await).await;
    upgraded_keeps_old_rows(&api, &flexo).await;
}
