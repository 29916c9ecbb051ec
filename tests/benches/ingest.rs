//! Ingest throughput, side by side with Prometheus Alertmanager in the same run.
//!
//! `cargo bench -p tocsin-tests --bench ingest` (after `bash infra/deps.sh`, which
//! installs Debian's prometheus-alertmanager and wrk). Both servers run on loopback as
//! separate processes; the same load generator (wrk) sends the same alerts in batches of 100 to
//! Alertmanager's `POST /api/v2/alerts` and to Tocsin's `POST /v1/events` and its
//! Alertmanager-compatible `POST /api/v2/alerts` (durable: each
//! 202 comes after the SQLite commit, `synchronous=NORMAL` in WAL mode, which survives a
//! SIGKILL of the process but not a power cut; `--sync full` measures that too).
//!
//! Options (after `--`): `--seconds N` per measurement (default 10), `--connections N`
//! (default 8), `--sync normal|full`.

#![allow(clippy::print_stdout, missing_docs)]

use std::process::Command;

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
    p50: String,
    p99: String,
    errors: u64,
}

/// Drives `url` with wrk (one thread, `connections` keep-alive connections), cycling
/// through `batches` as request bodies: a load generator in C, so that neither server is
/// measured against a slow client. Returns what wrk reports.
fn load(
    url: &str,
    token: Option<&str>,
    batches: &[Bytes],
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let bodies = dir.path().join("bodies.jsonl");
    let mut lines = Vec::new();
    for batch in batches {
        lines.extend_from_slice(batch);
        lines.push(b'\n');
    }
    std::fs::write(&bodies, lines)?;
    let auth = token.map_or(String::new(), |t| {
        format!("wrk.headers['Authorization'] = 'Bearer {t}'")
    });
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n{auth}\n\
             local bodies = {{}}\nfor line in io.lines('{}') do bodies[#bodies + 1] = line end\n\
             local i = 0\nrequest = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n",
            bodies.display()
        ),
    )?;
    let output = Command::new("wrk")
        .args([
            "-t1",
            "-c",
            &settings.connections.to_string(),
            "-d",
            &format!("{}s", settings.seconds),
            "--latency",
        ])
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .context("cannot run wrk (run `bash infra/deps.sh` first)")?;
    let report = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        report
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_default()
    };
    let requests: f64 = field("Requests/sec:")
        .parse()
        .context("wrk printed no rate")?;
    let errors = field("Non-2xx or 3xx responses:").parse().unwrap_or(0);
    Ok(Outcome {
        events_per_second: requests * BATCH as f64,
        p50: field("50%"),
        p99: field("99%"),
        errors,
    })
}

fn print(name: &str, outcome: &Outcome) {
    println!(
        "| {name:<44} | {:>12.0} | {:>8} | {:>8} | {:>6} |",
        outcome.events_per_second, outcome.p50, outcome.p99, outcome.errors
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

fn main() -> anyhow::Result<()> {
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
        "target", "events/s", "p50", "p99", "errors"
    );
    println!(
        "|{:-<46}|{:->14}|{:->10}|{:->10}|{:->8}|",
        "", "", "", "", ""
    );
    let am = load(
        &format!("{am_url}/api/v2/alerts"),
        None,
        &alertmanager_batches(batches),
        &settings,
    )?;
    print("Alertmanager POST /api/v2/alerts", &am);
    let tocsin = load(
        &format!("{}/v1/events", server.url),
        Some(&token),
        &tocsin_batches(batches),
        &settings,
    )?;
    print("Tocsin POST /v1/events (durable)", &tocsin);
    // Let the pipeline catch up first, so that the next row does not pay for this one.
    let after_events = catch_up(&db_url)?;
    // The same Alertmanager payloads, through Tocsin's Alertmanager-compatible adapter.
    let adapted = load(
        &format!("{}/api/v2/alerts", server.url),
        Some(&token),
        &alertmanager_batches(batches),
        &settings,
    )?;
    print("Tocsin POST /api/v2/alerts (durable)", &adapted);
    println!();
    println!(
        "ratio Tocsin / Alertmanager: {:.2}x (/v1/events), {:.2}x (/api/v2/alerts, same payloads)",
        tocsin.events_per_second / am.events_per_second,
        adapted.events_per_second / am.events_per_second
    );

    // The 202 means durable in the journal; the pipeline follows behind. Report
    // how far behind it was when each load stopped and how long it took to catch up.
    let after_adapter = catch_up(&db_url)?;
    for (load, (behind, ms)) in [
        ("/v1/events", after_events),
        ("/api/v2/alerts", after_adapter),
    ] {
        println!(
            "pipeline after {load}: {behind} events behind when the load stopped, caught up {ms} ms later"
        );
    }
    drop(server);
    drop(stop_am);
    Ok(())
}

/// Waits until the pipeline has processed the journal; returns how many events it was
/// behind and how long it took, in milliseconds.
fn catch_up(db_url: &str) -> anyhow::Result<(u64, u128)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = tocsin_store::open(db_url, tocsin_store::StoreOptions::default()).await?;
        let behind = store.lag().await?;
        let started = std::time::Instant::now();
        while store.lag().await? > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok((behind, started.elapsed().as_millis()))
    })
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
