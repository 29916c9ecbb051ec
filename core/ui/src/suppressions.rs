//! Suppressions: the list (active, scheduled, ended), the form in the blueprint's shape
//! with a live preview of what the draft matches and the guards' verdict, and one
//! suppression with its edit form, "end now", what it suppressed and its audit trail.

use axum::Form;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::{query, segment};
use crate::page::{self, Failure, Section, badge, labels, text, when};
use crate::session::Session;

/// The form, as posted (and as shown again when it is refused).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DraftForm {
    #[serde(default)]
    csrf: String,
    /// Admins: the team whose alerts it stops; empty for every team's.
    #[serde(default)]
    team: String,
    #[serde(default)]
    description: String,
    /// Empty for now.
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    /// A duration from the start (`2h`, `90m`), when `end` is empty.
    #[serde(default, rename = "for")]
    lasting: String,
    /// `key=value` lines.
    #[serde(default)]
    metadata: String,
    /// One target per line: `key=value` pairs separated by commas.
    #[serde(default)]
    targets: String,
    /// Admins: create it even if it matches more than the policy share.
    #[serde(default)]
    force: String,
}

/// A time as the form takes it: RFC 3339, or `YYYY-MM-DDTHH:MM` (or with a space) in UTC.
fn parse_time(field: &str, raw: &str) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(&raw.replacen(' ', "T", 1), &format)
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|_| {
            format!("{field}: \"{raw}\" is not a time: write 2026-02-14T07:00:00Z, or 2026-02-14 07:00 for UTC")
        })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `key=value` pairs separated by `separator`, as a JSON object.
fn pairs(field: &str, line: &str, separator: char) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for pair in line
        .split(separator)
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("{field}: \"{pair}\" is not key=value"));
        };
        map.insert(
            key.trim().to_owned(),
            Value::String(value.trim().to_owned()),
        );
    }
    Ok(map)
}

impl DraftForm {
    /// The draft as the API takes it, or what is wrong with the form itself (the API
    /// checks the rest: targets, regexes, duration, share).
    fn draft(&self) -> Result<Value, String> {
        let too_long = || format!("for: {} would end after the year 9999", self.lasting.trim());
        let start = if self.start.trim().is_empty() {
            OffsetDateTime::now_utc()
                .replace_millisecond(0)
                .unwrap_or_else(|_| OffsetDateTime::now_utc())
        } else {
            parse_time("start", &self.start)?
        };
        let end = match (self.end.trim(), self.lasting.trim()) {
            ("", "") => return Err("give an end time, or a duration such as 2h".to_owned()),
            ("", lasting) => {
                let d = tocsin_model::event::parse_duration(lasting)
                    .map_err(|e| format!("for: {e}"))?;
                start
                    .checked_add(time::Duration::try_from(d).map_err(|_| too_long())?)
                    .ok_or_else(too_long)?
            }
            (end, _) => parse_time("end", end)?,
        };
        let metadata = self
            .metadata
            .lines()
            .map(|line| pairs("metadata", line, '\n'))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Map<_, _>>();
        let targets = self
            .targets
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| pairs("targets", line, ',').map(Value::Object))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({
            "description": self.description.trim(),
            "startTime": rfc3339(start),
            "endTime": rfc3339(end),
            "metadata": metadata,
            "targets": targets,
        }))
    }

    fn forced(&self) -> bool {
        self.force == "on"
    }
}

/// A refusal from the API as the page says it ("Refused: …", once).
fn refused(message: &str) -> String {
    format!(
        "Refused: {}",
        message.strip_prefix("refused: ").unwrap_or(message)
    )
}

/// The list: active, scheduled and ended.
pub(crate) async fn list(session: Session) -> Result<Markup, Failure> {
    let answer = session.get("/v1/suppressions").await?;
    let all = answer["suppressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(page::shell(
        &session,
        "Suppressions",
        Section::Suppressions,
        html! {
            h1 { "Suppressions" }
            p { a.button href="/ui/suppressions/new" { "New suppression" } }
            @for (state, title) in [("active", "Active"), ("scheduled", "Scheduled"), ("ended", "Ended")] {
                @let these: Vec<&Value> = all.iter().filter(|s| s["state"] == state).collect();
                section aria-labelledby={ (state) "-h" } {
                    h2 id={ (state) "-h" } { (title) " (" (these.len()) ")" }
                    @if these.is_empty() {
                        p { "None." }
                    } @else {
                        table {
                            thead { tr {
                                th scope="col" { "Description" } th scope="col" { "Start" } th scope="col" { "End" }
                                th scope="col" { "Targets" } th scope="col" { "Team" } th scope="col" { "By" }
                            } }
                            tbody {
                                @for s in these {
                                    tr {
                                        td { a href={ "/ui/suppressions/" (segment(&text(&s["id"]))) } { (text(&s["description"])) } }
                                        td { (when(&s["startTime"])) }
                                        td { (when(&s["endTime"])) }
                                        td { (targets(&s["targets"])) }
                                        td { @if s["team"].is_null() { "every team" } @else { (text(&s["team"])) } }
                                        td { (text(&s["created_by"])) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn targets(value: &Value) -> Markup {
    html! {
        ul.targets {
            @for target in value.as_array().into_iter().flatten() {
                li { (labels(target)) }
            }
        }
    }
}

/// The empty form.
pub(crate) async fn new(session: Session) -> Markup {
    form_page(&session, &DraftForm::default(), None)
}

fn form_page(session: &Session, form: &DraftForm, problem: Option<&str>) -> Markup {
    page::shell(
        session,
        "New suppression",
        Section::Suppressions,
        html! {
            h1 { "New suppression" }
            p { "Stops the alerts its targets match from opening or joining incidents, from its start to its end. Every event it stops is kept, with its id. The preview below shows what the draft matches now, and whether the guards accept it." }
            @if let Some(problem) = problem { (page::problem(problem)) }
            div.split {
            form.stacked #draft method="post" action="/ui/suppressions" data-preview="/ui/suppressions/preview" data-preview-into="preview" {
                (page::csrf(session))
                label for="description" { "Description" }
                input #description type="text" name="description" value=(form.description) required placeholder="Updating to Windows Server 2019 for Bender in eu-west-1a";
                div.row {
                    div {
                        label for="start" { "Start (UTC)" }
                        input #start type="text" name="start" value=(form.start) placeholder="now" aria-describedby="start-help";
                        small #start-help { "Empty for now; 2026-02-14T00:00:00Z or 2026-02-14 00:00." }
                    }
                    div {
                        label for="end" { "End (UTC)" }
                        input #end type="text" name="end" value=(form.end) aria-describedby="end-help";
                        small #end-help { "Or leave empty and give a duration." }
                    }
                    div {
                        label for="for" { "For" }
                        input #for type="text" name="for" value=(form.lasting) placeholder="2h";
                    }
                }
                label for="targets" { "Targets" }
                textarea #targets name="targets" rows="4" required aria-describedby="targets-help" placeholder="region=eu-west-1a, service=bender, monitor=InstanceHealth" { (form.targets) }
                small #targets-help { "One target per line, key=value pairs separated by commas. A target matches an alert when every one of its labels equals the alert's; a value starting with ~ is a regex (service=bender-db, monitor=~LeaderElection.*). Each target needs at least one exact label." }
                label for="metadata" { "Metadata" }
                textarea #metadata name="metadata" rows="3" aria-describedby="metadata-help" placeholder="engineer=bpannell" { (form.metadata) }
                small #metadata-help { "One key=value per line: engineer, channel, ticket, …" }
                @if session.admin {
                    label for="team" { "Team" }
                    input #team type="text" name="team" value=(form.team) placeholder="every team" aria-describedby="team-help";
                    small #team-help { "Whose alerts it stops; empty stops every team's (cross-team maintenance)." }
                    label.check {
                        input type="checkbox" name="force" checked[form.forced()];
                        " Create it even if it matches more than the policy share of known alerts"
                    }
                }
                div.actions {
                    button type="submit" { "Create suppression" }
                    button.secondary type="submit" formaction="/ui/suppressions/preview" { "Preview" }
                }
            }
            section #preview aria-live="polite" aria-labelledby="preview-h" {
                h2 #preview-h { "Preview" }
                p.muted { "Fill in the targets to see what they match." }
            }
            }
        },
    )
}

/// What a draft would match now, and whether the guards accept it: a fragment the form's
/// script puts under the form as the user types (or a page of its own without script).
pub(crate) async fn preview(
    session: Session,
    Form(form): Form<DraftForm>,
) -> Result<Markup, Failure> {
    session.check(&form.csrf)?;
    let body = match form.draft() {
        Ok(draft) => {
            let uri = format!(
                "/v1/suppressions/preview{}",
                query([("team", form.team.as_str())])
            );
            match session.send(Method::POST, &uri, Some(&draft)).await {
                Ok(answer) => verdict(&answer),
                Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => {
                    return Err(Failure::SignIn);
                }
                Err(refusal) => html! { p.error role="alert" { (refused(&refusal.message)) } },
            }
        }
        Err(problem) => html! { p.error role="alert" { (problem) } },
    };
    Ok(html! {
        h2 #preview-h { "Preview" }
        (body)
    })
}

fn verdict(answer: &Value) -> Markup {
    let alerts = answer["alerts"].as_array().cloned().unwrap_or_default();
    html! {
        p.matched { "Matches " strong { (text(&answer["matched"])) } " of " (text(&answer["known"])) " known alerts." }
        @if answer["refused"] == true {
            p.error role="alert" { (refused(&text(&answer["reason"]))) }
        } @else {
            p.ok { "The guards accept this draft." }
        }
        @if !alerts.is_empty() {
            table {
                caption { "Alerts it matches (first " (alerts.len()) ")" }
                thead { tr { th scope="col" { "Monitor" } th scope="col" { "Labels" } th scope="col" { "Status" } } }
                tbody {
                    @for alert in &alerts {
                        tr {
                            td { (text(&alert["monitor"])) }
                            td { (labels(&alert["labels"])) }
                            td { (badge(&text(&alert["status"]))) }
                        }
                    }
                }
            }
        }
    }
}

/// Creates the suppression, or shows the form again with why it was refused.
pub(crate) async fn create(
    session: Session,
    Form(form): Form<DraftForm>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let draft = match form.draft() {
        Ok(draft) => draft,
        Err(problem) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                form_page(&session, &form, Some(&problem)),
            )
                .into_response());
        }
    };
    let force = if form.forced() { "true" } else { "" };
    let uri = format!(
        "/v1/suppressions{}",
        query([("team", form.team.as_str()), ("force", force)])
    );
    match session.send(Method::POST, &uri, Some(&draft)).await {
        Ok(created) => Ok(Redirect::to(&format!(
            "/ui/suppressions/{}",
            segment(&text(&created["id"]))
        ))
        .into_response()),
        Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => Err(Failure::SignIn),
        Err(refusal) => Ok((
            refusal.status,
            form_page(&session, &form, Some(&refused(&refusal.message))),
        )
            .into_response()),
    }
}

/// One suppression: what it is, its edit form, what it suppressed, its audit trail.
pub(crate) async fn detail(session: Session, Path(id): Path<String>) -> Result<Markup, Failure> {
    detail_page(&session, &id, None).await
}

async fn detail_page(
    session: &Session,
    id: &str,
    problem: Option<&str>,
) -> Result<Markup, Failure> {
    let path = format!("/v1/suppressions/{}", segment(id));
    let s = session.get(&path).await?;
    let suppressed = session.get(&format!("{path}/suppressed?limit=200")).await?;
    let events = suppressed["events"].as_array().cloned().unwrap_or_default();
    let audit = s["audit"].as_array().cloned().unwrap_or_default();
    let state = text(&s["state"]);
    let base = format!("/ui/suppressions/{}", segment(id));
    Ok(page::shell(
        session,
        &text(&s["description"]),
        Section::Suppressions,
        html! {
            h1 { (text(&s["description"])) }
            p.status { (badge(&state)) @if s["forced"] == true { " " span.badge.warm { "forced past the share guard" } } }
            @if let Some(problem) = problem { (page::problem(problem)) }
            dl.facts {
                dt { "Id" } dd { code { (id) } }
                dt { "Team" } dd { @if s["team"].is_null() { "every team" } @else { (text(&s["team"])) } }
                dt { "Start" } dd { (when(&s["startTime"])) }
                dt { "End" } dd { (when(&s["endTime"])) }
                dt { "Created" } dd { (when(&s["created_at"])) " by token " (text(&s["created_by"])) }
                dt { "Targets" } dd { (targets(&s["targets"])) }
                dt { "Metadata" } dd { (labels(&s["metadata"])) }
            }
            @if state != "ended" {
                section aria-labelledby="edit-h" {
                    h2 #edit-h { "Change its times" }
                    form.stacked method="post" action={ (base) "/edit" } {
                        (page::csrf(session))
                        div.row {
                            div {
                                label for="start" { "Start (UTC)" }
                                input #start type="text" name="start" value=(text(&s["startTime"]));
                            }
                            div {
                                label for="end" { "End (UTC)" }
                                input #end type="text" name="end" value=(text(&s["endTime"]));
                            }
                        }
                        div.actions { button type="submit" { "Save times" } }
                    }
                    form.inline method="post" action={ (base) "/end" } {
                        (page::csrf(session))
                        button.danger type="submit" { "End now" }
                    }
                }
            }
            section aria-labelledby="suppressed-h" {
                h2 #suppressed-h { "What it suppressed (" (events.len()) @if suppressed["next"].is_string() { "+" } ")" }
                @if events.is_empty() {
                    p { "Nothing yet." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Received" } th scope="col" { "Monitor" } th scope="col" { "Labels" } th scope="col" { "Status" } } }
                        tbody {
                            @for e in &events {
                                tr {
                                    td { (when(&e["received_at"])) }
                                    td { (text(&e["monitor"])) }
                                    td { (labels(&e["labels"])) }
                                    td { (badge(&text(&e["status"]))) }
                                }
                            }
                        }
                    }
                    p { a href={ "/ui/events?outcome=suppressed&suppression=" (segment(id)) } { "All of them in the event history" } }
                }
            }
            section aria-labelledby="audit-h" {
                h2 #audit-h { "Audit trail" }
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who (token)" } th scope="col" { "What" } th scope="col" { "Detail" } } }
                    tbody {
                        @for entry in &audit {
                            tr {
                                td { (when(&entry["at"])) }
                                td { (text(&entry["actor"])) }
                                td { (text(&entry["action"])) }
                                td { code { (entry["detail"].to_string()) } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// The edit form.
#[derive(Deserialize)]
pub(crate) struct Retime {
    csrf: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
}

/// Moves a suppression's start or end.
pub(crate) async fn edit(
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Retime>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let mut body = Map::new();
    for (field, key, raw) in [
        ("start", "startTime", &form.start),
        ("end", "endTime", &form.end),
    ] {
        if raw.trim().is_empty() {
            continue;
        }
        match parse_time(field, raw) {
            Ok(t) => {
                body.insert(key.to_owned(), Value::String(rfc3339(t)));
            }
            Err(problem) => {
                return Ok((
                    StatusCode::BAD_REQUEST,
                    detail_page(&session, &id, Some(&problem)).await?,
                )
                    .into_response());
            }
        }
    }
    let uri = format!("/v1/suppressions/{}", segment(&id));
    match session
        .send(Method::PATCH, &uri, Some(&Value::Object(body)))
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/ui/suppressions/{}", segment(&id))).into_response()),
        Err(refusal)
            if refusal.status == StatusCode::BAD_REQUEST
                || refusal.status == StatusCode::CONFLICT =>
        {
            let page = detail_page(&session, &id, Some(&refused(&refusal.message))).await?;
            Ok((refusal.status, page).into_response())
        }
        Err(refusal) => Err(refusal.into()),
    }
}

/// The end-now form.
#[derive(Deserialize)]
pub(crate) struct End {
    csrf: String,
}

/// Ends a suppression now.
pub(crate) async fn end(
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<End>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let uri = format!("/v1/suppressions/{}", segment(&id));
    session.send(Method::DELETE, &uri, None).await?;
    Ok(Redirect::to(&format!("/ui/suppressions/{}", segment(&id))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(targets: &str, lasting: &str) -> DraftForm {
        DraftForm {
            description: "Bender maintenance".into(),
            start: "2026-02-14 00:00".into(),
            lasting: lasting.into(),
            metadata: "engineer=bpannell\nticket = BENDER-42\n".into(),
            targets: targets.into(),
            ..DraftForm::default()
        }
    }

    #[test]
    fn the_form_becomes_the_blueprints_draft() {
        let draft = form(
            "region=eu-west-1a, service=bender, monitor=InstanceHealth\n\nservice=bender-db, monitor=~LeaderElection.*\n",
            "7h",
        )
        .draft()
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(draft["startTime"], "2026-02-14T00:00:00Z");
        assert_eq!(draft["endTime"], "2026-02-14T07:00:00Z");
        assert_eq!(
            draft["metadata"],
            json!({"engineer": "bpannell", "ticket": "BENDER-42"})
        );
        assert_eq!(
            draft["targets"],
            json!([
                {"region": "eu-west-1a", "service": "bender", "monitor": "InstanceHealth"},
                {"service": "bender-db", "monitor": "~LeaderElection.*"}
            ])
        );
    }

    #[test]
    fn a_form_without_an_end_or_with_a_broken_target_says_what_is_wrong() {
        let no_end = form("service=bender", "").draft();
        assert_eq!(
            no_end,
            Err("give an end time, or a duration such as 2h".to_owned())
        );
        let broken = form("service bender", "2h").draft();
        assert_eq!(
            broken,
            Err("targets: \"service bender\" is not key=value".to_owned())
        );
        let mut bad_time = form("service=bender", "2h");
        bad_time.start = "tomorrow".into();
        assert!(
            bad_time
                .draft()
                .is_err_and(|e| e.starts_with("start: \"tomorrow\""))
        );
        // Found by reading for the fuzz targets: this used to panic the handler.
        let forever = form("service=bender", "9999999d").draft();
        assert_eq!(
            forever,
            Err("for: 9999999d would end after the year 9999".to_owned())
        );
    }
}
