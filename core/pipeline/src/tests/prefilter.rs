//! The static pre-filter: state change, ignore-flap, flap detection, retired hosts.

use super::*;

#[test]
fn steady_repeat_only_counts() {
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    b.send(1_000, alert("Health", "unhealthy", "i-1"));
    b.send(2_000, alert("Health", "unhealthy", "i-1"));
    assert_eq!(
        b.history.len(),
        1,
        "only the change is in the history: {:?}",
        b.reasons()
    );
    assert_eq!(b.open().len(), 1);
    let tracked = b.engine.alerts.values().next().expect("tracked");
    assert_eq!(tracked.count, 3);
}

#[test]
fn ignore_flap_holds_until_min_age_and_recovery_cancels() {
    let mut b = Bench::new();
    let flappy = |status: &str, instance: &str| {
        let mut e = alert("Health", status, instance);
        e["filters"] = json!([{"type": "ignore-flap", "params": {"min-age": "5m"}}]);
        e
    };
    b.send(0, flappy("unhealthy", "i-1"));
    b.send(2 * MIN, flappy("healthy", "i-1"));
    b.tick(10 * MIN);
    assert!(
        b.incidents.is_empty(),
        "a recovery within min-age raises nothing"
    );

    b.send(11 * MIN, flappy("unhealthy", "i-2"));
    b.tick(15 * MIN);
    assert!(b.incidents.is_empty());
    b.tick(16 * MIN);
    assert_eq!(
        b.open().len(),
        1,
        "released by the timer at min-age, with no further event"
    );
    assert!(
        b.reasons()
            .iter()
            .any(|r| r.starts_with("held ignore-flap"))
    );
}

#[test]
fn flapping_check_becomes_one_low_priority_flapping_alert() {
    let mut b = Bench::new();
    let mut at = 0;
    for i in 0..20 {
        let status = if i % 2 == 0 { "unhealthy" } else { "healthy" };
        let mut e = alert("Health", status, "i-1");
        e["alerting"] = json!({"priority": "high"});
        b.send(at, e);
        at += MIN;
    }
    let flapping: Vec<_> = b
        .members
        .iter()
        .filter(|m| m.labels.contains("\"flapping\":\"true\""))
        .collect();
    assert!(!flapping.is_empty(), "a flapping alert was raised");
    assert!(flapping.iter().all(|m| m.priority == Priority::Low));
    let raised = b
        .history
        .iter()
        .filter(|h| h.source == "tocsin" && h.status == Status::Unhealthy)
        .count();
    assert_eq!(raised, 1, "one flapping alert, not one per change");
    // Stable for the whole window: the flapping alert resolves.
    b.tick(at + 31 * MIN);
    let resolved = b
        .history
        .iter()
        .filter(|h| h.source == "tocsin" && h.status == Status::Healthy)
        .count();
    assert_eq!(resolved, 1);
}

#[test]
fn retired_hosts_are_dropped_with_their_reason() {
    let mut b = Bench::new();
    let spec = ServiceSpec {
        retired: ["i-old".to_owned()].into(),
        ..ServiceSpec::default()
    };
    b.engine.set_rules(rules(vec![("bender", spec)], vec![]));
    b.send(0, alert("Health", "unhealthy", "i-old"));
    b.send(1_000, alert("Health", "unhealthy", "i-old"));
    assert!(b.incidents.is_empty());
    assert_eq!(b.history.len(), 1);
    assert!(
        b.history[0].reason.starts_with("retired-host"),
        "{:?}",
        b.reasons()
    );
}

/// Whether the flapping alert was raised (Tocsin's own unhealthy event).
fn flapping_raised(history: &[HistoryRow]) -> bool {
    history
        .iter()
        .any(|h| h.source == "tocsin" && h.status == Status::Unhealthy)
}

#[test]
fn the_fifth_change_within_the_window_flaps_and_a_restart_keeps_the_count() {
    let change = |i: usize| {
        let status = if i.is_multiple_of(2) {
            "unhealthy"
        } else {
            "healthy"
        };
        alert("Health", status, "i-1")
    };
    let mut b = Bench::new();
    let mut history = Vec::new();
    let mut row = None;
    for i in 0..4 {
        let outcome = b.batch(i as i64 * MIN, vec![change(i)]);
        history.extend(outcome.history);
        row = outcome.alerts.into_iter().next().or(row);
    }
    assert!(!flapping_raised(&history), "four changes are not a flap");

    // A restart: the alert's state as stored, loaded by a new engine.
    let row = row.expect("the alert's row");
    assert_eq!(row.transitions.split(',').count(), 4, "{}", row.transitions);
    let mut b = Bench::new();
    b.engine.load_alert(TrackedRow {
        id: 1,
        team: row.team,
        fingerprint: row.fingerprint,
        status: row.status,
        passed: row.passed,
        hold: row.hold,
        since: row.since,
        count: row.count,
        transitions: row.transitions,
    });
    b.engine.load_snapshot(Snapshot::default());
    b.send(4 * MIN, change(4));
    assert!(flapping_raised(&b.history), "{:?}", b.reasons());
}

#[test]
fn changes_further_apart_than_the_window_never_flap() {
    let mut b = Bench::new();
    for i in 0..12 {
        let status = if i % 2 == 0 { "unhealthy" } else { "healthy" };
        b.send(i * 31 * MIN, alert("Health", status, "i-1"));
    }
    assert!(!flapping_raised(&b.history), "{:?}", b.reasons());
    assert!(b.engine.flaps.is_empty(), "no earlier change is kept");
}
