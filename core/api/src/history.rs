//! `GET /v1/history`: what the pipeline did with each event that changed something or
//! was stopped (steady repeats only count, see `/v1/alerts`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::rows::HistoryOutcome;
use tocsin_model::team::Caller;
use tocsin_model::views::{HistoryEntry, HistoryQuery};

/// A page of history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// Oldest first.
    pub events: Vec<HistoryEntry>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Events stopped since the database was created, by reason: the team's own, or for
    /// an admin every team's (or, with `team`, one team's).
    pub drops: std::collections::BTreeMap<String, i64>,
}

/// Reads a `next` cursor: `<processed_at>/<id>`.
pub(crate) fn cursor(value: &str) -> Result<(i64, String), ApiError> {
    value
        .split_once('/')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid cursor \"{value}\": pass the `next` of the previous page"),
            )
        })
}

/// The `next` cursor of a full page.
pub(crate) fn next(events: &[HistoryEntry], limit: u32) -> Option<String> {
    (events.len() == limit as usize)
        .then(|| events.last())
        .flatten()
        .map(|e| format!("{}/{}", tocsin_model::clock::millis(e.processed_at), e.id))
}

/// Lists the event history and drop counters: a team's own, or everyone's (or one
/// team's) for an admin.
#[utoipa::path(get, path = "/v1/history",
    params(
        ("team" = Option<String>, Query, description = "admins: only this team"),
        ("outcome" = Option<HistoryOutcome>, Query, description = "passed, dropped, held or suppressed"),
        ("fingerprint" = Option<String>, Query, description = "one alert"),
        ("suppression" = Option<String>, Query, description = "events this suppression stopped"),
        ("after" = Option<String>, Query, description = "the `next` cursor"),
        ("limit" = Option<u32>, Query, description = "1-10000, default 1000", minimum = 1, maximum = 10000),
    ),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<HistoryPage>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut query = HistoryQuery {
        team: caller.scope().map(str::to_owned),
        limit: 1_000,
        ..HistoryQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "outcome" => {
                let Some(outcome) = HistoryOutcome::parse(&value) else {
                    return Err(bad(format!(
                        "invalid outcome \"{value}\": use passed, dropped, held or suppressed"
                    )));
                };
                query.outcome = Some(outcome);
            }
            "team" => {
                if !caller.may_act_for(&value) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!("this token cannot read team \"{value}\"'s history"),
                    ));
                }
                query.team = Some(value);
            }
            "fingerprint" => query.fingerprint = Some(value),
            "suppression" => query.suppression_id = Some(value),
            "after" => query.after = Some(cursor(&value)?),
            "limit" => query.limit = body::limit(&value, 10_000)?,
            other => {
                return Err(bad(format!(
                    "unknown query parameter \"{other}\": use outcome, team, fingerprint, suppression, after or limit"
                )));
            }
        }
    }
    let events = state.store.history(&query).await?;
    let next = next(&events, query.limit);
    let drops = state
        .store
        .drops(query.team.as_deref())
        .await?
        .into_iter()
        .collect();
    Ok(Json(HistoryPage {
        events,
        next,
        drops,
    }))
}
