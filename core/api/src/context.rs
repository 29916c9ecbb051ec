//! `/v1/runbooks` and `/v1/changes`: what teams record so that incidents carry it as
//! context (the `runbook` and `recent-changes` collectors). Both belong to the team that
//! wrote them: a team reads and writes only its own, and runbook ids are per team, so
//! no team can take an id, read a text or plant a change in another team's incidents.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::body;
use crate::caller::{acting_team, listed_team, named_team};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::clock::millis;
use tocsin_model::clock::now_ms;
use tocsin_model::team::Caller;
use tocsin_store::{Change, Runbook};

/// Largest runbook, in bytes.
pub const MAX_RUNBOOK_BYTES: usize = 256 * 1024;

/// The team a request acts for (`?team=` for an admin).
fn team_of(caller: &Caller, query: &[(String, String)]) -> Result<String, ApiError> {
    acting_team(caller, named_team(query))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid runbook id \"{id}\": use 1-128 characters of A-Z a-z 0-9 _ . : -"),
        ))
    }
}

/// Creates or replaces one of the team's runbooks: the body is its Markdown (at most
/// 256 KiB of UTF-8). Ids are per team: another team's runbook of the same id is
/// another runbook.
#[utoipa::path(put, path = "/v1/runbooks/{id}",
    params(("id" = String, Path, description = "the runbook's id", pattern = r"^[A-Za-z0-9_.:-]{1,128}$"), ("team" = Option<String>, Query, description = "admins: the owning team (required)")),
    request_body(content = String, content_type = "text/markdown"),
    responses((status = 200, body = Runbook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(crate) async fn put_runbook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Runbook>, ApiError> {
    check_id(&id)?;
    let team = team_of(&caller, &query)?;
    let bytes = body::bytes(
        &headers,
        request,
        MAX_RUNBOOK_BYTES,
        "(256 KiB): link to longer documents",
    )
    .await?;
    let markdown = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "a runbook must be UTF-8 text"))?;
    if markdown.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a runbook cannot be empty",
        ));
    }
    let runbook = Runbook {
        id: id.clone(),
        team,
        markdown,
        updated_at: now_ms(),
        updated_by: caller.token_id.clone(),
    };
    state.store.put_runbook(&runbook).await?;
    Ok(Json(runbook))
}

/// One of the team's runbooks. Another team's is not found, exactly like a missing one.
#[utoipa::path(get, path = "/v1/runbooks/{id}",
    params(("id" = String, Path, description = "the runbook's id", pattern = r"^[A-Za-z0-9_.:-]{1,128}$"), ("team" = Option<String>, Query, description = "admins: the owning team (required)")),
    responses((status = 200, body = Runbook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_runbook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Runbook>, ApiError> {
    check_id(&id)?;
    let team = team_of(&caller, &query)?;
    state
        .store
        .runbook(&team, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no runbook \"{id}\"")))
}

/// A change as a deploy pipeline reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    /// The service changed (its `service` label): 1-256 characters, no control character.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub service: String,
    /// `deploy`, `config` or `other`.
    pub kind: String,
    /// What changed, 1-1024 characters, not only white space.
    #[schema(
        max_length = 1024,
        pattern = r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub description: String,
    /// Where to read more, at most 1024 characters.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub link: Option<String>,
    /// When it happened (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<time::OffsetDateTime>,
}

/// Records a deploy or configuration change as the team's own: the `recent-changes`
/// collector shows it in that team's incidents only.
#[utoipa::path(post, path = "/v1/changes", request_body = NewChange,
    params(("team" = Option<String>, Query, description = "admins: the team that records it (required)")),
    responses((status = 201, body = Change), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn post_change(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    let team = team_of(&caller, &query)?;
    let new: NewChange = body::read(&headers, request).await?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    if new.service.is_empty()
        || new.service.chars().count() > 256
        || new.service.chars().any(char::is_control)
    {
        return Err(bad(
            "service: must be 1-256 characters, as its service label".into(),
        ));
    }
    if !["deploy", "config", "other"].contains(&new.kind.as_str()) {
        return Err(bad(format!(
            "kind: \"{}\" is not a kind of change: use deploy, config or other",
            new.kind
        )));
    }
    let len = new.description.trim().chars().count();
    if len == 0 || len > 1024 {
        return Err(bad(format!(
            "description: must be 1-1024 characters, got {len}"
        )));
    }
    let link = new.link.unwrap_or_default();
    if link.chars().count() > 1024 {
        return Err(bad("link: at most 1024 characters".into()));
    }
    let change = Change {
        id: uuid::Uuid::now_v7().to_string(),
        team,
        service: new.service,
        kind: new.kind,
        description: new.description,
        link,
        at: new.at.map_or_else(now_ms, millis),
        recorded_by: caller.token_id.clone(),
    };
    state.store.put_change(&change).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// The team's changes of one service (`service`, required) since `since` (RFC 3339,
/// default the last 7 days), newest first; an admin sees every team's, or one team's
/// with `team`.
#[utoipa::path(get, path = "/v1/changes",
    params(
        ("service" = String, Query, description = "the service"),
        ("since" = Option<String>, Query, description = "RFC 3339", format = DateTime),
        ("team" = Option<String>, Query, description = "admins: only this team's"),
    ),
    responses((status = 200, body = Vec<Change>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<Change>>, ApiError> {
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some((other, _)) = query
        .iter()
        .find(|(k, _)| !["service", "since", "team"].contains(&k.as_str()))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter \"{other}\": use service, since or team"),
        ));
    }
    let team = listed_team(&caller, named_team(&query))?;
    let service = value("service").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "service is required: /v1/changes?service=NAME",
        )
    })?;
    let since = match value("since") {
        Some(text) => millis(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("since: \"{text}\" is not RFC 3339"),
                    )
                })?,
        ),
        None => now_ms() - 7 * 86_400_000,
    };
    Ok(Json(
        state
            .store
            .changes(team.as_deref(), &service, since, 1_000)
            .await?,
    ))
}
