//! `tocsin plugin push|list|test|rm|rollback|new`: a team's plugins from the command
//! line, through the same API (so the same validation and ownership apply), and a
//! scaffold that builds as is.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::cli::suppress::{Server, answer, client};

/// `tocsin plugin …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Upload a component as the next version of a plugin (swapped in at once).
    Push {
        /// The plugin's name (1-64 of a-z, 0-9, -).
        name: String,
        /// The component: target/wasm32-wasip2/release/NAME.wasm.
        file: PathBuf,
        /// What it is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Admins: the owning team.
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// List plugins with their active version and call counts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Run a plugin on a sample without side effects; prints its output and log.
    Test {
        /// The plugin's name.
        name: String,
        /// A JSON file: `{"body": …}` for a transformer, `{"events": [...]}` for a
        /// filter, `{"incident": {...}}` for a collector, each with an optional `config`.
        sample: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// Remove a plugin with its versions and state.
    Rm {
        /// The plugin's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Make the version before the active one active again.
    Rollback {
        /// The plugin's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Create a Rust plugin crate that builds as is (the SDK and WIT are copied in).
    New {
        /// The plugin's name, also the directory created.
        name: String,
        /// What it is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// A plugin kind on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Raw request → events.
    Transformer,
    /// Batch of events → verdicts.
    Filter,
    /// Incident → sections of context.
    Collector,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Transformer => "transformer",
            Self::Filter => "filter",
            Self::Collector => "collector",
        }
    }
}

fn url(server: &Server, path: &str) -> String {
    format!("{}{path}", server.url.trim_end_matches('/'))
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Push {
            name,
            file,
            kind,
            team,
            server,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut path = format!("/v1/plugins/{name}?kind={}", kind.as_str());
            if let Some(team) = team {
                path.push_str(&format!("&team={team}"));
            }
            let target = url(&server, &path);
            eprintln!(
                "uploading {} ({} bytes); compiling may take a few seconds…",
                file.display(),
                bytes.len()
            );
            let info = answer(
                client()?
                    .put(&target)
                    .bearer_auth(&server.token)
                    .header("content-type", "application/wasm")
                    .body(bytes)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {target}"))?,
            )
            .await?;
            let version = info["activeVersion"].as_i64().unwrap_or(0);
            let sha = info["versions"]
                .as_array()
                .and_then(|v| v.iter().find(|v| v["version"].as_i64() == Some(version)))
                .and_then(|v| v["sha256"].as_str())
                .unwrap_or("");
            println!("{name} version {version} is live (sha256 {sha})");
        }
        Command::List { json, server } => {
            let target = url(&server, "/v1/plugins");
            let list = answer(
                client()?
                    .get(&target)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {target}"))?,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<24}  {:<12}  {:<11}  {:>7}  {:>9}  {:>7}  LAST ERROR",
                    "NAME", "TEAM", "KIND", "VERSION", "CALLS", "ERRORS"
                );
                for p in list["plugins"].as_array().into_iter().flatten() {
                    let errors: u64 = p["stats"]["errors"]
                        .as_object()
                        .map(|e| e.values().filter_map(Value::as_u64).sum())
                        .unwrap_or(0);
                    println!(
                        "{:<24}  {:<12}  {:<11}  {:>7}  {:>9}  {:>7}  {}",
                        p["name"].as_str().unwrap_or(""),
                        p["team"].as_str().unwrap_or(""),
                        p["kind"].as_str().unwrap_or(""),
                        p["activeVersion"].as_i64().unwrap_or(0),
                        p["stats"]["calls"].as_u64().unwrap_or(0),
                        errors,
                        p["stats"]["lastError"]["message"].as_str().unwrap_or("-"),
                    );
                }
            }
        }
        Command::Test {
            name,
            sample,
            server,
        } => {
            let text = std::fs::read_to_string(&sample)
                .with_context(|| format!("cannot read {}", sample.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", sample.display()))?;
            let target = url(&server, &format!("/v1/plugins/{name}/test"));
            let run = answer(
                client()?
                    .post(&target)
                    .bearer_auth(&server.token)
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {target}"))?,
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
        }
        Command::Rm { name, server } => {
            let target = url(&server, &format!("/v1/plugins/{name}"));
            let response = client()?
                .delete(&target)
                .bearer_auth(&server.token)
                .send()
                .await
                .with_context(|| format!("cannot reach {target}"))?;
            if !response.status().is_success() {
                answer(response).await?;
            }
            println!("{name} removed");
        }
        Command::Rollback { name, server } => {
            let target = url(&server, &format!("/v1/plugins/{name}/rollback"));
            let info = answer(
                client()?
                    .post(&target)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {target}"))?,
            )
            .await?;
            println!(
                "{name} is back at version {}",
                info["activeVersion"].as_i64().unwrap_or(0)
            );
        }
        Command::New { name, kind, dir } => {
            tocsin_model::plugin::check_name(&name).map_err(anyhow::Error::msg)?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            scaffold(&dir, &name, kind)?;
            println!("created {}", dir.display());
            eprintln!(
                "build it with:\n  cd {} && cargo build --target wasm32-wasip2 --release\nthen upload it with:\n  tocsin plugin push {name} target/wasm32-wasip2/release/{}.wasm --kind {}",
                dir.display(),
                name.replace('-', "_"),
                kind.as_str()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The SDK's sources and the WIT, built into the binary so that a scaffold needs
/// nothing but crates.io.
const SDK_FILES: [(&str, &str); 5] = [
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/config.rs",
        include_str!("../../../plugins/sdk/src/config.rs"),
    ),
    (
        "src/log.rs",
        include_str!("../../../plugins/sdk/src/log.rs"),
    ),
    (
        "src/state.rs",
        include_str!("../../../plugins/sdk/src/state.rs"),
    ),
    (
        "src/batch.rs",
        include_str!("../../../plugins/sdk/src/batch.rs"),
    ),
];
const WIT: &str = include_str!("../../../wit/plugin.wit");

const SDK_MANIFEST: &str = r#"[package]
name = "tocsin-plugin"
description = "Write Tocsin plugins (vendored copy made by `tocsin plugin new`)"
version = "0.1.0"
edition = "2024"
publish = false

[features]
transformer = []
filter = []
collector = []

[dependencies]
wit-bindgen = { version = "0.46", default-features = false, features = ["macros", "realloc"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
"#;

fn manifest(name: &str, kind: Kind) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
tocsin-plugin = {{ path = "vendor/tocsin-plugin", features = ["{kind}"] }}

# A workspace of its own: the plugin builds alone, wherever it is.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#,
        kind = kind.as_str()
    )
}

fn source(kind: Kind) -> &'static str {
    match kind {
        Kind::Filter => {
            r#"//! A filter plugin: one verdict per event of a batch.

use tocsin_plugin::{Batch, Config, Filter, Verdict};

struct Plugin;

impl Filter for Plugin {
    fn filter(batch: &Batch, config: &Config) -> Result<Vec<Verdict>, String> {
        // Params come from the filter entry: {type: plugin, params: {name: …, env: test}}.
        let env = config.str("env").unwrap_or("test");
        Ok(batch
            .events()
            .map(|event| match event.label("env") {
                Some(e) if e == env => Verdict::Drop(format!("env {e} is not watched")),
                _ => Verdict::Keep,
            })
            .collect())
    }
}

tocsin_plugin::export_filter!(Plugin);
"#
        }
        Kind::Transformer => {
            r#"//! A transformer plugin: a raw request in, events out. This one reads lines of
//! `CHECK HOST OK|FAIL MESSAGE…`.

use tocsin_plugin::{Config, Event, RawInput, Status, Transformer};

struct Plugin;

impl Transformer for Plugin {
    fn transform(input: &RawInput, _config: &Config) -> Result<Vec<Event>, String> {
        let text = std::str::from_utf8(&input.body).map_err(|_| "the body is not UTF-8".to_string())?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let mut words = line.split_whitespace();
                let (Some(check), Some(host), Some(result)) = (words.next(), words.next(), words.next()) else {
                    return Err(format!("expected CHECK HOST OK|FAIL MESSAGE, got \"{line}\""));
                };
                let status = match result {
                    "OK" => Status::Healthy,
                    "FAIL" => Status::Unhealthy,
                    other => return Err(format!("expected OK or FAIL, got \"{other}\"")),
                };
                let message = words.collect::<Vec<_>>().join(" ");
                Ok(Event::new(check, status).label("host", host).message(message))
            })
            .collect()
    }
}

tocsin_plugin::export_transformer!(Plugin);
"#
        }
        Kind::Collector => {
            r#"//! A collector plugin: sections of context for an incident.

use tocsin_plugin::{Collector, Config, IncidentSummary, Section};

struct Plugin;

impl Collector for Plugin {
    fn collect(incident: &IncidentSummary, _params: &Config) -> Result<Vec<Section>, String> {
        let lines: Vec<String> = incident
            .alerts
            .iter()
            .map(|a| format!("- `{}` {:?}", a.monitor, a.status))
            .collect();
        Ok(vec![Section {
            title: "Alerts".into(),
            markdown: lines.join("\n"),
        }])
    }
}

tocsin_plugin::export_collector!(Plugin);
"#
        }
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn scaffold(dir: &Path, name: &str, kind: Kind) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    write(&dir.join("Cargo.toml"), &manifest(name, kind))?;
    write(&dir.join("src/lib.rs"), source(kind))?;
    write(&dir.join(".gitignore"), "/target\n")?;
    // The SDK finds the WIT at ../../wit from its own directory.
    write(&dir.join("wit/plugin.wit"), WIT)?;
    let sdk = dir.join("vendor/tocsin-plugin");
    write(&sdk.join("Cargo.toml"), SDK_MANIFEST)?;
    for (file, text) in SDK_FILES {
        write(&sdk.join(file), text)?;
    }
    Ok(())
}
