//! Deliveries and routes: dead notifications with their error and a retry button, the
//! latest deliveries, and the routes that decide where a team's incidents go.

use axum::Form;
use axum::extract::Path;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::api::segment;
use crate::page::{self, Failure, Section, badge, text};
use crate::session::Session;

/// Deliveries as a table; a dead one gets a retry button that comes back to `back`.
pub(crate) fn table(session: &Session, deliveries: &[Value], back: &str) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p { "No notifications." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Notifier" } th scope="col" { "Kind" } th scope="col" { "Action" }
                    th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" }
                    th scope="col" { "Incident" } th scope="col" { span.visually-hidden { "Retry" } }
                } }
                tbody {
                    @for delivery in deliveries {
                        @let state = text(&delivery["state"]);
                        tr {
                            td { (text(&delivery["notifier"])) }
                            td { (text(&delivery["kind"])) }
                            td { (text(&delivery["action"])) }
                            td { (badge(&state)) }
                            td { (text(&delivery["attempts"])) }
                            td { (text(&delivery["lastError"])) }
                            td { a href={ "/ui/incidents/" (segment(&text(&delivery["incidentId"]))) } { "incident" } }
                            td {
                                @if state == "dead" {
                                    form.inline method="post" action={ "/ui/deliveries/" (segment(&text(&delivery["id"]))) "/retry" } {
                                        (page::csrf(session))
                                        input type="hidden" name="back" value=(back);
                                        button type="submit" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Dead deliveries, the latest ones, and the routes.
pub(crate) async fn list(session: Session) -> Result<Markup, Failure> {
    let dead = session
        .get("/v1/notifications?state=dead&limit=200")
        .await?;
    let latest = session.get("/v1/notifications?limit=50").await?;
    let routes = session.get("/v1/routes").await?;
    let empty = Vec::new();
    let stored = routes["routes"].as_array().unwrap_or(&empty);
    let file = routes["file"].as_array().unwrap_or(&empty);
    Ok(page::shell(
        &session,
        "Deliveries",
        Section::Deliveries,
        html! {
            h1 { "Deliveries and routes" }
            section aria-labelledby="dead-h" {
                h2 #dead-h { "Dead notifications" }
                p { "A notification is dead once its notifier refused it for good or its retries ran out. Retry queues it again with a fresh retry budget." }
                (table(&session, dead["notifications"].as_array().unwrap_or(&empty), "/ui/deliveries"))
            }
            section aria-labelledby="latest-h" {
                h2 #latest-h { "Latest notifications" }
                (table(&session, latest["notifications"].as_array().unwrap_or(&empty), "/ui/deliveries"))
            }
            section aria-labelledby="routes-h" {
                h2 #routes-h { "Routes" }
                @if stored.is_empty() && file.is_empty() {
                    p { "No routes: incidents are recorded but nobody is notified." }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Team" } th scope="col" { "Service" } th scope="col" { "Page" }
                            th scope="col" { "Ticket" } th scope="col" { "Chat" } th scope="col" { "Webhooks" } th scope="col" { "From" }
                        } }
                        tbody {
                            @for (route, from) in stored.iter().map(|r| (r, "API")).chain(file.iter().map(|r| (r, "notifiers file"))) {
                                tr {
                                    td { (text(&route["team"])) }
                                    td { @if route["service"].is_null() { span.muted { "every service" } } @else { (text(&route["service"])) } }
                                    td { (text(&route["page"])) }
                                    td { (text(&route["ticket"])) }
                                    td { (text(&route["chat"])) }
                                    td { (route["webhooks"].as_array().map(|w| w.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                    td { (from) }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// The retry form.
#[derive(Deserialize)]
pub(crate) struct Retry {
    csrf: String,
    #[serde(default)]
    back: String,
}

/// Queues a dead delivery again, then goes back to the page the button was on.
pub(crate) async fn retry(
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Retry>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    session
        .send(
            Method::POST,
            &format!("/v1/notifications/{}/retry", segment(&id)),
            None,
        )
        .await?;
    // Only back to a page of ours: the field is the client's.
    let back = if form.back.starts_with("/ui/") && !form.back.starts_with("//") {
        form.back
    } else {
        "/ui/deliveries".to_owned()
    };
    Ok(Redirect::to(&back).into_response())
}
