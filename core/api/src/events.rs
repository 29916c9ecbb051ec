//! `POST /v1/events`: the documented way in.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use tracing::Instrument as _;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, AppendError};
use crate::trace::Trace;
use tocsin_ingest::{Batch, BodyError, Format, MAX_BODY_BYTES, Rejected};
use tocsin_model::event::Event;
use tocsin_model::team::Caller;

/// Bodies above this size are parsed on a blocking thread so that they never stall the
/// small requests sharing the async workers.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

/// What the sender learns about its batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// How many events were accepted (and are now durable).
    pub accepted: usize,
    /// Why each refused item was refused.
    pub rejected: Vec<Rejected>,
    /// For each item in request order, its event id, or `null` when it was refused.
    pub ids: Vec<Option<String>>,
}

/// One event, or a list of them (schema only).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EventsBody {
    One(Box<Event>),
    Many(Vec<Event>),
}

/// Accepts events. Valid items are accepted even when others are refused; the answer
/// comes only once the accepted ones are committed.
#[utoipa::path(
    post,
    path = "/v1/events",
    request_body(content((EventsBody = "application/json"), (EventsBody = "application/yaml"))),
    responses(
        (status = 202, description = "accepted and durable", body = Receipt),
        (status = 400, description = "malformed, or no item valid", body = ErrorBody),
        (status = 401, description = "missing or invalid token", body = ErrorBody),
        (status = 413, description = "over 10 MiB or 10,000 items", body = ErrorBody),
        (status = 415, description = "neither JSON nor YAML", body = ErrorBody),
    )
)]
pub(crate) async fn post(
    State(state): State<AppState>,
    caller: Caller,
    trace: Trace,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type \"{content_type}\": send application/json or application/yaml"
            ),
        )
    })?;
    // Before the body is read: a refused request costs the server nothing.
    busy(&state, "api")?;
    let body = read_body(&headers, body).await?;
    let large = body.len() > INLINE_PARSE_BYTES;
    let parse = move || tocsin_ingest::read(&body, format, &caller, "api");
    let batch = if large {
        tokio::task::spawn_blocking(parse)
            .await
            .map_err(|e| ApiError::internal(&e))?
    } else {
        parse()
    }
    .map_err(|e| match e {
        BodyError::TooManyItems(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        BodyError::Malformed(_) | BodyError::WrongShape(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
        }
    })?;
    if batch.accepted.is_empty() {
        rejected(&batch, "invalid", batch.rejected.len());
        return Err(ApiError::rejected(
            "no valid event in the request; nothing was accepted",
            batch.rejected,
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(commit(&state, batch, &trace).await?),
    ))
}

/// Appends a batch's accepted events to the journal, each with the request's trace id,
/// and answers with its receipt once they are durable. Every way in (the API, adapters,
/// transformer plugins) ends here, so this is where an event asking for a channel or
/// ticket queue its team may not reach is refused (a 400 when nothing is left).
pub(crate) async fn commit(
    state: &AppState,
    mut batch: Batch,
    trace: &Trace,
) -> Result<Receipt, ApiError> {
    let source = batch.source;
    let invalid = batch.rejected.len();
    batch.refuse(|item| state.notifiers.check_event(&item.team, &item.event));
    rejected(&batch, "invalid", invalid);
    rejected(&batch, "refused", batch.rejected.len() - invalid);
    if batch.accepted.is_empty() && !batch.rejected.is_empty() {
        return Err(ApiError::rejected(
            "no valid event in the request; nothing was accepted",
            batch.rejected,
        ));
    }
    let accepted = batch.accepted.len();
    let mut teams: Vec<(String, u64)> = Vec::new();
    for item in &batch.accepted {
        match teams.iter_mut().find(|(team, _)| *team == item.team) {
            Some((_, n)) => *n += 1,
            None => teams.push((item.team.clone(), 1)),
        }
    }
    let team_label = batch.caller_team.clone();
    let records = batch
        .accepted
        .into_iter()
        .map(|event| event.into_record(Some(&trace.0)))
        .collect();
    let appended = state
        .append
        .append(records)
        .instrument(tracing::info_span!("journal.append", events = accepted))
        .await;
    if let Err(e) = appended {
        return Err(match e {
            AppendError::Busy(busy) => {
                rejected_as(source, &team_label, "busy", accepted);
                metrics::counter!("tocsin_ingest_busy_total", "source" => source).increment(1);
                ApiError::busy(busy)
            }
            AppendError::Failed => {
                rejected_as(source, &team_label, "failed", accepted);
                ApiError::internal(&e)
            }
            AppendError::Outage(outage) => {
                rejected_as(source, &team_label, outage.reason(), accepted);
                ApiError::outage(outage)
            }
        });
    }
    for (team, n) in teams {
        metrics::counter!("tocsin_events_accepted_total", "source" => source, "team" => team)
            .increment(n);
    }
    let ids = batch
        .ids
        .into_iter()
        .map(|id| id.map(|id| id.to_string()))
        .collect();
    Ok(Receipt {
        accepted,
        rejected: batch.rejected,
        ids,
    })
}

/// Refuses ingest with a `503` before the body is read while the pipeline is behind its
/// bound (the append checks again, strictly, with the request's events).
/// Its events are not read, so only the request is counted.
fn busy(state: &AppState, source: &'static str) -> Result<(), ApiError> {
    match state.watch.busy() {
        None => Ok(()),
        Some(busy) => {
            metrics::counter!("tocsin_ingest_busy_total", "source" => source).increment(1);
            Err(ApiError::busy(busy))
        }
    }
}

/// Counts `n` refused events of `batch`.
pub(crate) fn rejected(batch: &Batch, reason: &'static str, n: usize) {
    rejected_as(batch.source, &batch.caller_team, reason, n);
}

fn rejected_as(source: &'static str, team: &str, reason: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("tocsin_events_rejected_total", "source" => source, "team" => team.to_owned(), "reason" => reason)
            .increment(n as u64);
    }
}

/// Reads at most [`MAX_BODY_BYTES`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    crate::body::bytes(headers, body, MAX_BODY_BYTES, "(10 MiB): split the batch").await
}
