//! Alerts (the current state of every identity, filtered by labels) and events (the
//! history: for any event, whether it passed, and if not why it stopped: dropped and
//! why, held, suppressed and by which suppression, dropped by a plugin).

use axum::extract::Query;
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{query, segment};
use crate::page::{self, Failure, Section, badge, labels, text, when};
use crate::session::Session;

/// The alert list's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AlertFilters {
    /// `key:value` pairs, separated by commas or spaces; all must match.
    #[serde(default)]
    labels: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    monitor: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    after: String,
}

/// The alert list.
pub(crate) async fn list(
    session: Session,
    Query(filters): Query<AlertFilters>,
) -> Result<Markup, Failure> {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("status", &filters.status),
        ("monitor", &filters.monitor),
        ("team", &filters.team),
        ("after", &filters.after),
        ("limit", "200"),
    ];
    for label in filters
        .labels
        .split([',', ' '])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        pairs.push(("label", label));
    }
    let page_of = session.get(&format!("/v1/alerts{}", query(pairs))).await;
    // A malformed filter is the user's to fix: show the API's message on the page.
    let (alerts, next, problem) = match page_of {
        Ok(answer) => (
            answer["alerts"].as_array().cloned().unwrap_or_default(),
            answer["next"].as_str().map(str::to_owned),
            None,
        ),
        Err(Failure::Api(status, message)) if status.as_u16() == 400 => {
            (Vec::new(), None, Some(message))
        }
        Err(other) => return Err(other),
    };
    let next = next.map(|after| {
        format!(
            "/ui/alerts{}",
            query([
                ("labels", filters.labels.as_str()),
                ("status", &filters.status),
                ("monitor", &filters.monitor),
                ("team", &filters.team),
                ("after", &after),
            ])
        )
    });
    Ok(page::shell(
        &session,
        "Alerts",
        Section::Alerts,
        html! {
            h1 { "Alerts" }
            p { "The current state of every alert identity (a monitor and its labels)." }
            form.filters method="get" action="/ui/alerts" {
                div {
                    label for="labels" { "Labels" }
                    input #labels type="text" name="labels" value=(filters.labels) placeholder="service:bender region:eu-west-1a";
                }
                div {
                    label for="monitor" { "Monitor" }
                    input #monitor type="text" name="monitor" value=(filters.monitor);
                }
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" selected[filters.status.is_empty()] { "any" }
                        option value="unhealthy" selected[filters.status == "unhealthy"] { "unhealthy" }
                        option value="healthy" selected[filters.status == "healthy"] { "healthy" }
                    }
                }
                @if session.admin {
                    div {
                        label for="team" { "Team" }
                        input #team type="text" name="team" value=(filters.team) placeholder="every team";
                    }
                }
                button type="submit" { "Filter" }
            }
            @if let Some(problem) = problem { (page::problem(&problem)) }
            @if alerts.is_empty() {
                p { "No alerts match." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Monitor" } th scope="col" { "Labels" } th scope="col" { "Status" }
                        th scope="col" { "Since" } th scope="col" { "Last seen" } th scope="col" { "Runs" } th scope="col" { "Team" }
                    } }
                    tbody {
                        @for alert in &alerts {
                            tr {
                                td { a href={ "/ui/events?fingerprint=" (segment(&text(&alert["fingerprint"]))) } { (text(&alert["monitor"])) } }
                                td { (labels(&alert["labels"])) }
                                td { (badge(&text(&alert["status"]))) }
                                td { (when(&alert["since"])) }
                                td { (when(&alert["last_seen"])) }
                                td { (text(&alert["count"])) }
                                td { (text(&alert["team"])) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next { nav.pager aria-label="Pages" { a href=(next) { "Next" } } }
        },
    ))
}

/// The event history's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventFilters {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    suppression: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    after: String,
}

fn event_pairs<'a>(filters: &'a EventFilters, after: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("outcome", &filters.outcome),
        ("fingerprint", &filters.fingerprint),
        ("suppression", &filters.suppression),
        ("team", &filters.team),
        ("after", after),
    ]
}

/// The event history, with why each event stopped.
pub(crate) async fn events(
    session: Session,
    Query(filters): Query<EventFilters>,
) -> Result<Markup, Failure> {
    let mut pairs = event_pairs(&filters, &filters.after).to_vec();
    pairs.push(("limit", "200"));
    let answer = session.get(&format!("/v1/history{}", query(pairs))).await?;
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    let next = answer["next"]
        .as_str()
        .map(|after| format!("/ui/events{}", query(event_pairs(&filters, after))));
    let drops = answer["drops"].as_object().cloned().unwrap_or_default();
    Ok(page::shell(
        &session,
        "Events",
        Section::Events,
        html! {
            h1 { "Events" }
            p { "Every event that changed something or stopped on its way, oldest first, with why. Steady repeats (an unchanged status) only refresh their alert and are counted below." }
            form.filters method="get" action="/ui/events" {
                div {
                    label for="outcome" { "Outcome" }
                    select #outcome name="outcome" {
                        option value="" selected[filters.outcome.is_empty()] { "any" }
                        @for o in ["passed", "dropped", "held", "suppressed"] {
                            option value=(o) selected[filters.outcome == o] { (o) }
                        }
                    }
                }
                div {
                    label for="fingerprint" { "Alert (fingerprint)" }
                    input #fingerprint type="text" name="fingerprint" value=(filters.fingerprint);
                }
                div {
                    label for="suppression" { "Suppression id" }
                    input #suppression type="text" name="suppression" value=(filters.suppression);
                }
                @if session.admin {
                    div {
                        label for="team" { "Team" }
                        input #team type="text" name="team" value=(filters.team) placeholder="every team";
                    }
                }
                button type="submit" { "Filter" }
            }
            @if !drops.is_empty() {
                h2 { "Dropped, by reason" }
                dl.facts {
                    @for (reason, count) in &drops { dt { (reason) } dd { (text(count)) } }
                }
            }
            @if events.is_empty() {
                p { "No events match." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Received" } th scope="col" { "Monitor" } th scope="col" { "Labels" }
                        th scope="col" { "Status" } th scope="col" { "Outcome" } th scope="col" { "Why" } th scope="col" { "Incident" }
                    } }
                    tbody {
                        @for event in &events {
                            tr {
                                td { (when(&event["received_at"])) }
                                td { (text(&event["monitor"])) }
                                td { (labels(&event["labels"])) }
                                td { (badge(&text(&event["status"]))) }
                                td { (badge(&text(&event["outcome"]))) }
                                td {
                                    (text(&event["reason"]))
                                    @if let Some(id) = event["suppression_id"].as_str() {
                                        " by " a href={ "/ui/suppressions/" (segment(id)) } { "suppression " (id) }
                                    }
                                }
                                td {
                                    @if let Some(id) = event["incident_id"].as_str() {
                                        a href={ "/ui/incidents/" (segment(id)) } { "incident" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next { nav.pager aria-label="Pages" { a href=(next) { "Next" } } }
        },
    ))
}
