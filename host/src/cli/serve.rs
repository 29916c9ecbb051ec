//! `tocsin serve`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tocsin_core::journal::Journal;
use tocsin_core::store::{self, StoreOptions, Synchronous};
use tocsin_core::{AppState, app};
use tracing::info;

use super::Database;

/// Arguments of `tocsin serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "TOCSIN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: Database,
    /// SQLite only: `normal` survives a crash of the process, `full` also a power cut.
    #[arg(long, env = "TOCSIN_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SyncArg::Normal)]
    sqlite_synchronous: SyncArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SyncArg {
    Normal,
    Full,
}

/// How long a shutdown waits for the journal to commit and apply what was accepted.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = &args.database.database_url;
    let synchronous = match args.sqlite_synchronous {
        SyncArg::Normal => Synchronous::Normal,
        SyncArg::Full => Synchronous::Full,
    };
    let store = store::open(url, StoreOptions { synchronous })
        .await
        .with_context(|| format!("cannot open the database {}", store::redact(url)))?;
    let (journal, writer) = Journal::start(store.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    info!(address = %address, database = %store::redact(url), "serving");
    // The first stdout line is the address: scripts and tests read it. A closed stdout
    // must not stop the server, so write errors are ignored.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "Tocsin listening on http://{address}");
    if store.tokens().await?.iter().all(|t| t.revoked_at.is_some()) {
        let _ = writeln!(
            out,
            "No API token exists yet. Create an admin token with:\n  tocsin token create --admin --database-url {}",
            store::redact(url)
        );
    }
    axum::serve(listener, app(AppState { store, journal }))
        .with_graceful_shutdown(shutdown())
        .await
        .context("server failed")?;
    // The router (and its journal handles) is gone: the writer commits what is queued, then stops.
    // An error here means the writer thread died early; the log says why. The wait is
    // bounded: what is left unapplied stays in the journal for the next start.
    if tokio::time::timeout(SHUTDOWN_GRACE, writer).await.is_err() {
        tracing::warn!(
            "the journal did not finish within {SHUTDOWN_GRACE:?}; stopping anyway (nothing accepted is lost)"
        );
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    info!("shutting down: finishing requests in flight");
}
