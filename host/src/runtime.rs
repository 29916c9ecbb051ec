//! Compiling components and calling them: validation on upload, one fresh instance per
//! call from an `InstancePre`, and every failure turned into a [`Failure`] of that
//! call alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_model::Event;
use tocsin_model::plugin::{
    Failure, FilterInput, IncidentContext, Kind, RawInput, Section, Verdict,
};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::convert;
use crate::engine::{self, Limits};
use crate::sandbox::{Ctx, State};
use crate::world::{collector, filter, host::Level, transformer};

/// A compiled component, ready to instantiate as its kind's world.
#[derive(Clone)]
pub struct Compiled {
    /// Hex SHA-256 of the component's bytes.
    pub sha256: String,
    component: Component,
    pre: Pre,
}

#[derive(Clone)]
enum Pre {
    Transformer(transformer::TransformerPre<Ctx>),
    Filter(filter::FilterPre<Ctx>),
    Collector(collector::CollectorPre<Ctx>),
}

impl Compiled {
    /// The precompiled artifact of the component, for [`Runtime::load`] in another
    /// process whose engine has the same hash.
    pub fn artifact(&self) -> Result<Vec<u8>, String> {
        tocsin_precompiled::serialize(&self.component)
            .map_err(|e| format!("cannot serialize the compiled component: {e}"))
    }

    /// The world it was validated against.
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Transformer(_) => Kind::Transformer,
            Pre::Filter(_) => Kind::Filter,
            Pre::Collector(_) => Kind::Collector,
        }
    }
}

/// The outcome of one call, with what the plugin logged.
#[derive(Debug)]
pub struct Call<T> {
    /// The output, or why the call failed.
    pub result: Result<T, Failure>,
    /// Its log lines (stdout and stderr included).
    pub log: Vec<(Level, String)>,
    /// Wall-clock time, instantiation included.
    pub duration: Duration,
}

/// The engine, the linker of what plugins may import, and the limits.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Ctx>>,
    limits: Limits,
}

/// The first bytes of a binary core module: magic and version 1.
const CORE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/// The magic of any wasm binary.
const MAGIC: [u8; 4] = [0x00, 0x61, 0x73, 0x6d];

impl Runtime {
    /// An engine and linker under these limits.
    pub fn new(limits: Limits) -> wasmtime::Result<Self> {
        let engine = engine::build(&limits)?;
        let mut linker = Linker::new(&engine);
        // WASI for guests built with std; the context each store gets denies everything.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // The `types` and `host` interfaces every world imports.
        filter::Filter::add_to_linker::<Ctx, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
        })
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The compatibility hash of this runtime's engine: artifacts stored under it load
    /// here ([`tocsin_precompiled::compatibility`]).
    pub fn engine_hash(&self) -> String {
        tocsin_precompiled::compatibility(&self.engine)
    }

    /// Validates and compiles a component for `kind`. The error says what is wrong in
    /// terms an uploader can act on.
    pub fn compile(&self, bytes: &[u8], kind: Kind) -> Result<Compiled, String> {
        if bytes.len() < 8 || bytes[..4] != MAGIC {
            return Err("not a WebAssembly binary: upload a component built for the tocsin:plugin WIT (cargo build --target wasm32-wasip2)".into());
        }
        if bytes[..8] == CORE_HEADER {
            return Err("this is a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with wasm-tools component new) so that it exports a tocsin:plugin world".into());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| format!("not a valid component: {}", root(&e)))?;
        self.prepare(component, sha256(bytes), kind)
    }

    /// Loads a component from the artifact [`Compiled::artifact`] made of it (on an
    /// engine of the same [`Runtime::engine_hash`]), checked against `kind` as on upload.
    /// `artifact` must come from Tocsin's own store, never from a request.
    pub fn load(&self, artifact: &[u8], sha256: &str, kind: Kind) -> Result<Compiled, String> {
        let component = tocsin_precompiled::load(&self.engine, artifact)
            .map_err(|e| format!("the stored artifact does not load: {}", root(&e)))?;
        self.prepare(component, sha256.to_owned(), kind)
    }

    /// Links a compiled component and checks that it exports `kind`'s world.
    fn prepare(
        &self,
        component: Component,
        sha256: String,
        kind: Kind,
    ) -> Result<Compiled, String> {
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            format!(
                "it imports something Tocsin does not offer (plugins may import only tocsin:plugin/host and WASI): {}",
                root(&e)
            )
        })?;
        let wrong = |e: wasmtime::Error| {
            format!(
                "it does not export the tocsin:plugin {} world: {}",
                kind.as_str(),
                root(&e)
            )
        };
        let pre = match kind {
            Kind::Transformer => {
                Pre::Transformer(transformer::TransformerPre::new(pre).map_err(wrong)?)
            }
            Kind::Filter => Pre::Filter(filter::FilterPre::new(pre).map_err(wrong)?),
            Kind::Collector => Pre::Collector(collector::CollectorPre::new(pre).map_err(wrong)?),
        };
        Ok(Compiled {
            sha256,
            component,
            pre,
        })
    }

    fn store(&self, state: Arc<State>) -> Store<Ctx> {
        let mut store = Store::new(&self.engine, Ctx::new(state, self.limits.memory));
        store.limiter(|ctx| ctx.limiter());
        store.set_epoch_deadline(self.limits.deadline_ticks());
        store.epoch_deadline_trap();
        store
    }

    /// Runs `call` on a fresh instance and classifies what went wrong.
    fn run<T>(
        &self,
        state: Arc<State>,
        commit: bool,
        call: impl FnOnce(&mut Store<Ctx>) -> wasmtime::Result<Result<T, Failure>>,
    ) -> Call<T> {
        let started = Instant::now();
        let mut store = self.store(state);
        let outcome = call(&mut store);
        let duration = started.elapsed();
        let log = store.data_mut().take_log();
        let result = match outcome {
            Ok(Ok(value)) => {
                if commit {
                    store.data_mut().commit_state();
                }
                Ok(value)
            }
            Ok(Err(failure)) => Err(failure),
            Err(error) => Err(self.classify(&error, store.data().memory_denied(), &log)),
        };
        Call {
            result,
            log,
            duration,
        }
    }

    fn classify(
        &self,
        error: &wasmtime::Error,
        memory_denied: bool,
        log: &[(Level, String)],
    ) -> Failure {
        if memory_denied {
            return Failure::Memory((self.limits.memory >> 20) as u64);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Failure::Timeout(self.limits.deadline.as_millis() as u64),
            Some(Trap::StackOverflow) => Failure::Trap(format!(
                "call stack exhausted (the stack limit is {} KiB)",
                self.limits.stack >> 10
            )),
            Some(trap) => {
                // A Rust guest's panic message is on its stderr: the best explanation.
                // (the location line, then the message line).
                match log
                    .iter()
                    .position(|(_, line)| line.contains("panicked at"))
                {
                    Some(at) => {
                        let message = log.get(at + 1).map_or("", |(_, line)| line.as_str());
                        Failure::Trap(format!("{trap} ({} {message})", log[at].1))
                    }
                    None => Failure::Trap(trap.to_string()),
                }
            }
            None => Failure::Trap(root(error)),
        }
    }

    /// Runs a transformer. Writes to its state are kept only when `commit`.
    pub fn transform(
        &self,
        compiled: &Compiled,
        state: Arc<State>,
        input: &RawInput,
        config: &str,
        commit: bool,
    ) -> Call<Vec<Event>> {
        let Pre::Transformer(pre) = &compiled.pre else {
            return wrong_kind(Kind::Transformer);
        };
        let max_events = self.limits.max_events;
        self.run(state, commit, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let raw = crate::world::types::RawInput {
                body: input.body.to_vec(),
                content_type: input.content_type.clone(),
                headers: input
                    .headers
                    .iter()
                    .map(|(key, value)| crate::world::types::Label {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            };
            let events = match instance.call_transform(&mut *store, &raw, config)? {
                Ok(events) => events,
                Err(message) => return Ok(Err(Failure::Error(message))),
            };
            Ok(convert::transformer_output(events, max_events).map_err(Failure::Output))
        })
    }

    /// Runs a filter over a batch. Writes to its state are kept only when `commit`.
    pub fn filter(
        &self,
        compiled: &Compiled,
        state: Arc<State>,
        batch: &[FilterInput<'_>],
        config: &str,
        commit: bool,
    ) -> Call<Vec<Verdict>> {
        let Pre::Filter(pre) = &compiled.pre else {
            return wrong_kind(Kind::Filter);
        };
        let encoded = convert::batch(batch.iter().map(|e| (e.event, e.received_at)));
        self.run(state, commit, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let verdicts = match instance.call_filter(&mut *store, &encoded, config)? {
                Ok(verdicts) => verdicts,
                Err(message) => return Ok(Err(Failure::Error(message))),
            };
            Ok(convert::filter_output(verdicts, batch.len()).map_err(Failure::Output))
        })
    }

    /// Runs a collector. Writes to its state are kept only when `commit`.
    pub fn collect(
        &self,
        compiled: &Compiled,
        state: Arc<State>,
        incident: &IncidentContext,
        params: &str,
        commit: bool,
    ) -> Call<Vec<Section>> {
        let Pre::Collector(pre) = &compiled.pre else {
            return wrong_kind(Kind::Collector);
        };
        let max = self.limits.max_sections_bytes;
        let summary = convert::incident_to_wit(incident);
        self.run(state, commit, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let sections = match instance.call_collect(&mut *store, &summary, params)? {
                Ok(sections) => sections,
                Err(message) => return Ok(Err(Failure::Error(message))),
            };
            let size: usize = sections
                .iter()
                .map(|s| s.title.len() + s.markdown.len())
                .sum();
            if size > max {
                return Ok(Err(Failure::Output(format!(
                    "{size} bytes of sections; the limit is {max}"
                ))));
            }
            Ok(Ok(sections
                .into_iter()
                .map(convert::section_from_wit)
                .collect()))
        })
    }
}

fn wrong_kind<T>(wanted: Kind) -> Call<T> {
    Call {
        result: Err(Failure::Output(format!(
            "the plugin is not a {}",
            wanted.as_str()
        ))),
        log: Vec::new(),
        duration: Duration::ZERO,
    }
}

/// The innermost cause of an error: the part that says what is wrong.
fn root(error: &wasmtime::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        text = format!("{text}: {cause}");
    }
    text
}

/// Hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
