//! The Alertmanager v2 API's shapes, so that Prometheus sends alerts straight to Tocsin
//! and `amtool` manages Tocsin's suppressions as silences.
//!
//! **Alerts.** `alertname` is the monitor and every other label is context, so an
//! alert's identity is the same label set Alertmanager would see. An alert whose
//! `endsAt` has passed is healthy (that is how Prometheus reports a resolved alert);
//! any other is unhealthy. `severity` sets the priority: `critical` or `page` pages,
//! `warning`, `info` and `none` open a ticket, anything else leaves it to the service.
//!
//! **Silences.** A silence is a suppression with one target: `alertname` is `monitor`,
//! `=` an exact label and `=~` a regex (both anchored, as in Alertmanager). `!=` and `!~`
//! are refused: a negative matcher suppresses every alert *except* the ones it names,
//! the "suppress the world" the suppression guards exist to stop.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::{AdaptError, Message, kind};
use crate::MAX_ITEMS;
use tocsin_model::event::{Alert, Alerting, Event, FieldError, Priority, Status};
use tocsin_model::suppression::Draft;
use tocsin_model::views::SuppressionRecord;

/// Alertmanager's label for the monitor's name.
pub const ALERTNAME: &str = "alertname";

/// Reads a `POST /api/v2/alerts` body: each alert becomes an event, or the reason it
/// cannot (by position), so one bad alert never spoils its batch.
pub fn alerts(
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<Result<Event, FieldError>>, AdaptError> {
    let items: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(items) => items,
        Err(e) => {
            return Err(match serde_json::from_slice::<Value>(body) {
                Ok(other) => AdaptError::field(
                    "",
                    format!("expected an array of alerts, got {}", kind(&other)),
                ),
                Err(_) => AdaptError::Malformed(e.to_string()),
            });
        }
    };
    if items.len() > MAX_ITEMS {
        return Err(AdaptError::field(
            "",
            format!(
                "{} alerts in one request, at most {MAX_ITEMS} are allowed",
                items.len()
            ),
        ));
    }
    Ok(items
        .iter()
        .map(|raw| {
            // The typed parse is the fast path; only an alert it refuses pays for the
            // lenient one, which names the field at fault.
            let parts = match serde_json::from_str::<Posted>(raw.get()) {
                Ok(posted) => posted.into_parts(),
                Err(_) => serde_json::from_str::<Value>(raw.get())
                    .map_err(|e| AdaptError::Malformed(e.to_string()))
                    .and_then(|value| Parts::read(&value)),
            };
            parts
                .and_then(|parts| parts.into_event(now))
                .map_err(FieldError::from)
        })
        .collect())
}

/// An alert as Prometheus posts it, for the fast path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Posted {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

impl Posted {
    fn into_parts(self) -> Result<Parts, AdaptError> {
        let time = |field: &str, text: Option<String>| match text {
            Some(text) => parse_time(field, &text),
            None => Ok(None),
        };
        Ok(Parts {
            starts: time("startsAt", self.starts_at)?,
            ends: time("endsAt", self.ends_at)?,
            labels: self.labels,
            annotations: self.annotations,
            generator: self.generator_url.unwrap_or_default(),
        })
    }
}

/// What an alert says, read.
struct Parts {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts: Option<OffsetDateTime>,
    ends: Option<OffsetDateTime>,
    generator: String,
}

fn strings(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, AdaptError> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key.clone(), s.clone())),
                other => Err(AdaptError::field(
                    format!("{field}.{key}"),
                    format!("expected a string, got {}", kind(other)),
                )),
            })
            .collect(),
        Some(other) => Err(AdaptError::field(
            field,
            format!("expected an object of strings, got {}", kind(other)),
        )),
    }
}

/// A time field; Go's zero time (`0001-01-01T00:00:00Z`) means unset.
fn time_field(item: &Value, field: &str) -> Result<Option<OffsetDateTime>, AdaptError> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(field, s),
        Some(other) => Err(AdaptError::field(
            field,
            format!("expected an RFC 3339 time, got {}", kind(other)),
        )),
    }
}

/// RFC 3339 text; empty text and Go's zero time mean unset.
fn parse_time(field: &str, text: &str) -> Result<Option<OffsetDateTime>, AdaptError> {
    if text.is_empty() {
        return Ok(None);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        AdaptError::field(field, format!("invalid time \"{text}\": expected RFC 3339"))
    })?;
    Ok((t.year() > 1).then_some(t))
}

fn priority_of(severity: &str) -> Option<Priority> {
    match severity.to_ascii_lowercase().as_str() {
        "critical" | "page" => Some(Priority::High),
        "warning" | "info" | "none" => Some(Priority::Low),
        _ => None,
    }
}

impl Parts {
    /// Reads an alert leniently, naming the field at fault.
    fn read(item: &Value) -> Result<Self, AdaptError> {
        if !item.is_object() {
            return Err(AdaptError::field(
                "",
                format!("expected an alert object, got {}", kind(item)),
            ));
        }
        let generator = match item.get("generatorURL") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(AdaptError::field(
                    "generatorURL",
                    format!("expected a URL, got {}", kind(other)),
                ));
            }
        };
        Ok(Self {
            labels: strings(item.get("labels"), "labels")?,
            annotations: strings(item.get("annotations"), "annotations")?,
            starts: time_field(item, "startsAt")?,
            ends: time_field(item, "endsAt")?,
            generator,
        })
    }

    fn into_event(self, now: OffsetDateTime) -> Result<Event, AdaptError> {
        let Self {
            mut labels,
            annotations,
            starts,
            ends,
            generator,
        } = self;
        let monitor = labels.remove(ALERTNAME).ok_or_else(|| {
            AdaptError::field(
                "labels.alertname",
                "missing: every alert needs an alertname label (it names the monitor)",
            )
        })?;
        let (status, since) = match ends {
            Some(end) if end <= now => (Status::Healthy, Some(end)),
            _ => (Status::Unhealthy, starts),
        };
        let mut message = Message::default();
        message.paragraph(annotations.get("summary").map_or("", String::as_str));
        message.paragraph(annotations.get("description").map_or("", String::as_str));
        for (name, value) in &annotations {
            if name != "summary" && name != "description" {
                message.line(name, value);
            }
        }
        message.line("Source", &generator);

        let priority = labels.get("severity").and_then(|s| priority_of(s));
        Ok(Event {
            alert: Alert {
                monitor,
                status,
                since,
                message: message.finish(),
                count: None,
            },
            context: labels,
            filters: Vec::new(),
            grouping: None,
            alerting: priority.map(|priority| Alerting {
                priority: Some(priority),
                ..Alerting::default()
            }),
            plugins: Vec::new(),
        })
    }
}

/// One matcher of a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// Label name (`alertname` for the monitor).
    pub name: String,
    /// Value, or regex when `isRegex`.
    pub value: String,
    /// Whether `value` is a regex (anchored at both ends).
    pub is_regex: bool,
    /// `false` for `!=` and `!~`, which Tocsin refuses.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence as `POST /api/v2/silences` takes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Set to replace an existing silence.
    #[serde(default)]
    pub id: Option<String>,
    /// The labels it matches; all must match.
    pub matchers: Vec<Matcher>,
    /// When it starts.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// Who made it.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SilenceStatus {
    /// `pending`, `active` or `expired`.
    pub state: &'static str,
}

/// A silence as `GET /api/v2/silences` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    /// The suppression's id (with `.N` for the N-th target of a suppression with several).
    pub id: String,
    /// Its state.
    pub status: SilenceStatus,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// The labels it matches.
    pub matchers: Vec<Matcher>,
    /// When it starts.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// Who made it.
    pub created_by: String,
    /// The suppression's description.
    pub comment: String,
}

/// The suppression a silence stands for; a 400's message when it cannot be one.
pub fn draft(silence: &PostableSilence) -> Result<Draft, FieldError> {
    let mut target = BTreeMap::new();
    for (i, matcher) in silence.matchers.iter().enumerate() {
        let field = format!("matchers[{i}]");
        if !matcher.is_equal {
            let op = if matcher.is_regex { "!~" } else { "!=" };
            return Err(FieldError::new(
                field,
                format!(
                    "{}{op}\"{}\" is refused: a negative matcher silences every alert except the ones it names, which is what the suppression guards exist to prevent; name the alerts to silence with = or =~",
                    matcher.name, matcher.value
                ),
            ));
        }
        let key = if matcher.name == ALERTNAME {
            "monitor".to_owned()
        } else {
            matcher.name.clone()
        };
        let value = if matcher.is_regex {
            format!("~{}", matcher.value)
        } else if matcher.value.starts_with('~') {
            return Err(FieldError::new(
                field,
                format!(
                    "the exact value \"{}\" starts with ~, which Tocsin reads as a regex: match it with =~ and an escaped ~",
                    matcher.value
                ),
            ));
        } else {
            matcher.value.clone()
        };
        if target.insert(key, value).is_some() {
            return Err(FieldError::new(
                field,
                format!(
                    "a second matcher for \"{}\": use one matcher per label",
                    matcher.name
                ),
            ));
        }
    }
    let mut metadata = serde_json::Map::new();
    if !silence.created_by.is_empty() {
        metadata.insert("engineer".into(), Value::String(silence.created_by.clone()));
    }
    metadata.insert("source".into(), Value::String("alertmanager-api".into()));
    let description = if silence.comment.trim().is_empty() {
        format!(
            "silence by {}",
            if silence.created_by.is_empty() {
                "amtool"
            } else {
                &silence.created_by
            }
        )
    } else {
        silence.comment.clone()
    };
    Ok(Draft {
        description,
        start_time: silence.starts_at,
        end_time: silence.ends_at,
        metadata,
        targets: vec![target],
    })
}

/// The silences a suppression shows as: one per target.
pub fn silences(record: &SuppressionRecord) -> Vec<GettableSilence> {
    let state = match record.state {
        "active" => "active",
        "ended" => "expired",
        _ => "pending",
    };
    let created_by = record
        .draft
        .metadata
        .get("engineer")
        .and_then(Value::as_str)
        .unwrap_or(&record.created_by)
        .to_owned();
    let several = record.draft.targets.len() > 1;
    let matchers = |target: &BTreeMap<String, String>| {
        let mut matchers: Vec<Matcher> = target
            .iter()
            .map(|(key, value)| Matcher {
                name: if key == "monitor" {
                    ALERTNAME.to_owned()
                } else {
                    key.clone()
                },
                value: value.strip_prefix('~').unwrap_or(value).to_owned(),
                is_regex: value.starts_with('~'),
                is_equal: true,
            })
            .collect();
        // Alertmanager users read `alertname` first.
        matchers.sort_by_key(|m| m.name != ALERTNAME);
        matchers
    };
    record
        .draft
        .targets
        .iter()
        .enumerate()
        .map(|(i, target)| GettableSilence {
            id: if several {
                format!("{}.{i}", record.id)
            } else {
                record.id.clone()
            },
            status: SilenceStatus { state },
            updated_at: record.created_at,
            matchers: matchers(target),
            starts_at: record.draft.start_time,
            ends_at: record.draft.end_time,
            created_by: created_by.clone(),
            comment: record.draft.description.clone(),
        })
        .collect()
}

/// The suppression id a silence id names (`<id>` or `<id>.<target>`).
pub fn suppression_id(silence_id: &str) -> &str {
    match silence_id.rsplit_once('.') {
        Some((id, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => id,
        _ => silence_id,
    }
}

/// One `filter` of `GET /api/v2/silences`, in Prometheus matcher syntax.
#[derive(Debug, Clone)]
pub struct Filter {
    name: String,
    op: FilterOp,
}

#[derive(Debug, Clone)]
enum FilterOp {
    Equal(String),
    NotEqual(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

impl Filter {
    /// Reads `name="value"`, `name=~"re"`, `name!="value"` or `name!~"re"` (quotes
    /// optional).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid filter \"{text}\": {why}");
        let at = text
            .find(['=', '!'])
            .ok_or_else(|| bad("expected name=\"value\""))?;
        let name = text[..at].trim().to_owned();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            ("=~", v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            ("!~", v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            ("!=", v)
        } else if let Some(v) = rest.strip_prefix('=') {
            ("=", v)
        } else {
            return Err(bad("expected =, !=, =~ or !~"));
        };
        if name.is_empty() {
            return Err(bad("the label name is empty"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .replace("\\\"", "\"");
        let regex = || tocsin_model::suppression::anchored_regex(&value).map_err(|e| bad(&e));
        let op = match op {
            "=" => FilterOp::Equal(value),
            "!=" => FilterOp::NotEqual(value),
            "=~" => FilterOp::Regex(regex()?),
            _ => FilterOp::NotRegex(regex()?),
        };
        Ok(Self { name, op })
    }

    /// Whether a silence passes this filter, as Alertmanager decides it: the silence's
    /// matchers, read as a label set, must satisfy the filter.
    pub fn keeps(&self, silence: &GettableSilence) -> bool {
        let value = silence
            .matchers
            .iter()
            .find(|m| m.name == self.name)
            .map_or("", |m| m.value.as_str());
        match &self.op {
            FilterOp::Equal(v) => value == v,
            FilterOp::NotEqual(v) => value != v,
            FilterOp::Regex(r) => r.is_match(value),
            FilterOp::NotRegex(r) => !r.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    #[test]
    fn a_resolved_alert_is_healthy_and_a_firing_one_unhealthy() {
        let body = serde_json::json!([
            { "labels": { "alertname": "InstanceDown", "instance": "web-1", "severity": "critical" },
              "annotations": { "summary": "web-1 is down", "runbook_url": "https://runbooks/x" },
              "startsAt": "2026-11-22T11:58:00.123456789Z", "endsAt": "2026-11-22T12:02:00Z",
              "generatorURL": "http://prometheus/graph" },
            { "labels": { "alertname": "InstanceDown", "instance": "web-2" },
              "startsAt": "2026-11-22T11:50:00Z", "endsAt": "2026-11-22T11:59:00Z" },
            { "labels": { "instance": "web-3" } },
            { "labels": { "alertname": "X", "n": 5 } },
            "nonsense",
        ]);
        let events = alerts(body.to_string().as_bytes(), NOW).expect("alerts");
        let firing = events[0].as_ref().expect("firing");
        assert_eq!(firing.alert.monitor, "InstanceDown");
        assert_eq!(firing.alert.status, Status::Unhealthy);
        assert_eq!(
            firing.context.get("instance").map(String::as_str),
            Some("web-1")
        );
        assert!(!firing.context.contains_key(ALERTNAME));
        assert_eq!(
            firing.alerting.as_ref().and_then(|a| a.priority),
            Some(Priority::High)
        );
        let message = firing.alert.message.clone().unwrap_or_default();
        assert!(message.starts_with("web-1 is down"), "{message}");
        assert!(
            message.contains("runbook_url: https://runbooks/x"),
            "{message}"
        );
        let resolved = events[1].as_ref().expect("resolved");
        assert_eq!(resolved.alert.status, Status::Healthy);
        assert_eq!(resolved.alert.since, Some(datetime!(2026-11-22 11:59 UTC)));
        assert_eq!(
            events[2].as_ref().expect_err("no name").field,
            "labels.alertname"
        );
        assert_eq!(events[3].as_ref().expect_err("number").field, "labels.n");
        assert!(events[4].is_err());
    }

    #[test]
    fn negative_matchers_are_refused_and_others_become_one_target() {
        let silence = |matchers: Vec<Matcher>| PostableSilence {
            id: None,
            matchers,
            starts_at: NOW,
            ends_at: NOW + time::Duration::hours(1),
            created_by: "bpannell".into(),
            comment: "maintenance".into(),
        };
        let m = |name: &str, value: &str, is_regex, is_equal| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        };
        let draft = draft(&silence(vec![
            m("alertname", "InstanceDown", false, true),
            m("instance", "web-.*", true, true),
        ]))
        .expect("draft");
        assert_eq!(
            draft.targets[0].get("monitor").map(String::as_str),
            Some("InstanceDown")
        );
        assert_eq!(
            draft.targets[0].get("instance").map(String::as_str),
            Some("~web-.*")
        );
        assert_eq!(draft.description, "maintenance");
        for negative in [
            m("instance", "web-1", false, false),
            m("instance", "web.*", true, false),
        ] {
            let err = super::draft(&silence(vec![m("alertname", "A", false, true), negative]))
                .expect_err("negative");
            assert!(err.error.contains("negative matcher"), "{}", err.error);
        }
    }

    #[test]
    fn filters_read_prometheus_matchers() {
        let silence = GettableSilence {
            id: "s".into(),
            status: SilenceStatus { state: "active" },
            updated_at: NOW,
            matchers: vec![Matcher {
                name: "alertname".into(),
                value: "InstanceDown".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: NOW,
            ends_at: NOW,
            created_by: String::new(),
            comment: String::new(),
        };
        let keeps = |f: &str| Filter::parse(f).expect(f).keeps(&silence);
        assert!(keeps("alertname=\"InstanceDown\""));
        assert!(keeps("alertname=InstanceDown"));
        assert!(keeps("alertname=~\"Instance.*\""));
        assert!(!keeps("alertname!=\"InstanceDown\""));
        assert!(!keeps("service=\"x\""));
        assert!(Filter::parse("nonsense").is_err());
        assert!(Filter::parse("a=~\"(\"").is_err());
        // The anchoring cannot be escaped, and the regex size is bounded.
        assert!(Filter::parse("alertname=~\"x)|(.+\"").is_err());
        assert!(!keeps("alertname=~\"Instance\""));
        assert!(Filter::parse("alertname=~\"\\w{5000}\"").is_err());
        assert_eq!(suppression_id("0193.1"), "0193");
        assert_eq!(suppression_id("0193-ab"), "0193-ab");
    }
}
