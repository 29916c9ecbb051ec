//! The page shell (head, navigation, sign-out), the error page, the embedded assets, and
//! the small pieces every page draws: times, states, labels.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// The stylesheet, embedded.
const CSS: &str = include_str!("../assets/ui.css");
/// The one script, embedded: live refresh and the suppression preview.
const JS: &str = include_str!("../assets/ui.js");

/// Serves an embedded asset.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Incidents,
    Alerts,
    Events,
    Suppressions,
    Plugins,
    Deliveries,
}

const SECTIONS: &[(Section, &str, &str)] = &[
    (Section::Incidents, "/ui/incidents", "Incidents"),
    (Section::Alerts, "/ui/alerts", "Alerts"),
    (Section::Events, "/ui/events", "Events"),
    (Section::Suppressions, "/ui/suppressions", "Suppressions"),
    (Section::Plugins, "/ui/plugins", "Plugins"),
    (Section::Deliveries, "/ui/deliveries", "Deliveries"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tocsin" }
            link rel="stylesheet" href="/ui/assets/ui.css";
            script src="/ui/assets/ui.js" defer {}
        }
    }
}

/// What a page needs of the signed-in session.
pub(crate) trait Signed {
    /// How the header names who is signed in.
    fn name(&self) -> String;
    /// The CSRF token of the session's forms.
    fn csrf(&self) -> String;
}

/// A page for a signed-in session: navigation, who is signed in, and `body`.
pub(crate) fn shell(session: &impl Signed, title: &str, here: Section, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/ui/incidents" { "Tocsin" }
                    nav aria-label="Sections" {
                        ul {
                            @for (section, href, name) in SECTIONS {
                                li {
                                    @if *section == here {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    form.who method="post" action="/ui/logout" {
                        span { "Signed in as " strong { (session.name()) } }
                        input type="hidden" name="csrf" value=(session.csrf());
                        button.link type="submit" { "Sign out" }
                    }
                }
                main #content { (body) }
            }
        }
    }
}

/// A page without navigation (signing in, errors before a session exists).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main #content.narrow { (body) }
            }
        }
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No session, or its token was revoked: sign in again.
    SignIn,
    /// A form without this session's CSRF token.
    Csrf,
    /// The API refused, with its status and message.
    Api(StatusCode, String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::SignIn => return Redirect::to("/ui/login").into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this page: reload the page and try again."
                    .to_owned(),
            ),
            Self::Api(status, message) => (status, message),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = bare(
            title,
            html! {
                h1 { (status.as_u16()) " " (title) }
                p.error role="alert" { (message) }
                p { a href="/ui/incidents" { "Back to the incidents" } }
            },
        );
        (status, body).into_response()
    }
}

/// A JSON value as display text (`""` for null, strings without quotes).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp (RFC 3339 text) as a `<time>`, shown to the second in UTC.
pub(crate) fn when(value: &Value) -> Markup {
    let Some(raw) = value.as_str() else {
        return html! { span.muted { "—" } };
    };
    let shown = raw
        .split_once('.')
        .map_or(raw.trim_end_matches('Z'), |(head, _)| head)
        .replacen('T', " ", 1);
    html! { time datetime=(raw) { (shown) " UTC" } }
}

/// A state or priority as a badge: the word is always there, the colour only repeats it.
pub(crate) fn badge(word: &str) -> Markup {
    let class = match word {
        "open" | "high" | "unhealthy" | "dead" | "active" | "suppressed" => "badge hot",
        "resolving" | "pending" | "scheduled" | "held" | "dropped" => "badge warm",
        _ => "badge",
    };
    html! { span class=(class) { (word) } }
}

/// Labels as `key=value` chips.
pub(crate) fn labels(value: &Value) -> Markup {
    html! {
        @if let Some(map) = value.as_object() {
            ul.labels {
                @for (k, v) in map {
                    li { (k) "=" (text(v)) }
                }
            }
        }
    }
}

/// A hidden CSRF field for `session`'s forms.
pub(crate) fn csrf(session: &impl Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A one-button form posting to `action`.
pub(crate) fn button(session: &impl Signed, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(session))
            button type="submit" { (label) }
        }
    }
}

/// A problem shown inside a page (a refused form, an API error), announced to screen
/// readers.
pub(crate) fn problem(message: &str) -> Markup {
    html! { p.error role="alert" { (message) } }
}
