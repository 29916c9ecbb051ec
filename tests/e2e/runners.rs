//! The stages composed apart, as the Lambda functions compose them: an API process with
//! no journal thread and no pipeline (`StoreAppend`, `NoWake`), and a pipeline that runs
//! on its own over the same database, fed by nothing but the store. Events, incidents and
//! incident commands go through, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use tocsin_api::auth::{self, Grant};
use tocsin_api::{AppState, NoWake, StoreAppend, app};
use tocsin_pipeline::worker::{self, Hooks, Signal};
use tocsin_store::{Store, StoreOptions};

/// An API that runs no stage but ingest, over `store`.
fn api_alone(store: Arc<dyn Store>) -> Router {
    app(AppState {
        store: store.clone(),
        append: Arc::new(StoreAppend(store)),
        wake: Arc::new(NoWake),
        policy: tocsin_pipeline::Config::default().policy,
        plugins: Arc::new(tocsin_model::plugin::Disabled),
        notifiers: Arc::new(tocsin_notify::config::Notifiers::default()),
        watch: Arc::new(tocsin_api::Unwatched),
        metrics: None,
        readiness: tocsin_api::Readiness::default(),
    })
}

/// The store at `url`, an API alone over it, and a token of team bender.
async fn api_alone_on(url: &str) -> (Arc<dyn Store>, Router, String) {
    let store = tocsin_store::open(url, StoreOptions::default())
        .await
        .expect("store opens");
    let (team, _) = auth::create(store.as_ref(), Grant::Team("bender".into()), "")
        .await
        .expect("token");
    (store.clone(), api_alone(store), team)
}

/// A pipeline on its own over `store`, with no hooks: it finds events and commands by
/// polling the store.
fn pipeline_alone(store: Arc<dyn Store>) -> (Arc<Signal>, JoinHandle<()>) {
    let signal = Arc::new(Signal::default());
    let config = tocsin_pipeline::Config {
        refresh_every_ms: 0,
        ..tocsin_pipeline::Config::default()
    };
    let task = tokio::spawn(worker::run(
        store,
        config,
        None,
        signal.clone(),
        Hooks::default(),
    ));
    (signal, task)
}

async fn call(
    router: &Router,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn failing(monitor: &str) -> Value {
    json!([{"alert": {"monitor": monitor, "status": "unhealthy"},
            "context": {"service": monitor, "region": "eu"}}])
}

/// Asks for an incident command (ack, close) with no body.
async fn command(router: &Router, token: &str, uri: &str) -> (StatusCode, Value) {
    call(router, token, "POST", uri, None).await
}

/// Reads `uri` until `found` picks something out of it (15 s at most).
async fn read_until<T>(
    router: &Router,
    token: &str,
    uri: &str,
    found: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = call(router, token, "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(value) = found(&body) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{uri} never showed what the test waits for: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of the incident the pipeline opened for `monitor`, once it has.
async fn incident_of(router: &Router, token: &str, monitor: &str) -> String {
    read_until(
        router,
        token,
        &format!("/v1/incidents?service={monitor}"),
        |page| page["incidents"][0]["id"].as_str().map(str::to_owned),
    )
    .await
}

async fn runs_apart(url: &str) {
    let (store, api, team) = api_alone_on(url).await;

    // Accepted with no pipeline anywhere: durable in the journal, waiting.
    let (status, receipt) =
        call(&api, &team, "POST", "/v1/events", Some(failing("checkout"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(store.lag().await.expect("lag"), 1);
    let (_, page) = call(&api, &team, "GET", "/v1/incidents", None).await;
    assert_eq!(page["incidents"], json!([]), "{page}");

    // A pipeline started apart picks the event up from the store.
    let (signal, task) = pipeline_alone(store.clone());
    let id = incident_of(&api, &team, "checkout").await;

    // Commands reach it through the store.
    let (status, detail) = command(&api, &team, &format!("/v1/incidents/{id}/ack")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(detail["acked_at"].is_string(), "{detail}");
    let (status, detail) = command(&api, &team, &format!("/v1/incidents/{id}/close")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["state"], "closed", "{detail}");
    let (status, error) = command(&api, &team, &format!("/v1/incidents/{id}/close")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, error) = command(&api, &team, "/v1/incidents/no-such-incident/ack").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");

    // With no pipeline running, a command is refused for now and stays queued...
    let (status, receipt) =
        call(&api, &team, "POST", "/v1/events", Some(failing("payments"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let second = incident_of(&api, &team, "payments").await;
    signal.stop();
    task.await.expect("pipeline stops");
    let (status, error) = command(&api, &team, &format!("/v1/incidents/{second}/ack")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("stays queued"),
        "{error}"
    );
    let (_, detail) = call(&api, &team, "GET", &format!("/v1/incidents/{second}"), None).await;
    assert!(detail["acked_at"].is_null(), "{detail}");

    // ... and the next pipeline to run applies it.
    let (signal, task) = pipeline_alone(store.clone());
    read_until(&api, &team, &format!("/v1/incidents/{second}"), |detail| {
        detail["acked_at"].is_string().then_some(())
    })
    .await;
    signal.stop();
    task.await.expect("pipeline stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_pipeline_run_apart_on_sqlite() {
    let (_dir, url) = tocsin_tests::sqlite_url();
    runs_apart(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_pipeline_run_apart_on_postgres() {
    runs_apart(&tocsin_tests::postgres_url().await).await;
}

/// A notifier process alone: it is given one notice from outside (as a queue message
/// would give it), reads its incident from the store, pages, and leaves the notice
/// delivered. The pipeline that made the notice ran in another "process", with no
/// in-memory handoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_delivers_one_notice_given_from_outside() {
    let fakes = tocsin_tests::fakes::Fakes::start().await.expect("fakes");
    let notifiers = Arc::new(
        tocsin_notify::config::Notifiers::parse(&format!(
            "retry: {{ attempts: 3, first: 10ms, max: 50ms }}\n\
             notifiers:\n  pd: {{ kind: pagerduty, routing-key: \"0123456789abcdef0123456789abcdef\", url: \"{}\" }}\n\
             routes:\n  - {{ team: bender, page: pd }}\n",
            fakes.url
        ))
        .expect("notifiers parse"),
    );
    let (_dir, url) = tocsin_tests::sqlite_url();
    let (store, api, team) = api_alone_on(&url).await;
    let event = json!([{"alert": {"monitor": "checkout", "status": "unhealthy"},
                        "context": {"service": "checkout", "region": "eu"},
                        "alerting": {"priority": "high"}}]);
    let (status, receipt) = call(&api, &team, "POST", "/v1/events", Some(event)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let (signal, task) = pipeline_alone(store.clone());
    let id = incident_of(&api, &team, "checkout").await;
    signal.stop();
    task.await.expect("pipeline stops");

    let notices = store.notices(10).await.expect("notices");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].incident_id, id);
    let outbox = tocsin_outbox::Outbox::new(store.clone(), notifiers);
    outbox
        .deliver_notice(notices[0].clone())
        .await
        .expect("delivered");

    assert_eq!(
        fakes.pages(),
        vec![id.clone()],
        "one page, keyed by the incident id"
    );
    assert!(
        store.notices(10).await.expect("notices").is_empty(),
        "the notice is done"
    );
    let (status, sent) = call(&api, &team, "GET", "/v1/notifications", None).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["notifications"][0]["state"], "sent", "{sent}");
    assert_eq!(
        sent["notifications"][0]["incidentId"],
        id.as_str(),
        "{sent}"
    );
}
