//! The context tables (migrations 0005 and 0011), written once for both backends like
//! `pipeline.rs`: runbooks, recent changes, and the sections collected per incident.
//! Runbooks and changes belong to a team: every read names the team it reads for.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::StoreError;
use tocsin_model::views::ContextSection;

/// A runbook: what to do when something fails, in Markdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Runbook {
    /// Its id, such as `TSG-BENDER-12`, unique within its team.
    pub id: String,
    /// The team that owns it: only it (or an admin acting for it) reads and changes it.
    pub team: String,
    /// The text.
    pub markdown: String,
    /// When it was last written, Unix ms.
    pub updated_at: i64,
    /// Token id of the last writer.
    pub updated_by: String,
}

/// A deploy or configuration change of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Its id.
    pub id: String,
    /// The team that recorded it.
    pub team: String,
    /// The service changed.
    pub service: String,
    /// `deploy`, `config` or `other`.
    pub kind: String,
    /// What changed.
    pub description: String,
    /// Where to read more (a pull request, a pipeline run); may be empty.
    pub link: String,
    /// When it happened, Unix ms.
    pub at: i64,
    /// Token id that recorded it.
    pub recorded_by: String,
}

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        /// Creates or replaces a team's runbook.
        pub async fn put_runbook(pool: &Pool, runbook: &Runbook) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO runbooks (id, team, markdown, updated_at, updated_by) ");
            sql.push_values(std::iter::once(runbook), |mut v, r| {
                v.push_bind(r.id.clone()).push_bind(r.team.clone()).push_bind(r.markdown.clone())
                    .push_bind(r.updated_at).push_bind(r.updated_by.clone());
            });
            sql.push(" ON CONFLICT (team, id) DO UPDATE SET markdown = excluded.markdown, updated_at = excluded.updated_at, \
                      updated_by = excluded.updated_by");
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// One runbook of a team.
        pub async fn runbook(pool: &Pool, team: &str, id: &str) -> Result<Option<Runbook>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT id, team, markdown, updated_at, updated_by FROM runbooks WHERE team = ");
            sql.push_bind(team.to_owned()).push(" AND id = ").push_bind(id.to_owned());
            let Some(row) = sql.build().fetch_optional(pool).await? else { return Ok(None) };
            Ok(Some(Runbook {
                id: row.try_get("id")?,
                team: row.try_get("team")?,
                markdown: row.try_get("markdown")?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            }))
        }

        /// Records a change.
        pub async fn put_change(pool: &Pool, change: &Change) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO changes (id, team, service, kind, description, link, at, recorded_by) ",
            );
            sql.push_values(std::iter::once(change), |mut v, c| {
                v.push_bind(c.id.clone()).push_bind(c.team.clone()).push_bind(c.service.clone())
                    .push_bind(c.kind.clone()).push_bind(c.description.clone()).push_bind(c.link.clone())
                    .push_bind(c.at).push_bind(c.recorded_by.clone());
            });
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// A service's changes since `since` recorded by one team (or, `None`, by any),
        /// newest first.
        pub async fn changes(
            pool: &Pool,
            team: Option<&str>,
            service: &str,
            since: i64,
            limit: i64,
        ) -> Result<Vec<Change>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT id, team, service, kind, description, link, at, recorded_by FROM changes WHERE service = ",
            );
            sql.push_bind(service.to_owned()).push(" AND at >= ").push_bind(since);
            if let Some(team) = team {
                sql.push(" AND team = ").push_bind(team.to_owned());
            }
            sql.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(limit);
            sql.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(Change {
                        id: row.try_get("id")?,
                        team: row.try_get("team")?,
                        service: row.try_get("service")?,
                        kind: row.try_get("kind")?,
                        description: row.try_get("description")?,
                        link: row.try_get("link")?,
                        at: row.try_get("at")?,
                        recorded_by: row.try_get("recorded_by")?,
                    })
                })
                .collect()
        }

        /// Replaces an incident's collected context.
        pub async fn put_context(pool: &Pool, incident_id: &str, sections: &[ContextSection]) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new("DELETE FROM incident_context WHERE incident_id = ");
            sql.push_bind(incident_id.to_owned());
            sql.build().execute(&mut *tx).await?;
            if !sections.is_empty() {
                let mut sql = QueryBuilder::<$db>::new(
                    "INSERT INTO incident_context (incident_id, position, title, markdown, error, collected_at) ",
                );
                sql.push_values(sections.iter().enumerate(), |mut v, (i, s)| {
                    v.push_bind(incident_id.to_owned()).push_bind(i as i64).push_bind(s.title.clone())
                        .push_bind(s.markdown.clone()).push_bind(s.error.clone()).push_bind(s.collected_at);
                });
                sql.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// An incident's collected context, in collector order.
        pub async fn context(pool: &Pool, incident_id: &str) -> Result<Vec<ContextSection>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT title, markdown, error, collected_at FROM incident_context WHERE incident_id = ",
            );
            sql.push_bind(incident_id.to_owned()).push(" ORDER BY position");
            sql.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(ContextSection {
                        title: row.try_get("title")?,
                        markdown: row.try_get("markdown")?,
                        error: row.try_get("error")?,
                        collected_at: row.try_get("collected_at")?,
                    })
                })
                .collect()
        }

        /// Deletes the context of incidents that are gone, and changes older than `before`.
        pub async fn prune(pool: &Pool, before: i64) -> Result<u64, StoreError> {
            let mut removed = sqlx::query("DELETE FROM incident_context WHERE incident_id NOT IN (SELECT id FROM incidents)")
                .execute(pool)
                .await?
                .rows_affected();
            let mut sql = QueryBuilder::<$db>::new("DELETE FROM changes WHERE at < ");
            sql.push_bind(before);
            removed += sql.build().execute(pool).await?.rows_affected();
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
