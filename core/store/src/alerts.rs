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

        /// Lists alert states in (team, fingerprint) order.
        pub async fn alerts(
            pool: &sqlx::Pool<$db>,
            query: &AlertQuery,
        ) -> Result<Vec<AlertState>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(concat!(
                "SELECT team, fingerprint, monitor, labels",
                $text,
                " AS labels, status, since, count, \
                 first_seen, last_seen, last_event FROM alerts WHERE 1 = 1",
            ));
            if let Some(team) = &query.team {
                sql.push(" AND team = ").push_bind(team);
            }
            if let Some(team) = &query.other_than {
                sql.push(" AND team <> ").push_bind(team);
            }
            if let Some(status) = query.status {
                sql.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(monitor) = &query.monitor {
                sql.push(" AND monitor = ").push_bind(monitor);
            }
            for (key, value) in &query.labels {
                // Keys are validated label names, but they are bound, never spliced.
                let quote: fn(&str) -> String = $label_key;
                sql.push($label_open)
                    .push_bind(quote(key))
                    .push($label_close)
                    .push_bind(value);
            }
            if let Some((team, fingerprint)) = &query.after {
                sql.push(" AND (team, fingerprint) > (")
                    .push_bind(team)
                    .push(", ")
                    .push_bind(fingerprint)
                    .push(")");
            }
            sql.push(" ORDER BY team, fingerprint LIMIT ")
                .push_bind(i64::from(query.limit));
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
pub(crate) mod sqlite {
    backend!(
        sqlx::Sqlite,
        "",
        " AND json_extract(labels, ",
        ") = ",
        |key| format!("$.\"{key}\"")
    );
}

/// The functions for PostgreSQL: a label is `labels ->> 'key'`.
pub(crate) mod postgres {
    backend!(sqlx::Postgres, "::text", " AND labels ->> ", " = ", |key| {
        key.to_owned()
    });
}
