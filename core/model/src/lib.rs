//! Tocsin's domain model: what every stage speaks, and nothing that does I/O.
//!
//! ```text
//! event ─▶ template            an event, its labels and the templates over them
//! suppression, catalogue       what teams set: suppressions (with their guards), services
//! team                         tenants and the caller acting for one
//! plugin                       the plugin interface the WebAssembly host implements
//! rows, notice, views          what stages hand each other: journal rows, a batch's
//!                              outcome, notices and routes, incident views
//! clock, yaml, trace           unix milliseconds; YAML read like JSON; spans put in an
//!                              event's W3C trace
//! ```
//!
//! Dependencies point down the list and out of this crate never: no sqlx, axum, tokio,
//! reqwest or wasmtime. The stores sit on this crate, the stages on the stores, the API
//! on the stages, and the runners (the local server, the Lambda functions) on all of
//! them; `docs/architecture.md` has the picture.

pub mod catalogue;
pub mod clock;
pub mod event;
pub mod json;
pub mod notice;
pub mod plugin;
pub mod rows;
pub mod suppression;
pub mod team;
pub mod template;
pub mod trace;
pub mod views;
pub mod yaml;

pub use event::{Event, Fingerprint, Priority, Status};
