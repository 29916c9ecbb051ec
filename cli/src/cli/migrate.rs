//! `tocsin migrate`: brings a database's schema up to date and returns. A deploy step for
//! processes that open the database without migrating it (the Lambda functions);
//! `tocsin serve` migrates by itself.

use std::process::ExitCode;

use anyhow::Context as _;
use tocsin_store::{self as store, Migrations, StoreOptions};

use crate::cli::database::Database;

/// `tocsin migrate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: Database,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = &args.database.database_url;
    let options = StoreOptions {
        migrations: Migrations::Apply,
        connections: Some(1),
        ..StoreOptions::default()
    };
    store::open(url, options)
        .await
        .with_context(|| format!("cannot migrate {}", store::redact(url)))?;
    eprintln!(
        "The database schema of {} is up to date.",
        store::redact(url)
    );
    Ok(ExitCode::SUCCESS)
}
