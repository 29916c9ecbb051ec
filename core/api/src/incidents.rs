//! `/v1/incidents`: groups of alerts, their timeline, and the two things a human does to
//! them (acknowledge, close).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use std::time::{Duration, Instant};
use tocsin_model::team::Caller;

use tocsin_model::clock::now_ms;
use tocsin_model::rows::IncidentState;
use tocsin_model::rows::{Command, CommandOutcome, CommandRow, IncidentError};
use tocsin_model::views::{IncidentDetail, IncidentQuery, IncidentSummary};

/// A page of incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    /// Newest first.
    pub incidents: Vec<IncidentSummary>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Lists incidents, newest first: a team's own, or everyone's (or one team's) for an admin.
#[utoipa::path(get, path = "/v1/incidents",
    params(
        ("state" = Option<IncidentState>, Query, description = "open, resolving, resolved or closed"),
        ("team" = Option<String>, Query, description = "admins: only this team"),
        ("service" = Option<String>, Query, description = "only this service"),
        ("priority" = Option<tocsin_model::event::Priority>, Query, description = "high or low"),
        ("before" = Option<String>, Query, description = "the `next` cursor"),
        ("limit" = Option<u32>, Query, description = "1-1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, body = IncidentPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<IncidentPage>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut query = IncidentQuery {
        team: caller.scope().map(str::to_owned),
        limit: 100,
        ..IncidentQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "state" => {
                query.state = Some(IncidentState::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "invalid state \"{value}\": use open, resolving, resolved or closed"
                    ))
                })?);
            }
            "team" => {
                if !caller.may_act_for(&value) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!("this token cannot read team \"{value}\"'s incidents"),
                    ));
                }
                query.team = Some(value);
            }
            "service" => query.service = Some(value),
            "priority" => {
                query.priority =
                    Some(value.parse().map_err(|_| {
                        bad(format!("invalid priority \"{value}\": use high or low"))
                    })?);
            }
            "before" => query.before = Some(value),
            "limit" => query.limit = body::limit(&value, 1_000)?,
            other => {
                return Err(bad(format!(
                    "unknown query parameter \"{other}\": use state, team, service, priority, before or limit"
                )));
            }
        }
    }
    let incidents = state.store.incidents(&query).await?;
    let next = (incidents.len() == query.limit as usize)
        .then(|| incidents.last().map(|i| i.id.clone()))
        .flatten();
    Ok(Json(IncidentPage { incidents, next }))
}

/// One incident with its alerts and timeline.
#[utoipa::path(get, path = "/v1/incidents/{id}",
    params(("id" = String, Path, description = "the incident's id")), responses((status = 200, body = IncidentDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    state
        .store
        .incident(&id, caller.scope())
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no incident {id} for this token"),
            )
        })
}

/// Longest a request waits for the pipeline to apply its command.
const COMMAND_WAIT: Duration = Duration::from_secs(10);

/// Records `command` for the pipeline (wherever it runs), waits for its outcome and
/// answers with the incident as it is then.
async fn apply(
    state: &AppState,
    caller: &Caller,
    id: &str,
    command: Command,
) -> Result<Json<IncidentDetail>, ApiError> {
    let row = CommandRow {
        id: uuid::Uuid::now_v7().to_string(),
        incident_id: id.to_owned(),
        team: caller.scope().map(str::to_owned),
        command,
        who: caller.token_id.clone(),
        requested_at: now_ms(),
    };
    state.store.request_command(&row).await?;
    state.wake.command();
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let outcome = loop {
        if let Some(outcome) = state.store.command_outcome(&row.id).await? {
            break outcome;
        }
        if started.elapsed() >= COMMAND_WAIT {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the pipeline has not applied the command within {}s; it stays queued and applies when the pipeline runs",
                    COMMAND_WAIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    match outcome {
        CommandOutcome::Applied => {
            get(State(state.clone()), caller.clone(), Path(id.to_owned())).await
        }
        CommandOutcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IncidentError::NotFound(id.to_owned()).to_string(),
        )),
        CommandOutcome::Closed => Err(ApiError::new(
            StatusCode::CONFLICT,
            IncidentError::Closed(id.to_owned()).to_string(),
        )),
    }
}

/// Acknowledges an incident: someone is on it (recorded with who and when).
#[utoipa::path(post, path = "/v1/incidents/{id}/ack",
    params(("id" = String, Path, description = "the incident's id")), responses((status = 200, body = IncidentDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    apply(&state, &caller, &id, Command::Ack).await
}

/// Closes an incident for good: later events of its key open a new incident.
#[utoipa::path(post, path = "/v1/incidents/{id}/close",
    params(("id" = String, Path, description = "the incident's id")), responses((status = 200, body = IncidentDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    apply(&state, &caller, &id, Command::Close).await
}
