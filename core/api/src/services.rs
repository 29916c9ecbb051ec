//! `GET/PUT /v1/services/{name}`: the service catalogue.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::body;
use crate::caller::{listed_team, named_team};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::catalogue::{Service, ServiceSpec};
use tocsin_model::clock::now_ms;
use tocsin_model::team::Caller;
use tocsin_store::AlertQuery;

/// Every service the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList {
    /// Services in name order.
    pub services: Vec<Service>,
}

/// Lists services: a team's own, or every one (or one team's, `?team=`) for an admin.
#[utoipa::path(get, path = "/v1/services",
    params(("team" = Option<String>, Query, description = "admins: only this team; a team token may name only its own")),
    responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<ServiceList>, ApiError> {
    let named = named_team(&query);
    let team = listed_team(&caller, named)?;
    Ok(Json(ServiceList {
        services: state.store.services(team.as_deref()).await?,
    }))
}

/// One service.
#[utoipa::path(get, path = "/v1/services/{name}", params(("name" = String, Path, description = "the `service` label value")),
    responses((status = 200, body = Service), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    match state.store.service(&name).await? {
        Some(service) if caller.admin || service.spec.team == caller.team => Ok(Json(service)),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no service \"{name}\" in your catalogue"),
        )),
    }
}

/// Creates or replaces a service. A team token owns what it creates and may change only
/// its own services; it cannot claim a name another team's alerts already carry. An
/// admin must say which team owns it, and may give any name to any team.
#[utoipa::path(put, path = "/v1/services/{name}", params(("name" = String, Path, description = "the `service` label value: 1-256 characters, no NUL", pattern = r"^[^\u0000]{1,256}$")),
    request_body(content((ServiceSpec = "application/json"), (ServiceSpec = "application/yaml"))),
    responses((status = 200, body = Service), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, description = "over 1 MiB", body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Service>, ApiError> {
    check_name(&name)?;
    let mut spec: ServiceSpec = body::read(&headers, request).await?;
    if spec.team.is_none() {
        spec.team = caller.team.clone();
    }
    let Some(team) = spec.team.clone() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "team: an admin must say which team owns the service",
        ));
    };
    if !caller.may_act_for(&team) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this token cannot give a service to team \"{team}\""),
        ));
    }
    spec.validate().map_err(|errors| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let existing = state.store.service(&name).await?;
    if !caller.admin {
        if existing
            .as_ref()
            .is_some_and(|existing| existing.spec.team != caller.team)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("service \"{name}\" belongs to another team"),
            ));
        }
        if existing.is_none() && used_by_another_team(&state, &team, &name).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "service \"{name}\" is already the service of another team's alerts: pick another name, or ask an admin to assign it"
                ),
            ));
        }
    }
    let now = now_ms();
    let service = Service {
        name,
        spec,
        updated_at: tocsin_model::clock::from_millis_lossy(now),
        updated_by: caller.token_id.clone(),
    };
    state.store.put_service(&service, now).await?;
    state.wake.rules();
    Ok(Json(service))
}

/// Whether alerts of a team other than `team` carry `service: name`: a team claiming a
/// name another team's events already use would steer that team's alerts.
async fn used_by_another_team(state: &AppState, team: &str, name: &str) -> Result<bool, ApiError> {
    let query = AlertQuery {
        other_than: Some(team.to_owned()),
        labels: vec![("service".to_owned(), name.to_owned())],
        limit: 1,
        ..AlertQuery::default()
    };
    Ok(!state.store.alerts(&query).await?.is_empty())
}

/// A service name as the `service` label carries it: 1-256 characters, no NUL.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.chars().count() > tocsin_model::event::MAX_LABEL_VALUE_LEN
        || name.contains('\0')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a service name is 1-256 characters, no NUL",
        ));
    }
    Ok(())
}
