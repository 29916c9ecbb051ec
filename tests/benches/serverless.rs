//! The serverless path on PostgreSQL, side by side with Prometheus Alertmanager in the
//! same run.
//!
//! - **Ingest through `api`**: the `api` function's router (`tocsin_lambda::api::app`:
//!   one transaction per request, no journal thread, no pipeline) served on loopback,
//!   driven by wrk like the ingest benchmark. The store's pool size stands for the
//!   number of concurrent `api` instances (each has its own connection); more of them
//!   must add throughput, not contention.
//! - **The pipeline on PostgreSQL**: the journal those loads left, drained the way the
//!   `pipeline` function drains it (batches of 5,000, each committed with the cursor).
//! - **The per-event PostgreSQL cost**: WAL bytes and transactions per event, for the
//!   append and for the pipeline.
//!
//! `cargo bench -p tocsin-tests --bench serverless` with `TOCSIN_TEST_POSTGRES_URL` set
//! (as `infra/test.sh` sets it; `bash infra/postgres.sh start DIR` starts one).
//! Options (after `--`): `--seconds N` per measurement (default 10), `--connections N`
//! for wrk (default 16), `--pools 1,2,4,8`.

#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sqlx::PgPool;
use tocsin_model::clock::now_ms;
use tocsin_model::plugin::Disabled;
use tocsin_pipeline::worker::{self, MAX_BATCH};
use tocsin_store::{Migrations, StoreOptions};
use tocsin_tests::load::{
    BATCH, FLEET, Outcome, alertmanager_batches, alertmanager_version, load, print, print_header,
    start_alertmanager, tocsin_batches,
};

// The allocator the `api` and `pipeline` binaries use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Settings {
    seconds: u64,
    connections: usize,
    pools: Vec<u32>,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        seconds: 10,
        connections: 16,
        pools: vec![1, 2, 4, 8],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => settings.seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => {
                settings.connections = args.next().context("--connections N")?.parse()?
            }
            "--pools" => {
                settings.pools = args
                    .next()
                    .context("--pools 1,2,4")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    Ok(settings)
}

/// The database's WAL position and committed transactions.
async fn counters(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let (wal, xacts): (i64, i64) = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8, \
         (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await?;
    Ok((wal, xacts))
}

struct Measured {
    outcome: Outcome,
    events: i64,
    wal_per_event: f64,
    xacts_per_event: f64,
}

/// Serves the `api` function's router over a fresh database with a pool of `pool`
/// connections and loads it; returns the figures and the database's URL.
fn measure_api(
    runtime: &tokio::runtime::Runtime,
    pool: u32,
    settings: &Settings,
    batches: &[bytes::Bytes],
) -> anyhow::Result<(Measured, String)> {
    let url = runtime.block_on(tocsin_tests::postgres_url());
    let (ok, _, err) = tocsin_tests::tocsin(&["migrate", "--database-url", &url])?;
    anyhow::ensure!(ok, "migrate failed: {err}");
    let token = tocsin_tests::create_token(&url, &["--admin"])?;
    let (address, stats) = runtime.block_on(async {
        let store = tocsin_store::open(
            &url,
            StoreOptions {
                migrations: Migrations::Require,
                connections: Some(pool),
                ..StoreOptions::default()
            },
        )
        .await?;
        let state = tocsin_lambda::api::state(
            store,
            Arc::new(Disabled),
            Arc::new(tocsin_notify::config::Notifiers::default()),
            tocsin_model::suppression::Policy::default(),
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, tocsin_lambda::api::app(state)).await;
        });
        let stats = PgPool::connect(&url).await?;
        anyhow::Ok((address, stats))
    })?;
    let before = runtime.block_on(counters(&stats))?;
    let outcome = load(
        &format!("http://{address}/v1/events"),
        Some(&token),
        batches,
        settings.connections,
        settings.seconds,
    )?;
    let after = runtime.block_on(counters(&stats))?;
    let (events,): (i64,) = runtime.block_on(
        sqlx::query_as(
            "SELECT COALESCE(SUM(last_seq - first_seq + 1), 0)::BIGINT FROM journal_blocks",
        )
        .fetch_one(&stats),
    )?;
    let per = |d: i64| d as f64 / events.max(1) as f64;
    Ok((
        Measured {
            outcome,
            events,
            wal_per_event: per(after.0 - before.0),
            xacts_per_event: per(after.1 - before.1),
        },
        url,
    ))
}

/// Drains the journal as the `pipeline` function does, for at most `within`; returns
/// events processed, the time taken and the per-event WAL bytes and transactions.
fn measure_pipeline(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    within: Duration,
) -> anyhow::Result<(usize, Duration, f64, f64)> {
    runtime.block_on(async {
        let store = tocsin_store::open(
            url,
            StoreOptions {
                migrations: Migrations::Require,
                connections: Some(2),
                ..StoreOptions::default()
            },
        )
        .await?;
        let stats = PgPool::connect(url).await?;
        let before = counters(&stats).await?;
        let started = Instant::now();
        let mut engine = worker::load(store.as_ref(), tocsin_pipeline::Config::default()).await?;
        let mut events = 0;
        while started.elapsed() < within {
            let n = worker::step(store.as_ref(), &mut engine, MAX_BATCH, now_ms()).await?;
            events += n;
            if n == 0 {
                break;
            }
        }
        worker::flush(store.as_ref(), &mut engine).await?;
        let elapsed = started.elapsed();
        let after = counters(&stats).await?;
        let per = |d: i64| d as f64 / events.max(1) as f64;
        anyhow::Ok((
            events,
            elapsed,
            per(after.0 - before.0),
            per(after.1 - before.1),
        ))
    })
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    if std::env::var("TOCSIN_TEST_POSTGRES_URL").is_err() {
        bail!("set TOCSIN_TEST_POSTGRES_URL (bash infra/postgres.sh start DIR prints one)");
    }
    let batches = 2 * FLEET / BATCH * 7;
    let (am_url, stop_am) = start_alertmanager()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "serverless benchmark: batches of {BATCH}, wrk with {} connections, {} s per measurement, {} CPUs",
        settings.connections,
        settings.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "Alertmanager: {}; Tocsin: the api function's router on PostgreSQL",
        alertmanager_version()
    );
    println!();
    print_header();
    let am = load(
        &format!("{am_url}/api/v2/alerts"),
        None,
        &alertmanager_batches(batches),
        settings.connections,
        settings.seconds,
    )?;
    print("Alertmanager POST /api/v2/alerts", &am);
    let bodies = tocsin_batches(batches);
    let mut runs = Vec::new();
    for &pool in &settings.pools {
        let (measured, url) = measure_api(&runtime, pool, &settings, &bodies)?;
        print(
            &format!("api fn POST /v1/events, {pool} connection(s)"),
            &measured.outcome,
        );
        runs.push((pool, measured, url));
    }
    println!();
    for (pool, measured, _) in &runs {
        println!(
            "{pool} connection(s): {:.2}x Alertmanager; {} events appended; {:.0} WAL bytes and {:.4} transactions per event",
            measured.outcome.events_per_second / am.events_per_second,
            measured.events,
            measured.wal_per_event,
            measured.xacts_per_event
        );
    }
    if let Some((_, measured, url)) = runs.last() {
        let (events, elapsed, wal, xacts) =
            measure_pipeline(&runtime, url, Duration::from_secs(120))?;
        println!(
            "pipeline on PostgreSQL: {events} of {} events in {:.1} s = {:.0} events/s; {wal:.0} WAL bytes and {xacts:.4} transactions per event",
            measured.events,
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64()
        );
    }
    drop(stop_am);
    Ok(())
}
