//! Tocsin's WebAssembly plugin runtime ([docs/plugins.md](../../docs/plugins.md)), a
//! library apart from the `tocsin` binary: only what runs plugins links wasmtime.
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
//!
//! Layout, from the bottom up (a module uses only those above it):
//! - `world`: the bindings generated from the WIT.
//! - `engine`: the wasmtime engine, its limits and pooling allocator.
//! - `sandbox`: one call's store: fuel, memory, the host functions a plugin may call.
//! - `convert`: model values to WIT values and back.
//! - `runtime`: compiles a component and runs one call on a fresh instance.
//! - `registry`: every team's active versions, uploads and rollbacks, over the store's
//!   [`tocsin_store::PluginStore`]; it implements the model's plugin traits.

mod convert;
mod engine;
mod registry;
mod runtime;
mod sandbox;
mod world;

/// The host's checks of what a plugin returns, and the WIT types they read. Public so
/// that the fuzz targets (`tests/fuzz/`) can feed them any output a plugin could produce.
pub mod output {
    pub use crate::convert::{MAX_REASON, filter_output, transformer_output};
    pub use crate::world::types::{
        Alert, Alerting, Event, Grouping, Label, Priority, Spec, Status, Verdict,
    };
}

pub use engine::Limits;
pub use registry::WasmPlugins;
pub use runtime::{Call, Compiled, Runtime};
pub use sandbox::State;
