//! The static pre-filter (see docs/pipeline.md, static pre-filter): per identity and
//! cheap, it always applies. State change, flap detection (its holds; the flapping alert
//! itself is `flapping`'s), retired hosts, `ignore-flap` and the teams' filter plugins;
//! what passes goes on to the dynamic pre-filter.

use tocsin_model::event::{Event, FilterSpec, Status, parse_duration};
use tocsin_model::rows::{HistoryOutcome, Hold, Incoming};

use crate::engine::Engine;
use crate::flapping::is_flapping_alert;
use crate::plugins::{Judged, PluginOutcome, plugin_filters};
use crate::state::{AlertKey, EventMeta, NEVER, RowSource, Timer, Tracked};
use crate::text::human;

impl Engine {
    /// One journal row through the static pre-filter and on.
    pub(crate) fn on_event(&mut self, row: Incoming) {
        let team = self.team_id(&row.team);
        let Ok(fingerprint) = row.fingerprint.parse() else {
            tracing::error!(id = %row.id, "journal row with an unreadable fingerprint; dropped");
            self.drop_count(team, "unreadable");
            return;
        };
        let key: AlertKey = (team, fingerprint);
        let now = row.received_at;
        let status = row.status;
        let previous = self.alerts.get(&key).copied();
        let steady = previous.is_some_and(|t| t.reported == status);
        let source = self.pending.alerts.entry(key).or_insert_with(|| RowSource {
            first_seen: now,
            full: false,
            ..RowSource::default()
        });
        source.last_seen = now;
        source.reported_since = row.reported_since;
        source.reported_count = row.reported_count;
        source.last_event.clone_from(&row.id);
        // Steady repeats are read without their body (labels, event): keep what an
        // earlier row of the batch brought.
        if !row.labels.is_empty() {
            source.monitor = row.monitor;
            source.labels = row.labels;
        }
        source.full |= !steady;

        // State change: a steady repeat refreshes its state and stops here.
        if let Some(mut tracked) = previous
            && tracked.reported == status
        {
            tracked.since = row.reported_since.unwrap_or(tracked.since);
            tracked.count = row.reported_count.unwrap_or(tracked.count + 1);
            self.alerts.insert(key, tracked);
            // An alert held by a suppression that has since ended (or been edited off
            // it) is passed on by its next repeat.
            if tracked.hold == Some(Hold::Suppressed) && status == Status::Unhealthy {
                let still = self.held.get(&key).and_then(|h| h.suppression.clone());
                let matched = self
                    .held
                    .get(&key)
                    .and_then(|h| self.suppressed_by(key.0, &h.event, now));
                if (matched.is_none() || matched != still)
                    && let Ok(event) = serde_json::from_str::<Event>(&row.event)
                {
                    // Its hold and passed status change: the whole row is written.
                    if let Some(source) = self.pending.alerts.get_mut(&key) {
                        source.full = true;
                    }
                    let meta = EventMeta {
                        id: row.id,
                        source: row.source,
                        received_at: now,
                        trace: row.trace_id,
                    };
                    self.downstream(key, event, meta, now, Some("suppression no longer applies"));
                    return;
                }
            }
            self.drop_count(key.0, "state-unchanged");
            return;
        }

        if previous.is_none() && status == Status::Healthy {
            // A first report that is healthy changes nothing downstream: it is a steady
            // state (the fleet's first minute would otherwise fill the history).
            self.alerts.insert(
                key,
                Tracked {
                    since: row.reported_since.unwrap_or(now),
                    count: row.reported_count.unwrap_or(1),
                    incident: 0,
                    reported: Status::Healthy,
                    passed: Status::Healthy,
                    hold: None,
                    changed: NEVER,
                },
            );
            self.drop_count(key.0, "state-unchanged");
            return;
        }
        let event: Event = match serde_json::from_str(&row.event) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "journal row with an unreadable event; dropped");
                self.drop_count(key.0, "unreadable");
                return;
            }
        };
        let meta = EventMeta {
            id: row.id,
            source: row.source,
            received_at: now,
            trace: row.trace_id,
        };
        let mut tracked = previous.unwrap_or(Tracked {
            since: 0,
            count: 0,
            incident: 0,
            reported: Status::Healthy,
            passed: Status::Healthy,
            hold: None,
            changed: NEVER,
        });
        tracked.reported = status;
        tracked.since = row.reported_since.unwrap_or(now);
        tracked.count = row.reported_count.unwrap_or(1);
        self.alerts.insert(key, tracked);

        // Flap detection counts every change (a first report counts when unhealthy).
        if previous.is_some() || status == Status::Unhealthy {
            self.count_change(key, now);
        }
        self.static_filters(key, event, meta, now);
    }

    /// The static pre-filter past the state change: flapping, retired hosts,
    /// `ignore-flap`, then the filter plugins.
    fn static_filters(&mut self, key: AlertKey, event: Event, meta: EventMeta, now: i64) {
        let status = event.alert.status;
        let hold = self.alerts.get(&key).and_then(|t| t.hold);

        if hold == Some(Hold::Flapping) {
            self.hold(
                key,
                Hold::Flapping,
                &event,
                &meta,
                Some(now + self.config.flap_window_ms),
                None,
            );
            self.timers
                .insert((now + self.config.flap_window_ms, Timer::FlapEnd(key)));
            self.record(
                key,
                &meta,
                &event,
                HistoryOutcome::Held,
                "flapping".into(),
                None,
                None,
                None,
                now,
            );
            return;
        }
        let changes = self.changes(key, now);
        if changes >= self.config.flap_threshold && !is_flapping_alert(&event) {
            self.start_flapping(key, event, meta, now, changes);
            return;
        }

        let service = self.service_of(self.team_name(key.0), &event);
        // A recovery of an alert grouping knows unhealthy always goes on, so that its
        // incident can resolve; only failures are stopped.
        let known_unhealthy = self
            .alerts
            .get(&key)
            .is_some_and(|t| t.passed == Status::Unhealthy);
        if let Some(service) = &service
            && service.spec.is_retired(&event.context)
            && !(status == Status::Healthy && known_unhealthy)
        {
            self.set_hold(key, (status == Status::Unhealthy).then_some(Hold::Retired));
            self.unhold(key);
            let reason = format!(
                "retired-host: {} is retired in service {}",
                instance_of(&event),
                service.name
            );
            self.record(
                key,
                &meta,
                &event,
                HistoryOutcome::Dropped,
                reason,
                None,
                None,
                None,
                now,
            );
            return;
        }

        let filters = self.filters_of(self.team_name(key.0), &event);
        if let Some(min_age) = min_age(&filters) {
            match status {
                Status::Unhealthy => {
                    let entered = event
                        .alert
                        .since
                        .map_or(now, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
                    let due = entered.saturating_add(min_age);
                    if due > now {
                        self.hold(key, Hold::IgnoreFlap, &event, &meta, Some(due), None);
                        self.timers.insert((due, Timer::Release(key)));
                        let reason = format!(
                            "ignore-flap: waiting until it has been unhealthy for {}",
                            human(min_age)
                        );
                        self.record(
                            key,
                            &meta,
                            &event,
                            HistoryOutcome::Held,
                            reason,
                            None,
                            None,
                            None,
                            now,
                        );
                        return;
                    }
                }
                Status::Healthy if hold == Some(Hold::IgnoreFlap) => {
                    self.set_hold(key, None);
                    self.unhold(key);
                    let reason =
                        "ignore-flap: recovered before its min-age; nothing was raised".to_owned();
                    self.record(
                        key,
                        &meta,
                        &event,
                        HistoryOutcome::Dropped,
                        reason,
                        None,
                        None,
                        None,
                        now,
                    );
                    return;
                }
                Status::Healthy => {}
            }
        }
        // The team's filter plugins, in the order `filters` lists them.
        let outcome = self.plugin_outcome(key, &event, &meta, &filters);
        let note = outcome.notes.join("; ");
        let note = (!note.is_empty()).then_some(note);
        if let Some((plugin, reason)) = outcome.dropped {
            if status == Status::Healthy && known_unhealthy {
                // Like retired hosts: a recovery of an alert grouping knows unhealthy
                // always goes on, so that its incident can resolve.
                let note = format!(
                    "plugin:{plugin} asked to drop a recovery ({reason}); recoveries of unhealthy alerts always pass"
                );
                self.downstream(key, event, meta, now, Some(&note));
                return;
            }
            self.set_hold(key, (status == Status::Unhealthy).then_some(Hold::Plugin));
            self.unhold(key);
            self.drop_count(key.0, "plugin");
            let reason = format!("plugin:{plugin}: {reason}");
            self.record(
                key,
                &meta,
                &event,
                HistoryOutcome::Dropped,
                reason,
                None,
                None,
                None,
                now,
            );
            return;
        }
        let event = match outcome.replaced {
            Some(replacement) => *replacement,
            None => event,
        };
        self.downstream(key, event, meta, now, note.as_deref());
    }

    /// What the team's filter plugins decided about `event`: the verdict of the batch's
    /// call when it was in one, else a call for it alone.
    fn plugin_outcome(
        &mut self,
        key: AlertKey,
        event: &Event,
        meta: &EventMeta,
        filters: &[FilterSpec],
    ) -> PluginOutcome {
        if let Some(outcome) = self.plugin_verdicts.remove(&meta.id) {
            return outcome;
        }
        // An event released later (ignore-flap, flapping) was not in a batch the
        // plugins judged: judge it alone now.
        let plugins = plugin_filters(filters);
        if plugins.is_empty() || self.plugins.is_none() {
            return PluginOutcome::default();
        }
        let team = self.teams[key.0 as usize].clone();
        let mut judged = self.judge(vec![Judged {
            id: meta.id.clone(),
            team,
            event: event.clone(),
            received_at: meta.received_at,
            plugins,
            outcome: PluginOutcome::default(),
        }]);
        judged.pop().map(|j| j.outcome).unwrap_or_default()
    }

    /// Runs the filter plugins over every event of a batch that will be read whole (the
    /// status changes), one call per plugin, before the events are processed in order.
    pub(crate) fn judge_batch(&mut self, rows: &[Incoming]) {
        if self.plugins.is_none() {
            return;
        }
        let mut items = Vec::new();
        for row in rows {
            if row.event.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Event>(&row.event) else {
                continue;
            };
            let plugins = plugin_filters(&self.filters_of(&row.team, &event));
            if plugins.is_empty() {
                continue;
            }
            items.push(Judged {
                id: row.id.clone(),
                team: row.team.clone(),
                event,
                received_at: row.received_at,
                plugins,
                outcome: PluginOutcome::default(),
            });
        }
        if items.is_empty() {
            return;
        }
        for judged in self.judge(items) {
            self.plugin_verdicts.insert(judged.id, judged.outcome);
        }
    }

    /// Runs `items` through their plugins, when a plugin runtime is wired in.
    fn judge(&self, items: Vec<Judged>) -> Vec<Judged> {
        match &self.plugins {
            Some(runner) => runner.judge(items),
            None => items,
        }
    }

    /// The filters that apply to `team`'s event: its own, else its service's.
    fn filters_of(&self, team: &str, event: &Event) -> Vec<FilterSpec> {
        if !event.filters.is_empty() {
            event.filters.clone()
        } else {
            self.service_of(team, event)
                .map(|s| s.spec.filters.clone())
                .unwrap_or_default()
        }
    }

    /// An `ignore-flap` hold reached its min-age: the event goes on.
    pub(crate) fn release(&mut self, key: AlertKey, at: i64) {
        let Some(held) = self.held.get(&key) else {
            return;
        };
        if held.kind != Hold::IgnoreFlap || held.due != Some(at) {
            return; // Cancelled or replaced since.
        }
        self.set_hold(key, None);
        self.pass_held(
            key,
            at,
            "released by ignore-flap: unhealthy for its whole min-age",
        );
    }
}

/// The `ignore-flap` min-age in a filter list, in ms.
fn min_age(filters: &[FilterSpec]) -> Option<i64> {
    filters
        .iter()
        .filter(|f| f.kind == "ignore-flap")
        .filter_map(|f| f.params.get("min-age")?.as_str())
        .filter_map(|text| parse_duration(text).ok())
        .map(|d| d.as_millis() as i64)
        .max()
}

fn instance_of(event: &Event) -> &str {
    event
        .context
        .get("instance")
        .or_else(|| event.context.get("host"))
        .map_or("?", String::as_str)
}
