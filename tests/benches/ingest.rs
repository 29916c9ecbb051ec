//! Ingest throughput, side by side with Prometheus Alertmanager in the same run.
//!
//! `cargo bench -p tocsin-tests --bench ingest` (after `bash infra/deps.sh`, which
//! installs Debian's prometheus-alertmanager). Both servers run on loopback as separate
//! processes; the same load generator sends the same alerts in batches of 100 to
//! Alertmanager's `POST /api/v2/alerts` and to Tocsin's `POST /v1/events` (durable: each
//! 202 comes after the SQLite commit, `synchronous=NORMAL` in WAL mode, which survives a
//! SIGKILL of the process but not a power cut; `--sync full` measures that too).
//!
//! Options (after `--`): `--seconds N` per measurement (default 10), `--connections N`
//! (default 8), `--sync normal|full`.

#![allow(clippy::print_stdout, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use tocsin_tests::{Server, create_token, sqlite_url, workspace};

const BATCH: usize = 100;
/// Distinct alert identities the load cycles through: a fleet of 2,000 instances times
/// 5 checks, each flipping status now and then.
const FLEET: usize = 10_000;

struct Settings {
    seconds: u64,
    connections: usize,
    sync: String,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        seconds: 10,
        connections: 8,
        sync: "normal".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => settings.seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => {
                settings.connections = args.next().context("--connections N")?.parse()?
            }
            "--sync" => settings.sync = args.next().context("--sync normal|full")?,
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    Ok(settings)
}

/// The i-th alert of the load, as (monitor, labels, unhealthy).
fn alert(i: usize) -> (String, Value, bool) {
    let identity = i % FLEET;
    let monitor = [
        "InstanceHealth",
        "DiskFree",
        "Http5xx",
        "Latency",
        "DnsResolve",
    ][identity % 5];
    let instance = identity / 5;
    let region = ["eu-west-1a", "eu-west-1b", "us-east-1a"][instance % 3];
    let labels = json!({
        "service": format!("svc-{}", instance % 40),
        "region": region,
        "instance": format!("i-{instance:06x}"),
    });
    (monitor.to_owned(), labels, (i / FLEET) % 7 == 3)
}

fn tocsin_batches(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|b| {
            let events: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let (monitor, labels, unhealthy) = alert(b * BATCH + i);
                    json!({
                        "alert": {"monitor": monitor, "status": if unhealthy { "unhealthy" } else { "healthy" },
                                  "message": "check output"},
                        "context": labels,
                    })
                })
                .collect();
            Bytes::from(serde_json::to_vec(&events).unwrap_or_default())
        })
        .collect()
}

fn alertmanager_batches(n: usize) -> Vec<Bytes> {
    let now = time::OffsetDateTime::now_utc();
    let starts = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let ended = (now - time::Duration::seconds(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (0..n)
        .map(|b| {
            let alerts: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let (monitor, labels, unhealthy) = alert(b * BATCH + i);
                    let mut labels = labels;
                    labels["alertname"] = json!(monitor);
                    let mut alert = json!({"labels": labels, "annotations": {"message": "check output"}, "startsAt": starts});
                    if !unhealthy {
                        // Alertmanager has no "healthy": a resolved alert is one that ended.
                        alert["endsAt"] = json!(ended);
                    }
                    alert
                })
                .collect();
            Bytes::from(serde_json::to_vec(&alerts).unwrap_or_default())
        })
        .collect()
}

struct Outcome {
    events_per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// Sends the batches round-robin over `connections` keep-alive connections for
/// `seconds`, after a 2 s warm-up, and counts events acknowledged with `expected`.
async fn load(
    url: &str,
    token: Option<&str>,
    batches: Arc<Vec<Bytes>>,
    expected: u16,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.connections)
        .build()?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..settings.connections {
        let (client, url, token) = (client.clone(), url.to_owned(), token.map(str::to_owned));
        let (batches, measuring, stop, done, errors, next) = (
            batches.clone(),
            measuring.clone(),
            stop.clone(),
            done.clone(),
            errors.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % batches.len();
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(batches[i].clone());
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let started = Instant::now();
                let ok = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status == expected
                    }
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        done.fetch_add(BATCH as u64, Ordering::Relaxed);
                        latencies.push(started.elapsed());
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(settings.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let events = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Outcome {
        events_per_second: events as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors: errors.load(Ordering::Relaxed),
    })
}

fn print(name: &str, outcome: &Outcome) {
    println!(
        "| {name:<44} | {:>12.0} | {:>8.2} | {:>8.2} | {:>6} |",
        outcome.events_per_second,
        outcome.p50.as_secs_f64() * 1e3,
        outcome.p99.as_secs_f64() * 1e3,
        outcome.errors
    );
}

fn alertmanager_version() -> String {
    Command::new("/usr/bin/prometheus-alertmanager")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8(if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            })
            .ok()
        })
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown version".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let batches = 2 * FLEET / BATCH * 7;
    let am_dir = tempfile::tempdir()?;
    let script = workspace().join("infra/alertmanager.sh");
    let started = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(am_dir.path())
        .output()?;
    if !started.status.success() {
        bail!(
            "cannot start Alertmanager (run `bash infra/deps.sh` first): {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    let am_url = String::from_utf8(started.stdout)?.trim().to_owned();
    let stop_am = scopeguard(move || {
        let _ = Command::new("bash")
            .arg(&script)
            .arg("stop")
            .arg(am_dir.path())
            .status();
    });

    let (_db_dir, db_url) = sqlite_url();
    let token = create_token(&db_url, &["--admin"])?;
    let server = Server::start(&db_url, &["--sqlite-synchronous", &settings.sync], &[])?;

    println!(
        "ingest benchmark: batches of {BATCH}, {} connections, {} s per measurement, {} CPUs",
        settings.connections,
        settings.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "Alertmanager: {}; Tocsin: SQLite WAL, synchronous={}",
        alertmanager_version(),
        settings.sync
    );
    println!();
    println!(
        "| {:<44} | {:>12} | {:>8} | {:>8} | {:>6} |",
        "target", "events/s", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "|{:-<46}|{:->14}|{:->10}|{:->10}|{:->8}|",
        "", "", "", "", ""
    );
    let am = load(
        &format!("{am_url}/api/v2/alerts"),
        None,
        Arc::new(alertmanager_batches(batches)),
        200,
        &settings,
    )
    .await?;
    print("Alertmanager POST /api/v2/alerts", &am);
    let tocsin = load(
        &format!("{}/v1/events", server.url),
        Some(&token),
        Arc::new(tocsin_batches(batches)),
        202,
        &settings,
    )
    .await?;
    print("Tocsin POST /v1/events (durable)", &tocsin);
    println!();
    println!(
        "ratio Tocsin / Alertmanager: {:.2}x",
        tocsin.events_per_second / am.events_per_second
    );
    drop(server);
    drop(stop_am);
    Ok(())
}

/// Runs `f` when dropped, so Alertmanager stops even when the benchmark fails.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
