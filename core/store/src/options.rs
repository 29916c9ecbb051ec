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
/// took): with a million alerts tracked, 241 MiB resident at 8 MiB, 265 at 16 and 315 at
/// 32. A larger cache catches up faster after a wide outage (a million new failing
/// identities: 53 s at 8 MiB, 50 at 16, 46 at 32), as the pages of the alerts' key
/// index stay in it, and pages faster under load (notification p99 7.2 ms at 32 MiB
/// against 9.2-10.0 ms at 8 in the notify benchmark).
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 32;

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
