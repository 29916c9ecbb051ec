//! What the engine keeps in memory, and the writes a batch collects: plain records, so
//! that every stage can read and change them and none of them owns them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tocsin_model::event::{Event, Fingerprint, Status};
use tocsin_model::rows::{HistoryRow, Hold, IncidentRow, MemberRow, TimelineRow};

/// An alert identity: interned team and fingerprint. 20 bytes, so a million fit.
pub(crate) type AlertKey = (u32, Fingerprint);

/// The position of a tracked alert in the engine's table (`crate::alerts::Alerts`).
pub(crate) type Slot = u32;

/// What the engine keeps per alert identity; kept small (a million must fit in
/// 256 MiB with the rest of the process).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracked {
    pub(crate) since: i64,
    pub(crate) count: i64,
    /// The incident slot it belongs to, +1 (0: none).
    pub(crate) incident: u32,
    pub(crate) reported: Status,
    pub(crate) passed: Status,
    pub(crate) hold: Option<Hold>,
    /// When its status last changed, as flap detection counts changes ([`NEVER`]: not
    /// since it was loaded or stopped flapping). The changes before it that are still
    /// in the flap window are in the engine's `flaps`, for the few alerts that have any:
    /// a wide outage changes a million alerts once each, and a map entry for each
    /// change cost 120 MB.
    pub(crate) changed: i64,
}

/// No status change counted (see [`Tracked::changed`]).
pub(crate) const NEVER: i64 = i64::MIN;

/// An event held back, in memory.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) kind: Hold,
    pub(crate) due: Option<i64>,
    pub(crate) suppression: Option<String>,
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) received_at: i64,
    pub(crate) event: Event,
    pub(crate) trace: Option<String>,
}

impl Held {
    /// The held event and where it came from, to send it on.
    pub(crate) fn into_event(self) -> (Event, EventMeta) {
        let meta = EventMeta {
            id: self.id,
            source: self.source,
            received_at: self.received_at,
            trace: self.trace,
        };
        (self.event, meta)
    }
}

/// An incident still open or resolving.
#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub(crate) row: IncidentRow,
    pub(crate) team: u32,
    /// Where its alerts are in the engine's table.
    pub(crate) members: Vec<Slot>,
}

/// A timer: something that happens by itself at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// An `ignore-flap` hold reaches its min-age.
    Release(AlertKey),
    /// A flapping alert may be stable again.
    FlapEnd(AlertKey),
    /// An incident's grace period ends.
    Resolve(u32),
    /// A suppression ends: its held alerts are looked at again.
    SuppressionEnd(String),
}

/// Where an alert row's descriptive columns come from in this batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowSource {
    /// Whether the row changed beyond a steady repeat's refresh (status, hold, a new
    /// identity): then the whole row is written, else only the refreshed columns.
    pub(crate) full: bool,
    pub(crate) monitor: String,
    pub(crate) labels: String,
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) reported_since: Option<i64>,
    pub(crate) reported_count: Option<i64>,
    pub(crate) last_event: String,
}

/// Writes collected during a batch.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) alerts: HashMap<AlertKey, RowSource>,
    pub(crate) history: Vec<HistoryRow>,
    pub(crate) held_put: BTreeSet<AlertKey>,
    pub(crate) held_delete: BTreeSet<AlertKey>,
    pub(crate) incidents: BTreeSet<u32>,
    pub(crate) finished: Vec<IncidentRow>,
    pub(crate) members: HashMap<(u32, AlertKey), MemberRow>,
    /// Member rows of an incident whose slot was reused within the batch.
    pub(crate) extra_members: Vec<MemberRow>,
    pub(crate) timeline: Vec<TimelineRow>,
    /// The alerts that joined each incident slot in this batch, which share one
    /// "alert-joined" entry of `timeline`.
    pub(crate) joined: HashMap<u32, Joined>,
    pub(crate) drops: BTreeMap<(u32, String), i64>,
    pub(crate) journal_to: Option<i64>,
}

/// The alerts that joined one incident in one batch: its one "alert-joined" timeline
/// entry names the first few and counts the rest. A wide outage joins thousands of
/// alerts to an incident in a batch; an entry for each said nothing the incident's
/// alert list does not, and was a quarter of the rows a new identity wrote.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The entry's position in the batch's timeline.
    pub(crate) entry: usize,
    /// How many joined.
    pub(crate) count: usize,
    /// The first [`Joined::NAMED`], as (description, priority).
    pub(crate) named: Vec<(String, &'static str)>,
}

impl Joined {
    /// How many joiners an entry names.
    pub(crate) const NAMED: usize = 3;

    /// The entry's text: "InstanceHealth on bender/eu joined (high)" for one alert,
    /// "12 alerts joined: A (high), B (high), C (low) and 9 more" for many.
    pub(crate) fn detail(&self) -> String {
        let mut names: Vec<String> = self
            .named
            .iter()
            .map(|(what, priority)| format!("{what} ({priority})"))
            .collect();
        if let (1, [(what, priority)]) = (self.count, self.named.as_slice()) {
            return format!("{what} joined ({priority})");
        }
        let last = match self.count - names.len() {
            0 => names.pop().unwrap_or_default(),
            more => format!("{more} more"),
        };
        format!(
            "{} alerts joined: {} and {last}",
            self.count,
            names.join(", ")
        )
    }
}

/// Where an event came from, for its history row.
#[derive(Debug, Clone)]
pub(crate) struct EventMeta {
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) received_at: i64,
    /// The trace id of the request that brought it; `None` for Tocsin's own events.
    pub(crate) trace: Option<String>,
}
