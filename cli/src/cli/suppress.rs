//! `tocsin suppress create|list|end`: suppressions from automation, in one command,
//! through the same API a human uses (so the same guards apply).

#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where the server is and who is asking.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// The server's base URL.
    #[arg(long, env = "TOCSIN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API token (`tocsin token create`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// `tocsin suppress …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Suppress matching alerts from now (or --start) for a while.
    Create(Create),
    /// List suppressions (the token's team's, or all for an admin).
    List {
        #[command(flatten)]
        server: Server,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a suppression now.
    End {
        /// The suppression's id.
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

/// Arguments of `tocsin suppress create`.
#[derive(Debug, clap::Args)]
pub struct Create {
    /// How long, such as 2h or 90m.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Labels to match, `key=value,key=value` (`monitor=` names the check; a value
    /// starting with `~` is a regex); repeat for more targets.
    #[arg(long = "target", required = true, value_name = "LABELS")]
    targets: Vec<String>,
    /// What is being done.
    #[arg(long)]
    description: String,
    /// Ticket tracking the work.
    #[arg(long)]
    ticket: Option<String>,
    /// Who is doing it.
    #[arg(long)]
    engineer: Option<String>,
    /// Where to talk about it.
    #[arg(long)]
    channel: Option<String>,
    /// Start time (RFC 3339); default now.
    #[arg(long)]
    start: Option<String>,
    /// Admins: create it even if it matches more than the policy share of alerts.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    server: Server,
}

pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

pub(super) async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no details");
        bail!("the server answered {status}: {message}");
    }
    Ok(body)
}

/// Parses `service=bender,region=eu-west-1a`.
fn target(text: &str) -> anyhow::Result<Map<String, Value>> {
    let mut labels = Map::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("invalid target \"{text}\": use key=value,key=value"))?;
        labels.insert(
            key.trim().to_owned(),
            Value::String(value.trim().to_owned()),
        );
    }
    Ok(labels)
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => {
            let length =
                tocsin_model::event::parse_duration(&args.duration).map_err(anyhow::Error::msg)?;
            let start = match &args.start {
                Some(text) => OffsetDateTime::parse(text, &Rfc3339)
                    .with_context(|| format!("invalid --start \"{text}\""))?,
                None => OffsetDateTime::now_utc(),
            };
            let end = time::Duration::try_from(length)
                .ok()
                .and_then(|length| start.checked_add(length))
                .with_context(|| format!("--for {} ends after the year 9999", args.duration))?;
            let mut metadata = Map::new();
            for (key, value) in [
                ("ticket", &args.ticket),
                ("engineer", &args.engineer),
                ("channel", &args.channel),
            ] {
                if let Some(value) = value {
                    metadata.insert(key.into(), Value::String(value.clone()));
                }
            }
            let targets = args
                .targets
                .iter()
                .map(|t| target(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let draft = json!({
                "description": args.description,
                "startTime": start.format(&Rfc3339)?,
                "endTime": end.format(&Rfc3339)?,
                "metadata": metadata,
                "targets": targets,
            });
            let url = format!(
                "{}/v1/suppressions?force={}",
                args.server.url.trim_end_matches('/'),
                args.force
            );
            let created = answer(
                client()?
                    .post(&url)
                    .bearer_auth(&args.server.token)
                    .json(&draft)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?,
            )
            .await?;
            println!(
                "{}",
                created.get("id").and_then(Value::as_str).unwrap_or("")
            );
            eprintln!(
                "suppression {} until {}",
                created.get("state").and_then(Value::as_str).unwrap_or("?"),
                created
                    .get("endTime")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
        }
        Command::List { server, json } => {
            let url = format!("{}/v1/suppressions", server.url.trim_end_matches('/'));
            let list = answer(
                client()?
                    .get(&url)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<36}  {:<9}  {:<20}  {:<20}  DESCRIPTION",
                    "ID", "STATE", "START", "END"
                );
                for s in list
                    .get("suppressions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let field =
                        |name: &str| s.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
                    println!(
                        "{:<36}  {:<9}  {:<20}  {:<20}  {}",
                        field("id"),
                        field("state"),
                        field("startTime"),
                        field("endTime"),
                        field("description")
                    );
                }
            }
        }
        Command::End { id, server } => {
            let url = format!("{}/v1/suppressions/{id}", server.url.trim_end_matches('/'));
            answer(
                client()?
                    .delete(&url)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?,
            )
            .await?;
            eprintln!("suppression {id} ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}
