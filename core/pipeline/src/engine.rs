//! The [`Engine`]: the pipeline's in-memory state, how it is loaded, and what every
//! stage shares (interned teams, rules, holds, history rows). The stages themselves are
//! `impl Engine` blocks of their own modules.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tocsin_model::catalogue::Service;
use tocsin_model::event::{Event, Fingerprint, Priority};
use tocsin_model::plugin::Filter;
use tocsin_model::rows::{
    HeldRow, HistoryOutcome, HistoryRow, Hold, IncidentState, Rules, Snapshot, TrackedRow,
};

use crate::alerts::Alerts;
use crate::config::Config;
use crate::plugins::{PluginOutcome, Runner};
use crate::refresh::RefreshCycle;
use crate::state::{
    AlertKey, EventMeta, Held, Incident, NEVER, Pending, RowSource, Timer, Tracked,
};

/// The pipeline's in-memory state and its pending writes.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) teams: Vec<String>,
    pub(crate) team_ids: HashMap<String, u32>,
    pub(crate) alerts: Alerts,
    /// The status changes within the flap window before each alert's last one
    /// ([`Tracked::changed`]), oldest first: only alerts that changed more than once.
    pub(crate) flaps: HashMap<AlertKey, Vec<i64>>,
    pub(crate) held: HashMap<AlertKey, Held>,
    pub(crate) incidents: Vec<Option<Incident>>,
    pub(crate) free_slots: Vec<u32>,
    /// (team, key) → slot of the incident that still takes alerts with that key.
    pub(crate) joinable: HashMap<(u32, String), u32>,
    pub(crate) timers: BTreeSet<(i64, Timer)>,
    pub(crate) rules: Rules,
    pub(crate) cursor: i64,
    pub(crate) generation: i64,
    /// When `flaps` was last swept.
    pub(crate) last_sweep: i64,
    /// Steady repeats' refreshes not written yet, by alert.
    pub(crate) unflushed: HashMap<AlertKey, RowSource>,
    /// When they were last written.
    pub(crate) last_flush: i64,
    pub(crate) pending: Pending,
    /// Runs the teams' filter plugins; `None` when no plugin runtime is wired in.
    pub(crate) plugins: Option<Runner>,
    /// Verdicts of the filter plugins on this batch's events, by event id, computed
    /// in one call per plugin before the events are processed one by one.
    pub(crate) plugin_verdicts: HashMap<String, PluginOutcome>,
    /// A commit since the worker last looked left notices for the outbox.
    pub(crate) noticed: bool,
    /// Steady refreshes being written, a slice per batch.
    pub(crate) refresh: Option<RefreshCycle>,
    /// Journal rows up to here are deleted (or about to be, with the next commit).
    pub(crate) deleted_to: i64,
    /// Since when the cursor moved without a commit ([`Engine::defer`]).
    pub(crate) deferred_since: Option<i64>,
}

impl Engine {
    /// An engine with no state, as for a new database.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            teams: Vec::new(),
            team_ids: HashMap::new(),
            alerts: Alerts::default(),
            flaps: HashMap::new(),
            held: HashMap::new(),
            incidents: Vec::new(),
            free_slots: Vec::new(),
            joinable: HashMap::new(),
            timers: BTreeSet::new(),
            rules: Rules::default(),
            cursor: 0,
            generation: 0,
            last_sweep: 0,
            unflushed: HashMap::new(),
            last_flush: 0,
            pending: Pending::default(),
            plugins: None,
            noticed: false,
            refresh: None,
            deleted_to: 0,
            deferred_since: None,
            plugin_verdicts: HashMap::new(),
        }
    }

    /// Runs filter plugins with this runtime from now on.
    pub fn set_plugins(&mut self, plugins: Arc<dyn Filter>) {
        self.plugins = Some(Runner(plugins));
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a commit since the last call left notices for the outbox.
    pub fn take_noticed(&mut self) -> bool {
        std::mem::take(&mut self.noticed)
    }

    /// Journal rows up to here are processed.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The commit counter this state corresponds to.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Alert identities tracked.
    pub fn tracked(&self) -> usize {
        self.alerts.len()
    }

    /// Alerts flapping now (their changes held until they keep one status).
    pub fn flapping(&self) -> usize {
        self.held
            .values()
            .filter(|held| held.kind == Hold::Flapping)
            .count()
    }

    /// The catalogue version the rules were read at.
    pub fn rules_version(&self) -> i64 {
        self.rules.version
    }

    /// Replaces the catalogue and suppressions, and schedules each suppression's end.
    pub fn set_rules(&mut self, rules: Rules) {
        for suppression in &rules.suppressions {
            self.timers.insert((
                suppression.end,
                Timer::SuppressionEnd(suppression.id.clone()),
            ));
        }
        self.rules = rules;
    }

    /// Adds one loaded alert state (at start).
    pub fn load_alert(&mut self, row: TrackedRow) {
        let Ok(fingerprint) = row.fingerprint.parse() else {
            tracing::warn!(fingerprint = %row.fingerprint, "skipping an alert with an unreadable fingerprint");
            // Its id stays taken.
            self.alerts.taken(row.id);
            return;
        };
        let key = (self.team_id(&row.team), fingerprint);
        self.alerts.load(
            key,
            Tracked {
                since: row.since,
                count: row.count,
                incident: 0,
                reported: row.status,
                passed: row.passed,
                hold: row.hold,
                changed: NEVER,
            },
            row.id,
        );
        let mut times: Vec<i64> = row
            .transitions
            .split(',')
            .filter_map(|t| t.parse().ok())
            .collect();
        if let (Some(last), Some(tracked)) = (times.pop(), self.alerts.get_mut(&key)) {
            tracked.changed = last;
        }
        if !times.is_empty() {
            self.flaps.insert(key, times);
        }
    }

    /// Counts a status change of `key` at `now` for flap detection: the one before it
    /// joins `flaps` if still in the window, and older ones leave.
    pub(crate) fn count_change(&mut self, key: AlertKey, now: i64) {
        let window = self.config.flap_window_ms;
        let Some(tracked) = self.alerts.get_mut(&key) else {
            return;
        };
        let before = std::mem::replace(&mut tracked.changed, now);
        if before != NEVER && now - before < window {
            let times = self.flaps.entry(key).or_default();
            times.retain(|t| now - *t < window);
            times.push(before);
        } else {
            self.flaps.remove(&key);
        }
    }

    /// The status changes of `key` that flap detection counts at `now`.
    pub(crate) fn changes(&self, key: AlertKey, now: i64) -> usize {
        let last = self
            .alerts
            .get(&key)
            .is_some_and(|t| t.changed != NEVER && now - t.changed < self.config.flap_window_ms);
        self.flaps.get(&key).map_or(0, Vec::len) + usize::from(last)
    }

    /// Forgets every change of `key` (it stopped flapping).
    pub(crate) fn forget_changes(&mut self, key: AlertKey) {
        self.flaps.remove(&key);
        if let Some(tracked) = self.alerts.get_mut(&key) {
            tracked.changed = NEVER;
        }
    }

    /// Restores cursor, held events and open incidents (after [`Engine::load_alert`]).
    pub fn load_snapshot(&mut self, snapshot: Snapshot) {
        self.cursor = snapshot.cursor;
        self.deleted_to = snapshot.cursor;
        self.generation = snapshot.generation;
        for row in snapshot.held {
            self.load_held(row);
        }
        let mut slots = HashMap::new();
        for row in snapshot.incidents {
            let team = self.team_id(&row.team);
            let slot = self.incidents.len() as u32;
            if let Some(open_key) = &row.open_key {
                self.joinable.insert((team, open_key.clone()), slot);
            }
            if let (IncidentState::Resolving, Some(at)) = (row.state, row.resolve_at) {
                self.timers.insert((at, Timer::Resolve(slot)));
            }
            slots.insert(row.id.clone(), slot);
            self.incidents.push(Some(Incident {
                row,
                team,
                members: Vec::new(),
            }));
        }
        for (incident, team, fingerprints) in snapshot.members {
            let Some(&slot) = slots.get(&incident) else {
                continue;
            };
            let team = self.team_id(&team);
            for fingerprint in fingerprints {
                let Ok(fingerprint) = fingerprint.parse() else {
                    continue;
                };
                let key = (team, fingerprint);
                // An alert in several open incidents belongs to the newest (slots follow
                // `opened_at`): it joins another only once its incident stopped taking
                // alerts, and the one that opens next is newer.
                let Some(at) = self.alerts.slot(&key) else {
                    continue; // Its alert is not tracked: nothing to point back at it.
                };
                if let Some(tracked) = self.alerts.at_mut(at) {
                    tracked.incident = tracked.incident.max(slot + 1);
                }
                if let Some(Some(incident)) = self.incidents.get_mut(slot as usize) {
                    incident.members.push(at);
                }
            }
        }
    }

    /// Restores one held event and the timer that releases it.
    fn load_held(&mut self, row: HeldRow) {
        let (Ok(fingerprint), Ok(event)) = (
            row.fingerprint.parse::<Fingerprint>(),
            serde_json::from_str::<Event>(&row.event),
        ) else {
            tracing::warn!(fingerprint = %row.fingerprint, "skipping an unreadable held event");
            return;
        };
        let key = (self.team_id(&row.team), fingerprint);
        if let Some(due) = row.due_at {
            let timer = match row.kind {
                Hold::IgnoreFlap => Some(Timer::Release(key)),
                Hold::Flapping => Some(Timer::FlapEnd(key)),
                _ => None,
            };
            if let Some(timer) = timer {
                self.timers.insert((due, timer));
            }
        }
        self.held.insert(
            key,
            Held {
                kind: row.kind,
                due: row.due_at,
                suppression: row.suppression_id,
                id: row.id,
                source: row.source,
                received_at: row.received_at,
                event,
                trace: row.trace_id,
            },
        );
    }

    pub(crate) fn team_id(&mut self, team: &str) -> u32 {
        if let Some(&id) = self.team_ids.get(team) {
            return id;
        }
        let id = self.teams.len() as u32;
        self.teams.push(team.to_owned());
        self.team_ids.insert(team.to_owned(), id);
        id
    }

    pub(crate) fn team_name(&self, team: u32) -> &str {
        self.teams.get(team as usize).map_or("", String::as_str)
    }

    /// The catalogue entry of the event's service, when `team` owns it.
    pub(crate) fn service_of(&self, team: &str, event: &Event) -> Option<Arc<Service>> {
        self.rules
            .service_for(team, event.context.get("service")?)
            .cloned()
    }

    pub(crate) fn drop_count(&mut self, team: u32, reason: &str) {
        *self
            .pending
            .drops
            .entry((team, reason.to_owned()))
            .or_default() += 1;
    }

    /// Records a history row for `event`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &mut self,
        key: AlertKey,
        meta: &EventMeta,
        event: &Event,
        outcome: HistoryOutcome,
        reason: String,
        suppression_id: Option<String>,
        incident_id: Option<String>,
        priority: Option<Priority>,
        now: i64,
    ) {
        if outcome == HistoryOutcome::Dropped {
            self.drop_count(
                key.0,
                reason
                    .split(':')
                    .next()
                    .unwrap_or(&reason)
                    .to_owned()
                    .as_str(),
            );
        }
        let team = self.team_name(key.0).to_owned();
        let alert = self.alerts.slot(&key).map(|slot| self.alerts.id(slot));
        self.pending.history.push(HistoryRow {
            id: meta.id.clone(),
            alert,
            team,
            fingerprint: key.1.to_string(),
            source: meta.source.clone(),
            received_at: meta.received_at,
            processed_at: now,
            monitor: event.alert.monitor.clone(),
            status: event.alert.status,
            labels: serde_json::to_string(&event.context).unwrap_or_default(),
            outcome,
            reason,
            suppression_id,
            incident_id,
            priority,
            event: serde_json::to_string(event).unwrap_or_default(),
            trace_id: meta.trace.clone(),
        });
    }

    pub(crate) fn set_hold(&mut self, key: AlertKey, hold: Option<Hold>) {
        if let Some(tracked) = self.alerts.get_mut(&key) {
            tracked.hold = hold;
        }
    }

    /// Keeps `event` as the latest held one for `key`.
    pub(crate) fn hold(
        &mut self,
        key: AlertKey,
        kind: Hold,
        event: &Event,
        meta: &EventMeta,
        due: Option<i64>,
        suppression: Option<String>,
    ) {
        self.set_hold(key, Some(kind));
        self.held.insert(
            key,
            Held {
                kind,
                due,
                suppression,
                id: meta.id.clone(),
                source: meta.source.clone(),
                received_at: meta.received_at,
                trace: meta.trace.clone(),
                event: event.clone(),
            },
        );
        self.pending.held_put.insert(key);
        self.pending.held_delete.remove(&key);
    }

    pub(crate) fn unhold(&mut self, key: AlertKey) {
        if self.held.remove(&key).is_some() {
            self.pending.held_put.remove(&key);
            self.pending.held_delete.insert(key);
        }
    }

    /// Marks an alert's row for rewriting after a change no journal row caused.
    pub(crate) fn touch(&mut self, key: AlertKey, held: &Held) {
        let Some(tracked) = self.alerts.get(&key) else {
            return;
        };
        let since = tracked.since;
        let source = self.pending.alerts.entry(key).or_insert_with(|| RowSource {
            first_seen: held.received_at,
            last_seen: held.received_at.max(since),
            last_event: held.id.clone(),
            ..RowSource::default()
        });
        if source.labels.is_empty() {
            source.monitor.clone_from(&held.event.alert.monitor);
            source.labels = serde_json::to_string(&held.event.context).unwrap_or_default();
        }
        source.full = true;
    }
}
