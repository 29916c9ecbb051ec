//! The logs queries teams register (migration 0009), written once for both backends
//! like `context.rs`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::StoreError;

/// A SQL query a team registered under a name, for its events' `logs` collectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// The team that owns it: only its incidents run it.
    pub team: String,
    /// Its name, unique within the team, as events give it in `params.query`.
    pub name: String,
    /// One read statement with `:name` parameters.
    pub sql: String,
    /// What it shows.
    pub description: String,
    /// The parameters it takes, in order of first use.
    pub params: Vec<String>,
    /// When it was last written, Unix ms.
    pub updated_at: i64,
    /// Token id of the last writer.
    pub updated_by: String,
}

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        const COLUMNS: &str = "SELECT team, name, sql, description, params, updated_at, updated_by FROM logs_queries";

        fn from_row(row: &<$db as sqlx::Database>::Row) -> Result<LogsQuery, StoreError> {
            let params: String = row.try_get("params")?;
            Ok(LogsQuery {
                team: row.try_get("team")?,
                name: row.try_get("name")?,
                sql: row.try_get("sql")?,
                description: row.try_get("description")?,
                params: serde_json::from_str(&params).map_err(|e| StoreError::Corrupt(format!("logs query params: {e}")))?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        }

        /// Creates or replaces a team's query.
        pub async fn put(pool: &Pool, query: &LogsQuery) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO logs_queries (team, name, sql, description, params, updated_at, updated_by) ",
            );
            sql.push_values(std::iter::once(query), |mut v, q| {
                v.push_bind(q.team.clone()).push_bind(q.name.clone()).push_bind(q.sql.clone())
                    .push_bind(q.description.clone())
                    .push_bind(serde_json::to_string(&q.params).unwrap_or_else(|_| "[]".into()))
                    .push_bind(q.updated_at).push_bind(q.updated_by.clone());
            });
            sql.push(" ON CONFLICT (team, name) DO UPDATE SET sql = excluded.sql, description = excluded.description, \
                      params = excluded.params, updated_at = excluded.updated_at, updated_by = excluded.updated_by");
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// One team's queries (or every team's), by team and name.
        pub async fn list(pool: &Pool, team: Option<&str>) -> Result<Vec<LogsQuery>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(COLUMNS);
            if let Some(team) = team {
                sql.push(" WHERE team = ").push_bind(team.to_owned());
            }
            sql.push(" ORDER BY team, name");
            sql.build().fetch_all(pool).await?.iter().map(from_row).collect()
        }

        /// One query of a team.
        pub async fn get(pool: &Pool, team: &str, name: &str) -> Result<Option<LogsQuery>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(COLUMNS);
            sql.push(" WHERE team = ").push_bind(team.to_owned()).push(" AND name = ").push_bind(name.to_owned());
            sql.build().fetch_optional(pool).await?.as_ref().map(from_row).transpose()
        }

        /// Removes a query of a team; `false` when it had none of that name.
        pub async fn delete(pool: &Pool, team: &str, name: &str) -> Result<bool, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("DELETE FROM logs_queries WHERE team = ");
            sql.push_bind(team.to_owned()).push(" AND name = ").push_bind(name.to_owned());
            Ok(sql.build().execute(pool).await?.rows_affected() > 0)
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
