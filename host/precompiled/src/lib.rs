//! Precompiled plugin artifacts: what lets a cold process (a Lambda function's init, a
//! restarted `tocsin serve`) run a team's plugin without compiling it again. A Python
//! component takes about 15 s to compile and a Lambda init phase allows 10 s; loading its
//! artifact takes milliseconds.
//!
//! The host compiles a component once, on upload, and stores [`serialize`]'s bytes keyed
//! by the component's SHA-256 and the engine's [`compatibility`] hash. Any process whose
//! engine has the same hash loads them with [`load`]; one with another engine (another
//! Tocsin release, other settings) finds no artifact for its hash and compiles again.
//!
//! Wasmtime's `Component::deserialize` is `unsafe`: it maps the bytes as native code and
//! trusts them. This crate is the only place in Tocsin where `unsafe` is allowed, for
//! that one call, so that what it trusts is easy to audit: only artifacts Tocsin itself
//! produced with [`serialize`] and stored in its own database are loaded, never bytes a
//! team uploads (those are components, compiled by the host).

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

/// The hex SHA-256 of the engine's settings that precompiled code depends on (the
/// Wasmtime version, the target, Cranelift's flags, the tunables). An artifact fits an
/// engine only if it was stored under that engine's hash.
pub fn compatibility(engine: &Engine) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// The artifact of a compiled component: what [`load`] turns back into it.
pub fn serialize(component: &Component) -> wasmtime::Result<Vec<u8>> {
    component.serialize()
}

/// Loads an artifact that [`serialize`] produced for an engine of the same
/// [`compatibility`] hash. Bytes that are not a precompiled component are refused before
/// anything is mapped; Wasmtime itself refuses an artifact made by an incompatible engine.
///
/// Callers pass only what Tocsin stored from [`serialize`] (the `plugin_artifacts` table,
/// written by the plugin host alone); nothing a team sends reaches this function.
pub fn load(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    match Engine::detect_precompiled(artifact) {
        Some(Precompiled::Component) => {}
        Some(Precompiled::Module) => {
            return Err(wasmtime::format_err!(
                "the artifact is a precompiled module, not a component"
            ));
        }
        None => {
            return Err(wasmtime::format_err!(
                "the artifact is not precompiled Wasmtime code"
            ));
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: `Component::deserialize` requires bytes produced by `Component::serialize`
    // (or `Engine::precompile_component`) of a compatible engine and not tampered with
    // since. Tocsin passes only artifacts its own plugin host serialized with
    // `serialize` after compiling a component, stored in the `plugin_artifacts` table of
    // its own database, which no API route writes and no team can reach. Wasmtime
    // checks the header (version, target, flags) itself and errors on a mismatch.
    let component = unsafe { Component::deserialize(engine, artifact) }?;
    Ok(component)
}

/// Feeds what `Hash` writes into SHA-256: a digest that is the same in every build, where
/// std's `DefaultHasher` may change between Rust releases.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    /// The smallest component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn an_artifact_loads_back_on_an_engine_of_the_same_hash() {
        let engine = engine();
        let component = Component::new(&engine, EMPTY_COMPONENT).expect("compile");
        let artifact = serialize(&component).expect("serialize");
        assert_eq!(compatibility(&engine), compatibility(&self::engine()));
        load(&engine, &artifact).expect("load");
    }

    #[test]
    fn bytes_that_are_not_an_artifact_are_refused_before_mapping() {
        let engine = engine();
        let err = load(&engine, EMPTY_COMPONENT).expect_err("a component is not an artifact");
        assert!(err.to_string().contains("not precompiled"), "{err}");
        let err = load(&engine, b"\x7fELF garbage").expect_err("garbage");
        assert!(err.to_string().contains("not precompiled"), "{err}");
    }

    #[test]
    fn an_engine_with_other_settings_has_another_hash_and_refuses_the_artifact() {
        let engine = engine();
        let artifact = serialize(&Component::new(&engine, EMPTY_COMPONENT).expect("compile"))
            .expect("serialize");
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let other = Engine::new(&config).expect("engine");
        assert_ne!(compatibility(&engine), compatibility(&other));
        assert!(load(&other, &artifact).is_err());
    }
}
