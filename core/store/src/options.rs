//! How a store is opened, beyond its URL.

use crate::sqlite::Synchronous;

/// Options that are not part of the database URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// SQLite's `synchronous` setting (ignored by PostgreSQL).
    pub synchronous: Synchronous,
    /// Whether opening a PostgreSQL database applies pending migrations.
    pub migrations: Migrations,
    /// Most PostgreSQL connections this process holds; `None` for the default (16).
    /// SQLite's pools are fixed (one writer per file and a few readers).
    pub connections: Option<u32>,
    /// The page cache of SQLite's writer connection, in MiB; `None` for the default
    /// ([`DEFAULT_SQLITE_CACHE_MIB`]). Ignored by PostgreSQL.
    pub sqlite_cache_mib: Option<u32>,
}

/// The writer's page cache unless told otherwise. It costs about three times its size
/// in resident memory (the C allocator's arenas keep what a large commit's dirty pages
/// took). With a million new failing identities (a wide outage), once caught up: 215-231
/// MiB resident at 8 MiB, 241-265 at 16, 270-289 at 32; the catch-up took 37.0-38.8 s at
/// 8 and 35.2-39.4 s at 32, as the alerts' keys are merged in sorted runs
/// (`alert_keys`) rather than each at a random page of an index the cache had to hold.
/// Notification p99 under load did not change with it (7.1-7.8 ms at 8 and 32).
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 8;

/// What opening a database does about its schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations: the local server and the CLI, which own their database.
    #[default]
    Apply,
    /// Apply nothing and refuse a database that lacks one ([`StoreError::NotMigrated`]):
    /// processes that share a database with others and start often (the Lambda
    /// functions), where migrating is a deploy step (`tocsin migrate`). SQLite, embedded
    /// in one process, always applies.
    Require,
}
