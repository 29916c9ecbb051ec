//! Tocsin's WebAssembly plugin runtime (DESIGN §5), and the `tocsin` binary beside it.
//!
//! Teams upload components built for the `tocsin:plugin` WIT (`wit/`): transformers,
//! filters and collectors. This crate validates and compiles them, keeps every team's
//! active version ready, and runs each call on a fresh, sandboxed instance under a
//! deadline and a memory limit, so that a plugin that loops, traps or eats memory fails
//! its own call and nothing else. It implements the core's plugin traits
//! ([`tocsin_model::plugin`]); the core never sees wasmtime.
//!
//! Not here: where plugins run in the pipeline (the core's pre-filter calls
//! [`tocsin_model::plugin::Filter`]) and the HTTP API (the core's `api::plugins`).

mod convert;
mod engine;
mod registry;
mod runtime;
mod sandbox;
mod world;

pub use engine::Limits;
pub use registry::WasmPlugins;
pub use runtime::{Call, Compiled, Runtime};
pub use sandbox::State;
