//! The pipeline's semantics, driven with a virtual clock: a bench here, the tests by
//! stage in the modules below.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::json;

use super::*;
use tocsin_model::catalogue::{Lifecycle, Service, ServiceSpec};
use tocsin_model::event::{Event, Priority, Status, render};
use tocsin_model::rows::{
    ActiveSuppression, HistoryRow, IncidentRow, IncidentState, Incoming, MemberRow, Outcome, Rules,
    Snapshot, TrackedRow,
};
use tocsin_model::suppression::{Draft, Policy};

mod batch;
mod catalogue;
mod grouping;
mod plugins;
mod prefilter;
mod suppression;

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
