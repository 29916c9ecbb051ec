//! Nothing accepted is lost: SIGKILL the server in the middle of a load, restart it, and
//! find every event that got a 202.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tocsin_store as store;
use tocsin_store::{AlertQuery, StoreOptions};
use tocsin_tests::{Server, create_token};

/// Posts batches of 100 from several writers until the server dies; returns the ids of
/// every event whose batch got a 202.
async fn load_until_killed(server: Server, token: &str) -> Vec<String> {
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (client, url, token, acknowledged) = (
            client.clone(),
            format!("{}/v1/events", server.url),
            token.to_owned(),
            acknowledged.clone(),
        );
        writers.push(tokio::spawn(async move {
            for batch in 0.. {
                let events: Vec<Value> = (0..100)
                    .map(|i| {
                        json!({"alert": {"monitor": "Crash", "status": if i % 2 == 0 { "healthy" } else { "unhealthy" }},
                               "context": {"writer": writer.to_string(), "instance": format!("i-{batch}-{i}")}})
                    })
                    .collect();
                let Ok(response) = client.post(&url).bearer_auth(&token).json(&events).send().await else { break };
                if response.status() != 202 {
                    break;
                }
                let Ok(receipt) = response.json::<Value>().await else { break };
                let ids = receipt["ids"].as_array().cloned().unwrap_or_default();
                let mut acknowledged = acknowledged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                acknowledged.extend(ids.iter().filter_map(|id| id.as_str().map(str::to_owned)));
            }
        }));
    }
    // Kill in the middle of the load: once a good amount is acknowledged, never at a
    // quiet moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().map(|a| a.len()).unwrap_or(0) < 20_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().expect("SIGKILL");
    for writer in writers {
        writer.await.expect("writer task");
    }
    acknowledged
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

async fn every_acknowledged_event_survives(database_url: &str) {
    let token = create_token(database_url, &["--admin"]).expect("token");
    let server = Server::start(database_url, &[], &[]).expect("serves");
    let acknowledged = load_until_killed(server, &token).await;
    assert!(
        acknowledged.len() >= 1_000,
        "the load ran: {} acknowledged",
        acknowledged.len()
    );

    let restarted = Server::start(database_url, &[], &[]).expect("restarts after SIGKILL");
    let ready = reqwest::get(format!("{}/readyz", restarted.url))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);

    let store = store::open(database_url, StoreOptions::default())
        .await
        .expect("opens");
    let stored: std::collections::HashSet<String> =
        store.event_ids().await.expect("ids").into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost",
        lost.len(),
        acknowledged.len()
    );
    // Nothing half-written: whatever the store holds came in whole batches of 100.
    assert_eq!(stored.len() % 100, 0, "{} events stored", stored.len());

    // The pipeline resumes where it stopped and processes each event once: every
    // event is its own alert here, so each alert has exactly one event behind it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.lag().await.expect("lag") > 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted server does not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alerts = store
        .alerts(&AlertQuery {
            limit: u32::MAX,
            ..AlertQuery::default()
        })
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), stored.len());
    assert!(
        alerts.iter().all(|a| a.count == 1),
        "an event was applied twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_on_sqlite() {
    let (_dir, url) = tocsin_tests::sqlite_url();
    every_acknowledged_event_survives(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_on_postgres() {
    every_acknowledged_event_survives(&tocsin_tests::postgres_url().await).await;
}
