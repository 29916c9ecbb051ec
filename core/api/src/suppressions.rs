//! `/v1/suppressions`: maintenance windows and other planned silences, with their
//! guards, a preview, the record of what each suppressed, and an audit trail.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body;
use crate::caller::{listed_team, named_team};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::clock::now_ms;
use tocsin_model::suppression::lifecycle::{
    self, Change, NewSuppression, Retime, SuppressionError,
};
use tocsin_model::suppression::{Draft, Matcher, check_share};
use tocsin_model::team::Caller;
use tocsin_model::views::{AuditEntry, HistoryEntry, HistoryQuery, SuppressionRecord};
use tocsin_store::{AlertQuery, AlertState};

/// Alerts read per page when a draft is checked against every known alert.
const SCAN_PAGE: u32 = 10_000;
/// Matched alerts a preview lists.
const PREVIEW_ALERTS: usize = 100;

/// Query of `POST /v1/suppressions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateParams {
    /// Admins only: create it even if it matches more than the policy share.
    #[serde(default)]
    force: bool,
    /// The team whose alerts it stops: a team token's own (the default for it); an admin
    /// names any team, or leaves it out to stop every team's alerts.
    #[serde(default)]
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    team: Option<String>,
}

/// Query of `POST /v1/suppressions/preview`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PreviewParams {
    /// As for `POST /v1/suppressions`: whose alerts the draft would stop.
    #[serde(default)]
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    team: Option<String>,
}

/// What a draft would match.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// Known alerts it matches, of the team it would stop alerts of.
    pub matched: usize,
    /// Known alerts of that team (of every team for an admin's suppression of all).
    pub known: usize,
    /// Whether the share guard would refuse it (an admin can force it).
    pub refused: bool,
    /// Why, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The first matched alerts.
    pub alerts: Vec<AlertState>,
}

/// Suppressions the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    /// Newest first.
    pub suppressions: Vec<SuppressionRecord>,
}

/// A suppression with its audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionDetail {
    /// The suppression.
    #[serde(flatten)]
    pub suppression: SuppressionRecord,
    /// Every change, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// Events a suppression stopped.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suppressed {
    /// Oldest first.
    pub events: Vec<HistoryEntry>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Counts the known alerts of `team` (of every team when `None`) a matcher matches, and
/// keeps the first few: the guard and the preview see only the alerts the suppression
/// could stop, so they disclose nothing of other teams.
async fn scan(
    state: &AppState,
    caller: &Caller,
    team: Option<&str>,
    matcher: &Matcher,
) -> Result<(usize, usize, Vec<AlertState>), ApiError> {
    let mut query = AlertQuery {
        team: team.map(str::to_owned),
        limit: SCAN_PAGE,
        ..AlertQuery::default()
    };
    let (mut known, mut matched, mut first) = (0, 0, Vec::new());
    loop {
        let page = state.store.alerts(&query).await?;
        known += page.len();
        let full = page.len() == SCAN_PAGE as usize;
        query.after = page.last().map(|a| (a.team.clone(), a.fingerprint.clone()));
        for alert in page {
            // Flap detection's own alerts are not part of the fleet.
            if alert
                .labels
                .get(tocsin_model::event::FLAPPING_LABEL)
                .is_some()
            {
                known -= 1;
                continue;
            }
            let labels = alert
                .labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            if matcher.matches(&alert.monitor, &labels) {
                matched += 1;
                if first.len() < PREVIEW_ALERTS && caller.may_act_for(&alert.team) {
                    first.push(alert);
                }
            }
        }
        if !full {
            return Ok((matched, known, first));
        }
    }
}

/// A query string that does not read as the parameters: a 400 in the API's error shape
/// (axum's own rejection is plain text).
fn query_rejected(rejection: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// Shows which known alerts a draft matches, and whether the guards accept it.
#[utoipa::path(post, path = "/v1/suppressions/preview", params(PreviewParams),
    request_body(content((Draft = "application/json"), (Draft = "application/yaml"))),
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<PreviewParams>, QueryRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Preview>, ApiError> {
    let Query(params) = params.map_err(query_rejected)?;
    let team = listed_team(&caller, params.team.as_deref())?;
    let draft: Draft = body::read(&headers, request).await?;
    let matcher = draft
        .validate(&state.policy)
        .map_err(SuppressionError::Invalid)?;
    let (matched, known, alerts) = scan(&state, &caller, team.as_deref(), &matcher).await?;
    let reason = check_share(matched, known, &state.policy).err();
    Ok(Json(Preview {
        matched,
        known,
        refused: reason.is_some(),
        reason,
        alerts,
    }))
}

/// Creates a suppression. Refused with a 400 when it breaks a rule or would match more
/// than the policy share of known alerts (an admin may pass `force=true`).
#[utoipa::path(post, path = "/v1/suppressions", params(CreateParams),
    request_body(content((Draft = "application/json"), (Draft = "application/yaml"))),
    responses((status = 201, body = SuppressionRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<CreateParams>, QueryRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<SuppressionRecord>), ApiError> {
    // Whose alerts it stops follows the listing rule: an admin who names no team stops
    // every team's.
    let Query(params) = params.map_err(query_rejected)?;
    let team = listed_team(&caller, params.team.as_deref())?;
    let draft: Draft = body::read(&headers, request).await?;
    let record = create_record(&state, &caller, team, draft, params.force).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Checks a draft against every rule and guard, and stores it as `team`'s (every team's
/// when `None`, which the caller has checked is an admin's act): what `POST
/// /v1/suppressions` and the Alertmanager silences API both do.
pub(crate) async fn create_record(
    state: &AppState,
    caller: &Caller,
    team: Option<String>,
    draft: Draft,
    force: bool,
) -> Result<SuppressionRecord, ApiError> {
    let new = NewSuppression::check(draft, team, caller, force, &state.policy)?;
    let (matched, known, _) = scan(state, caller, new.team(), new.matcher()).await?;
    let now = now_ms();
    let record = new.admit(matched, known, uuid::Uuid::now_v7().to_string(), now)?;
    state.store.create_suppression(&record, now).await?;
    state.wake.rules();
    tracing::info!(suppression = %record.id, matched, known, "suppression created");
    Ok(record)
}

/// Lists suppressions: a team's own and admins' suppressions of every team that stopped
/// its alerts, or all for an admin (or what one team sees, `?team=`).
#[utoipa::path(get, path = "/v1/suppressions",
    params(("team" = Option<String>, Query, description = "admins: what this team sees; a team token may name only its own")),
    responses((status = 200, body = SuppressionList), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<SuppressionList>, ApiError> {
    let named = named_team(&query);
    let team = listed_team(&caller, named)?;
    let suppressions = state
        .store
        .suppressions(None, team.as_deref(), now_ms())
        .await?;
    Ok(Json(SuppressionList { suppressions }))
}

pub(crate) async fn find(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<SuppressionRecord, ApiError> {
    let team = caller.scope();
    state
        .store
        .suppressions(Some(id), team, now_ms())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no suppression {id} for this token"),
            )
        })
}

/// One suppression with its audit trail: a team sees its own, and an admin's suppression
/// of every team once it stopped one of the team's alerts.
#[utoipa::path(get, path = "/v1/suppressions/{id}",
    params(("id" = String, Path, description = "the suppression's id")), responses((status = 200, body = SuppressionDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SuppressionDetail>, ApiError> {
    let suppression = find(&state, &caller, &id).await?;
    let audit = state.store.audit_trail(&id).await?;
    Ok(Json(SuppressionDetail { suppression, audit }))
}

/// Moves a suppression's start or end (the other rules are checked again).
#[utoipa::path(patch, path = "/v1/suppressions/{id}",
    params(("id" = String, Path, description = "the suppression's id")), request_body = Retime,
    responses((status = 200, body = SuppressionRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<SuppressionRecord>, ApiError> {
    let retime: Retime = body::read(&headers, request).await?;
    let record = find(&state, &caller, &id).await?;
    Ok(Json(retime_record(&state, &caller, record, retime).await?))
}

/// Moves a suppression's start or end, checks the rules again, and audits the change.
pub(crate) async fn retime_record(
    state: &AppState,
    caller: &Caller,
    record: SuppressionRecord,
    retime: Retime,
) -> Result<SuppressionRecord, ApiError> {
    let now = now_ms();
    let change = lifecycle::retime(&record, caller, &retime, &state.policy, now)?;
    store_change(state, caller, change, now).await
}

/// Ends a suppression now (its record and what it suppressed stay).
#[utoipa::path(delete, path = "/v1/suppressions/{id}",
    params(("id" = String, Path, description = "the suppression's id")), responses((status = 200, body = SuppressionRecord), (status = 404, body = ErrorBody)))]
pub(crate) async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SuppressionRecord>, ApiError> {
    let record = find(&state, &caller, &id).await?;
    Ok(Json(end_record(&state, &caller, record).await?))
}

/// Ends a suppression now, and audits it; one that has ended already stays as it is.
pub(crate) async fn end_record(
    state: &AppState,
    caller: &Caller,
    record: SuppressionRecord,
) -> Result<SuppressionRecord, ApiError> {
    let now = now_ms();
    match lifecycle::end(&record, caller, now)? {
        Some(change) => store_change(state, caller, change, now).await,
        None => Ok(record),
    }
}

/// Stores a retimed or ended suppression with its audit entry, and tells the pipeline.
async fn store_change(
    state: &AppState,
    caller: &Caller,
    change: Change,
    now: i64,
) -> Result<SuppressionRecord, ApiError> {
    state
        .store
        .retime_suppression(
            &change.record.id,
            change.start,
            change.end,
            &caller.token_id,
            change.action,
            &change.detail,
            now,
        )
        .await?;
    state.wake.rules();
    Ok(change.record)
}

/// Every event a suppression stopped, oldest first.
#[utoipa::path(get, path = "/v1/suppressions/{id}/suppressed",
    params(("id" = String, Path, description = "the suppression's id"), ("after" = Option<String>, Query, description = "the `next` cursor"), ("limit" = Option<u32>, Query, description = "1-10000, default 1000", minimum = 1, maximum = 10000)),
    responses((status = 200, body = Suppressed), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub(crate) async fn suppressed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Suppressed>, ApiError> {
    find(&state, &caller, &id).await?;
    // An admin's suppression may stop every team's alerts; a team sees only its own.
    let mut query = HistoryQuery {
        suppression_id: Some(id),
        team: caller.scope().map(str::to_owned),
        limit: 1_000,
        ..HistoryQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "limit" => query.limit = body::limit(&value, 10_000)?,
            "after" => query.after = Some(crate::history::cursor(&value)?),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter \"{other}\": use after or limit"),
                ));
            }
        }
    }
    let events = state.store.history(&query).await?;
    let next = crate::history::next(&events, query.limit);
    Ok(Json(Suppressed { events, next }))
}
