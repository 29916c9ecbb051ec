//! Built-in adapters: the payloads other monitoring tools already send (Datadog and
//! Loggly webhooks, Prometheus alerts) become Tocsin events.
//!
//! Each adapter is a plain function from a body, the request's options and the receipt
//! time to events, so `tocsin serve` and the webhook Lambda function share it. Adapters
//! do not validate events: what they produce goes through [`crate`] like any
//! other event, so one rule decides what is valid. They read leniently (a number where
//! a string was expected, a variable Datadog left unrendered) and refuse with a message
//! naming the field only what they cannot read at all.

pub mod alertmanager;
pub mod datadog;
pub mod loggly;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use tocsin_model::event::{FieldError, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_MESSAGE_BYTES};
use tocsin_model::json::kind;
use tocsin_model::template::check_label_key;

/// Largest webhook body (Datadog, Loggly): their payloads are a few KiB.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Why a payload was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdaptError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// A field that is required, or present but unreadable.
    #[error("{field}: {error}")]
    Field {
        /// Path of the field, such as `transition` or `[3].labels`.
        field: String,
        /// What is wrong and how to fix it.
        error: String,
    },
    /// A query parameter the adapter cannot use.
    #[error("query parameter \"{name}\": {error}")]
    Option {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        error: String,
    },
}

impl AdaptError {
    fn field(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            error: error.into(),
        }
    }

    fn option(name: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Option {
            name: name.into(),
            error: error.into(),
        }
    }
}

impl From<AdaptError> for FieldError {
    fn from(e: AdaptError) -> Self {
        match e {
            AdaptError::Field { field, error } => FieldError { field, error },
            other => FieldError::new("", other.to_string()),
        }
    }
}

/// Parses a JSON body into an object, refusing anything else with a clear message.
fn object(body: &[u8]) -> Result<Map<String, Value>, AdaptError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(AdaptError::field(
            "",
            format!("expected a JSON object, got {}", kind(&other)),
        )),
        Err(e) => Err(AdaptError::Malformed(e.to_string())),
    }
}

/// A text field read leniently: numbers and booleans become their text, and an empty
/// string, `null` or an unrendered template variable (`$ALERT_ID`, `{{id}}`) count as
/// absent. An array or object is an error.
fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, AdaptError> {
    let value = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => {
            return Err(AdaptError::field(
                key,
                format!("expected text, got {}", kind(other)),
            ));
        }
    };
    if value.is_empty() || unrendered(&value) {
        Ok(None)
    } else {
        Ok(Some(value))
    }
}

/// Whether a value is a template variable its sender did not fill in.
fn unrendered(value: &str) -> bool {
    let dollar = value.strip_prefix('$').is_some_and(|name| {
        name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    });
    let braces = value.starts_with("{{") && value.ends_with("}}");
    dollar || braces
}

/// A point in time given as epoch milliseconds or seconds (a number or a numeric
/// string; values above 10^11 are milliseconds), or as RFC 3339 text.
fn instant(field: &str, value: &str) -> Result<OffsetDateTime, AdaptError> {
    let bad = || {
        AdaptError::field(
            field,
            format!("invalid time \"{value}\": expected epoch milliseconds or RFC 3339"),
        )
    };
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return Err(bad());
        }
        let nanos = if number > 1e11 {
            number * 1e6
        } else {
            number * 1e9
        };
        // `as` saturates; out-of-range values are refused by the constructor.
        return OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).map_err(|_| bad());
    }
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| bad())
}

/// Turns any text into a valid label key: characters outside `A-Z a-z 0-9 _ . - /`
/// become `_`, a leading digit or punctuation gets a `_` in front, and it is cut at 64
/// characters. `None` when nothing usable remains.
fn label_key(raw: &str) -> Option<String> {
    let mut key: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key.chars().all(|c| c == '_') {
        return None;
    }
    if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        key.insert(0, '_');
    }
    key.truncate(MAX_LABEL_KEY_LEN);
    check_label_key(&key).ok().map(|()| key)
}

/// Cuts a label value to what a label may hold: no control characters, at most 256
/// characters.
fn label_value(raw: &str) -> String {
    raw.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_VALUE_LEN)
        .collect()
}

/// Turns a free-text name into a valid monitor name: runs of characters outside
/// `A-Z a-z 0-9 _ . : / -` become one `_`, cut at 128 characters.
fn monitor_name(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() || "_.:/-".contains(c) {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_matches('_');
    name.chars()
        .take(tocsin_model::event::MAX_MONITOR_LEN)
        .collect::<String>()
}

/// A message built from parts, cut to the 16 KiB an event's message may hold.
#[derive(Debug, Default)]
struct Message {
    text: String,
    /// Whether the last thing added was a `name: value` line.
    in_lines: bool,
}

impl Message {
    /// Adds a paragraph (skipped when empty).
    fn paragraph(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(text);
        self.in_lines = false;
    }

    /// Adds a `name: value` line (skipped when the value is empty).
    fn line(&mut self, name: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        match (self.text.is_empty(), self.in_lines) {
            (true, _) => {}
            (false, true) => self.text.push('\n'),
            (false, false) => self.text.push_str("\n\n"),
        }
        self.text.push_str(name);
        self.text.push_str(": ");
        self.text.push_str(value);
        self.in_lines = true;
    }

    /// The message, cut at a character boundary with a marker when over the limit.
    fn finish(self) -> Option<String> {
        const CUT: &str = "\n[… cut by Tocsin: over 16 KiB]";
        let mut text = self.text;
        if text.is_empty() {
            return None;
        }
        if text.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES - CUT.len();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(CUT);
        }
        Some(text)
    }
}

/// Query parameters that are not an adapter's own options become context labels, so a
/// webhook URL can say which service and region it reports for
/// (`?token=…&service=bender&region=eu-west-1a`).
fn query_labels(
    query: &[(String, String)],
    reserved: &[&str],
) -> Result<BTreeMap<String, String>, AdaptError> {
    let mut labels = BTreeMap::new();
    for (name, value) in query {
        if reserved.contains(&name.as_str()) {
            continue;
        }
        check_label_key(name).map_err(|e| AdaptError::option(name, e))?;
        labels.insert(name.clone(), value.clone());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_milliseconds_seconds_or_rfc3339() {
        let ms = instant("date", "1763800000000").expect("ms");
        let s = instant("date", "1763800000").expect("s");
        let text = instant("date", "2025-11-22T08:26:40Z").expect("rfc3339");
        assert_eq!(ms, s);
        assert_eq!(ms, text);
        assert!(instant("date", "yesterday").is_err());
        assert!(instant("date", "-5").is_err());
        assert!(instant("date", "1e30").is_err());
    }

    #[test]
    fn unrendered_variables_count_as_absent() {
        let map =
            serde_json::json!({ "a": "$ALERT_ID", "b": "{{id}}", "c": "", "d": 42, "e": ["x"] });
        let map = map.as_object().expect("object");
        assert_eq!(text(map, "a"), Ok(None));
        assert_eq!(text(map, "b"), Ok(None));
        assert_eq!(text(map, "c"), Ok(None));
        assert_eq!(text(map, "d"), Ok(Some("42".into())));
        assert_eq!(text(map, "missing"), Ok(None));
        assert!(text(map, "e").is_err());
        // A price is not a variable.
        assert!(!unrendered("$5"));
    }

    #[test]
    fn names_become_valid_keys_and_monitors() {
        assert_eq!(label_key("env").as_deref(), Some("env"));
        assert_eq!(
            label_key("kube namespace").as_deref(),
            Some("kube_namespace")
        );
        assert_eq!(label_key("2fa").as_deref(), Some("_2fa"));
        assert_eq!(label_key("ö").as_deref(), None);
        assert_eq!(label_key(&"k".repeat(100)).map(|k| k.len()), Some(64));
        assert_eq!(
            monitor_name("IndexOutOfBounds Exception!"),
            "IndexOutOfBounds_Exception"
        );
        assert_eq!(monitor_name(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let mut message = Message::default();
        message.paragraph(&"é".repeat(20_000));
        let text = message.finish().expect("text");
        assert!(text.len() <= MAX_MESSAGE_BYTES);
        assert!(text.ends_with("over 16 KiB]"));
    }
}
