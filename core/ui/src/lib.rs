//! Tocsin's web UI (`docs/ui.md`): pages for the people on call, served by `tocsin serve`
//! at `/`. It is a client of the HTTP API, not a second way into the store: every page
//! calls the API's own router in-process with the signed-in token, so a page shows and
//! changes exactly what that token may through the API, and no more.
//!
//! ```text
//! lib           app(): the pages' routes, their security headers, the API behind them
//! session       signing in: the token in an HttpOnly SameSite=Strict cookie, CSRF tokens
//! api           in-process calls into the API router, answers as JSON
//! page          the page shell, navigation and the small pieces every page uses
//! markdown      runbooks and collector sections: Markdown rendered, then sanitised
//! incidents, alerts, suppressions, plugins, deliveries     one module per page family
//! ```
//!
//! Server-rendered with maud (escaping by default, checked at compile time); one
//! stylesheet and one small script, both embedded in the binary. The script only
//! enhances: live refresh of the incident list and the live preview of a suppression
//! draft. Every page works without it.

mod alerts;
mod api;
mod deliveries;
mod incidents;
mod markdown;
mod page;
mod plugins;
mod session;
mod suppressions;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::Ui;

/// The UI's routes in front of `api`: `/` and `/ui/…` are pages, anything else goes to
/// the API unchanged.
pub fn app(api: Router) -> Router {
    let ui = Ui { api: api.clone() };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/incidents") }))
        .route("/ui", get(|| async { Redirect::to("/ui/incidents") }))
        .route("/ui/login", get(session::form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/{file}", get(page::asset))
        .route("/ui/incidents", get(incidents::list))
        .route("/ui/incidents/table", get(incidents::table))
        .route("/ui/incidents/{id}", get(incidents::detail))
        .route("/ui/incidents/{id}/{action}", post(incidents::act))
        .route("/ui/alerts", get(alerts::list))
        .route("/ui/events", get(alerts::events))
        .route(
            "/ui/suppressions",
            get(suppressions::list).post(suppressions::create),
        )
        .route("/ui/suppressions/new", get(suppressions::new))
        .route("/ui/suppressions/preview", post(suppressions::preview))
        .route("/ui/suppressions/{id}", get(suppressions::detail))
        .route("/ui/suppressions/{id}/edit", post(suppressions::edit))
        .route("/ui/suppressions/{id}/end", post(suppressions::end))
        .route(
            "/ui/plugins",
            get(plugins::list)
                .post(plugins::upload)
                .layer(DefaultBodyLimit::max(plugins::MAX_UPLOAD)),
        )
        .route("/ui/plugins/{name}", get(plugins::detail))
        .route("/ui/plugins/{name}/test", post(plugins::test))
        .route("/ui/plugins/{name}/rollback", post(plugins::rollback))
        .route("/ui/deliveries", get(deliveries::list))
        .route("/ui/deliveries/{id}/retry", post(deliveries::retry))
        .with_state(ui)
        .layer(axum::middleware::from_fn(guard))
        .fallback_service(api)
}

/// The Content-Security-Policy of every page: scripts, styles and images from Tocsin
/// itself only; no inline script or style, no plugin, no framing, forms post home.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Refuses cross-site form posts (a second line behind the CSRF token and the
/// SameSite cookie) and sets the security headers of every page.
async fn guard(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && cross_site(&request) {
        return (
            StatusCode::FORBIDDEN,
            "cross-site form posts are refused: submit the form from Tocsin's own pages",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages carry a team's data: never kept by a shared cache or the back button.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site`
/// where the browser sends it, else an `Origin` whose host is not ours.
fn cross_site(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split("://").nth(1).unwrap_or_default();
    origin == "null" || origin_host != host
}
