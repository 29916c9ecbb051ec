//! `GET /v1/alerts`: the current state of every alert identity the caller may see.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::team::{Caller, check_team_name};
use tocsin_model::template::check_label_key;
use tocsin_store::{AlertQuery, AlertState};

const DEFAULT_LIMIT: u32 = 1_000;
const MAX_LIMIT: u32 = 10_000;

/// A page of alert states.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// Alert states in (team, fingerprint) order.
    pub alerts: Vec<AlertState>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Lists alert states. A team token sees its own team's; an admin sees every team's,
/// or one team's with `team=`.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    params(
        ("status" = Option<tocsin_model::event::Status>, Query, description = "healthy or unhealthy"),
        ("monitor" = Option<String>, Query, description = "only this monitor"),
        ("label" = Option<Vec<String>>, Query, description = "key:value, repeatable; all must match"),
        ("team" = Option<String>, Query, description = "admins: only this team (\"\" for none)"),
        ("after" = Option<String>, Query, description = "the `next` cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "page size, 1-10000, default 1000", minimum = 1, maximum = 10000),
    ),
    responses(
        (status = 200, body = AlertPage),
        (status = 400, description = "bad filter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "another team's alerts", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<AlertPage>, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    if !caller.admin && caller.team.is_none() {
        // The schema forbids such a token; should one exist, it sees nothing.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token belongs to no team and is not admin",
        ));
    }
    let mut query = AlertQuery {
        team: caller.scope().map(str::to_owned),
        limit: DEFAULT_LIMIT,
        ..AlertQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "status" => query.status = Some(value.parse().map_err(bad)?),
            "monitor" => query.monitor = Some(value),
            "label" => {
                let (key, label) = value.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "invalid label filter \"{value}\": use label=key:value"
                    ))
                })?;
                check_label_key(key).map_err(bad)?;
                query.labels.push((key.to_owned(), label.to_owned()));
            }
            "team" => {
                if !caller.may_act_for(&value) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "this token acts for another team; it cannot read team \"{value}\"'s alerts"
                        ),
                    ));
                }
                if !value.is_empty() {
                    check_team_name(&value).map_err(bad)?;
                }
                query.team = Some(value);
            }
            "after" => {
                let (team, fingerprint) = value.split_once('/').ok_or_else(|| {
                    bad(format!(
                        "invalid cursor \"{value}\": pass the `next` of the previous page"
                    ))
                })?;
                query.after = Some((team.to_owned(), fingerprint.to_owned()));
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("invalid limit \"{value}\": use 1-{MAX_LIMIT}")))?;
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter \"{other}\": use status, monitor, label, team, after or limit"
                )));
            }
        }
    }
    let alerts = state.store.alerts(&query).await?;
    let next = (alerts.len() == query.limit as usize)
        .then(|| {
            alerts
                .last()
                .map(|a| format!("{}/{}", a.team, a.fingerprint))
        })
        .flatten();
    Ok(Json(AlertPage { alerts, next }))
}
