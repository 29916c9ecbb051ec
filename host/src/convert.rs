//! Between Tocsin's event model and the WIT types: events both ways, and the compact
//! batch a filter reads (every string in one text, labels as spans).

use tocsin_model::event::{Alert, Alerting, FilterSpec, Grouping, PluginSpec};
use tocsin_model::plugin::{IncidentContext, Section, Verdict};
use tocsin_model::{Event, Priority, Status};

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

/// Stride of [`wit::Batch::events`]: numbers per event.
pub const EVENT_STRIDE: usize = 7;
/// `times` value of an event without `alert.since`.
pub const NO_SINCE: i64 = i64::MIN;

/// Appends `s` to the batch text and pushes its offset and length.
fn push_str(text: &mut String, numbers: &mut Vec<u32>, s: &str) {
    numbers.push(text.len() as u32);
    numbers.push(s.len() as u32);
    text.push_str(s);
}

/// Encodes events (with their receipt times) as one filter batch (layout in the WIT).
pub fn batch<'a>(events: impl ExactSizeIterator<Item = (&'a Event, i64)>) -> wit::Batch {
    let n = events.len();
    let mut text = String::with_capacity(n * 96);
    let mut numbers = Vec::with_capacity(n * EVENT_STRIDE);
    let mut times = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n * 16);
    for (event, received_at) in events {
        push_str(&mut text, &mut numbers, &event.alert.monitor);
        push_str(
            &mut text,
            &mut numbers,
            event.alert.message.as_deref().unwrap_or(""),
        );
        let priority = match event.alerting.as_ref().and_then(|a| a.priority) {
            None => 0,
            Some(Priority::High) => 1,
            Some(Priority::Low) => 2,
        };
        let unhealthy = u32::from(event.alert.status == Status::Unhealthy);
        numbers.push(unhealthy | priority << 1);
        numbers.push((labels.len() / 4) as u32);
        numbers.push(event.context.len() as u32);
        for (key, value) in &event.context {
            push_str(&mut text, &mut labels, key);
            push_str(&mut text, &mut labels, value);
        }
        times.push(event.alert.since.map_or(NO_SINCE, millis));
        times.push(received_at);
    }
    wit::Batch {
        text,
        events: numbers,
        times,
        labels,
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

fn params_from(
    text: &str,
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
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

/// Longest drop reason a filter may give, in bytes (it is kept in the history).
pub const MAX_REASON: usize = 4 << 10;

/// What a transformer returned, checked: at most `max_events` events, each one Tocsin's
/// types can hold. The error names the first offence; the call then fails as a whole.
/// The events are validated afterwards like any other (`tocsin_ingest::accept`).
pub fn transformer_output(
    events: Vec<wit::Event>,
    max_events: usize,
) -> Result<Vec<Event>, String> {
    if events.len() > max_events {
        return Err(format!(
            "{} events from one input; the limit is {max_events}",
            events.len()
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| event_from_wit(event).map_err(|e| format!("event {i}: {e}")))
        .collect()
}

/// What a filter returned for a batch of `batch_len` events, checked: one verdict per
/// event, drop reasons within [`MAX_REASON`], replacements Tocsin's types can hold. A
/// replacement is validated where it is applied (the pipeline's pre-filter).
pub fn filter_output(
    verdicts: Vec<wit::Verdict>,
    batch_len: usize,
) -> Result<Vec<Verdict>, String> {
    if verdicts.len() != batch_len {
        return Err(format!(
            "{} verdicts for {batch_len} events",
            verdicts.len()
        ));
    }
    verdicts
        .into_iter()
        .enumerate()
        .map(|(i, verdict)| match verdict {
            wit::Verdict::Keep => Ok(Verdict::Keep),
            wit::Verdict::Drop(reason) if reason.len() > MAX_REASON => Err(format!(
                "a drop reason of {} bytes; the limit is {MAX_REASON}",
                reason.len()
            )),
            wit::Verdict::Drop(reason) => Ok(Verdict::Drop(reason)),
            wit::Verdict::Replace(event) => event_from_wit(event)
                .map(|event| Verdict::Replace(Box::new(event)))
                .map_err(|e| format!("replacement for event {i}: {e}")),
        })
        .collect()
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
    fn a_batch_holds_every_string_once_and_numbers_point_at_them() {
        let a = event(serde_json::json!({
            "alert": {"monitor": "disk", "status": "unhealthy", "message": "full"},
            "context": {"host": "web-1", "region": "eu"},
            "alerting": {"priority": "low"}
        }));
        let b = event(
            serde_json::json!({"alert": {"monitor": "cpu", "status": "healthy",
                                                   "since": "1970-01-01T00:00:01Z"}}),
        );
        let batch = batch([(&a, 10), (&b, 20)].into_iter());
        let text = |offset: u32, len: u32| &batch.text[offset as usize..(offset + len) as usize];
        let e = |i: usize, field: usize| batch.events[i * EVENT_STRIDE + field];
        assert_eq!(batch.events.len(), 2 * EVENT_STRIDE);
        assert_eq!(text(e(0, 0), e(0, 1)), "disk");
        assert_eq!(text(e(0, 2), e(0, 3)), "full");
        assert_eq!(e(0, 4), 1 | 2 << 1, "unhealthy, priority low");
        assert_eq!((e(0, 5), e(0, 6)), (0, 2));
        let l = &batch.labels;
        assert_eq!((text(l[0], l[1]), text(l[2], l[3])), ("host", "web-1"));
        assert_eq!(text(e(1, 0), e(1, 1)), "cpu");
        assert_eq!(
            (e(1, 3), e(1, 4), e(1, 6)),
            (0, 0, 0),
            "no message, healthy, no labels"
        );
        assert_eq!(batch.times, vec![NO_SINCE, 10, 1000, 20]);
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
