//! Loggly alert webhooks.
//!
//! Loggly sends a notification when a saved search matched more than its threshold in
//! a window, and nothing when it stops matching. Each notification therefore becomes two
//! events of one alert: unhealthy from the window's start, healthy at its end. While
//! Loggly keeps firing, each window re-triggers the incident within its grace period;
//! once Loggly goes quiet, the incident resolves after the grace period.
//!
//! Loggly writes `start_time` and `end_time` without a year or a zone (`Mar 17
//! 11:41:40`, in the account's time zone). The `from` and `until` of `search_link` are
//! the same instants in UTC with a year, so they are read first; the bare times are the
//! fallback, read in the zone the URL names (`?tz=-04:00`, default UTC) and in the year
//! that puts them nearest to the receipt time.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{
    AdaptError, Message, kind, label_key, label_value, monitor_name, object, query_labels, text,
};
use tocsin_model::event::{Alert, Alerting, Event, Priority, Status};

/// Query parameters the adapter reads itself; any other becomes a context label.
const RESERVED: &[&str] = &["token", "tz", "priority"];
/// Recent hits quoted in the message.
const QUOTED_HITS: usize = 10;
/// Longest quoted hit, in characters.
const QUOTED_HIT_CHARS: usize = 1_000;

/// How alerts are read, from the webhook URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The zone of `start_time` and `end_time` when the search link gives no UTC times
    /// (`?tz=-04:00`; default UTC).
    pub offset: UtcOffset,
    /// Priority of every alert of this webhook (`?priority=high`); by default its
    /// service's.
    pub priority: Option<Priority>,
    /// Context labels every event of this webhook gets (`?service=bender`).
    pub labels: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            offset: UtcOffset::UTC,
            priority: None,
            labels: BTreeMap::new(),
        }
    }
}

impl Options {
    /// Reads the options from the webhook URL's query parameters.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, AdaptError> {
        let mut options = Self {
            labels: query_labels(query, RESERVED)?,
            ..Self::default()
        };
        for (name, value) in query {
            match name.as_str() {
                "tz" => options.offset = offset(value)?,
                "priority" => {
                    options.priority = Some(match value.as_str() {
                        "high" => Priority::High,
                        "low" => Priority::Low,
                        _ => {
                            return Err(AdaptError::option(
                                "priority",
                                format!("\"{value}\" is not a priority: use high or low"),
                            ));
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// Reads `Z`, `UTC`, `+05:30` or `-0400`.
fn offset(value: &str) -> Result<UtcOffset, AdaptError> {
    let bad = || {
        AdaptError::option(
            "tz",
            format!("\"{value}\" is not a UTC offset: use Z, +05:30 or -04:00"),
        )
    };
    let value = value.trim();
    if value.eq_ignore_ascii_case("z") || value.eq_ignore_ascii_case("utc") {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match value.as_bytes().first() {
        Some(b'+') => (1, &value[1..]),
        Some(b'-') => (-1, &value[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let hours: i8 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i8 = digits[2..].parse().map_err(|_| bad())?;
    // Real offsets run from -12:00 to +14:00.
    if hours > 14 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| bad())
}

/// Reads `Mar 17 11:41:40` in `offset`, in the year nearest to `now`.
fn bare_time(
    field: &str,
    value: &str,
    offset: UtcOffset,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, AdaptError> {
    if let Ok(full) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(full);
    }
    let bad = || {
        AdaptError::field(
            field,
            format!("invalid time \"{value}\": expected Loggly's \"Mar 17 11:41:40\""),
        )
    };
    let mut parts = value.split_whitespace();
    let (Some(month), Some(day), Some(clock), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let month = month_named(month).ok_or_else(bad)?;
    let day: u8 = day.parse().map_err(|_| bad())?;
    let mut hms = clock.split(':').map(str::parse::<u8>);
    let (Some(Ok(h)), Some(Ok(m)), Some(Ok(s)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return Err(bad());
    };
    let time = Time::from_hms(h, m, s).map_err(|_| bad())?;
    // The year is the one that puts the time nearest to now: `Dec 31 23:59:00` received
    // on the 1st of January is last year's. (A 29th of February exists only in some.)
    (now.year() - 1..=now.year() + 1)
        .filter_map(|year| Date::from_calendar_date(year, month, day).ok())
        .map(|date| PrimitiveDateTime::new(date, time).assume_offset(offset))
        .min_by_key(|t| (*t - now).abs())
        .ok_or_else(bad)
}

fn month_named(name: &str) -> Option<Month> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let name = name.get(..3)?.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| *m == name)?;
    Month::try_from(u8::try_from(index + 1).ok()?).ok()
}

/// The `from` and `until` of a Loggly search link, when both are absolute UTC times.
fn link_window(link: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let query = link.split_once('?')?.1;
    let (mut from, mut until) = (None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "from" => from = OffsetDateTime::parse(&value, &Rfc3339).ok(),
            "until" => until = OffsetDateTime::parse(&value, &Rfc3339).ok(),
            _ => {}
        }
    }
    Some((from?, until?))
}

/// The recent hits, quoted one per line (each cut to 1,000 characters).
fn recent_hits(map: &Map<String, Value>) -> Result<String, AdaptError> {
    let hits = match map.get("recent_hits") {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::Array(hits)) => hits,
        Some(other) => {
            return Err(AdaptError::field(
                "recent_hits",
                format!("expected an array of log lines, got {}", kind(other)),
            ));
        }
    };
    let mut quoted = String::new();
    for hit in hits.iter().take(QUOTED_HITS) {
        let line = match hit {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        quoted.push_str("> ");
        quoted.extend(
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .take(QUOTED_HIT_CHARS),
        );
        quoted.push('\n');
    }
    Ok(quoted)
}

/// Turns one Loggly alert into its two events: unhealthy at the window's start, healthy
/// at its end.
pub fn adapt(
    body: &[u8],
    options: &Options,
    now: OffsetDateTime,
) -> Result<[Event; 2], AdaptError> {
    let map = object(body)?;
    let name = text(&map, "alert_name")?.ok_or_else(|| {
        AdaptError::field(
            "alert_name",
            "missing: Loggly always sends it; is this a Loggly alert?",
        )
    })?;
    let monitor = monitor_name(&name);
    if monitor.is_empty() {
        return Err(AdaptError::field(
            "alert_name",
            format!("\"{name}\" has no letter or digit to name a monitor with"),
        ));
    }
    let search_link = text(&map, "search_link")?.unwrap_or_default();
    let (start, end) = match link_window(&search_link) {
        Some(window) => window,
        None => {
            let read = |field: &str| -> Result<OffsetDateTime, AdaptError> {
                match text(&map, field)? {
                    Some(value) => bare_time(field, &value, options.offset, now),
                    None => Ok(now),
                }
            };
            (read("start_time")?, read("end_time")?)
        }
    };
    let end = end.max(start);
    let hits = match map.get("num_hits") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(other) => {
            return Err(AdaptError::field(
                "num_hits",
                format!("expected a number, got {}", kind(other)),
            ));
        }
    };

    let mut context = BTreeMap::new();
    if let Some(group) = text(&map, "source_group")?.filter(|g| g != "N/A")
        && let Some(key) = label_key("source_group")
    {
        context.insert(key, label_value(&group));
    }
    context.extend(options.labels.clone());

    let mut message = Message::default();
    message.paragraph(&name);
    message.paragraph(&text(&map, "alert_description")?.unwrap_or_default());
    message.line("Query", &text(&map, "query")?.unwrap_or_default());
    if let Some(hits) = hits {
        message.line("Hits", &format!("{hits} in the window"));
    }
    message.line("Search", &search_link);
    message.line(
        "Edit alert",
        &text(&map, "edit_alert_link")?.unwrap_or_default(),
    );
    message.line(
        "Owner",
        &text(&map, "owner_email")?
            .or(text(&map, "owner_username")?)
            .unwrap_or_default(),
    );
    message.line(
        "Account",
        &text(&map, "owner_subdomain")?.unwrap_or_default(),
    );
    message.paragraph(&recent_hits(&map)?);
    let message = message.finish();

    let event = |status, since| Event {
        alert: Alert {
            monitor: monitor.clone(),
            status,
            since: Some(since),
            message: message.clone(),
            count: None,
        },
        context: context.clone(),
        filters: Vec::new(),
        grouping: None,
        alerting: options.priority.map(|priority| Alerting {
            priority: Some(priority),
            ..Alerting::default()
        }),
        plugins: Vec::new(),
    };
    Ok([event(Status::Unhealthy, start), event(Status::Healthy, end)])
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn bare_times_take_the_year_nearest_to_receipt() {
        let now = datetime!(2026-01-01 00:10 UTC);
        let t = bare_time("start_time", "Dec 31 23:55:00", UtcOffset::UTC, now).expect("t");
        assert_eq!(t, datetime!(2025-12-31 23:55 UTC));
        let t = bare_time("start_time", "Jan 1 00:05:00", UtcOffset::UTC, now).expect("t");
        assert_eq!(t, datetime!(2026-01-01 00:05 UTC));
        let eastern = offset("-04:00").expect("offset");
        let t = bare_time("start_time", "Jan 01 00:05:00", eastern, now).expect("t");
        assert_eq!(t, datetime!(2026-01-01 04:05 UTC));
        // Only leap years have a 29th of February.
        let t = bare_time(
            "start_time",
            "Feb 29 12:00:00",
            UtcOffset::UTC,
            datetime!(2027-03-01 00:00 UTC),
        )
        .expect("leap");
        assert_eq!(t.year(), 2028);
        for bad in [
            "Smarch 1 00:00:00",
            "Mar 32 00:00:00",
            "Mar 1 25:00:00",
            "Mar 1",
            "yesterday",
        ] {
            assert!(
                bare_time("start_time", bad, UtcOffset::UTC, now).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn offsets_are_read_strictly() {
        assert_eq!(offset("Z"), Ok(UtcOffset::UTC));
        assert_eq!(offset("+05:30").map(|o| o.whole_minutes()), Ok(330));
        assert_eq!(offset("-0400").map(|o| o.whole_minutes()), Ok(-240));
        for bad in ["EST", "+5", "+25:00", "05:00"] {
            assert!(offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_search_link_gives_utc_times_with_a_year() {
        let link = "https://x.loggly.com/search/?terms=&from=2015-03-17T15%3A41%3A40Z&until=2015-03-17T15%3A46%3A40Z";
        let (from, until) = link_window(link).expect("window");
        assert_eq!(from, datetime!(2015-03-17 15:41:40 UTC));
        assert_eq!(until, datetime!(2015-03-17 15:46:40 UTC));
        assert!(link_window("https://x.loggly.com/search/?from=-5m&until=now").is_none());
    }
}
