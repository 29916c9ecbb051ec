//! The current state of each alert identity, as the API lists it: written once for both
//! backends. They differ only in how a label is read out of the labels column (SQLite's
//! `json_extract`, PostgreSQL's `->>` on JSONB), given to the macro.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use tocsin_model::event::Status;

use crate::decode::from_millis;
use crate::error::StoreError;

/// The current state of one alert identity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertState {
    /// Hex fingerprint of monitor + labels.
    pub fingerprint: String,
    /// Owning team ("" when none).
    pub team: String,
    /// The check's name.
    pub monitor: String,
    /// The alert's labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The last status seen.
    pub status: Status,
    /// Since when it has had this status.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    /// Runs of the check in this status (as reported, or counted by Tocsin).
    pub count: i64,
    /// First event for this identity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: OffsetDateTime,
    /// Latest event for this identity.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: OffsetDateTime,
    /// Id of the latest event.
    pub last_event: String,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    /// Only this team's alerts; `None` lists every team's (admins only).
    pub team: Option<String>,
    /// Only alerts of teams other than this one.
    pub other_than: Option<String>,
    /// Only alerts with this status.
    pub status: Option<Status>,
    /// Only alerts with this monitor.
    pub monitor: Option<String>,
    /// Only alerts carrying every one of these labels with these values.
    pub labels: Vec<(String, String)>,
    /// Resume after this (team, fingerprint).
    pub after: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

macro_rules! backend {
    ($db:ty, $text:literal, $label_open:literal, $label_close:literal, $label_key:expr) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        /// The columns a listing reads, of the alerts table as `a`.
        const COLUMNS: &str = concat!(
            "a.team, a.fingerprint, a.monitor, a.labels",
            $text,
            " AS labels, a.status, a.since, a.count, a.first_seen, a.last_seen, a.last_event"
        );

        /// The query's conditions, each after " AND ": on the alerts table as `a`, but
        /// the team and the cursor on `key`, the table whose order the listing follows.
        fn filter<'q>(sql: &mut QueryBuilder<'q, $db>, query: &'q AlertQuery, key: &str) {
            if let Some(team) = &query.team {
                sql.push(format_args!(" AND {key}.team = ")).push_bind(team);
            }
            if let Some(team) = &query.other_than {
                sql.push(format_args!(" AND {key}.team <> "))
                    .push_bind(team);
            }
            if let Some(status) = query.status {
                sql.push(" AND a.status = ").push_bind(status.as_str());
            }
            if let Some(monitor) = &query.monitor {
                sql.push(" AND a.monitor = ").push_bind(monitor);
            }
            for (label, value) in &query.labels {
                // Keys are validated label names, but they are bound, never spliced.
                let quote: fn(&str) -> String = $label_key;
                sql.push($label_open)
                    .push_bind(quote(label))
                    .push($label_close)
                    .push_bind(value);
            }
            if let Some((team, fingerprint)) = &query.after {
                sql.push(format_args!(" AND ({key}.team, {key}.fingerprint) > ("))
                    .push_bind(team)
                    .push(", ")
                    .push_bind(fingerprint)
                    .push(")");
            }
        }

        /// Lists alert states in (team, fingerprint) order.
        pub async fn alerts(
            pool: &sqlx::Pool<$db>,
            query: &AlertQuery,
        ) -> Result<Vec<AlertState>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("");
            listing(&mut sql, query);
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let labels: String = row.try_get("labels")?;
                    let status: String = row.try_get("status")?;
                    Ok(AlertState {
                        fingerprint: row.try_get("fingerprint")?,
                        team: row.try_get("team")?,
                        monitor: row.try_get("monitor")?,
                        labels: serde_json::from_str(&labels)
                            .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?,
                        status: status.parse().map_err(StoreError::Corrupt)?,
                        since: from_millis(row.try_get("since")?)?,
                        count: row.try_get("count")?,
                        first_seen: from_millis(row.try_get("first_seen")?)?,
                        last_seen: from_millis(row.try_get("last_seen")?)?,
                        last_event: row.try_get("last_event")?,
                    })
                })
                .collect()
        }
    };
}

/// The functions for SQLite: a label is `json_extract(labels, '$."key"')`.
///
/// An identity's key (team, fingerprint) is in `alert_keys` once merged, and until then
/// only in the tail of the alerts table, the rows above `alert_keys_mark`: the pipeline
/// merges the tail in one sorted statement once it holds [`MERGE_KEYS_EVERY`] rows
/// (migration 0018 says why). Reads by key look in both.
pub(crate) mod sqlite {
    backend!(
        sqlx::Sqlite,
        "",
        " AND json_extract(a.labels, ",
        ") = ",
        |key| format!("$.\"{key}\"")
    );

    /// New identities the tail collects before the pipeline merges their keys: large
    /// enough that a merge shares each leaf of `alert_keys` among many keys, small
    /// enough that scanning the tail stays a few milliseconds.
    pub(crate) const MERGE_KEYS_EVERY: i64 = 50_000;

    /// The listing: the merged keys in order, each joined to its alert, and the tail
    /// sorted, each cut at the limit, then merged.
    fn listing<'q>(sql: &mut QueryBuilder<'q, sqlx::Sqlite>, query: &'q AlertQuery) {
        let limit = i64::from(query.limit);
        // CROSS JOIN keeps `alert_keys` the outer loop, so its order is the listing's.
        sql.push("SELECT * FROM (SELECT ")
            .push(COLUMNS)
            .push(" FROM alert_keys k CROSS JOIN alerts a ON a.id = k.id WHERE 1 = 1");
        filter(sql, query, "k");
        sql.push(" ORDER BY k.team, k.fingerprint LIMIT ")
            .push_bind(limit)
            .push(") UNION ALL SELECT * FROM (SELECT ")
            .push(COLUMNS)
            .push(" FROM alerts a WHERE a.id > (SELECT id FROM alert_keys_mark)");
        filter(sql, query, "a");
        sql.push(" ORDER BY a.team, a.fingerprint LIMIT ")
            .push_bind(limit)
            .push(") ORDER BY team, fingerprint LIMIT ")
            .push_bind(limit);
    }

    /// A subquery of the ids of the alerts with this fingerprint (of this team only,
    /// given one): merged and in the tail.
    pub(crate) fn ids_by_key(
        sql: &mut QueryBuilder<'static, sqlx::Sqlite>,
        fingerprint: &str,
        team: Option<&str>,
    ) {
        for from in [
            "SELECT id FROM alert_keys WHERE",
            " UNION ALL SELECT id FROM alerts WHERE id > (SELECT id FROM alert_keys_mark) AND",
        ] {
            sql.push(from)
                .push(" fingerprint = ")
                .push_bind(fingerprint.to_owned());
            if let Some(team) = team {
                sql.push(" AND team = ").push_bind(team.to_owned());
            }
        }
    }

    /// The statements a commit that inserts new alerts ends with: they merge the tail's
    /// keys once it holds [`MERGE_KEYS_EVERY`] rows and do nothing before, so the tail
    /// never outgrows that by more than one batch.
    pub(crate) fn key_merge() -> Vec<String> {
        let full = format!(
            "(SELECT MAX(id) FROM alerts) >= (SELECT id FROM alert_keys_mark) + {MERGE_KEYS_EVERY}"
        );
        vec![
            // Sorted, so that keys that share a leaf are written together.
            format!(
                "INSERT OR FAIL INTO alert_keys (team, fingerprint, id) SELECT team, fingerprint, id \
                 FROM alerts WHERE id > (SELECT id FROM alert_keys_mark) AND {full} \
                 ORDER BY team, fingerprint"
            ),
            format!(
                "UPDATE OR FAIL alert_keys_mark SET id = (SELECT MAX(id) FROM alerts) WHERE {full}"
            ),
        ]
    }
}

/// The functions for PostgreSQL: a label is `labels ->> 'key'`. The alerts table keeps
/// its unique index on (team, fingerprint): PostgreSQL's writes go through its own
/// buffer pool and checkpoints, not a page cache the index crowds out.
pub(crate) mod postgres {
    backend!(
        sqlx::Postgres,
        "::text",
        " AND a.labels ->> ",
        " = ",
        |key| { key.to_owned() }
    );

    /// The listing: one ordered read of the alerts table.
    fn listing<'q>(sql: &mut QueryBuilder<'q, sqlx::Postgres>, query: &'q AlertQuery) {
        sql.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM alerts a WHERE 1 = 1");
        filter(sql, query, "a");
        sql.push(" ORDER BY a.team, a.fingerprint LIMIT ")
            .push_bind(i64::from(query.limit));
    }

    /// A subquery of the ids of the alerts with this fingerprint (of this team only,
    /// given one).
    pub(crate) fn ids_by_key(
        sql: &mut QueryBuilder<'static, sqlx::Postgres>,
        fingerprint: &str,
        team: Option<&str>,
    ) {
        sql.push("SELECT id FROM alerts WHERE fingerprint = ")
            .push_bind(fingerprint.to_owned());
        if let Some(team) = team {
            sql.push(" AND team = ").push_bind(team.to_owned());
        }
    }

    /// Nothing to merge: the unique index takes each key as it comes.
    pub(crate) fn key_merge() -> Vec<String> {
        Vec::new()
    }
}
