//! Grouping into incidents: keys, windows, resolution and close.

use super::*;

#[test]
fn alerts_with_one_key_share_an_incident_and_other_keys_do_not() {
    let mut b = Bench::new();
    for i in 0..50 {
        b.send(i * 10, alert("Dns", "unhealthy", &format!("i-{i}")));
    }
    b.send(
        600,
        json!({"alert": {"monitor": "Dns", "status": "unhealthy"},
                       "context": {"service": "bender", "region": "us-east-1", "instance": "i-0"}}),
    );
    let open = b.open();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].alerts, 50);
    assert_eq!(open[0].key, "Dns | bender | eu-west-1a");
    assert_eq!(open[1].alerts, 1);
}

#[test]
fn incident_resolves_after_grace_and_retrigger_in_grace_reopens_it() {
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    let id = b.open()[0].id.clone();
    b.send(MIN, alert("Health", "healthy", "i-1"));
    assert_eq!(b.incidents[&id].state, IncidentState::Resolving);
    b.send(3 * MIN, alert("Health", "unhealthy", "i-1"));
    assert_eq!(
        b.incidents[&id].state,
        IncidentState::Open,
        "re-trigger within grace reopens"
    );
    assert_eq!(b.incidents.len(), 1);
    b.send(4 * MIN, alert("Health", "healthy", "i-1"));
    b.tick(8 * MIN);
    assert_eq!(b.incidents[&id].state, IncidentState::Resolving);
    b.tick(9 * MIN);
    assert_eq!(b.incidents[&id].state, IncidentState::Resolved);
    b.send(10 * MIN, alert("Health", "unhealthy", "i-1"));
    assert_eq!(
        b.incidents.len(),
        2,
        "after resolution a new incident opens"
    );
}

#[test]
fn expired_window_opens_a_new_incident() {
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    b.send(31 * MIN, alert("Health", "unhealthy", "i-2"));
    let open = b.open();
    assert_eq!(
        open.len(),
        2,
        "a new problem is not hidden behind an old one"
    );
    assert!(open[0].open_key.is_none() && open[1].open_key.is_some());
}

#[test]
fn empty_keys_disable_grouping() {
    let mut b = Bench::new();
    for i in 0..3 {
        let mut event = alert("Health", "unhealthy", &format!("i-{i}"));
        event["grouping"] = json!({"keys": []});
        b.send(i, event);
    }
    assert_eq!(b.open().len(), 3);
}

#[test]
fn close_is_final_and_later_events_open_a_new_incident() {
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    let id = b.open()[0].id.clone();
    b.engine.close(&id, None, "tok", MIN).expect("close");
    b.tick(MIN);
    assert_eq!(b.incidents[&id].state, IncidentState::Closed);
    assert_eq!(
        b.engine.close(&id, None, "tok", MIN),
        Err(IncidentError::NotFound(id.clone()))
    );
    b.send(2 * MIN, alert("Health", "unhealthy", "i-2"));
    assert_eq!(b.open().len(), 1);
    assert_ne!(b.open()[0].id, id);
}

#[test]
fn templates_render_labels_and_missing_ones_as_dash() {
    let event: Event = serde_json::from_value(alert("Health", "unhealthy", "i-1")).expect("event");
    assert_eq!(
        render("${alert.monitor}/${context.region}/${context.zone}", &event),
        "Health/eu-west-1a/-"
    );
    let _ = BTreeMap::<String, String>::new();
}

#[test]
fn alerts_that_join_an_incident_in_one_batch_share_one_timeline_entry() {
    let mut b = Bench::new();
    let mut events: Vec<_> = (0..5)
        .map(|i| alert("Dns", "unhealthy", &format!("i-{i}")))
        .collect();
    events.push(alert("Health", "unhealthy", "i-0"));
    events.push(alert("Health", "unhealthy", "i-1"));
    let outcome = b.batch(0, events);
    let entries = timeline_of(&outcome);
    assert_eq!(
        entries,
        [
            ("opened", entries[0].1),
            (
                "alert-joined",
                "5 alerts joined: Dns on bender/eu-west-1a/i-0 (low), \
                 Dns on bender/eu-west-1a/i-1 (low), Dns on bender/eu-west-1a/i-2 (low) \
                 and 2 more"
            ),
            ("opened", entries[2].1),
            (
                "alert-joined",
                "2 alerts joined: Health on bender/eu-west-1a/i-0 (low) and \
                 Health on bender/eu-west-1a/i-1 (low)"
            ),
        ],
        "one entry per incident, naming the first three"
    );
    assert_eq!(outcome.members.len(), 7, "every alert is a member still");
    assert_eq!(outcome.notices.len(), 2, "one notice per incident");

    let later = b.batch(10, vec![alert("Dns", "unhealthy", "i-9")]);
    let entries = timeline_of(&later);
    assert_eq!(
        entries,
        [("alert-joined", "Dns on bender/eu-west-1a/i-9 joined (low)")],
        "an alert joining alone is named alone"
    );
}

/// A batch's timeline entries as (kind, detail).
fn timeline_of(outcome: &Outcome) -> Vec<(&str, &str)> {
    outcome
        .timeline
        .iter()
        .map(|t| (t.kind.as_str(), t.detail.as_str()))
        .collect()
}
