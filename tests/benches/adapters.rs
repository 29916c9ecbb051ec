//! Adapter throughput: how many webhook payloads (and events) per second one core turns
//! into validated events, with the realistic fixtures of the tests. The HTTP path of the
//! Alertmanager adapter, side by side with Alertmanager itself, is in the `ingest`
//! benchmark.
//!
//! `cargo bench -p tocsin-tests --bench adapters [-- --seconds N]`

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tocsin_ingest as ingest;
use tocsin_ingest::adapt::{alertmanager, datadog, loggly};
use tocsin_model::team::Caller;

// The allocator `tocsin serve` runs with: adapters allocate many small strings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DATADOG: &str = include_str!("../fixtures/datadog/triggered.json");
const LOGGLY: &str = include_str!("../fixtures/loggly/alert.json");

/// A Prometheus-sized batch: Prometheus sends at most 64 alerts per request by default;
/// 100 matches the ingest benchmark.
fn alert_batch() -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({
                "labels": { "alertname": "InstanceDown", "instance": format!("web-{i}:9100"), "job": "node",
                            "severity": "critical", "service": "checkout", "region": "eu-west-1" },
                "annotations": { "summary": format!("web-{i} is down"), "runbook_url": "https://runbooks.example.com/InstanceDown" },
                "startsAt": "2026-11-22T11:58:00.123456789Z",
                "endsAt": "2099-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
            })
        })
        .collect();
    serde_json::to_vec(&alerts).unwrap_or_default()
}

/// One measured adapter: a payload in, how many events came out.
type Row<'a> = Box<dyn FnMut() -> usize + 'a>;

/// Runs `f` (which returns how many events it produced) for `seconds`; returns
/// (payloads/s, events/s, µs per payload).
fn measure(seconds: f64, mut f: impl FnMut() -> usize) -> (f64, f64, f64) {
    for _ in 0..1_000 {
        black_box(f());
    }
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let (mut payloads, mut events) = (0u64, 0u64);
    while started.elapsed() < budget {
        for _ in 0..100 {
            events += black_box(f()) as u64;
            payloads += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        payloads as f64 / elapsed,
        events as f64 / elapsed,
        elapsed * 1e6 / payloads as f64,
    )
}

fn main() -> anyhow::Result<()> {
    let mut seconds = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let caller = Caller {
        token_id: "bench".into(),
        team: Some("bender".into()),
        admin: false,
    };
    let (dd_options, lg_options) = (datadog::Options::default(), loggly::Options::default());
    let batch = alert_batch();
    let now = time::OffsetDateTime::now_utc();

    println!(
        "adapter benchmark: one core, {seconds} s per row; payload → validated, stamped events (no HTTP, no database)"
    );
    println!();
    println!(
        "| {:<38} | {:>12} | {:>12} | {:>12} |",
        "adapter (payload)", "payloads/s", "events/s", "µs/payload"
    );
    println!("|{:-<40}|{:->14}|{:->14}|{:->14}|", "", "", "", "");
    let rows: Vec<(&str, Row)> = vec![
        (
            "Datadog (triggered.json, 1 KiB)",
            Box::new(|| {
                let event = datadog::adapt(DATADOG.as_bytes(), &dd_options)
                    .unwrap_or_else(|e| panic!("{e}"));
                ingest::accept(vec![event], &caller, "datadog")
                    .accepted
                    .len()
            }),
        ),
        (
            "Loggly (alert.json, 1 KiB)",
            Box::new(|| {
                let events = loggly::adapt(LOGGLY.as_bytes(), &lg_options, now)
                    .unwrap_or_else(|e| panic!("{e}"));
                ingest::accept(events.into(), &caller, "loggly")
                    .accepted
                    .len()
            }),
        ),
        (
            "Alertmanager (100 alerts, 39 KiB)",
            Box::new(|| {
                let items = alertmanager::alerts(&batch, now).unwrap_or_else(|e| panic!("{e}"));
                ingest::accept_each(items, &caller, "alertmanager")
                    .accepted
                    .len()
            }),
        ),
    ];
    for (name, mut f) in rows {
        let (payloads, events, micros) = measure(seconds, &mut f);
        println!("| {name:<38} | {payloads:>12.0} | {events:>12.0} | {micros:>12.1} |");
    }
    Ok(())
}
