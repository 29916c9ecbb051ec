//! The pipeline's figures: the storm hour's compression (raw events : incidents), events
//! per second through every stage (no plugins), disk used per hour, and resident memory
//! with 1,000,000 tracked alert identities.
//!
//! `cargo bench -p tocsin-tests --bench pipeline [-- --part storm|store|memory|server] [--unhealthy]
//! [--database DIR]`
//!
//! - `storm`: the full storm hour ([`Params::hour`]: 6,000 instances, three checks each,
//!   every 10 s) through the pipeline engine alone, on a virtual clock.
//! - `store`: the same hour through the real pipeline on SQLite: appended to the journal
//!   in batches of 5,000, then processed as the server does (read, pre-filter,
//!   suppressions, grouping, one commit per batch that also empties the journal).
//! - `memory`: a release `tocsin serve`, fed 1,000,000 distinct alert identities over
//!   HTTP (healthy; with `--unhealthy`, unhealthy in 100 services, so 100 incidents
//!   grow to 10,000 alerts each); the time until the pipeline has caught up, its resident
//!   memory then, and a restart with those identities: the time from `tocsin serve` to
//!   listening, to ready (`/readyz`), and to the first event processed.
//! - `server` (only when named): the storm hour through a release `tocsin serve` with
//!   alerting on, sent as fast as it takes it; the time until the last is processed.

#![allow(clippy::print_stdout, missing_docs)]

// The server's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tocsin_model::catalogue::{Service, ServiceSpec};
use tocsin_model::event::{Event, Fingerprint};
use tocsin_model::rows::{ActiveSuppression, IncidentRow, Incoming, Rules};
use tocsin_model::suppression::{Draft, Policy};
use tocsin_pipeline::{Config, Engine, worker};
use tocsin_store as store;
use tocsin_store::{Accepted, StoreOptions};
use tocsin_tests::storm::{self, MAINTENANCE_WINDOW, MINUTE, Params};

/// Length of the scenario (`--minutes`, default the hour).
static MINUTES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(60);

fn hour() -> Params {
    Params {
        minutes: MINUTES.load(std::sync::atomic::Ordering::Relaxed),
        ..Params::hour()
    }
}

/// Scenario time zero: 2026-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_767_225_600_000;

fn rules(scenario: &storm::Storm) -> anyhow::Result<Rules> {
    let draft: Draft = serde_json::from_value(json!({
        "description": "maintenance",
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-01T01:00:00Z",
        "targets": scenario.suppression_targets,
    }))?;
    let matcher = draft
        .validate(&Policy::default())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let service = Service {
        name: storm::RETIRED_SERVICE.into(),
        spec: ServiceSpec {
            team: Some("ops".into()),
            retired: scenario.retired.iter().cloned().collect(),
            ..ServiceSpec::default()
        },
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_by: "bench".into(),
    };
    Ok(Rules {
        version: 0,
        services: HashMap::from([(service.name.clone(), Arc::new(service))]),
        suppressions: vec![ActiveSuppression {
            id: "maintenance".into(),
            team: Some("ops".into()),
            start: EPOCH_MS + MAINTENANCE_WINDOW.0 * MINUTE,
            end: EPOCH_MS + MAINTENANCE_WINDOW.1 * MINUTE,
            matcher,
        }],
        routes: Arc::default(),
    })
}

fn incoming(seq: i64, at: i64, event: &Value) -> anyhow::Result<Incoming> {
    let parsed: Event = serde_json::from_value(event.clone())?;
    Ok(Incoming {
        seq,
        id: format!("e{seq}"),
        team: "ops".into(),
        fingerprint: Fingerprint::of(&parsed.alert.monitor, &parsed.context).to_string(),
        source: "api".into(),
        received_at: at,
        monitor: parsed.alert.monitor.clone(),
        status: parsed.alert.status,
        labels: serde_json::to_string(&parsed.context)?,
        reported_since: None,
        reported_count: None,
        event: serde_json::to_string(&parsed)?,
        trace_id: None,
    })
}

fn storm_part() -> anyhow::Result<()> {
    let scenario = storm::generate(&hour());
    let raw = scenario.timeline.len();
    let mut rows = Vec::with_capacity(raw);
    for (seq, (t, event)) in scenario.timeline.iter().enumerate() {
        rows.push(incoming(seq as i64 + 1, EPOCH_MS + t, event)?);
    }
    let mut engine = Engine::new(Config::default());
    engine.set_rules(rules(&scenario)?);
    let mut incidents: HashMap<String, IncidentRow> = HashMap::new();
    let (mut history, mut drops): (usize, HashMap<String, i64>) = (0, HashMap::new());
    let started = Instant::now();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Incoming> = rows.by_ref().take(5_000).collect();
        let now = batch.last().map_or(0, |r| r.received_at);
        let outcome = engine.process(batch, now);
        history += outcome.history.len();
        for (_, reason, n) in outcome.drops {
            *drops.entry(reason).or_default() += n;
        }
        for row in outcome.incidents {
            incidents.insert(row.id.clone(), row);
        }
    }
    let outcome = engine.process(Vec::new(), EPOCH_MS + 75 * MINUTE);
    for row in outcome.incidents {
        incidents.insert(row.id.clone(), row);
    }
    let elapsed = started.elapsed();
    let mut keys: Vec<&str> = incidents.values().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    println!("## storm hour through the engine (virtual clock)");
    println!();
    println!(
        "- raw events: {raw} ({:.0}/s of scenario time)",
        raw as f64 / 3600.0
    );
    println!(
        "- incidents: {} → compression {:.0} : 1, one incident every {:.0} s",
        incidents.len(),
        raw as f64 / incidents.len().max(1) as f64,
        3600.0 / incidents.len().max(1) as f64
    );
    println!("- incident keys: {keys:?}");
    println!("- expected keys: {:?}", scenario.expected_keys);
    println!(
        "- history rows kept: {history} ({:.2} % of raw)",
        history as f64 * 100.0 / raw as f64
    );
    let mut drops: Vec<_> = drops.into_iter().collect();
    drops.sort();
    println!("- stopped by reason: {drops:?}");
    println!(
        "- engine alone: {:.0} events/s ({:.2} µs/event)",
        raw as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / raw as f64
    );
    if keys
        != scenario
            .expected_keys
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        bail!("the storm hour did not give the expected incidents");
    }
    Ok(())
}

async fn store_part() -> anyhow::Result<()> {
    let scenario = storm::generate(&hour());
    let raw = scenario.timeline.len();
    let (dir, url) = tocsin_tests::sqlite_url();
    let store = store::open(&url, StoreOptions::default()).await?;
    // The catalogue and the suppression, through the store as the API writes them.
    let rules = rules(&scenario)?;
    for service in rules.services.values() {
        store.put_service(service, EPOCH_MS).await?;
    }
    let mut engine = worker::load(store.as_ref(), Config::default()).await?;
    // The suppression lives in the engine's rules only (the API would refuse its
    // scenario times, which are in the past).
    let mut with_suppression = store.rules(EPOCH_MS).await?;
    with_suppression.suppressions = rules.suppressions.clone();
    engine.set_rules(with_suppression);
    // As the server runs: each group commit of the journal is followed by a pipeline
    // batch over what it appended.
    let (mut appending, mut processing) = (Duration::ZERO, Duration::ZERO);
    let mut processed = 0;
    let mut timeline = scenario.timeline.iter().peekable();
    while timeline.peek().is_some() {
        let mut records = Vec::with_capacity(5_000);
        for (t, event) in timeline.by_ref().take(5_000) {
            let event: Event = serde_json::from_value(event.clone())?;
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(EPOCH_MS + t) * 1_000_000,
            )?;
            records.push(Accepted::new(event, "ops".into(), "api", at).into_record(None));
        }
        let started = Instant::now();
        store.append(records).await?;
        appending += started.elapsed();
        let started = Instant::now();
        processed += worker::step(store.as_ref(), &mut engine, 5_000, EPOCH_MS).await?;
        processing += started.elapsed();
    }
    worker::step(store.as_ref(), &mut engine, 5_000, EPOCH_MS + 75 * MINUTE).await?;
    // Let the background checkpoint fold the WAL into the database file.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let size: u64 = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let wal = std::fs::metadata(dir.path().join("tocsin.db-wal")).map_or(0, |m| m.len());
    let incidents = store
        .incidents(&tocsin_model::views::IncidentQuery {
            limit: 1_000,
            ..Default::default()
        })
        .await?;
    println!();
    println!("## storm hour through the pipeline on SQLite (no plugins)");
    println!();
    let total = appending + processing;
    println!(
        "- {processed} events: journal append {:.2} µs/event, pipeline (read, pre-filter, suppressions, grouping, commit) {:.2} µs/event; all stages {:.0} events/s",
        appending.as_secs_f64() * 1e6 / raw as f64,
        processing.as_secs_f64() * 1e6 / raw as f64,
        raw as f64 / total.as_secs_f64()
    );
    println!("- incidents in the store: {}", incidents.len());
    println!(
        "- disk after the hour (journal emptied, history kept): {:.1} MiB (of which WAL {:.1} MiB)",
        size as f64 / 1048576.0,
        wal as f64 / 1048576.0
    );
    Ok(())
}

async fn memory_part(unhealthy: bool, kept: Option<PathBuf>) -> anyhow::Result<()> {
    const IDENTITIES: usize = 1_000_000;
    const BATCH: usize = 100;
    let (_dir, url) = match &kept {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let file = dir.join("tocsin.db");
            let url = format!("sqlite://{}", file.display());
            if file.exists() {
                // Loaded by an earlier run: only the restart is measured again.
                let token = tocsin_tests::create_token(&url, &["--team", "ops"])?;
                return restart(&url, &token, &reqwest::Client::new()).await;
            }
            (None, url)
        }
        None => {
            let (dir, url) = tocsin_tests::sqlite_url();
            (Some(dir), url)
        }
    };
    let token = tocsin_tests::create_token(&url, &["--team", "ops"])?;
    let metrics_listen = format!("127.0.0.1:{}", tocsin_tests::free_port());
    let server = tocsin_tests::Server::start(&url, &["--metrics-listen", &metrics_listen], &[])?;
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let rss = |pid: u32| -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    };
    let (idle, _) = rss(server.pid())?;
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/events", server.url);
    let started = Instant::now();
    let batches = IDENTITIES / BATCH;
    let mut sent = 0;
    let mut inflight = futures_like::Inflight::new(8);
    for b in 0..batches {
        let body: Vec<Value> = (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                let monitor = ["Health", "Disk", "Http5xx", "Latency"][n % 4];
                let region = ["eu-west-1a", "us-east-1", "us-west-2"][n % 3];
                if unhealthy {
                    // A wide outage: every first report is a failure, and each service's
                    // alerts group into one incident.
                    json!({"alert": {"monitor": monitor, "status": "unhealthy"},
                           "context": {"service": format!("svc-{}", n % 100), "region": region,
                                       "instance": format!("i-{:07}", n / 4)},
                           "grouping": {"keys": ["${context.service}"]}})
                } else {
                    json!({"alert": {"monitor": monitor, "status": "healthy"},
                           "context": {"service": format!("svc-{}", n % 97), "region": region,
                                       "instance": format!("i-{:07}", n / 4)}})
                }
            })
            .collect();
        let request = client
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&body)
            .send();
        inflight
            .push(tokio::spawn(async move {
                let response = request.await?;
                anyhow::ensure!(response.status() == 202, "status {}", response.status());
                Ok(())
            }))
            .await?;
        sent += BATCH;
        if sent % 100_000 == 0 {
            eprint!("\rsent {sent}/{IDENTITIES}");
        }
    }
    inflight.finish().await?;
    eprintln!();
    let accepted = started.elapsed();
    tocsin_tests::sample::caught_up(&client, &metrics_url, Duration::from_millis(200)).await?;
    let caught_up = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (resident, peak) = rss(server.pid())?;
    let store = store::open(&url, StoreOptions::default()).await?;
    let alerts = store
        .alerts(&store::AlertQuery {
            limit: 1,
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(!alerts.is_empty(), "no alert tracked");
    let incidents = incident_count(store.as_ref()).await?;
    println!();
    println!(
        "## 1,000,000 tracked alert identities, {} (release `tocsin serve`, SQLite)",
        if unhealthy {
            "unhealthy in 100 services"
        } else {
            "healthy"
        }
    );
    println!();
    println!("- incidents: {incidents}");
    println!(
        "- sent in {:.1} s ({:.0} events/s accepted); pipeline caught up after {:.1} s ({:.0} events/s through every stage)",
        accepted.as_secs_f64(),
        IDENTITIES as f64 / accepted.as_secs_f64(),
        caught_up.as_secs_f64(),
        IDENTITIES as f64 / caught_up.as_secs_f64()
    );
    println!(
        "- resident memory: {:.1} MiB (idle before: {:.1} MiB, peak during the load: {:.1} MiB); target ≤ 256 MiB",
        resident as f64 / 1024.0,
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(server);
    drop(store);
    restart(&url, &token, &client).await
}

/// The storm hour through a release `tocsin serve` on SQLite with alerting on (a
/// notifiers file routing the team to the PagerDuty and Slack fakes), sent as fast as the
/// server takes it: batches of 1,000 over 4 connections, serialised before the clock
/// starts. Timed from the first request to the last event processed (the journal empty).
/// The events carry no scenario time, so what they group into differs from the engine's
/// hour on its virtual clock; what is measured is the load.
async fn server_part() -> anyhow::Result<()> {
    const BATCH: usize = 1_000;
    const CONNECTIONS: usize = 4;
    let scenario = storm::generate(&hour());
    let raw = scenario.timeline.len();
    let bodies: Vec<Vec<u8>> = scenario
        .timeline
        .chunks(BATCH)
        .map(|chunk| {
            let events: Vec<&Value> = chunk.iter().map(|(_, event)| event).collect();
            serde_json::to_vec(&events)
        })
        .collect::<Result<_, _>>()?;
    drop(scenario);
    let fakes = tocsin_tests::fakes::Fakes::start().await?;
    let (dir, url) = tocsin_tests::sqlite_url();
    let token = tocsin_tests::create_token(&url, &["--team", "ops"])?;
    let notifiers = dir.path().join("notifiers.yaml");
    std::fs::write(
        &notifiers,
        format!(
            "public-url: http://tocsin.test\n\
             notifiers:\n  \
               pd: {{ kind: pagerduty, routing-key: \"0123456789abcdef0123456789abcdef\", url: \"{0}\" }}\n  \
               slack: {{ kind: slack, token: xoxb-storm-token, channel: \"#ops\", url: \"{0}\" }}\n\
             routes:\n  \
               - {{ team: ops, page: pd, chat: slack }}\n",
            fakes.url
        ),
    )?;
    let metrics_listen = format!("127.0.0.1:{}", tocsin_tests::free_port());
    let server = tocsin_tests::Server::start(
        &url,
        &[
            "--notifiers",
            notifiers.to_str().context("path is not UTF-8")?,
            "--metrics-listen",
            &metrics_listen,
        ],
        &[],
    )?;
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/events", server.url);
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut inflight = futures_like::Inflight::new(CONNECTIONS);
    for body in bodies {
        let (client, endpoint, token, refused) = (
            client.clone(),
            endpoint.clone(),
            token.clone(),
            refused.clone(),
        );
        inflight
            .push(tokio::spawn(async move {
                loop {
                    let response = client
                        .post(&endpoint)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    match response.status().as_u16() {
                        202 => return Ok(()),
                        // Back-pressure: the journal is at its bound. Wait as asked.
                        503 => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => bail!("status {other}"),
                    }
                }
            }))
            .await?;
    }
    inflight.finish().await?;
    let accepted = started.elapsed();
    tocsin_tests::sample::caught_up(&client, &metrics_url, Duration::from_millis(100)).await?;
    let processed = started.elapsed();
    let store = store::open(&url, StoreOptions::default()).await?;
    let incidents = incident_count(store.as_ref()).await?;
    // The notifications of those incidents reach the fakes shortly after their commit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!();
    println!("## storm hour through `tocsin serve` (release, SQLite, alerting on)");
    println!();
    println!(
        "- {raw} events in batches of {BATCH} over {CONNECTIONS} connections: all accepted after {:.1} s ({:.0} events/s, {} answers 503 and retried)",
        accepted.as_secs_f64(),
        raw as f64 / accepted.as_secs_f64(),
        refused.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "- the last processed after **{:.1} s** ({:.0} events/s from the first request to the journal empty); target ≤ 60 s",
        processed.as_secs_f64(),
        raw as f64 / processed.as_secs_f64()
    );
    println!(
        "- incidents: {incidents}; notifications at the fakes: {}",
        fakes.requests().len()
    );
    drop(server);
    Ok(())
}

/// How many incidents the store holds (up to 1,000).
async fn incident_count(store: &dyn store::Store) -> anyhow::Result<usize> {
    let query = tocsin_model::views::IncidentQuery {
        limit: 1000,
        ..Default::default()
    };
    Ok(store.incidents(&query).await?.len())
}

/// Restarts `tocsin serve` on a database that tracks 1,000,000 identities: the time to
/// listening, to ready, and until one new event sent at once is processed.
async fn restart(url: &str, token: &str, client: &reqwest::Client) -> anyhow::Result<()> {
    // Its own name in each run, as a kept database is restarted again and again.
    let monitor = format!(
        "AfterRestart.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let started = Instant::now();
    let server =
        tocsin_tests::Server::start(url, &[], &[("TOCSIN_LOG", "warn,tocsin_pipeline=info")])?;
    let listening = started.elapsed();
    let response = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(token)
        .json(
            &json!({"alert": {"monitor": monitor, "status": "unhealthy"},
                      "context": {"service": "svc-restart", "instance": "i-restart"}}),
        )
        .send()
        .await?;
    anyhow::ensure!(response.status() == 202, "status {}", response.status());
    let accepted = started.elapsed();
    let store = store::open(url, StoreOptions::default()).await?;
    let (mut ready, mut processed) = (None, None);
    // Until both are known: `/readyz` answering 200, and the journal empty again.
    while ready.is_none() || processed.is_none() {
        if ready.is_none()
            && client
                .get(format!("{}/readyz", server.url))
                .send()
                .await?
                .status()
                == 200
        {
            ready = Some(started.elapsed());
        }
        // The journal holds only that event: it is processed once the journal is empty.
        // (Looking for its alert by monitor scans the alerts' table, a gigabyte here,
        // and a probe that takes one of the two cores slows what it measures.)
        if processed.is_none() && store.lag().await? == 0 {
            processed = Some(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "after 120 s: ready {ready:?}, the event sent after the restart processed {processed:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = store
        .alerts(&store::AlertQuery {
            monitor: Some(monitor.clone()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(
        seen.len() == 1,
        "the event sent after the restart left no alert"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "- restart with them: listening after {:.0} ms, first event accepted after {:.0} ms, processed after {:.0} ms, ready (`/readyz`) after {:.0} ms; target < 5 s",
        ms(listening),
        ms(accepted),
        ms(processed.unwrap_or_default()),
        ms(ready.unwrap_or_default())
    );
    for line in server.stderr() {
        if line.contains("state loaded") {
            println!("- the server's log: {line}");
        }
    }
    drop(server);
    Ok(())
}

/// A bounded set of in-flight requests.
mod futures_like {
    use std::collections::VecDeque;

    pub struct Inflight {
        limit: usize,
        tasks: VecDeque<tokio::task::JoinHandle<anyhow::Result<()>>>,
    }

    impl Inflight {
        pub fn new(limit: usize) -> Self {
            Self {
                limit,
                tasks: VecDeque::new(),
            }
        }

        pub async fn push(
            &mut self,
            task: tokio::task::JoinHandle<anyhow::Result<()>>,
        ) -> anyhow::Result<()> {
            self.tasks.push_back(task);
            if self.tasks.len() >= self.limit
                && let Some(first) = self.tasks.pop_front()
            {
                first.await??;
            }
            Ok(())
        }

        pub async fn finish(mut self) -> anyhow::Result<()> {
            while let Some(task) = self.tasks.pop_front() {
                task.await??;
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut part = "all".to_owned();
    let mut unhealthy = false;
    let mut kept = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--part" => part = args.next().context("--part storm|store|memory|server")?,
            "--minutes" => MINUTES.store(
                args.next().context("--minutes N")?.parse()?,
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--unhealthy" => unhealthy = true,
            "--database" => kept = Some(args.next().context("--database DIR")?.into()),
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    if part == "all" || part == "storm" {
        storm_part()?;
    }
    if part == "all" || part == "store" {
        store_part().await?;
    }
    if part == "server" {
        server_part().await?;
    }
    if part == "all" || part == "memory" {
        memory_part(unhealthy, kept).await?;
    }
    Ok(())
}
