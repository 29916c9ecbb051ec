//! Where Tocsin keeps what it must not lose: the event journal, alert state and tokens.
//!
//! Two real backends behind the same traits: SQLite (embedded, the default, a file in
//! WAL mode) and PostgreSQL (when the URL says `postgres://`). Both are tested alike.
//!
//! Layout, from the bottom up (a module uses only those above it in this list):
//! - `error`, `decode`: the failure type, and column values back into domain values.
//! - `journal`, `alerts`, `tokens`: the values the traits take and give that the model
//!   does not own.
//! - `stages`: one trait per stage ([`JournalStore`], [`PipelineStore`],
//!   [`OutboxStore`], [`AdminStore`], [`PluginStore`], and [`ViewStore`] for the reads
//!   they share); [`Store`] is all of them.
//! - the SQL, each module written once for both dialects and instantiated for each:
//!   `pipeline`, `incidents`, `catalogue`, `outbox`, `context`, `logs`, `commands`,
//!   `plugins`, `alerts`, `tokens`.
//! - `forward`: the stage traits for a backend over that SQL.
//! - `sqlite`, `postgres`: each backend's connections, its append and its commit.

mod alerts;
mod catalogue;
mod commands;
mod context;
mod decode;
mod error;
mod forward;
mod incidents;
mod journal;
mod lease;
mod logs;
mod options;
mod outbox;
mod pipeline;
mod plugins;
mod postgres;
mod sqlite;
mod stages;
mod tokens;

use std::sync::Arc;

pub use alerts::{AlertQuery, AlertState};
pub use context::{Change, Runbook};
pub use error::{Outage, StoreError};
pub use incidents::incident_from;
pub use journal::{Accepted, Appended, Record};
pub use lease::Lease;
pub use logs::LogsQuery;
pub use options::{DEFAULT_SQLITE_CACHE_MIB, Migrations, StoreOptions};
pub use outbox::{Delivery, DeliveryQuery, StoreHealth};
pub use pipeline::Encoded;
pub use plugins::{DeadLetter, NewVersion, PluginRow};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, Synchronous};
pub use stages::{
    AdminStore, JournalStore, OutboxStore, PipelineStore, PluginStore, Store, ViewStore,
};
pub use tokens::TokenRecord;

/// Opens the store a URL names, creating a SQLite file on first use, and applies
/// pending migrations.
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    } else if url.starts_with("sqlite:") {
        let cache_mib = options.sqlite_cache_mib.unwrap_or(DEFAULT_SQLITE_CACHE_MIB);
        Ok(Arc::new(
            SqliteStore::open(url, options.synchronous, cache_mib).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(redact(url)))
    }
}

/// A URL with its password, if any, replaced, so it can be logged: the one after the
/// user name, and a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://tocsin.db"), "sqlite://tocsin.db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }
}
