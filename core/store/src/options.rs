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
}

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
