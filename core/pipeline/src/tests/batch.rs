//! Batches: reloading state, steady refreshes, deferred cursors and journal deletes.

use super::*;
use crate::batch::JOURNAL_DELETE_EVERY;

#[test]
fn state_survives_a_reload() {
    // What the store would keep: alert rows, held events and open incidents.
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    let id = b.open()[0].id.clone();
    let mut engine = Engine::new(Config::default());
    for (n, (key, t)) in b.engine.alerts.iter().enumerate() {
        engine.load_alert(TrackedRow {
            id: n as i64 + 1,
            team: b.engine.team_name(key.0).to_owned(),
            fingerprint: key.1.to_string(),
            status: t.reported,
            passed: t.passed,
            hold: t.hold,
            since: t.since,
            count: t.count,
            transitions: String::new(),
        });
    }
    let incident = b.incidents[&id].clone();
    let member = b.members[0].clone();
    engine.load_snapshot(Snapshot {
        cursor: 1,
        generation: 1,
        held: vec![],
        incidents: vec![incident],
        members: vec![(member.incident_id, member.team, vec![member.fingerprint])],
    });
    b.engine = engine;
    b.send(MIN, alert("Health", "unhealthy", "i-2"));
    b.send(MIN, alert("Health", "healthy", "i-1"));
    let open = b.open();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id, "joined the incident loaded from the store");
    assert_eq!((open[0].alerts, open[0].unhealthy), (2, 1));
}

#[test]
fn steady_refreshes_are_written_every_interval_and_on_flush() {
    let mut engine = Engine::new(Config::default());
    let mut b = Bench::new();
    b.send(0, alert("Health", "healthy", "i-1"));
    std::mem::swap(&mut engine, &mut b.engine);
    let row = |seq: i64, at: i64| {
        let event: Event =
            serde_json::from_value(alert("Health", "healthy", "i-1")).expect("event");
        Incoming {
            seq,
            id: format!("r{seq}"),
            team: "ops".into(),
            fingerprint: event.fingerprint().to_string(),
            source: "api".into(),
            received_at: at,
            monitor: String::new(),
            status: Status::Healthy,
            labels: String::new(),
            reported_since: None,
            reported_count: None,
            trace_id: None,
            event: String::new(),
        }
    };
    // `engine` now has the alert; the interval (2 s) starts at its first write.
    let first = engine.process(vec![row(2, 2_500)], 2_500);
    assert_eq!(
        first.refreshed.len(),
        1,
        "the first refresh after the interval is written"
    );
    let quiet = engine.process(vec![row(3, 3_000)], 3_000);
    assert!(
        quiet.refreshed.is_empty(),
        "within the interval, kept in memory"
    );
    assert_eq!(quiet.journal_to, Some(3));
    let flushed = engine.flush(3_100);
    assert_eq!(flushed.refreshed.len(), 1);
    assert_eq!(flushed.refreshed[0].count, 3);
    assert_eq!(flushed.refreshed[0].last_event, "r3");
}

#[test]
fn steady_refreshes_are_spread_over_the_interval_and_skip_batches_with_notices() {
    let mut b = Bench::new();
    let fleet = |status: &str| -> Vec<serde_json::Value> {
        (0..1_000)
            .map(|i| alert("Health", status, &format!("i-{i}")))
            .collect()
    };
    b.batch(0, fleet("healthy"));
    let repeats = b.batch(1_000, fleet("healthy"));
    assert!(repeats.refreshed.is_empty(), "within the interval");
    // The cycle starts at 2 s with 1,000 refreshes to spread over 1.5 s.
    let mut written: HashMap<i64, i64> = HashMap::new();
    let mut largest = 0;
    for at in (2_000..4_000).step_by(10) {
        let outcome = if at == 2_500 {
            b.batch(at, vec![alert("Health", "unhealthy", "new")])
        } else {
            b.batch(at, Vec::new())
        };
        if at == 2_500 {
            assert!(!outcome.notices.is_empty(), "the batch opens an incident");
            assert!(
                outcome.refreshed.is_empty(),
                "a batch with a notice carries no refreshes"
            );
        }
        largest = largest.max(outcome.refreshed.len());
        for r in outcome.refreshed {
            assert!(
                written.insert(r.id, at).is_none(),
                "each alert is written once per cycle"
            );
        }
    }
    assert_eq!(written.len(), 1_000, "every steady alert is written");
    let early = written.values().filter(|at| **at < 2_500).count();
    assert!(
        (250..=450).contains(&early),
        "a third in the first third of the spread, not all at once: {early}"
    );
    assert!(
        written.values().all(|at| *at <= 3_510),
        "all within the spread"
    );
    assert!(largest <= 20, "small slices: {largest}");
}

#[test]
fn batches_of_steady_repeats_defer_their_cursor_and_journal_rows_leave_in_bulk() {
    let mut b = Bench::new();
    let first = b.batch(0, vec![alert("Health", "healthy", "i-1")]);
    assert!(!first.moves_only_cursor(), "a new alert is written");
    assert_eq!(
        first.journal_delete_to, None,
        "one row is not worth a delete"
    );
    b.engine.committed();
    let steady = b.batch(100, vec![alert("Health", "healthy", "i-1")]);
    assert!(steady.moves_only_cursor(), "{steady:?}");
    assert!(b.engine.may_defer(&steady, 100));
    b.engine.defer(&steady, 100);
    assert_eq!(
        b.engine.next_due(),
        Some(100 + CURSOR_DEFER_MS),
        "wakes to commit it"
    );
    let later = b.batch(200, vec![alert("Health", "healthy", "i-1")]);
    assert!(b.engine.may_defer(&later, 200), "within the deferral");
    b.engine.defer(&later, 200);
    let due = b.batch(100 + CURSOR_DEFER_MS, Vec::new());
    assert_eq!(due.journal_to, Some(3), "the deferred cursor comes back");
    assert_eq!(
        due.drops,
        vec![("ops".to_owned(), "state-unchanged".to_owned(), 2)],
        "with the deferred drop counts, of the events' team"
    );
    assert!(
        !b.engine.may_defer(&due, 100 + CURSOR_DEFER_MS),
        "and is committed at the latest after the deferral"
    );
    b.engine.committed();
    assert_eq!(b.engine.next_due(), None);

    // Processed rows leave the journal in bulk.
    let fleet: Vec<serde_json::Value> = (0..JOURNAL_DELETE_EVERY)
        .map(|i| alert("Health", "healthy", &format!("f-{i}")))
        .collect();
    let bulk = b.batch(1_000, fleet);
    assert_eq!(bulk.journal_delete_to, bulk.journal_to);
    assert_eq!(
        b.engine.flush(1_100).journal_delete_to,
        None,
        "nothing left"
    );
}
