//! One batch through the engine: journal rows through the stages, the timers due in
//! between, and the [`Outcome`] the store writes in one transaction, with the deferred
//! commits and the steady refreshes spread over batches.

use std::collections::{BTreeSet, HashMap};

use tocsin_model::event::Status;
use tocsin_model::rows::{AlertRefresh, AlertRow, HeldRow, Hold, IncidentRow, Incoming, Outcome};

use crate::alerting;
use crate::engine::Engine;
use crate::refresh::{self, REFRESH_MIN_WAKE, REFRESH_SLICE, RefreshCycle};
use crate::state::{AlertKey, NEVER, RowSource, Timer};

/// Processed journal rows deleted together.
pub(crate) const JOURNAL_DELETE_EVERY: i64 = 2_000;
/// Longest a batch that only moved the cursor waits for a commit.
pub const CURSOR_DEFER_MS: i64 = 250;

impl Engine {
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
        self.sweep_flaps(now);
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

    /// How long a refresh cycle's writes are spread over.
    fn refresh_spread(&self) -> i64 {
        refresh::spread(self.config.refresh_every_ms)
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

    /// Forgets the change times of alerts that have not changed for a window.
    fn sweep_flaps(&mut self, now: i64) {
        if now - self.last_sweep > self.config.flap_window_ms {
            self.last_sweep = now;
            let window = self.config.flap_window_ms;
            let (held, alerts) = (&self.held, &self.alerts);
            // The earlier changes of an alert whose last change left the window.
            self.flaps.retain(|key, _| {
                alerts
                    .get(key)
                    .is_some_and(|t| t.changed != NEVER && now - t.changed < window)
                    || held.get(key).is_some_and(|h| h.kind == Hold::Flapping)
            });
        }
    }

    fn take_outcome(&mut self, flush: bool, now: i64) -> Outcome {
        let mut pending = std::mem::take(&mut self.pending);
        for joined in pending.joined.values() {
            pending.timeline[joined.entry].detail = joined.detail();
        }
        let alerts = self.alert_rows(pending.alerts);
        // Every alert tracked so far has its row in this outcome or an earlier one.
        self.alerts.written();
        if !flush {
            self.start_refresh(now);
        }
        // A batch that changed an incident carries no refreshes: someone is waiting for
        // its notice. The next batches catch up.
        let refreshed = self.refreshes(flush, pending.timeline.is_empty(), now);
        let held_put = self.held_rows(&pending.held_put);
        let held_delete = pending
            .held_delete
            .iter()
            .filter(|key| !self.held.contains_key(key))
            .map(|key| (self.team_name(key.0).to_owned(), key.1.to_string()))
            .collect();
        let incidents = self.incident_rows(pending.finished, &pending.incidents);
        let notices = alerting::notices(&pending.timeline, &incidents);
        let journal_delete_to = self.journal_delete_to(flush, pending.journal_to);
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

    /// The alert rows the batch changed beyond a refresh; the steady ones' refreshes
    /// wait in `unflushed`.
    fn alert_rows(&mut self, sources: HashMap<AlertKey, RowSource>) -> Vec<AlertRow> {
        let mut alerts = Vec::new();
        for (key, source) in sources {
            if !source.full {
                self.unflushed.insert(key, source);
                continue;
            }
            // A full row carries the refresh too.
            self.unflushed.remove(&key);
            let Some(slot) = self.alerts.slot(&key) else {
                continue;
            };
            let (id, new) = (self.alerts.id(slot), self.alerts.is_new(slot));
            let Some(tracked) = self.alerts.at(slot) else {
                continue;
            };
            alerts.push(AlertRow {
                id,
                new,
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
                    .into_iter()
                    .flatten()
                    .copied()
                    .chain((tracked.changed != NEVER).then_some(tracked.changed))
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        alerts
    }

    /// Starts a round of steady refreshes when none is under way and the interval has
    /// passed since the last.
    fn start_refresh(&mut self, now: i64) {
        if self.refresh.is_some() || now - self.last_flush < self.config.refresh_every_ms {
            return;
        }
        self.last_flush = now;
        let mut keys: Vec<AlertKey> = self.unflushed.keys().copied().collect();
        if !keys.is_empty() {
            // In id order, the table's (descending: slices are taken from the end),
            // so a slice updates neighbouring rows: a few pages of the alerts table
            // rather than one page per alert, each of them rewritten in the WAL.
            // Each key's position is looked up once: a sort that looked it up at every
            // comparison took 20 ms for 20,000 firing alerts, a batch's whole budget,
            // and the notifications behind it waited.
            let alerts = &self.alerts;
            keys.sort_by_cached_key(|key| std::cmp::Reverse(alerts.slot(key)));
            self.refresh = Some(RefreshCycle {
                started: now,
                total: keys.len(),
                keys,
            });
        }
    }

    /// The steady refreshes this outcome writes: all of them on flush, else the slice
    /// of the round under way that is due by `now`, when `may_refresh`.
    fn refreshes(&mut self, flush: bool, may_refresh: bool, now: i64) -> Vec<AlertRefresh> {
        let take: Vec<AlertKey> = if flush {
            self.last_flush = now;
            self.refresh = None;
            self.unflushed.keys().copied().collect()
        } else {
            let spread = self.refresh_spread();
            match &mut self.refresh {
                Some(cycle) if may_refresh => {
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
        let mut refreshed = Vec::new();
        if take.is_empty() {
            return refreshed;
        }
        refreshed.reserve(take.len());
        let sources: Vec<(AlertKey, RowSource)> = take
            .into_iter()
            .filter_map(|k| Some((k, self.unflushed.remove(&k)?)))
            .collect();
        for (key, source) in sources {
            let Some(slot) = self.alerts.slot(&key) else {
                continue;
            };
            let id = self.alerts.id(slot);
            let Some(tracked) = self.alerts.at(slot) else {
                continue;
            };
            refreshed.push(AlertRefresh {
                id,
                since: tracked.since,
                count: tracked.count,
                last_seen: source.last_seen,
                reported_since: source.reported_since,
                reported_count: source.reported_count,
                last_event: source.last_event,
            });
        }
        refreshed
    }

    /// The held events to write.
    fn held_rows(&self, keys: &BTreeSet<AlertKey>) -> Vec<HeldRow> {
        let mut held_put = Vec::new();
        for key in keys {
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
        held_put
    }

    /// The incident rows to write, in an order the unique index on open keys accepts.
    fn incident_rows(&self, finished: Vec<IncidentRow>, slots: &BTreeSet<u32>) -> Vec<IncidentRow> {
        // Incidents that no longer take alerts first: their key frees up before a new
        // incident of the same batch takes it (the unique index checks row by row).
        let mut incidents = finished;
        let mut live: Vec<IncidentRow> = slots
            .iter()
            .filter_map(|slot| self.incidents.get(*slot as usize)?.as_ref())
            .map(|incident| incident.row.clone())
            .collect();
        live.sort_by_key(|row| row.open_key.is_some());
        incidents.extend(live);
        incidents
    }

    /// How far processed rows leave the journal with this outcome, if at all.
    fn journal_delete_to(&mut self, flush: bool, journal_to: Option<i64>) -> Option<i64> {
        // Processed rows leave the journal a few thousand at a time, and all of them on
        // flush (every row up to the cursor is committed, or is with this outcome).
        let to = if flush {
            Some(self.cursor).filter(|to| *to > self.deleted_to)
        } else {
            journal_to.filter(|to| to - self.deleted_to >= JOURNAL_DELETE_EVERY)
        };
        if let Some(to) = to {
            self.deleted_to = to;
        }
        to
    }
}
