//! The notifiers and routes of `tocsin serve --notifiers FILE` (YAML).
//!
//! Secrets are written as `${env:NAME}` so the file itself holds none; they are
//! resolved once at start, never logged (`Debug` redacts them) and never returned by
//! the API ([`Notifiers::public`]).
//!
//! Notifiers are the operator's, shared by every team: each may be opened to some
//! teams only (`teams:`), and the Slack channels, Jira projects and GitHub repositories
//! a team may name on it are listed per team (`channels:`, `projects:`,
//! `repositories:`), so that an event or a route never makes Tocsin's credentials
//! reach what the operator did not open to its team.
//!
//! Layout: `error` says what is wrong with a file; `access` holds the syntax of each
//! kind's queues and who may use a notifier; `notifier` the notifier kinds and their
//! fields; `retry` the retry budget; `notifiers` the whole configuration and what a team
//! may name on it; `routes` matches and checks routes; `public` is the view the API
//! shows; `parse` reads the file, `${env:…}` first, into all of these. Each names only
//! modules listed before it, never this one.

mod access;
mod error;
#[cfg(test)]
mod fixture;
mod notifier;
mod notifiers;
mod parse;
mod public;
mod retry;
mod routes;

pub use access::{Access, QueueKind};
pub use error::ConfigError;
pub use notifier::{Notifier, Secret};
pub use notifiers::Notifiers;
pub use retry::Retry;
pub use tocsin_model::notice::Route;
