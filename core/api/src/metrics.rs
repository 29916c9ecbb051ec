//! `GET /metrics`: the exporter's text with the gauges read at scrape time, on the API's
//! address (admins) or an address of its own; and the HTTP layer that counts requests by
//! route template.
//!
//! Labels never grow with the data: teams, sources, notifiers, plugins, suppressions,
//! reasons, route templates; never a fingerprint, an event or an incident id.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use crate::exporter::{Exporter, ExporterError};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use tocsin_model::team::Caller;

/// Tocsin's own metrics in the Prometheus text format, on the API's address for admin
/// tokens only (the labels name every team). An operator who would rather scrape
/// without a token serves them on an address of their own (`tocsin serve
/// --metrics-listen`).
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "the metrics", body = String, content_type = "text/plain"),
    (status = 403, description = "not an admin token", body = ErrorBody),
    (status = 404, description = "this process exports no metrics", body = ErrorBody)))]
pub(crate) async fn get(State(state): State<AppState>, caller: Caller) -> Response {
    if !caller.admin {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the metrics name every team: scrape them with an admin token, or on --metrics-listen",
        )
        .into_response();
    }
    scrape(&state).await
}

/// The metrics as text, with the gauges read at scrape time refreshed first.
pub async fn scrape(state: &AppState) -> Response {
    let Some(exporter) = &state.metrics else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "this process exports no metrics (a Lambda function reports through CloudWatch)",
        )
        .into_response();
    };
    state.watch.sample();
    match state.store.health().await {
        Ok(health) => {
            metrics::gauge!("tocsin_outbox_pending").set(health.pending as f64);
            metrics::gauge!("tocsin_outbox_oldest_pending_age_seconds")
                .set(health.oldest_pending_age_ms as f64 / 1000.0);
            metrics::gauge!("tocsin_outbox_dead").set(health.dead as f64);
            metrics::gauge!("tocsin_outbox_notices_pending").set(health.notices as f64);
            for (file, bytes) in &health.database_bytes {
                metrics::gauge!("tocsin_store_database_bytes", "file" => file.clone())
                    .set(*bytes as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox and store gauges"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.render(),
    )
        .into_response()
}

/// Counts every request by method, route template and status, and times it.
pub(crate) async fn layer(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tocsin_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tocsin_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serves `/metrics` alone, without a token, on an address of its own (`tocsin serve
/// --metrics-listen`): whoever reaches that address reads every team's counts, so bind
/// it where only Prometheus does.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move { scrape(&state).await }),
        )
        .with_state(state);
    axum::serve(listener, router).await
}
