//! The one place that runs `bindgen!` over `wit/`: Rust types and call wrappers for the
//! three worlds. The filter world generates the shared `types` and `host` interfaces;
//! the other two reuse them, so one `Host` implementation serves every plugin.

#![allow(missing_docs)]

/// The `filter` world, and with it the shared interfaces.
pub mod filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "filter",
    });
}

/// The `transformer` world.
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
        with: {
            "tocsin:plugin/types": crate::world::filter::tocsin::plugin::types,
            "tocsin:plugin/host": crate::world::filter::tocsin::plugin::host,
        },
    });
}

/// The `collector` world.
pub mod collector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "collector",
        with: {
            "tocsin:plugin/types": crate::world::filter::tocsin::plugin::types,
            "tocsin:plugin/host": crate::world::filter::tocsin::plugin::host,
        },
    });
}

pub use filter::tocsin::plugin::{host, types};
