//! How often and how long a delivery is retried: the budget and its `retry:` section.

use std::time::Duration;

use serde::Deserialize;

use tocsin_model::event::parse_duration;

use crate::config::error::ConfigError;

/// How often and how long a delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts before a delivery is dead.
    pub attempts: u32,
    /// Wait after the first failure; it doubles after each one.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// The `retry:` section as the file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RetryFile {
    attempts: Option<u32>,
    first: Option<String>,
    max: Option<String>,
}

impl RetryFile {
    /// The budget this section sets, each field it leaves out at its default.
    pub(super) fn read(self) -> Result<Retry, ConfigError> {
        let mut retry = Retry::default();
        let duration = |field: &str, text: Option<String>, default: Duration| match text {
            Some(text) => parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("retry.{field}: {e}"))),
            None => Ok(default),
        };
        retry.attempts = self.attempts.unwrap_or(retry.attempts).max(1);
        retry.first = duration("first", self.first, retry.first)?;
        retry.max = duration("max", self.max, retry.max)?;
        Ok(retry)
    }
}
