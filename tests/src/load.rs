//! What the throughput benchmarks share: the load (a fleet of alert identities, as
//! Tocsin events and as Alertmanager alerts, in batches), wrk to send it, Alertmanager
//! beside Tocsin in the same run.

use std::process::Command;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::{Value, json};

/// Events per request.
pub const BATCH: usize = 100;
/// Distinct alert identities the load cycles through: a fleet of 2,000 instances times
/// 5 checks, each flipping status now and then.
pub const FLEET: usize = 10_000;

/// Starts Alertmanager (`infra/alertmanager.sh`) on a free port; returns its URL and a
/// guard that stops it.
pub fn start_alertmanager() -> anyhow::Result<(String, impl Drop)> {
    let dir = tempfile::tempdir()?;
    let script = crate::workspace().join("infra/alertmanager.sh");
    let started = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(dir.path())
        .output()?;
    if !started.status.success() {
        bail!(
            "cannot start Alertmanager (run `bash infra/deps.sh` first): {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    let url = String::from_utf8(started.stdout)?.trim().to_owned();
    let stop = scopeguard(move || {
        let _ = Command::new("bash")
            .arg(&script)
            .arg("stop")
            .arg(dir.path())
            .status();
    });
    Ok((url, stop))
}

/// The i-th alert of the load, as (monitor, labels, unhealthy).
pub fn alert(i: usize) -> (String, Value, bool) {
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

/// `n` request bodies of Tocsin events ([`BATCH`] each) from the fleet's load.
pub fn tocsin_batches(n: usize) -> Vec<Bytes> {
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

/// The same load as Alertmanager alerts (`POST /api/v2/alerts` bodies).
pub fn alertmanager_batches(n: usize) -> Vec<Bytes> {
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

/// What wrk measured.
pub struct Outcome {
    /// Events per second (requests per second times [`BATCH`]).
    pub events_per_second: f64,
    /// Median latency, as wrk prints it.
    pub p50: String,
    /// 99th percentile latency.
    pub p99: String,
    /// Answers other than 2xx.
    pub errors: u64,
}

/// Drives `url` with wrk (one thread, `connections` keep-alive connections), cycling
/// through `batches` as request bodies: a load generator in C, so that neither server is
/// measured against a slow client. Returns what wrk reports.
pub fn load(
    url: &str,
    token: Option<&str>,
    batches: &[Bytes],
    connections: usize,
    seconds: u64,
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
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
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

/// Prints the head of the results table (benchmarks print their figures).
#[allow(clippy::print_stdout)]
pub fn print_header() {
    println!(
        "| {:<44} | {:>12} | {:>8} | {:>8} | {:>6} |",
        "target", "events/s", "p50", "p99", "errors"
    );
    println!(
        "|{:-<46}|{:->14}|{:->10}|{:->10}|{:->8}|",
        "", "", "", "", ""
    );
}

/// Prints one row of the table [`print_header`] starts.
#[allow(clippy::print_stdout)]
pub fn print(name: &str, outcome: &Outcome) {
    println!(
        "| {name:<44} | {:>12.0} | {:>8} | {:>8} | {:>6} |",
        outcome.events_per_second, outcome.p50, outcome.p99, outcome.errors
    );
}

/// What `prometheus-alertmanager --version` says.
pub fn alertmanager_version() -> String {
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

/// Runs `f` when dropped, so Alertmanager stops even when the benchmark fails.
pub fn scopeguard(f: impl FnOnce()) -> impl Drop {
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
