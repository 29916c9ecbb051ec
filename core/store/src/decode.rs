//! Column values back into domain values, for every SQL module: a value that no longer
//! parses is a corrupt row, never a panic.

use time::OffsetDateTime;

use tocsin_model::event::{Priority, Status};
use tocsin_model::rows::{HistoryOutcome, IncidentState, TimelineKind};

use crate::error::StoreError;

/// A Unix-millisecond column as a time.
pub(crate) fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

pub(crate) fn status(text: &str) -> Result<Status, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("status \"{text}\"")))
}

pub(crate) fn priority(text: &str) -> Result<Priority, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("priority \"{text}\"")))
}

pub(crate) fn state(text: &str) -> Result<IncidentState, StoreError> {
    IncidentState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("incident state \"{text}\"")))
}

pub(crate) fn time(ms: i64) -> Result<OffsetDateTime, StoreError> {
    from_millis(ms)
}

pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn history_outcome(text: &str) -> Result<HistoryOutcome, StoreError> {
    HistoryOutcome::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("history outcome \"{text}\"")))
}

pub(crate) fn timeline_kind(text: &str) -> Result<TimelineKind, StoreError> {
    TimelineKind::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("timeline kind \"{text}\"")))
}
