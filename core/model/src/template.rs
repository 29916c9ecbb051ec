//! Templates such as `${alert.monitor}` and `${context.region}`, parsed and checked when
//! an event is accepted so that a misspelt name is a 400 at ingest, never an empty string
//! in a grouping key at 03:00.

use std::collections::BTreeMap;

/// The alert fields a template may name.
const ALERT_FIELDS: [&str; 5] = ["monitor", "status", "since", "message", "count"];

/// A parsed template: literal text and the names it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'a> {
    parts: Vec<Part<'a>>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text copied as is.
    Literal(&'a str),
    /// A field of the alert, such as `monitor`.
    Alert(&'a str),
    /// A context label, such as `region`.
    Context(&'a str),
}

/// Why a template is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` without its closing `}`.
    #[error("unclosed template at byte {0}: \"${{\" needs a closing \"}}\"")]
    Unclosed(usize),
    /// A name that is neither an alert field nor a label of this event.
    #[error("{0}")]
    UnknownName(String),
}

impl<'a> Template<'a> {
    /// Splits `text` into literals and `${…}` references; the names are checked for
    /// syntax here and against an event by [`Template::check`].
    pub fn parse(text: &'a str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(&rest[..start]));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or(TemplateError::Unclosed(offset + start))?;
            let name = &after[..end];
            parts.push(match name.split_once('.') {
                Some(("alert", field)) if ALERT_FIELDS.contains(&field) => Part::Alert(field),
                Some(("context", label)) if check_label_key(label).is_ok() => Part::Context(label),
                _ => {
                    return Err(TemplateError::UnknownName(format!(
                        "unknown template name \"{name}\": use ${{alert.<{}>}} or ${{context.<label>}}",
                        ALERT_FIELDS.join("|")
                    )));
                }
            });
            let consumed = start + 2 + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest));
        }
        Ok(Self { parts })
    }

    /// The template's pieces in order.
    pub fn parts(&self) -> &[Part<'a>] {
        &self.parts
    }

    /// Refuses a `${context.<label>}` whose label the event does not carry: rendering it
    /// would silently give an empty string.
    pub fn check(&self, context: &BTreeMap<String, String>) -> Result<(), TemplateError> {
        for part in &self.parts {
            if let Part::Context(label) = part
                && !context.contains_key(*label)
            {
                return Err(TemplateError::UnknownName(format!(
                    "unknown template name \"context.{label}\": this event has no label \"{label}\" (it has: {})",
                    if context.is_empty() {
                        "none".to_owned()
                    } else {
                        context
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
        }
        Ok(())
    }
}

/// Longest label key, in characters.
pub const MAX_LABEL_KEY_LEN: usize = 64;

/// Checks a label key: 1-64 characters, a letter or `_` first, then letters, digits and
/// `_ . - /` (so `app.kubernetes.io/name` works and `:` stays free as a separator).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let len = key.chars().count();
    if len == 0 || len > MAX_LABEL_KEY_LEN {
        return Err(format!(
            "invalid label key \"{key}\": must be 1-{} characters, got {len}",
            MAX_LABEL_KEY_LEN
        ));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!(
            "invalid label key \"{key}\": spaces are not allowed"
        ));
    }
    let first = key.chars().next().unwrap_or('_');
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "invalid label key \"{key}\": it must start with a letter or _"
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "invalid label key \"{key}\": {bad:?} is not allowed, use A-Z a-z 0-9 _ . - /"
        ));
    }
    Ok(())
}

/// Writes a label key as it appears in a field path: bare when it is a plain name,
/// quoted otherwise (`context."Reg ion"`).
pub fn quote_label(key: &str) -> String {
    if check_label_key(key).is_ok() {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_and_names() {
        let t = Template::parse("svc-${context.service}/${alert.monitor}!").expect("parses");
        assert_eq!(
            t.parts(),
            &[
                Part::Literal("svc-"),
                Part::Context("service"),
                Part::Literal("/"),
                Part::Alert("monitor"),
                Part::Literal("!")
            ]
        );
    }

    #[test]
    fn refuses_unclosed_and_unknown_names() {
        assert_eq!(
            Template::parse("a ${alert.monitor"),
            Err(TemplateError::Unclosed(2))
        );
        for bad in [
            "${monitor}",
            "${alert.owner}",
            "${context.}",
            "${context.a b}",
            "${}",
        ] {
            assert!(
                matches!(Template::parse(bad), Err(TemplateError::UnknownName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_label_the_event_lacks_is_refused() {
        let context = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
        let t = Template::parse("${context.region}-${context.zone}").expect("parses");
        let err = t.check(&context).expect_err("zone is missing").to_string();
        assert!(err.contains("no label \"zone\" (it has: region)"), "{err}");
    }
}
