//! Soak: `tocsin serve` (release, SQLite) for ten minutes at a paced 5,000 events/s with
//! a filter plugin on every event, collectors on the probes and notifiers on fakes.
//! Resident memory, journal and database size and latency percentiles are plotted over
//! time as PNGs in `docs/`; the bench fails (exits non-zero) on any error, or when
//! resident memory grows after warm-up (a leak).
//!
//! `cargo bench -p tocsin-tests --bench soak` (after `bash infra/deps.sh`: the
//! wasm32-wasip2 target for the plugin, fonts-dejavu-core for the charts' text).
//!
//! - **Setup.** One team with a token; the filter plugin `plugins/examples/retired-hosts`
//!   uploaded (`PUT /v1/plugins/retired-hosts?kind=filter`); a runbook
//!   (`PUT /v1/runbooks/SOAK-1`); a notifiers file routing the team to the in-process
//!   fakes of `tocsin_tests::fakes` (page: PagerDuty, chat: Slack) and its `probe`
//!   service also to a webhook receiver of this bench. `--resolve-grace 30s` (not 5 m)
//!   so that incidents open and resolve within the run and the state reaches its steady
//!   size during the warm-up.
//! - **Load.** The fleet of `tocsin_tests::load` (10,000 identities), each reporting
//!   every two seconds, in batches of 100 sent on a fixed beat (open loop, never faster)
//!   over `--connections` connections. Each identity is unhealthy for 30 s of every
//!   400 s, at its own phase: 1 % of events are state changes; groups (monitor, service,
//!   region) open incidents now and then and resolve once all their alerts recovered.
//!   `InstanceHealth` is `high` (pages), the rest `low`. Every event lists the filter
//!   plugin, which drops the 10 identities of two retired instances.
//! - **Probes.** Every 500 ms a new alert that opens its own incident, with a `markdown`
//!   and a `runbook` collector; its latency runs from sending it until the webhook
//!   receiver has its `open` notification (which must carry both sections). Five
//!   seconds later the probe recovers, so its incident resolves.
//! - **Samples.** Every second: the server's RSS, the journal file and its WAL, the
//!   main database and its WAL, `/metrics` (lag, events accepted, delivery outcomes,
//!   plugin errors), CPU time of the server, of this bench and of the whole machine (to
//!   tell a slow window caused by another process). Per 10 s window: probe latency
//!   p50/p99, ingest latency p50/p99 (from each request's scheduled time, so a stall
//!   counts in full).
//! - **Memory.** RSS must stay within 10 % of its size at the end of the warm-up (six
//!   minutes: SQLite's page caches fill until the main database passes the writer's
//!   32 MiB cache), at the end and along the least-squares line.
//! - **Errors.** Every ingest answer other than `202`, every event refused, every fake
//!   `violations()`, every delivery retried or dead, every plugin error, every probe not
//!   delivered (or delivered without its sections), every `ERROR` line of the server.
//!
//! Options (after `--`): `--seconds N` (default 600), `--rate N` events/s (default
//! 5000), `--connections N` (default 4), `--resolve-grace D` (default 30s), `--warm-up N`
//! seconds (default 360, at most 60 % of the run), `--out DIR` (default `docs`).

#![allow(clippy::print_stdout, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use plotters::prelude::*;
use serde_json::{Value, json};
use tocsin_tests::fakes::Fakes;
use tocsin_tests::load::{BATCH, FLEET, alert};
use tocsin_tests::sample::{
    cpu_seconds, file_mib, machine_busy_seconds, metric, metric_where, rss_mib,
};
use tocsin_tests::{Server, create_token, free_port, sqlite_url, workspace};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fleet identity's status cycle, in rounds (a round: every identity reports once).
const CYCLE_ROUNDS: usize = 200;
/// Rounds of each cycle an identity is unhealthy: two changes per 200 reports is 1 %.
const UNHEALTHY_ROUNDS: usize = 15;
/// Instances the filter plugin drops (2 of the fleet's 2,000: 10 identities).
const RETIRED: [&str; 2] = ["i-000007", "i-0003e8"];
/// The runbook the probes' collector reads, and a line of it their notification must
/// carry.
const RUNBOOK: &str = "SOAK-1";
const RUNBOOK_LINE: &str = "Restart the prober, then check its queue.";
/// What the probes' markdown collector writes (before its template is rendered).
const MARKDOWN_LINE: &str = "Soak probe";
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// A probe recovers this many probes (5 s) after it was sent.
const PROBE_RECOVERS_AFTER: usize = 10;
/// Latency windows, in seconds.
const WINDOW: f64 = 10.0;
/// The warm-up, in seconds (at most 60 % of the run): the state (incidents open at a
/// time, the allocator's arenas) reaches its size within the first minute, but SQLite's
/// page caches fill as the main database grows (about 5 MiB a minute here) until it
/// passes the writer's cache of 32 MiB, after five to six minutes.
const WARM_UP: f64 = 360.0;
/// The moment the issue names for comparison: RSS two minutes in.
const MINUTE_TWO: f64 = 120.0;
/// Most that resident memory may grow after warm-up, as a share of its size then. RSS
/// moves by a few percent with the allocator and SQLite's caches; a leak of 10 bytes an
/// event (3 million events in ten minutes) already passes this, a real one by far.
const MAX_GROWTH: f64 = 0.10;

struct Settings {
    seconds: u64,
    rate: u64,
    connections: usize,
    resolve_grace: String,
    warm_up: f64,
    out: PathBuf,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        seconds: 600,
        rate: 5_000,
        connections: 4,
        resolve_grace: "30s".into(),
        warm_up: WARM_UP,
        out: workspace().join("docs"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => settings.seconds = value()?.parse()?,
            "--rate" => settings.rate = value()?.parse()?,
            "--connections" => settings.connections = value()?.parse()?,
            "--resolve-grace" => settings.resolve_grace = value()?,
            "--warm-up" => settings.warm_up = value()?.parse()?,
            "--out" => settings.out = PathBuf::from(value()?),
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(settings.seconds >= 10, "--seconds must be at least 10");
    anyhow::ensure!(
        settings.rate >= BATCH as u64,
        "--rate must be at least {BATCH}"
    );
    anyhow::ensure!(settings.connections > 0, "--connections must be at least 1");
    Ok(settings)
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: f64,
    rss_mib: f64,
    journal_mib: f64,
    journal_wal_mib: f64,
    database_mib: f64,
    database_wal_mib: f64,
    lag_events: f64,
    accepted: f64,
    rejected: f64,
    retried: f64,
    dead: f64,
    plugin_calls: f64,
    plugin_errors: f64,
    incidents_opened: f64,
    /// CPU seconds so far: the server's, this bench's, the whole machine's.
    server_cpu: f64,
    bench_cpu: f64,
    machine_cpu: f64,
}

/// A request or probe: when it was (to be) sent, in seconds since the start, and how
/// long it took, in ms.
#[derive(Debug, Clone, Copy)]
struct Timed {
    at: f64,
    ms: f64,
}

/// Errors by kind: how many, and the first one's text.
#[derive(Default)]
struct Errors(Mutex<BTreeMap<&'static str, (u64, String)>>);

impl Errors {
    fn add(&self, kind: &'static str, count: u64, example: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        let mut errors = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = errors.entry(kind).or_insert_with(|| (0, example()));
        entry.0 += count;
    }

    fn total(&self) -> u64 {
        let errors = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        errors.values().map(|(n, _)| n).sum()
    }

    fn print(&self) {
        let errors = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, (count, example)) in errors.iter() {
            println!("  error: {count} × {kind}, first: {example}");
        }
    }
}

/// What the webhook receiver saw of each probe (by monitor).
#[derive(Default)]
struct Arrivals {
    /// First `open` notification: when, and whether it carried both sections.
    opened: HashMap<String, (Instant, bool)>,
    resolved: usize,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bench's own webhook receiver, for the probes' notifications.
async fn receiver() -> anyhow::Result<(String, Shared<Arrivals>)> {
    let arrivals: Shared<Arrivals> = Arc::default();
    async fn hook(State(arrivals): State<Shared<Arrivals>>, body: Bytes) {
        let now = Instant::now();
        let Ok(body) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        let Some(monitor) = body["incident"]["alert_list"][0]["monitor"].as_str() else {
            return;
        };
        let mut arrivals = lock(&arrivals);
        match body["action"].as_str() {
            Some("open") => {
                let facts = body["facts"].to_string();
                let complete = facts.contains(RUNBOOK_LINE) && facts.contains(MARKDOWN_LINE);
                arrivals
                    .opened
                    .entry(monitor.to_owned())
                    .or_insert((now, complete));
            }
            Some("resolve") => arrivals.resolved += 1,
            _ => {}
        }
    }
    let app = axum::Router::new()
        .route("/probe", post(hook))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/probe", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

/// The filter every event lists.
fn filters() -> Value {
    json!([{ "type": "plugin", "params": { "name": "retired-hosts", "hosts": RETIRED } }])
}

/// Request body `b` of the load: events `b * BATCH ..` of the fleet.
fn load_batch(b: usize, filters: &Value) -> Vec<u8> {
    let events: Vec<Value> = (0..BATCH)
        .map(|k| {
            let n = b * BATCH + k;
            let identity = n % FLEET;
            let round = n / FLEET;
            // 37 is prime to 200: 50 identities at each phase of the cycle.
            let unhealthy = (round + identity * 37) % CYCLE_ROUNDS < UNHEALTHY_ROUNDS;
            let (monitor, labels, _) = alert(identity);
            let priority = if monitor == "InstanceHealth" {
                "high"
            } else {
                "low"
            };
            json!({
                "alert": { "monitor": monitor, "status": if unhealthy { "unhealthy" } else { "healthy" },
                           "message": "check output" },
                "context": labels,
                "filters": filters,
                "alerting": { "priority": priority },
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
}

/// Probe `i`, unhealthy (with its collectors) or recovered.
fn probe(i: usize, unhealthy: bool, filters: &Value) -> Value {
    let mut event = json!({
        "alert": { "monitor": format!("probe-{i}"), "status": if unhealthy { "unhealthy" } else { "healthy" } },
        "context": { "service": "probe", "region": "eu-west-1a", "instance": "prober" },
        "filters": filters,
    });
    if unhealthy {
        event["plugins"] = json!([
            { "type": "markdown", "params": { "title": "Probe", "content": format!("{MARKDOWN_LINE} ${{alert.monitor}}") } },
            { "type": "runbook", "params": { "id": RUNBOOK } },
        ]);
    }
    event
}

/// Everything a run measured.
struct Outcome {
    samples: Vec<Sample>,
    ingest: Vec<Timed>,
    probes: Vec<Timed>,
    load_seconds: f64,
    events_sent: u64,
    resolved: usize,
    requests_to: BTreeMap<&'static str, usize>,
    pages: usize,
}

struct Run<'a> {
    settings: &'a Settings,
    server: &'a Server,
    token: String,
    metrics_url: String,
    journal: PathBuf,
    database: PathBuf,
    fakes: Fakes,
    arrivals: Shared<Arrivals>,
    errors: Arc<Errors>,
}

impl Run<'_> {
    fn sample(&self, text: &str, started: Instant) -> Sample {
        Sample {
            at: started.elapsed().as_secs_f64(),
            rss_mib: rss_mib(self.server.pid()),
            journal_mib: file_mib(&self.journal),
            journal_wal_mib: size_mib(&wal(&self.journal)),
            database_mib: size_mib(&self.database),
            database_wal_mib: size_mib(&wal(&self.database)),
            lag_events: metric(text, "tocsin_pipeline_lag_events"),
            accepted: metric(text, "tocsin_events_accepted_total"),
            rejected: metric(text, "tocsin_events_rejected_total"),
            retried: metric_where(text, "tocsin_outbox_deliveries_total", "outcome=\"retry\""),
            dead: metric_where(text, "tocsin_outbox_deliveries_total", "outcome=\"dead\""),
            plugin_calls: metric(text, "tocsin_plugin_calls_total"),
            plugin_errors: metric(text, "tocsin_plugin_errors_total"),
            incidents_opened: metric(text, "tocsin_incidents_opened_total"),
            server_cpu: cpu_seconds(self.server.pid()),
            bench_cpu: cpu_seconds(std::process::id()),
            machine_cpu: machine_busy_seconds(),
        }
    }

    async fn setup(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let component = tocsin_tests::plugins::component("retired-hosts");
        let answer = client
            .put(format!(
                "{}/v1/plugins/retired-hosts?kind=filter",
                self.server.url
            ))
            .bearer_auth(&self.token)
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await?;
        anyhow::ensure!(
            answer.status() == reqwest::StatusCode::CREATED,
            "plugin upload: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
        let answer = client
            .put(format!("{}/v1/runbooks/{RUNBOOK}", self.server.url))
            .bearer_auth(&self.token)
            .header("content-type", "text/markdown")
            .body(format!("# Probe down\n\n{RUNBOOK_LINE}\n"))
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "runbook: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
        Ok(())
    }

    async fn run(self) -> anyhow::Result<Outcome> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.settings.connections + 2)
            .timeout(Duration::from_secs(30))
            .build()?;
        self.setup(&client).await?;
        let seconds = self.settings.seconds as f64;
        let started = Instant::now();

        // The load: one request every BATCH / rate seconds, each on a connection of its
        // own once one is free, timed from the moment it was due.
        let ingest: Shared<Vec<Timed>> = Arc::default();
        let events_sent = Arc::new(AtomicU64::new(0));
        let load = {
            let (client, url, token) = (
                client.clone(),
                format!("{}/v1/events", self.server.url),
                self.token.clone(),
            );
            let (ingest, errors, events_sent) =
                (ingest.clone(), self.errors.clone(), events_sent.clone());
            let every = Duration::from_secs_f64(BATCH as f64 / self.settings.rate as f64);
            let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.connections));
            tokio::spawn(async move {
                let filters = filters();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut in_flight = Vec::new();
                for b in 0.. {
                    let due = tick.tick().await;
                    let at = due.into_std().saturating_duration_since(started);
                    if at.as_secs_f64() >= seconds {
                        break;
                    }
                    let body = load_batch(b, &filters);
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let request = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body);
                    let (ingest, errors, events_sent) =
                        (ingest.clone(), errors.clone(), events_sent.clone());
                    in_flight.push(tokio::spawn(async move {
                        let answer = request.send().await;
                        let ms = (started.elapsed().saturating_sub(at)).as_secs_f64() * 1e3;
                        drop(slot);
                        match answer {
                            Ok(answer) if answer.status() == reqwest::StatusCode::ACCEPTED => {
                                events_sent.fetch_add(BATCH as u64, Ordering::Relaxed);
                            }
                            Ok(answer) => {
                                let status = answer.status();
                                let text = answer.text().await.unwrap_or_default();
                                errors.add("ingest answer not 202", 1, || {
                                    format!("{status}: {text}")
                                });
                            }
                            Err(e) => errors.add("ingest request failed", 1, || e.to_string()),
                        }
                        lock(&ingest).push(Timed {
                            at: at.as_secs_f64(),
                            ms,
                        });
                    }));
                    in_flight.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
                }
                for task in in_flight {
                    let _ = task.await;
                }
            })
        };

        // The probes.
        let probes = {
            let (client, url, token) = (
                client.clone(),
                format!("{}/v1/events", self.server.url),
                self.token.clone(),
            );
            let (errors, events_sent) = (self.errors.clone(), events_sent.clone());
            tokio::spawn(async move {
                let filters = filters();
                let mut sent = Vec::new();
                let mut tick = tokio::time::interval(PROBE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for i in 0.. {
                    tick.tick().await;
                    if started.elapsed().as_secs_f64() >= seconds {
                        break;
                    }
                    let mut events = vec![probe(i, true, &filters)];
                    if let Some(recovered) = i.checked_sub(PROBE_RECOVERS_AFTER) {
                        events.push(probe(recovered, false, &filters));
                    }
                    let count = events.len() as u64;
                    let at = Instant::now();
                    let answer = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&events)
                        .send()
                        .await;
                    match answer {
                        Ok(answer) if answer.status() == reqwest::StatusCode::ACCEPTED => {
                            events_sent.fetch_add(count, Ordering::Relaxed);
                            sent.push((format!("probe-{i}"), at));
                        }
                        Ok(answer) => {
                            let status = answer.status();
                            let text = answer.text().await.unwrap_or_default();
                            errors.add("probe answer not 202", 1, || format!("{status}: {text}"));
                        }
                        Err(e) => errors.add("probe request failed", 1, || e.to_string()),
                    }
                }
                sent
            })
        };

        // The samples, every second while the load runs.
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !load.is_finished() {
            tick.tick().await;
            let text = self.metrics(&client).await;
            samples.push(self.sample(&text, started));
            if let Some(last) = samples.last()
                && samples.len() % 60 == 0
            {
                println!(
                    "{:>4.0} s: RSS {:.1} MiB, journal {:.1} MiB, database {:.1} MiB + WAL {:.1} MiB, lag {:.0}, accepted {:.0}",
                    last.at,
                    last.rss_mib,
                    last.journal_mib,
                    last.database_mib,
                    last.database_wal_mib,
                    last.lag_events,
                    last.accepted
                );
            }
        }
        load.await?;
        let sent = probes.await?;
        let load_seconds = started.elapsed().as_secs_f64();

        // Every probe's notification, for at most 30 s more.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && lock(&self.arrivals).opened.len() < sent.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Deliveries still retrying or dead show in the last sample.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let last = self.sample(&self.metrics(&client).await, started);

        let arrivals = lock(&self.arrivals);
        let mut probes = Vec::with_capacity(sent.len());
        for (name, at) in &sent {
            match arrivals.opened.get(name) {
                Some((arrived, complete)) => {
                    probes.push(Timed {
                        at: at.saturating_duration_since(started).as_secs_f64(),
                        ms: arrived.saturating_duration_since(*at).as_secs_f64() * 1e3,
                    });
                    if !complete {
                        self.errors
                            .add("probe notified without its collected sections", 1, || {
                                name.clone()
                            });
                    }
                }
                None => self
                    .errors
                    .add("probe not delivered within 30 s of the end", 1, || {
                        name.clone()
                    }),
            }
        }
        let resolved = arrivals.resolved;
        drop(arrivals);

        let events_sent = events_sent.load(Ordering::Relaxed);
        let errors = &self.errors;
        errors.add("events refused", last.rejected as u64, || {
            "tocsin_events_rejected_total".into()
        });
        errors.add(
            "events accepted differ from events sent",
            u64::from(last.accepted as u64 != events_sent),
            || format!("{} accepted, {events_sent} sent", last.accepted),
        );
        errors.add("deliveries retried", last.retried as u64, || {
            "tocsin_outbox_deliveries_total{outcome=\"retry\"}".into()
        });
        errors.add("deliveries dead", last.dead as u64, || {
            "tocsin_outbox_deliveries_total{outcome=\"dead\"}".into()
        });
        errors.add("plugin errors", last.plugin_errors as u64, || {
            "tocsin_plugin_errors_total".into()
        });
        if last.plugin_calls == 0.0 {
            errors.add("the filter plugin was never called", 1, String::new);
        }
        let requests = self.fakes.requests();
        let mut requests_to = BTreeMap::new();
        for request in &requests {
            *requests_to.entry(request.service).or_default() += 1;
            errors.add("fake violations", request.violations.len() as u64, || {
                format!(
                    "{} {}: {}",
                    request.method,
                    request.path,
                    request.violations.join("; ")
                )
            });
        }
        let logged: Vec<String> = self
            .server
            .stderr()
            .into_iter()
            .filter(|l| l.contains("ERROR"))
            .collect();
        errors.add("server ERROR log lines", logged.len() as u64, || {
            logged.first().cloned().unwrap_or_default()
        });
        let ingest = std::mem::take(&mut *lock(&ingest));
        Ok(Outcome {
            samples,
            ingest,
            probes,
            load_seconds,
            events_sent,
            resolved,
            requests_to,
            pages: self.fakes.pages().len(),
        })
    }

    async fn metrics(&self, client: &reqwest::Client) -> String {
        match client.get(&self.metrics_url).send().await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// The WAL beside a SQLite file.
fn wal(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

/// Size of one file in MiB (0 when it is missing).
fn size_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Per window: (its middle in minutes, p50, p99) of what was sent in it.
fn windows(timed: &[Timed], seconds: f64) -> Vec<(f64, f64, f64)> {
    let count = (seconds / WINDOW).ceil() as usize;
    (0..count)
        .filter_map(|w| {
            let (from, to) = (w as f64 * WINDOW, (w + 1) as f64 * WINDOW);
            let values = sorted(
                timed
                    .iter()
                    .filter(|t| t.at >= from && t.at < to)
                    .map(|t| t.ms),
            );
            (!values.is_empty()).then(|| {
                (
                    (from + WINDOW / 2.0) / 60.0,
                    percentile(&values, 0.50),
                    percentile(&values, 0.99),
                )
            })
        })
        .collect()
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// One line of a chart.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    width: u32,
}

const BLUE: RGBColor = RGBColor(0, 90, 181);
const RED: RGBColor = RGBColor(220, 50, 32);
const GREEN: RGBColor = RGBColor(26, 133, 60);
const ORANGE: RGBColor = RGBColor(230, 140, 0);
const GREY: RGBColor = RGBColor(120, 120, 120);

/// A chart of `lines` over minutes, with the end of the warm-up marked.
fn chart(path: &Path, title: &str, unit: &str, lines: &[Line], warm_up: f64) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0 / 60.0, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let decimals = if y_max < 10.0 { 1 } else { 0 };
    chart
        .configure_mesh()
        .x_desc("minutes since the load started")
        .y_desc(unit)
        .x_label_formatter(&|v| {
            if x_max < 2.0 {
                format!("{v:.2}")
            } else if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(warm_up / 60.0, 0.0), (warm_up / 60.0, y_max)],
            GREY.stroke_width(2),
        ))?
        .label(format!("end of warm-up ({warm_up:.0} s)"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREY.stroke_width(2)));
    for line in lines {
        let style = line.colour.stroke_width(line.width);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let font = tocsin_tests::sample::chart_font()?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("cannot read DejaVuSans.ttf"))?;
    // Build the server and the plugin before anything is timed.
    tocsin_tests::tocsin_bin();
    tocsin_tests::plugins::built();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (fakes, (hook_url, arrivals)) =
        runtime.block_on(async { anyhow::Ok((Fakes::start().await?, receiver().await?)) })?;

    let (dir, db_url) = sqlite_url();
    let token = create_token(&db_url, &["--team", "soak"])?;
    let notifiers = dir.path().join("notifiers.yaml");
    let fakes_url = &fakes.url;
    std::fs::write(
        &notifiers,
        format!(
            "public-url: http://tocsin.test\n\
             notifiers:\n  \
               pd: {{ kind: pagerduty, routing-key: \"0123456789abcdef0123456789abcdef\", url: \"{fakes_url}\" }}\n  \
               slack: {{ kind: slack, token: xoxb-soak-token, channel: \"#ops\", url: \"{fakes_url}\" }}\n  \
               probe: {{ kind: webhook, url: \"{hook_url}\", secret: soak-secret }}\n\
             routes:\n  \
               - {{ team: soak, page: pd, chat: slack }}\n  \
               - {{ team: soak, service: probe, page: pd, chat: slack, webhooks: [probe] }}\n"
        ),
    )?;
    let metrics_listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(
        &db_url,
        &[
            "--notifiers",
            notifiers.to_str().context("temporary path is not UTF-8")?,
            "--metrics-listen",
            &metrics_listen,
            "--resolve-grace",
            &settings.resolve_grace,
        ],
        &[],
    )?;
    let journal = dir.path().join("tocsin.journal.db");
    anyhow::ensure!(journal.exists(), "no journal file at {}", journal.display());
    println!(
        "soak: {} s at {} events/s (batches of {BATCH} over {} connections, fleet of {FLEET}, 1 % state changes), \
         a probe every {} ms, resolve grace {}, {} CPUs",
        settings.seconds,
        settings.rate,
        settings.connections,
        PROBE_EVERY.as_millis(),
        settings.resolve_grace,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let errors = Arc::new(Errors::default());
    let run = Run {
        settings: &settings,
        server: &server,
        token,
        metrics_url: format!("http://{metrics_listen}/metrics"),
        journal,
        database: dir.path().join("tocsin.db"),
        fakes,
        arrivals,
        errors: errors.clone(),
    };
    let outcome = runtime.block_on(run.run())?;
    drop(server);
    report(&settings, &outcome, &errors)
}

/// Prints the figures, draws the charts, and fails on errors or growth.
fn report(settings: &Settings, outcome: &Outcome, errors: &Errors) -> anyhow::Result<()> {
    let samples = &outcome.samples;
    let last = samples.last().copied().unwrap_or_default();
    let warm_up = settings.warm_up.min(settings.seconds as f64 * 0.6);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    // RSS around a moment: the mean of the samples within 5 s of it, so one sample's
    // noise decides nothing.
    let rss_near = |at: f64| {
        let near: Vec<f64> = samples
            .iter()
            .filter(|s| (s.at - at).abs() <= 5.0)
            .map(|s| s.rss_mib)
            .collect();
        near.iter().sum::<f64>() / near.len().max(1) as f64
    };
    let rss_start = rss_near(warm_up + 5.0);
    let rss_end = rss_near(last.at - 5.0);
    let rss_max = after.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
    let fit: Vec<(f64, f64)> = after.iter().map(|s| (s.at / 60.0, s.rss_mib)).collect();
    let rss_slope = slope(&fit);
    let fitted_growth = rss_slope * (last.at - warm_up) / 60.0;
    let minute_two = MINUTE_TWO.min(warm_up);
    let rss_minute_two = rss_near(minute_two);
    let slope_from_minute_two = slope(
        &samples
            .iter()
            .filter(|s| s.at >= minute_two)
            .map(|s| (s.at / 60.0, s.rss_mib))
            .collect::<Vec<_>>(),
    );
    let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
    let ingest = sorted(outcome.ingest.iter().map(|t| t.ms));
    let probes = sorted(outcome.probes.iter().map(|t| t.ms));

    println!();
    println!(
        "events sent {} ({:.0}/s over {:.0} s), accepted {:.0}; {} ingest requests; {} probes notified, {} resolves",
        outcome.events_sent,
        outcome.events_sent as f64 / outcome.load_seconds,
        outcome.load_seconds,
        last.accepted,
        outcome.ingest.len(),
        outcome.probes.len(),
        outcome.resolved
    );
    println!(
        "incidents opened {:.0}; plugin calls {:.0}; fakes: {:?}, {} pages",
        last.incidents_opened, last.plugin_calls, outcome.requests_to, outcome.pages
    );
    println!(
        "RSS: {rss_minute_two:.1} MiB at {minute_two:.0} s (slope from there {slope_from_minute_two:+.2} MiB/min), \
         {rss_start:.1} MiB after the warm-up ({warm_up:.0} s), {rss_end:.1} MiB at the end, \
         max after warm-up {rss_max:.1} MiB; slope {rss_slope:+.2} MiB/min (least squares after warm-up)"
    );
    println!(
        "journal + WAL max {:.1} MiB (end {:.1}, of which WAL {:.1}); database max {:.1} MiB (end {:.1}), its WAL max {:.1} MiB; max lag {:.0} events",
        max(|s| s.journal_mib),
        last.journal_mib,
        last.journal_wal_mib,
        max(|s| s.database_mib),
        last.database_mib,
        max(|s| s.database_wal_mib),
        max(|s| s.lag_events)
    );
    let cpu = |from: f64, to: f64, f: fn(&Sample) -> f64| {
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at >= from && s.at <= to)
            .collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.at > a.at => (f(b) - f(a)) / (b.at - a.at),
            _ => 0.0,
        }
    };
    println!(
        "CPU (cores, over the run): server {:.2}, bench {:.2}, the rest of the machine {:.2}",
        cpu(0.0, last.at, |s| s.server_cpu),
        cpu(0.0, last.at, |s| s.bench_cpu),
        cpu(0.0, last.at, |s| s.machine_cpu - s.server_cpu - s.bench_cpu)
    );
    println!(
        "probe latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; ingest latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&probes, 0.50),
        percentile(&probes, 0.99),
        probes.last().copied().unwrap_or(0.0),
        percentile(&ingest, 0.50),
        percentile(&ingest, 0.99),
        ingest.last().copied().unwrap_or(0.0)
    );
    println!(
        "the bench process itself (its fakes keep every request): RSS {:.0} MiB",
        rss_mib(std::process::id())
    );
    // The slowest windows, with who used the CPU then: a spike while other processes
    // (a build) took the cores is the machine's, not the server's.
    let probe_windows = windows(&outcome.probes, settings.seconds as f64);
    let ingest_windows = windows(&outcome.ingest, settings.seconds as f64);
    let mut slowest: Vec<(f64, f64, f64)> = ingest_windows
        .iter()
        .zip(&probe_windows)
        .map(|(i, p)| (i.0, i.2, p.2))
        .collect();
    slowest.sort_by(|a, b| b.1.max(b.2).total_cmp(&a.1.max(a.2)));
    for (middle, ingest_p99, probe_p99) in slowest.iter().take(5) {
        let (from, to) = (middle * 60.0 - WINDOW / 2.0, middle * 60.0 + WINDOW / 2.0);
        println!(
            "slow window {from:.0}-{to:.0} s: ingest p99 {ingest_p99:.1} ms, probe p99 {probe_p99:.1} ms; \
             CPU: server {:.2}, bench {:.2}, other processes {:.2} cores",
            cpu(from, to, |s| s.server_cpu),
            cpu(from, to, |s| s.bench_cpu),
            cpu(from, to, |s| s.machine_cpu - s.server_cpu - s.bench_cpu)
        );
    }
    println!("errors: {}", errors.total());
    errors.print();

    std::fs::create_dir_all(&settings.out)?;
    let minutes = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (s.at / 60.0, f(s))).collect()
    };
    let fit_line = {
        let (x0, x1) = (warm_up / 60.0, last.at / 60.0);
        let mean_x = fit.iter().map(|p| p.0).sum::<f64>() / fit.len().max(1) as f64;
        let mean_y = fit.iter().map(|p| p.1).sum::<f64>() / fit.len().max(1) as f64;
        let at = |x: f64| mean_y + rss_slope * (x - mean_x);
        vec![(x0, at(x0)), (x1, at(x1))]
    };
    let charts = [
        (
            "soak-memory.png",
            "Resident memory of tocsin serve",
            "MiB",
            vec![
                Line {
                    label: "RSS".into(),
                    points: minutes(|s| s.rss_mib),
                    colour: BLUE,
                    width: 2,
                },
                Line {
                    label: format!("least squares after warm-up: {rss_slope:+.2} MiB/min"),
                    points: fit_line,
                    colour: RED,
                    width: 1,
                },
            ],
        ),
        (
            "soak-journal.png",
            "Journal and database files",
            "MiB",
            vec![
                Line {
                    label: "journal file + its WAL".into(),
                    points: minutes(|s| s.journal_mib),
                    colour: BLUE,
                    width: 2,
                },
                Line {
                    label: "journal's WAL".into(),
                    points: minutes(|s| s.journal_wal_mib),
                    colour: ORANGE,
                    width: 1,
                },
                Line {
                    label: "main database file".into(),
                    points: minutes(|s| s.database_mib),
                    colour: RED,
                    width: 2,
                },
                Line {
                    label: "main database's WAL".into(),
                    points: minutes(|s| s.database_wal_mib),
                    colour: GREEN,
                    width: 2,
                },
            ],
        ),
        (
            "soak-latency.png",
            "Latency per 10 s window",
            "ms",
            vec![
                Line {
                    label: "probe to notification, p50".into(),
                    points: probe_windows.iter().map(|w| (w.0, w.1)).collect(),
                    colour: GREEN,
                    width: 2,
                },
                Line {
                    label: "probe to notification, p99".into(),
                    points: probe_windows.iter().map(|w| (w.0, w.2)).collect(),
                    colour: RED,
                    width: 2,
                },
                Line {
                    label: "ingest request (100 events), p99".into(),
                    points: ingest_windows.iter().map(|w| (w.0, w.2)).collect(),
                    colour: BLUE,
                    width: 2,
                },
            ],
        ),
    ];
    for (file, title, unit, lines) in &charts {
        let path = settings.out.join(file);
        chart(&path, title, unit, lines, warm_up)?;
        println!("wrote {}", path.display());
    }

    if errors.total() > 0 {
        bail!("{} errors (see above)", errors.total());
    }
    // A leak grows RSS steadily: the end against the value after warm-up, and the
    // fitted line's rise over the same span (which one late spike cannot make).
    let limit = rss_start * MAX_GROWTH;
    if rss_end - rss_start > limit || fitted_growth > limit {
        bail!(
            "resident memory grew after warm-up: {rss_start:.1} → {rss_end:.1} MiB, fitted +{fitted_growth:.1} MiB \
             (limit +{limit:.1} MiB, {:.0} %)",
            MAX_GROWTH * 100.0
        );
    }
    println!(
        "memory flat after warm-up: {:+.1} % at the end, fitted {:+.1} % (limit {:.0} %)",
        (rss_end - rss_start) / rss_start.max(1e-9) * 100.0,
        fitted_growth / rss_start.max(1e-9) * 100.0,
        MAX_GROWTH * 100.0
    );
    Ok(())
}
