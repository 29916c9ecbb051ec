//! Tocsin's HTTP API (`docs/api.md`): one [`app`] that `tocsin serve`, the Lambda
//! functions and the tests all serve. Handlers stay thin: each reads the request, calls
//! the model, the stages and the store, and answers.
//!
//! ```text
//! lib                     app(): the router, its layers, the OpenAPI doc, the probes
//! alertmanager            the Alertmanager v2 API, on the functions of webhooks and
//!                         suppressions
//! metrics                 GET /metrics and the HTTP layer counting requests
//! webhooks, plugins       vendor webhooks and plugin ingest, both ending in events
//! events, alerts, history, incidents, suppressions, services, routes, notifications,
//! logs, context           one module per /v1 resource
//! caller, body, trace     who calls and for which team; request bodies; trace ids
//! auth, error, state      tokens; ApiError, mapped to HTTP once; AppState
//! exporter                the Prometheus exporter and every metric's help
//! ```
//!
//! Dependencies point down the list (within a line, suppressions reads history's cursor
//! and routes checks names with services), and no module names the root. Out of the
//! crate they point to the stages (ingest, notify, collect), the store and the model,
//! never to a runner: the local server and the Lambda functions hand their wiring in
//! through [`AppState`].

mod alertmanager;
mod alerts;
pub mod auth;
mod body;
mod caller;
mod constraints;
mod context;
mod error;
mod events;
mod exporter;
mod history;
mod incidents;
mod logs;
pub mod metrics;
mod notifications;
mod plugins;
mod routes;
mod services;
mod state;
mod suppressions;
mod trace;
mod webhooks;

pub use error::{ApiError, ErrorBody};
pub use state::{
    AppState, Append, AppendError, Busy, Directory, NoWake, Readiness, StoreAppend, Unwatched,
    Wake, Watch,
};
pub use trace::Trace;

use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::{error, info, info_span, warn};
use utoipa::OpenApi;

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(events::post))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/history", get(history::list))
        .route("/v1/routes", get(routes::list))
        .route(
            "/v1/routes/{team}",
            put(routes::put_team).delete(routes::delete_team),
        )
        .route(
            "/v1/routes/{team}/{service}",
            put(routes::put_service).delete(routes::delete_service),
        )
        .route("/v1/services", get(services::list))
        .route("/v1/services/{name}", put(services::put).get(services::get))
        .route("/v1/suppressions", get(suppressions::list).post(suppressions::create))
        .route("/v1/suppressions/preview", post(suppressions::preview))
        .route(
            "/v1/suppressions/{id}",
            get(suppressions::get)
                .patch(suppressions::edit)
                .delete(suppressions::end),
        )
        .route("/v1/suppressions/{id}/suppressed", get(suppressions::suppressed))
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}", get(incidents::get))
        .route("/v1/incidents/{id}/ack", post(incidents::ack))
        .route("/v1/incidents/{id}/close", post(incidents::close))
        .route("/v1/runbooks/{id}", put(context::put_runbook).get(context::get_runbook))
        .route("/v1/changes", post(context::post_change).get(context::list_changes))
        .route("/v1/logs-queries", get(logs::list))
        .route(
            "/v1/logs-queries/{name}",
            put(logs::put).get(logs::get).delete(logs::remove),
        )
        .route("/v1/notifications", get(notifications::list))
        .route("/v1/notifications/{id}/retry", post(notifications::retry))
        .route("/v1/notifiers", get(notifications::notifiers))
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            put(plugins::put).get(plugins::get).delete(plugins::remove),
        )
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route("/v1/plugins/{name}/test", post(plugins::test))
        .route("/v1/plugins/{name}/dead-letters", get(plugins::dead_letters))
        .route("/v1/ingest/{plugin}", post(plugins::ingest))
        .route("/v1/webhooks/datadog", post(webhooks::datadog))
        .route("/v1/webhooks/loggly", post(webhooks::loggly))
        .route("/api/v2/alerts", post(alertmanager::post_alerts))
        .route(
            "/api/v2/silences",
            get(alertmanager::list_silences).post(alertmanager::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager::get_silence).delete(alertmanager::delete_silence),
        )
        .route("/api/v2/status", get(alertmanager::status))
        .route("/v1/whoami", get(whoami))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::get))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics::layer))
        // Layers run bottom-up on the way in: the trace id and the request id are set (or
        // kept from the client), the span records them, and the response echoes them.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            let trace = request
                .extensions()
                .get::<Trace>()
                .map_or("-", |t| t.0.as_str());
            let span = info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id, trace_id = %trace);
            let sender = request.extensions().get::<trace::SenderSpan>();
            tocsin_model::trace::follow(
                &span,
                Some(trace),
                sender.map(|s| s.0.as_str()),
            );
            span
        })
        // No log line per 5xx: a 500 logs its cause where it happens, and a 503 of
        // back-pressure (thousands a second in an overload) is counted in the metrics;
        // one ERROR line each flooded the log when it mattered most.
        .on_failure(()))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(trace::layer))
}

/// The OpenAPI description, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tocsin", description = "Monitoring event pipeline: events in, incidents out."),
    paths(
        events::post,
        alerts::list,
        history::list,
        services::list,
        services::get,
        services::put,
        suppressions::list,
        suppressions::create,
        suppressions::preview,
        suppressions::get,
        suppressions::edit,
        suppressions::end,
        suppressions::suppressed,
        incidents::list,
        incidents::get,
        incidents::ack,
        incidents::close,
        context::put_runbook,
        context::get_runbook,
        context::post_change,
        context::list_changes,
        logs::put,
        logs::list,
        logs::get,
        logs::remove,
        notifications::list,
        notifications::retry,
        notifications::notifiers,
        routes::list,
        routes::put_team,
        routes::put_service,
        routes::delete_team,
        routes::delete_service,
        plugins::put,
        plugins::list,
        plugins::get,
        plugins::remove,
        plugins::rollback,
        plugins::test,
        plugins::dead_letters,
        plugins::ingest,
        webhooks::datadog,
        webhooks::loggly,
        alertmanager::post_alerts,
        alertmanager::list_silences,
        alertmanager::get_silence,
        alertmanager::post_silence,
        alertmanager::delete_silence,
        alertmanager::status,
        whoami,
        healthz,
        readyz,
        metrics::get
    ),
    components(schemas(ErrorBody, HealthBody, Whoami)),
    modifiers(&BearerAuth, &CommonAnswers),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers every operation may give that its own annotation need not repeat: `401` for
/// every route behind a token, and Alertmanager's errors as the JSON strings they are.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, schema};
        for (path, item) in &mut openapi.paths.paths {
            let alertmanager = path.starts_with("/api/v2/");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if alertmanager {
                    for response in responses.values_mut() {
                        if let RefOr::T(response) = response
                            && let Some(content) = response.content.shift_remove("text/plain")
                        {
                            response.content.insert("application/json".into(), content);
                        }
                    }
                }
                // No `security` of its own: the document's bearer token applies.
                if operation.security.is_none() && !responses.contains_key("401") {
                    let body: RefOr<schema::Schema> = if alertmanager {
                        schema::ObjectBuilder::new()
                            .schema_type(schema::Type::String)
                            .into()
                    } else {
                        Ref::from_schema_name("ErrorBody").into()
                    };
                    let answer = ResponseBuilder::new()
                        .description("missing, unknown or revoked token")
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(body)).build(),
                        )
                        .build();
                    responses.insert("401".into(), answer.into());
                }
            }
        }
    }
}

async fn openapi() -> Json<serde_json::Value> {
    Json(document())
}

/// The OpenAPI document as served. A response type that flattens a request type denying
/// unknown fields (a `Service` is its `ServiceSpec` plus what the store adds) is written
/// out whole: as `allOf` with the request type, the added fields would be unknown ones.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    inline_flattened(&mut doc, "Service", "ServiceSpec");
    inline_flattened(&mut doc, "SuppressionRecord", "Draft");
    inline_flattened(&mut doc, "SuppressionDetail", "SuppressionRecord");
    constraints::apply(&mut doc);
    doc
}

/// Replaces `outer`'s `allOf` of `inner` and further fields with one object schema.
fn inline_flattened(doc: &mut serde_json::Value, outer: &str, inner: &str) {
    let schemas = &mut doc["components"]["schemas"];
    let mut merged = schemas[inner].clone();
    let Some(parts) = schemas[outer]["allOf"].as_array().cloned() else {
        return;
    };
    for part in parts.iter().filter(|part| part.get("$ref").is_none()) {
        if let (Some(into), Some(from)) = (
            merged["properties"].as_object_mut(),
            part["properties"].as_object(),
        ) {
            into.extend(from.clone());
        }
        let mut required = merged["required"].as_array().cloned().unwrap_or_default();
        required.extend(part["required"].as_array().cloned().unwrap_or_default());
        merged["required"] = serde_json::Value::Array(required);
    }
    merged["description"] = schemas[outer]["description"].clone();
    schemas[outer] = merged;
}

/// Who a token stands for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Whoami {
    /// The token's public id (as `tocsin token list` shows it).
    pub token: String,
    /// The team it acts for; absent for an admin token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Whether it acts for every team.
    pub admin: bool,
}

/// The caller's own token: its id, its team, whether it is admin. Nothing about any other
/// token or team; the web UI signs in with it.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = Whoami)))]
async fn whoami(caller: tocsin_model::team::Caller) -> Json<Whoami> {
    Json(Whoami {
        token: caller.token_id,
        team: caller.team,
        admin: caller.admin,
    })
}

/// Liveness and readiness answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthBody {
    /// `ok`, `ready` or `not ready`.
    pub status: &'static str,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", security(), responses((status = 200, body = HealthBody)))]
async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok",
        reason: None,
    })
}

/// Readiness: the journal writer runs, the database answers and its schema is up to
/// date, the pipeline is within its lag bound and the canary arrives in time.
#[utoipa::path(get, path = "/readyz", security(), responses(
    (status = 200, body = HealthBody), (status = 503, body = HealthBody)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let reason = if state.append.is_running() {
        match state.store.ready().await {
            Ok(()) => state
                .watch
                .busy()
                .map(|busy| busy.reason)
                .or_else(|| state.watch.unready()),
            Err(e) => {
                // The cause stays in the log: nothing about the database reaches callers.
                error!(error = %e, "the database is not ready");
                Some("the database is not ready (the server log has the cause)".to_owned())
            }
        }
    } else {
        Some("the journal writer is not running".to_owned())
    };
    // A probe runs every few seconds: the log says when readiness changes, not at each.
    let was_unready = state.readiness.set_unready(reason.is_some());
    match (&reason, was_unready) {
        (Some(reason), false) => warn!(reason, "not ready"),
        (None, true) => info!("ready again"),
        _ => {}
    }
    match reason {
        None => (
            StatusCode::OK,
            Json(HealthBody {
                status: "ready",
                reason: None,
            }),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthBody {
                status: "not ready",
                reason: Some(reason),
            }),
        ),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: GET /openapi.json lists them",
    )
}
