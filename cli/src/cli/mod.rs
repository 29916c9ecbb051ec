//! Command-line parsing (clap derive); each command calls the same core functions as
//! the API.

mod database;
mod migrate;
mod plugin;
mod send;
mod serve;
mod suppress;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Tocsin: a monitoring event pipeline. Events in, a few incidents out.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "TOCSIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOCSIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
