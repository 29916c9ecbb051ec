//! How a store call fails.

/// A store failure. Callers map it to a 500 and log it; its text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a backend Tocsin does not have.
    #[error("unsupported database URL \"{0}\": use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A stored row no longer parses (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database lacks migrations this build needs, and the caller asked not to
    /// apply them ([`crate::options::Migrations::Require`]).
    #[error(
        "the database schema is not up to date ({0}): run `tocsin migrate --database-url …` first"
    )]
    NotMigrated(String),
    /// Another process committed pipeline state since this one loaded it.
    #[error("another process moved the pipeline on; reloading its state")]
    Conflict,
}
