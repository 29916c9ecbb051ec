//! The pipeline of DESIGN §4, behind the journal: static pre-filter, dynamic pre-filter
//! and grouping into incidents.
//!
//! [`Engine`] is the whole pipeline as plain, synchronous code over in-memory state:
//! it takes journal rows and the clock, and returns an [`Outcome`] — every row the store
//! must write, in one transaction, for the batch. Because it is the single writer of
//! alert and incident state, grouping is race-free by construction; the database's
//! unique index on open incident keys is the second line of defence. The worker
//! ([`worker`]) feeds it from the journal and commits its outcomes; a simulation can
//! drive it with a virtual clock.
//!
//! Time is the receipt time of the event being processed: timers due before an event
//! fire before it, so the same journal always gives the same incidents.

mod alerting;
mod grouping;
mod prefilter;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tocsin_model::event::{Event, Fingerprint, Priority, Status};
use tocsin_model::rows::{
    AlertRefresh, AlertRow, HeldRow, HistoryRow, Hold, IncidentRow, IncidentState, Incoming,
    MemberRow, Outcome, Rules, Snapshot, TimelineRow, TrackedRow,
};
use tocsin_model::suppression::Policy;

pub use grouping::IncidentError;
pub use prefilter::FLAPPING_LABEL;

/// Settings of the pipeline an operator may change.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Status changes within [`Config::flap_window_ms`] that make an alert flapping.
    pub flap_threshold: usize,
    /// The window flap detection counts changes in; a flapping alert that holds one
    /// status this long is stable again.
    pub flap_window_ms: i64,
    /// How long an incident whose alerts are all healthy waits before it resolves; a
    /// re-trigger meanwhile reopens it.
    pub grace_ms: i64,
    /// Grouping window when neither the event nor its service sets one.
    pub default_window_ms: i64,
    /// How long history and finished incidents are kept.
    pub retention_ms: i64,
    /// How often steady repeats' refreshes (`count`, `last_seen`, `last_event`) are
    /// written. Between writes they live in memory: a crash may lose up to this much of
    /// them, plus the three quarters of it their writes are spread over (never a status
    /// change, a drop or an incident), and a graceful stop writes them all. Writing every
    /// repeat at once cost half the pipeline's time.
    pub refresh_every_ms: i64,
    /// Suppression guards.
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            flap_threshold: 5,
            flap_window_ms: 30 * 60_000,
            grace_ms: 5 * 60_000,
            default_window_ms: 30 * 60_000,
            retention_ms: 14 * 86_400_000,
            refresh_every_ms: 2_000,
            policy: Policy::default(),
        }
    }
}

/// An alert identity: interned team and fingerprint. 20 bytes, so a million fit.
type AlertKey = (u32, Fingerprint);

/// Processed journal rows deleted together.
const JOURNAL_DELETE_EVERY: i64 = 2_000;
/// Longest a batch that only moved the cursor waits for a commit.
pub const CURSOR_DEFER_MS: i64 = 250;

/// Most steady refreshes written per batch while a refresh cycle is under way.
const REFRESH_SLICE: usize = 200;
/// A refresh cycle spreads its writes over this share of the interval (in quarters),
/// leaving the rest as slack for batches that carried none.
const REFRESH_SPREAD_QUARTERS: i64 = 3;
/// Fewest refreshes a quiet system wakes up to write.
const REFRESH_MIN_WAKE: usize = 25;

/// One round of writing steady refreshes. Each batch writes the share of the round that
/// is due by its time, so the writes are spread evenly over the interval: written all at
/// once they held the database's single writer for tens of milliseconds and delayed the
/// appends and notifications behind it.
#[derive(Debug)]
struct RefreshCycle {
    started: i64,
    /// The alerts unflushed when the cycle started: each is written in this cycle, so
    /// none waits longer than the interval and the cycle's spread.
    keys: Vec<AlertKey>,
    total: usize,
}

impl RefreshCycle {
    fn written(&self) -> usize {
        self.total - self.keys.len()
    }

    /// How many of the cycle's refreshes are due by `now`, spread over `spread` ms.
    fn due(&self, now: i64, spread: i64) -> usize {
        let elapsed = (now - self.started).clamp(0, spread.max(1)) as u128;
        let due = (self.total as u128 * elapsed).div_ceil(spread.max(1) as u128) as usize;
        due.clamp(1, self.total)
    }

    /// When at least `n` more refreshes are due.
    fn next_due(&self, n: usize, spread: i64) -> i64 {
        let target = (self.written() + n).min(self.total) as i64;
        self.started + spread * target / self.total.max(1) as i64
    }
}

/// What the engine keeps per alert identity; kept small (a million must fit in
/// 256 MiB with the rest of the process).
#[derive(Debug, Clone, Copy)]
struct Tracked {
    since: i64,
    count: i64,
    /// The incident slot it belongs to, +1 (0: none).
    incident: u32,
    reported: Status,
    passed: Status,
    hold: Option<Hold>,
}

/// An event held back, in memory.
#[derive(Debug, Clone)]
struct Held {
    kind: Hold,
    due: Option<i64>,
    suppression: Option<String>,
    id: String,
    source: String,
    received_at: i64,
    event: Event,
    trace: Option<String>,
}

/// An incident still open or resolving.
#[derive(Debug, Clone)]
struct Incident {
    row: IncidentRow,
    team: u32,
    members: Vec<AlertKey>,
}

/// A timer: something that happens by itself at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// An `ignore-flap` hold reaches its min-age.
    Release(AlertKey),
    /// A flapping alert may be stable again.
    FlapEnd(AlertKey),
    /// An incident's grace period ends.
    Resolve(u32),
    /// A suppression ends: its held alerts are looked at again.
    SuppressionEnd(String),
}

/// Where an alert row's descriptive columns come from in this batch.
#[derive(Debug, Clone, Default)]
struct RowSource {
    /// Whether the row changed beyond a steady repeat's refresh (status, hold, a new
    /// identity): then the whole row is written, else only the refreshed columns.
    full: bool,
    monitor: String,
    labels: String,
    first_seen: i64,
    last_seen: i64,
    reported_since: Option<i64>,
    reported_count: Option<i64>,
    last_event: String,
}

/// The pipeline's in-memory state and its pending writes.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    teams: Vec<String>,
    team_ids: HashMap<String, u32>,
    alerts: HashMap<AlertKey, Tracked>,
    /// Recent status changes of alerts that changed within the flap window.
    flaps: HashMap<AlertKey, Vec<i64>>,
    held: HashMap<AlertKey, Held>,
    incidents: Vec<Option<Incident>>,
    free_slots: Vec<u32>,
    /// (team, key) → slot of the incident that still takes alerts with that key.
    joinable: HashMap<(u32, String), u32>,
    timers: BTreeSet<(i64, Timer)>,
    rules: Rules,
    cursor: i64,
    generation: i64,
    /// When `flaps` was last swept.
    last_sweep: i64,
    /// Steady repeats' refreshes not written yet, by alert.
    unflushed: HashMap<AlertKey, RowSource>,
    /// When they were last written.
    last_flush: i64,
    pending: Pending,
    /// Runs the teams' filter plugins; `None` when no plugin runtime is wired in.
    plugins: Option<prefilter::Runner>,
    /// Verdicts of the filter plugins on this batch's events, by event id, computed
    /// in one call per plugin before the events are processed one by one.
    plugin_verdicts: HashMap<String, prefilter::PluginOutcome>,
    /// A commit since the worker last looked left notices for the outbox.
    noticed: bool,
    /// Steady refreshes being written, a slice per batch.
    refresh: Option<RefreshCycle>,
    /// Journal rows up to here are deleted (or about to be, with the next commit).
    deleted_to: i64,
    /// Since when the cursor moved without a commit ([`Engine::defer`]).
    deferred_since: Option<i64>,
}

/// Writes collected during a batch.
#[derive(Debug, Default)]
struct Pending {
    alerts: HashMap<AlertKey, RowSource>,
    history: Vec<HistoryRow>,
    held_put: BTreeSet<AlertKey>,
    held_delete: BTreeSet<AlertKey>,
    incidents: BTreeSet<u32>,
    finished: Vec<IncidentRow>,
    members: HashMap<(u32, AlertKey), MemberRow>,
    /// Member rows of an incident whose slot was reused within the batch.
    extra_members: Vec<MemberRow>,
    timeline: Vec<TimelineRow>,
    drops: BTreeMap<(u32, String), i64>,
    journal_to: Option<i64>,
}

impl Engine {
    /// An engine with no state, as for a new database.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            teams: Vec::new(),
            team_ids: HashMap::new(),
            alerts: HashMap::new(),
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
    pub fn set_plugins(&mut self, plugins: Arc<dyn tocsin_model::plugin::Filter>) {
        self.plugins = Some(prefilter::Runner(plugins));
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Journal rows up to here are processed.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The commit counter this state corresponds to.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Records that the store committed this engine's outcome.
    pub fn committed(&mut self) {
        self.generation += 1;
        self.deferred_since = None;
    }

    /// Whether `outcome` (of a batch processed at `now`) may wait for a later commit: it
    /// only moves the cursor, and the cursor was committed less than [`CURSOR_DEFER_MS`]
    /// ago. Under a steady stream most batches are such, and each commit costs the
    /// database's single writer a transaction that appends and notifications wait for.
    pub fn may_defer(&self, outcome: &Outcome, now: i64) -> bool {
        outcome.moves_only_cursor()
            && self
                .deferred_since
                .is_none_or(|since| now - since < CURSOR_DEFER_MS)
    }

    /// Leaves `outcome` (which only moves the cursor) uncommitted: its cursor and drop
    /// counts go with the next commit, at the latest [`CURSOR_DEFER_MS`] from now.
    pub fn defer(&mut self, outcome: &Outcome, now: i64) {
        if self.pending.journal_to.is_none() {
            self.pending.journal_to = outcome.journal_to;
        }
        for (team, reason, n) in &outcome.drops {
            let team = self.team_id(team);
            *self
                .pending
                .drops
                .entry((team, reason.clone()))
                .or_default() += n;
        }
        self.deferred_since.get_or_insert(now);
    }

    /// Alert identities tracked.
    pub fn tracked(&self) -> usize {
        self.alerts.len()
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
            return;
        };
        let key = (self.team_id(&row.team), fingerprint);
        self.alerts.insert(
            key,
            Tracked {
                since: row.since,
                count: row.count,
                incident: 0,
                reported: row.status,
                passed: row.passed,
                hold: row.hold,
            },
        );
        let times: Vec<i64> = row
            .transitions
            .split(',')
            .filter_map(|t| t.parse().ok())
            .collect();
        if !times.is_empty() {
            self.flaps.insert(key, times);
        }
    }

    /// Restores cursor, held events and open incidents (after [`Engine::load_alert`]).
    pub fn load_snapshot(&mut self, snapshot: Snapshot) {
        self.cursor = snapshot.cursor;
        self.deleted_to = snapshot.cursor;
        self.generation = snapshot.generation;
        for row in snapshot.held {
            let (Ok(fingerprint), Ok(event)) = (
                row.fingerprint.parse::<Fingerprint>(),
                serde_json::from_str::<Event>(&row.event),
            ) else {
                tracing::warn!(fingerprint = %row.fingerprint, "skipping an unreadable held event");
                continue;
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
        for (incident, team, fingerprint, _status) in snapshot.members {
            let (Some(&slot), Ok(fingerprint)) = (slots.get(&incident), fingerprint.parse()) else {
                continue;
            };
            let key = (self.team_id(&team), fingerprint);
            if let Some(tracked) = self.alerts.get_mut(&key) {
                tracked.incident = slot + 1;
            }
            if let Some(Some(incident)) = self.incidents.get_mut(slot as usize) {
                incident.members.push(key);
            }
        }
    }

    /// Runs journal rows through the pipeline, then the timers due by `now`, and returns
    /// what to write.
    pub fn process(&mut self, rows: Vec<Incoming>, now: i64) -> Outcome {
        self.judge_batch(&rows);
        for row in rows {
            self.fire_timers(row.received_at);
            let seq = row.seq;
            self.on_event(row);
            self.pending.journal_to = Some(seq);
            self.cursor = seq;
        }
        self.fire_timers(now);
        // Verdicts on events that stopped before the plugin stage are not needed.
        self.plugin_verdicts.clear();
        // Forget the change times of alerts that have not changed for a window.
        if now - self.last_sweep > self.config.flap_window_ms {
            self.last_sweep = now;
            let window = self.config.flap_window_ms;
            let held = &self.held;
            self.flaps.retain(|key, times| {
                times.last().is_some_and(|t| now - *t < window)
                    || held.get(key).is_some_and(|h| h.kind == Hold::Flapping)
            });
        }
        self.take_outcome(false, now)
    }

    /// Everything pending, including every steady refresh not written yet (on shutdown).
    pub fn flush(&mut self, now: i64) -> Outcome {
        self.take_outcome(true, now)
    }

    /// The journal rows of a batch whose body (labels and event) the engine will read:
    /// every row but steady repeats, which only refresh their alert. Reading the others
    /// without their body keeps the steady stream cheap.
    pub fn needing_bodies(&self, rows: &[Incoming]) -> Vec<i64> {
        let mut seen: HashMap<(&str, &str), Status> = HashMap::new();
        let mut need = Vec::new();
        for row in rows {
            let last = seen
                .get(&(row.team.as_str(), row.fingerprint.as_str()))
                .copied()
                .or_else(|| {
                    let team = *self.team_ids.get(&row.team)?;
                    let tracked = self.alerts.get(&(team, row.fingerprint.parse().ok()?))?;
                    if tracked.hold == Some(Hold::Suppressed) {
                        return None; // A repeat may be released: read it whole.
                    }
                    Some(tracked.reported)
                });
            if last != Some(row.status) {
                need.push(row.seq);
            }
            seen.insert((row.team.as_str(), row.fingerprint.as_str()), row.status);
        }
        need
    }

    /// How long a refresh cycle's writes are spread over.
    fn refresh_spread(&self) -> i64 {
        self.config.refresh_every_ms * REFRESH_SPREAD_QUARTERS / 4
    }

    /// When the next timer is due, if any.
    pub fn next_due(&self) -> Option<i64> {
        let timer = self.timers.first().map(|(at, _)| *at);
        // A refresh cycle under way goes on even with no event coming, and a deferred
        // cursor is committed in time.
        let refresh = self
            .refresh
            .as_ref()
            .map(|cycle| cycle.next_due(REFRESH_MIN_WAKE, self.refresh_spread()));
        let cursor = self.deferred_since.map(|since| since + CURSOR_DEFER_MS);
        [timer, refresh, cursor].into_iter().flatten().min()
    }

    fn team_id(&mut self, team: &str) -> u32 {
        if let Some(&id) = self.team_ids.get(team) {
            return id;
        }
        let id = self.teams.len() as u32;
        self.teams.push(team.to_owned());
        self.team_ids.insert(team.to_owned(), id);
        id
    }

    fn team_name(&self, team: u32) -> &str {
        self.teams.get(team as usize).map_or("", String::as_str)
    }

    fn fire_timers(&mut self, now: i64) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((at, timer)) = self.timers.pop_first() else {
                break;
            };
            match timer {
                Timer::Release(key) => self.release(key, at),
                Timer::FlapEnd(key) => self.flap_end(key, at),
                Timer::Resolve(slot) => self.resolve(slot, at),
                Timer::SuppressionEnd(id) => self.suppression_end(&id, at),
            }
        }
    }

    fn drop_count(&mut self, team: u32, reason: &str) {
        *self
            .pending
            .drops
            .entry((team, reason.to_owned()))
            .or_default() += 1;
    }

    /// Records a history row for `event`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        key: AlertKey,
        meta: &EventMeta,
        event: &Event,
        outcome: &'static str,
        reason: String,
        suppression_id: Option<String>,
        incident_id: Option<String>,
        priority: Option<Priority>,
        now: i64,
    ) {
        if outcome == "dropped" {
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
        self.pending.history.push(HistoryRow {
            id: meta.id.clone(),
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

    fn take_outcome(&mut self, flush: bool, now: i64) -> Outcome {
        let pending = std::mem::take(&mut self.pending);
        let mut alerts = Vec::new();
        for (key, source) in pending.alerts {
            if !source.full {
                self.unflushed.insert(key, source);
                continue;
            }
            // A full row carries the refresh too.
            self.unflushed.remove(&key);
            let Some(tracked) = self.alerts.get(&key) else {
                continue;
            };
            alerts.push(AlertRow {
                team: self.team_name(key.0).to_owned(),
                fingerprint: key.1.to_string(),
                monitor: source.monitor,
                labels: source.labels,
                status: tracked.reported,
                passed: tracked.passed,
                hold: tracked.hold,
                since: tracked.since,
                count: tracked.count,
                first_seen: source.first_seen,
                last_seen: source.last_seen,
                reported_since: source.reported_since,
                reported_count: source.reported_count,
                last_event: source.last_event,
                transitions: self
                    .flaps
                    .get(&key)
                    .map(|times| {
                        times
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            });
        }
        if !flush && self.refresh.is_none() && now - self.last_flush >= self.config.refresh_every_ms
        {
            self.last_flush = now;
            let mut keys: Vec<AlertKey> = self.unflushed.keys().copied().collect();
            if !keys.is_empty() {
                // In key order (descending: slices are taken from the end), so a slice
                // updates neighbouring rows: a few pages of the alerts table rather
                // than one page per alert, each of them rewritten in the WAL.
                keys.sort_unstable_by(|a, b| b.cmp(a));
                self.refresh = Some(RefreshCycle {
                    started: now,
                    total: keys.len(),
                    keys,
                });
            }
        }
        let mut refreshed = Vec::new();
        let take: Vec<AlertKey> = if flush {
            self.last_flush = now;
            self.refresh = None;
            self.unflushed.keys().copied().collect()
        } else {
            let spread = self.refresh_spread();
            match &mut self.refresh {
                // A batch that changed an incident carries no refreshes: someone is
                // waiting for its notice. The next batches catch up.
                Some(cycle) if pending.timeline.is_empty() => {
                    let n = cycle
                        .due(now, spread)
                        .saturating_sub(cycle.written())
                        .min(REFRESH_SLICE);
                    let at = cycle.keys.len() - n;
                    cycle.keys.split_off(at)
                }
                _ => Vec::new(),
            }
        };
        if self.refresh.as_ref().is_some_and(|c| c.keys.is_empty()) {
            self.refresh = None;
        }
        if !take.is_empty() {
            refreshed.reserve(take.len());
            let sources: Vec<(AlertKey, RowSource)> = take
                .into_iter()
                .filter_map(|k| Some((k, self.unflushed.remove(&k)?)))
                .collect();
            for (key, source) in sources {
                let Some(tracked) = self.alerts.get(&key) else {
                    continue;
                };
                refreshed.push(AlertRefresh {
                    team: self.team_name(key.0).to_owned(),
                    fingerprint: key.1.to_string(),
                    since: tracked.since,
                    count: tracked.count,
                    last_seen: source.last_seen,
                    reported_since: source.reported_since,
                    reported_count: source.reported_count,
                    last_event: source.last_event,
                });
            }
        }
        let mut held_put = Vec::new();
        for key in &pending.held_put {
            if let Some(held) = self.held.get(key) {
                held_put.push(HeldRow {
                    team: self.team_name(key.0).to_owned(),
                    fingerprint: key.1.to_string(),
                    kind: held.kind,
                    due_at: held.due,
                    suppression_id: held.suppression.clone(),
                    id: held.id.clone(),
                    source: held.source.clone(),
                    received_at: held.received_at,
                    event: serde_json::to_string(&held.event).unwrap_or_default(),
                    trace_id: held.trace.clone(),
                });
            }
        }
        let held_delete = pending
            .held_delete
            .iter()
            .filter(|key| !self.held.contains_key(key))
            .map(|key| (self.team_name(key.0).to_owned(), key.1.to_string()))
            .collect();
        // Incidents that no longer take alerts first: their key frees up before a new
        // incident of the same batch takes it (the unique index checks row by row).
        let mut incidents = pending.finished;
        let mut live: Vec<IncidentRow> = pending
            .incidents
            .iter()
            .filter_map(|slot| self.incidents.get(*slot as usize)?.as_ref())
            .map(|incident| incident.row.clone())
            .collect();
        live.sort_by_key(|row| row.open_key.is_some());
        incidents.extend(live);
        let notices = alerting::notices(&pending.timeline, &incidents);
        // Processed rows leave the journal a few thousand at a time, and all of them on
        // flush (every row up to the cursor is committed, or is with this outcome).
        let journal_delete_to = if flush {
            Some(self.cursor).filter(|to| *to > self.deleted_to)
        } else {
            pending
                .journal_to
                .filter(|to| to - self.deleted_to >= JOURNAL_DELETE_EVERY)
        };
        if let Some(to) = journal_delete_to {
            self.deleted_to = to;
        }
        Outcome {
            journal_to: pending.journal_to,
            journal_delete_to,
            alerts,
            refreshed,
            history: pending.history,
            held_put,
            held_delete,
            incidents,
            members: pending
                .extra_members
                .into_iter()
                .chain(pending.members.into_values())
                .collect(),
            notices,
            timeline: pending.timeline,
            drops: pending
                .drops
                .into_iter()
                .map(|((team, reason), n)| (self.team_name(team).to_owned(), reason, n))
                .collect(),
        }
    }
}

/// Where an event came from, for its history row.
#[derive(Debug, Clone)]
struct EventMeta {
    id: String,
    source: String,
    received_at: i64,
    /// The trace id of the request that brought it; `None` for Tocsin's own events.
    trace: Option<String>,
}

#[cfg(test)]
mod tests;
