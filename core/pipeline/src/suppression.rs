//! The dynamic pre-filter (see docs/pipeline.md, dynamic pre-filter): suppressions,
//! then the priority an event gets from its service; then on to grouping.

use tocsin_model::event::{Event, Priority, Status};
use tocsin_model::rows::{HistoryOutcome, Hold};

use crate::engine::Engine;
use crate::state::{AlertKey, EventMeta};

impl Engine {
    /// Takes the event held for `key` out of the held set and sends it on through the
    /// dynamic pre-filter, with `note` saying why it goes now.
    pub(crate) fn pass_held(&mut self, key: AlertKey, at: i64, note: &str) {
        let Some(held) = self.held.remove(&key) else {
            return;
        };
        self.pending.held_delete.insert(key);
        self.touch(key, &held);
        let (event, meta) = held.into_event();
        self.downstream(key, event, meta, at, Some(note));
    }

    /// The dynamic pre-filter, then grouping.
    pub(crate) fn downstream(
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
                HistoryOutcome::Suppressed,
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
                HistoryOutcome::Dropped,
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
            HistoryOutcome::Passed,
            reasons.join("; "),
            None,
            incident,
            Some(priority),
            now,
        );
    }

    /// A suppression ended: the unhealthy alerts it held go on.
    pub(crate) fn suppression_end(&mut self, id: &str, at: i64) {
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
            self.pass_held(key, at, "its suppression ended while it was unhealthy");
        }
    }

    /// The id of the active suppression that stops `team`'s event, if any.
    pub(crate) fn suppressed_by(&self, team: u32, event: &Event, at: i64) -> Option<String> {
        let team = self.team_name(team);
        self.rules
            .suppressions
            .iter()
            .find(|s| s.stops(team, event, at))
            .map(|s| s.id.clone())
    }
}
