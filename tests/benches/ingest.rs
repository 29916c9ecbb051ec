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

use anyhow::{Context as _, bail};
use tocsin_tests::load::{
    BATCH, FLEET, alertmanager_batches, alertmanager_version, load, print, print_header,
    start_alertmanager, tocsin_batches,
};
use tocsin_tests::{Server, create_token, sqlite_url};

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

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let batches = 2 * FLEET / BATCH * 7;
    let (am_url, stop_am) = start_alertmanager()?;

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
    print_header();
    let am = load(
        &format!("{am_url}/api/v2/alerts"),
        None,
        &alertmanager_batches(batches),
        settings.connections,
        settings.seconds,
    )?;
    print("Alertmanager POST /api/v2/alerts", &am);
    let tocsin = load(
        &format!("{}/v1/events", server.url),
        Some(&token),
        &tocsin_batches(batches),
        settings.connections,
        settings.seconds,
    )?;
    print("Tocsin POST /v1/events (durable)", &tocsin);
    // Let the pipeline catch up first, so that the next row does not pay for this one.
    let after_events = catch_up(&db_url)?;
    // The same Alertmanager payloads, through Tocsin's Alertmanager-compatible adapter.
    let adapted = load(
        &format!("{}/api/v2/alerts", server.url),
        Some(&token),
        &alertmanager_batches(batches),
        settings.connections,
        settings.seconds,
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
