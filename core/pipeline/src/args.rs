//! The pipeline's settings as command-line arguments and environment variables, shared
//! by `tocsin serve` and the Lambda functions (feature `args`).

use crate::config::Config;

/// Parses a duration argument such as `5m` into milliseconds, refusing zero.
pub fn duration(text: &str) -> Result<i64, String> {
    let d = tocsin_model::event::parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("duration \"{text}\" must be more than zero"));
    }
    i64::try_from(d.as_millis()).map_err(|_| format!("duration \"{text}\" is too long"))
}

/// The pipeline's settings (defaults as in `docs/pipeline.md`).
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Status changes within --flap-window that make an alert flapping.
    #[arg(long, env = "TOCSIN_FLAP_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    flap_threshold: u32,
    /// Window flap detection counts changes in; a flapping alert is stable again once it
    /// keeps one status this long.
    #[arg(long, env = "TOCSIN_FLAP_WINDOW", default_value = "30m", value_parser = duration)]
    flap_window: i64,
    /// How long an incident whose alerts are all healthy waits before it resolves.
    #[arg(long, env = "TOCSIN_RESOLVE_GRACE", default_value = "5m", value_parser = duration)]
    resolve_grace: i64,
    /// Grouping window when neither an event nor its service sets one.
    #[arg(long, env = "TOCSIN_GROUP_WINDOW", default_value = "30m", value_parser = duration)]
    group_window: i64,
    /// How long event history and finished incidents are kept.
    #[arg(long, env = "TOCSIN_RETENTION", default_value = "14d", value_parser = duration)]
    retention: i64,
    /// How often steady repeats refresh their alert's `count`/`last_seen` in the database
    /// (status changes are written at once), spread over three quarters of the interval;
    /// a crash may lose up to 1.75 times this much of them.
    #[arg(long, env = "TOCSIN_STEADY_REFRESH", default_value = "2s", value_parser = duration)]
    steady_refresh: i64,
    /// Longest suppression allowed.
    #[arg(long, env = "TOCSIN_SUPPRESSION_MAX_DURATION", default_value = "7d", value_parser = duration)]
    suppression_max_duration: i64,
    /// Largest share (0-1) of known alerts one suppression may match unless an admin forces it.
    #[arg(long, env = "TOCSIN_SUPPRESSION_MAX_SHARE", default_value_t = 0.10)]
    suppression_max_share: f64,
}

impl PipelineArgs {
    /// The settings these arguments describe.
    pub fn config(&self) -> Result<Config, String> {
        if !(0.0..=1.0).contains(&self.suppression_max_share) {
            return Err(format!(
                "--suppression-max-share must be between 0 and 1, got {}",
                self.suppression_max_share
            ));
        }
        Ok(Config {
            flap_threshold: self.flap_threshold as usize,
            flap_window_ms: self.flap_window,
            grace_ms: self.resolve_grace,
            default_window_ms: self.group_window,
            retention_ms: self.retention,
            refresh_every_ms: self.steady_refresh,
            policy: tocsin_model::suppression::Policy {
                max_duration: std::time::Duration::from_millis(
                    self.suppression_max_duration as u64,
                ),
                max_share: self.suppression_max_share,
                ..tocsin_model::suppression::Policy::default()
            },
        })
    }
}
