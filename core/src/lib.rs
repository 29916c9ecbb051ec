//! The core of Tocsin, a monitoring event pipeline: the event model, the store, the
//! pipeline stages and the HTTP API, shared by the local `tocsin` binary and the AWS
//! Lambda functions.
//!
//! It knows nothing of WebAssembly (the plugin runtime lives in `tocsin-host`) nor of how
//! it is deployed: callers pick a store ([`store::open`]), start the [`journal::Journal`]
//! and serve [`api::app`].

pub mod adapt;
pub mod api;
pub mod auth;
pub mod catalogue;
pub mod collect;
pub mod event;
pub mod ingest;
pub mod journal;
pub mod logs;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod plugin;
pub mod store;
pub mod suppression;
pub mod template;
mod yaml;

pub use api::{AppState, app};
pub use event::{Event, Fingerprint, Priority, Status};
