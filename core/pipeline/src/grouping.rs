//! Grouping into incidents (see docs/pipeline.md, grouping into incidents): online (each
//! alert is placed as it arrives, nothing is buffered), by a key rendered from
//! `grouping.keys`, within a rolling window.

use tocsin_model::event::render;
use tocsin_model::event::{Event, Priority, Status, parse_duration};
use tocsin_model::rows::{
    IncidentError, IncidentRow, IncidentState, MemberRow, TimelineKind, TimelineRow,
};

use crate::engine::Engine;
use crate::state::{AlertKey, EventMeta, Incident, Joined, Timer};
use crate::text::human;

/// Keys when neither the event nor its service sets any.
const DEFAULT_KEYS: [&str; 3] = [
    "${alert.monitor}",
    "${context.service}",
    "${context.region}",
];

impl Engine {
    /// Places an alert that changed status (as grouping sees it) in an incident;
    /// returns the incident's id.
    pub(crate) fn group(
        &mut self,
        key: AlertKey,
        event: &Event,
        meta: &EventMeta,
        priority: Priority,
        now: i64,
    ) -> Option<String> {
        match event.alert.status {
            Status::Unhealthy => Some(self.join(key, event, meta, priority, now)),
            Status::Healthy => self.recover(key, event, meta, priority, now),
        }
    }

    fn join(
        &mut self,
        key: AlertKey,
        event: &Event,
        meta: &EventMeta,
        priority: Priority,
        now: i64,
    ) -> String {
        let service = self.service_of(self.team_name(key.0), event);
        let grouping = event
            .grouping
            .clone()
            .or_else(|| service.as_ref()?.spec.grouping.clone());
        let window = grouping
            .as_ref()
            .and_then(|g| g.window.as_deref())
            .and_then(|w| parse_duration(w).ok())
            .map_or(self.config.default_window_ms, |d| d.as_millis() as i64);
        let keys: Vec<String> = match grouping.as_ref().and_then(|g| g.keys.clone()) {
            Some(keys) => keys,
            None => DEFAULT_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        };
        let group_key = if keys.is_empty() {
            // Grouping disabled: the alert is its own group.
            format!("alert:{}", key.1)
        } else {
            keys.iter()
                .map(|k| render(k, event))
                .collect::<Vec<_>>()
                .join(" | ")
        };

        let team = key.0;
        let slot = match self.joinable.get(&(team, group_key.clone())).copied() {
            Some(slot) => {
                let takes = self
                    .incidents
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|i| {
                        i.row.state == IncidentState::Resolving
                            || now - i.row.last_alert_at <= i.row.window_ms
                    });
                if takes {
                    slot
                } else {
                    // The window expired: that incident keeps its alerts but takes no
                    // more, so an old problem never hides a new one.
                    self.stop_joining(slot, now);
                    self.open(team, &group_key, event, meta, priority, window, now)
                }
            }
            None => self.open(team, &group_key, event, meta, priority, window, now),
        };

        let Some(Some(incident)) = self.incidents.get_mut(slot as usize) else {
            return String::new();
        };
        let id = incident.row.id.clone();
        incident.row.last_alert_at = now;
        incident.row.updated_at = now;
        if priority == Priority::High {
            incident.row.priority = Priority::High;
        }
        let at = self.alerts.slot(&key);
        let tracked_in = at
            .and_then(|at| self.alerts.at(at))
            .map_or(0, |t| t.incident);
        let mut timeline = Vec::new();
        let joined = tracked_in != slot + 1;
        if joined {
            // Leaving an older incident that no longer takes alerts: it counted this
            // alert healthy already, so only its membership moves.
            incident.members.extend(at);
            incident.row.alerts += 1;
        } else {
            timeline.push((
                TimelineKind::AlertUnhealthy,
                format!("{} is unhealthy again", describe(event)),
            ));
        }
        incident.row.unhealthy += 1;
        if incident.row.state == IncidentState::Resolving {
            incident.row.state = IncidentState::Open;
            incident.row.resolve_at = None;
            timeline.push((
                TimelineKind::Reopened,
                "an alert re-triggered within the grace period".to_owned(),
            ));
        }
        if let Some(tracked) = at.and_then(|at| self.alerts.at_mut(at)) {
            tracked.incident = slot + 1;
        }
        if joined {
            self.joined(slot, &id, now, describe(event), priority);
        }
        for (kind, detail) in timeline {
            self.timeline(&id, now, kind, detail);
        }
        self.member(slot, key, event, meta, priority, now);
        self.pending.incidents.insert(slot);
        id
    }

    fn recover(
        &mut self,
        key: AlertKey,
        event: &Event,
        meta: &EventMeta,
        priority: Priority,
        now: i64,
    ) -> Option<String> {
        let slot = self.alerts.get(&key)?.incident.checked_sub(1)?;
        let grace = self.config.grace_ms;
        let incident = self.incidents.get_mut(slot as usize)?.as_mut()?;
        let id = incident.row.id.clone();
        incident.row.unhealthy = (incident.row.unhealthy - 1).max(0);
        incident.row.updated_at = now;
        let resolving = incident.row.unhealthy == 0 && incident.row.state == IncidentState::Open;
        if resolving {
            incident.row.state = IncidentState::Resolving;
            incident.row.resolve_at = Some(now + grace);
        }
        self.timeline(
            &id,
            now,
            TimelineKind::AlertHealthy,
            format!("{} is healthy", describe(event)),
        );
        if resolving {
            self.timeline(
                &id,
                now,
                TimelineKind::Resolving,
                format!(
                    "every alert is healthy; resolves in {} unless one re-triggers",
                    human(grace)
                ),
            );
            self.timers.insert((now + grace, Timer::Resolve(slot)));
        }
        self.member(slot, key, event, meta, priority, now);
        self.pending.incidents.insert(slot);
        Some(id)
    }

    /// The grace period of a resolving incident ended.
    pub(crate) fn resolve(&mut self, slot: u32, at: i64) {
        let Some(Some(incident)) = self.incidents.get(slot as usize) else {
            return;
        };
        if incident.row.state != IncidentState::Resolving || incident.row.resolve_at != Some(at) {
            return; // Re-triggered, or closed, since.
        }
        let id = incident.row.id.clone();
        self.timeline(
            &id,
            at,
            TimelineKind::Resolved,
            "resolved: every alert stayed healthy through the grace period".to_owned(),
        );
        self.finish(slot, IncidentState::Resolved, at, None);
    }

    /// Acknowledges an incident: someone is on it.
    pub fn ack(
        &mut self,
        id: &str,
        team: Option<&str>,
        who: &str,
        now: i64,
    ) -> Result<(), IncidentError> {
        let slot = self.find(id, team)?;
        let Some(Some(incident)) = self.incidents.get_mut(slot as usize) else {
            return Err(IncidentError::NotFound(id.to_owned()));
        };
        if incident.row.acked_at.is_none() {
            incident.row.acked_at = Some(now);
            incident.row.acked_by = Some(who.to_owned());
            incident.row.updated_at = now;
            self.timeline(
                id,
                now,
                TimelineKind::Acked,
                format!("acknowledged by {who}"),
            );
            self.pending.incidents.insert(slot);
        }
        Ok(())
    }

    /// Closes an incident, for good: later events of its key open a new one.
    pub fn close(
        &mut self,
        id: &str,
        team: Option<&str>,
        who: &str,
        now: i64,
    ) -> Result<(), IncidentError> {
        let slot = self.find(id, team)?;
        self.timeline(id, now, TimelineKind::Closed, format!("closed by {who}"));
        self.finish(slot, IncidentState::Closed, now, Some(who));
        Ok(())
    }

    fn find(&self, id: &str, team: Option<&str>) -> Result<u32, IncidentError> {
        self.incidents
            .iter()
            .position(|i| {
                i.as_ref()
                    .is_some_and(|i| i.row.id == id && team.is_none_or(|team| i.row.team == team))
            })
            .map(|slot| slot as u32)
            .ok_or_else(|| IncidentError::NotFound(id.to_owned()))
    }

    #[allow(clippy::too_many_arguments)] // What the new incident's row is made of.
    fn open(
        &mut self,
        team: u32,
        group_key: &str,
        event: &Event,
        meta: &EventMeta,
        priority: Priority,
        window: i64,
        now: i64,
    ) -> u32 {
        let id = uuid::Uuid::now_v7().to_string();
        let row = IncidentRow {
            id: id.clone(),
            team: self.team_name(team).to_owned(),
            key: group_key.to_owned(),
            open_key: Some(group_key.to_owned()),
            state: IncidentState::Open,
            priority,
            title: title(event),
            service: event.context.get("service").cloned(),
            region: event.context.get("region").cloned(),
            window_ms: window,
            alerts: 0,
            unhealthy: 0,
            opened_at: now,
            updated_at: now,
            last_alert_at: now,
            resolve_at: None,
            resolved_at: None,
            acked_at: None,
            acked_by: None,
            closed_at: None,
            closed_by: None,
            trace_id: meta.trace.clone(),
        };
        let incident = Incident {
            row,
            team,
            members: Vec::new(),
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.incidents[slot as usize] = Some(incident);
                slot
            }
            None => {
                self.incidents.push(Some(incident));
                (self.incidents.len() - 1) as u32
            }
        };
        self.joinable.insert((team, group_key.to_owned()), slot);
        self.timeline(
            &id,
            now,
            TimelineKind::Opened,
            format!("opened by {} (key {group_key})", describe(event)),
        );
        tracing::info!(incident = %id, key = %group_key, "incident opened");
        slot
    }

    /// The incident takes no more alerts (its window expired), though it stays open.
    fn stop_joining(&mut self, slot: u32, now: i64) {
        let Some(Some(incident)) = self.incidents.get_mut(slot as usize) else {
            return;
        };
        if let Some(key) = incident.row.open_key.take() {
            self.joinable.remove(&(incident.team, key));
            incident.row.updated_at = now;
            let id = incident.row.id.clone();
            // Written before the new incident that takes the key.
            self.pending.finished.push(incident.row.clone());
            self.timeline(
                &id,
                now,
                TimelineKind::WindowExpired,
                "grouping window expired: new alerts of this key open a new incident".to_owned(),
            );
        }
    }

    /// Ends an incident (resolved or closed): it leaves memory and frees its slot.
    fn finish(&mut self, slot: u32, state: IncidentState, at: i64, who: Option<&str>) {
        let Some(mut incident) = self.incidents.get_mut(slot as usize).and_then(Option::take)
        else {
            return;
        };
        if let Some(key) = incident.row.open_key.take()
            && self.joinable.get(&(incident.team, key.clone())) == Some(&slot)
        {
            self.joinable.remove(&(incident.team, key));
        }
        for &member in &incident.members {
            if let Some(tracked) = self.alerts.at_mut(member)
                && tracked.incident == slot + 1
            {
                tracked.incident = 0;
            }
        }
        incident.row.state = state;
        incident.row.updated_at = at;
        incident.row.resolve_at = None;
        match state {
            IncidentState::Closed => {
                incident.row.closed_at = Some(at);
                incident.row.closed_by = who.map(str::to_owned);
            }
            _ => incident.row.resolved_at = Some(at),
        }
        tracing::info!(incident = %incident.row.id, state = state.as_str(), "incident finished");
        self.pending.incidents.remove(&slot);
        self.pending.finished.push(incident.row);
        self.free_slots.push(slot);
    }

    fn member(
        &mut self,
        slot: u32,
        key: AlertKey,
        event: &Event,
        meta: &EventMeta,
        priority: Priority,
        now: i64,
    ) {
        let Some(Some(incident)) = self.incidents.get(slot as usize) else {
            return;
        };
        let Some(alert) = self.alerts.slot(&key).map(|at| self.alerts.id(at)) else {
            return;
        };
        let row = MemberRow {
            incident_id: incident.row.id.clone(),
            alert,
            team: self.team_name(key.0).to_owned(),
            fingerprint: key.1.to_string(),
            monitor: event.alert.monitor.clone(),
            labels: serde_json::to_string(&event.context).unwrap_or_default(),
            status: event.alert.status,
            priority,
            joined_at: now,
            updated_at: now,
            last_event: meta.id.clone(),
        };
        match self.pending.members.entry((slot, key)) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(row);
            }
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let pending = entry.get_mut();
                if pending.incident_id == row.incident_id {
                    // The row keeps when it joined; the rest is the latest.
                    let joined_at = pending.joined_at;
                    *pending = MemberRow { joined_at, ..row };
                } else {
                    // The slot was reused within this batch: keep both rows.
                    let old = entry.insert(row);
                    self.pending.extra_members.push(old);
                }
            }
        }
    }

    /// Counts an alert that joined the incident in `slot` into the batch's one
    /// "alert-joined" entry for it (see [`Joined`]); its text is written when the batch
    /// is taken.
    fn joined(&mut self, slot: u32, incident: &str, at: i64, what: String, priority: Priority) {
        let timeline = &self.pending.timeline;
        match self.pending.joined.get_mut(&slot) {
            // The same incident: a slot freed and reused within the batch is another.
            Some(joined) if timeline[joined.entry].incident_id == incident => {
                joined.count += 1;
                if joined.named.len() < Joined::NAMED {
                    joined.named.push((what, priority.as_str()));
                }
            }
            _ => {
                let entry = timeline.len();
                let joined = Joined {
                    entry,
                    count: 1,
                    named: vec![(what, priority.as_str())],
                };
                // The slot's earlier incident keeps its entry, its text written now.
                if let Some(earlier) = self.pending.joined.insert(slot, joined) {
                    self.pending.timeline[earlier.entry].detail = earlier.detail();
                }
                self.timeline(incident, at, TimelineKind::AlertJoined, String::new());
            }
        }
    }

    fn timeline(&mut self, incident: &str, at: i64, kind: TimelineKind, detail: String) {
        self.pending.timeline.push(TimelineRow {
            incident_id: incident.to_owned(),
            at,
            kind,
            detail,
        });
    }
}

fn describe(event: &Event) -> String {
    let place: Vec<&str> = ["service", "region", "instance", "host"]
        .iter()
        .filter_map(|k| event.context.get(*k).map(String::as_str))
        .collect();
    if place.is_empty() {
        event.alert.monitor.clone()
    } else {
        format!("{} on {}", event.alert.monitor, place.join("/"))
    }
}

fn title(event: &Event) -> String {
    let mut title = event.alert.monitor.clone();
    for label in ["service", "region"] {
        if let Some(value) = event.context.get(label) {
            title.push_str(" · ");
            title.push_str(value);
        }
    }
    title
}
