//! The store's serial steps alone, per backend: `Store::append` of pre-encoded batches
//! (the journal), then `Store::track` applying them to alert state.
//! `cargo bench -p tocsin-tests --bench append` (PostgreSQL too when
//! `TOCSIN_TEST_POSTGRES_URL` is set, as `infra/test.sh` does).

#![allow(clippy::print_stdout, missing_docs)]

use std::time::Instant;

use tocsin_ingest as ingest;
use tocsin_ingest::Format;
use tocsin_model::team::Caller;
use tocsin_store as store;
use tocsin_store::{Record, StoreOptions};

fn batch(round: usize, size: usize) -> Vec<Record> {
    let events: Vec<String> = (0..size)
        .map(|i| {
            let n = (round * size + i) % 10_000;
            format!(
                r#"{{"alert": {{"monitor": "Check{}", "status": "{}", "message": "check output"}},
                    "context": {{"service": "svc-{}", "region": "eu-west-1a", "instance": "i-{n:06x}"}}}}"#,
                n % 5,
                if round % 7 == 3 { "unhealthy" } else { "healthy" },
                n % 40
            )
        })
        .collect();
    let body = format!("[{}]", events.join(","));
    let caller = Caller {
        token_id: "bench".into(),
        team: None,
        admin: true,
    };
    let parsed = ingest::read(body.as_bytes(), Format::Json, &caller, "api").expect("valid");
    parsed
        .accepted
        .into_iter()
        .map(|a| a.into_record(None))
        .collect()
}

fn report(backend: &str, step: &str, batch: usize, events: usize, elapsed: std::time::Duration) {
    println!(
        "| {backend:<8} | {step:<17} | {batch:>5} | {:>8.0} | {:>8.2} |",
        events as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / events as f64
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut targets = vec![(
        "sqlite",
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    )];
    if std::env::var("TOCSIN_TEST_POSTGRES_URL").is_ok() {
        targets.push(("postgres", tocsin_tests::postgres_url().await));
    }
    println!("| backend  | step              | batch | events/s | µs/event |");
    println!("|----------|-------------------|-------|----------|----------|");
    for (name, url) in targets {
        let store = store::open(&url, StoreOptions::default()).await?;
        for size in [100, 500, 2_000] {
            let batches: Vec<Vec<Record>> = (0..(60_000 / size)).map(|r| batch(r, size)).collect();
            let events = batches.len() * size;
            let started = Instant::now();
            for records in batches {
                store.append(records).await?;
            }
            report(name, "journal append", size, events, started.elapsed());
            let started = Instant::now();
            tocsin_tests::process(store.as_ref(), 5_000).await;
            report(name, "pipeline (5000)", size, events, started.elapsed());
        }
    }
    Ok(())
}
