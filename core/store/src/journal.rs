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

/// The journal's SQL and shape on SQLite: one row per event.
pub(crate) mod sqlite {
    /// Journal events the pipeline has not processed yet: processed ones leave the
    /// journal.
    pub(crate) const LAG: &str = "SELECT COUNT(*) FROM journal \
        WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline')";

    /// Ids of accepted events still traceable: waiting in the journal, in the history,
    /// or as the latest event of their alert. Processed rows may stay in the journal a
    /// while (they are deleted 2,000 at a time): only those after the cursor are waiting.
    pub(crate) const EVENT_IDS: &str = "SELECT id FROM journal WHERE seq > (SELECT seq FROM progress WHERE stage = 'pipeline') \
        UNION SELECT id FROM history WHERE source <> 'tocsin' UNION SELECT last_event FROM alerts";

    /// Deletes processed events up to a bound seq.
    pub(crate) const DELETE_TO: &str = "DELETE FROM journal WHERE seq <= ";
}

/// The journal's SQL and shape on PostgreSQL: one row (a block) per append, holding the
/// append's events as a JSON array (migration 0016 says why and gives the format).
pub(crate) mod postgres {
    use std::borrow::Cow;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    use tocsin_model::rows::Incoming;

    use super::Record;
    use crate::decode::status;
    use crate::error::StoreError;

    /// Events one block holds at most: a block's events take the seqs from its number
    /// times this onwards.
    pub(crate) const BLOCK_EVENTS: i64 = 65_536;

    /// Journal events the pipeline has not processed yet: the events after the cursor of
    /// every block that ends after it.
    pub(crate) const LAG: &str = "SELECT COALESCE(SUM(b.last_seq - GREATEST(b.first_seq, p.seq + 1) + 1), 0)::BIGINT \
        FROM journal_blocks b, progress p WHERE p.stage = 'pipeline' AND b.last_seq > p.seq";

    /// Ids of accepted events still traceable (see [`super::sqlite::EVENT_IDS`]).
    pub(crate) const EVENT_IDS: &str = "SELECT e.r ->> 'id' AS id FROM journal_blocks b \
        JOIN progress p ON p.stage = 'pipeline' AND b.last_seq > p.seq \
        CROSS JOIN LATERAL json_array_elements(b.records::json) WITH ORDINALITY AS e(r, n) \
        WHERE b.first_seq + e.n - 1 > p.seq \
        UNION SELECT id FROM history WHERE source <> 'tocsin' UNION SELECT last_event FROM alerts";

    /// Deletes the blocks whose every event is processed, up to a bound seq.
    pub(crate) const DELETE_TO: &str = "DELETE FROM journal_blocks WHERE last_seq <= ";

    /// Records encoded as the blocks of one append, each with its count of events.
    pub(crate) fn blocks(records: &[Record]) -> (Vec<String>, Vec<i32>) {
        records
            .chunks(BLOCK_EVENTS as usize)
            .map(|chunk| {
                (
                    encode(chunk),
                    i32::try_from(chunk.len()).unwrap_or(i32::MAX),
                )
            })
            .unzip()
    }

    /// One block's JSON array. Labels and the event are JSON already, and go in as they
    /// are; every other string is escaped by serde_json.
    fn encode(records: &[Record]) -> String {
        let size = records
            .iter()
            .map(|r| r.labels.len() + r.event.len() + 256)
            .sum();
        let mut out = Vec::with_capacity(size);
        out.push(b'[');
        for (n, r) in records.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            field(&mut out, "{\"id\":", &r.id);
            field(&mut out, ",\"team\":", &r.team);
            field(&mut out, ",\"fp\":", &r.fingerprint);
            field(&mut out, ",\"source\":", r.source);
            field(&mut out, ",\"received\":", &r.received);
            field(&mut out, ",\"monitor\":", &r.monitor);
            field(&mut out, ",\"status\":", r.status.as_str());
            out.extend_from_slice(b",\"labels\":");
            out.extend_from_slice(r.labels.as_bytes());
            field(&mut out, ",\"since\":", &r.reported_since);
            field(&mut out, ",\"count\":", &r.reported_count);
            out.extend_from_slice(b",\"event\":");
            out.extend_from_slice(r.event.as_bytes());
            field(&mut out, ",\"trace\":", &r.trace_id);
            out.push(b'}');
        }
        out.push(b']');
        // Every piece is UTF-8 (strings and serde_json's output).
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends `key` and `value` as JSON.
    fn field(out: &mut Vec<u8>, key: &str, value: &(impl serde::Serialize + ?Sized)) {
        out.extend_from_slice(key.as_bytes());
        // Writing a string, a number or null to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }

    /// One event of a block as read back; labels and the event stay unparsed.
    #[derive(Deserialize)]
    struct Entry<'a> {
        id: String,
        team: String,
        fp: String,
        source: String,
        received: i64,
        monitor: String,
        #[serde(borrow)]
        status: Cow<'a, str>,
        #[serde(borrow)]
        labels: &'a RawValue,
        since: Option<i64>,
        count: Option<i64>,
        #[serde(borrow)]
        event: &'a RawValue,
        trace: Option<String>,
    }

    /// The events of the block starting at `first` with seqs after `after` and up to
    /// `through`, appended to `out` until it holds `max`.
    pub(crate) fn decode(
        first: i64,
        records: &str,
        after: i64,
        through: Option<i64>,
        max: usize,
        out: &mut Vec<Incoming>,
    ) -> Result<(), StoreError> {
        let entries: Vec<Entry<'_>> = serde_json::from_str(records)
            .map_err(|e| StoreError::Corrupt(format!("journal block {first}: {e}")))?;
        for (seq, e) in (first..).zip(entries) {
            if seq <= after || through.is_some_and(|t| seq > t) {
                continue;
            }
            if out.len() >= max {
                break;
            }
            out.push(Incoming {
                seq,
                id: e.id,
                team: e.team,
                fingerprint: e.fp,
                source: e.source,
                received_at: e.received,
                monitor: e.monitor,
                status: status(&e.status)?,
                labels: e.labels.get().to_owned(),
                reported_since: e.since,
                reported_count: e.count,
                event: e.event.get().to_owned(),
                trace_id: e.trace,
            });
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::postgres::{BLOCK_EVENTS, blocks, decode};
    use super::*;

    fn record(n: i64, monitor: &str) -> Record {
        Record {
            id: format!("id-{n}"),
            team: "ops \"night\"".into(),
            fingerprint: format!("{n:016x}"),
            source: "api",
            received: 1_700_000_000_000 + n,
            monitor: monitor.into(),
            status: if n % 2 == 0 {
                Status::Healthy
            } else {
                Status::Unhealthy
            },
            labels: r#"{"host":"web-1","note":"line\nbreak"}"#.into(),
            reported_since: (n % 3 == 0).then_some(n),
            reported_count: None,
            event: serde_json::json!({ "alert": { "monitor": monitor }, "n": n }).to_string(),
            trace_id: (n == 1).then(|| "4bf92f3577b34da6a3ce929d0e0e4736".into()),
        }
    }

    #[test]
    fn a_block_gives_back_every_field_of_every_record_in_order() {
        let records: Vec<Record> = (0..5)
            .map(|n| record(n, &format!("disk \\ \"free\" ✓ {n}")))
            .collect();
        let (texts, counts) = blocks(&records);
        assert_eq!(counts, [5]);
        let mut rows = Vec::new();
        decode(100, &texts[0], 0, None, usize::MAX, &mut rows).expect("decodes");
        let expected: Vec<Incoming> = records
            .iter()
            .zip(100..)
            .map(|(r, seq)| r.incoming(seq))
            .collect();
        assert_eq!(format!("{rows:?}"), format!("{expected:?}"));
    }

    #[test]
    fn decoding_keeps_to_the_cursor_the_horizon_and_the_limit() {
        let records: Vec<Record> = (0..10).map(|n| record(n, "m")).collect();
        let (texts, _) = blocks(&records);
        let seqs = |after, through, max| {
            let mut rows = Vec::new();
            decode(1000, &texts[0], after, through, max, &mut rows).expect("decodes");
            rows.iter().map(|r| r.seq).collect::<Vec<_>>()
        };
        assert_eq!(seqs(1006, None, 100), [1007, 1008, 1009]);
        assert_eq!(seqs(1002, Some(1004), 100), [1003, 1004]);
        assert_eq!(seqs(0, None, 2), [1000, 1001]);
        assert_eq!(seqs(1009, None, 100), Vec::<i64>::new());
    }

    #[test]
    fn an_append_larger_than_a_block_takes_several() {
        let one = record(1, "m");
        let records = vec![one; BLOCK_EVENTS as usize + 1];
        let (texts, counts) = blocks(&records);
        assert_eq!(counts, [65_536, 1]);
        assert_eq!(texts.len(), 2);
    }

    #[test]
    fn a_damaged_block_is_an_error_that_names_it() {
        let mut rows = Vec::new();
        let error = decode(65_536, "[{\"id\":", 0, None, 10, &mut rows).expect_err("refused");
        assert!(error.to_string().contains("65536"), "{error}");
    }
}
