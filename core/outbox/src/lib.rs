//! The outbox ([docs/alerting.md](../../docs/alerting.md#delivery-rules)): every notification is durable before it is sent,
//! and nothing accepted is lost.
//!
//! The pipeline leaves a notice in the same transaction as the incident change that
//! calls for it. The outbox turns each notice into one delivery per notifier its route
//! names (in one transaction that also deletes the notice), then sends them:
//!
//! - deliveries of one incident to one notifier go in order (a Slack update needs the
//!   message its post created); others go in parallel;
//! - an attempt is counted before it is made, so after a crash the next attempt knows an
//!   earlier one may have reached the service, and looks for the ticket it may have
//!   opened instead of opening a second; PagerDuty folds a repeated trigger into its
//!   page through the dedup key (the incident id), so an incident pages at most once;
//! - a failure that may pass (network, 5xx, 429) is retried with exponential backoff and
//!   jitter, waiting at least the service's `Retry-After`; a refusal (other 4xx) or an
//!   exhausted budget makes the delivery dead, listed by `GET /v1/notifications?state=dead`
//!   and queued again by `POST /v1/notifications/{id}/retry`.
//!
//! Layout: `run` holds the [`Outbox`] and its loop of rounds over the store's
//! [`OutboxStore`](tocsin_store::OutboxStore); `expand` turns notices into deliveries;
//! `subject` reads what a notification is rendered from, running the collectors
//! (`tocsin_collect`); `attempt` makes one attempt at a delivery, building its body
//! (`tocsin_notify`), and settles it, waiting as `backoff` says before a retry; `send`
//! makes the HTTP calls and classifies their answers. `handed` delivers one notice ahead
//! of the rounds: one a runner hands over in memory through [`FastPath`] (`fast`), or one
//! given from outside ([`Outbox::deliver_notice`]); the pipeline is not below this crate.
//! The other modules add methods to the `run` module's [`Outbox`] and name each other,
//! never this root.

mod attempt;
mod backoff;
mod expand;
mod fast;
mod handed;
mod run;
mod send;
mod subject;

pub use backoff::backoff;
pub use fast::FastPath;
pub use run::Outbox;
pub use send::retry_after;
pub use send::{Attempt, Sender, Target};
