//! The plugin tables (migration 0003), written once for both backends like
//! `pipeline.rs`: versions of each team's plugins, their key/value state, and the dead
//! letters of failed transformer calls.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::StoreError;
use tocsin_model::plugin::{Kind, VersionInfo};

/// A stored plugin: its kind, active version and every version (without the bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRow {
    /// Owning team.
    pub team: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// The version in use.
    pub active_version: i64,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// A new version to store.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// Owning team.
    pub team: &'a str,
    /// Name.
    pub name: &'a str,
    /// Kind.
    pub kind: Kind,
    /// Hex SHA-256 of `component`.
    pub sha256: &'a str,
    /// The component's bytes.
    pub component: &'a [u8],
    /// Unix ms.
    pub at: i64,
    /// Token id.
    pub by: &'a str,
}

/// A transformer input kept because its plugin failed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Id, returned to the sender in the 422.
    pub id: String,
    /// Owning team.
    pub team: String,
    /// The transformer that failed.
    pub plugin: String,
    /// When it was received (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: time::OffsetDateTime,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// The request's headers (credentials removed).
    pub headers: Vec<(String, String)>,
    /// The body, as text when it is UTF-8, else base16.
    pub body: String,
    /// Whether `body` is base16.
    pub body_hex: bool,
    /// What failed.
    pub error: String,
}

fn time(ms: i64) -> Result<time::OffsetDateTime, StoreError> {
    crate::decode::from_millis(ms)
}

macro_rules! backend {
    ($db:ty) => {
        use sqlx::{QueryBuilder, Row as _};

        use super::*;

        type Pool = sqlx::Pool<$db>;

        /// Stores a new version and makes it active; returns its number.
        pub async fn put_version(pool: &Pool, new: &NewVersion<'_>) -> Result<i64, StoreError> {
            let mut tx = pool.begin().await?;
            let current: Option<(String,)> = {
                let mut q = QueryBuilder::<$db>::new("SELECT kind FROM plugins WHERE team = ");
                q.push_bind(new.team).push(" AND name = ").push_bind(new.name);
                q.build_query_as().fetch_optional(&mut *tx).await?
            };
            if let Some((kind,)) = &current
                && kind != new.kind.as_str()
            {
                return Err(StoreError::Corrupt(format!(
                    "plugin {} is a {kind}, not a {}",
                    new.name,
                    new.kind.as_str()
                )));
            }
            let (last,): (Option<i64>,) = {
                let mut q = QueryBuilder::<$db>::new("SELECT MAX(version) FROM plugin_versions WHERE team = ");
                q.push_bind(new.team).push(" AND name = ").push_bind(new.name);
                q.build_query_as().fetch_one(&mut *tx).await?
            };
            let version = last.unwrap_or(0) + 1;
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO plugin_versions (team, name, version, sha256, size, component, uploaded_at, uploaded_by) ",
            );
            q.push_values([new], |mut b, n| {
                b.push_bind(n.team)
                    .push_bind(n.name)
                    .push_bind(version)
                    .push_bind(n.sha256)
                    .push_bind(n.component.len() as i64)
                    .push_bind(n.component)
                    .push_bind(n.at)
                    .push_bind(n.by);
            });
            q.build().execute(&mut *tx).await?;
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO plugins (team, name, kind, active_version, updated_at) ",
            );
            q.push_values([new], |mut b, n| {
                b.push_bind(n.team)
                    .push_bind(n.name)
                    .push_bind(n.kind.as_str())
                    .push_bind(version)
                    .push_bind(n.at);
            });
            q.push(" ON CONFLICT (team, name) DO UPDATE SET active_version = ")
                .push_bind(version)
                .push(", updated_at = ")
                .push_bind(new.at);
            q.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(version)
        }

        /// Plugins with their versions, one team's (or all), by team and name.
        pub async fn plugins(pool: &Pool, team: Option<&str>) -> Result<Vec<PluginRow>, StoreError> {
            let mut q = QueryBuilder::<$db>::new(
                "SELECT p.team, p.name, p.kind, p.active_version, v.version, v.sha256, v.size, \
                 v.uploaded_at, v.uploaded_by FROM plugins p JOIN plugin_versions v \
                 ON v.team = p.team AND v.name = p.name",
            );
            if let Some(team) = team {
                q.push(" WHERE p.team = ").push_bind(team);
            }
            q.push(" ORDER BY p.team, p.name, v.version");
            let rows = q.build().fetch_all(pool).await?;
            let mut out: Vec<PluginRow> = Vec::new();
            for row in rows {
                let team: String = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let version = VersionInfo {
                    version: row.try_get(4)?,
                    sha256: row.try_get(5)?,
                    size: row.try_get(6)?,
                    uploaded_at: time(row.try_get(7)?)?,
                    uploaded_by: row.try_get(8)?,
                };
                match out.last_mut() {
                    Some(last) if last.team == team && last.name == name => last.versions.push(version),
                    _ => {
                        let kind: String = row.try_get(2)?;
                        out.push(PluginRow {
                            kind: Kind::parse(&kind)
                                .ok_or_else(|| StoreError::Corrupt(format!("plugin kind \"{kind}\"")))?,
                            team,
                            name,
                            active_version: row.try_get(3)?,
                            versions: vec![version],
                        });
                    }
                }
            }
            Ok(out)
        }

        /// The bytes of one version.
        pub async fn component(pool: &Pool, team: &str, name: &str, version: i64) -> Result<Option<Vec<u8>>, StoreError> {
            let mut q = QueryBuilder::<$db>::new("SELECT component FROM plugin_versions WHERE team = ");
            q.push_bind(team).push(" AND name = ").push_bind(name).push(" AND version = ").push_bind(version);
            let row: Option<(Vec<u8>,)> = q.build_query_as().fetch_optional(pool).await?;
            Ok(row.map(|(bytes,)| bytes))
        }

        /// The precompiled artifact of a component for one engine hash.
        pub async fn artifact(pool: &Pool, sha256: &str, engine: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let mut q = QueryBuilder::<$db>::new("SELECT artifact FROM plugin_artifacts WHERE sha256 = ");
            q.push_bind(sha256).push(" AND engine = ").push_bind(engine);
            let row: Option<(Vec<u8>,)> = q.build_query_as().fetch_optional(pool).await?;
            Ok(row.map(|(bytes,)| bytes))
        }

        /// Stores (or replaces) the artifact of a component for one engine hash.
        pub async fn put_artifact(pool: &Pool, sha256: &str, engine: &str, artifact: &[u8], at: i64) -> Result<(), StoreError> {
            let mut q = QueryBuilder::<$db>::new("INSERT INTO plugin_artifacts (sha256, engine, artifact, created_at) ");
            q.push_values([()], |mut b, ()| {
                b.push_bind(sha256).push_bind(engine).push_bind(artifact).push_bind(at);
            });
            q.push(" ON CONFLICT (sha256, engine) DO UPDATE SET artifact = excluded.artifact, created_at = excluded.created_at");
            q.build().execute(pool).await?;
            Ok(())
        }

        /// Makes a stored version active.
        pub async fn activate(pool: &Pool, team: &str, name: &str, version: i64, at: i64) -> Result<(), StoreError> {
            let mut q = QueryBuilder::<$db>::new("UPDATE plugins SET active_version = ");
            q.push_bind(version)
                .push(", updated_at = ")
                .push_bind(at)
                .push(" WHERE team = ")
                .push_bind(team)
                .push(" AND name = ")
                .push_bind(name);
            q.build().execute(pool).await?;
            Ok(())
        }

        /// Removes a plugin, its versions, state and dead letters; `false` when absent.
        pub async fn delete(pool: &Pool, team: &str, name: &str) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await?;
            let mut removed = 0;
            for (table, column) in [
                ("plugins", "name"),
                ("plugin_versions", "name"),
                ("plugin_state", "name"),
                ("dead_letters", "plugin"),
            ] {
                let mut q = QueryBuilder::<$db>::new(format!("DELETE FROM {table} WHERE team = "));
                q.push_bind(team).push(format!(" AND {column} = ")).push_bind(name);
                let n = q.build().execute(&mut *tx).await?.rows_affected();
                if table == "plugins" {
                    removed = n;
                }
            }
            // Artifacts of components no version uses any more.
            QueryBuilder::<$db>::new(
                "DELETE FROM plugin_artifacts WHERE sha256 NOT IN (SELECT sha256 FROM plugin_versions)",
            )
            .build()
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(removed > 0)
        }

        /// A plugin's key/value state.
        pub async fn state(pool: &Pool, team: &str, name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            let mut q = QueryBuilder::<$db>::new("SELECT key, value FROM plugin_state WHERE team = ");
            q.push_bind(team).push(" AND name = ").push_bind(name);
            Ok(q.build_query_as().fetch_all(pool).await?)
        }

        /// Writes and removes keys of a plugin's state in one transaction.
        pub async fn save_state(
            pool: &Pool,
            team: &str,
            name: &str,
            puts: &[(String, Vec<u8>)],
            deletes: &[String],
        ) -> Result<(), StoreError> {
            let mut tx = pool.begin().await?;
            for key in deletes {
                let mut q = QueryBuilder::<$db>::new("DELETE FROM plugin_state WHERE team = ");
                q.push_bind(team).push(" AND name = ").push_bind(name).push(" AND key = ").push_bind(key);
                q.build().execute(&mut *tx).await?;
            }
            for chunk in puts.chunks(200) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO plugin_state (team, name, key, value) ");
                q.push_values(chunk, |mut b, (key, value)| {
                    b.push_bind(team).push_bind(name).push_bind(key).push_bind(value);
                });
                q.push(" ON CONFLICT (team, name, key) DO UPDATE SET value = excluded.value");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// Keeps a failed transformer input.
        pub async fn put_dead_letter(pool: &Pool, letter: &DeadLetter, body: &[u8]) -> Result<(), StoreError> {
            let headers = serde_json::to_string(&letter.headers).unwrap_or_default();
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO dead_letters (id, team, plugin, received_at, content_type, headers, body, error) ",
            );
            q.push_values([letter], |mut b, l| {
                b.push_bind(&l.id)
                    .push_bind(&l.team)
                    .push_bind(&l.plugin)
                    .push_bind(tocsin_model::clock::millis(l.received_at))
                    .push_bind(&l.content_type)
                    .push_bind(&headers)
                    .push_bind(body)
                    .push_bind(&l.error);
            });
            q.build().execute(pool).await?;
            Ok(())
        }

        /// A plugin's dead letters, newest first.
        pub async fn dead_letters(pool: &Pool, team: &str, plugin: &str, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
            let mut q = QueryBuilder::<$db>::new(
                "SELECT id, team, plugin, received_at, content_type, headers, body, error FROM dead_letters WHERE team = ",
            );
            q.push_bind(team)
                .push(" AND plugin = ")
                .push_bind(plugin)
                .push(" ORDER BY received_at DESC, id DESC LIMIT ")
                .push_bind(limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let headers: String = row.try_get(5)?;
                    let body: Vec<u8> = row.try_get(6)?;
                    let (body, body_hex) = match String::from_utf8(body) {
                        Ok(text) => (text, false),
                        Err(e) => (hex::encode(e.as_bytes()), true),
                    };
                    Ok(DeadLetter {
                        id: row.try_get(0)?,
                        team: row.try_get(1)?,
                        plugin: row.try_get(2)?,
                        received_at: time(row.try_get(3)?)?,
                        content_type: row.try_get(4)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        body,
                        body_hex,
                        error: row.try_get(7)?,
                    })
                })
                .collect()
        }

        /// Deletes dead letters received before `before`.
        pub async fn prune_dead_letters(pool: &Pool, before: i64) -> Result<u64, StoreError> {
            let mut q = QueryBuilder::<$db>::new("DELETE FROM dead_letters WHERE received_at < ");
            q.push_bind(before);
            Ok(q.build().execute(pool).await?.rows_affected())
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
