//! Datadog monitor notifications, sent by Datadog's webhook integration with the payload
//! template of `docs/integrations/datadog.md`.
//!
//! One notification is one event. Its identity is the monitor (`datadog-<$ALERT_ID>`,
//! or the template's `monitor`) and the `k:v` pairs of `$TAGS` and `$ALERT_SCOPE`, so a
//! multi-alert monitor raises one alert per group. The transition decides the status:
//! `Recovered` is healthy, every other transition is a failure still in effect.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{AdaptError, Message, instant, label_key, label_value, object, query_labels, text};
use tocsin_model::event::{Alert, Alerting, Event, Priority, Status};

/// Query parameters the adapter reads itself; any other becomes a context label.
const RESERVED: &[&str] = &["token", "team-token", "high"];

/// How notifications are read, from the webhook URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Monitor priorities that page (`?high=P1,P2`, the default); the others open a
    /// ticket. A notification without a priority gets its service's default.
    pub high: Vec<String>,
    /// Context labels every event of this webhook gets (`?service=bender`).
    pub labels: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            high: vec!["P1".into(), "P2".into()],
            labels: BTreeMap::new(),
        }
    }
}

impl Options {
    /// Reads the options from the webhook URL's query parameters.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, AdaptError> {
        let mut options = Self {
            labels: query_labels(query, RESERVED)?,
            ..Self::default()
        };
        if let Some((_, value)) = query.iter().rev().find(|(name, _)| name == "high") {
            options.high = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    priority_name(p).ok_or_else(|| {
                        AdaptError::option("high", format!("unknown priority \"{p}\": use P1-P5"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(options)
    }
}

/// A Datadog priority in its canonical form (`P1`-`P5`); `None` for anything else.
fn priority_name(raw: &str) -> Option<String> {
    let upper = raw.trim().to_ascii_uppercase();
    let digit = upper.strip_prefix('P').unwrap_or(&upper);
    matches!(digit, "1" | "2" | "3" | "4" | "5").then(|| format!("P{digit}"))
}

/// What a transition means for the alert.
fn status_of(transition: &str) -> Option<Status> {
    let normal: String = transition
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match normal.as_str() {
        "recovered" | "ok" | "resolved" => Some(Status::Healthy),
        "triggered" | "retriggered" | "alert" | "warn" | "warning" | "rewarn" | "nodata"
        | "renodata" | "renotify" => Some(Status::Unhealthy),
        _ => None,
    }
}

/// The transition and priority a title's leading brackets carry, as Datadog writes
/// them: `[P1] [Triggered on {host:web-1}] CPU high`. Returns the title without them.
fn read_title(title: &str) -> (Option<String>, Option<String>, &str) {
    let (mut transition, mut priority) = (None, None);
    let mut rest = title.trim_start();
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else { break };
        let group = &inner[..end];
        let word = group.split(" on ").next().unwrap_or(group).trim();
        if let Some(p) = priority_name(word).filter(|_| word.len() <= 2) {
            priority = Some(p);
        } else if status_of(word).is_some() {
            transition = Some(word.to_owned());
        } else {
            break;
        }
        rest = inner[end + 1..].trim_start();
    }
    (transition, priority, rest)
}

/// Adds the `k:v` pairs of a comma-separated tag list (or a JSON array of tags) to
/// `labels`. Bare tags carry no value and are skipped; a key repeated with different
/// values keeps them all, sorted and comma-joined, so the identity does not depend on
/// their order.
fn add_tags(
    map: &Map<String, Value>,
    field: &str,
    labels: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), AdaptError> {
    let tags: Vec<String> = match map.get(field) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(AdaptError::field(
                    field,
                    format!("expected tags as text, got {}", super::kind(other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => text(map, field)?
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    for tag in tags {
        let Some((key, value)) = tag.split_once(':') else {
            continue;
        };
        let (Some(key), value) = (label_key(key), label_value(value)) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let values = labels.entry(key).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Ok(())
}

/// Turns one Datadog notification into an event.
pub fn adapt(body: &[u8], options: &Options) -> Result<Event, AdaptError> {
    let map = object(body)?;
    let title = text(&map, "title")?.unwrap_or_default();
    let (title_transition, title_priority, bare_title) = read_title(&title);

    let transition = text(&map, "transition")?.or(title_transition).ok_or_else(|| {
        AdaptError::field(
            "transition",
            "missing: add \"transition\": \"$ALERT_TRANSITION\" to the webhook payload (docs/integrations/datadog.md)",
        )
    })?;
    let status = status_of(&transition).ok_or_else(|| {
        AdaptError::field(
            "transition",
            format!("unknown transition \"{transition}\": expected Triggered, Re-Triggered, Warn, Re-Warn, No Data, Re-No Data, Renotify or Recovered"),
        )
    })?;

    let monitor = match (text(&map, "monitor")?, text(&map, "alert_id")?) {
        (Some(monitor), _) => monitor,
        (None, Some(id)) => format!("datadog-{id}"),
        (None, None) => {
            return Err(AdaptError::field(
                "alert_id",
                "missing: add \"alert_id\": \"$ALERT_ID\" to the webhook payload (docs/integrations/datadog.md)",
            ));
        }
    };

    let since = match text(&map, "date")?.or(text(&map, "last_updated")?) {
        Some(value) => Some(instant("date", &value)?),
        None => None,
    };

    let mut tags = BTreeMap::new();
    add_tags(&map, "tags", &mut tags)?;
    add_tags(&map, "scope", &mut tags)?;
    let mut context: BTreeMap<String, String> = tags
        .into_iter()
        .map(|(key, mut values)| {
            values.sort();
            (key, label_value(&values.join(",")))
        })
        .collect();
    if let Some(host) = text(&map, "hostname")? {
        context.entry("host".into()).or_insert(label_value(&host));
    }
    context.extend(options.labels.clone());

    let priority = text(&map, "priority")?
        .and_then(|p| priority_name(&p))
        .or(title_priority)
        .map(|p| {
            if options.high.contains(&p) {
                Priority::High
            } else {
                Priority::Low
            }
        });

    let mut message = Message::default();
    message.paragraph(bare_title);
    message.paragraph(&text(&map, "alert_status")?.unwrap_or_default());
    message.paragraph(
        &text(&map, "message")?
            .or(text(&map, "body")?)
            .unwrap_or_default(),
    );
    message.line("Datadog", &text(&map, "link")?.unwrap_or_default());
    message.line("Transition", &transition);
    message.line("Query", &text(&map, "query")?.unwrap_or_default());

    Ok(Event {
        alert: Alert {
            monitor,
            status,
            since,
            message: message.finish(),
            count: None,
        },
        context,
        filters: Vec::new(),
        grouping: None,
        alerting: priority.map(|priority| Alerting {
            priority: Some(priority),
            ..Alerting::default()
        }),
        plugins: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapt_json(value: Value) -> Result<Event, AdaptError> {
        adapt(value.to_string().as_bytes(), &Options::default())
    }

    #[test]
    fn transitions_map_to_two_statuses() {
        for (transition, status) in [
            ("Triggered", Status::Unhealthy),
            ("Re-Triggered", Status::Unhealthy),
            ("Warn", Status::Unhealthy),
            ("No Data", Status::Unhealthy),
            ("Renotify", Status::Unhealthy),
            ("Recovered", Status::Healthy),
        ] {
            let event =
                adapt_json(serde_json::json!({ "alert_id": "1", "transition": transition }))
                    .expect(transition);
            assert_eq!(event.alert.status, status, "{transition}");
        }
        let err = adapt_json(serde_json::json!({ "alert_id": "1", "transition": "Exploded" }))
            .expect_err("unknown");
        assert!(
            err.to_string().contains("unknown transition \"Exploded\""),
            "{err}"
        );
    }

    #[test]
    fn tags_become_labels_whatever_their_order() {
        let a = adapt_json(serde_json::json!({
            "alert_id": "7", "transition": "Triggered",
            "tags": "env:prod,role:web,role:db,bare,service:bender",
            "hostname": "web-1",
        }))
        .expect("a");
        let b = adapt_json(serde_json::json!({
            "alert_id": 7, "transition": "Triggered",
            "tags": ["service:bender", "role:db", "role:web", "env:prod"],
            "hostname": "web-1",
        }))
        .expect("b");
        assert_eq!(a.context, b.context);
        assert_eq!(a.context.get("role").map(String::as_str), Some("db,web"));
        assert_eq!(a.context.get("host").map(String::as_str), Some("web-1"));
        assert!(!a.context.contains_key("bare"));
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn an_old_template_is_read_from_the_title() {
        let event = adapt_json(serde_json::json!({
            "id": "123", "alert_id": "42", "title": "[P1] [Recovered on {host:web-1}] CPU high",
            "date": "1763800000000", "body": "CPU is back",
        }))
        .expect("old");
        assert_eq!(event.alert.status, Status::Healthy);
        assert_eq!(
            event.alerting.and_then(|a| a.priority),
            Some(Priority::High)
        );
        let message = event.alert.message.unwrap_or_default();
        assert!(message.starts_with("CPU high"), "{message}");
    }

    #[test]
    fn priorities_page_only_when_configured() {
        let low = adapt_json(
            serde_json::json!({ "alert_id": "1", "transition": "Triggered", "priority": "P3" }),
        )
        .expect("p3");
        assert_eq!(low.alerting.and_then(|a| a.priority), Some(Priority::Low));
        let options = Options::from_query(&[("high".into(), "P1,p3".into())]).expect("options");
        let body =
            serde_json::json!({ "alert_id": "1", "transition": "Triggered", "priority": "P3" });
        let high = adapt(body.to_string().as_bytes(), &options).expect("p3");
        assert_eq!(high.alerting.and_then(|a| a.priority), Some(Priority::High));
        assert!(Options::from_query(&[("high".into(), "P9".into())]).is_err());
    }
}
