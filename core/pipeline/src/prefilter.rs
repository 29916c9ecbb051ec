//! Static pre-filter (per identity, cheap: state change, flap detection, retired hosts,
//! `ignore-flap`) and dynamic pre-filter (suppressions, re-prioritising services that
//! are not customer-facing or in testing).

use std::collections::BTreeMap;

use super::{AlertKey, Engine, EventMeta, Held, Hold, Incoming, RowSource, Timer, Tracked};
use tocsin_model::event::{Event, FilterSpec, parse_duration, Priority, Status};
use tocsin_model::plugin::Verdict;

pub use tocsin_model::event::FLAPPING_LABEL;

impl Engine {
    /// One journal row through the static pre-filter and on.
    pub(super) fn on_event(&mut self, row: Incoming) {
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
        });
        tracked.reported = status;
        tracked.since = row.reported_since.unwrap_or(now);
        tracked.count = row.reported_count.unwrap_or(1);
        self.alerts.insert(key, tracked);

        // Flap detection counts every change (a first report counts when unhealthy).
        if previous.is_some() || status == Status::Unhealthy {
            let window = self.config.flap_window_ms;
            let times = self.flaps.entry(key).or_default();
            times.retain(|t| now - *t < window);
            times.push(now);
        }
        self.static_filters(key, event, meta, now);
    }

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
                "held",
                "flapping".into(),
                None,
                None,
                None,
                now,
            );
            return;
        }
        let changes = self.flaps.get(&key).map_or(0, Vec::len);
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
            self.record(key, &meta, &event, "dropped", reason, None, None, None, now);
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
                        self.record(key, &meta, &event, "held", reason, None, None, None, now);
                        return;
                    }
                }
                Status::Healthy if hold == Some(Hold::IgnoreFlap) => {
                    self.set_hold(key, None);
                    self.unhold(key);
                    let reason =
                        "ignore-flap: recovered before its min-age; nothing was raised".to_owned();
                    self.record(key, &meta, &event, "dropped", reason, None, None, None, now);
                    return;
                }
                Status::Healthy => {}
            }
        }
        // The team's filter plugins, in the order `filters` lists them.
        let outcome = match self.plugin_verdicts.remove(&meta.id) {
            Some(outcome) => outcome,
            None => {
                // An event released later (ignore-flap, flapping) was not in a batch
                // the plugins judged: judge it alone now.
                let plugins = plugin_filters(&filters);
                if plugins.is_empty() || self.plugins.is_none() {
                    PluginOutcome::default()
                } else {
                    let team = self.teams[key.0 as usize].clone();
                    let id = meta.id.clone();
                    let mut judged = self.judge(vec![Judged {
                        id,
                        team,
                        event: event.clone(),
                        received_at: meta.received_at,
                        plugins,
                        outcome: PluginOutcome::default(),
                    }]);
                    judged.pop().map(|j| j.outcome).unwrap_or_default()
                }
            }
        };
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
            self.record(key, &meta, &event, "dropped", reason, None, None, None, now);
            return;
        }
        let event = match outcome.replaced {
            Some(replacement) => *replacement,
            None => event,
        };
        self.downstream(key, event, meta, now, note.as_deref());
    }

    /// Runs the filter plugins over every event of a batch that will be read whole (the
    /// status changes), one call per plugin, before the events are processed in order.
    pub(super) fn judge_batch(&mut self, rows: &[Incoming]) {
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

    /// Runs each event's plugins in order: every event's first plugin, grouped into one
    /// call per (team, plugin, params), then every survivor's second, and so on. A
    /// failed call fails open: its events go on unchanged, annotated with the error.
    fn judge(&self, mut items: Vec<Judged>) -> Vec<Judged> {
        let Some(Runner(runner)) = self.plugins.clone() else {
            return items;
        };
        let depth = items.iter().map(|j| j.plugins.len()).max().unwrap_or(0);
        for position in 0..depth {
            let mut calls: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                if item.outcome.dropped.is_some() {
                    continue;
                }
                if let Some((name, params)) = item.plugins.get(position) {
                    calls
                        .entry((item.team.clone(), name.clone(), params.clone()))
                        .or_default()
                        .push(i);
                }
            }
            for ((team, name, params), members) in calls {
                let current: Vec<Event> = members
                    .iter()
                    .map(|&i| match &items[i].outcome.replaced {
                        Some(replaced) => (**replaced).clone(),
                        None => items[i].event.clone(),
                    })
                    .collect();
                let batch: Vec<tocsin_model::plugin::FilterInput<'_>> = current
                    .iter()
                    .zip(&members)
                    .map(|(event, &i)| tocsin_model::plugin::FilterInput {
                        event,
                        received_at: items[i].received_at,
                    })
                    .collect();
                let verdicts = runner.filter(&team, &name, &batch, &params);
                drop(batch);
                match verdicts {
                    Ok(verdicts) => {
                        for (verdict, &i) in verdicts.into_iter().zip(&members) {
                            let outcome = &mut items[i].outcome;
                            match verdict {
                                Verdict::Keep => {}
                                Verdict::Drop(reason) => {
                                    outcome.dropped = Some((name.clone(), reason))
                                }
                                Verdict::Replace(mut replacement) => {
                                    // The replacement keeps the team of the original.
                                    let team_label = items[i].event.context.get("team").cloned();
                                    match team_label {
                                        Some(team) => {
                                            replacement.context.insert("team".into(), team)
                                        }
                                        None => replacement.context.remove("team"),
                                    };
                                    match replacement.validate() {
                                        Ok(()) => items[i].outcome.replaced = Some(replacement),
                                        Err(errors) => items[i].outcome.notes.push(format!(
                                            "plugin:{name} failed open: its replacement is invalid ({})",
                                            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                                        )),
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(team = %team, plugin = %name, error = %e, events = members.len(), "filter plugin failed; its events pass");
                        for &i in &members {
                            items[i]
                                .outcome
                                .notes
                                .push(format!("plugin:{name} failed open: {e}"));
                        }
                    }
                }
            }
        }
        items
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

    /// The dynamic pre-filter, then grouping.
    pub(super) fn downstream(
        &mut self,
        key: AlertKey,
        mut event: Event,
        meta: EventMeta,
        now: i64,
        note: Option<&str>,
    ) {
        let status = event.alert.status;
        let known_unhealthy = self
            .alerts
            .get(&key)
            .is_some_and(|t| t.passed == Status::Unhealthy);
        if !(status == Status::Healthy && known_unhealthy)
            && let Some(id) = self.suppressed_by(key.0, &event, now)
        {
            if status == Status::Unhealthy {
                self.set_hold(key, Some(Hold::Suppressed));
                self.hold(key, Hold::Suppressed, &event, &meta, None, Some(id.clone()));
            } else {
                self.set_hold(key, None);
                self.unhold(key);
            }
            self.drop_count(key.0, "suppressed");
            self.record(
                key,
                &meta,
                &event,
                "suppressed",
                format!("suppressed: {id}"),
                Some(id),
                None,
                None,
                now,
            );
            return;
        }
        let service = self.service_of(self.team_name(key.0), &event);
        let mut priority = event
            .alerting
            .as_ref()
            .and_then(|a| a.priority)
            .or_else(|| service.as_ref()?.spec.alerting.as_ref()?.priority)
            .unwrap_or(Priority::Low);
        let mut reasons: Vec<String> = note.map(str::to_owned).into_iter().collect();
        if priority == Priority::High
            && let Some(service) = &service
            && let Some(why) = service.spec.lowers_priority()
        {
            priority = Priority::Low;
            reasons.push(format!("priority lowered to low: {why}"));
            let alerting = event.alerting.get_or_insert_with(Default::default);
            alerting.priority = Some(Priority::Low);
        }
        self.set_hold(key, None);
        self.unhold(key);
        let passed = self.alerts.get(&key).map_or(Status::Healthy, |t| t.passed);
        if status == passed {
            // Downstream already knows (a recovery of an alert it never saw fail).
            let reason = "state-unchanged: grouping already has this status".to_owned();
            self.record(
                key,
                &meta,
                &event,
                "dropped",
                reason,
                None,
                None,
                Some(priority),
                now,
            );
            return;
        }
        if let Some(tracked) = self.alerts.get_mut(&key) {
            tracked.passed = status;
        }
        let incident = self.group(key, &event, &meta, priority, now);
        self.record(
            key,
            &meta,
            &event,
            "passed",
            reasons.join("; "),
            None,
            incident,
            Some(priority),
            now,
        );
    }

    /// An `ignore-flap` hold reached its min-age: the event goes on.
    pub(super) fn release(&mut self, key: AlertKey, at: i64) {
        let Some(held) = self.held.get(&key) else {
            return;
        };
        if held.kind != Hold::IgnoreFlap || held.due != Some(at) {
            return; // Cancelled or replaced since.
        }
        let Some(held) = self.held.remove(&key) else {
            return;
        };
        self.pending.held_delete.insert(key);
        self.set_hold(key, None);
        self.touch(key, &held);
        let meta = EventMeta {
            id: held.id,
            source: held.source,
            received_at: held.received_at,
            trace: held.trace,
        };
        self.downstream(
            key,
            held.event,
            meta,
            at,
            Some("released by ignore-flap: unhealthy for its whole min-age"),
        );
    }

    fn start_flapping(
        &mut self,
        key: AlertKey,
        event: Event,
        meta: EventMeta,
        now: i64,
        changes: usize,
    ) {
        let due = now + self.config.flap_window_ms;
        self.set_hold(key, Some(Hold::Flapping));
        self.hold(key, Hold::Flapping, &event, &meta, Some(due), None);
        self.timers.insert((due, Timer::FlapEnd(key)));
        let reason = format!(
            "flapping: {changes} status changes within {}; one flapping alert is raised instead",
            human(self.config.flap_window_ms)
        );
        self.record(key, &meta, &event, "held", reason, None, None, None, now);
        let flapping = flapping_alert(
            &event,
            Status::Unhealthy,
            changes,
            self.config.flap_window_ms,
        );
        self.synthetic(key.0, flapping, &meta, now);
    }

    /// A flapping alert may be stable: it is when it kept one status for the window.
    pub(super) fn flap_end(&mut self, key: AlertKey, at: i64) {
        let Some(held) = self.held.get(&key) else {
            return;
        };
        if held.kind != Hold::Flapping || held.due != Some(at) {
            return;
        }
        let Some(held) = self.held.remove(&key) else {
            return;
        };
        self.pending.held_delete.insert(key);
        self.flaps.remove(&key);
        self.set_hold(key, None);
        self.touch(key, &held);
        let meta = EventMeta {
            id: held.id.clone(),
            source: "tocsin".into(),
            received_at: at,
            trace: held.trace.clone(),
        };
        let resolved = flapping_alert(&held.event, Status::Healthy, 0, self.config.flap_window_ms);
        self.synthetic(key.0, resolved, &meta, at);
        // The alert's own status now goes on, if grouping does not know it yet.
        let reported = self.alerts.get(&key).map(|t| t.reported);
        let mut event = held.event;
        if let Some(reported) = reported {
            event.alert.status = reported;
        }
        let meta = EventMeta {
            id: held.id,
            source: held.source,
            received_at: held.received_at,
            trace: held.trace,
        };
        self.static_filters_after_flap(key, event, meta, at);
    }

    fn static_filters_after_flap(
        &mut self,
        key: AlertKey,
        event: Event,
        meta: EventMeta,
        now: i64,
    ) {
        let passed = self.alerts.get(&key).map_or(Status::Healthy, |t| t.passed);
        if event.alert.status != passed {
            self.downstream(key, event, meta, now, Some("stable again after flapping"));
        }
    }

    /// A suppression ended: the unhealthy alerts it held go on.
    pub(super) fn suppression_end(&mut self, id: &str, at: i64) {
        // An edit may have moved the end since this timer was set.
        if self
            .rules
            .suppressions
            .iter()
            .any(|s| s.id == id && s.end > at)
        {
            return;
        }
        let mut keys: Vec<AlertKey> = self
            .held
            .iter()
            .filter(|(_, h)| h.kind == Hold::Suppressed && h.suppression.as_deref() == Some(id))
            .map(|(key, _)| *key)
            .collect();
        keys.sort();
        for key in keys {
            let Some(held) = self.held.remove(&key) else {
                continue;
            };
            self.pending.held_delete.insert(key);
            self.touch(key, &held);
            let meta = EventMeta {
                id: held.id,
                source: held.source,
                received_at: held.received_at,
                trace: held.trace,
            };
            self.downstream(
                key,
                held.event,
                meta,
                at,
                Some("its suppression ended while it was unhealthy"),
            );
        }
    }

    /// An event Tocsin itself makes (the flapping alert), through the dynamic
    /// pre-filter and grouping like any other.
    fn synthetic(&mut self, team: u32, event: Event, cause: &EventMeta, now: i64) {
        let key = (team, event.fingerprint());
        let status = event.alert.status;
        let previous = self.alerts.get(&key).copied();
        if previous.is_some_and(|t| t.reported == status) {
            return;
        }
        let tracked = Tracked {
            since: now,
            count: 1,
            incident: previous.map_or(0, |t| t.incident),
            reported: status,
            passed: previous.map_or(Status::Healthy, |t| t.passed),
            hold: None,
        };
        self.alerts.insert(key, tracked);
        self.pending.alerts.insert(
            key,
            RowSource {
                monitor: event.alert.monitor.clone(),
                labels: serde_json::to_string(&event.context).unwrap_or_default(),
                first_seen: now,
                last_seen: now,
                reported_since: None,
                reported_count: None,
                last_event: cause.id.clone(),
                full: true,
            },
        );
        let meta = EventMeta {
            id: uuid::Uuid::now_v7().to_string(),
            source: "tocsin".into(),
            received_at: now,
            trace: None,
        };
        self.downstream(key, event, meta, now, Some("raised by flap detection"));
    }

    /// The id of the active suppression that stops `team`'s event, if any.
    fn suppressed_by(&self, team: u32, event: &Event, at: i64) -> Option<String> {
        let team = self.team_name(team);
        self.rules
            .suppressions
            .iter()
            .find(|s| s.stops(team, event, at))
            .map(|s| s.id.clone())
    }

    /// The catalogue entry of the event's service, when `team` owns it.
    pub(super) fn service_of(
        &self,
        team: &str,
        event: &Event,
    ) -> Option<std::sync::Arc<tocsin_model::catalogue::Service>> {
        self.rules
            .service_for(team, event.context.get("service")?)
            .cloned()
    }

    fn set_hold(&mut self, key: AlertKey, hold: Option<Hold>) {
        if let Some(tracked) = self.alerts.get_mut(&key) {
            tracked.hold = hold;
        }
    }

    /// Keeps `event` as the latest held one for `key`.
    fn hold(
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

    fn unhold(&mut self, key: AlertKey) {
        if self.held.remove(&key).is_some() {
            self.pending.held_put.remove(&key);
            self.pending.held_delete.insert(key);
        }
    }

    /// Marks an alert's row for rewriting after a change no journal row caused.
    fn touch(&mut self, key: AlertKey, held: &Held) {
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

fn is_flapping_alert(event: &Event) -> bool {
    event
        .context
        .get(FLAPPING_LABEL)
        .is_some_and(|v| v == "true")
}

/// The alert flap detection raises (unhealthy) and resolves (healthy): the flapping
/// alert's labels plus `flapping: "true"`, at low priority.
fn flapping_alert(event: &Event, status: Status, changes: usize, window: i64) -> Event {
    let mut context: BTreeMap<String, String> = event.context.clone();
    context.insert(FLAPPING_LABEL.into(), "true".into());
    let mut alerting = event.alerting.clone().unwrap_or_default();
    alerting.priority = Some(Priority::Low);
    Event {
        alert: tocsin_model::event::Alert {
            monitor: event.alert.monitor.clone(),
            status,
            since: None,
            message: Some(if status == Status::Unhealthy {
                format!(
                    "{} is flapping: {changes} status changes within {}. Its changes are held until it keeps one status for {}.",
                    event.alert.monitor,
                    human(window),
                    human(window)
                )
            } else {
                format!("{} is stable again.", event.alert.monitor)
            }),
            count: None,
        },
        context,
        filters: Vec::new(),
        grouping: event.grouping.clone(),
        alerting: Some(alerting),
        plugins: event.plugins.clone(),
    }
}

fn instance_of(event: &Event) -> &str {
    event
        .context
        .get("instance")
        .or_else(|| event.context.get("host"))
        .map_or("?", String::as_str)
}

/// `90000` → `1m30s`.
pub(super) fn human(ms: i64) -> String {
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if out.is_empty() {
        format!("{ms}ms")
    } else {
        out
    }
}

/// What the filter plugins decided about one event.
#[derive(Debug, Default)]
pub(super) struct PluginOutcome {
    /// Dropped by this plugin, for this reason.
    dropped: Option<(String, String)>,
    /// Replaced by a plugin (the last replacement wins).
    replaced: Option<Box<Event>>,
    /// Annotations: plugins that failed open.
    notes: Vec<String>,
}

/// An event on its way through its plugins.
struct Judged {
    id: String,
    team: String,
    event: Event,
    received_at: i64,
    /// (plugin name, params as JSON) in order.
    plugins: Vec<(String, String)>,
    outcome: PluginOutcome,
}

/// The `plugin` entries of a filter list: (name, params as JSON text).
fn plugin_filters(filters: &[FilterSpec]) -> Vec<(String, String)> {
    filters
        .iter()
        .filter(|f| f.kind == "plugin")
        .filter_map(|f| {
            let name = f.params.get("name")?.as_str()?.to_owned();
            Some((
                name,
                serde_json::Value::Object(f.params.clone()).to_string(),
            ))
        })
        .collect()
}

/// The plugin runtime the pre-filter calls.
#[derive(Clone)]
pub(super) struct Runner(pub(super) std::sync::Arc<dyn tocsin_model::plugin::Filter>);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}
