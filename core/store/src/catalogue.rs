//! The catalogue and suppressions (services, suppressions and their audit trail), as the
//! API writes them and every stage reads them: written once for both backends, as in
//! [`crate::pipeline`]. A write here bumps the `config` counter, so the pipeline reloads
//! its rules.

use tocsin_model::catalogue::{Service, ServiceSpec};
use tocsin_model::clock::millis;
use tocsin_model::suppression::{Draft, lifecycle};
use tocsin_model::views::{AuditEntry, SuppressionRecord};

use crate::decode::{json, time};
use crate::error::StoreError;

macro_rules! backend {
    ($db:ty, $jsonb:literal, $text:literal, $batched:literal, $backend:ident) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        async fn bump_config(tx: &mut sqlx::Transaction<'_, $db>) -> Result<(), StoreError> {
            sqlx::query("UPDATE progress SET seq = seq + 1 WHERE stage = 'config'")
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Creates or replaces a service.
        pub async fn put_service(pool: &Pool, service: &Service, now: i64) -> Result<(), StoreError> {
            let spec = serde_json::to_string(&service.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO services (name, team, spec, updated_at, updated_by) ");
            sql.push_values(std::iter::once(service), |mut v, s| {
                v.push_bind(s.name.clone())
                    .push_bind(s.spec.team.clone().unwrap_or_default())
                    .push_bind(spec.clone())
                    .push_bind(now)
                    .push_bind(s.updated_by.clone());
            });
            sql.push(
                " ON CONFLICT (name) DO UPDATE SET team = excluded.team, spec = excluded.spec, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            );
            sql.build().execute(&mut *tx).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Services in name order, one team's or all.
        pub async fn services(pool: &Pool, team: Option<&str>) -> Result<Vec<Service>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT name, team, spec, updated_at, updated_by FROM services");
            if let Some(team) = team {
                sql.push(" WHERE team = ").push_bind(team.to_owned());
            }
            sql.push(" ORDER BY name");
            sql.build().fetch_all(pool).await?.iter().map(service_row).collect()
        }

        /// One service.
        pub async fn service(pool: &Pool, name: &str) -> Result<Option<Service>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT name, team, spec, updated_at, updated_by FROM services WHERE name = ");
            sql.push_bind(name.to_owned());
            sql.build().fetch_optional(pool).await?.as_ref().map(service_row).transpose()
        }

        fn service_row(row: &<$db as sqlx::Database>::Row) -> Result<Service, StoreError> {
            let name: String = row.try_get("name")?;
            let spec: String = row.try_get("spec")?;
            let mut spec: ServiceSpec = serde_json::from_str(&spec)
                .map_err(|e| StoreError::Corrupt(format!("service {name}: {e}")))?;
            spec.team = Some(row.try_get("team")?);
            Ok(Service {
                name,
                spec,
                updated_at: time(row.try_get("updated_at")?)?,
                updated_by: row.try_get("updated_by")?,
            })
        }

        /// Stores a new suppression and its `created` audit entry.
        pub async fn create_suppression(pool: &Pool, record: &SuppressionRecord, now: i64) -> Result<(), StoreError> {
            let draft = &record.draft;
            let metadata = serde_json::to_string(&draft.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let targets = serde_json::to_string(&draft.targets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO suppressions (id, team, description, start_time, end_time, metadata, targets, \
                 created_at, created_by, forced) ",
            );
            sql.push_values(std::iter::once(record), |mut v, r| {
                v.push_bind(r.id.clone())
                    .push_bind(r.team.clone())
                    .push_bind(draft.description.clone())
                    .push_bind(millis(draft.start_time))
                    .push_bind(millis(draft.end_time))
                    .push_bind(metadata.clone())
                    .push_bind(targets.clone())
                    .push_bind(now)
                    .push_bind(r.created_by.clone())
                    .push_bind(r.forced);
            });
            sql.build().execute(&mut *tx).await?;
            let detail = serde_json::json!({ "suppression": draft, "forced": record.forced }).to_string();
            audit(&mut tx, &record.id, now, &record.created_by, "created", &detail).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn audit(tx: &mut sqlx::Transaction<'_, $db>, id: &str, at: i64, actor: &str, action: &str, detail: &str) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("INSERT INTO suppression_audit (suppression_id, at, actor, action, detail) ");
            sql.push_values(std::iter::once(()), |mut v, ()| {
                v.push_bind(id.to_owned())
                    .push_bind(at)
                    .push_bind(actor.to_owned())
                    .push_bind(action.to_owned())
                    .push_bind(detail.to_owned());
            });
            sql.build().execute(&mut **tx).await?;
            Ok(())
        }

        /// Changes a suppression's start and end and audits the change as `action`.
        #[allow(clippy::too_many_arguments)]
        pub async fn retime_suppression(pool: &Pool, id: &str, start: i64, end: i64, actor: &str, action: &str, detail: &str, now: i64) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::<$db>::new("UPDATE suppressions SET start_time = ");
            sql.push_bind(start).push(", end_time = ").push_bind(end).push(" WHERE id = ").push_bind(id.to_owned());
            sql.build().execute(&mut *tx).await?;
            audit(&mut tx, id, now, actor, action, detail).await?;
            bump_config(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Suppressions, newest first: all, or those a team may see: its own, and those of
        /// no team (an admin's, for every team) that stopped or hold one of its events.
        pub async fn suppressions(pool: &Pool, id: Option<&str>, team: Option<&str>, now: i64) -> Result<Vec<SuppressionRecord>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT id, team, description, start_time, end_time, metadata, targets, created_at, created_by, forced \
                 FROM suppressions s WHERE 1 = 1",
            );
            if let Some(id) = id {
                sql.push(" AND id = ").push_bind(id.to_owned());
            }
            if let Some(team) = team {
                sql.push(" AND (team = ").push_bind(team.to_owned())
                    .push(" OR (team IS NULL AND (EXISTS (SELECT 1 FROM history h WHERE h.suppression_id = s.id AND h.team = ")
                    .push_bind(team.to_owned())
                    .push(") OR EXISTS (SELECT 1 FROM held d WHERE d.suppression_id = s.id AND d.team = ")
                    .push_bind(team.to_owned())
                    .push("))))");
            }
            sql.push(" ORDER BY created_at DESC, id DESC");
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let id: String = row.try_get("id")?;
                    let start: i64 = row.try_get("start_time")?;
                    let end: i64 = row.try_get("end_time")?;
                    let metadata: String = row.try_get("metadata")?;
                    let targets: String = row.try_get("targets")?;
                    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("suppression {id}: {e}"));
                    Ok(SuppressionRecord {
                        team: row.try_get("team")?,
                        draft: Draft {
                            description: row.try_get("description")?,
                            start_time: time(start)?,
                            end_time: time(end)?,
                            metadata: serde_json::from_str(&metadata).map_err(corrupt)?,
                            targets: serde_json::from_str(&targets).map_err(corrupt)?,
                        },
                        state: lifecycle::state(start, end, now),
                        created_at: time(row.try_get("created_at")?)?,
                        created_by: row.try_get("created_by")?,
                        forced: row.try_get("forced")?,
                        id,
                    })
                })
                .collect()
        }

        /// A suppression's audit trail, oldest first.
        pub async fn audit_trail(pool: &Pool, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("SELECT at, actor, action, detail FROM suppression_audit WHERE suppression_id = ");
            sql.push_bind(id.to_owned()).push(" ORDER BY at");
            let rows = sql.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let detail: String = row.try_get("detail")?;
                    Ok(AuditEntry {
                        at: time(row.try_get("at")?)?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        detail: json(&detail),
                    })
                })
                .collect()
        }

    };
}

/// The functions for SQLite.
pub(crate) mod sqlite {
    backend!(sqlx::Sqlite, "", "", true, sqlite);
}

/// The functions for PostgreSQL.
pub(crate) mod postgres {
    backend!(sqlx::Postgres, "::jsonb", "::text", false, postgres);
}
