//! `/v1/notifications`: the outbox's deliveries, with the dead ones and a way to send
//! them again; `/v1/notifiers`: where notifications go (without secrets).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::body;
use crate::caller::{listed_team, named_team};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::clock::now_ms;
use tocsin_model::notice::DeliveryState;
use tocsin_model::team::Caller;
use tocsin_store::{Delivery, DeliveryQuery};

/// Deliveries the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub notifications: Vec<Delivery>,
}

/// Lists deliveries: `state` (`pending`, `sent`, `dead`), `incident`, `limit`; a team
/// token sees its own team's, an admin every team's or one team's (`team`).
#[utoipa::path(get, path = "/v1/notifications",
    params(
        ("state" = Option<DeliveryState>, Query, description = "pending, sent or dead"),
        ("incident" = Option<String>, Query, description = "one incident's"),
        ("team" = Option<String>, Query, description = "admins: only this team; a team token may name only its own"),
        ("limit" = Option<u32>, Query, description = "1-1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<DeliveryList>, ApiError> {
    let named = named_team(&params);
    let mut query = DeliveryQuery {
        team: listed_team(&caller, named)?,
        limit: 100,
        ..DeliveryQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "state" if DeliveryState::parse(&value).is_some() => {
                query.state = DeliveryState::parse(&value)
            }
            "state" => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown state \"{value}\": use pending, sent or dead"),
                ));
            }
            "team" => {}
            "incident" => query.incident_id = Some(value),
            "limit" => query.limit = i64::from(body::limit(&value, 1_000)?),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown query parameter \"{other}\": use state, incident, team or limit"
                    ),
                ));
            }
        }
    }
    let notifications = state.store.deliveries(&query).await?;
    Ok(Json(DeliveryList { notifications }))
}

/// Queues a dead delivery again, due now, with a fresh retry budget.
#[utoipa::path(post, path = "/v1/notifications/{id}/retry",
    params(("id" = String, Path, description = "the notification's id")),
    responses((status = 202), (status = 404, body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let team = caller.scope();
    if state.store.retry_delivery(&id, team, now_ms()).await? {
        tracing::info!(delivery = %id, by = %caller.token_id, "dead notification queued again");
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no dead notification {id} for this token"),
        ))
    }
}

/// The notifiers and routes in use, without their secrets, URLs as scheme, host and
/// path: a team token sees the notifiers open to its team, what it may name on them,
/// and the routes that can apply to it; an admin sees all.
#[utoipa::path(get, path = "/v1/notifiers", responses((status = 200, body = Object)))]
pub(crate) async fn notifiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<serde_json::Value> {
    let team = caller.scope();
    Json(state.notifiers.public(team))
}
