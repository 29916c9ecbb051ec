//! Incident commands (migration 0012), written once for both backends like `logs.rs`.
//! The API records a command and waits for its outcome; the pipeline, wherever it runs,
//! applies pending commands in order between batches and records what became of each.

use tocsin_model::rows::{Command, CommandOutcome, CommandRow};

use crate::error::StoreError;

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        /// Records a command for the pipeline.
        pub async fn request(pool: &Pool, row: &CommandRow) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO incident_commands (id, incident_id, team, command, who, requested_at) ",
            );
            sql.push_values(std::iter::once(row), |mut v, r| {
                v.push_bind(r.id.clone())
                    .push_bind(r.incident_id.clone())
                    .push_bind(r.team.clone())
                    .push_bind(r.command.as_str())
                    .push_bind(r.who.clone())
                    .push_bind(r.requested_at);
            });
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// The oldest commands not applied yet, in the order they were asked.
        pub async fn pending(pool: &Pool, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "SELECT id, incident_id, team, command, who, requested_at FROM incident_commands \
                 WHERE outcome IS NULL ORDER BY requested_at, id LIMIT ",
            );
            sql.push_bind(limit);
            sql.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let command: String = row.try_get("command")?;
                    Ok(CommandRow {
                        id: row.try_get("id")?,
                        incident_id: row.try_get("incident_id")?,
                        team: row.try_get("team")?,
                        command: Command::parse(&command).ok_or_else(|| {
                            StoreError::Corrupt(format!("unknown incident command {command}"))
                        })?,
                        who: row.try_get("who")?,
                        requested_at: row.try_get("requested_at")?,
                    })
                })
                .collect()
        }

        /// Records what became of a command; a command already finished keeps its outcome.
        pub async fn finish(
            pool: &Pool,
            id: &str,
            outcome: CommandOutcome,
            at: i64,
        ) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE incident_commands SET outcome = ");
            sql.push_bind(outcome.as_str())
                .push(", done_at = ")
                .push_bind(at)
                .push(" WHERE id = ")
                .push_bind(id.to_owned())
                .push(" AND outcome IS NULL");
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// What became of a command: `None` while it is pending (or unknown).
        pub async fn outcome(pool: &Pool, id: &str) -> Result<Option<CommandOutcome>, StoreError> {
            let mut sql =
                QueryBuilder::<$db>::new("SELECT outcome FROM incident_commands WHERE id = ");
            sql.push_bind(id.to_owned());
            let Some(row) = sql.build().fetch_optional(pool).await? else {
                return Ok(None);
            };
            let outcome: Option<String> = row.try_get("outcome")?;
            outcome
                .map(|text| {
                    CommandOutcome::parse(&text).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown command outcome {text}"))
                    })
                })
                .transpose()
        }

        /// Forgets commands finished before `before`.
        pub async fn prune(pool: &Pool, before: i64) -> Result<u64, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "DELETE FROM incident_commands WHERE outcome IS NOT NULL AND done_at < ",
            );
            sql.push_bind(before);
            Ok(sql.build().execute(pool).await?.rows_affected())
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
