//! Time as every table stores it: unix milliseconds.

use time::OffsetDateTime;

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    millis(OffsetDateTime::now_utc())
}

/// A time as unix milliseconds.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as a time, or `None` when out of range.
pub fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Unix milliseconds as a time (the epoch if out of range).
pub fn from_millis_lossy(ms: i64) -> OffsetDateTime {
    from_millis(ms).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
