//! Who is calling and for which team: the bearer-token extractor for [`Caller`], and the
//! rules that turn `?team=` into the team a request acts for or lists.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;
use tocsin_model::team::{Caller, check_team_name};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing token: send \"Authorization: Bearer <token>\"; an admin creates tokens with `tocsin token create`",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "malformed Authorization header: expected \"Bearer <token>\"",
                )
            })?;
        auth::authenticate(state.store.as_ref(), token)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid or revoked token"))
    }
}

/// The team a request acts for: a team token's own, or the one an admin (or a team
/// token, naming its own) gives with `?team=`; another team's is a 403.
pub(crate) fn acting_team(caller: &Caller, named: Option<&str>) -> Result<String, ApiError> {
    match (&caller.team, named) {
        (Some(own), Some(named)) if own != named && !caller.admin => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this token acts for team \"{own}\"; it cannot act for team \"{named}\""),
        )),
        (_, Some(named)) => {
            check_team_name(named).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
            Ok(named.to_owned())
        }
        (Some(own), None) => Ok(own.clone()),
        (None, None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "an admin token acts for no team: say which with ?team=NAME",
        )),
    }
}

/// The team a request names with `?team=`, if any.
pub(crate) fn named_team(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k == "team")
        .map(|(_, v)| v.as_str())
}

/// The team a listing shows: a team token's own (naming another with `?team=` is a
/// 403), or for an admin the one it names, or every team's (`None`).
pub(crate) fn listed_team(
    caller: &Caller,
    named: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if caller.admin && named.is_none() {
        return Ok(None);
    }
    acting_team(caller, named).map(Some)
}
