//! What the core needs of team plugins (`docs/plugins.md`), without knowing how they run:
//! the three plugin kinds as traits ([`Transformer`], [`Filter`], [`Collector`]), the
//! [`Registry`] the API manages them through, and the values that cross between them.
//!
//! `tocsin-host` implements all of them with wasmtime. [`Disabled`] stands in where no
//! runtime is wired (core-only tests): every call says plugins are not available.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::event::{Event, Priority, Status};

/// The three kinds of plugin, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Raw request → events (`POST /v1/ingest/{plugin}`).
    Transformer,
    /// Batch of events → keep / drop / replace each (static pre-filter).
    Filter,
    /// Incident → sections of context.
    Collector,
}

impl Kind {
    /// The name used in the API, the store and the WIT world.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transformer => "transformer",
            Self::Filter => "filter",
            Self::Collector => "collector",
        }
    }

    /// Reads a kind name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "transformer" => Some(Self::Transformer),
            "filter" => Some(Self::Filter),
            "collector" => Some(Self::Collector),
            _ => None,
        }
    }
}

/// A plugin name: 1-64 characters of `[a-z0-9-]`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin name \"{}\": use 1-64 characters of a-z, 0-9 and -, starting with a letter",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// The raw request a transformer reads.
#[derive(Debug, Clone, Default)]
pub struct RawInput {
    /// The body as received.
    pub body: Bytes,
    /// Its `Content-Type`, empty when absent.
    pub content_type: String,
    /// Headers, names lower-case, Tocsin's own credentials removed.
    pub headers: Vec<(String, String)>,
}

/// One event of a filter batch.
#[derive(Debug, Clone, Copy)]
pub struct FilterInput<'a> {
    /// The event as accepted.
    pub event: &'a Event,
    /// When Tocsin accepted it, unix milliseconds.
    pub received_at: i64,
}

/// A filter's decision on one event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "value")]
pub enum Verdict {
    /// Pass it on unchanged.
    Keep,
    /// Stop it, for this reason.
    Drop(String),
    /// Pass this event on in its place.
    Replace(Box<Event>),
}

/// One alert of an incident, as a collector sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentAlert {
    /// The check's name.
    pub monitor: String,
    /// Its status now.
    pub status: Status,
    /// Its labels.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The latest message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The incident a collector gathers context for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentContext {
    /// Incident id.
    pub id: String,
    /// Owning team.
    pub team: String,
    /// The rendered grouping key.
    pub key: String,
    /// Title.
    pub title: String,
    /// `open`, `resolving`, `resolved` or `closed`.
    pub state: String,
    /// Its priority.
    pub priority: Priority,
    /// When it opened, unix milliseconds.
    pub opened_at: i64,
    /// Its alerts.
    #[serde(default)]
    pub alerts: Vec<IncidentAlert>,
}

/// A section of context for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// CommonMark body.
    pub markdown: String,
}

/// Why one plugin call failed. The call fails alone: the host and other plugins go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It ran past its deadline and was stopped.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// It asked for more memory than its limit.
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(u64),
    /// It trapped (a panic, an unreachable, a stack overflow, …).
    #[error("trapped: {0}")]
    Trap(String),
    /// It returned an error of its own.
    #[error("returned an error: {0}")]
    Error(String),
    /// Its output broke a rule (too large, wrong number of verdicts, an invalid event).
    #[error("invalid output: {0}")]
    Output(String),
}

impl Failure {
    /// The kind of failure, as metrics count it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Memory(_) => "memory",
            Self::Trap(_) => "trap",
            Self::Error(_) => "error",
            Self::Output(_) => "output",
        }
    }
}

/// A plugin call or registry operation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin of that name belongs to the team.
    #[error("no plugin \"{0}\"")]
    NotFound(String),
    /// The plugin exists but is another kind.
    #[error("plugin \"{name}\" is a {actual}, not a {wanted}")]
    WrongKind {
        /// Plugin name.
        name: String,
        /// What it is.
        actual: &'static str,
        /// What the caller needs.
        wanted: &'static str,
    },
    /// The call ran and failed.
    #[error("plugin \"{plugin}\" {failure}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// What went wrong.
        failure: Failure,
    },
    /// An upload was refused: what is wrong with it, for the uploader.
    #[error("{0}")]
    Rejected(String),
    /// An upload is larger than allowed.
    #[error("the component is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Bytes sent.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// No runtime is wired into this process.
    #[error("plugins are not available in this process")]
    Unavailable,
    /// Storing or loading failed; the real error is in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One stored version of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// 1, 2, … in upload order.
    pub version: i64,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// When it was uploaded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: time::OffsetDateTime,
    /// Token id that uploaded it.
    pub uploaded_by: String,
}

/// The last failure of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LastError {
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: time::OffsetDateTime,
    /// `timeout`, `memory`, `trap`, `error` or `output`.
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// What a plugin has done since this process started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Calls made.
    pub calls: u64,
    /// Events handed to it (filter batches, transformer outputs count as out).
    pub events_in: u64,
    /// Events it let through or produced.
    pub events_out: u64,
    /// Events it dropped (filters).
    pub events_dropped: u64,
    /// Failed calls by kind (`timeout`, `memory`, `trap`, `error`, `output`).
    pub errors: BTreeMap<String, u64>,
    /// Call durations: the count of calls at or under each bound, in microseconds
    /// (`"+Inf"` counts all), Prometheus-style cumulative buckets.
    pub duration_us: BTreeMap<String, u64>,
    /// The most recent failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// A plugin as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    /// Name, unique within the team.
    pub name: String,
    /// Owning team.
    pub team: String,
    /// Its kind.
    pub kind: Kind,
    /// The version in use.
    pub active_version: i64,
    /// Every stored version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Keys in its key/value state.
    pub state_keys: u64,
    /// What it has done since this process started.
    pub stats: Stats,
}

/// What a dry run returns: the plugin's output, and the log lines it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestRun {
    /// A transformer's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    /// A filter's verdicts, one per event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<Vec<Verdict>>,
    /// A collector's sections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sections: Option<Vec<Section>>,
    /// What it logged (level and message), stdout and stderr included.
    pub log: Vec<String>,
    /// How long the call took, microseconds.
    pub duration_us: u64,
}

/// A sample input for a dry run, by kind.
#[derive(Debug, Clone)]
pub enum Sample {
    /// For a transformer: a raw request and its config.
    Transform(RawInput, String),
    /// For a filter: events (with their receipt time) and the filter's params.
    Filter(Vec<(Event, i64)>, String),
    /// For a collector: an incident and params.
    Collect(IncidentContext, String),
}

/// Runs a team's transformer plugin.
pub trait Transformer: Send + Sync {
    /// Turns a raw request into events. The events are not validated yet.
    fn transform(
        &self,
        team: &str,
        name: &str,
        input: RawInput,
        config: &str,
    ) -> Result<Vec<Event>, PluginError>;
}

/// Runs a team's filter plugin.
pub trait Filter: Send + Sync {
    /// Judges a batch; one verdict per event, in order.
    fn filter(
        &self,
        team: &str,
        name: &str,
        batch: &[FilterInput<'_>],
        config: &str,
    ) -> Result<Vec<Verdict>, PluginError>;
}

/// Runs a team's collector plugin.
pub trait Collector: Send + Sync {
    /// Gathers sections of context for an incident.
    fn collect(
        &self,
        team: &str,
        name: &str,
        incident: &IncidentContext,
        params: &str,
    ) -> Result<Vec<Section>, PluginError>;
}

/// Where plugins are uploaded, listed, rolled back and removed.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// The largest component accepted, in bytes.
    fn max_size(&self) -> usize;
    /// Validates, compiles and stores a component as the next version of a team's
    /// plugin, then swaps it in.
    async fn install(
        &self,
        team: &str,
        name: &str,
        kind: Kind,
        component: Bytes,
        actor: &str,
    ) -> Result<PluginInfo, PluginError>;
    /// A team's plugins (every team's when `None`).
    async fn list(&self, team: Option<&str>) -> Result<Vec<PluginInfo>, PluginError>;
    /// One plugin.
    async fn get(&self, team: &str, name: &str) -> Result<PluginInfo, PluginError>;
    /// Removes a plugin with its versions and state.
    async fn remove(&self, team: &str, name: &str) -> Result<(), PluginError>;
    /// Makes the version before the active one active again.
    async fn rollback(&self, team: &str, name: &str) -> Result<PluginInfo, PluginError>;
    /// Runs a plugin on a sample: no state is written, nothing is ingested.
    async fn test(&self, team: &str, name: &str, sample: Sample) -> Result<TestRun, PluginError>;
    /// Brings the plugins in use in line with the store, where another process may have
    /// uploaded, rolled back or removed one (the Lambda functions check before each
    /// batch); returns how many changed. A runtime that is the only writer has nothing
    /// to do.
    async fn refresh(&self) -> Result<usize, PluginError> {
        Ok(0)
    }
}

/// Everything a plugin runtime provides.
pub trait Plugins: Transformer + Filter + Collector + Registry {}

impl<T: Transformer + Filter + Collector + Registry> Plugins for T {}

/// No plugin runtime: every call answers [`PluginError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Disabled;

impl Transformer for Disabled {
    fn transform(&self, _: &str, _: &str, _: RawInput, _: &str) -> Result<Vec<Event>, PluginError> {
        Err(PluginError::Unavailable)
    }
}

impl Filter for Disabled {
    fn filter(
        &self,
        _: &str,
        _: &str,
        _: &[FilterInput<'_>],
        _: &str,
    ) -> Result<Vec<Verdict>, PluginError> {
        Err(PluginError::Unavailable)
    }
}

impl Collector for Disabled {
    fn collect(
        &self,
        _: &str,
        _: &str,
        _: &IncidentContext,
        _: &str,
    ) -> Result<Vec<Section>, PluginError> {
        Err(PluginError::Unavailable)
    }
}

#[async_trait::async_trait]
impl Registry for Disabled {
    fn max_size(&self) -> usize {
        0
    }
    async fn install(
        &self,
        _: &str,
        _: &str,
        _: Kind,
        _: Bytes,
        _: &str,
    ) -> Result<PluginInfo, PluginError> {
        Err(PluginError::Unavailable)
    }
    async fn list(&self, _: Option<&str>) -> Result<Vec<PluginInfo>, PluginError> {
        Ok(Vec::new())
    }
    async fn get(&self, _: &str, name: &str) -> Result<PluginInfo, PluginError> {
        Err(PluginError::NotFound(name.to_owned()))
    }
    async fn remove(&self, _: &str, name: &str) -> Result<(), PluginError> {
        Err(PluginError::NotFound(name.to_owned()))
    }
    async fn rollback(&self, _: &str, name: &str) -> Result<PluginInfo, PluginError> {
        Err(PluginError::NotFound(name.to_owned()))
    }
    async fn test(&self, _: &str, _: &str, _: Sample) -> Result<TestRun, PluginError> {
        Err(PluginError::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_checked() {
        assert!(check_name("nagios-v2").is_ok());
        for bad in ["", "Nagios", "2fast", "a b", "../x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
