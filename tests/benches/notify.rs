//! Alert to notification latency, side by side with Prometheus Alertmanager in the same
//! run: how long from sending an alert until a local webhook receiver gets the
//! notification, with no group wait and no collectors, under background load.
//!
//! `cargo bench -p tocsin-tests --bench notify [-- --probes N --background N --firing]`
//!
//! - **Alertmanager** (Debian's 0.25, `group_wait: 0s`): background alerts go to a null
//!   receiver; each probe is a new alert (`alertname=probe-N`) routed to a webhook
//!   receiver.
//! - **Tocsin** (`tocsin serve`, SQLite, `--notifiers` with one signed webhook): the
//!   background is steady events of a fleet; each probe is a new unhealthy event that
//!   opens an incident, is committed to the journal, runs through the pipeline, is
//!   written to the outbox and only then sent.
//!
//! Both receive the same probe rate and the same background rate (default 10,000/s,
//! batches of 100) from this process, over loopback.

#![allow(clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tocsin_tests::{Server, create_token, sqlite_url, workspace};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Alerts firing in the `--firing` background, re-sent in turn.
const FIRING_POOL: usize = 20_000;

/// Arrival time of each probe's notification, by probe name.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

struct Settings {
    probes: usize,
    background: usize,
    /// The background is what Prometheus sends while alerts fire: steady *unhealthy*
    /// repeats of a pool of 20,000 alerts across 50 services, through
    /// `POST /api/v2/alerts`, from a second team that has no route.
    firing: bool,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        // The p99 of 1,000 probes is the tenth-slowest: of 300 it was the third, and
        // moved by milliseconds from run to run.
        probes: 1_000,
        background: 10_000,
        firing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--probes" => settings.probes = args.next().context("--probes N")?.parse()?,
            "--background" => {
                settings.background = args.next().context("--background N")?.parse()?
            }
            "--firing" => settings.firing = true,
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    Ok(settings)
}

/// The webhook receiver both systems notify.
async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let arrivals: Arrivals = Arc::default();
    async fn tocsin(State(arrivals): State<Arrivals>, Json(body): Json<Value>) {
        let now = Instant::now();
        if let Some(monitor) = body["incident"]["alert_list"][0]["monitor"].as_str() {
            arrivals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(monitor.to_owned())
                .or_insert(now);
        }
    }
    async fn alertmanager(State(arrivals): State<Arrivals>, Json(body): Json<Value>) {
        let now = Instant::now();
        let mut arrivals = arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for alert in body["alerts"].as_array().into_iter().flatten() {
            if let Some(name) = alert["labels"]["alertname"].as_str() {
                arrivals.entry(name.to_owned()).or_insert(now);
            }
        }
    }
    let app = axum::Router::new()
        .route("/tocsin", post(tocsin))
        .route("/am", post(alertmanager))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

/// Sends `body(i)` to `url` every `every` until `stop`; returns how many were sent.
fn load(
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    every: Duration,
    body: impl Fn(usize) -> Value + Send + 'static,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            let mut request = client.post(&url).json(&body(sent));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            if request.send().await.is_ok_and(|r| r.status().is_success()) {
                sent += 1;
            }
        }
        sent
    })
}

struct Outcome {
    p50: Duration,
    p99: Duration,
    max: Duration,
    lost: usize,
    background_rate: f64,
}

/// Sends probes every 25-75 ms (at random) with background load running; waits for their
/// notifications.
async fn measure(
    settings: &Settings,
    arrivals: &Arrivals,
    probe: impl Fn(&str) -> reqwest::RequestBuilder,
    background: impl FnOnce(Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<usize>,
    prefix: &str,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = background(stop.clone());
    let started = Instant::now();
    // Let the background reach its rate first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sent = Vec::with_capacity(settings.probes);
    for i in 0..settings.probes {
        // 20 probes a second on average, at random moments: a fixed 50 ms beat would
        // always meet the same phase of the background's 10 ms beat.
        tokio::time::sleep(Duration::from_micros(
            25_000 + rand::random_range(0..50_000),
        ))
        .await;
        let name = format!("{prefix}-probe-{i}");
        let at = Instant::now();
        let answer = probe(&name).send().await.context("probe")?;
        if !answer.status().is_success() {
            bail!("probe refused: {}", answer.status());
        }
        sent.push((name, at));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let arrived = arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .filter(|name| name.starts_with(prefix))
            .count();
        if arrived >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = load.await?;
    let background_rate = (batches * 100) as f64 / started.elapsed().as_secs_f64();
    let arrivals = arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(name, at)| {
            arrivals
                .get(name)
                .map(|arrived| arrived.saturating_duration_since(*at))
        })
        .collect();
    let lost = sent.len() - latencies.len();
    // TOCSIN_BENCH_PROBES=<file> keeps each probe's send time (unix µs) and latency (µs),
    // to line up with the server's log.
    if let Ok(path) = std::env::var("TOCSIN_BENCH_PROBES") {
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let lines: Vec<String> = sent
            .iter()
            .filter_map(|(name, at)| {
                let latency = arrivals.get(name)?.saturating_duration_since(*at);
                let unix = (wall - now.duration_since(*at))
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some(format!(
                    "{prefix} {} {}",
                    unix.as_micros(),
                    latency.as_micros()
                ))
            })
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        std::io::Write::write_all(&mut file, (lines.join("\n") + "\n").as_bytes())?;
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Outcome {
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        lost,
        background_rate,
    })
}

fn print(name: &str, o: &Outcome) {
    println!(
        "| {name:<44} | {:>8.2} ms | {:>8.2} ms | {:>8.2} ms | {:>5} | {:>9.0}/s |",
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
        o.max.as_secs_f64() * 1e3,
        o.lost,
        o.background_rate
    );
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    // Build the server first, and let the disk catch up before each system is measured:
    // the build's writeback (a 200 MB binary) fell into Tocsin's phase and slowed its
    // fsyncs, which Alertmanager's phase never met.
    tocsin_tests::tocsin_bin();
    let settle = || {
        let _ = Command::new("sync").status();
        std::thread::sleep(Duration::from_secs(1));
    };
    settle();
    let (receiver_url, arrivals) = receiver().await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()?;
    let every = Duration::from_secs_f64(100.0 / settings.background as f64);
    let now = || {
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };

    // Alertmanager: probes to a webhook, background to a null receiver.
    let am_dir = tempfile::tempdir()?;
    let config = am_dir.path().join("bench.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: \"null\"\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n    - matchers: [ 'probe=\"true\"' ]\n      receiver: bench\n      group_by: [alertname]\n      group_wait: 0s\nreceivers:\n  - name: \"null\"\n  - name: bench\n    webhook_configs:\n      - url: {receiver_url}/am\n        send_resolved: false\n"
        ),
    )?;
    let script = workspace().join("infra/alertmanager.sh");
    let started = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(am_dir.path().join("am"))
        .env("ALERTMANAGER_CONFIG", &config)
        .output()?;
    if !started.status.success() {
        bail!(
            "cannot start Alertmanager (run `bash infra/deps.sh` first): {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    let am_url = String::from_utf8(started.stdout)?.trim().to_owned();

    println!(
        "notification latency: {} probes at 20/s, background {}/s in batches of 100 ({}), {} CPUs",
        settings.probes,
        settings.background,
        if settings.firing {
            "firing: steady unhealthy repeats of 20,000 alerts in 50 services, another team's"
        } else {
            "healthy: steady repeats of 10,000 alerts"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| {:<44} | {:>11} | {:>11} | {:>11} | {:>5} | {:>11} |",
        "target", "p50", "p99", "max", "lost", "background"
    );
    println!(
        "|{:-<46}|{:->13}|{:->13}|{:->13}|{:->7}|{:->13}|",
        "", "", "", "", "", ""
    );

    let am = {
        let (client, url) = (client.clone(), format!("{am_url}/api/v2/alerts"));
        let starts = now();
        measure(
            &settings,
            &arrivals,
            |name| client.post(&url).json(&json!([{ "labels": { "alertname": name, "probe": "true" }, "startsAt": now() }])),
            |stop| {
                let firing = settings.firing;
                load(client.clone(), url.clone(), None, every, move |b| {
                    Value::Array((0..100).map(|i| {
                        let n = b * 100 + i;
                        if firing {
                            json!({ "labels": { "alertname": "Background", "service": format!("svc-{}", n % 50), "instance": format!("i-{}", n % FIRING_POOL) }, "startsAt": starts })
                        } else {
                            json!({ "labels": { "alertname": "Background", "instance": format!("i-{}", n % 10_000) }, "startsAt": starts })
                        }
                    }).collect())
                }, stop)
            },
            "am",
        )
        .await?
    };
    print("Alertmanager (webhook, group_wait 0s)", &am);
    // Each system has the machine to itself (with the same load generator): Alertmanager
    // would otherwise keep regrouping its background alerts every second.
    let _ = Command::new("bash")
        .arg(&script)
        .arg("stop")
        .arg(am_dir.path().join("am"))
        .status();

    settle();

    // Tocsin: one signed webhook for the probes' team's incidents (for every team's
    // when the background is healthy: it opens none).
    let (_db_dir, db_url) = sqlite_url();
    let token = create_token(&db_url, &["--team", "bench"])?;
    let fleet = create_token(&db_url, &["--team", "fleet"])?;
    let notifiers = _db_dir.path().join("notifiers.yaml");
    let route = if settings.firing { "team: bench, " } else { "" };
    std::fs::write(
        &notifiers,
        format!(
            "notifiers:\n  bench: {{ kind: webhook, url: \"{receiver_url}/tocsin\", secret: bench }}\nroutes:\n  - {{ {route}webhooks: [bench] }}\n"
        ),
    )?;
    // TOCSIN_BENCH_LOG=<filter> keeps the server's log, printed after the figures.
    let log = std::env::var("TOCSIN_BENCH_LOG").ok();
    let env: Vec<(&str, &str)> = log
        .as_deref()
        .map(|f| ("TOCSIN_LOG", f))
        .into_iter()
        .collect();
    let server = Server::start(
        &db_url,
        &["--notifiers", notifiers.to_str().context("path")?],
        &env,
    )?;

    let tocsin = {
        let (client, url) = (client.clone(), format!("{}/v1/events", server.url));
        let token = token.clone();
        measure(
            &settings,
            &arrivals,
            |name| {
                client.post(&url).bearer_auth(&token).json(&json!({ "alert": { "monitor": name, "status": "unhealthy" }, "context": { "service": "bench" }, "alerting": { "priority": "low" } }))
            },
            |stop| {
                if settings.firing {
                    let url = format!("{}/api/v2/alerts", server.url);
                    let starts = now();
                    load(client.clone(), url, Some(fleet.clone()), every, move |b| {
                        Value::Array((0..100).map(|i| {
                            let n = b * 100 + i;
                            json!({ "labels": { "alertname": "Background", "service": format!("svc-{}", n % 50), "instance": format!("i-{}", n % FIRING_POOL) }, "startsAt": starts })
                        }).collect())
                    }, stop)
                } else {
                    load(client.clone(), url.clone(), Some(token.clone()), every, move |b| {
                        Value::Array((0..100).map(|i| json!({ "alert": { "monitor": "Background", "status": "healthy" }, "context": { "service": "fleet", "instance": format!("i-{}", (b * 100 + i) % 10_000) } })).collect())
                    }, stop)
                }
            },
            "tocsin",
        )
        .await?
    };
    print("Tocsin (durable outbox, signed webhook)", &tocsin);
    println!();
    println!(
        "Tocsin p99 / Alertmanager p99: {:.2}",
        tocsin.p99.as_secs_f64() / am.p99.as_secs_f64().max(1e-9)
    );

    if log.is_some() {
        for line in server.stderr() {
            println!("{line}");
        }
    }
    drop(server);
    Ok(())
}
