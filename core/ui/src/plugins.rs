//! Plugins: the list with versions, counters and the last error; uploading a component;
//! one plugin with a dry run on a pasted sample and a rollback to its previous version.

use axum::Form;
use axum::extract::{Multipart, Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{query, segment};
use crate::markdown;
use crate::page::{self, Failure, Section, badge, text, when};
use crate::session::Session;

/// Largest upload the form takes; the API then applies the plugin size limit
/// (`--plugin-max-size`) and says so.
pub(crate) const MAX_UPLOAD: usize = 64 << 20;

/// The team a plugin page acts for (admins name it; a team token's is its own).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Team {
    #[serde(default)]
    team: String,
}

fn plugin_path(session: &Session, name: &str, team: &str, tail: &str) -> String {
    let team = if session.admin { team } else { "" };
    format!(
        "/v1/plugins/{}{tail}{}",
        segment(name),
        query([("team", team)])
    )
}

fn page_of(name: &str, team: &str) -> String {
    format!("/ui/plugins/{}{}", segment(name), query([("team", team)]))
}

/// The list and the upload form.
pub(crate) async fn list(session: Session) -> Result<Markup, Failure> {
    list_page(&session, None).await
}

async fn list_page(session: &Session, problem: Option<&str>) -> Result<Markup, Failure> {
    let answer = session.get("/v1/plugins").await?;
    let plugins = answer["plugins"].as_array().cloned().unwrap_or_default();
    Ok(page::shell(
        session,
        "Plugins",
        Section::Plugins,
        html! {
            h1 { "Plugins" }
            @if let Some(problem) = problem { (page::problem(problem)) }
            @if plugins.is_empty() {
                p { "No plugins yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Team" } th scope="col" { "Version" }
                        th scope="col" { "Calls" } th scope="col" { "Errors" } th scope="col" { "Last error" }
                    } }
                    tbody {
                        @for p in &plugins {
                            @let errors: u64 = p["stats"]["errors"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
                            tr {
                                td { a href=(page_of(&text(&p["name"]), &text(&p["team"]))) { (text(&p["name"])) } }
                                td { (text(&p["kind"])) }
                                td { (text(&p["team"])) }
                                td { (text(&p["activeVersion"])) " of " (p["versions"].as_array().map_or(0, Vec::len)) }
                                td { (text(&p["stats"]["calls"])) }
                                td { (errors) }
                                td { (last_error(&p["stats"]["lastError"])) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="upload-h" {
                h2 #upload-h { "Upload a component" }
                p { "A WebAssembly component built for one of the tocsin:plugin worlds (docs/plugins.md). Uploading a name again adds a version; the previous one stays for a rollback." }
                form.stacked method="post" action="/ui/plugins" enctype="multipart/form-data" {
                    (page::csrf(session))
                    div.row {
                        div {
                            label for="name" { "Name" }
                            input #name type="text" name="name" required pattern="[a-z0-9-]{1,64}" aria-describedby="name-help";
                            small #name-help { "1-64 of a-z, 0-9 and -." }
                        }
                        div {
                            label for="kind" { "Kind" }
                            select #kind name="kind" {
                                option value="transformer" { "transformer" }
                                option value="filter" { "filter" }
                                option value="collector" { "collector" }
                            }
                        }
                        @if session.admin {
                            div {
                                label for="team" { "Team" }
                                input #team type="text" name="team" required;
                            }
                        }
                    }
                    label for="component" { "Component (.wasm)" }
                    input #component type="file" name="component" accept=".wasm,application/wasm" required;
                    div.actions { button type="submit" { "Upload" } }
                }
            }
        },
    ))
}

fn last_error(value: &Value) -> Markup {
    html! {
        @if value.is_object() {
            (when(&value["at"])) " " (badge(&text(&value["kind"]))) " " (text(&value["message"]))
        } @else {
            span.muted { "none" }
        }
    }
}

/// Uploads a component from the form.
pub(crate) async fn upload(
    session: Session,
    mut multipart: Multipart,
) -> Result<Response, Failure> {
    let (mut csrf, mut name, mut kind, mut team, mut bytes) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        Vec::new(),
    );
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Api(
                    StatusCode::BAD_REQUEST,
                    format!("the upload could not be read: {e}"),
                ));
            }
        };
        let field_name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(|e| {
            Failure::Api(
                StatusCode::BAD_REQUEST,
                format!("the upload could not be read: {e}"),
            )
        })?;
        let as_text = || String::from_utf8_lossy(&data).trim().to_owned();
        match field_name.as_str() {
            "csrf" => csrf = as_text(),
            "name" => name = as_text(),
            "kind" => kind = as_text(),
            "team" => team = as_text(),
            "component" => bytes = data.to_vec(),
            _ => {}
        }
    }
    session.check(&csrf)?;
    if bytes.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            list_page(&session, Some("Choose a component file to upload.")).await?,
        )
            .into_response());
    }
    let uri = format!(
        "/v1/plugins/{}{}",
        segment(&name),
        query([("kind", kind.as_str()), ("team", team.as_str())])
    );
    match session
        .send_bytes(Method::PUT, &uri, "application/wasm", bytes)
        .await
    {
        Ok(info) => {
            Ok(Redirect::to(&page_of(&text(&info["name"]), &text(&info["team"]))).into_response())
        }
        Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => Err(Failure::SignIn),
        Err(refusal) => {
            let page = list_page(
                &session,
                Some(&format!("Upload refused: {}", refusal.message)),
            )
            .await?;
            Ok((refusal.status, page).into_response())
        }
    }
}

/// One plugin: versions, counters, the dry-run form and rollback.
pub(crate) async fn detail(
    session: Session,
    Path(name): Path<String>,
    Query(team): Query<Team>,
) -> Result<Markup, Failure> {
    detail_page(&session, &name, &team.team, &DryRun::default(), None).await
}

async fn detail_page(
    session: &Session,
    name: &str,
    team: &str,
    form: &DryRun,
    result: Option<Markup>,
) -> Result<Markup, Failure> {
    let info = session.get(&plugin_path(session, name, team, "")).await?;
    let kind = text(&info["kind"]);
    let versions = info["versions"].as_array().cloned().unwrap_or_default();
    let stats = &info["stats"];
    let base = page_of(name, team);
    let action = |tail: &str| {
        format!(
            "/ui/plugins/{}/{tail}{}",
            segment(name),
            query([("team", team)])
        )
    };
    let sample_help = match kind.as_str() {
        "transformer" => "The raw body a sender would post, as text.",
        "filter" => "The events to judge: a JSON array of events.",
        _ => "The incident: a JSON object as collectors receive it (docs/plugins.md).",
    };
    Ok(page::shell(
        session,
        name,
        Section::Plugins,
        html! {
            h1 { (name) " " span.muted { "(" (kind) ")" } }
            dl.facts {
                dt { "Team" } dd { (text(&info["team"])) }
                dt { "Active version" } dd { (text(&info["activeVersion"])) }
                dt { "State keys" } dd { (text(&info["stateKeys"])) }
                dt { "Calls" } dd { (text(&stats["calls"])) }
                dt { "Events in / out / dropped" } dd { (text(&stats["eventsIn"])) " / " (text(&stats["eventsOut"])) " / " (text(&stats["eventsDropped"])) }
                dt { "Errors" } dd {
                    @if let Some(errors) = stats["errors"].as_object().filter(|m| !m.is_empty()) {
                        @for (k, v) in errors { (k) ": " (text(v)) " " }
                    } @else { "none" }
                }
                dt { "Last error" } dd { (last_error(&stats["lastError"])) }
            }
            section aria-labelledby="versions-h" {
                h2 #versions-h { "Versions" }
                table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Uploaded" } th scope="col" { "By" } th scope="col" { "Size" } th scope="col" { "SHA-256" } } }
                    tbody {
                        @for v in &versions {
                            tr {
                                td { (text(&v["version"])) @if v["version"] == info["activeVersion"] { " " span.badge { "active" } } }
                                td { (when(&v["uploadedAt"])) }
                                td { (text(&v["uploadedBy"])) }
                                td { (text(&v["size"])) " bytes" }
                                td { code.hash { (text(&v["sha256"])) } }
                            }
                        }
                    }
                }
                @if versions.len() > 1 {
                    form.inline method="post" action=(action("rollback")) {
                        (page::csrf(session))
                        button type="submit" { "Roll back to the previous version" }
                    }
                }
            }
            section aria-labelledby="dry-h" {
                h2 #dry-h { "Dry run" }
                p { "Runs the active version on a sample: nothing is ingested and its state writes are discarded." }
                form.stacked method="post" action=(action("test")) {
                    (page::csrf(session))
                    label for="sample" { "Sample" }
                    textarea #sample name="sample" rows="8" required aria-describedby="sample-help" { (form.sample) }
                    small #sample-help { (sample_help) }
                    @if kind == "transformer" {
                        label for="content_type" { "Content type" }
                        input #content_type type="text" name="content_type" value=(form.content_type) placeholder="application/json";
                    }
                    label for="config" { "Config (a JSON object)" }
                    textarea #config name="config" rows="2" placeholder="{}" { (form.config) }
                    div.actions { button type="submit" { "Run" } }
                }
                @if let Some(result) = result {
                    section #result aria-live="polite" { (result) }
                }
            }
            p { a href=(base) { "Reload" } }
        },
    ))
}

/// The dry-run form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DryRun {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sample: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    config: String,
}

impl DryRun {
    /// The API's sample for a plugin of `kind`.
    fn request(&self, kind: &str) -> Result<Value, String> {
        let config: Map<String, Value> = if self.config.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(&self.config)
                .map_err(|e| format!("config is not a JSON object: {e}"))?
        };
        let json_sample = || {
            serde_json::from_str::<Value>(&self.sample)
                .map_err(|e| format!("the sample is not JSON: {e}"))
        };
        Ok(match kind {
            "transformer" => {
                json!({"body": self.sample, "contentType": self.content_type.trim(), "config": config})
            }
            "filter" => {
                let events = match json_sample()? {
                    Value::Array(events) => events,
                    one => vec![one],
                };
                json!({"events": events, "config": config})
            }
            _ => json!({"incident": json_sample()?, "config": config}),
        })
    }
}

/// Runs a dry run and shows its result under the form.
pub(crate) async fn test(
    session: Session,
    Path(name): Path<String>,
    Query(team): Query<Team>,
    Form(form): Form<DryRun>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    let info = session
        .get(&plugin_path(&session, &name, &team.team, ""))
        .await?;
    let result = match form.request(&text(&info["kind"])) {
        Err(problem) => page::problem(&problem),
        Ok(request) => match session
            .send(
                Method::POST,
                &plugin_path(&session, &name, &team.team, "/test"),
                Some(&request),
            )
            .await
        {
            Ok(run) => outcome(&run),
            Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => {
                return Err(Failure::SignIn);
            }
            Err(refusal) => page::problem(&format!("The run failed: {}", refusal.message)),
        },
    };
    Ok(
        detail_page(&session, &name, &team.team, &form, Some(result))
            .await?
            .into_response(),
    )
}

fn outcome(run: &Value) -> Markup {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    html! {
        h3 { "Result" }
        p { "Took " (text(&run["durationUs"])) " µs." }
        @if !run["events"].is_null() { h4 { "Events" } pre { (pretty(&run["events"])) } }
        @if !run["verdicts"].is_null() { h4 { "Verdicts" } pre { (pretty(&run["verdicts"])) } }
        @if let Some(sections) = run["sections"].as_array() {
            h4 { "Sections" }
            @for section in sections {
                article.context {
                    h5 { (text(&section["title"])) }
                    div.markdown { (markdown::render(&text(&section["markdown"]))) }
                }
            }
        }
        h4 { "Log" }
        @if run["log"].as_array().is_none_or(Vec::is_empty) {
            p.muted { "Nothing logged." }
        } @else {
            pre.log { @for line in run["log"].as_array().into_iter().flatten() { (text(line)) "\n" } }
        }
    }
}

/// The rollback form.
#[derive(Deserialize)]
pub(crate) struct Rollback {
    csrf: String,
}

/// Makes the previous version active again.
pub(crate) async fn rollback(
    session: Session,
    Path(name): Path<String>,
    Query(team): Query<Team>,
    Form(form): Form<Rollback>,
) -> Result<Response, Failure> {
    session.check(&form.csrf)?;
    session
        .send(
            Method::POST,
            &plugin_path(&session, &name, &team.team, "/rollback"),
            None,
        )
        .await?;
    Ok(Redirect::to(&page_of(&name, &team.team)).into_response())
}
