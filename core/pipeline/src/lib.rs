//! The pipeline behind the journal (see docs/pipeline.md): static pre-filter, dynamic
//! pre-filter and grouping into incidents, then the alerting decision.
//!
//! [`Engine`] is the whole pipeline as plain, synchronous code over in-memory state:
//! it takes journal rows and the clock, and returns an [`Outcome`](tocsin_model::rows::Outcome)
//! — every row the store must write, in one transaction, for the batch. Because it is
//! the single writer of alert and incident state, grouping is race-free by construction;
//! the database's unique index on open incident keys is the second line of defence. The
//! worker ([`worker`]) feeds it from the journal and commits its outcomes; a simulation
//! can drive it with a virtual clock.
//!
//! Time is the receipt time of the event being processed: timers due before an event
//! fire before it, so the same journal always gives the same incidents.
//!
//! Layout, bottom up; a module names only modules on the lines above its own (and a
//! stage the stages after it), so dependencies point one way:
//! - `config`, `state`, `text`, `alerting`: settings, the records the engine keeps,
//!   shared wording, and the notices a batch's timeline calls for. They know the model.
//! - `plugins` (calls to filter plugins, a batch at a time) and `refresh` (the round
//!   that spreads steady refreshes over an interval).
//! - `engine`: the [`Engine`] and what every stage shares (teams, rules, holds, history).
//! - The stages, each an `impl Engine` block, in the order an event goes through them:
//!   `prefilter` (static), `flapping`, `suppression` (dynamic), `grouping`.
//! - `batch`: a batch of journal rows and timers through the stages, and its outcome.
//! - `worker`: the runner; it alone touches the store.

mod alerting;
mod alerts;
#[cfg(feature = "args")]
pub mod args;
mod batch;
mod config;
mod engine;
mod flapping;
mod grouping;
mod plugins;
mod prefilter;
mod refresh;
mod state;
mod suppression;
mod text;
pub mod worker;

pub use batch::CURSOR_DEFER_MS;
pub use config::Config;
pub use engine::Engine;
pub use tocsin_model::event::FLAPPING_LABEL;
pub use tocsin_model::rows::IncidentError;

#[cfg(test)]
mod tests;
