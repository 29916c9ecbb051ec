//! Flap detection's own alert (see docs/pipeline.md, static pre-filter): an alert that
//! changes status too often is held, and one low-priority flapping alert stands in for
//! it until it keeps one status for a whole window.

use std::collections::BTreeMap;

use tocsin_model::event::{Alert, Event, FLAPPING_LABEL, Priority, Status};
use tocsin_model::rows::{HistoryOutcome, Hold};

use crate::engine::Engine;
use crate::state::{AlertKey, EventMeta, NEVER, RowSource, Timer, Tracked};
use crate::text::human;

impl Engine {
    /// The alert changed status too often: its changes are held from now on, and the
    /// flapping alert is raised in its place.
    pub(crate) fn start_flapping(
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
        let flapping = flapping_alert(
            &event,
            Status::Unhealthy,
            changes,
            self.config.flap_window_ms,
        );
        self.synthetic(key.0, flapping, &meta, now);
    }

    /// A flapping alert may be stable: it is when it kept one status for the window.
    pub(crate) fn flap_end(&mut self, key: AlertKey, at: i64) {
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
        self.forget_changes(key);
        self.set_hold(key, None);
        self.touch(key, &held);
        let cause = EventMeta {
            id: held.id.clone(),
            source: "tocsin".into(),
            received_at: at,
            trace: held.trace.clone(),
        };
        let resolved = flapping_alert(&held.event, Status::Healthy, 0, self.config.flap_window_ms);
        self.synthetic(key.0, resolved, &cause, at);
        // The alert's own status now goes on, if grouping does not know it yet.
        let reported = self.alerts.get(&key).map(|t| t.reported);
        let (mut event, meta) = held.into_event();
        if let Some(reported) = reported {
            event.alert.status = reported;
        }
        self.static_filters_after_flap(key, event, meta, at);
    }

    /// What is left of the static pre-filter for a change held while flapping: it goes
    /// on when grouping does not know it yet.
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
            changed: previous.map_or(NEVER, |t| t.changed),
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
}

/// Whether `event` is flap detection's own alert, which is never held for flapping.
pub(crate) fn is_flapping_alert(event: &Event) -> bool {
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
        alert: Alert {
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
