//! The storm scenario, scaled down (a scenario minute lasts 200 ms) and played through
//! the API in real time: exactly the expected incidents come out, and everything else is
//! visible as suppressed or dropped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tocsin_pipeline::Config;
use tocsin_tests::storm::{self, MAINTENANCE, MAINTENANCE_WINDOW, MINUTE, Params};

use crate::api::Api;

/// Real milliseconds per scenario minute.
const SCALED_MINUTE: i64 = 200;

fn scaled(ms: i64) -> i64 {
    ms * SCALED_MINUTE / MINUTE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_hour_gives_exactly_the_expected_incidents() {
    let scenario = storm::generate(&Params::small());
    let config = Config {
        flap_window_ms: scaled(30 * MINUTE),
        grace_ms: scaled(5 * MINUTE),
        default_window_ms: scaled(30 * MINUTE),
        ..Config::default()
    };
    let (dir, url) = tocsin_tests::sqlite_url();
    let api = Api::with_config(&url, Some(dir), config).await;

    let (status, _) = api
        .request(
            &api.bender,
            "PUT",
            &format!("/v1/services/{}", storm::RETIRED_SERVICE),
            Some(json!({"retired": scenario.retired})),
        )
        .await;
    assert!(status.is_success());
    let start = OffsetDateTime::now_utc();
    let offset = |minutes: i64| {
        (start + time::Duration::milliseconds(scaled(minutes * MINUTE)))
            .format(&Rfc3339)
            .expect("formats")
    };
    let (status, suppression) = api
        .request(
            &api.bender,
            "POST",
            "/v1/suppressions",
            Some(json!({
                "description": "Windows updates for bender in us-east-1",
                "startTime": offset(MAINTENANCE_WINDOW.0),
                "endTime": offset(MAINTENANCE_WINDOW.1),
                "metadata": {"ticket": "BENDER-42"},
                "targets": scenario.suppression_targets,
            })),
        )
        .await;
    assert!(status.is_success(), "{suppression}");
    let suppression = suppression["id"].as_str().expect("id").to_owned();

    // Play the timeline in real time, one request per scenario instant.
    let clock = Instant::now();
    let mut sent = 0;
    let mut late = Duration::ZERO;
    let mut timeline = scenario.timeline.into_iter().peekable();
    while let Some((t, first)) = timeline.next() {
        let mut batch = vec![first];
        while let Some((_, event)) = timeline.next_if(|(next, _)| *next == t) {
            batch.push(event);
        }
        let due = Duration::from_millis(scaled(t) as u64);
        match due.checked_sub(clock.elapsed()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                let now_late = clock.elapsed() - due;
                late = late.max(now_late)
            }
        }
        sent += batch.len();
        api.events(&api.bender, Value::Array(batch)).await;
    }
    eprintln!("storm playback: at most {late:?} late");
    assert!(
        late < Duration::from_millis(scaled(MINUTE) as u64),
        "playback fell {late:?} behind the scenario clock: the timings no longer hold"
    );
    // Let the last grace periods run out.
    tokio::time::sleep(Duration::from_millis(scaled(6 * MINUTE) as u64)).await;
    api.settle().await;

    let (_, page) = api
        .request(&api.bender, "GET", "/v1/incidents?limit=1000", None)
        .await;
    let incidents = page["incidents"].as_array().expect("incidents");
    let keys: Vec<String> = incidents
        .iter()
        .filter_map(|i| i["key"].as_str().map(str::to_owned))
        .collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "each problem exactly once: {keys:?}"
    );
    assert_eq!(
        keys.iter().cloned().collect::<BTreeSet<_>>(),
        scenario
            .expected_keys
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
    );
    eprintln!(
        "storm (scaled): {sent} events → {} incidents",
        incidents.len()
    );

    let by_key = |key: &str| {
        incidents
            .iter()
            .find(|i| i["key"] == key)
            .expect("incident")
    };
    assert_eq!(
        by_key(&scenario.dns.0)["alerts"],
        scenario.dns.1,
        "the DNS outage is one incident with every instance"
    );
    let flapping = by_key(&scenario.flapping_key)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, detail) = api
        .request(
            &api.bender,
            "GET",
            &format!("/v1/incidents/{flapping}"),
            None,
        )
        .await;
    let alerts = detail["alert_list"].as_array().expect("alerts");
    let flapping_alerts: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["labels"]["flapping"] == "true")
        .collect();
    assert_eq!(flapping_alerts.len(), 1, "{detail}");
    assert_eq!(flapping_alerts[0]["priority"], "low");
    assert_eq!(
        flapping_alerts[0]["status"], "unhealthy",
        "it flaps all hour: still raised"
    );

    // The maintenance and the retired hosts produced nothing, and are visible.
    let (_, suppressed) = api
        .request(
            &api.bender,
            "GET",
            &format!("/v1/suppressions/{suppression}/suppressed"),
            None,
        )
        .await;
    let suppressed = suppressed["events"].as_array().expect("events");
    assert!(!suppressed.is_empty());
    assert!(
        suppressed
            .iter()
            .all(|e| e["labels"]["service"] == MAINTENANCE.0
                && e["labels"]["region"] == MAINTENANCE.1)
    );
    let (_, dropped) = api
        .request(
            &api.bender,
            "GET",
            "/v1/history?outcome=dropped&limit=10000",
            None,
        )
        .await;
    let retired: BTreeSet<&str> = dropped["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("retired-host"))
        })
        .filter_map(|e| e["labels"]["instance"].as_str())
        .collect();
    assert_eq!(
        retired,
        scenario
            .retired
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    assert!(
        dropped["drops"]["state-unchanged"].as_i64().unwrap_or(0) > sent as i64 / 2,
        "most events are steady repeats"
    );
}
