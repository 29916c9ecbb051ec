//! Command-line parsing (clap derive); each command calls the same core functions as
//! the API.

mod database;
mod migrate;
mod plugin;
mod send;
mod serve;
mod suppress;
mod token;
mod traces;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Tocsin: a monitoring event pipeline. Events in, a few incidents out.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "TOCSIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export spans over OTLP/HTTP (protobuf) to this collector, such as
    /// http://127.0.0.1:4318 (`/v1/traces` is added unless the URL has a path).
    #[arg(long, global = true, env = "TOCSIN_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creates the SQLite database on first run).
    Serve(serve::Args),
    /// Create, list and revoke API tokens (works on the database directly).
    #[command(subcommand)]
    Token(token::Command),
    /// Bring the database schema up to date (a deploy step; `serve` migrates by itself).
    Migrate(migrate::Args),
    /// Send events from JSON or YAML files to a server.
    Send(send::Args),
    /// Create, list and end suppressions on a server (from automation: one command).
    #[command(subcommand)]
    Suppress(suppress::Command),
    /// Upload, list, test, roll back and remove WebAssembly plugins; scaffold a new one.
    #[command(subcommand)]
    Plugin(plugin::Command),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match init_logging(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(tocsin_server::BLOCKING_KEEP_ALIVE)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Token(command) => token::run(command).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Suppress(command) => suppress::run(command).await,
            Command::Plugin(command) => plugin::run(command).await,
        }
    });
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    drop(runtime);
    if let Some(provider) = traces
        && let Err(e) = provider.shutdown()
    {
        eprintln!("warning: the last spans may not have been exported: {e}");
    }
    code
}

/// Logs on stderr (filtered by `TOCSIN_LOG`), and spans over OTLP when `otlp` names a
/// collector (every `info` span of Tocsin's, whatever `TOCSIN_LOG` says). Returns the
/// span exporter, to flush at exit.
fn init_logging(
    format: LogFormat,
    otlp: Option<&str>,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("TOCSIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let (spans, provider) = match otlp {
        None => (None, None),
        Some(endpoint) => {
            let provider = traces::provider(endpoint)?;
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "tocsin");
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(traces::targets());
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .init();
    Ok(provider)
}
