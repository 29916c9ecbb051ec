//! What the journal holds: accepted events as ingest hands them over, and the SQL both
//! backends share to count and list them.

use time::OffsetDateTime;

use tocsin_model::clock::millis;
use tocsin_model::event::{Event, Fingerprint, Status};
use tocsin_model::rows::Incoming;

/// An event that passed validation, stamped with its id and receipt time.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The event's id, returned to the sender.
    pub id: uuid::Uuid,
    /// Team that owns the event ("" when an admin sent it without a `team` label).
    pub team: String,
    /// Where it came from (`api`, later adapters and plugins).
    pub source: &'static str,
    /// When Tocsin received it.
    pub received_at: OffsetDateTime,
    /// The alert identity.
    pub fingerprint: Fingerprint,
    /// The event as the sender gave it.
    pub event: Event,
}

impl Accepted {
    /// Stamps a validated event with a new time-ordered id.
    pub fn new(
        event: Event,
        team: String,
        source: &'static str,
        received_at: OffsetDateTime,
    ) -> Self {
        let fingerprint = event.fingerprint();
        Self {
            id: uuid::Uuid::now_v7(),
            team,
            source,
            received_at,
            fingerprint,
            event,
        }
    }

    /// When the check entered its status: as reported, or else the receipt time.
    pub fn since(&self) -> OffsetDateTime {
        self.event.alert.since.unwrap_or(self.received_at)
    }

    /// Encodes the event as the journal stores it, with the trace id of the request that
    /// brought it. Called by each request (in parallel) so that the journal's single
    /// writer only binds ready values.
    pub fn into_record(self, trace_id: Option<&str>) -> Record {
        Record {
            trace_id: trace_id.map(str::to_owned),
            id: self.id.to_string(),
            fingerprint: self.fingerprint.to_string(),
            source: self.source,
            // Serializing our own plain types to JSON cannot fail.
            event: serde_json::to_string(&self.event).unwrap_or_default(),
            labels: serde_json::to_string(&self.event.context).unwrap_or_default(),
            status: self.event.alert.status,
            reported_since: self.event.alert.since.map(millis),
            reported_count: self
                .event
                .alert
                .count
                .map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            monitor: self.event.alert.monitor,
            team: self.team,
            received: millis(self.received_at),
        }
    }
}

/// One accepted event as the journal stores it, every value encoded.
#[derive(Debug, Clone)]
pub struct Record {
    pub(crate) id: String,
    pub(crate) team: String,
    pub(crate) fingerprint: String,
    pub(crate) source: &'static str,
    pub(crate) received: i64,
    pub(crate) monitor: String,
    pub(crate) status: Status,
    /// The context labels, as a JSON object.
    pub(crate) labels: String,
    pub(crate) reported_since: Option<i64>,
    pub(crate) reported_count: Option<i64>,
    /// The event as given, as JSON.
    pub(crate) event: String,
    /// The W3C trace id of the request that brought it.
    pub(crate) trace_id: Option<String>,
}

impl Record {
    /// The event's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The journal row the pipeline reads for this record, once it is stored at `seq`.
    pub fn incoming(&self, seq: i64) -> Incoming {
        Incoming {
            seq,
            id: self.id.clone(),
            team: self.team.clone(),
            fingerprint: self.fingerprint.clone(),
            source: self.source.to_owned(),
            received_at: self.received,
            monitor: self.monitor.clone(),
            status: self.status,
            labels: self.labels.clone(),
            reported_since: self.reported_since,
            reported_count: self.reported_count,
            event: self.event.clone(),
            trace_id: self.trace_id.clone(),
        }
    }
}

/// What an append tells beyond its success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// The seq of the first record, when the records got consecutive seqs in their order.
    pub first: Option<i64>,
    /// The pipeline's commit counter and the catalogue's change counter ([`Store::versions`])
    /// as read in the append's transaction, after its inserts: a change committed before
    /// the append is counted in them.
    pub versions: (i64, i64),
}

/// Journal events the pipeline has not processed yet: processed ones leave the journal
/// (same SQL on both backends).
pub(crate) const LAG: &str = "SELECT COUNT(*) FROM journal \
    WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline')";

/// Ids of accepted events still traceable: waiting in the journal, in the history, or
/// as the latest event of their alert (same SQL on both backends). Processed rows may
/// stay in the journal a while (they are deleted 2,000 at a time): only those after the
/// cursor are waiting.
pub(crate) const EVENT_IDS: &str = "SELECT id FROM journal WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline') \
    UNION SELECT id FROM history WHERE source <> 'tocsin' UNION SELECT last_event FROM alerts";

/// Sizes to split `n` rows into: 256s, then 32s, 4s and 1s. Multi-row statements of only
/// four shapes, so each is prepared once and then served from the statement cache, and
/// few statements per batch.
pub(crate) fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    for size in [256, 32, 4, 1] {
        while n >= size {
            sizes.push(size);
            n -= size;
        }
    }
    sizes
}
