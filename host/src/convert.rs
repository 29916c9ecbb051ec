//! Between Tocsin's event model and the WIT types: events both ways, and the compact
//! batch a filter reads (every string in one text, labels as spans).

use tocsin_core::event::{Alert, Alerting, FilterSpec, Grouping, PluginSpec};
use tocsin_core::plugin::{IncidentContext, Section};
use tocsin_core::{Event, Priority, Status};

use crate::world::types as wit;

fn status(s: Status) -> wit::Status {
    match s {
        Status::Healthy => wit::Status::Healthy,
        Status::Unhealthy => wit::Status::Unhealthy,
    }
}

fn priority(p: Priority) -> wit::Priority {
    match p {
        Priority::High => wit::Priority::High,
        Priority::Low => wit::Priority::Low,
    }
}

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Appends `s` to the batch text and returns its span.
fn span(text: &mut String, s: &str) -> wit::Span {
    let offset = text.len() as u32;
    text.push_str(s);
    wit::Span {
        offset,
        len: s.len() as u32,
    }
}

/// Encodes events (with their receipt times) as one filter batch.
pub fn batch<'a>(events: impl ExactSizeIterator<Item = (&'a Event, i64)>) -> wit::Batch {
    let mut text = String::with_capacity(events.len() * 96);
    let mut labels = Vec::with_capacity(events.len() * 4);
    let mut views = Vec::with_capacity(events.len());
    for (event, received_at) in events {
        let labels_start = labels.len() as u32;
        for (key, value) in &event.context {
            let key = span(&mut text, key);
            let value = span(&mut text, value);
            labels.push(wit::LabelSpan { key, value });
        }
        views.push(wit::EventView {
            monitor: span(&mut text, &event.alert.monitor),
            status: status(event.alert.status),
            message: span(&mut text, event.alert.message.as_deref().unwrap_or("")),
            priority: event
                .alerting
                .as_ref()
                .and_then(|a| a.priority)
                .map(priority),
            since: event.alert.since.map(millis),
            received_at,
            labels_start,
            labels_len: labels.len() as u32 - labels_start,
        });
    }
    wit::Batch {
        text,
        labels,
        events: views,
    }
}

#[cfg(test)]
fn specs(list: &[FilterSpec]) -> Vec<wit::Spec> {
    list.iter()
        .map(|f| wit::Spec {
            kind: f.kind.clone(),
            params: params_text(&f.params),
        })
        .collect()
}

#[cfg(test)]
fn params_text(params: &serde_json::Map<String, serde_json::Value>) -> String {
    if params.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(params.clone()).to_string()
    }
}

/// An event as the WIT's owned `event`.
#[cfg(test)]
pub fn event_to_wit(event: &Event) -> wit::Event {
    wit::Event {
        alert: wit::Alert {
            monitor: event.alert.monitor.clone(),
            status: status(event.alert.status),
            since: event.alert.since.map(millis),
            message: event.alert.message.clone(),
            count: event.alert.count,
        },
        context: event
            .context
            .iter()
            .map(|(key, value)| wit::Label {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        filters: specs(&event.filters),
        grouping: event.grouping.as_ref().map(|g| wit::Grouping {
            keys: g.keys.clone(),
            window: g.window.clone(),
        }),
        alerting: event.alerting.as_ref().map(|a| wit::Alerting {
            priority: a.priority.map(priority),
            channel: a.channel.clone(),
            ticket_queue: a.ticket_queue.clone(),
        }),
        plugins: event
            .plugins
            .iter()
            .map(|p| wit::Spec {
                kind: p.kind.clone(),
                params: params_text(&p.params),
            })
            .collect(),
    }
}

fn params_from(text: &str, field: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{field}: params must be a JSON object")),
        Err(e) => Err(format!("{field}: params are not JSON: {e}")),
    }
}

/// A WIT event as Tocsin's. Fails on what types cannot say (params that are not a JSON
/// object, a time out of range); the caller still validates the event.
pub fn event_from_wit(event: wit::Event) -> Result<Event, String> {
    let since = match event.alert.since {
        Some(ms) => Some(
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|_| format!("alert.since {ms} is out of range"))?,
        ),
        None => None,
    };
    let mut filters = Vec::with_capacity(event.filters.len());
    for (i, spec) in event.filters.into_iter().enumerate() {
        filters.push(FilterSpec {
            params: params_from(&spec.params, &format!("filters[{i}]"))?,
            kind: spec.kind,
        });
    }
    let mut plugins = Vec::with_capacity(event.plugins.len());
    for (i, spec) in event.plugins.into_iter().enumerate() {
        plugins.push(PluginSpec {
            params: params_from(&spec.params, &format!("plugins[{i}]"))?,
            kind: spec.kind,
        });
    }
    Ok(Event {
        alert: Alert {
            monitor: event.alert.monitor,
            status: match event.alert.status {
                wit::Status::Healthy => Status::Healthy,
                wit::Status::Unhealthy => Status::Unhealthy,
            },
            since,
            message: event.alert.message,
            count: event.alert.count,
        },
        context: event
            .context
            .into_iter()
            .map(|l| (l.key, l.value))
            .collect(),
        filters,
        grouping: event.grouping.map(|g| Grouping {
            keys: g.keys,
            window: g.window,
        }),
        alerting: event.alerting.map(|a| Alerting {
            priority: a.priority.map(|p| match p {
                wit::Priority::High => Priority::High,
                wit::Priority::Low => Priority::Low,
            }),
            channel: a.channel,
            ticket_queue: a.ticket_queue,
        }),
        plugins,
    })
}

/// An incident as the collector world's summary.
pub fn incident_to_wit(incident: &IncidentContext) -> wit::IncidentSummary {
    wit::IncidentSummary {
        id: incident.id.clone(),
        team: incident.team.clone(),
        key: incident.key.clone(),
        title: incident.title.clone(),
        state: incident.state.clone(),
        priority: priority(incident.priority),
        opened_at: incident.opened_at,
        alerts: incident
            .alerts
            .iter()
            .map(|a| wit::IncidentAlert {
                monitor: a.monitor.clone(),
                status: status(a.status),
                context: a
                    .context
                    .iter()
                    .map(|(key, value)| wit::Label {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                message: a.message.clone(),
            })
            .collect(),
    }
}

/// A collector's section as Tocsin's.
pub fn section_from_wit(section: wit::Section) -> Section {
    Section {
        title: section.title,
        markdown: section.markdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).expect("event")
    }

    #[test]
    fn a_batch_holds_every_string_once_and_spans_point_at_them() {
        let a = event(serde_json::json!({
            "alert": {"monitor": "disk", "status": "unhealthy", "message": "full"},
            "context": {"host": "web-1", "region": "eu"}
        }));
        let b = event(serde_json::json!({"alert": {"monitor": "cpu", "status": "healthy"}}));
        let batch = batch([(&a, 10), (&b, 20)].into_iter());
        let text = |s: wit::Span| &batch.text[s.offset as usize..(s.offset + s.len) as usize];
        assert_eq!(batch.events.len(), 2);
        assert_eq!(text(batch.events[0].monitor), "disk");
        assert_eq!(text(batch.events[0].message), "full");
        assert_eq!(batch.events[0].labels_len, 2);
        let first = batch.labels[batch.events[0].labels_start as usize];
        assert_eq!((text(first.key), text(first.value)), ("host", "web-1"));
        assert_eq!(text(batch.events[1].monitor), "cpu");
        assert_eq!(text(batch.events[1].message), "");
        assert_eq!(batch.events[1].labels_len, 0);
        assert_eq!(batch.events[1].received_at, 20);
    }

    #[test]
    fn an_event_survives_the_round_trip_through_wit() {
        let original = event(serde_json::json!({
            "alert": {"monitor": "disk", "status": "unhealthy", "since": "2026-11-22T07:00:00Z",
                      "message": "full", "count": 3},
            "context": {"host": "web-1"},
            "filters": [{"type": "ignore-flap", "params": {"min-age": "5m"}}],
            "grouping": {"keys": ["{{ alert.monitor }}"], "window": "10m"},
            "alerting": {"priority": "high", "channel": "#ops", "ticket-queue": "OPS"},
            "plugins": [{"type": "runbook", "params": {"id": "disk"}}]
        }));
        let back = event_from_wit(event_to_wit(&original)).expect("converts back");
        assert_eq!(back, original);
    }

    #[test]
    fn params_that_are_not_an_object_are_refused() {
        let mut wit = event_to_wit(&event(
            serde_json::json!({"alert": {"monitor": "m", "status": "healthy"}}),
        ));
        wit.filters.push(wit::Spec {
            kind: "plugin".into(),
            params: "[1]".into(),
        });
        let error = event_from_wit(wit).expect_err("refused");
        assert!(error.contains("filters[0]"), "{error}");
    }
}
