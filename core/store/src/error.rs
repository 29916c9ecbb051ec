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

/// Why the database takes no writes for now, through no fault of the request: the same
/// request succeeds once the outage ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Out of disk space (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`).
    DiskFull,
    /// The database cannot be reached: connections refused or closed, the server
    /// shutting down or starting up.
    Unreachable,
}

impl Outage {
    /// What a client is told, before "nothing was accepted".
    pub fn message(self) -> &'static str {
        match self {
            Self::DiskFull => "the database's disk is full",
            Self::Unreachable => "the database cannot be reached",
        }
    }

    /// Its name in metrics (`reason` of `tocsin_events_rejected_total`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::DiskFull => "disk-full",
            Self::Unreachable => "unreachable",
        }
    }
}

impl StoreError {
    /// The outage behind this error, if it is one: nothing of the write is stored, and
    /// the same write succeeds once it ends.
    pub fn outage(&self) -> Option<Outage> {
        let Self::Database(e) = self else {
            return None;
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Some(Outage::Unreachable)
            }
            sqlx::Error::Database(e) => {
                let code = e.code()?;
                match code.as_ref() {
                    "53100" => Some(Outage::DiskFull),
                    // admin_shutdown, crash_shutdown, cannot_connect_now, and the
                    // connection exceptions (class 08).
                    "57P01" | "57P02" | "57P03" => Some(Outage::Unreachable),
                    c if c.starts_with("08") => Some(Outage::Unreachable),
                    // SQLite: the primary code (13), or an extended one whose low byte
                    // is it.
                    c => c
                        .parse::<u32>()
                        .ok()
                        .filter(|c| c & 0xff == 13)
                        .map(|_| Outage::DiskFull),
                }
            }
            _ => None,
        }
    }
}
