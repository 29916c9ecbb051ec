//! `tocsin serve`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tocsin_pipeline::args::{PipelineArgs, duration};
use tocsin_store::{self as store, StoreOptions, Synchronous};
use tracing::info;

use crate::cli::database::Database;

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
    /// SQLite only: the page cache of the writer, in MiB. It holds about three times as
    /// much resident memory; more catches up a little faster after a wide outage.
    #[arg(long, env = "TOCSIN_SQLITE_CACHE_MIB", default_value_t = store::DEFAULT_SQLITE_CACHE_MIB,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    sqlite_cache_mib: u32,
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    plugins: PluginArgs,
    /// Notifiers and routes (YAML; docs/alerting.md). Without it nothing is notified.
    #[arg(long, env = "TOCSIN_NOTIFIERS")]
    notifiers: Option<std::path::PathBuf>,
    /// Logs database (sqlite: or postgres:// URL) that teams without one of their own
    /// run their registered `logs` queries on. For PostgreSQL, connect as a role that may
    /// only SELECT the views meant for every such team (docs/alerting.md).
    #[arg(long, env = "TOCSIN_LOGS_DATABASE")]
    logs_database: Option<String>,
    /// A team's own logs database, as TEAM=URL (repeatable; comma-separated in the
    /// environment). For PostgreSQL, connect as that team's role: LOGIN and SELECT on the
    /// team's views only (docs/alerting.md).
    #[arg(long, env = "TOCSIN_TEAM_LOGS_DATABASE", value_delimiter = ',', value_parser = team_url)]
    team_logs_database: Vec<(String, String)>,
    #[command(flatten)]
    watch: WatchArgs,
}

/// Tocsin watching itself: back-pressure, the canary, where metrics are scraped.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Most accepted events waiting for the pipeline: past it, ingest answers 503 with
    /// Retry-After (and /readyz says why) until the pipeline catches up. At least 10,000
    /// (one full request). Default: no bound.
    #[arg(long, env = "TOCSIN_MAX_LAG_EVENTS", value_parser = clap::value_parser!(u64).range(10_000..))]
    max_lag_events: Option<u64>,
    /// Oldest age of an event waiting for the pipeline before ingest answers 503.
    /// Default: no bound.
    #[arg(long, env = "TOCSIN_MAX_LAG_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    max_lag_seconds: Option<u64>,
    /// Send a heartbeat event through the journal and the pipeline this often (such as
    /// 30s); /readyz fails while one is not processed within that time.
    #[arg(long, env = "TOCSIN_CANARY", value_parser = duration)]
    canary: Option<i64>,
    /// Also serve /metrics without a token on this address (bind it where only
    /// Prometheus reaches it). /metrics on --listen takes an admin token.
    #[arg(long, env = "TOCSIN_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

fn team_url(text: &str) -> Result<(String, String), String> {
    let (team, url) = text
        .split_once('=')
        .ok_or_else(|| format!("\"{}\" is not TEAM=URL", store::redact(text)))?;
    tocsin_model::team::check_team_name(team)?;
    Ok((team.to_owned(), url.to_owned()))
}

/// Limits of team plugins.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    /// Wall-clock time one plugin call may take before it is stopped.
    #[arg(long, env = "TOCSIN_PLUGIN_DEADLINE", default_value = "50ms", value_parser = duration)]
    plugin_deadline: i64,
    /// Memory one plugin instance may use, in MiB.
    #[arg(long, env = "TOCSIN_PLUGIN_MEMORY_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    plugin_memory_mib: u32,
    /// Largest component accepted for upload, in MiB (a componentize-py component is ~18).
    #[arg(long, env = "TOCSIN_PLUGIN_MAX_SIZE_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    plugin_max_size_mib: u32,
}

impl PluginArgs {
    /// The limits these arguments describe.
    pub fn limits(&self) -> tocsin_host::Limits {
        tocsin_host::Limits {
            deadline: std::time::Duration::from_millis(self.plugin_deadline as u64),
            memory: (self.plugin_memory_mib as usize) << 20,
            max_component: (self.plugin_max_size_mib as usize) << 20,
            ..tocsin_host::Limits::default()
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SyncArg {
    Normal,
    Full,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = &args.database.database_url;
    let synchronous = match args.sqlite_synchronous {
        SyncArg::Normal => Synchronous::Normal,
        SyncArg::Full => Synchronous::Full,
    };
    let config = args.pipeline.config().map_err(anyhow::Error::msg)?;
    let notifiers = match &args.notifiers {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the notifiers file {}", path.display()))?;
            Arc::new(tocsin_notify::config::Notifiers::parse(&text)?)
        }
        None => Arc::new(tocsin_notify::config::Notifiers::default()),
    };
    let store = store::open(
        url,
        StoreOptions {
            synchronous,
            sqlite_cache_mib: Some(args.sqlite_cache_mib),
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("cannot open the database {}", store::redact(url)))?;
    let plugins = tocsin_host::WasmPlugins::start(store.clone(), args.plugins.limits())
        .await
        .context("cannot start the plugin runtime")?;
    let exporter = tocsin_api::metrics::Exporter::install()?;
    exporter.keep_up();
    let bound = tocsin_server::Bound {
        events: args.watch.max_lag_events,
        age: args
            .watch
            .max_lag_seconds
            .map(std::time::Duration::from_secs),
    };
    let backlog = store
        .lag()
        .await
        .context("cannot read the journal's backlog")?;
    let pressure = tocsin_server::Pressure::new(bound, backlog);
    let mut local = tocsin_server::start(
        store.clone(),
        config,
        Some(Arc::new(plugins.clone())),
        pressure,
    );
    if let Some(every) = args.watch.canary {
        local = local.with_canary(std::time::Duration::from_millis(every.max(1) as u64));
    }
    let mut collectors =
        tocsin_collect::Collectors::new(store.clone()).with_plugins(Arc::new(plugins.clone()));
    if args.logs_database.is_some() || !args.team_logs_database.is_empty() {
        let logs = tocsin_collect::logs::LogsSources::open(
            args.logs_database.as_deref(),
            &args.team_logs_database,
        )
        .map_err(|e| anyhow::anyhow!("cannot use the logs databases: {e}"))?;
        collectors = collectors.with_logs(logs);
    }
    let outbox =
        tocsin_outbox::Outbox::new(store.clone(), notifiers.clone()).with_collectors(collectors);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    // Bound before the address is printed: whoever reads that line may scrape at once.
    let metrics = match args.watch.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
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
    let state = local.state(
        store,
        &config,
        Arc::new(plugins.clone()),
        notifiers,
        Some(exporter),
    );
    if let Some(metrics) = metrics {
        info!(address = %metrics.local_addr()?, "serving metrics");
        let served = tocsin_api::metrics::serve(metrics, state.clone());
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    tocsin_server::serve(listener, state, local, outbox, shutdown())
        .await
        .context("server failed")?;
    plugins.save_state().await;
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
