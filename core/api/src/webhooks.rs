//! `POST /v1/webhooks/datadog` and `/v1/webhooks/loggly`: the built-in adapters, for
//! tools that cannot send a bearer token.
//!
//! The secret is a team's Tocsin token, sent in the `X-Tocsin-Token` header (Datadog's
//! custom headers), as a bearer token, or as `?token=` (Loggly can set nothing but the
//! URL). It is looked up by its SHA-256, so the comparison never depends on how much of
//! a guess was right (see [`crate::auth`]), and every bad secret gets the same 401.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};

use crate::auth;
use crate::body;
use crate::error::{ApiError, ErrorBody};
use crate::events::{Receipt, commit};
use crate::state::AppState;
use crate::trace::Trace;
use tocsin_ingest::adapt::{AdaptError, MAX_WEBHOOK_BYTES, datadog, loggly};
use tocsin_model::event::Event;
use tocsin_model::team::Caller;

/// Header that carries the token for senders that cannot set `Authorization`.
pub const TOKEN_HEADER: &str = "x-tocsin-token";

/// The caller a webhook's secret stands for. Every failure reads the same, so a
/// prober learns nothing about which part of a guess was wrong.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(bearer)
        .or_else(|| {
            query
                .iter()
                .find(|(name, _)| name == "token")
                .map(|(_, v)| v.as_str())
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing token: send a team token in the X-Tocsin-Token header or as ?token=",
            )
        })?;
    auth::authenticate(state.store.as_ref(), token)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid or revoked token"))
}

/// A 400 for a payload or option an adapter cannot read.
pub(crate) fn refused(e: AdaptError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
}

/// Validates and commits what an adapter produced; a 400 listing why when nothing is
/// valid.
pub(crate) async fn accept(
    state: &AppState,
    caller: &Caller,
    trace: &Trace,
    events: Vec<Event>,
    source: &'static str,
) -> Result<Receipt, ApiError> {
    let batch = tocsin_ingest::accept(events, caller, source);
    if batch.accepted.is_empty() {
        crate::events::rejected(&batch, "invalid", batch.rejected.len());
        return Err(ApiError::rejected(
            "the payload does not make a valid event; nothing was accepted",
            batch.rejected,
        ));
    }
    commit(state, batch, trace).await
}

async fn read(headers: &HeaderMap, request: Body) -> Result<bytes::Bytes, ApiError> {
    body::bytes(
        headers,
        request,
        MAX_WEBHOOK_BYTES,
        "(1 MiB): a monitor notification is a few KiB; check the webhook's payload template",
    )
    .await
}

/// Takes a Datadog monitor notification (payload template: `docs/integrations/datadog.md`).
/// Query parameters: `high` (priorities that page, default `P1,P2`); any other is a
/// context label.
#[utoipa::path(post, path = "/v1/webhooks/datadog", security(),
    params(("X-Tocsin-Token" = Option<String>, Header, description = "a team token (or ?token=)")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 202, description = "accepted and durable", body = Receipt),
        (status = 400, description = "unreadable payload or option", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 413, description = "over 1 MiB", body = ErrorBody),
    ))]
pub(crate) async fn datadog(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    trace: Trace,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let caller = caller(&state, &headers, &query).await?;
    let options = datadog::Options::from_query(&query).map_err(refused)?;
    let body = read(&headers, request).await?;
    let event = datadog::adapt(&body, &options).map_err(refused)?;
    let receipt = accept(&state, &caller, &trace, vec![event], "datadog").await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// Takes a Loggly alert (`docs/integrations/loggly.md`): two events, unhealthy at the
/// window's start and healthy at its end. Query parameters: `token`, `tz` (zone of the
/// bare times), `priority`; any other is a context label.
#[utoipa::path(post, path = "/v1/webhooks/loggly", security(),
    params(("token" = Option<String>, Query, description = "a team token (or the X-Tocsin-Token header)")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 202, description = "accepted and durable", body = Receipt),
        (status = 400, description = "unreadable payload or option", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 413, description = "over 1 MiB", body = ErrorBody),
    ))]
pub(crate) async fn loggly(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    trace: Trace,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let caller = caller(&state, &headers, &query).await?;
    let options = loggly::Options::from_query(&query).map_err(refused)?;
    let body = read(&headers, request).await?;
    let events =
        loggly::adapt(&body, &options, time::OffsetDateTime::now_utc()).map_err(refused)?;
    let receipt = accept(&state, &caller, &trace, events.into(), "loggly").await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
