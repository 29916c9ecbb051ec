//! The dynamic pre-filter: suppressions and priority by service.

use super::*;

#[test]
fn testing_service_has_high_lowered_to_low_with_the_reason() {
    let mut b = Bench::new();
    let spec = ServiceSpec {
        lifecycle: Lifecycle::Testing,
        customer_facing: true,
        ..ServiceSpec::default()
    };
    b.engine.set_rules(rules(vec![("bender", spec)], vec![]));
    let mut e = alert("Health", "unhealthy", "i-1");
    e["alerting"] = json!({"priority": "high"});
    b.send(0, e);
    assert_eq!(b.open()[0].priority, Priority::Low);
    assert!(
        b.history[0]
            .reason
            .contains("priority lowered to low: service is in testing")
    );
}

#[test]
fn suppressed_alerts_are_recorded_and_released_when_the_suppression_ends() {
    let mut b = Bench::new();
    let draft: Draft = serde_json::from_value(json!({
        "description": "maintenance", "startTime": "1970-01-01T00:00:00Z", "endTime": "1970-01-01T00:20:00Z",
        "targets": [{"service": "bender", "instance": "~i-[12]"}]
    }))
    .expect("draft");
    let matcher = draft.validate(&Policy::default()).expect("valid");
    let suppression = ActiveSuppression {
        id: "s1".into(),
        team: None,
        start: 0,
        end: 20 * MIN,
        matcher,
    };
    b.engine.set_rules(rules(vec![], vec![suppression]));
    b.send(MIN, alert("Health", "unhealthy", "i-1"));
    b.send(MIN, alert("Health", "unhealthy", "i-3"));
    b.send(2 * MIN, alert("Health", "unhealthy", "i-1"));
    assert_eq!(b.open().len(), 1);
    assert_eq!(b.open()[0].alerts, 1, "only the unsuppressed alert");
    let suppressed: Vec<_> = b
        .history
        .iter()
        .filter(|h| h.suppression_id.as_deref() == Some("s1"))
        .collect();
    assert_eq!(suppressed.len(), 1);
    b.tick(21 * MIN);
    assert_eq!(
        b.open()[0].alerts,
        2,
        "still unhealthy when the suppression ended: it goes on"
    );
}

/// A suppression of `team` (of every team when `None`) on `service: storage`.
fn storage_suppression(id: &str, team: Option<&str>) -> ActiveSuppression {
    let draft: Draft = serde_json::from_value(json!({
        "description": "storage upgrade", "startTime": "1970-01-01T00:00:00Z", "endTime": "1970-01-01T01:00:00Z",
        "targets": [{"service": "storage"}]
    }))
    .expect("draft");
    ActiveSuppression {
        id: id.into(),
        team: team.map(str::to_owned),
        start: 0,
        end: 60 * MIN,
        matcher: draft.validate(&Policy::default()).expect("valid"),
    }
}

fn storage(instance: &str) -> serde_json::Value {
    json!({"alert": {"monitor": "Disk", "status": "unhealthy"},
           "context": {"service": "storage", "region": "eu-west-1a", "instance": instance}})
}

#[test]
fn a_teams_suppression_never_stops_another_teams_alert() {
    let mut b = Bench::new();
    b.engine.set_rules(rules(
        vec![],
        vec![storage_suppression("bender-s", Some("bender"))],
    ));
    b.send_for("flexo", MIN, storage("s-1"));
    assert_eq!(
        b.open().len(),
        1,
        "flexo's incident opens: {:?}",
        b.reasons()
    );
    assert_eq!(b.open()[0].team, "flexo");
    assert!(b.history.iter().all(|h| h.suppression_id.is_none()));

    b.send_for("bender", MIN, storage("s-1"));
    let last = b.history.last().expect("bender's event");
    assert_eq!(
        (last.team.as_str(), last.suppression_id.as_deref()),
        ("bender", Some("bender-s")),
        "the suppression stops its own team's alert"
    );
    assert_eq!(b.open().len(), 1, "no incident for bender's alert");
}

#[test]
fn an_admins_suppression_of_every_team_stops_each_teams_alert() {
    let mut b = Bench::new();
    b.engine
        .set_rules(rules(vec![], vec![storage_suppression("all", None)]));
    b.send_for("flexo", MIN, storage("s-1"));
    b.send_for("bender", MIN, storage("s-1"));
    assert!(b.open().is_empty(), "{:?}", b.reasons());
    let stopped: Vec<&str> = b
        .history
        .iter()
        .filter(|h| h.suppression_id.as_deref() == Some("all"))
        .map(|h| h.team.as_str())
        .collect();
    assert_eq!(stopped, ["flexo", "bender"]);
}

#[test]
fn a_recovery_during_a_suppression_still_resolves_the_incident() {
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    let id = b.open()[0].id.clone();
    let draft: Draft = serde_json::from_value(json!({
        "description": "maintenance", "startTime": "1970-01-01T00:00:00Z", "endTime": "1970-01-01T01:00:00Z",
        "targets": [{"service": "bender", "instance": "i-1"}]
    }))
    .expect("draft");
    let matcher = draft.validate(&Policy::default()).expect("valid");
    b.engine.set_rules(rules(
        vec![],
        vec![ActiveSuppression {
            id: "s1".into(),
            team: None,
            start: 0,
            end: 60 * MIN,
            matcher,
        }],
    ));
    b.send(MIN, alert("Health", "healthy", "i-1"));
    assert_eq!(
        b.incidents[&id].state,
        IncidentState::Resolving,
        "failures are suppressed, recoveries are not"
    );
    b.send(2 * MIN, alert("Health", "unhealthy", "i-1"));
    assert_eq!(
        b.incidents[&id].state,
        IncidentState::Resolving,
        "the new failure is suppressed"
    );
    assert_eq!(
        b.history.last().map(|h| h.outcome.as_str()),
        Some("suppressed")
    );
}
