//! The pipeline's semantics, driven with a virtual clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::batch::JOURNAL_DELETE_EVERY;
use tocsin_model::catalogue::{Lifecycle, Service, ServiceSpec};
use tocsin_model::event::{Event, Priority, Status, render};
use tocsin_model::rows::{
    ActiveSuppression, HistoryRow, IncidentRow, IncidentState, Incoming, MemberRow, Outcome,
    Rules, Snapshot, TrackedRow,
};
use tocsin_model::suppression::{Draft, Policy};

const MIN: i64 = 60_000;

/// A test bench: an engine, a journal sequence and the outcomes so far.
struct Bench {
    engine: Engine,
    seq: i64,
    incidents: HashMap<String, IncidentRow>,
    history: Vec<HistoryRow>,
    members: Vec<MemberRow>,
}

impl Bench {
    fn new() -> Self {
        Self::with(Config::default())
    }

    fn with(config: Config) -> Self {
        Self {
            engine: Engine::new(config),
            seq: 0,
            incidents: HashMap::new(),
            history: Vec::new(),
            members: Vec::new(),
        }
    }

    fn absorb(&mut self, outcome: Outcome) {
        for row in outcome.incidents {
            self.incidents.insert(row.id.clone(), row);
        }
        self.history.extend(outcome.history);
        self.members.extend(outcome.members);
    }

    /// Sends one event at `at` (ms).
    fn send(&mut self, at: i64, event: serde_json::Value) {
        let outcome = self.batch(at, vec![event]);
        self.absorb(outcome);
    }

    /// Sends one event of `team` at `at` (ms).
    fn send_for(&mut self, team: &str, at: i64, event: serde_json::Value) {
        let outcome = self.batch_for(team, at, vec![event]);
        self.absorb(outcome);
    }

    /// Processes these events (of team `ops`) as one batch at `at` (ms); returns its
    /// outcome.
    fn batch(&mut self, at: i64, events: Vec<serde_json::Value>) -> Outcome {
        self.batch_for("ops", at, events)
    }

    fn batch_for(&mut self, team: &str, at: i64, events: Vec<serde_json::Value>) -> Outcome {
        let rows = events
            .into_iter()
            .map(|event| {
                let event: Event = serde_json::from_value(event).expect("event");
                self.seq += 1;
                Incoming {
                    seq: self.seq,
                    id: format!("e{}", self.seq),
                    team: team.into(),
                    fingerprint: event.fingerprint().to_string(),
                    source: "api".into(),
                    received_at: at,
                    monitor: event.alert.monitor.clone(),
                    status: event.alert.status,
                    labels: serde_json::to_string(&event.context).expect("labels"),
                    reported_since: None,
                    reported_count: None,
                    trace_id: None,
                    event: serde_json::to_string(&event).expect("event"),
                }
            })
            .collect();
        self.engine.process(rows, at)
    }

    fn tick(&mut self, at: i64) {
        let outcome = self.engine.process(Vec::new(), at);
        self.absorb(outcome);
    }

    fn open(&self) -> Vec<&IncidentRow> {
        let mut open: Vec<_> = self
            .incidents
            .values()
            .filter(|i| matches!(i.state, IncidentState::Open | IncidentState::Resolving))
            .collect();
        open.sort_by_key(|i| i.opened_at);
        open
    }

    fn reasons(&self) -> Vec<String> {
        self.history
            .iter()
            .map(|h| format!("{} {}", h.outcome, h.reason))
            .collect()
    }
}

fn alert(monitor: &str, status: &str, instance: &str) -> serde_json::Value {
    json!({"alert": {"monitor": monitor, "status": status},
           "context": {"service": "bender", "region": "eu-west-1a", "instance": instance}})
}

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

/// Rules with these services (of team `ops` unless their spec names one) and
/// suppressions.
fn rules(services: Vec<(&str, ServiceSpec)>, suppressions: Vec<ActiveSuppression>) -> Rules {
    Rules {
        version: 1,
        services: services
            .into_iter()
            .map(|(name, mut spec)| {
                spec.team.get_or_insert_with(|| "ops".to_owned());
                (
                    name.to_owned(),
                    Arc::new(Service {
                        name: name.into(),
                        spec,
                        updated_at: time::OffsetDateTime::UNIX_EPOCH,
                        updated_by: "t".into(),
                    }),
                )
            })
            .collect(),
        suppressions,
        routes: Arc::default(),
    }
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
fn a_catalogue_entry_steers_only_its_owners_events() {
    let mut b = Bench::new();
    let squatted = ServiceSpec {
        team: Some("bender".into()),
        customer_facing: false,
        retired: ["w1".to_owned()].into(),
        grouping: Some(tocsin_model::event::Grouping {
            keys: Some(Vec::new()),
            window: None,
        }),
        ..ServiceSpec::default()
    };
    b.engine
        .set_rules(rules(vec![("flexo-web", squatted)], vec![]));
    let web = |instance: &str| {
        json!({"alert": {"monitor": "Http", "status": "unhealthy"},
               "context": {"service": "flexo-web", "region": "eu-west-1a", "instance": instance},
               "alerting": {"priority": "high"}})
    };
    b.send_for("flexo", MIN, web("w1"));
    b.send_for("flexo", MIN, web("w2"));
    let open = b.open();
    assert_eq!(
        open.len(),
        1,
        "not retired, grouped by default: {:?}",
        b.reasons()
    );
    assert_eq!(open[0].alerts, 2);
    assert_eq!(open[0].priority, Priority::High, "not demoted");
    assert_eq!(open[0].key, "Http | flexo-web | eu-west-1a");

    b.send_for("bender", 2 * MIN, web("w1"));
    let last = b.history.last().expect("bender's event");
    assert!(
        last.reason.starts_with("retired-host: w1"),
        "the owner's events get the entry: {}",
        last.reason
    );
}

#[test]
fn rules_hand_a_service_only_to_its_owner() {
    let rules = rules(
        vec![(
            "flexo-web",
            ServiceSpec {
                team: Some("bender".into()),
                ..ServiceSpec::default()
            },
        )],
        vec![],
    );
    assert!(rules.service_for("bender", "flexo-web").is_some());
    assert!(rules.service_for("flexo", "flexo-web").is_none());
    assert!(
        rules.service_for("", "flexo-web").is_none(),
        "an event of no team gets no team's entry"
    );
}

#[test]
fn state_survives_a_reload() {
    // What the store would keep: alert rows, held events and open incidents.
    let mut b = Bench::new();
    b.send(0, alert("Health", "unhealthy", "i-1"));
    let id = b.open()[0].id.clone();
    let mut engine = Engine::new(Config::default());
    for (key, t) in &b.engine.alerts {
        engine.load_alert(TrackedRow {
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
        members: vec![(
            member.incident_id,
            member.team,
            member.fingerprint,
            member.status,
        )],
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
fn templates_render_labels_and_missing_ones_as_dash() {
    let event: Event = serde_json::from_value(alert("Health", "unhealthy", "i-1")).expect("event");
    assert_eq!(
        render("${alert.monitor}/${context.region}/${context.zone}", &event),
        "Health/eu-west-1a/-"
    );
    let _ = BTreeMap::<String, String>::new();
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
    let mut written: HashMap<String, i64> = HashMap::new();
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
                written.insert(r.fingerprint, at).is_none(),
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
    assert_eq!(b.history.last().map(|h| h.outcome), Some("suppressed"));
}

/// A plugin runtime whose filters are plain functions: `drop-eu` drops events of region
/// eu, `shout` replaces the message, `broken` fails. Records the batches it saw.
#[derive(Default)]
struct FakeFilters {
    calls: std::sync::Mutex<Vec<(String, usize)>>,
}

impl tocsin_model::plugin::Filter for FakeFilters {
    fn filter(
        &self,
        team: &str,
        name: &str,
        batch: &[tocsin_model::plugin::FilterInput<'_>],
        _config: &str,
    ) -> Result<Vec<tocsin_model::plugin::Verdict>, tocsin_model::plugin::PluginError> {
        use tocsin_model::plugin::{Failure, PluginError, Verdict};
        assert_eq!(team, "ops");
        self.calls
            .lock()
            .expect("lock")
            .push((name.to_owned(), batch.len()));
        batch
            .iter()
            .map(|input| match name {
                "drop-eu"
                    if input.event.context.get("region").map(String::as_str) == Some("eu") =>
                {
                    Ok(Verdict::Drop("eu is decommissioned".into()))
                }
                "drop-eu" => Ok(Verdict::Keep),
                "shout" => {
                    let mut event = input.event.clone();
                    event.alert.message = Some("LOUD".into());
                    Ok(Verdict::Replace(Box::new(event)))
                }
                _ => Err(PluginError::Failed {
                    plugin: name.to_owned(),
                    failure: Failure::Timeout(50),
                }),
            })
            .collect()
    }
}

fn with_plugins(event: serde_json::Value, plugins: &[&str]) -> serde_json::Value {
    let mut event = event;
    event["filters"] = plugins
        .iter()
        .map(|name| json!({"type": "plugin", "params": {"name": name}}))
        .collect();
    event
}

#[test]
fn filter_plugins_judge_a_batch_in_one_call_per_plugin_in_order() {
    let fake = Arc::new(FakeFilters::default());
    let mut b = Bench::new();
    b.engine.set_plugins(fake.clone());
    let mut eu = alert("Health", "unhealthy", "i-1");
    eu["context"]["region"] = json!("eu");
    let rows: Vec<Incoming> = [
        with_plugins(eu, &["shout", "drop-eu"]),
        with_plugins(alert("Health", "unhealthy", "i-2"), &["shout", "drop-eu"]),
        with_plugins(alert("Disk", "unhealthy", "i-3"), &["shout", "drop-eu"]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, event)| {
        let event: Event = serde_json::from_value(event).expect("event");
        Incoming {
            seq: i as i64 + 1,
            id: format!("e{i}"),
            team: "ops".into(),
            fingerprint: event.fingerprint().to_string(),
            source: "api".into(),
            received_at: 0,
            monitor: event.alert.monitor.clone(),
            status: event.alert.status,
            labels: serde_json::to_string(&event.context).expect("labels"),
            reported_since: None,
            reported_count: None,
            trace_id: None,
            event: serde_json::to_string(&event).expect("event"),
        }
    })
    .collect();
    let outcome = b.engine.process(rows, 0);
    b.absorb(outcome);
    assert_eq!(
        *fake.calls.lock().expect("lock"),
        vec![("shout".to_owned(), 3), ("drop-eu".to_owned(), 3)],
        "one call per plugin for the whole batch, in the order listed"
    );
    let reasons = b.reasons();
    assert!(
        reasons.contains(&"dropped plugin:drop-eu: eu is decommissioned".to_owned()),
        "{reasons:?}"
    );
    let passed: Vec<&HistoryRow> = b.history.iter().filter(|h| h.outcome == "passed").collect();
    assert_eq!(passed.len(), 2, "{reasons:?}");
    assert!(
        passed.iter().all(|h| h.event.contains("LOUD")),
        "replacements pass on"
    );
}

#[test]
fn a_failing_filter_plugin_fails_open_and_never_drops_a_recovery() {
    let fake = Arc::new(FakeFilters::default());
    let mut b = Bench::new();
    b.engine.set_plugins(fake);
    let in_eu = |status: &str, instance: &str| {
        let mut event = alert("Health", status, instance);
        event["context"]["region"] = json!("eu");
        event
    };
    b.send(0, with_plugins(in_eu("unhealthy", "i-1"), &["broken"]));
    assert_eq!(b.open().len(), 1, "the event passed: {:?}", b.reasons());
    assert!(
        b.history[0]
            .reason
            .contains("plugin:broken failed open: plugin \"broken\" timed out after 50 ms"),
        "{:?}",
        b.reasons()
    );
    // drop-eu drops a new failure in eu, but not the recovery of the open alert.
    b.send(MIN, with_plugins(in_eu("unhealthy", "i-2"), &["drop-eu"]));
    assert_eq!(
        b.history.last().expect("history").outcome,
        "dropped",
        "{:?}",
        b.reasons()
    );
    b.send(2 * MIN, with_plugins(in_eu("healthy", "i-1"), &["drop-eu"]));
    let last = b.history.last().expect("history");
    assert_eq!(last.outcome, "passed", "{:?}", b.reasons());
    assert!(
        last.reason
            .contains("recoveries of unhealthy alerts always pass"),
        "{:?}",
        b.reasons()
    );
}
