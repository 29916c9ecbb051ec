//! Incidents: the list (filtered, paged, newest first, refreshed live) and one incident
//! with its alerts, timeline, context, notifications, and the acknowledge and close
//! buttons.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{query, segment};
use crate::deliveries;
use crate::markdown;
use crate::page::{self, Failure, Section, badge, labels, text, when};
use crate::session::Session;

/// Rows per page of the list.
const PAGE: &str = "50";

/// The list's filters, as the form and the links carry them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    before: String,
}

impl Filters {
    fn pairs(&self) -> [(&str, &str); 5] {
        [
            ("state", &self.state),
            ("team", &self.team),
            ("service", &self.service),
            ("priority", &self.priority),
            ("before", &self.before),
        ]
    }
}

/// The incident list page.
pub(crate) async fn list(
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Markup, Failure> {
    let table = table_of(&session, &filters).await?;
    let refresh = format!("/ui/incidents/table{}", query(filters.pairs()));
    let option = |value: &str, chosen: &str, name: &str| {
        html! { option value=(value) selected[value == chosen] { (name) } }
    };
    Ok(page::shell(
        &session,
        "Incidents",
        Section::Incidents,
        html! {
            h1 { "Incidents" }
            form.filters method="get" action="/ui/incidents" {
                div {
                    label for="state" { "State" }
                    select #state name="state" {
                        (option("", &filters.state, "any"))
                        @for s in ["open", "resolving", "resolved", "closed"] { (option(s, &filters.state, s)) }
                    }
                }
                div {
                    label for="priority" { "Priority" }
                    select #priority name="priority" {
                        (option("", &filters.priority, "any"))
                        (option("high", &filters.priority, "high"))
                        (option("low", &filters.priority, "low"))
                    }
                }
                div {
                    label for="service" { "Service" }
                    input #service type="text" name="service" value=(filters.service);
                }
                @if session.admin {
                    div {
                        label for="team" { "Team" }
                        input #team type="text" name="team" value=(filters.team) placeholder="every team";
                    }
                }
                button type="submit" { "Filter" }
            }
            div #incidents data-refresh=(refresh) data-every="5000" aria-live="polite" { (table) }
        },
    ))
}

/// The list's table alone: what the page refreshes every few seconds.
pub(crate) async fn table(
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Markup, Failure> {
    table_of(&session, &filters).await
}

async fn table_of(session: &Session, filters: &Filters) -> Result<Markup, Failure> {
    let mut pairs = filters.pairs().to_vec();
    pairs.push(("limit", PAGE));
    let answer = session
        .get(&format!("/v1/incidents{}", query(pairs)))
        .await?;
    let empty = Vec::new();
    let incidents = answer["incidents"].as_array().unwrap_or(&empty);
    let next = answer["next"].as_str().map(|before| {
        let mut pairs = filters.pairs();
        pairs[4].1 = before;
        format!("/ui/incidents{}", query(pairs))
    });
    let newest = (!filters.before.is_empty()).then(|| {
        let mut pairs = filters.pairs();
        pairs[4].1 = "";
        format!("/ui/incidents{}", query(pairs))
    });
    Ok(html! {
        @if incidents.is_empty() {
            p { "No incidents match." }
        } @else {
            table {
                caption { "Newest first" }
                thead { tr {
                    th scope="col" { "Opened" }
                    th scope="col" { "Incident" }
                    th scope="col" { "State" }
                    th scope="col" { "Priority" }
                    th scope="col" { "Team" }
                    th scope="col" { "Alerts (unhealthy)" }
                    th scope="col" { "Acknowledged" }
                } }
                tbody {
                    @for incident in incidents {
                        tr {
                            td { (when(&incident["opened_at"])) }
                            td { a href={ "/ui/incidents/" (segment(&text(&incident["id"]))) } { (text(&incident["title"])) } }
                            td { (badge(&text(&incident["state"]))) }
                            td { (badge(&text(&incident["priority"]))) }
                            td { (text(&incident["team"])) }
                            td { (text(&incident["alerts"])) " (" (text(&incident["unhealthy"])) ")" }
                            td { @if incident["acked_by"].is_string() { "by " (text(&incident["acked_by"])) } @else { "no" } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if let Some(newest) = newest { a href=(newest) { "Newest" } }
            @if let Some(next) = next { a href=(next) { "Older" } }
        }
    })
}

/// One incident.
pub(crate) async fn detail(session: Session, Path(id): Path<String>) -> Result<Markup, Failure> {
    let path = format!("/v1/incidents/{}", segment(&id));
    let incident = session.get(&path).await?;
    let notifications = session
        .get(&format!(
            "/v1/notifications{}",
            query([("incident", id.as_str()), ("limit", "200")])
        ))
        .await?;
    let back = format!("/ui/incidents/{}", segment(&id));
    let state = text(&incident["state"]);
    let empty = Vec::new();
    let alerts = incident["alert_list"].as_array().unwrap_or(&empty);
    let timeline = incident["timeline"].as_array().unwrap_or(&empty);
    let context = incident["context"].as_array().unwrap_or(&empty);
    let deliveries = notifications["notifications"].as_array().unwrap_or(&empty);
    Ok(page::shell(
        &session,
        &text(&incident["title"]),
        Section::Incidents,
        html! {
            h1 { (text(&incident["title"])) }
            p.status {
                (badge(&state)) " " (badge(&text(&incident["priority"])))
                " team " strong { (text(&incident["team"])) }
            }
            div.actions {
                @if incident["acked_at"].is_null() && state != "closed" {
                    (page::button(&session, &format!("{back}/ack"), "Acknowledge"))
                }
                @if state != "closed" {
                    (page::button(&session, &format!("{back}/close"), "Close"))
                }
            }
            dl.facts {
                dt { "Grouping key" } dd { code { (text(&incident["key"])) } }
                dt { "Opened" } dd { (when(&incident["opened_at"])) }
                dt { "Updated" } dd { (when(&incident["updated_at"])) }
                @if !incident["resolves_at"].is_null() { dt { "Resolves at" } dd { (when(&incident["resolves_at"])) } }
                @if !incident["resolved_at"].is_null() { dt { "Resolved" } dd { (when(&incident["resolved_at"])) } }
                @if !incident["acked_at"].is_null() {
                    dt { "Acknowledged" } dd { (when(&incident["acked_at"])) " by " (text(&incident["acked_by"])) }
                }
                @if !incident["closed_at"].is_null() {
                    dt { "Closed" } dd { (when(&incident["closed_at"])) " by " (text(&incident["closed_by"])) }
                }
                dt { "Trace id" } dd { code { (text(&incident["trace_id"])) } }
            }
            section aria-labelledby="alerts-h" {
                h2 #alerts-h { "Alerts" }
                table {
                    thead { tr {
                        th scope="col" { "Monitor" } th scope="col" { "Labels" } th scope="col" { "Status" }
                        th scope="col" { "Updated" } th scope="col" { "Latest message" }
                    } }
                    tbody {
                        @for alert in alerts {
                            tr {
                                td { a href={ "/ui/events?fingerprint=" (text(&alert["fingerprint"])) } { (text(&alert["monitor"])) } }
                                td { (labels(&alert["labels"])) }
                                td { (badge(&text(&alert["status"]))) " " (badge(&text(&alert["priority"]))) }
                                td { (when(&alert["updated_at"])) }
                                td { pre.message { (text(&alert["message"])) } }
                            }
                        }
                    }
                }
            }
            @if !context.is_empty() {
                section aria-labelledby="context-h" {
                    h2 #context-h { "Context" }
                    @for section in context {
                        article.context {
                            h3 { (text(&section["title"])) }
                            @if !text(&section["error"]).is_empty() {
                                (page::problem(&text(&section["error"])))
                            }
                            div.markdown { (markdown::render(&text(&section["markdown"]))) }
                        }
                    }
                }
            }
            section aria-labelledby="notifications-h" {
                h2 #notifications-h { "Notifications" }
                (deliveries::table(&session, deliveries, &back))
            }
            section aria-labelledby="timeline-h" {
                h2 #timeline-h { "Timeline" }
                ol.timeline {
                    @for entry in timeline {
                        li { (when(&entry["at"])) " " strong { (text(&entry["kind"])) } " " (text(&entry["detail"])) }
                    }
                }
            }
        },
    ))
}

/// An action's form: its CSRF token.
#[derive(Deserialize)]
pub(crate) struct Act {
    csrf: String,
}

/// Acknowledges or closes an incident, then shows it again.
pub(crate) async fn act(
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Act>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    if !matches!(action.as_str(), "ack" | "close") {
        return Err(Failure::Api(
            axum::http::StatusCode::NOT_FOUND,
            format!(
                "no action \"{action}\": an incident can be acknowledged (ack) or closed (close)"
            ),
        ));
    }
    let id = segment(&id);
    session
        .send(Method::POST, &format!("/v1/incidents/{id}/{action}"), None)
        .await?;
    Ok(Redirect::to(&format!("/ui/incidents/{id}")).into_response())
}
