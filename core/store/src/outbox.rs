//! The notification tables (migration 0004), written once for both backends like
//! `pipeline.rs`: notices the pipeline leaves, the deliveries the outbox makes of them,
//! and what each notifier knows an incident by.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::StoreError;
use tocsin_model::notice::Action;
use tocsin_model::notice::{DeliveryState, StoredRoute};
use tocsin_model::rows::NoticeRow;

/// What a scrape of `/metrics` reads of the outbox and the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Deliveries waiting to be sent or retried.
    pub pending: u64,
    /// Age of the oldest of them, in ms (0 when there is none).
    pub oldest_pending_age_ms: i64,
    /// Dead deliveries kept.
    pub dead: u64,
    /// Notices not yet expanded into deliveries.
    pub notices: u64,
    /// Size of each database file (SQLite: `main` and `journal`; PostgreSQL: `database`).
    pub database_bytes: Vec<(String, u64)>,
}

/// Pending deliveries and the creation time of the oldest (the `deliveries_due` index).
pub(crate) const PENDING: &str =
    "SELECT COUNT(*), COALESCE(MIN(created_at), 0) FROM deliveries WHERE state = 'pending'";
/// Dead deliveries.
pub(crate) const DEAD: &str = "SELECT COUNT(*) FROM deliveries WHERE state = 'dead'";
/// Notices the outbox has not expanded.
pub(crate) const NOTICES: &str = "SELECT COUNT(*) FROM notices";

/// One notification to one notifier, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Its id (UUIDv7, time-ordered).
    pub id: String,
    /// The notice it delivers.
    pub notice_id: String,
    /// The incident it is about.
    pub incident_id: String,
    /// Owning team.
    pub team: String,
    /// The notifier's name in the configuration.
    pub notifier: String,
    /// `pagerduty`, `slack`, `jira`, `github` or `webhook`.
    pub kind: String,
    /// `open`, `update` or `resolve`.
    #[schema(value_type = String)]
    pub action: Action,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is (or was) next due, Unix ms.
    pub due_at: i64,
    /// When it was made, Unix ms.
    pub created_at: i64,
    /// When it last changed, Unix ms.
    pub updated_at: i64,
    /// Why the last attempt failed; empty when none did.
    pub last_error: String,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this team's.
    pub team: Option<String>,
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// Only about this incident.
    pub incident_id: Option<String>,
    /// Most rows.
    pub limit: i64,
}

fn action(name: &str) -> Result<Action, StoreError> {
    match name {
        "open" => Ok(Action::Open),
        "update" => Ok(Action::Update),
        "resolve" => Ok(Action::Resolve),
        other => Err(StoreError::Corrupt(format!(
            "unknown notice action {other}"
        ))),
    }
}

fn delivery_state(name: &str) -> Result<DeliveryState, StoreError> {
    DeliveryState::parse(name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state {name}")))
}

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        const COLUMNS: &str = "id, notice_id, incident_id, team, notifier, kind, action, state, attempts, \
                               due_at, created_at, updated_at, last_error";

        fn delivery(row: &<$db as sqlx::Database>::Row) -> Result<Delivery, StoreError> {
            Ok(Delivery {
                id: row.try_get("id")?,
                notice_id: row.try_get("notice_id")?,
                incident_id: row.try_get("incident_id")?,
                team: row.try_get("team")?,
                notifier: row.try_get("notifier")?,
                kind: row.try_get("kind")?,
                action: action(row.try_get("action")?)?,
                state: delivery_state(row.try_get("state")?)?,
                attempts: row.try_get("attempts")?,
                due_at: row.try_get("due_at")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                last_error: row.try_get("last_error")?,
            })
        }

        /// The oldest notices not yet turned into deliveries.
        pub async fn notices(pool: &Pool, limit: i64) -> Result<Vec<NoticeRow>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT id, incident_id, team, action, at FROM notices ORDER BY id LIMIT ");
            sql.push_bind(limit);
            sql.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(NoticeRow {
                        id: row.try_get("id")?,
                        incident_id: row.try_get("incident_id")?,
                        team: row.try_get("team")?,
                        action: action(row.try_get("action")?)?,
                        at: row.try_get("at")?,
                    })
                })
                .collect()
        }

        /// Replaces notices by their deliveries, in one transaction: a crash leaves either
        /// the notice or its deliveries, never both nor neither. Returns the ids of the
        /// deliveries stored: a process that expanded the same notice first stored its own,
        /// and only their expander attempts them.
        pub async fn expand(pool: &Pool, notices: &[String], deliveries: &[Delivery]) -> Result<Vec<String>, StoreError> {
            let mut tx = pool.begin().await?;
            let mut stored = Vec::with_capacity(deliveries.len());
            for chunk in deliveries.chunks(500) {
                let mut sql = QueryBuilder::<$db>::new(format!("INSERT INTO deliveries ({COLUMNS}) "));
                sql.push_values(chunk, |mut v, d| {
                    v.push_bind(d.id.clone())
                        .push_bind(d.notice_id.clone())
                        .push_bind(d.incident_id.clone())
                        .push_bind(d.team.clone())
                        .push_bind(d.notifier.clone())
                        .push_bind(d.kind.clone())
                        .push_bind(d.action.as_str())
                        .push_bind(d.state.as_str())
                        .push_bind(d.attempts)
                        .push_bind(d.due_at)
                        .push_bind(d.created_at)
                        .push_bind(d.updated_at)
                        .push_bind(d.last_error.clone());
                });
                sql.push(" ON CONFLICT (notice_id, notifier) DO NOTHING RETURNING id");
                stored.extend(sql.build_query_scalar::<String>().fetch_all(&mut *tx).await?);
            }
            for chunk in notices.chunks(500) {
                let mut sql = QueryBuilder::<$db>::new("DELETE FROM notices WHERE id IN (");
                let mut list = sql.separated(", ");
                for id in chunk {
                    list.push_bind(id.clone());
                }
                sql.push(")");
                sql.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(stored)
        }

        /// Pending deliveries due by `now`, oldest first, without any that waits behind an
        /// earlier pending delivery of the same incident to the same notifier (a Slack
        /// update needs the message its post created).
        pub async fn due(pool: &Pool, now: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(format!(
                "SELECT {COLUMNS} FROM deliveries d WHERE state = 'pending' AND due_at <= "
            ));
            sql.push_bind(now).push(
                " AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.incident_id = d.incident_id \
                 AND e.notifier = d.notifier AND e.state = 'pending' AND e.id < d.id) ORDER BY id LIMIT ",
            );
            sql.push_bind(limit);
            sql.build().fetch_all(pool).await?.iter().map(delivery).collect()
        }

        /// When the next pending delivery is due, if any.
        pub async fn next_due(pool: &Pool) -> Result<Option<i64>, StoreError> {
            let (at,): (Option<i64>,) = sqlx::query_as("SELECT MIN(due_at) FROM deliveries WHERE state = 'pending'")
                .fetch_one(pool)
                .await?;
            Ok(at)
        }

        /// Records an attempt before it is made, so a restart knows one may have reached
        /// the notifier; `false` when the delivery is no longer pending or no longer due
        /// (another process claimed it first: its lease moved `due_at` on).
        pub async fn claim(pool: &Pool, id: &str, lease_until: i64, now: i64) -> Result<bool, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE deliveries SET attempts = attempts + 1, due_at = ");
            sql.push_bind(lease_until).push(", updated_at = ").push_bind(now);
            sql.push(" WHERE state = 'pending' AND due_at <= ").push_bind(now);
            sql.push(" AND id = ").push_bind(id.to_owned());
            Ok(sql.build().execute(pool).await?.rows_affected() == 1)
        }

        /// Makes every pending delivery due now: what a process that died was attempting
        /// (or waiting to retry) is attempted again at once.
        pub async fn release(pool: &Pool, now: i64) -> Result<u64, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE deliveries SET due_at = ");
            sql.push_bind(now).push(" WHERE state = 'pending' AND due_at > ").push_bind(now);
            Ok(sql.build().execute(pool).await?.rows_affected())
        }

        /// Settles an attempt: `sent`, `dead`, or `pending` again at `due_at`.
        pub async fn settle(pool: &Pool, id: &str, state: DeliveryState, due_at: i64, error: &str, now: i64) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE deliveries SET state = ");
            sql.push_bind(state.as_str())
                .push(", due_at = ").push_bind(due_at)
                .push(", last_error = ").push_bind(error.to_owned())
                .push(", updated_at = ").push_bind(now)
                .push(" WHERE id = ").push_bind(id.to_owned());
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// What a notifier knows an incident by.
        pub async fn reference(pool: &Pool, incident_id: &str, notifier: &str) -> Result<Option<String>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT reference FROM delivery_refs WHERE incident_id = ");
            sql.push_bind(incident_id.to_owned()).push(" AND notifier = ").push_bind(notifier.to_owned());
            Ok(sql.build_query_as::<(String,)>().fetch_optional(pool).await?.map(|(r,)| r))
        }

        /// Remembers what a notifier knows an incident by.
        pub async fn set_reference(pool: &Pool, incident_id: &str, notifier: &str, reference: &str) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO delivery_refs (incident_id, notifier, reference) ");
            sql.push_values(std::iter::once(()), |mut v, ()| {
                v.push_bind(incident_id.to_owned()).push_bind(notifier.to_owned()).push_bind(reference.to_owned());
            });
            sql.push(" ON CONFLICT (incident_id, notifier) DO UPDATE SET reference = excluded.reference");
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// Deliveries, newest first.
        pub async fn deliveries(pool: &Pool, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(format!("SELECT {COLUMNS} FROM deliveries WHERE 1 = 1"));
            if let Some(team) = &query.team {
                sql.push(" AND team = ").push_bind(team.clone());
            }
            if let Some(state) = query.state {
                sql.push(" AND state = ").push_bind(state.as_str());
            }
            if let Some(incident) = &query.incident_id {
                sql.push(" AND incident_id = ").push_bind(incident.clone());
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(query.limit);
            sql.build().fetch_all(pool).await?.iter().map(delivery).collect()
        }

        /// Puts a dead delivery back in the queue, due now; `false` when there is no such
        /// dead delivery for this team.
        pub async fn retry(pool: &Pool, id: &str, team: Option<&str>, now: i64) -> Result<bool, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE deliveries SET state = 'pending', attempts = 0, due_at = ");
            sql.push_bind(now).push(", updated_at = ").push_bind(now);
            sql.push(" WHERE state = 'dead' AND id = ").push_bind(id.to_owned());
            if let Some(team) = team {
                sql.push(" AND team = ").push_bind(team.to_owned());
            }
            Ok(sql.build().execute(pool).await?.rows_affected() == 1)
        }

        fn stored_route(row: &<$db as sqlx::Database>::Row) -> Result<StoredRoute, StoreError> {
            let service: String = row.try_get("service")?;
            let webhooks: String = row.try_get("webhooks")?;
            Ok(StoredRoute {
                team: row.try_get("team")?,
                service: (!service.is_empty()).then_some(service),
                page: row.try_get("page")?,
                ticket: row.try_get("ticket")?,
                chat: row.try_get("chat")?,
                webhooks: serde_json::from_str(&webhooks).map_err(|e| StoreError::Corrupt(format!("route webhooks: {e}")))?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        }

        /// Routes set through the API, of one team or of all.
        pub async fn routes(pool: &Pool, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT team, service, page, ticket, chat, webhooks, updated_at, updated_by FROM routes");
            if let Some(team) = team {
                sql.push(" WHERE team = ").push_bind(team.to_owned());
            }
            sql.push(" ORDER BY team, service");
            sql.build().fetch_all(pool).await?.iter().map(stored_route).collect()
        }

        /// Sets a route (replacing the one of the same team and service).
        pub async fn put_route(pool: &Pool, route: &StoredRoute) -> Result<(), StoreError> {
            let webhooks = serde_json::to_string(&route.webhooks).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO routes (team, service, page, ticket, chat, webhooks, updated_at, updated_by) ");
            sql.push_values(std::iter::once(route), |mut v, r| {
                v.push_bind(r.team.clone())
                    .push_bind(r.service.clone().unwrap_or_default())
                    .push_bind(r.page.clone())
                    .push_bind(r.ticket.clone())
                    .push_bind(r.chat.clone())
                    .push_bind(webhooks.clone())
                    .push_bind(r.updated_at)
                    .push_bind(r.updated_by.clone());
            });
            sql.push(
                " ON CONFLICT (team, service) DO UPDATE SET page = excluded.page, ticket = excluded.ticket, \
                 chat = excluded.chat, webhooks = excluded.webhooks, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            );
            let mut tx = pool.begin().await?;
            sql.build().execute(&mut *tx).await?;
            routes_changed(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Removes a route; `false` when there was none.
        pub async fn delete_route(pool: &Pool, team: &str, service: Option<&str>) -> Result<bool, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("DELETE FROM routes WHERE team = ");
            sql.push_bind(team.to_owned()).push(" AND service = ").push_bind(service.unwrap_or_default().to_owned());
            let mut tx = pool.begin().await?;
            let removed = sql.build().execute(&mut *tx).await?.rows_affected() == 1;
            routes_changed(&mut tx).await?;
            tx.commit().await?;
            Ok(removed)
        }

        /// Routes are among the rules the pipeline keeps in memory (it hands them to the
        /// outbox with each new incident): their change moves the `config` counter.
        async fn routes_changed(tx: &mut sqlx::Transaction<'_, $db>) -> Result<(), StoreError> {
            sqlx::query("UPDATE progress SET seq = seq + 1 WHERE stage = 'config'")
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Deletes settled deliveries (sent or dead) older than `before`, and the
        /// references of incidents that are gone.
        pub async fn prune(pool: &Pool, before: i64) -> Result<u64, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("DELETE FROM deliveries WHERE state <> 'pending' AND updated_at < ");
            sql.push_bind(before);
            let mut removed = sql.build().execute(pool).await?.rows_affected();
            removed += sqlx::query(
                "DELETE FROM delivery_refs WHERE incident_id NOT IN (SELECT id FROM incidents) \
                 AND incident_id NOT IN (SELECT incident_id FROM deliveries)",
            )
            .execute(pool)
            .await?
            .rows_affected();
            Ok(removed)
        }
    };
}

/// The functions for SQLite.
pub(crate) mod sqlite {
    backend!(sqlx::Sqlite);
}

/// The functions for PostgreSQL.
pub(crate) mod postgres {
    backend!(sqlx::Postgres);
}
