//! `/v1/logs-queries`: the SQL a team registers for its events' `logs` collectors. An
//! event names a query of its own team and passes values; it never carries SQL.

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
use tocsin_collect::logs::LogsSql;
use tocsin_model::clock::now_ms;
use tocsin_model::team::Caller;
use tocsin_store::LogsQuery;

/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 1024;

/// A query as a team registers it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLogsQuery {
    /// One read statement (SELECT or WITH), at most 16 KiB, parameters as `:name`.
    #[schema(
        min_length = 1,
        pattern = r"^\s*([Ss][Ee][Ll][Ee][Cc][Tt]|[Ww][Ii][Tt][Hh])"
    )]
    pub sql: String,
    /// What it shows, at most 1024 characters.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
}

/// A team's logs queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsQueryList {
    /// By team and name.
    pub queries: Vec<LogsQuery>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid logs query name \"{}\": use 1-64 characters of A-Z a-z 0-9 _ . -, a letter or digit first",
                name.chars().take(80).collect::<String>()
            ),
        ))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no logs query \"{name}\" in your team"),
    )
}

/// Registers or replaces a query of the team (`?team=` for an admin). The SQL is checked
/// here: one read statement (SELECT or WITH) of at most 16 KiB, quotes and comments
/// closed, parameters written `:name`.
#[utoipa::path(put, path = "/v1/logs-queries/{name}",
    params(("name" = String, Path, description = "the name events give in params.query", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
        ("team" = Option<String>, Query, description = "the team (admin tokens)")),
    request_body(content((NewLogsQuery = "application/json"), (NewLogsQuery = "application/yaml"))),
    responses((status = 200, body = LogsQuery), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<LogsQuery>, ApiError> {
    check_name(&name)?;
    let team = acting_team(&caller, named_team(&query))?;
    let new: NewLogsQuery = body::read(&headers, request).await?;
    let sql = LogsSql::parse(&new.sql)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let len = new.description.chars().count();
    if len > MAX_DESCRIPTION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("description: at most {MAX_DESCRIPTION} characters, got {len}"),
        ));
    }
    let registered = LogsQuery {
        team,
        name,
        sql: new.sql,
        description: new.description,
        params: sql.params().to_vec(),
        updated_at: now_ms(),
        updated_by: caller.token_id.clone(),
    };
    state.store.put_logs_query(&registered).await?;
    Ok(Json(registered))
}

/// The team's queries (`?team=` for an admin; an admin without it sees every team's).
#[utoipa::path(get, path = "/v1/logs-queries",
    params(("team" = Option<String>, Query, description = "the team (admin tokens)")),
    responses((status = 200, body = LogsQueryList), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<LogsQueryList>, ApiError> {
    let team = listed_team(&caller, named_team(&query))?;
    Ok(Json(LogsQueryList {
        queries: state.store.logs_queries(team.as_deref()).await?,
    }))
}

/// One query of the team.
#[utoipa::path(get, path = "/v1/logs-queries/{name}",
    params(("name" = String, Path, description = "its name", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("team" = Option<String>, Query, description = "the team (admin tokens)")),
    responses((status = 200, body = LogsQuery), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<LogsQuery>, ApiError> {
    check_name(&name)?;
    let team = acting_team(&caller, named_team(&query))?;
    state
        .store
        .logs_query(&team, &name)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

/// Removes a query of the team; events naming it get a section saying there is none.
#[utoipa::path(delete, path = "/v1/logs-queries/{name}",
    params(("name" = String, Path, description = "its name", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"), ("team" = Option<String>, Query, description = "the team (admin tokens)")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    let team = acting_team(&caller, named_team(&query))?;
    if state.store.delete_logs_query(&team, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
