//! How long a failed delivery waits before its next attempt.

use std::time::Duration;

use tocsin_notify::config::Retry;

/// The wait before attempt `attempts + 1`: `first × 2^(attempts-1)`, at most `max`,
/// times `jitter` (0.8-1.2), and never less than the service's `Retry-After`.
pub fn backoff(retry: &Retry, attempts: u32, after: Option<Duration>, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = retry
        .first
        .saturating_mul(1u32 << exponent)
        .min(retry.max)
        .mul_f64(jitter.clamp(0.8, 1.2));
    base.max(after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let retry = Retry {
            attempts: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(backoff(&retry, 1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&retry, 2, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&retry, 4, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&retry, 20, None, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&retry, 1, None, 1.2), Duration::from_millis(1200));
        assert_eq!(
            backoff(&retry, 1, Some(Duration::from_secs(30)), 1.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(&retry, 1, None, 7.0),
            Duration::from_millis(1200),
            "jitter is clamped"
        );
    }
}
