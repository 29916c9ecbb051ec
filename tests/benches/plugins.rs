//! Plugin figures (docs/benchmarks.md, plugins): a filter plugin over batches of 1,000 events (3 labels
//! each) in events per second on one core, beside the same logic compiled natively;
//! and a fresh instance plus one call, median and p99.
//!
//! `cargo bench -p tocsin-tests --bench plugins`
//!
//! The plugin is `plugins/examples/retired-hosts` (built by the test helper); the host
//! is the one `tocsin serve` runs (`tocsin_host::Runtime`): WASI linked, pooling
//! allocator, `InstancePre`, a fresh instance per call, epoch deadline and memory
//! limit on.

#![allow(clippy::print_stdout, missing_docs)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_host::{Limits, Runtime, State};
use tocsin_model::Event;
use tocsin_model::plugin::{FilterInput, Kind, Verdict};

const BATCH: usize = 1_000;
const HOSTS: [&str; 3] = ["web-7", "web-8", "db-3"];

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "alert": {"monitor": "disk-full", "status": "unhealthy"},
                "context": {"host": format!("web-{}", i % 100), "region": "eu-west-1a", "service": "shop"}
            }))
            .expect("event")
        })
        .collect()
}

/// The plugin's logic, compiled natively: the per-event cost without the sandbox.
fn native(batch: &[FilterInput<'_>], hosts: &[String]) -> Vec<Verdict> {
    batch
        .iter()
        .map(|e| {
            let host = e
                .event
                .context
                .get("host")
                .or_else(|| e.event.context.get("instance"));
            match host {
                Some(host) if hosts.iter().any(|h| h == host) => {
                    Verdict::Drop(format!("host {host} is retired"))
                }
                _ => Verdict::Keep,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let runtime = Runtime::new(Limits::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = tocsin_tests::plugins::component("retired-hosts");
    let started = Instant::now();
    let compiled = runtime
        .compile(&bytes, Kind::Filter)
        .map_err(anyhow::Error::msg)?;
    println!(
        "compile: {} KiB component in {:?}",
        bytes.len() / 1024,
        started.elapsed()
    );
    let state = Arc::new(State::default());
    let config = serde_json::json!({"name": "retired-hosts", "hosts": HOSTS}).to_string();
    let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();

    let events = events(BATCH);
    let batch: Vec<FilterInput<'_>> = events
        .iter()
        .map(|event| FilterInput {
            event,
            received_at: 1_700_000_000_000,
        })
        .collect();

    // Sanity: the plugin and the native code agree.
    let call = runtime.filter(&compiled, state.clone(), &batch, &config, false);
    let verdicts = call.result.map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        verdicts == native(&batch, &hosts),
        "plugin and native disagree"
    );
    let dropped = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Drop(_)))
        .count();
    println!("batch: {BATCH} events, 3 labels each, {dropped} dropped per batch");

    // Throughput: batches of 1,000 on this one thread.
    let only_single = std::env::args().any(|a| a == "--single");
    let rounds = if only_single { 0 } else { 3_000 };
    let started = Instant::now();
    for _ in 0..rounds {
        let call = runtime.filter(&compiled, state.clone(), &batch, &config, false);
        black_box(call.result.map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let elapsed = started.elapsed();
    let total = (rounds * BATCH) as f64;
    println!(
        "filter plugin: {:.0} events/s on one core ({:.1} ns/event, {:.1} µs per batch of {BATCH})",
        total / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / total,
        elapsed.as_secs_f64() * 1e6 / rounds as f64
    );
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(native(black_box(&batch), &hosts));
    }
    let native_elapsed = started.elapsed();
    println!(
        "same logic native: {:.0} events/s ({:.1} ns/event); the sandbox costs {:.1} ns/event",
        total / native_elapsed.as_secs_f64(),
        native_elapsed.as_nanos() as f64 / total,
        (elapsed.as_nanos() as f64 - native_elapsed.as_nanos() as f64) / total
    );

    // A fresh instance and one call (one event), as the pipeline makes for a small batch.
    let one = &batch[..1];
    for _ in 0..1_000 {
        black_box(
            runtime
                .filter(&compiled, state.clone(), one, &config, false)
                .result
                .is_ok(),
        );
    }
    let mut times = Vec::with_capacity(20_000);
    let calls = if only_single { 200_000 } else { 20_000 };
    for _ in 0..calls {
        let started = Instant::now();
        let call = runtime.filter(&compiled, state.clone(), one, &config, false);
        times.push(started.elapsed());
        black_box(call.result.is_ok());
    }
    times.sort();
    println!(
        "fresh instance + one call: median {:.1} µs, p99 {:.1} µs",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6
    );
    if !only_single {
        python(&runtime)?;
    }
    Ok(())
}

/// The Python example (componentize-py): compile time and the cost of one call.
fn python(runtime: &Runtime) -> anyhow::Result<()> {
    let bytes = tocsin_tests::plugins::python_zabbix();
    let started = Instant::now();
    let compiled = runtime
        .compile(&bytes, Kind::Transformer)
        .map_err(anyhow::Error::msg)?;
    println!(
        "python transformer: {:.1} MiB component compiled in {:?}",
        bytes.len() as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    let body = serde_json::json!({"host": "db-1", "trigger": "High CPU", "severity": "High",
        "status": "PROBLEM", "tags": [{"tag": "service", "value": "orders"}]})
    .to_string();
    let input = tocsin_model::plugin::RawInput {
        body: body.into_bytes().into(),
        content_type: "application/json".into(),
        headers: Vec::new(),
    };
    let state = Arc::new(State::default());
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let call = runtime.transform(&compiled, state.clone(), &input, "{}", false);
        times.push(started.elapsed());
        anyhow::ensure!(
            call.result.map(|e| e.len()).unwrap_or(0) == 1,
            "the python plugin failed"
        );
    }
    times.sort();
    println!(
        "python transformer, fresh instance + one call: median {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
