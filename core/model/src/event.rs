//! The event of `docs/events.md`: what a check tells Tocsin, as serde types, and the rules
//! an event must follow before it is accepted.
//!
//! Parsing (serde) catches wrong shapes and types; [`Event::validate`] catches what types
//! cannot say: lengths, label syntax, template names. Both report the offending field.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::template::{self, Template};

/// Longest monitor name, in characters.
pub const MAX_MONITOR_LEN: usize = 128;
/// Longest alert message, in bytes (16 KiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Most context labels on one event.
pub const MAX_LABELS: usize = 32;
/// Label that marks the alert flap detection emits for a flapping alert.
pub const FLAPPING_LABEL: &str = "flapping";
pub use crate::template::MAX_LABEL_KEY_LEN;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Longest free-text setting (channel, ticket queue, plugin name), in characters.
const MAX_SETTING_LEN: usize = 256;

/// One event: an alert's status plus everything Tocsin needs to route it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What the check saw.
    pub alert: Alert,
    /// Labels identifying where it happened (region, service, instance, …).
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// Filters to apply besides the ones that always apply; defaults come from the
    /// service catalogue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterSpec>,
    /// How this alert joins incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<Grouping>,
    /// Who is told, and how urgently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
    /// Context collectors run when an incident opens, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginSpec>,
}

/// The check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Name of the check, 1-128 characters of `[A-Za-z0-9_.:/-]`.
    pub monitor: String,
    /// `healthy` or `unhealthy`.
    pub status: Status,
    /// When the check entered this status; receipt time when absent.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Free text for the engineer, at most 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Runs of the check in this status so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// An alert's status. Only two exist, on purpose: urgency is `alerting.priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Status {
    /// The check passes.
    Healthy,
    /// The check fails.
    Unhealthy,
}

/// How urgently a human must look. Only two exist, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Priority {
    /// Page a human now.
    High,
    /// Open a ticket for working hours.
    Low,
}

/// One entry of an event's `filters` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// `ignore-flap`, `plugin`, or the always-on `state-change` / `alert-suppression`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Parameters of the filter (`min-age` for `ignore-flap`, `name` for `plugin`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// How an alert is grouped into incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    /// Templates rendered into the grouping key; `[]` disables grouping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// Rolling window, such as `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// Who is told about the incident, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Alerting {
    /// `high` pages, `low` opens a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Slack channel to post to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Ticket queue (Jira project or GitHub repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_queue: Option<String>,
}

/// One context collector to run when an incident opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Collector kind: `markdown`, `runbook`, `logs`, `cluster-health`, `recent-changes`,
    /// `previous-incidents` or `plugin`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Parameters of the collector; string values may hold templates.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// What is wrong with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field, such as `alert.status` or `context."Reg ion"`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub error: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error: error.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.error)
    }
}

/// The identity of an alert: a hash of its monitor and sorted context labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// Hashes `monitor` and `context`; label order never matters because a `BTreeMap`
    /// iterates sorted, and every part is length-prefixed so no two identities collide
    /// by concatenation. The `team` label names the owner, which identities are already
    /// scoped by, so it is left out: a team's own token and an admin sending for it
    /// reach the same alert.
    pub fn of(monitor: &str, context: &BTreeMap<String, String>) -> Self {
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u32).to_le_bytes());
            hash.update(bytes);
        };
        part(monitor.as_bytes());
        for (key, value) in context.iter().filter(|(key, _)| key.as_str() != "team") {
            part(key.as_bytes());
            part(value.as_bytes());
        }
        let digest = hash.finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// Reads the 32 hex digits [`Fingerprint`]'s `Display` writes.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = [0; 16];
        hex::decode_to_slice(text, &mut out)
            .map_err(|e| format!("invalid fingerprint \"{text}\": {e}"))?;
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    /// 32 lowercase hex digits, written from a buffer on the stack: the pipeline writes
    /// one for every row of a new identity, and `hex::encode` built a `String` char by
    /// char first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = [0; 32];
        hex::encode_to_slice(self.0, &mut digits).map_err(|_| fmt::Error)?;
        f.pad(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl Event {
    /// The alert's identity.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.alert.monitor, &self.context)
    }

    /// Checks every rule types cannot express; returns one error per offending field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_monitor(&self.alert.monitor, &mut errors);
        if let Some(message) = &self.alert.message
            && message.len() > MAX_MESSAGE_BYTES
        {
            errors.push(FieldError::new(
                "alert.message",
                format!(
                    "message is {} bytes, at most {MAX_MESSAGE_BYTES} (16 KiB) are allowed",
                    message.len()
                ),
            ));
        }
        if let Some(message) = &self.alert.message
            && message.contains('\0')
        {
            errors.push(FieldError::new(
                "alert.message",
                "contains a NUL character, which cannot be stored",
            ));
        }
        if let Some(since) = self.alert.since
            && !rfc3339_writable(since)
        {
            // The journal, the history and every listing write it as RFC 3339, which has
            // years 0000-9999 only, in the sender's offset and in UTC alike. A plugin can
            // give any millisecond, and `0000-01-01T00:00:00+00:01` is year -1 in UTC.
            errors.push(FieldError::new(
                "alert.since",
                "must be in the years 0000 to 9999, in UTC as well",
            ));
        }
        if let Some(count) = self.alert.count
            && i64::try_from(count).is_err()
        {
            // Stored as a signed 64-bit integer: a larger count would be stored as some
            // other number, so it is refused rather than changed.
            errors.push(FieldError::new(
                "alert.count",
                format!("count {count} is too large: at most {}", i64::MAX),
            ));
        }
        check_context(&self.context, &mut errors);
        self.check_filters(&mut errors);
        self.check_grouping(&mut errors);
        self.check_alerting(&mut errors);
        self.check_plugins(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_filters(&self, errors: &mut Vec<FieldError>) {
        for (i, filter) in self.filters.iter().enumerate() {
            let field = format!("filters[{i}]");
            match filter.kind.as_str() {
                "state-change" | "alert-suppression" => {}
                "ignore-flap" => match filter.params.get("min-age") {
                    Some(serde_json::Value::String(age)) => {
                        if let Err(e) = parse_duration(age) {
                            errors.push(FieldError::new(format!("{field}.params.min-age"), e));
                        }
                    }
                    Some(other) => errors.push(FieldError::new(
                        format!("{field}.params.min-age"),
                        format!("expected a duration such as \"5m\", got {other}"),
                    )),
                    None => errors.push(FieldError::new(
                        format!("{field}.params"),
                        "ignore-flap needs params.min-age, such as { min-age: 5m }",
                    )),
                },
                "plugin" => check_plugin_name(&filter.params, &format!("{field}.params.name"), errors),
                other => errors.push(FieldError::new(
                    format!("{field}.type"),
                    format!(
                        "unknown filter type \"{other}\": expected ignore-flap, plugin, state-change or alert-suppression"
                    ),
                )),
            }
            self.check_templates_in(&filter.params, &format!("{field}.params"), errors);
        }
    }

    fn check_grouping(&self, errors: &mut Vec<FieldError>) {
        let Some(grouping) = &self.grouping else {
            return;
        };
        for (i, key) in grouping.keys.iter().flatten().enumerate() {
            self.check_template(key, &format!("grouping.keys[{i}]"), errors);
        }
        if let Some(window) = &grouping.window
            && let Err(e) = parse_duration(window)
        {
            errors.push(FieldError::new("grouping.window", e));
        }
    }

    fn check_alerting(&self, errors: &mut Vec<FieldError>) {
        let Some(alerting) = &self.alerting else {
            return;
        };
        for (name, value) in [
            ("channel", &alerting.channel),
            ("ticket-queue", &alerting.ticket_queue),
        ] {
            let Some(value) = value else { continue };
            let field = format!("alerting.{name}");
            if value.chars().count() > MAX_SETTING_LEN {
                errors.push(FieldError::new(
                    &field,
                    format!("at most {MAX_SETTING_LEN} characters are allowed"),
                ));
            }
            self.check_template(value, &field, errors);
        }
    }

    fn check_plugins(&self, errors: &mut Vec<FieldError>) {
        const KINDS: [&str; 7] = [
            "markdown",
            "runbook",
            "logs",
            "cluster-health",
            "recent-changes",
            "previous-incidents",
            "plugin",
        ];
        for (i, plugin) in self.plugins.iter().enumerate() {
            let field = format!("plugins[{i}]");
            if !KINDS.contains(&plugin.kind.as_str()) {
                errors.push(FieldError::new(
                    format!("{field}.type"),
                    format!(
                        "unknown collector type \"{}\": expected one of {}",
                        plugin.kind,
                        KINDS.join(", ")
                    ),
                ));
            }
            if plugin.kind == "plugin" {
                check_plugin_name(&plugin.params, &format!("{field}.params.name"), errors);
            }
            self.check_templates_in(&plugin.params, &format!("{field}.params"), errors);
        }
    }

    /// Checks the templates in every string of a parameter tree.
    fn check_templates_in(
        &self,
        params: &serde_json::Map<String, serde_json::Value>,
        field: &str,
        errors: &mut Vec<FieldError>,
    ) {
        fn walk(
            event: &Event,
            value: &serde_json::Value,
            field: &str,
            errors: &mut Vec<FieldError>,
        ) {
            match value {
                serde_json::Value::String(s) => event.check_template(s, field, errors),
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(event, item, &format!("{field}[{i}]"), errors);
                    }
                }
                serde_json::Value::Object(map) => {
                    for (key, item) in map {
                        if key.contains('\0') {
                            errors.push(FieldError::new(
                                field,
                                "a key contains a NUL character, which cannot be stored",
                            ));
                        }
                        walk(event, item, &format!("{field}.{key}"), errors);
                    }
                }
                _ => {}
            }
        }
        for (key, value) in params {
            if key.contains('\0') {
                errors.push(FieldError::new(
                    field,
                    "a key contains a NUL character, which cannot be stored",
                ));
            }
            walk(self, value, &format!("{field}.{key}"), errors);
        }
    }

    fn check_template(&self, text: &str, field: &str, errors: &mut Vec<FieldError>) {
        if text.contains('\0') {
            errors.push(FieldError::new(
                field,
                "contains a NUL character, which cannot be stored",
            ));
            return;
        }
        match Template::parse(text) {
            Ok(template) => {
                if let Err(e) = template.check(&self.context) {
                    errors.push(FieldError::new(field, e.to_string()));
                }
            }
            Err(e) => errors.push(FieldError::new(field, e.to_string())),
        }
    }
}

fn check_monitor(monitor: &str, errors: &mut Vec<FieldError>) {
    let len = monitor.chars().count();
    if len == 0 || len > MAX_MONITOR_LEN {
        errors.push(FieldError::new(
            "alert.monitor",
            format!("monitor must be 1-{MAX_MONITOR_LEN} characters, got {len}"),
        ));
    } else if let Some(bad) = monitor
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c)))
    {
        errors.push(FieldError::new(
            "alert.monitor",
            format!("invalid monitor \"{monitor}\": {bad:?} is not allowed, use only A-Z a-z 0-9 _ . : / -"),
        ));
    }
}

fn check_context(context: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if context.len() > MAX_LABELS {
        errors.push(FieldError::new(
            "context",
            format!("{} labels, at most {MAX_LABELS} are allowed", context.len()),
        ));
    }
    for (key, value) in context {
        // The field name is built only for an error: this loop runs for every label of
        // every event.
        let field = || format!("context.{}", template::quote_label(key));
        if let Err(e) = template::check_label_key(key) {
            errors.push(FieldError::new(field(), e));
        }
        let len = if value.len() <= MAX_LABEL_VALUE_LEN {
            value.len()
        } else {
            value.chars().count()
        };
        if len > MAX_LABEL_VALUE_LEN {
            errors.push(FieldError::new(
                field(),
                format!(
                    "label value is {len} characters, at most {MAX_LABEL_VALUE_LEN} are allowed"
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            errors.push(FieldError::new(
                field(),
                "label value contains a control character",
            ));
        }
    }
}

fn check_plugin_name(
    params: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    match params.get("name") {
        Some(serde_json::Value::String(name))
            if !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {}
        Some(other) => errors.push(FieldError::new(
            field,
            format!("invalid plugin name {other}: use 1-64 characters of A-Z a-z 0-9 - _"),
        )),
        None => errors.push(FieldError::new(field, "a plugin entry needs params.name")),
    }
}

/// Whether `at` can be written as RFC 3339 both as given and in UTC.
fn rfc3339_writable(at: OffsetDateTime) -> bool {
    use time::format_description::well_known::Rfc3339;
    at.format(&Rfc3339).is_ok() && at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).is_ok()
}

/// Parses a duration such as `90s`, `5m`, `1h30m` or `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "invalid duration \"{text}\": use a number with a unit, such as 90s, 5m, 1h30m or 7d"
        )
    };
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        // At most i64::MAX milliseconds (292 million years): every consumer may hold a
        // duration as signed milliseconds without wrapping.
        total = number
            .checked_mul(millis)
            .and_then(|v| total.checked_add(v))
            .filter(|&t| i64::try_from(t).is_ok())
            .ok_or_else(|| format!("duration \"{text}\" is too long"))?;
        rest = &rest[unit_len..];
    }
    Ok(std::time::Duration::from_millis(total))
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl Priority {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Low => "low",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "healthy" => Ok(Self::Healthy),
            "unhealthy" => Ok(Self::Unhealthy),
            other => Err(format!(
                "unknown status \"{other}\": only healthy and unhealthy exist; \
                 say how urgent it is with alerting.priority (high or low)"
            )),
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "high" => Ok(Self::High),
            "low" => Ok(Self::Low),
            other => Err(format!(
                "unknown priority \"{other}\": only high (page a human now) and low (open a ticket) exist"
            )),
        }
    }
}

/// Serializes and deserializes through the wire name, so that a wrong value gets the
/// explanatory message of `FromStr` rather than serde's generic one.
macro_rules! wire_enum {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
wire_enum!(Status);
wire_enum!(Priority);

/// Renders a template against an event; a label the event lacks renders as `-` (only
/// service defaults can name one: an event's own templates are checked at ingest).
pub fn render(text: &str, event: &Event) -> String {
    let Ok(template) = Template::parse(text) else {
        return text.to_owned();
    };
    let mut out = String::new();
    for part in template.parts() {
        match part {
            template::Part::Literal(s) => out.push_str(s),
            template::Part::Context(label) => {
                out.push_str(event.context.get(*label).map_or("-", String::as_str))
            }
            template::Part::Alert(field) => match *field {
                "monitor" => out.push_str(&event.alert.monitor),
                "status" => out.push_str(event.alert.status.as_str()),
                "message" => out.push_str(event.alert.message.as_deref().unwrap_or("")),
                "count" => out.push_str(&event.alert.count.unwrap_or(1).to_string()),
                "since" => out.push_str(
                    &event
                        .alert
                        .since
                        .and_then(|t| {
                            t.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_default(),
                ),
                _ => {}
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).expect("valid event shape")
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({"alert": {"monitor": "InstanceHealth", "status": "unhealthy"},
                           "context": {"region": "eu-west-1a", "service": "bender"}})
    }

    #[test]
    fn blueprint_event_in_yaml_parses_and_validates() {
        let yaml = include_str!("../tests/fixtures/blueprint-event.yaml");
        let event: Event = serde_yaml_ng::from_str(yaml).expect("parses");
        assert_eq!(event.validate(), Ok(()));
        assert_eq!(event.alert.count, Some(12));
        assert_eq!(
            event.alerting.as_ref().and_then(|a| a.priority),
            Some(Priority::Low)
        );
        assert_eq!(
            event.alert.since.map(|t| t.unix_timestamp()),
            Some(1_613_265_181)
        );
    }

    #[test]
    fn a_fingerprint_is_written_as_32_lowercase_hex_digits_and_read_back() {
        let print = Fingerprint([0xab; 16]);
        assert_eq!(print.to_string(), "ab".repeat(16));
        let print = event(serde_json::json!({"alert": {"monitor": "m", "status": "healthy"}}))
            .fingerprint();
        let text = print.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(text.parse::<Fingerprint>(), Ok(print));
        // Width and padding apply as to any string.
        assert_eq!(format!("{print:>34}"), format!("  {text}"));
    }

    #[test]
    fn fingerprint_ignores_label_order_and_tells_identities_apart() {
        let a = event(
            serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                         "context": {"a": "1", "b": "2"}}),
        );
        let b: Event = serde_json::from_str(
            r#"{"context": {"b": "2", "a": "1"}, "alert": {"status": "unhealthy", "monitor": "m"}}"#,
        )
        .expect("parses");
        assert_eq!(
            a.fingerprint(),
            b.fingerprint(),
            "status and order are not identity"
        );
        let c = event(
            serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                         "context": {"a": "12", "b": ""}}),
        );
        assert_ne!(
            a.fingerprint(),
            c.fingerprint(),
            "concatenation must not collide"
        );
        assert_eq!(a.fingerprint().to_string().len(), 32);
    }

    #[test]
    fn status_warning_is_refused_with_an_explanation() {
        let err =
            serde_json::from_str::<Event>(r#"{"alert": {"monitor": "m", "status": "warning"}}"#)
                .expect_err("warning is not a status");
        assert!(
            err.to_string().contains("only healthy and unhealthy exist"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = serde_json::from_str::<Event>(
            r#"{"alert": {"monitor": "m", "status": "healthy"}, "aleting": {}}"#,
        )
        .expect_err("typo");
        assert!(err.to_string().contains("unknown field `aleting`"), "{err}");
    }

    #[test]
    fn validation_names_each_offending_field() {
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (
                serde_json::json!({"alert": {"monitor": "", "status": "healthy"}}),
                "alert.monitor",
                "1-128",
            ),
            (
                serde_json::json!({"alert": {"monitor": "a b", "status": "healthy"}}),
                "alert.monitor",
                "' '",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"}, "context": {"Reg ion": "x"}}),
                "context.\"Reg ion\"",
                "invalid label key \"Reg ion\": spaces are not allowed",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                   "grouping": {"keys": ["${alert.monitor}", "${context.zone}"]}}),
                "grouping.keys[1]",
                "unknown template name \"context.zone\"",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                   "grouping": {"keys": ["${alert.owner}"]}}),
                "grouping.keys[0]",
                "unknown template name \"alert.owner\"",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"}, "grouping": {"window": "soon"}}),
                "grouping.window",
                "invalid duration \"soon\"",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                   "filters": [{"type": "ignore-flap"}]}),
                "filters[0].params",
                "min-age",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                   "filters": [{"type": "dedupe"}]}),
                "filters[0].type",
                "unknown filter type \"dedupe\"",
            ),
            (
                serde_json::json!({"alert": {"monitor": "m", "status": "healthy"},
                                   "plugins": [{"type": "logs", "params": {"query": "x ${context.nope}"}}]}),
                "plugins[0].params.query",
                "unknown template name \"context.nope\"",
            ),
        ];
        for (json, field, needle) in cases {
            let errors = event(json.clone()).validate().expect_err(&json.to_string());
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == field && e.error.contains(needle)),
                "{json}: wanted {field} containing {needle:?}, got {errors:?}"
            );
        }
    }

    #[test]
    fn limits_are_inclusive_and_the_next_one_is_refused() {
        let mut ok = event(minimal());
        ok.alert.message = Some("x".repeat(MAX_MESSAGE_BYTES));
        ok.context = (0..MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".repeat(MAX_LABEL_VALUE_LEN)))
            .collect();
        assert_eq!(ok.validate(), Ok(()));

        let mut too_big = ok.clone();
        too_big.alert.message = Some("x".repeat(MAX_MESSAGE_BYTES + 1));
        too_big.context.insert("one-more".into(), "v".into());
        let errors = too_big.validate().expect_err("over the limits");
        assert!(
            errors
                .iter()
                .any(|e| e.field == "alert.message" && e.error.contains("16385 bytes"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.field == "context" && e.error.contains("33 labels"))
        );
    }

    #[test]
    fn a_since_rfc3339_cannot_write_is_refused_so_the_journal_can_store_the_event() {
        // Found by fuzzing what a transformer may return: any millisecond is a time, and
        // the journal then stored the event as an empty string.
        let mut year_minus_one = event(minimal());
        year_minus_one.alert.since =
            Some(OffsetDateTime::from_unix_timestamp(-62_198_755_200).expect("a time"));
        let mut east_of_year_zero = minimal();
        east_of_year_zero["alert"]["since"] = "0000-01-01T00:00:00+00:01".into();
        for refused in [year_minus_one, event(east_of_year_zero)] {
            let errors = refused.validate().expect_err("refused");
            assert!(
                errors.iter().any(|e| e.field == "alert.since"),
                "{errors:?}"
            );
        }
        let mut fine = minimal();
        fine["alert"]["since"] = "0000-01-01T00:01:00+00:01".into();
        assert_eq!(event(fine.clone()).validate(), Ok(()));
        assert!(serde_json::to_string(&event(fine)).is_ok());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("7d"),
            Ok(std::time::Duration::from_secs(7 * 86400))
        );
        for bad in ["", "5", "m", "5 m", "-5m", "5w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        // Longer than i64::MAX milliseconds: every consumer holds durations as signed
        // milliseconds, so these would wrap to negative windows.
        assert!(parse_duration("18446744073709551615ms").is_err_and(|e| e.contains("too long")));
        assert!(parse_duration("9223372036854775807ms").is_ok());
        assert!(parse_duration("9223372036854775808ms").is_err());
    }
}
