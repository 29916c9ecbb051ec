//! `/v1/routes`: which notifiers a team's incidents go to, set through the API beside the
//! notifiers file. A route names notifiers of that file (where the secrets stay); the
//! API never takes or shows a secret.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body;
use crate::caller::{acting_team, listed_team, named_team};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::clock::now_ms;
use tocsin_model::notice::Route;
use tocsin_model::notice::StoredRoute;
use tocsin_model::team::Caller;

/// What a route sends an incident to: names of configured notifiers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// A PagerDuty notifier, paged for incidents at `high`.
    #[serde(default)]
    pub page: Option<String>,
    /// A Jira or GitHub notifier that gets a ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// A Slack notifier.
    #[serde(default)]
    pub chat: Option<String>,
    /// Webhook notifiers told about everything.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

/// The routes that apply to the caller's incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    /// Set through this API.
    pub routes: Vec<StoredRoute>,
    /// From the notifiers file (read-only here).
    #[schema(value_type = Vec<Object>)]
    pub file: Vec<Route>,
}

/// Lists the routes: a team token sees those of its team (and the file's routes that
/// name no other team), an admin every route.
#[utoipa::path(get, path = "/v1/routes",
    params(("team" = Option<String>, Query, description = "admins: only this team; a team token may name only its own")),
    responses((status = 200, body = RouteList), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<RouteList>, ApiError> {
    let named = named_team(&query);
    let team = listed_team(&caller, named)?;
    let routes = state.store.routes(team.as_deref()).await?;
    let file = state
        .notifiers
        .file_routes()
        .iter()
        .filter(|r| team.is_none() || r.team.is_none() || r.team == team)
        .cloned()
        .collect();
    Ok(Json(RouteList { routes, file }))
}

/// Sets the route of all of a team's incidents.
#[utoipa::path(put, path = "/v1/routes/{team}",
    params(("team" = String, Path, description = "the team")), request_body = RouteBody,
    responses((status = 200, body = StoredRoute), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn put_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<StoredRoute>, ApiError> {
    put(&state, &caller, team, None, &headers, request).await
}

/// Sets the route of a team's incidents of one service (it wins over the team's).
#[utoipa::path(put, path = "/v1/routes/{team}/{service}",
    params(("team" = String, Path, description = "the team"), ("service" = String, Path, description = "the service")), request_body = RouteBody,
    responses((status = 200, body = StoredRoute), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn put_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((team, service)): Path<(String, String)>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<StoredRoute>, ApiError> {
    put(&state, &caller, team, Some(service), &headers, request).await
}

/// Removes a team's route; its incidents go by the file's routes again.
#[utoipa::path(delete, path = "/v1/routes/{team}",
    params(("team" = String, Path, description = "the team")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &caller, team, None).await
}

/// Removes the route of a team's service.
#[utoipa::path(delete, path = "/v1/routes/{team}/{service}",
    params(("team" = String, Path, description = "the team"), ("service" = String, Path, description = "the service")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((team, service)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &caller, team, Some(service)).await
}

async fn put(
    state: &AppState,
    caller: &Caller,
    team: String,
    service: Option<String>,
    headers: &HeaderMap,
    request: Body,
) -> Result<Json<StoredRoute>, ApiError> {
    let team = acting_team(caller, Some(&team))?;
    if let Some(service) = &service {
        crate::services::check_name(service)?;
    }
    let body: RouteBody = body::read(headers, request).await?;
    let stored = StoredRoute {
        team,
        service,
        page: body.page,
        ticket: body.ticket,
        chat: body.chat,
        webhooks: body.webhooks,
        updated_at: now_ms(),
        updated_by: caller.token_id.clone(),
    };
    let route = stored.route();
    if route.page.is_none()
        && route.ticket.is_none()
        && route.chat.is_none()
        && route.webhooks.is_empty()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a route names at least one notifier (page, ticket, chat or webhooks); DELETE it to fall back to the file's routes",
        ));
    }
    state
        .notifiers
        .check_route(&route)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    state.store.put_route(&stored).await?;
    tracing::info!(team = %stored.team, service = ?stored.service, by = %caller.token_id, "route set");
    Ok(Json(stored))
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    team: String,
    service: Option<String>,
) -> Result<StatusCode, ApiError> {
    let team = acting_team(caller, Some(&team))?;
    if state.store.delete_route(&team, service.as_deref()).await? {
        tracing::info!(team = %team, service = ?service, by = %caller.token_id, "route removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            match service {
                Some(service) => format!("team \"{team}\" has no route for service \"{service}\""),
                None => format!("team \"{team}\" has no route of its own"),
            },
        ))
    }
}
