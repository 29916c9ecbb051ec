//! The service catalogue: what Tocsin knows about each service besides its events —
//! who owns it, whether customers see it, which of its instances are retired, and the
//! filters, grouping and alerting its events get when they do not say.
//!
//! Events name their service with the `service` label; the catalogue is keyed by that
//! name, and an entry applies only to its owning team's events: a team cannot retire,
//! demote or route another team's alerts by naming their service.

use std::collections::BTreeSet;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::event::{Alerting, Event, FieldError, FilterSpec, Grouping};

/// Most retired instances one service lists.
const MAX_RETIRED: usize = 10_000;

/// Where a service is in its life: only `production` services page at `high`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Still being built or tried: its `high` alerts are lowered to `low`.
    Testing,
    /// Serving for real.
    #[default]
    Production,
}

/// A service's settings, as `PUT /v1/services/{name}` takes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceSpec {
    /// The owning team; a team token may leave it out (its own team is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub team: Option<String>,
    /// Whether customers notice when it fails; when `false`, `high` becomes `low`.
    #[serde(default = "yes")]
    pub customer_facing: bool,
    /// `testing` lowers `high` to `low`; `production` (the default) does not.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Instances (the `instance` or `host` label) whose events are dropped.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[schema(max_items = 10_000)]
    pub retired: BTreeSet<String>,
    /// Filters for events of this service that list none of their own.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "objects"
    )]
    pub filters: Vec<FilterSpec>,
    /// Grouping for events of this service that set none of their own.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "object_or_null"
    )]
    pub grouping: Option<Grouping>,
    /// Alerting settings; an event's own fields take precedence, one by one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "object_or_null"
    )]
    pub alerting: Option<Alerting>,
}

/// Reads an optional setting only from an object (or `null`). Serde's derived structs
/// also read a sequence of their fields in order, so without this `grouping: [null,
/// null]` would be read as a grouping of defaults and accepted.
fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value @ serde_json::Value::Object(_) => {
            T::deserialize(value).map(Some).map_err(de::Error::custom)
        }
        other => Err(de::Error::custom(format!(
            "expected an object of settings, got {}",
            crate::json::kind(&other)
        ))),
    }
}

/// Reads a list whose every item is an object, for the same reason as
/// [`object_or_null`]: `filters: [["state-change"]]` is not a filter.
fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                item @ serde_json::Value::Object(_) => {
                    T::deserialize(item).map_err(|e| de::Error::custom(format!("item {i}: {e}")))
                }
                other => Err(de::Error::custom(format!(
                    "item {i}: expected an object, got {}",
                    crate::json::kind(&other)
                ))),
            })
            .collect(),
        other => Err(de::Error::custom(format!(
            "expected a list of objects, got {}",
            crate::json::kind(&other)
        ))),
    }
}

fn yes() -> bool {
    true
}

/// A service as stored.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Service {
    /// The `service` label value it describes.
    pub name: String,
    /// Its settings (with `team` always set).
    #[serde(flatten)]
    pub spec: ServiceSpec,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Who last changed it (token id).
    pub updated_by: String,
}

impl ServiceSpec {
    /// Checks the settings as an event's would be checked. Templates cannot be checked
    /// against labels here (the events are not known yet); a label a service default
    /// names but an event lacks renders as `-`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(team) = &self.team
            && let Err(e) = crate::team::check_team_name(team)
        {
            errors.push(FieldError::new("team", e));
        }
        if self.retired.len() > MAX_RETIRED {
            errors.push(FieldError::new(
                "retired",
                format!(
                    "at most {MAX_RETIRED} retired instances, got {}",
                    self.retired.len()
                ),
            ));
        }
        for instance in &self.retired {
            if instance.is_empty()
                || instance.chars().count() > crate::event::MAX_LABEL_VALUE_LEN
                || instance.contains('\0')
            {
                errors.push(FieldError::new(
                    "retired",
                    format!(
                        "invalid instance \"{}\": 1-256 characters, no NUL",
                        instance.escape_debug()
                    ),
                ));
            }
        }
        // The same rules as an event's, with a probe event that carries every label
        // (so only label presence goes unchecked).
        let probe = Event {
            alert: crate::event::Alert {
                monitor: "service-defaults".into(),
                status: crate::event::Status::Healthy,
                since: None,
                message: None,
                count: None,
            },
            context: Default::default(),
            filters: self.filters.clone(),
            grouping: self.grouping.clone(),
            alerting: self.alerting.clone(),
            plugins: Vec::new(),
        };
        if let Err(found) = probe.validate() {
            errors.extend(
                found
                    .into_iter()
                    .filter(|e| !e.error.contains("this event has no label")),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether `high` alerts of this service are lowered to `low`, and why.
    pub fn lowers_priority(&self) -> Option<&'static str> {
        if !self.customer_facing {
            Some("service is not customer-facing")
        } else if self.lifecycle == Lifecycle::Testing {
            Some("service is in testing")
        } else {
            None
        }
    }

    /// Whether the instance an event comes from is retired.
    pub fn is_retired(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        !self.retired.is_empty()
            && ["instance", "host"]
                .iter()
                .any(|key| labels.get(*key).is_some_and(|v| self.retired.contains(v)))
    }
}
