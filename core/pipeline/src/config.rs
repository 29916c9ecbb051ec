//! The pipeline's settings.

use tocsin_model::suppression::Policy;

/// Settings of the pipeline an operator may change.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Status changes within [`Config::flap_window_ms`] that make an alert flapping.
    pub flap_threshold: usize,
    /// The window flap detection counts changes in; a flapping alert that holds one
    /// status this long is stable again.
    pub flap_window_ms: i64,
    /// How long an incident whose alerts are all healthy waits before it resolves; a
    /// re-trigger meanwhile reopens it.
    pub grace_ms: i64,
    /// Grouping window when neither the event nor its service sets one.
    pub default_window_ms: i64,
    /// How long history and finished incidents are kept.
    pub retention_ms: i64,
    /// How often steady repeats' refreshes (`count`, `last_seen`, `last_event`) are
    /// written. Between writes they live in memory: a crash may lose up to this much of
    /// them, plus the three quarters of it their writes are spread over (never a status
    /// change, a drop or an incident), and a graceful stop writes them all. Writing every
    /// repeat at once would make the refreshes a large share of the pipeline's work (see
    /// docs/benchmarks.md).
    pub refresh_every_ms: i64,
    /// Suppression guards.
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            flap_threshold: 5,
            flap_window_ms: 30 * 60_000,
            grace_ms: 5 * 60_000,
            default_window_ms: 30 * 60_000,
            retention_ms: 14 * 86_400_000,
            refresh_every_ms: 2_000,
            policy: Policy::default(),
        }
    }
}
