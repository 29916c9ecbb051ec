//! Suppressions (`docs/pipeline.md#suppressions`): a team's statement that some alerts
//! are expected for a while, such as during maintenance, so the dynamic pre-filter drops
//! them with the suppression's id instead of paging anyone.
//!
//! A [`Draft`] is what an API client writes; [`Draft::validate`] refuses a draft that
//! would silence too much or too long and compiles its targets into a [`Matcher`], which
//! the pipeline runs against every alert. The one rule that needs the store, the share of
//! known alerts a draft would match, is the caller's: it counts matches with the
//! [`Matcher`] and asks [`check_share`]. The `lifecycle` module creates, moves and ends
//! suppressions behind these rules and the guards on who may do what.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{FieldError, MAX_LABEL_VALUE_LEN, MAX_LABELS};
use crate::template::{check_label_key, quote_label};

pub mod lifecycle;

/// Most targets on one suppression.
pub const MAX_TARGETS: usize = 100;
/// Most labels on one target: every context label an alert can carry, plus `monitor`.
pub const MAX_TARGET_LABELS: usize = MAX_LABELS + 1;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most metadata keys.
pub const MAX_METADATA_KEYS: usize = 32;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// Longest metadata value, in characters of its JSON form.
pub const MAX_METADATA_VALUE_LEN: usize = 1024;
/// Compiled size a target's regex may reach; a pattern such as `\w{200}` (Unicode classes
/// expand) is refused instead of costing megabytes per suppression in every pipeline
/// worker.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A suppression as an API client writes it (JSON or YAML, blueprint field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Draft {
    /// Why the alerts are expected, 1-1024 characters, not only white space.
    #[schema(
        max_length = 1024,
        pattern = r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub description: String,
    /// When the suppression starts.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: OffsetDateTime,
    /// When the suppression ends by itself; after `startTime`, within the policy maximum.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub end_time: OffsetDateTime,
    /// Free-form notes (team, engineer, ticket, …): at most 32 keys, each value at most
    /// 1024 characters as JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Label sets; an alert is suppressed when it matches any of them. A value starting
    /// with `~` is a fully anchored regex, and each target needs one exact label.
    #[schema(min_items = 1, max_items = 100)]
    pub targets: Vec<BTreeMap<String, String>>,
}

/// Limits an operator sets on suppressions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Longest a suppression may last (default 7 days).
    pub max_duration: Duration,
    /// Largest share of known alerts a draft may match without an admin forcing it
    /// (default 0.10, that is 10 %).
    pub max_share: f64,
    /// A draft matching at most this many alerts passes the share guard whatever the
    /// fleet's size (default 10): on a small fleet every suppression is a large share.
    pub always_allowed: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(7 * 86_400),
            max_share: 0.10,
            always_allowed: 10,
        }
    }
}

/// Compiled targets: what the pipeline matches alerts with.
#[derive(Debug, Clone)]
pub struct Matcher {
    targets: Vec<Target>,
}

/// One target's labels, exact ones first so that most alerts are turned away by a string
/// comparison before any regex runs.
type Target = Vec<(String, Pattern)>;

/// What one label of a target asks of the alert's value.
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    /// Anchored at both ends.
    Regex(regex::Regex),
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == value,
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

impl Draft {
    /// Checks every rule of `docs/pipeline.md#suppressions` except the share of known
    /// alerts (see [`check_share`]) and compiles the targets; reports every problem, each
    /// with the path of its field (`description`, `endTime`, `targets[1]`,
    /// `targets[0].monitor`).
    pub fn validate(&self, policy: &Policy) -> Result<Matcher, Vec<FieldError>> {
        let mut errors = Vec::new();
        self.check_description(&mut errors);
        self.check_times(policy, &mut errors);
        self.check_metadata(&mut errors);
        let targets = self.check_targets(&mut errors);
        if errors.is_empty() {
            Ok(Matcher { targets })
        } else {
            Err(errors)
        }
    }

    fn check_description(&self, errors: &mut Vec<FieldError>) {
        let len = self.description.chars().count();
        if self.description.trim().is_empty() {
            errors.push(error(
                "description",
                "description must not be empty: say why these alerts are expected",
            ));
        } else if len > MAX_DESCRIPTION_LEN {
            errors.push(error(
                "description",
                format!(
                    "description is {len} characters, at most {MAX_DESCRIPTION_LEN} are allowed"
                ),
            ));
        }
    }

    fn check_times(&self, policy: &Policy, errors: &mut Vec<FieldError>) {
        // Times are kept in UTC and written back as RFC 3339, which has years 0000-9999
        // only: `0000-01-01T00:00:00+00:01` is in year -1 once in UTC.
        let mut unwritable = false;
        for (field, at) in [("startTime", self.start_time), ("endTime", self.end_time)] {
            if at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).is_err() {
                unwritable = true;
                errors.push(error(
                    field,
                    format!("{field} must be in UTC years 0000 to 9999"),
                ));
            }
        }
        if unwritable {
            return;
        }
        if self.end_time <= self.start_time {
            errors.push(error(
                "endTime",
                format!(
                    "endTime {} must be after startTime {}",
                    rfc3339(self.end_time),
                    rfc3339(self.start_time)
                ),
            ));
            return;
        }
        // Positive here, so the conversion only fails on a span no policy allows anyway.
        let lasts = Duration::try_from(self.end_time - self.start_time).unwrap_or(Duration::MAX);
        if lasts > policy.max_duration {
            errors.push(error(
                "endTime",
                format!(
                    "the suppression lasts {}, longer than the maximum of {}: end it sooner",
                    format_duration(lasts),
                    format_duration(policy.max_duration)
                ),
            ));
        }
    }

    fn check_metadata(&self, errors: &mut Vec<FieldError>) {
        if self.metadata.len() > MAX_METADATA_KEYS {
            errors.push(error(
                "metadata",
                format!(
                    "metadata has {} keys, at most {MAX_METADATA_KEYS} are allowed",
                    self.metadata.len()
                ),
            ));
        }
        for (key, value) in &self.metadata {
            let field = || format!("metadata.{}", quote_label(key));
            let key_len = key.chars().count();
            if key_len == 0 || key_len > MAX_METADATA_KEY_LEN {
                errors.push(error(
                    field(),
                    format!(
                        "metadata key {key:?} must be 1-{MAX_METADATA_KEY_LEN} characters, got {key_len}"
                    ),
                ));
            }
            let value_len = value.to_string().chars().count();
            if value_len > MAX_METADATA_VALUE_LEN {
                errors.push(error(
                    field(),
                    format!(
                        "metadata value is {value_len} characters as JSON, at most {MAX_METADATA_VALUE_LEN} are allowed"
                    ),
                ));
            }
        }
    }

    /// Checks the targets and returns them compiled; the result is only used when no
    /// error was found.
    fn check_targets(&self, errors: &mut Vec<FieldError>) -> Vec<Target> {
        if self.targets.is_empty() {
            errors.push(error(
                "targets",
                "a suppression needs at least one target, such as { service: bender, region: eu-west-1a }",
            ));
        } else if self.targets.len() > MAX_TARGETS {
            errors.push(error(
                "targets",
                format!(
                    "{} targets, at most {MAX_TARGETS} are allowed: split the suppression",
                    self.targets.len()
                ),
            ));
        }
        // Beyond the limit the draft is refused anyway: compiling more regexes would only
        // let an oversized body buy CPU time.
        self.targets
            .iter()
            .take(MAX_TARGETS)
            .enumerate()
            .map(|(i, target)| check_target(i, target, errors))
            .collect()
    }
}

fn check_target(
    i: usize,
    target: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Target {
    let field = format!("targets[{i}]");
    if target.is_empty() {
        errors.push(error(
            &field,
            format!(
                "target {i} is empty and would match every alert: add at least one exact label such as service=bender"
            ),
        ));
        return Vec::new();
    }
    if target.len() > MAX_TARGET_LABELS {
        errors.push(error(
            &field,
            format!(
                "target {i} has {} labels, at most {MAX_TARGET_LABELS} are allowed (an alert has at most {MAX_LABELS} labels and its monitor)",
                target.len()
            ),
        ));
        return Vec::new();
    }
    if target.values().all(|value| value.starts_with('~')) {
        errors.push(error(
            &field,
            format!(
                "target {i} has only regex labels: add at least one exact label such as service=bender"
            ),
        ));
    }
    let mut compiled = Vec::with_capacity(target.len());
    for (key, value) in target {
        let field = || format!("{field}.{}", quote_label(key));
        if let Err(e) = check_label_key(key) {
            errors.push(error(field(), e));
        }
        let len = value.chars().count();
        if len > MAX_LABEL_VALUE_LEN {
            errors.push(error(
                field(),
                format!(
                    "value for \"{key}\" is {len} characters, at most {MAX_LABEL_VALUE_LEN} are allowed"
                ),
            ));
            continue;
        }
        if value.is_empty() {
            errors.push(error(
                field(),
                format!(
                    "value for \"{key}\" is empty: give the exact value to match, or a regex starting with ~"
                ),
            ));
            continue;
        }
        match compile_pattern(value) {
            Ok(Pattern::Regex(regex)) if regex.is_match("") => errors.push(error(
                field(),
                format!(
                    "regex \"{value}\" for \"{key}\" matches the empty string, so it matches far too much: make it require at least one character"
                ),
            )),
            Ok(pattern) => compiled.push((key.clone(), pattern)),
            Err(e) => errors.push(error(field(), format!("{e} (label \"{key}\")"))),
        }
    }
    sort_exact_first(&mut compiled);
    compiled
}

impl Matcher {
    /// Compiles targets alone, for suppressions loaded from the store that were validated
    /// when written; a regex that no longer compiles is an error, never a panic.
    pub fn compile(targets: &[BTreeMap<String, String>]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            let mut labels = Vec::with_capacity(target.len());
            for (key, value) in target {
                match compile_pattern(value) {
                    Ok(pattern) => labels.push((key.clone(), pattern)),
                    Err(e) => errors.push(error(format!("targets[{i}].{}", quote_label(key)), e)),
                }
            }
            sort_exact_first(&mut labels);
            compiled.push(labels);
        }
        if errors.is_empty() {
            Ok(Self { targets: compiled })
        } else {
            Err(errors)
        }
    }

    /// True when any target matches the alert: every label of the target equals the
    /// alert's (`monitor` is the alert's monitor, any other key a context label), a `~`
    /// value being a fully anchored regex; a label the alert lacks never matches.
    pub fn matches(&self, monitor: &str, labels: &BTreeMap<String, String>) -> bool {
        self.targets.iter().any(|target| {
            // An empty target (only possible from a store written by hand) must not
            // suppress everything.
            !target.is_empty()
                && target.iter().all(|(key, pattern)| {
                    let value = if key == "monitor" {
                        Some(monitor)
                    } else {
                        labels.get(key).map(String::as_str)
                    };
                    value.is_some_and(|value| pattern.matches(value))
                })
        })
    }
}

/// The share guard: refuses a draft that matches more than `policy.max_share` of the
/// `known` alerts, with a message that names both counts and says how to proceed.
pub fn check_share(matched: usize, known: usize, policy: &Policy) -> Result<(), String> {
    if known == 0 || matched <= policy.always_allowed {
        return Ok(());
    }
    // Division, not multiplication, so that exactly the maximum (1 of 10) is allowed.
    let share = matched as f64 / known as f64;
    if share > policy.max_share {
        return Err(format!(
            "the suppression would match {matched} of {known} known alerts ({:.1}%), more than the maximum of {:.1}%: narrow its targets, or an admin can pass force=true",
            share * 100.0,
            policy.max_share * 100.0
        ));
    }
    Ok(())
}

/// Compiles one target value: exact, or a regex after `~` anchored at both ends.
fn compile_pattern(value: &str) -> Result<Pattern, String> {
    let Some(pattern) = value.strip_prefix('~') else {
        return Ok(Pattern::Exact(value.to_owned()));
    };
    anchored_regex(pattern)
        .map(Pattern::Regex)
        .map_err(|e| format!("invalid regex \"{value}\": {e}"))
}

/// Compiles `pattern` anchored at both ends, within the size limit of a target's regex.
/// The pattern is compiled alone first so that one such as `x)|(.+` cannot close the
/// anchoring group and match unanchored: alone, its parentheses do not balance.
pub fn anchored_regex(pattern: &str) -> Result<regex::Regex, String> {
    build_regex(pattern)?;
    build_regex(&format!("^(?:{pattern})$"))
}

fn build_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| regex_reason(&e))
}

/// The reason of a regex error in one line: a syntax error spans several (the pattern,
/// a caret, then `error: …`), and only the last says what is wrong.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .or_else(|| text.lines().map(str::trim).find(|line| !line.is_empty()))
        .unwrap_or("unknown regex error")
        .to_lowercase()
}

fn sort_exact_first(labels: &mut Target) {
    labels.sort_by_key(|(_, pattern)| matches!(pattern, Pattern::Regex(_)));
}

fn error(field: impl Into<String>, error: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        error: error.into(),
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// Writes a duration the way `parse_duration` reads it: `7d`, `1d12h`, `90m` → `1h30m`.
fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const BLUEPRINT: &str = r##"
description: Updating to Windows Server 2019 for Bender in eu-west-1a
startTime: 2021-02-14T00:00:00Z
endTime: 2021-02-14T07:00:00Z
metadata: { team: bender, engineer: bpannell, channel: "#bender-on-call", ticket: BENDER-42 }
targets:
  - { region: eu-west-1a, service: bender, monitor: InstanceHealth }
  - { region: eu-west-1a, service: bender-db, monitor: "~LeaderElection.*" }
"##;

    fn blueprint() -> Draft {
        serde_yaml_ng::from_str(BLUEPRINT).expect("blueprint parses")
    }

    fn draft(targets: &[&[(&str, &str)]]) -> Draft {
        Draft {
            targets: targets.iter().map(|t| labels(t)).collect(),
            ..blueprint()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn matcher(targets: &[&[(&str, &str)]]) -> Matcher {
        draft(targets)
            .validate(&Policy::default())
            .expect("valid draft")
    }

    /// Asserts that `draft` is refused with an error on `field` containing `needle`.
    fn assert_refused(draft: &Draft, field: &str, needle: &str) {
        let errors = draft
            .validate(&Policy::default())
            .expect_err("draft is refused");
        assert!(
            errors
                .iter()
                .any(|e| e.field == field && e.error.contains(needle)),
            "wanted {field} containing {needle:?}, got {errors:?}"
        );
    }

    #[test]
    fn blueprint_draft_in_yaml_validates_and_matches_the_right_alerts() {
        let draft = blueprint();
        assert_eq!(draft.start_time, datetime!(2021-02-14 00:00 UTC));
        assert_eq!(draft.end_time, datetime!(2021-02-14 07:00 UTC));
        assert_eq!(draft.metadata["channel"], "#bender-on-call");
        let matcher = draft.validate(&Policy::default()).expect("valid");

        let host = labels(&[
            ("region", "eu-west-1a"),
            ("service", "bender"),
            ("instance", "i-a0172ba72f5"),
        ]);
        let db = labels(&[("region", "eu-west-1a"), ("service", "bender-db")]);
        let other_region = labels(&[("region", "eu-west-1b"), ("service", "bender")]);
        assert!(
            matcher.matches("InstanceHealth", &host),
            "extra labels are fine"
        );
        assert!(matcher.matches("LeaderElectionTimeout", &db));
        assert!(matcher.matches("LeaderElection", &db));
        assert!(!matcher.matches("InstanceHealth", &db), "wrong service");
        assert!(
            !matcher.matches("LeaderElection", &host),
            "regex target is bender-db only"
        );
        assert!(!matcher.matches("InstanceHealth", &other_region));
        assert!(!matcher.matches("DiskFull", &host));
    }

    #[test]
    fn draft_round_trips_through_json_in_blueprint_names() {
        let json = serde_json::to_value(blueprint()).expect("serializes");
        assert_eq!(json["startTime"], "2021-02-14T00:00:00Z");
        assert_eq!(json["endTime"], "2021-02-14T07:00:00Z");
        let back: Draft = serde_json::from_value(json).expect("parses");
        assert_eq!(back, blueprint());
    }

    #[test]
    fn times_rfc3339_cannot_write_in_utc_are_refused() {
        // Year 0 one minute east of UTC is year -1 in UTC: listings could not write it.
        let yaml = BLUEPRINT
            .replace("2021-02-14T00:00:00Z", "0000-01-01T00:00:00+00:01")
            .replace("2021-02-14T07:00:00Z", "0000-01-01T02:00:00Z");
        let early: Draft = serde_yaml_ng::from_str(&yaml).expect("parses");
        assert_refused(&early, "startTime", "years 0000 to 9999");
        let yaml = BLUEPRINT.replace("2021-02-14T00:00:00Z", "0000-01-01T00:01:00+00:01");
        let midnight: Draft = serde_yaml_ng::from_str(&yaml).expect("parses");
        assert_refused(&midnight, "endTime", "lasts");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let yaml = BLUEPRINT.replace("endTime:", "end_time:");
        let err = serde_yaml_ng::from_str::<Draft>(&yaml).expect_err("snake case is not the API");
        assert!(
            err.to_string().contains("unknown field `end_time`"),
            "{err}"
        );

        let yaml = format!("{BLUEPRINT}owner: bender\n");
        let err = serde_yaml_ng::from_str::<Draft>(&yaml).expect_err("typo");
        assert!(err.to_string().contains("unknown field `owner`"), "{err}");
    }

    #[test]
    fn metadata_is_optional() {
        let yaml = BLUEPRINT
            .lines()
            .filter(|line| !line.starts_with("metadata"))
            .collect::<Vec<_>>()
            .join("\n");
        let draft: Draft = serde_yaml_ng::from_str(&yaml).expect("parses");
        assert!(draft.metadata.is_empty());
        assert!(draft.validate(&Policy::default()).is_ok());
    }

    #[test]
    fn suppression_with_only_regex_targets_is_refused() {
        let draft = draft(&[
            &[("service", "bender")],
            &[("service", "~bender.*"), ("monitor", "~Instance.+")],
        ]);
        assert_refused(
            &draft,
            "targets[1]",
            "target 1 has only regex labels: add at least one exact label such as service=bender",
        );
    }

    #[test]
    fn missing_empty_and_too_many_targets_are_refused() {
        assert_refused(&draft(&[]), "targets", "at least one target");
        assert_refused(
            &draft(&[&[("service", "bender")], &[]]),
            "targets[1]",
            "target 1 is empty",
        );
        let many: Vec<&[(&str, &str)]> = vec![&[("service", "bender")]; MAX_TARGETS + 1];
        assert_refused(&draft(&many), "targets", "101 targets, at most 100");
        let most: Vec<&[(&str, &str)]> = vec![&[("service", "bender")]; MAX_TARGETS];
        assert!(draft(&most).validate(&Policy::default()).is_ok());
    }

    #[test]
    fn regex_is_fully_anchored() {
        let m = matcher(&[&[("region", "eu-west-1a"), ("service", "~bender")]]);
        let with = |service: &str| labels(&[("region", "eu-west-1a"), ("service", service)]);
        assert!(m.matches("m", &with("bender")));
        assert!(!m.matches("m", &with("bender-db")));
        assert!(!m.matches("m", &with("old-bender")));

        let m = matcher(&[&[("region", "eu-west-1a"), ("service", "~bender.*")]]);
        assert!(m.matches("m", &with("bender-db")));
        assert!(!m.matches("m", &with("old-bender")));

        let m = matcher(&[&[("region", "eu-west-1a"), ("service", "~a|b")]]);
        assert!(
            !m.matches("m", &with("ab")),
            "alternation stays inside the anchors"
        );
    }

    #[test]
    fn regex_cannot_escape_its_anchors() {
        assert_refused(
            &draft(&[&[("region", "eu-west-1a"), ("service", "~x)|(.+")]]),
            "targets[0].service",
            "invalid regex \"~x)|(.+\"",
        );
    }

    #[test]
    fn label_the_alert_lacks_never_matches() {
        let m = matcher(&[&[("service", "bender"), ("zone", "~.+")]]);
        assert!(!m.matches("m", &labels(&[("service", "bender")])));
        assert!(m.matches("m", &labels(&[("service", "bender"), ("zone", "a")])));
    }

    #[test]
    fn monitor_key_matches_the_monitor() {
        let m = matcher(&[&[("monitor", "InstanceHealth")]]);
        assert!(m.matches("InstanceHealth", &BTreeMap::new()));
        assert!(!m.matches("DiskFull", &BTreeMap::new()));
        assert!(
            !m.matches("DiskFull", &labels(&[("monitor", "InstanceHealth")])),
            "monitor means the alert's monitor, not a context label"
        );
    }

    #[test]
    fn any_target_matching_is_enough() {
        let m = matcher(&[&[("service", "a")], &[("service", "b")]]);
        assert!(m.matches("m", &labels(&[("service", "b")])));
        assert!(!m.matches("m", &labels(&[("service", "c")])));
    }

    #[test]
    fn regex_matching_empty_string_is_refused() {
        for regex in ["~.*", "~a*", "~", "~(bender)?"] {
            assert_refused(
                &draft(&[&[("service", "bender"), ("instance", regex)]]),
                "targets[0].instance",
                "matches the empty string",
            );
        }
    }

    #[test]
    fn invalid_regex_is_refused_with_its_reason() {
        let errors = draft(&[&[("service", "bender"), ("monitor", "~Leader(")]])
            .validate(&Policy::default())
            .expect_err("unclosed group");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "targets[0].monitor");
        assert_eq!(
            errors[0].error,
            "invalid regex \"~Leader(\": unclosed group (label \"monitor\")"
        );
    }

    #[test]
    fn hostile_regex_is_refused_not_compiled_huge() {
        assert_refused(
            &draft(&[&[("service", "bender"), ("instance", r"~\w{1000}\w{1000}")]]),
            "targets[0].instance",
            "size limit",
        );
    }

    #[test]
    fn bad_keys_and_values_are_refused() {
        let long = "x".repeat(MAX_LABEL_VALUE_LEN + 1);
        let bad = draft(&[
            &[("service", "bender"), ("Reg ion", "eu")],
            &[("service", "bender"), ("instance", "")],
            &[("service", "bender"), ("instance", &long)],
        ]);
        assert_refused(
            &bad,
            "targets[0].\"Reg ion\"",
            "invalid label key \"Reg ion\": spaces are not allowed",
        );
        assert_refused(
            &bad,
            "targets[1].instance",
            "value for \"instance\" is empty",
        );
        assert_refused(&bad, "targets[2].instance", "257 characters, at most 256");
        let longest = "x".repeat(MAX_LABEL_VALUE_LEN);
        let ok = draft(&[&[("service", &longest)]]);
        assert!(ok.validate(&Policy::default()).is_ok());
    }

    #[test]
    fn end_before_start_is_refused() {
        let mut draft = blueprint();
        draft.end_time = draft.start_time;
        assert_refused(
            &draft,
            "endTime",
            "endTime 2021-02-14T00:00:00Z must be after startTime 2021-02-14T00:00:00Z",
        );
        draft.end_time = datetime!(2021-02-13 23:00 UTC);
        assert_refused(&draft, "endTime", "must be after startTime");
    }

    #[test]
    fn longer_than_policy_is_refused() {
        let mut draft = blueprint();
        draft.end_time = draft.start_time + time::Duration::days(7);
        assert!(
            draft.validate(&Policy::default()).is_ok(),
            "the maximum itself is allowed"
        );
        draft.end_time += time::Duration::hours(12);
        assert_refused(
            &draft,
            "endTime",
            "lasts 7d12h, longer than the maximum of 7d",
        );

        let policy = Policy {
            max_duration: Duration::from_secs(3 * 3600),
            ..Policy::default()
        };
        let errors = blueprint().validate(&policy).expect_err("7h > 3h");
        assert_eq!(errors[0].field, "endTime");
        assert!(
            errors[0]
                .error
                .contains("lasts 7h, longer than the maximum of 3h"),
            "{errors:?}"
        );
    }

    #[test]
    fn description_and_metadata_limits() {
        let mut draft = blueprint();
        draft.description = "  ".into();
        assert_refused(&draft, "description", "must not be empty");
        draft.description = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        assert_refused(&draft, "description", "1025 characters, at most 1024");
        draft.description = "é".repeat(MAX_DESCRIPTION_LEN);
        assert!(
            draft.validate(&Policy::default()).is_ok(),
            "characters, not bytes"
        );

        draft.metadata = (0..=MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), serde_json::Value::from(i)))
            .collect();
        assert_refused(&draft, "metadata", "33 keys, at most 32");
        draft.metadata = serde_json::Map::from_iter([(
            "notes".to_owned(),
            serde_json::Value::from("x".repeat(MAX_METADATA_VALUE_LEN - 2)),
        )]);
        assert!(
            draft.validate(&Policy::default()).is_ok(),
            "quotes count: exactly 1024"
        );
        draft.metadata["notes"] = serde_json::json!(["x".repeat(MAX_METADATA_VALUE_LEN)]);
        assert_refused(&draft, "metadata.notes", "1028 characters as JSON");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut draft = draft(&[&[("service", "~b.*")], &[]]);
        draft.description = String::new();
        draft.end_time = draft.start_time;
        let errors = draft.validate(&Policy::default()).expect_err("all wrong");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["description", "endTime", "targets[0]", "targets[1]"]
        );
    }

    #[test]
    fn share_guard() {
        let policy = Policy {
            always_allowed: 0,
            ..Policy::default()
        };
        assert_eq!(check_share(0, 0, &policy), Ok(()), "nothing known yet");
        assert_eq!(check_share(5, 0, &policy), Ok(()));
        assert_eq!(
            check_share(1, 10, &policy),
            Ok(()),
            "exactly 10 % is allowed"
        );
        assert_eq!(check_share(3, 30, &policy), Ok(()));
        let err = check_share(2, 10, &policy).expect_err("20 %");
        assert_eq!(
            err,
            "the suppression would match 2 of 10 known alerts (20.0%), more than the maximum of 10.0%: narrow its targets, or an admin can pass force=true"
        );
        let open = Policy {
            max_share: 1.0,
            ..policy
        };
        assert_eq!(check_share(10, 10, &open), Ok(()));
        let small_fleet = Policy::default();
        assert_eq!(
            check_share(2, 2, &small_fleet),
            Ok(()),
            "ten alerts or fewer always pass"
        );
        assert!(check_share(11, 20, &small_fleet).is_err());
    }

    #[test]
    fn compile_loads_stored_targets_and_reports_a_bad_regex() {
        let m = Matcher::compile(&blueprint().targets).expect("compiles");
        assert!(m.matches(
            "LeaderElectionLost",
            &labels(&[("region", "eu-west-1a"), ("service", "bender-db")])
        ));
        let errors =
            Matcher::compile(&[labels(&[("service", "bender")]), labels(&[("zone", "~[")])])
                .expect_err("bad regex");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "targets[1].zone");
        assert!(
            errors[0].error.starts_with("invalid regex \"~[\""),
            "{errors:?}"
        );
    }

    #[test]
    fn an_empty_stored_target_matches_nothing() {
        let m = Matcher::compile(&[BTreeMap::new()]).expect("compiles");
        assert!(!m.matches("m", &labels(&[("service", "bender")])));
    }

    #[test]
    fn durations_read_like_the_api_writes_them() {
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(86_401)), "1d1s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
