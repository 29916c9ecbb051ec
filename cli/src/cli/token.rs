//! `tocsin token create|list|revoke`: token management straight on the database, so the
//! first admin token can exist before anyone can call the API.

#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use time::OffsetDateTime;
use tocsin_api::auth::{self, Grant};
use tocsin_store::{self as store, StoreOptions};

use crate::cli::database::Database;

/// Token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// The team the token acts for.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        team: Option<String>,
        /// A token that acts for every team.
        #[arg(long)]
        admin: bool,
        /// A note saying who or what uses it.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        database: Database,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        database: Database,
    },
    /// Revoke a token by its id; it stops working at once.
    Revoke {
        /// The token's id, as `tocsin token list` shows it.
        id: String,
        #[command(flatten)]
        database: Database,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create {
            team,
            admin,
            description,
            database,
        } => {
            let grant = match (team, admin) {
                (_, true) => Grant::Admin,
                (Some(team), false) => {
                    tocsin_model::team::check_team_name(&team).map_err(anyhow::Error::msg)?;
                    Grant::Team(team)
                }
                (None, false) => bail!("say who the token is for: --team TEAM or --admin"),
            };
            let store = open(&database).await?;
            let (token, record) = auth::create(store.as_ref(), grant, &description).await?;
            let who = record
                .team
                .as_deref()
                .map_or("admin".to_owned(), |team| format!("team {team}"));
            eprintln!(
                "Created token {} for {who}. It is shown only now; keep it secret:",
                record.id
            );
            println!("{token}");
        }
        Command::List { database } => {
            let store = open(&database).await?;
            println!(
                "{:<12}  {:<24}  {:<20}  {:<20}  DESCRIPTION",
                "ID", "FOR", "CREATED", "REVOKED"
            );
            for token in store.tokens().await? {
                let who = token
                    .team
                    .as_deref()
                    .map_or("admin".to_owned(), |team| format!("team {team}"));
                println!(
                    "{:<12}  {:<24}  {:<20}  {:<20}  {}",
                    token.id,
                    who,
                    date(token.created_at),
                    token.revoked_at.map_or("-".to_owned(), date),
                    token.description
                );
            }
        }
        Command::Revoke { id, database } => {
            let store = open(&database).await?;
            if !store.revoke_token(&id, OffsetDateTime::now_utc()).await? {
                bail!("no live token with id \"{id}\" (see `tocsin token list`)");
            }
            eprintln!("Revoked token {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open(database: &Database) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    store::open(&database.database_url, StoreOptions::default())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                store::redact(&database.database_url)
            )
        })
}

fn date(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&format).unwrap_or_default()
}
