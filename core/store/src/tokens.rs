//! API tokens, stored as hashes: written once for both backends.

use serde::Serialize;
use time::OffsetDateTime;

use tocsin_model::clock::millis;

use crate::decode::from_millis;
use crate::error::StoreError;

/// A stored token, without the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    /// Public id, used to revoke it.
    pub id: String,
    /// The team it acts for; `None` for admin tokens.
    pub team: Option<String>,
    /// Whether it may act for every team.
    pub admin: bool,
    /// A note from whoever created it.
    pub description: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        const COLUMNS: &str =
            "SELECT id, team, admin, description, created_at, revoked_at FROM tokens";

        /// Stores a new token (its hash only).
        pub async fn create(
            pool: &Pool,
            token: &TokenRecord,
            hash: &str,
        ) -> Result<(), StoreError> {
            let mut sql = QueryBuilder::<$db>::new(
                "INSERT INTO tokens (id, hash, team, admin, description, created_at) ",
            );
            sql.push_values(std::iter::once(token), |mut v, t| {
                v.push_bind(t.id.clone())
                    .push_bind(hash.to_owned())
                    .push_bind(t.team.clone())
                    .push_bind(t.admin)
                    .push_bind(t.description.clone())
                    .push_bind(millis(t.created_at));
            });
            sql.build().execute(pool).await?;
            Ok(())
        }

        /// The live (not revoked) token with this hash.
        pub async fn by_hash(pool: &Pool, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(COLUMNS);
            sql.push(" WHERE hash = ")
                .push_bind(hash.to_owned())
                .push(" AND revoked_at IS NULL");
            sql.build()
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(record)
                .transpose()
        }

        /// Every token, revoked ones included.
        pub async fn list(pool: &Pool) -> Result<Vec<TokenRecord>, StoreError> {
            let mut sql = QueryBuilder::<$db>::new(COLUMNS);
            sql.push(" ORDER BY created_at, id");
            sql.build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(record)
                .collect()
        }

        /// Revokes a token; `false` when no live token has this id.
        pub async fn revoke(pool: &Pool, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
            let mut sql = QueryBuilder::<$db>::new("UPDATE tokens SET revoked_at = ");
            sql.push_bind(millis(at))
                .push(" WHERE id = ")
                .push_bind(id.to_owned())
                .push(" AND revoked_at IS NULL");
            Ok(sql.build().execute(pool).await?.rows_affected() == 1)
        }

        fn record(row: &<$db as sqlx::Database>::Row) -> Result<TokenRecord, StoreError> {
            Ok(TokenRecord {
                id: row.try_get("id")?,
                team: row.try_get("team")?,
                admin: row.try_get("admin")?,
                description: row.try_get("description")?,
                created_at: from_millis(row.try_get("created_at")?)?,
                revoked_at: row
                    .try_get::<Option<i64>, _>("revoked_at")?
                    .map(from_millis)
                    .transpose()?,
            })
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
