//! The HTTP API through `app()` with `oneshot`: statuses, messages, and that bad input
//! leaves nothing behind.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tocsin_api::auth::{self, Grant};
use tocsin_api::{AppState, app};
use tocsin_store as store;
use tocsin_store::{Store, StoreOptions};
use tower::ServiceExt as _;

pub struct Api {
    pub router: Router,
    state: AppState,
    /// The plugin runtime's collectors, when the API has the runtime.
    pub collector: Option<Arc<dyn tocsin_model::plugin::Collector>>,
    pub store: Arc<dyn Store>,
    pub admin: String,
    pub bender: String,
    _dir: Option<tempfile::TempDir>,
}

impl Api {
    /// The API on `url`, with steady refreshes written at once (tests read counts right
    /// after the pipeline caught up).
    pub async fn on(url: &str, dir: Option<tempfile::TempDir>) -> Self {
        let config = tocsin_pipeline::Config {
            refresh_every_ms: 0,
            ..tocsin_pipeline::Config::default()
        };
        Self::with_config(url, dir, config).await
    }

    pub async fn with_config(
        url: &str,
        dir: Option<tempfile::TempDir>,
        config: tocsin_pipeline::Config,
    ) -> Self {
        Self::build(url, dir, config, false).await
    }

    /// The API with the real wasmtime plugin runtime (small pools: tests run many).
    pub async fn with_plugins(url: &str, dir: Option<tempfile::TempDir>) -> Self {
        let config = tocsin_pipeline::Config {
            refresh_every_ms: 0,
            ..tocsin_pipeline::Config::default()
        };
        Self::build(url, dir, config, true).await
    }

    async fn build(
        url: &str,
        dir: Option<tempfile::TempDir>,
        config: tocsin_pipeline::Config,
        with_plugins: bool,
    ) -> Self {
        let store = store::open(url, StoreOptions::default())
            .await
            .expect("store opens");
        let plugins: Option<tocsin_host::WasmPlugins> = if with_plugins {
            let limits = tocsin_host::Limits {
                concurrent: 8,
                ..tocsin_host::Limits::default()
            };
            Some(
                tocsin_host::WasmPlugins::start(store.clone(), limits)
                    .await
                    .expect("plugin runtime starts"),
            )
        } else {
            None
        };
        let filter: Option<Arc<dyn tocsin_model::plugin::Filter>> = plugins
            .clone()
            .map(|p| Arc::new(p) as Arc<dyn tocsin_model::plugin::Filter>);
        let local = tocsin_server::start(
            store.clone(),
            config,
            filter,
            tocsin_server::Pressure::new(tocsin_server::Bound::default(), 0),
        );
        let (admin, _) = auth::create(store.as_ref(), Grant::Admin, "")
            .await
            .expect("token");
        let (bender, _) = auth::create(store.as_ref(), Grant::Team("bender".into()), "")
            .await
            .expect("token");
        let collector = plugins
            .clone()
            .map(|p| Arc::new(p) as Arc<dyn tocsin_model::plugin::Collector>);
        let plugins: Arc<dyn tocsin_model::plugin::Plugins> = match plugins {
            Some(p) => Arc::new(p),
            None => Arc::new(tocsin_model::plugin::Disabled),
        };
        let notifiers = Arc::new(tocsin_notify::config::Notifiers::default());
        let state = local.state(store.clone(), &config, plugins, notifiers, None);
        Self {
            router: app(state.clone()),
            state,
            collector,
            store,
            admin,
            bender,
            _dir: dir,
        }
    }

    /// The same API, sending to these notifiers (routes set through it are checked
    /// against them).
    pub fn with_notifiers(mut self, notifiers: Arc<tocsin_notify::config::Notifiers>) -> Self {
        self.state.notifiers = notifiers;
        self.router = app(self.state.clone());
        self
    }

    /// [`Api::with_plugins`] on a new SQLite file.
    pub async fn with_plugins_sqlite() -> Self {
        let (dir, url) = tocsin_tests::sqlite_url();
        Self::with_plugins(&url, Some(dir)).await
    }

    pub async fn sqlite() -> Self {
        let (dir, url) = tocsin_tests::sqlite_url();
        Self::on(&url, Some(dir)).await
    }

    /// Sends a request; returns status, JSON body (or the text as a JSON string) and headers.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (parts.status, value, parts.headers)
    }

    pub async fn post(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::post("/v1/events").header("content-type", content_type);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let (status, body, _) = self.call(request.body(body.into()).expect("request")).await;
        (status, body)
    }

    /// Waits until the pipeline has processed every accepted event.
    pub async fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.store.lag().await.expect("lag") > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the pipeline does not catch up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Any request with a JSON body (or none), after the pipeline has caught up.
    pub async fn request(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.settle().await;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let (status, body, _) = self.call(request.body(body).expect("request")).await;
        (status, body)
    }

    /// Posts events (JSON) and checks they were all accepted.
    pub async fn events(&self, token: &str, events: Value) -> Value {
        let (status, receipt) = self
            .post(Some(token), "application/json", events.to_string())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
        assert_eq!(receipt["rejected"], json!([]), "{receipt}");
        receipt
    }

    /// GET after the pipeline has caught up.
    pub async fn get(&self, token: &str, uri: &str) -> (StatusCode, Value) {
        self.settle().await;
        let request = Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty());
        let (status, body, _) = self.call(request.expect("request")).await;
        (status, body)
    }
}

fn valid(monitor: &str) -> Value {
    json!({"alert": {"monitor": monitor, "status": "unhealthy"}, "context": {"service": "bender", "region": "eu"}})
}

/// `event` with the field at `path` (`/alert/count`) set, created if absent.
fn with(mut event: Value, path: &str, value: Value) -> Value {
    let mut target = &mut event;
    for key in path.split('/').skip(1) {
        target = &mut target[key];
    }
    *target = value;
    event
}

/// Every kind of bad input the issue lists: exact status, the field, and a message that
/// tells a human what to do. None of them may leave anything in the store.
#[tokio::test]
async fn bad_input_gets_its_status_and_an_actionable_message_and_writes_nothing() {
    let api = Api::sqlite().await;
    let many_labels: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let json_cases: Vec<(&str, String, StatusCode, &str, &str)> = vec![
        (
            "malformed JSON",
            r#"{"alert": {"monitor": "m",}"#.into(),
            StatusCode::BAD_REQUEST,
            "",
            "invalid JSON: key must be a string at line 1 column 27",
        ),
        (
            "not an event",
            "[1, 2]".into(),
            StatusCode::BAD_REQUEST,
            ".",
            "invalid type: integer `1`, expected struct Event",
        ),
        (
            "a bare string",
            r#""hello""#.into(),
            StatusCode::BAD_REQUEST,
            "",
            "expected an event object or an array of events, got a string",
        ),
        (
            "wrong type",
            with(valid("m"), "/alert/count", json!("twelve")).to_string(),
            StatusCode::BAD_REQUEST,
            "alert.count",
            "invalid type: string \"twelve\", expected u64",
        ),
        (
            "a count no database column holds",
            with(valid("m"), "/alert/count", json!(u64::MAX)).to_string(),
            StatusCode::BAD_REQUEST,
            "alert.count",
            "count 18446744073709551615 is too large: at most 9223372036854775807",
        ),
        (
            "status warning",
            with(valid("m"), "/alert/status", json!("warning")).to_string(),
            StatusCode::BAD_REQUEST,
            "alert.status",
            "only healthy and unhealthy exist",
        ),
        (
            "priority medium",
            {
                let mut e = valid("m");
                e["alerting"] = json!({"priority": "medium"});
                e.to_string()
            },
            StatusCode::BAD_REQUEST,
            "alerting.priority",
            "only high (page a human now) and low (open a ticket) exist",
        ),
        (
            "33 labels",
            with(valid("m"), "/context", Value::Object(many_labels)).to_string(),
            StatusCode::BAD_REQUEST,
            "context",
            "33 labels, at most 32 are allowed",
        ),
        (
            "label key with spaces",
            with(valid("m"), "/context", json!({"Reg ion": "eu"})).to_string(),
            StatusCode::BAD_REQUEST,
            "context.\"Reg ion\"",
            "invalid label key \"Reg ion\": spaces are not allowed",
        ),
        (
            "unknown template",
            {
                let mut e = valid("m");
                e["grouping"] = json!({"keys": ["${alert.monitor}", "${context.zone}"]});
                e.to_string()
            },
            StatusCode::BAD_REQUEST,
            "grouping.keys[1]",
            "unknown template name \"context.zone\"",
        ),
        (
            "NUL in the message",
            {
                let mut e = valid("m");
                e["alert"]["message"] = json!("a\u{0}b");
                e.to_string()
            },
            StatusCode::BAD_REQUEST,
            "alert.message",
            "contains a NUL character",
        ),
        (
            "message 16 KiB + 1",
            {
                let mut e = valid("m");
                e["alert"]["message"] = json!("x".repeat(16 * 1024 + 1));
                e.to_string()
            },
            StatusCode::BAD_REQUEST,
            "alert.message",
            "message is 16385 bytes, at most 16384 (16 KiB) are allowed",
        ),
        (
            "missing monitor",
            json!({"alert": {"status": "healthy"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "alert",
            "missing field `monitor`",
        ),
        (
            "unknown field",
            json!({"alert": {"monitor": "m", "status": "healthy"}, "aleting": {}}).to_string(),
            StatusCode::BAD_REQUEST,
            "aleting",
            "unknown field `aleting`, expected one of `alert`",
        ),
        (
            "11 MiB body",
            format!(
                "[{}]",
                vec![valid("m").to_string(); 11 * 1024 * 1024 / 90].join(",")
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            "request body over 10485760 bytes (10 MiB): split the batch",
        ),
        (
            "10,001 items",
            format!(
                "[{}]",
                vec![r#"{"alert":{"monitor":"m","status":"healthy"}}"#; 10_001].join(",")
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            "10001 events in one request, at most 10000 are allowed",
        ),
    ];
    for (name, body, status, field, message) in json_cases {
        let (got, response) = api.post(Some(&api.admin), "application/json", body).await;
        assert_eq!(got, status, "{name}: {response}");
        let text = if field.is_empty() {
            response["error"].as_str().unwrap_or_default().to_owned()
        } else {
            let item = &response["rejected"][0];
            assert_eq!(item["field"], field, "{name}: {response}");
            assert_eq!(item["index"], 0, "{name}");
            assert_eq!(
                response["error"], "no valid event in the request; nothing was accepted",
                "{name}"
            );
            item["error"].as_str().unwrap_or_default().to_owned()
        };
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
    }

    let bomb = format!(
        "a: &a [{}]\nb: [{}]\n",
        vec!["0"; 3000].join(","),
        vec!["*a"; 3000].join(",")
    );
    let yaml_cases: Vec<(&str, &str, StatusCode, &str, &str)> = vec![
        (
            "YAML alias bomb",
            &bomb,
            StatusCode::BAD_REQUEST,
            "",
            "expands to far more than its size",
        ),
        (
            "malformed YAML",
            "alert:\n  monitor: [m\n",
            StatusCode::BAD_REQUEST,
            "",
            "invalid YAML:",
        ),
        (
            "YAML status warning",
            "alert: {monitor: m, status: warning}\n",
            StatusCode::BAD_REQUEST,
            "alert.status",
            "only healthy and unhealthy exist",
        ),
        (
            "YAML wrong type",
            "alert: {monitor: m, status: healthy, count: [1]}\n",
            StatusCode::BAD_REQUEST,
            "alert.count",
            "invalid type: sequence, expected u64",
        ),
    ];
    for (name, body, status, field, message) in yaml_cases {
        let (got, response) = api
            .post(Some(&api.admin), "application/yaml", body.to_owned())
            .await;
        assert_eq!(got, status, "{name}: {response}");
        let text = if field.is_empty() {
            &response["error"]
        } else {
            &response["rejected"][0]["error"]
        };
        assert!(
            text.as_str().unwrap_or_default().contains(message),
            "{name}: {response}"
        );
        if !field.is_empty() {
            assert_eq!(response["rejected"][0]["field"], field, "{name}");
        }
    }

    // An announced length over the limit is refused before the body is read.
    let request = Request::post("/v1/events")
        .header("content-type", "application/json")
        .header("content-length", (11 * 1024 * 1024).to_string())
        .header("authorization", format!("Bearer {}", api.admin))
        .body(Body::from(valid("m").to_string()))
        .expect("request");
    let (status, response, _) = api.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{response}");

    let (status, response) = api
        .post(Some(&api.admin), "text/plain", valid("m").to_string())
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        response["error"],
        "unsupported content type \"text/plain\": send application/json or application/yaml"
    );
    let (status, response) = api
        .post(None, "application/json", valid("m").to_string())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        response["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("missing token"),
        "{response}"
    );
    let foreign =
        "tocsin_000000000000_0000000000000000000000000000000000000000000000000000000000000000";
    for token in [foreign, "hunter2"] {
        let (status, response) = api
            .post(Some(token), "application/json", valid("m").to_string())
            .await;
        assert_eq!(
            (status, response["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid or revoked token"))
        );
    }

    assert_eq!(
        api.store.event_count().await.expect("len"),
        0,
        "nothing half-written"
    );
    let (_, alerts) = api.get(&api.admin, "/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]));
}

#[tokio::test]
async fn a_mixed_batch_accepts_the_valid_items_and_names_the_others() {
    let api = Api::sqlite().await;
    let body = json!([
        valid("a"),
        with(valid("b"), "/alert/status", json!("warning")),
        valid("c")
    ]);
    let (status, receipt) = api
        .post(Some(&api.admin), "application/json", body.to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["accepted"], 2);
    assert_eq!(receipt["rejected"].as_array().map(Vec::len), Some(1));
    assert_eq!(receipt["rejected"][0]["index"], 1);
    let ids = receipt["ids"].as_array().expect("ids");
    assert!(
        ids[0].is_string() && ids[1].is_null() && ids[2].is_string(),
        "{receipt}"
    );
    assert_eq!(
        api.store.event_ids().await.expect("ids"),
        vec![
            ids[0].as_str().expect("id").to_owned(),
            ids[2].as_str().expect("id").to_owned()
        ]
    );
    let (_, page) = api
        .get(
            &api.admin,
            "/v1/alerts?status=unhealthy&label=service:bender",
        )
        .await;
    let monitors: Vec<&str> = page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["monitor"].as_str())
        .collect();
    let mut monitors = monitors;
    monitors.sort_unstable();
    assert_eq!(monitors, ["a", "c"]);
}

#[tokio::test]
async fn yaml_events_are_accepted_like_json() {
    let api = Api::sqlite().await;
    let yaml = include_str!("../fixtures/blueprint-events.yaml");
    let (status, receipt) = api.post(Some(&api.admin), "application/yaml", yaml).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["accepted"], 2);
    let (_, page) = api
        .get(&api.admin, "/v1/alerts?label=instance:i-a0172ba72f5")
        .await;
    assert_eq!(page["alerts"][0]["count"], 12);
    assert_eq!(page["alerts"][0]["since"], "2021-02-14T01:13:01Z");
}

#[tokio::test]
async fn a_team_token_acts_only_for_its_team() {
    let api = Api::sqlite().await;
    let foreign = with(valid("m"), "/context", json!({"team": "flexo"}));
    let (status, response) = api
        .post(Some(&api.bender), "application/json", foreign.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(response["rejected"][0]["field"], "context.team");
    assert_eq!(
        response["rejected"][0]["error"],
        "this token acts for team \"bender\"; it cannot send events for team \"flexo\""
    );

    let (status, _) = api
        .post(Some(&api.admin), "application/json", foreign.to_string())
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "an admin may send for any team"
    );
    let (status, _) = api
        .post(
            Some(&api.bender),
            "application/json",
            valid("own").to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (_, page) = api.get(&api.bender, "/v1/alerts").await;
    let alerts = page["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "bender sees only its own: {page}");
    assert_eq!(
        (alerts[0]["team"].as_str(), alerts[0]["monitor"].as_str()),
        (Some("bender"), Some("own"))
    );
    let (status, response) = api.get(&api.bender, "/v1/alerts?team=flexo").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{response}");
    let (_, page) = api.get(&api.admin, "/v1/alerts?team=flexo").await;
    assert_eq!(page["alerts"].as_array().map(Vec::len), Some(1));

    // An admin sending for bender reaches the same alert as bender's own token: the team
    // label names the owner and is not part of the identity.
    let for_bender = with(valid("own"), "/context/team", json!("bender"));
    let (status, _) = api
        .post(Some(&api.admin), "application/json", for_bender.to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, page) = api.get(&api.bender, "/v1/alerts").await;
    assert_eq!(page["alerts"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["alerts"][0]["count"], 2);
    let (_, page) = api.get(&api.admin, "/v1/alerts").await;
    assert_eq!(page["alerts"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn alert_listing_refuses_bad_filters_and_pages() {
    let api = Api::sqlite().await;
    let events: Vec<Value> = (0..5).map(|i| valid(&format!("m{i}"))).collect();
    api.post(
        Some(&api.admin),
        "application/json",
        Value::Array(events).to_string(),
    )
    .await;
    for (uri, message) in [
        (
            "/v1/alerts?status=warning",
            "only healthy and unhealthy exist",
        ),
        (
            "/v1/alerts?label=service",
            "invalid label filter \"service\": use label=key:value",
        ),
        ("/v1/alerts?limit=0", "invalid limit \"0\": use 1-10000"),
        (
            "/v1/alerts?colour=red",
            "unknown query parameter \"colour\"",
        ),
    ] {
        let (status, response) = api.get(&api.admin, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            response["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{uri}: {response}"
        );
    }
    let (_, first) = api.get(&api.admin, "/v1/alerts?limit=3").await;
    let next = first["next"].as_str().expect("a next page");
    let (_, second) = api
        .get(&api.admin, &format!("/v1/alerts?limit=3&after={next}"))
        .await;
    assert_eq!(first["alerts"].as_array().map(Vec::len), Some(3));
    assert_eq!(second["alerts"].as_array().map(Vec::len), Some(2));
    assert!(second.get("next").is_none());
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let api = Api::sqlite().await;
    let (_, _, headers) = api
        .call(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let generated = headers.get("x-request-id").expect("generated id");
    assert_eq!(generated.len(), 36, "a UUID");
    let request = Request::get("/v1/nope")
        .header("x-request-id", "trace-me-42")
        .body(Body::empty())
        .expect("request");
    let (status, _, headers) = api.call(request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"trace-me-42"[..]),
        "echoed, even on errors"
    );
}

#[tokio::test]
async fn health_readiness_and_the_generated_spec() {
    let api = Api::sqlite().await;
    let (status, body, _) = api
        .call(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body, _) = api
        .call(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let (status, spec, _) = api
        .call(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        spec["paths"]["/v1/events"]["post"]["responses"]["202"].is_object(),
        "{spec}"
    );
    assert!(spec["paths"]["/v1/alerts"]["get"].is_object());
    let event_schema = &spec["components"]["schemas"]["Event"];
    assert_eq!(event_schema["required"], json!(["alert"]), "{event_schema}");
    assert!(
        spec["components"]["schemas"]["Status"]["enum"]
            .as_array()
            .is_some_and(|e| e.len() == 2)
    );
    // A client generated from the document fills every `{name}` of a path: each
    // operation declares it as a path parameter.
    let mut undeclared = Vec::new();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        let names: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        for (method, operation) in operations.as_object().expect("operations") {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            undeclared.extend(
                names
                    .iter()
                    .filter(|name| !declared.contains(name))
                    .map(|name| format!("{method} {path}: {name}")),
            );
        }
    }
    assert_eq!(
        undeclared,
        Vec::<String>::new(),
        "undeclared path parameters"
    );
    // Every route behind a token documents the 401 a missing or revoked one gets.
    let without_401: Vec<String> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("operations")
                .iter()
                .filter(|(_, op)| op.get("security").is_none() && op["responses"]["401"].is_null())
                .map(move |(method, _)| format!("{method} {path}"))
        })
        .collect();
    assert_eq!(
        without_401,
        Vec::<String>::new(),
        "token routes without a 401"
    );
    // A stored service is its settings plus what the store adds, in one schema that a
    // response validates against (the settings alone deny unknown fields).
    let service = &spec["components"]["schemas"]["Service"];
    for field in [
        "name",
        "updated_at",
        "updated_by",
        "team",
        "customer-facing",
    ] {
        assert!(
            service["properties"][field].is_object(),
            "{field}: {service}"
        );
    }
    assert!(service["allOf"].is_null(), "{service}");
    // What a list route refuses is in its parameters' schemas: the page size's bounds
    // and the values a state filter takes.
    for (path, filter, refused) in [
        ("/v1/alerts", "status", "Status"),
        ("/v1/history", "outcome", "HistoryOutcome"),
        ("/v1/incidents", "state", "IncidentState"),
        ("/v1/notifications", "state", "DeliveryState"),
    ] {
        let parameters = spec["paths"][path]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].to_string())
                .unwrap_or_default()
        };
        assert!(
            named("limit").contains("\"minimum\":1"),
            "{path}: {}",
            named("limit")
        );
        assert!(named(filter).contains(refused), "{path}: {}", named(filter));
    }
}

#[tokio::test]
async fn the_api_works_the_same_on_postgres() {
    let api = Api::on(&tocsin_tests::postgres_url().await, None).await;
    let body = json!([
        valid("a"),
        valid("a"),
        with(valid("b"), "/alert/status", json!("healthy"))
    ]);
    let (status, receipt) = api
        .post(Some(&api.admin), "application/json", body.to_string())
        .await;
    assert_eq!(
        (status, receipt["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(3)),
        "{receipt}"
    );
    let (_, page) = api.get(&api.admin, "/v1/alerts?status=unhealthy").await;
    assert_eq!(page["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["alerts"][0]["count"], 2);
    let (status, _, _) = api
        .call(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A string PostgreSQL's jsonb cannot hold is refused at validation, alone, and the
    // valid items beside it are still stored.
    let mut poisoned = valid("c");
    poisoned["alert"]["message"] = json!("nul \u{0} here");
    let body = json!([valid("d"), poisoned]);
    let (status, receipt) = api
        .post(Some(&api.admin), "application/json", body.to_string())
        .await;
    assert_eq!(
        (status, receipt["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{receipt}"
    );
    assert_eq!(receipt["rejected"][0]["field"], "alert.message");
    api.settle().await;
    let ids = api.store.event_ids().await.expect("ids");
    assert!(
        ids.iter()
            .any(|id| Some(id.as_str()) == receipt["ids"][0].as_str()),
        "{ids:?}"
    );
    assert_eq!(
        ids.len(),
        4,
        "a (its change in the history, its repeat as the alert's latest event), b and d"
    );
}
