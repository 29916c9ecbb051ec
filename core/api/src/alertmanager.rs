//! The Alertmanager v2 API, as far as Prometheus and `amtool` use it: `POST
//! /api/v2/alerts`, the silences, and `GET /api/v2/status` for `amtool`'s version check.
//! The mapping itself lives in [`tocsin_ingest::adapt::alertmanager`].

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::body;
use crate::error::{ApiError, ErrorBody};
use crate::events::{Receipt, commit};
use crate::state::AppState;
use crate::suppressions::{create_record, end_record, find, retime_record};
use crate::trace::Trace;
use crate::webhooks::{caller, refused};
use tocsin_ingest::MAX_BODY_BYTES;
use tocsin_ingest::adapt::alertmanager::{
    self, Filter, GettableSilence, PostableSilence, draft, silences, suppression_id,
};
use tocsin_model::clock::now_ms;
use tocsin_model::suppression::lifecycle::Retime;

/// An error in Alertmanager's shape: its API answers errors with a bare JSON string,
/// and its clients (`amtool`) cannot read anything else.
#[derive(Debug)]
pub(crate) struct AmError(ApiError);

impl From<ApiError> for AmError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<tocsin_store::StoreError> for AmError {
    fn from(e: tocsin_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        let retry_after = self.0.retry_after();
        let (status, ErrorBody { error, rejected }) = self.0.into_parts();
        let mut message = error;
        for item in rejected {
            message.push_str(&format!(
                "; alert {}: {}: {}",
                item.index, item.field, item.error
            ));
        }
        let mut response = (status, Json(message)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// What `POST /api/v2/silences` answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceCreated {
    /// The silence's (suppression's) id.
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

/// Takes alerts as Prometheus sends them to an Alertmanager. Valid alerts are accepted
/// even when others are refused; the answer comes once they are durable.
#[utoipa::path(post, path = "/api/v2/alerts",
    request_body(content = Vec<Object>, content_type = "application/json"),
    responses(
        (status = 200, description = "accepted and durable", body = Receipt),
        (status = 400, description = "malformed, or no alert valid", body = String),
        (status = 401, description = "missing or invalid token", body = String),
        (status = 413, description = "over 10 MiB", body = String),
    ))]
pub(crate) async fn post_alerts(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    trace: Trace,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Receipt>, AmError> {
    let caller = caller(&state, &headers, &query).await?;
    let body = body::bytes(
        &headers,
        request,
        MAX_BODY_BYTES,
        "(10 MiB): send fewer alerts at a time",
    )
    .await?;
    let items = alertmanager::alerts(&body, time::OffsetDateTime::now_utc()).map_err(refused)?;
    let batch = tocsin_ingest::accept_each(items, &caller, "alertmanager");
    if batch.accepted.is_empty() && !batch.rejected.is_empty() {
        return Err(ApiError::rejected(
            "no valid alert in the request; nothing was accepted",
            batch.rejected,
        )
        .into());
    }
    Ok(Json(commit(&state, batch, &trace).await?))
}

/// The caller's suppressions as silences, filtered by `filter` matchers
/// (`alertname="InstanceDown"`).
#[utoipa::path(get, path = "/api/v2/silences",
    params(("filter" = Option<Vec<String>>, Query, description = "Prometheus matchers")),
    responses((status = 200, body = Vec<GettableSilence>), (status = 400, body = String)))]
pub(crate) async fn list_silences(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Vec<GettableSilence>>, AmError> {
    let caller = caller(&state, &headers, &query).await?;
    let filters = query
        .iter()
        .filter(|(name, _)| name == "filter")
        .map(|(_, value)| {
            Filter::parse(value).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let team = caller.scope();
    let records = state.store.suppressions(None, team, now_ms()).await?;
    Ok(Json(
        records
            .iter()
            .flat_map(silences)
            .filter(|silence| filters.iter().all(|f| f.keeps(silence)))
            .collect(),
    ))
}

/// One silence.
#[utoipa::path(get, path = "/api/v2/silence/{id}",
    params(("id" = String, Path, description = "the silence's id")),
    responses((status = 200, body = GettableSilence), (status = 404, body = String)))]
pub(crate) async fn get_silence(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<GettableSilence>, AmError> {
    let caller = caller(&state, &headers, &query).await?;
    let record = find(&state, &caller, suppression_id(&id)).await?;
    silences(&record)
        .into_iter()
        .find(|silence| silence.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no silence {id}")).into())
}

/// Creates a silence as a suppression (every suppression rule and guard applies), or
/// with `id` replaces one: new times only move it, new matchers end it and start another.
#[utoipa::path(post, path = "/api/v2/silences", request_body = PostableSilence,
    responses((status = 200, body = SilenceCreated), (status = 400, body = String), (status = 404, body = String)))]
pub(crate) async fn post_silence(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<SilenceCreated>, AmError> {
    let caller = caller(&state, &headers, &query).await?;
    let silence: PostableSilence = body::read(&headers, request).await?;
    let draft = draft(&silence)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")))?;
    // A replacement stops the same team's alerts as the silence it replaces.
    let mut team = caller.team.clone();
    if let Some(id) = silence.id.as_deref().filter(|id| !id.is_empty()) {
        let record = find(&state, &caller, suppression_id(id)).await?;
        team.clone_from(&record.team);
        let same_targets = record.draft.targets == draft.targets;
        if same_targets && record.state != "ended" {
            let retime = Retime {
                start_time: Some(draft.start_time),
                end_time: Some(draft.end_time),
            };
            let record = retime_record(&state, &caller, record, retime).await?;
            return Ok(Json(SilenceCreated {
                silence_id: record.id,
            }));
        }
        end_record(&state, &caller, record).await?;
    }
    let record = create_record(&state, &caller, team, draft, false).await?;
    Ok(Json(SilenceCreated {
        silence_id: record.id,
    }))
}

/// Expires a silence: ends its suppression now (for a suppression with several
/// targets, all of them).
#[utoipa::path(delete, path = "/api/v2/silence/{id}",
    params(("id" = String, Path, description = "the silence's id")),
    responses((status = 200), (status = 404, body = String)))]
pub(crate) async fn delete_silence(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AmError> {
    let caller = caller(&state, &headers, &query).await?;
    let record = find(&state, &caller, suppression_id(&id)).await?;
    end_record(&state, &caller, record).await?;
    Ok(StatusCode::OK)
}

/// What `amtool` checks before it acts: Tocsin answers as the Alertmanager release
/// whose API it follows.
#[utoipa::path(get, path = "/api/v2/status", security(), responses((status = 200, body = Object)))]
pub(crate) async fn status() -> Json<serde_json::Value> {
    static STARTED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    });
    Json(serde_json::json!({
        "cluster": { "name": "tocsin", "status": "disabled", "peers": [] },
        "versionInfo": {
            "version": "0.25.0",
            "branch": "tocsin",
            "revision": env!("CARGO_PKG_VERSION"),
            "buildUser": "tocsin",
            "buildDate": "",
            "goVersion": "none (Tocsin)",
        },
        "config": { "original": "" },
        "uptime": *STARTED,
    }))
}
