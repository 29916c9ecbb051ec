//! The pipeline's lease: one process at a time runs the pipeline over a shared database.
//! On PostgreSQL it is a session advisory lock on a connection of its own, held for as
//! long as the lease lives; on SQLite (one process) there is nothing to take.

use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use tracing::warn;

/// The advisory lock's key ("tocsin" on a phone keypad).
pub(crate) const LEASE_KEY: i64 = 862_746;

/// A held lease. Give it back with [`Lease::release`]; dropping it closes its
/// connection, which frees the lock as surely (a process that dies frees it too).
#[derive(Debug)]
pub struct Lease {
    held: Option<PoolConnection<Postgres>>,
}

impl Lease {
    /// A lease with nothing to hold (one process).
    pub(crate) fn local() -> Self {
        Self { held: None }
    }

    /// A lease held by this connection's advisory lock.
    pub(crate) fn postgres(connection: PoolConnection<Postgres>) -> Self {
        Self {
            held: Some(connection),
        }
    }

    /// Gives the lease back, keeping the connection in the pool.
    pub async fn release(mut self) {
        if let Some(mut connection) = self.held.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LEASE_KEY)
                .execute(&mut *connection)
                .await;
            if let Err(e) = unlocked {
                warn!(error = %e, "cannot give the pipeline lease back; closing its connection frees it");
                drop(connection.detach());
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.held.take() {
            // Back in the pool it would keep the lock: close it instead.
            drop(connection.detach());
        }
    }
}
