//! Tocsin on AWS Lambda (docs/deploy-aws.md): the stages of the local runner as handlers
//! of what Lambda delivers, over PostgreSQL. The functions in `functions/` are thin
//! `main`s over this crate.
//!
//! ```text
//! api fn ─▶ journal (PostgreSQL, the 202's promise) ─▶ nudge ─▶ pipeline queue (SQS)
//! pipeline fn ◀─ pipeline queue: drains the journal, applies commands ─▶ nudge ─▶ notify queue
//! notify fn ◀─ notify queue: outbox rounds (claims make one send per delivery)
//! tick fn ◀─ schedule: retention, then nudges both queues (timers, retries due)
//! ```
//!
//! The journal in PostgreSQL is the durable append, not SQS: a queue message only says
//! "look at the store". Order, exactly-once and replays come from the journal's cursor,
//! committed with each batch's effects, as on one machine; a lost or repeated message
//! costs at most a delay (the tick nudges every minute) or an empty invocation.
//!
//! Layout: `settings` (the environment every function reads), `nudge` (the messages),
//! `queue` (the SQS client), `batch` (an SQS batch's partial failures, FIFO rules,
//! poison messages), then one module per function: `api`, `pipeline`, `notify`, `tick`.

pub mod api;
pub mod batch;
pub mod notify;
pub mod nudge;
pub mod pipeline;
pub mod queue;
pub mod settings;
pub mod tick;

pub use batch::{Consumer, FALLBACK_BUDGET, Failure, deadline, run_consumer};
pub use nudge::Nudge;
pub use queue::Queue;
pub use settings::Settings;

/// JSON logs on one line per event, as CloudWatch Logs takes them, at the level
/// `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) gives, `info` otherwise.
pub fn init_logs() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .without_time()
        .try_init();
}
