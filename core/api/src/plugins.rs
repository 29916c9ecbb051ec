//! `/v1/plugins`: a team's WebAssembly plugins (upload, list, test, roll back, remove),
//! and `POST /v1/ingest/{plugin}`, which runs a transformer on a raw request.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body;
use crate::caller::{acting_team, listed_team};
use crate::error::{ApiError, ErrorBody};
use crate::events::Receipt;
use crate::state::AppState;
use crate::trace::Trace;
use tocsin_ingest::MAX_BODY_BYTES;
use tocsin_model::event::Event;
use tocsin_model::plugin::{
    self, IncidentContext, Kind, PluginError, PluginInfo, RawInput, Sample, TestRun,
};
use tocsin_model::team::Caller;
use tocsin_store::DeadLetter;

/// Headers a transformer never sees: Tocsin's own credentials and the sender's cookies.
const PRIVATE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-tocsin-token",
];

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let status = match &e {
            PluginError::NotFound(_) => StatusCode::NOT_FOUND,
            PluginError::WrongKind { .. } | PluginError::Rejected(_) => StatusCode::BAD_REQUEST,
            PluginError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            PluginError::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PluginError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PluginError::Internal(_) => return ApiError::internal(&e),
        };
        ApiError::new(status, e.to_string())
    }
}

/// The team a request acts for: a team token's own; an admin names one with `?team=`.
fn team_of(caller: &Caller, query: &BTreeMap<String, String>) -> Result<String, ApiError> {
    acting_team(caller, query.get("team").map(String::as_str))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    plugin::check_name(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

/// Every plugin the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Plugins by team and name.
    pub plugins: Vec<PluginInfo>,
}

/// Uploads a component as the next version of a plugin and swaps it in. The body is
/// the component's bytes.
#[utoipa::path(put, path = "/v1/plugins/{name}",
    params(("name" = String, Path, description = "1-64 of a-z, 0-9, -"),
           ("kind" = String, Query, description = "transformer, filter or collector"),
           ("team" = Option<String>, Query, description = "admins: the owning team")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginInfo), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
    check_name(&name)?;
    let team = team_of(&caller, &query)?;
    let kind = query.get("kind").map(String::as_str).unwrap_or("");
    let kind = Kind::parse(kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("missing or unknown ?kind=\"{kind}\": use transformer, filter or collector"),
        )
    })?;
    let max = state.plugins.max_size();
    let bytes = body::bytes(
        &headers,
        request,
        max,
        "(the plugin size limit, --plugin-max-size)",
    )
    .await?;
    let info = state
        .plugins
        .install(&team, &name, kind, bytes, &caller.token_id)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Lists plugins: a team's own, or every team's for an admin (or one team's with `?team=`).
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = PluginList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<PluginList>, ApiError> {
    let team = listed_team(&caller, query.get("team").map(String::as_str))?;
    Ok(Json(PluginList {
        plugins: state.plugins.list(team.as_deref()).await?,
    }))
}

/// One plugin: its versions, state size and statistics.
#[utoipa::path(get, path = "/v1/plugins/{name}", params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = PluginInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<PluginInfo>, ApiError> {
    let team = team_of(&caller, &query)?;
    Ok(Json(state.plugins.get(&team, &name).await?))
}

/// Removes a plugin with every version, its state and its dead letters.
#[utoipa::path(delete, path = "/v1/plugins/{name}", params(("name" = String, Path, description = "plugin name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let team = team_of(&caller, &query)?;
    state.plugins.remove(&team, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes the version before the active one active again.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = PluginInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<PluginInfo>, ApiError> {
    let team = team_of(&caller, &query)?;
    Ok(Json(state.plugins.rollback(&team, &name).await?))
}

/// A sample for `POST /v1/plugins/{name}/test`; which fields apply depends on the kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestRequest {
    /// Transformer: the raw body, as text.
    #[serde(default)]
    pub body: Option<String>,
    /// Transformer: its content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Transformer: request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Filter: the events to judge.
    #[serde(default)]
    pub events: Option<Vec<Event>>,
    /// Collector: the incident.
    #[serde(default)]
    pub incident: Option<IncidentContext>,
    /// The config (transformer), params (filter, collector): a JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// Runs a plugin on a sample without side effects: its state writes are discarded and
/// nothing is ingested.
#[utoipa::path(post, path = "/v1/plugins/{name}/test", params(("name" = String, Path, description = "plugin name")),
    request_body = TestRequest,
    responses((status = 200, body = TestRun), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<TestRun>, ApiError> {
    let team = team_of(&caller, &query)?;
    let sample: TestRequest = body::read(&headers, request).await?;
    let info = state.plugins.get(&team, &name).await?;
    let config = serde_json::Value::Object(sample.config).to_string();
    let missing = |field: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "plugin \"{name}\" is a {}: the sample needs \"{field}\"",
                info.kind.as_str()
            ),
        )
    };
    let sample = match info.kind {
        Kind::Transformer => Sample::Transform(
            RawInput {
                body: sample.body.ok_or_else(|| missing("body"))?.into(),
                content_type: sample.content_type.unwrap_or_default(),
                headers: sample.headers.into_iter().collect(),
            },
            config,
        ),
        Kind::Filter => {
            let events = sample.events.ok_or_else(|| missing("events"))?;
            let now = tocsin_model::clock::now_ms();
            Sample::Filter(events.into_iter().map(|e| (e, now)).collect(), config)
        }
        Kind::Collector => {
            Sample::Collect(sample.incident.ok_or_else(|| missing("incident"))?, config)
        }
    };
    Ok(Json(state.plugins.test(&team, &name, sample).await?))
}

/// A plugin's dead letters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// Newest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// Inputs a transformer failed on, newest first (`?limit=`, default 100).
#[utoipa::path(get, path = "/v1/plugins/{name}/dead-letters", params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = DeadLetterList), (status = 404, body = ErrorBody)))]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let team = team_of(&caller, &query)?;
    let limit = match query.get("limit") {
        Some(value) => body::limit(value, 1000)?,
        None => 100,
    };
    // A plugin the team does not have is a 404 here too, as on every plugin route,
    // rather than an empty list that reads as "no failures".
    state.plugins.get(&team, &name).await?;
    Ok(Json(DeadLetterList {
        dead_letters: state
            .store
            .dead_letters(&team, &name, i64::from(limit))
            .await?,
    }))
}

/// What the sender of a failed transformer input learns.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLettered {
    /// Which plugin failed and how.
    pub error: String,
    /// Id of the kept input (`GET /v1/plugins/{name}/dead-letters`).
    pub dead_letter: String,
    /// Events the plugin produced that were invalid, if that was the failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<tocsin_ingest::Rejected>,
}

/// Runs the caller's transformer plugin on the raw body and ingests the events it
/// returns. Query parameters (but `team`) are the plugin's config. When the plugin
/// fails, the input is kept as a dead letter and the answer is a 422 naming the plugin
/// and the failure.
#[utoipa::path(post, path = "/v1/ingest/{plugin}", params(("plugin" = String, Path, description = "a transformer plugin")),
    request_body(content = Vec<u8>, content_type = "*/*"),
    responses((status = 202, body = Receipt), (status = 404, body = ErrorBody), (status = 422, body = DeadLettered)))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    trace: Trace,
    Path(plugin): Path<String>,
    Query(mut query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<Receipt>), axum::response::Response> {
    use axum::response::IntoResponse;
    let team = team_of(&caller, &query).map_err(IntoResponse::into_response)?;
    query.remove("team");
    let body = body::bytes(
        &headers,
        request,
        MAX_BODY_BYTES,
        "(10 MiB): split the input",
    )
    .await
    .map_err(IntoResponse::into_response)?;
    let input = RawInput {
        body: body.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        headers: headers
            .iter()
            .filter(|(name, _)| !PRIVATE_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
    };
    let config = serde_json::to_string(&query).unwrap_or_default();
    let runner = state.plugins.clone();
    let (team_for_call, name) = (team.clone(), plugin.clone());
    let kept = input.clone();
    let result = tokio::task::spawn_blocking(move || {
        runner.transform(&team_for_call, &name, input, &config)
    })
    .await
    .map_err(|e| ApiError::internal(&e).into_response())?;
    let acting = Caller {
        token_id: caller.token_id.clone(),
        team: Some(team.clone()),
        admin: false,
    };
    let (error, rejected) = match result {
        Ok(events) => {
            let batch = tocsin_ingest::accept(events, &acting, "plugin");
            if batch.accepted.is_empty() && !batch.rejected.is_empty() {
                (
                    format!("plugin \"{plugin}\" produced no valid event"),
                    batch.rejected,
                )
            } else {
                let receipt = crate::events::commit(&state, batch, &trace)
                    .await
                    .map_err(IntoResponse::into_response)?;
                return Ok((StatusCode::ACCEPTED, Json(receipt)));
            }
        }
        Err(e @ PluginError::Failed { .. }) => (e.to_string(), Vec::new()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let letter = DeadLetter {
        id: uuid::Uuid::now_v7().to_string(),
        team,
        plugin,
        received_at: time::OffsetDateTime::now_utc(),
        content_type: kept.content_type,
        headers: kept.headers,
        body: String::new(),
        body_hex: false,
        error: error.clone(),
    };
    state
        .store
        .put_dead_letter(&letter, &kept.body)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    Err((
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(DeadLettered {
            error,
            dead_letter: letter.id,
            rejected,
        }),
    )
        .into_response())
}
