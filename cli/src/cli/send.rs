//! `tocsin send FILE…`: post events from files (or stdin) to a server, in batches.

#![allow(clippy::print_stdout)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Events per request: well under the server's 10,000-event limit.
const BATCH: usize = 1_000;
/// Bytes per request: well under the server's 10 MiB limit, even for large events.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Arguments of `tocsin send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON or YAML files, each holding one event or a list of events; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The server's base URL.
    #[arg(long, env = "TOCSIN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token (`tocsin token create`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    token: String,
    /// How long to keep retrying a batch the server cannot take now (503 while its
    /// pipeline is behind, 429, 500, 502, 504, or no connection), waiting as its
    /// Retry-After says or with a growing backoff.
    #[arg(long, env = "TOCSIN_SEND_RETRY_FOR", default_value = "5m", value_parser = tocsin_pipeline::args::duration)]
    retry_for: i64,
}

/// First wait of the backoff, and its cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Posts one batch, retrying what the server could not take now, for `retry_for`.
/// Returns the final status and body. A retried batch was not stored (the server stores
/// all of a request or none), except when the connection broke after the commit: then
/// its events arrive twice, which the pipeline treats as repeats.
async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    token: &str,
    chunk: &[Value],
    retry_for: Duration,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let started = Instant::now();
    let mut backoff = BACKOFF_FIRST;
    loop {
        let sent = client
            .post(endpoint)
            .bearer_auth(token)
            .json(&chunk)
            .send()
            .await;
        let wait = match sent {
            Ok(response) => {
                let status = response.status();
                let retry = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
                let after = tocsin_outbox::retry_after(response.headers());
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if !retry || started.elapsed() >= retry_for {
                    return Ok((status, body));
                }
                let message = body.get("error").and_then(Value::as_str).unwrap_or("");
                eprintln!("the server answered {status} ({message}); retrying");
                after.unwrap_or(backoff)
            }
            Err(e) if started.elapsed() < retry_for && (e.is_connect() || e.is_timeout()) => {
                eprintln!("cannot reach {endpoint} ({e}); retrying");
                backoff
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {endpoint}")),
        };
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let endpoint = format!("{}/v1/events", args.url.trim_end_matches('/'));
    let mut clean = true;
    for file in &args.files {
        let name = file.display().to_string();
        let items = read_events(file).with_context(|| format!("{name}: cannot read events"))?;
        let total = items.len();
        let (mut accepted, mut rejected) = (0, 0);
        for (offset, chunk) in batches(&items) {
            let retry_for = Duration::from_millis(args.retry_for.max(0) as u64);
            let (status, body) = post(&client, &endpoint, &args.token, chunk, retry_for).await?;
            if !(status.is_success() || status == reqwest::StatusCode::BAD_REQUEST) {
                let message = body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no details");
                bail!("{name}: the server answered {status}: {message}");
            }
            accepted += body.get("accepted").and_then(Value::as_u64).unwrap_or(0);
            for item in body
                .get("rejected")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                rejected += 1;
                let index =
                    item.get("index").and_then(Value::as_u64).unwrap_or(0) as usize + offset;
                let field = item.get("field").and_then(Value::as_str).unwrap_or("?");
                let error = item.get("error").and_then(Value::as_str).unwrap_or("?");
                println!("{name}: event {index}: {field}: {error}");
            }
            if total > BATCH {
                eprint!("\r{name}: sent {}/{total}", (offset + chunk.len()));
            }
        }
        if total > BATCH {
            eprintln!();
        }
        println!("{name}: {accepted} accepted, {rejected} refused");
        clean &= rejected == 0;
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Splits events into requests of at most [`BATCH`] events and [`BATCH_BYTES`] bytes;
/// yields each with the index of its first event.
fn batches(items: &[Value]) -> Vec<(usize, &[Value])> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = serde_json::to_string(item).map_or(0, |s| s.len()) + 1;
        if i > start && (i - start == BATCH || bytes + size > BATCH_BYTES) {
            batches.push((start, &items[start..i]));
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        batches.push((start, &items[start..]));
    }
    batches
}

/// Reads a file as JSON (`.json`) or YAML (`.yaml`, `.yml`); anything else is tried as
/// JSON, then YAML. The server validates the events; this only splits them into batches.
fn read_events(file: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(file)?
    };
    let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value: Value = match extension {
        "json" => serde_json::from_str(&text).context("invalid JSON")?,
        "yaml" | "yml" => serde_yaml_ng::from_str(&text).context("invalid YAML")?,
        _ => match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(_) => {
                serde_yaml_ng::from_str(&text).context("neither valid JSON nor valid YAML")?
            }
        },
    };
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(_) => Ok(vec![value]),
        _ => bail!("expected an event or a list of events"),
    }
}
