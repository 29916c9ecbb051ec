//! The plugins of every team, loaded and ready: uploads are validated and compiled on
//! one bounded worker, stored, then swapped in atomically; calls look the active
//! version up and run it on a fresh instance. Implements the core's plugin traits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tocsin_model::Event;
use tocsin_model::plugin::{
    self, Collector, Failure, Filter, FilterInput, IncidentContext, Kind, LastError, PluginError,
    PluginInfo, RawInput, Registry, Sample, Section, Stats, TestRun, Transformer, Verdict,
};
use tocsin_store::{NewVersion, PluginRow, PluginStore, StoreError};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::engine::Limits;
use crate::runtime::{Call, Compiled, Runtime, sha256};
use crate::sandbox::State;
use crate::world::host::Level;

/// How often changed plugin state is written to the store.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Upper bounds of the duration histogram, microseconds.
const BUCKETS_US: [u64; 9] = [10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000];

type Key = (String, String);

/// A plugin's active version, compiled.
struct Loaded {
    version: i64,
    compiled: Arc<Compiled>,
    state: Arc<State>,
    stats: Arc<Mutex<Counters>>,
}

/// What a plugin has done since this process started.
#[derive(Debug, Default)]
struct Counters {
    stats: Stats,
    buckets: [u64; BUCKETS_US.len() + 1],
}

impl Counters {
    fn record(&mut self, duration: Duration, failure: Option<&Failure>) {
        self.stats.calls += 1;
        let us = duration.as_micros() as u64;
        let slot = BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[slot] += 1;
        if let Some(failure) = failure {
            *self
                .stats
                .errors
                .entry(failure.kind().to_owned())
                .or_default() += 1;
            self.stats.last_error = Some(LastError {
                at: time::OffsetDateTime::now_utc(),
                kind: failure.kind().to_owned(),
                message: failure.to_string(),
            });
        }
    }

    fn snapshot(&self) -> Stats {
        let mut stats = self.stats.clone();
        let mut total = 0;
        let mut histogram = BTreeMap::new();
        for (i, count) in self.buckets.iter().enumerate() {
            total += count;
            let bound = BUCKETS_US
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            histogram.insert(bound, total);
        }
        stats.duration_us = histogram;
        stats
    }
}

struct Inner {
    runtime: Runtime,
    store: Arc<dyn PluginStore>,
    loaded: RwLock<HashMap<Key, Arc<Loaded>>>,
    /// One compilation at a time: a large upload (a Python component takes seconds)
    /// uses one core and never starves requests of the other.
    compiling: Semaphore,
    /// Compiled components by (kind, sha256), kept while a loaded plugin uses them.
    compiled: Mutex<HashMap<(Kind, String), Weak<Compiled>>>,
    /// Counters by plugin, kept across versions.
    counters: Mutex<HashMap<Key, Arc<Mutex<Counters>>>>,
    /// The engine's compatibility hash: the artifacts stored under it load here.
    engine_hash: String,
}

/// The wasmtime plugin runtime with its registry: what `tocsin serve` hands the API and
/// the pipeline.
#[derive(Clone)]
pub struct WasmPlugins {
    inner: Arc<Inner>,
}

fn internal(e: StoreError) -> PluginError {
    error!(error = %e, "plugin store failure");
    PluginError::Internal("the store failed; see the server log".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WasmPlugins {
    /// Builds the runtime and loads every stored plugin's active version (compiling
    /// each), then keeps plugin state saved in the background.
    pub async fn start(store: Arc<dyn PluginStore>, limits: Limits) -> anyhow::Result<Self> {
        let plugins = Self::open(store, limits)?;
        plugins.refresh_from_store().await?;
        Ok(plugins)
    }

    /// Builds the runtime without loading any plugin: nothing is compiled until
    /// [`Registry::refresh`] (the Lambda functions, whose init phase allows 10 s while a
    /// Python component takes longer to compile). Plugin state is saved in the
    /// background.
    pub fn open(store: Arc<dyn PluginStore>, limits: Limits) -> anyhow::Result<Self> {
        let runtime = Runtime::new(limits)
            .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e}"))?;
        let engine_hash = runtime.engine_hash();
        let plugins = Self {
            inner: Arc::new(Inner {
                engine_hash,
                runtime,
                store,
                loaded: RwLock::new(HashMap::new()),
                compiling: Semaphore::new(1),
                compiled: Mutex::new(HashMap::new()),
                counters: Mutex::new(HashMap::new()),
            }),
        };
        let weak = Arc::downgrade(&plugins.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SAVE_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                WasmPlugins { inner }.save_state().await;
            }
        });
        Ok(plugins)
    }

    /// Loads every stored plugin whose active version is not the one in use, and drops
    /// the ones no longer stored; returns how many changed. A version that cannot be
    /// loaded is logged and left out (its calls fail) and the others still load.
    async fn refresh_from_store(&self) -> Result<usize, StoreError> {
        let rows = self.inner.store.plugins(None).await?;
        let mut changed = 0;
        for row in &rows {
            if self
                .get_loaded(&row.team, &row.name)
                .is_some_and(|loaded| loaded.version == row.active_version)
            {
                continue;
            }
            changed += 1;
            let started = std::time::Instant::now();
            match self.load(row, row.active_version).await {
                Ok(()) => {
                    info!(team = %row.team, plugin = %row.name, version = row.active_version, elapsed = ?started.elapsed(), "plugin loaded")
                }
                Err(e) => {
                    error!(team = %row.team, plugin = %row.name, error = %e, "cannot load plugin; its calls fail until it is uploaded again")
                }
            }
        }
        let stored: std::collections::HashSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.team.as_str(), r.name.as_str()))
            .collect();
        let mut loaded = self.inner.loaded.write().unwrap_or_else(|e| e.into_inner());
        let before = loaded.len();
        loaded.retain(|(team, name), _| stored.contains(&(team.as_str(), name.as_str())));
        Ok(changed + before - loaded.len())
    }

    /// The runtime's limits.
    pub fn limits(&self) -> &Limits {
        self.inner.runtime.limits()
    }

    /// Writes every plugin's changed state now (also done every second).
    pub async fn save_state(&self) {
        let loaded: Vec<(Key, Arc<Loaded>)> = self
            .inner
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((team, name), plugin) in loaded {
            let (puts, deletes) = plugin.state.take_dirty();
            if puts.is_empty() && deletes.is_empty() {
                continue;
            }
            if let Err(e) = self
                .inner
                .store
                .save_plugin_state(&team, &name, &puts, &deletes)
                .await
            {
                warn!(team = %team, plugin = %name, error = %e, "cannot save plugin state; retrying");
                plugin.state.restore_dirty(puts, deletes);
            }
        }
    }

    /// The compiled component of this SHA-256 and kind, if a loaded plugin uses it.
    fn cached(&self, kind: Kind, sha: &str) -> Option<Arc<Compiled>> {
        lock(&self.inner.compiled)
            .get(&(kind, sha.to_owned()))
            .and_then(Weak::upgrade)
    }

    fn cache(&self, kind: Kind, compiled: &Arc<Compiled>) {
        lock(&self.inner.compiled)
            .insert((kind, compiled.sha256.clone()), Arc::downgrade(compiled));
    }

    /// Compiles (or reuses) a component on the bounded worker, and stores its
    /// precompiled artifact so that other processes load it without compiling.
    async fn compiled(&self, kind: Kind, bytes: Bytes) -> Result<Arc<Compiled>, PluginError> {
        let sha = sha256(&bytes);
        if let Some(hit) = self.cached(kind, &sha) {
            return Ok(hit);
        }
        let _permit = self
            .inner
            .compiling
            .acquire()
            .await
            .map_err(|_| PluginError::Internal("the compiler is shut down".into()))?;
        let runtime = self.inner.runtime.clone();
        let (compiled, artifact) = tokio::task::spawn_blocking(move || {
            let compiled = runtime.compile(&bytes, kind)?;
            let artifact = compiled.artifact();
            Ok::<_, String>((compiled, artifact))
        })
        .await
        .map_err(|e| PluginError::Internal(format!("the compiler failed: {e}")))?
        .map_err(PluginError::Rejected)?;
        // Without its artifact a plugin still runs here; other processes compile it.
        let stored = match artifact {
            Ok(artifact) => self
                .inner
                .store
                .put_plugin_artifact(
                    &sha,
                    &self.inner.engine_hash,
                    &artifact,
                    tocsin_model::clock::millis(time::OffsetDateTime::now_utc()),
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            warn!(sha256 = %sha, error = %e, "cannot store the plugin's precompiled artifact; other processes compile it again");
        }
        let compiled = Arc::new(compiled);
        self.cache(kind, &compiled);
        Ok(compiled)
    }

    /// A stored version's code: the one already in use, else its precompiled artifact
    /// (milliseconds), else its component compiled again when no artifact fits this
    /// engine (another Tocsin release, other limits) or the artifact does not load.
    async fn stored(&self, row: &PluginRow, version: i64) -> Result<Arc<Compiled>, PluginError> {
        let sha = row
            .versions
            .iter()
            .find(|v| v.version == version)
            .map(|v| v.sha256.clone());
        if let Some(sha) = &sha {
            if let Some(hit) = self.cached(row.kind, sha) {
                return Ok(hit);
            }
            let artifact = self
                .inner
                .store
                .plugin_artifact(sha, &self.inner.engine_hash)
                .await
                .map_err(internal)?;
            if let Some(artifact) = artifact {
                let runtime = self.inner.runtime.clone();
                let (kind, key) = (row.kind, sha.clone());
                let loaded =
                    tokio::task::spawn_blocking(move || runtime.load(&artifact, &key, kind))
                        .await
                        .map_err(|e| PluginError::Internal(format!("the loader failed: {e}")))?;
                match loaded {
                    Ok(compiled) => {
                        let compiled = Arc::new(compiled);
                        self.cache(row.kind, &compiled);
                        return Ok(compiled);
                    }
                    Err(e) => {
                        warn!(team = %row.team, plugin = %row.name, version, error = %e, "compiling the plugin again");
                    }
                }
            }
        }
        let bytes = self
            .inner
            .store
            .plugin_component(&row.team, &row.name, version)
            .await
            .map_err(internal)?
            .ok_or_else(|| PluginError::Internal(format!("version {version} is not stored")))?;
        self.compiled(row.kind, Bytes::from(bytes)).await
    }

    /// Loads a stored version and makes it the one calls use.
    async fn load(&self, row: &PluginRow, version: i64) -> Result<(), PluginError> {
        let compiled = self.stored(row, version).await?;
        self.swap_in(&row.team, &row.name, version, compiled).await
    }

    async fn swap_in(
        &self,
        team: &str,
        name: &str,
        version: i64,
        compiled: Arc<Compiled>,
    ) -> Result<(), PluginError> {
        let key = (team.to_owned(), name.to_owned());
        let existing = self.get_loaded(team, name);
        let state = match existing {
            Some(loaded) => loaded.state.clone(),
            None => Arc::new(State::loaded(
                self.inner
                    .store
                    .plugin_state(team, name)
                    .await
                    .map_err(internal)?,
            )),
        };
        let stats = lock(&self.inner.counters)
            .entry(key.clone())
            .or_default()
            .clone();
        let loaded = Arc::new(Loaded {
            version,
            compiled,
            state,
            stats,
        });
        // Calls in flight finish on the version they started with.
        self.inner
            .loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, loaded);
        Ok(())
    }

    fn get_loaded(&self, team: &str, name: &str) -> Option<Arc<Loaded>> {
        self.inner
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(team.to_owned(), name.to_owned()))
            .cloned()
    }

    fn active(&self, team: &str, name: &str, kind: Kind) -> Result<Arc<Loaded>, PluginError> {
        let loaded = self
            .get_loaded(team, name)
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        let actual = loaded.compiled.kind();
        if actual != kind {
            return Err(PluginError::WrongKind {
                name: name.to_owned(),
                actual: actual.as_str(),
                wanted: kind.as_str(),
            });
        }
        Ok(loaded)
    }

    fn info(&self, row: PluginRow) -> PluginInfo {
        let key = (row.team.clone(), row.name.clone());
        let stats = lock(&self.inner.counters)
            .get(&key)
            .map(|c| lock(c).snapshot())
            .unwrap_or_default();
        let state_keys = self
            .get_loaded(&row.team, &row.name)
            .map_or(0, |l| l.state.len() as u64);
        PluginInfo {
            name: row.name,
            team: row.team,
            kind: row.kind,
            active_version: row.active_version,
            versions: row.versions,
            state_keys,
            stats,
        }
    }

    async fn row(&self, team: &str, name: &str) -> Result<PluginRow, PluginError> {
        self.inner
            .store
            .plugins(Some(team))
            .await
            .map_err(internal)?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))
    }
}

/// Sends a call's log lines to Tocsin's log, tagged with the plugin.
fn emit(team: &str, name: &str, log: &[(Level, String)]) {
    for (level, line) in log {
        match level {
            Level::Error => error!(target: "plugin", team, plugin = name, "{line}"),
            Level::Warn => warn!(target: "plugin", team, plugin = name, "{line}"),
            Level::Info => info!(target: "plugin", team, plugin = name, "{line}"),
            Level::Debug => tracing::debug!(target: "plugin", team, plugin = name, "{line}"),
            Level::Trace => tracing::trace!(target: "plugin", team, plugin = name, "{line}"),
        }
    }
}

fn log_lines(log: &[(Level, String)]) -> Vec<String> {
    log.iter()
        .map(|(level, line)| {
            let level = match level {
                Level::Error => "error",
                Level::Warn => "warn",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            format!("{level}: {line}")
        })
        .collect()
}

/// Counts a finished call and turns its failure into the plugin's error.
fn finish<T>(
    loaded: &Loaded,
    team: &str,
    name: &str,
    call: Call<T>,
    events_in: usize,
    out: impl FnOnce(&T) -> (usize, usize),
) -> Result<T, PluginError> {
    emit(team, name, &call.log);
    metrics::counter!("tocsin_plugin_calls_total", "team" => team.to_owned(), "plugin" => name.to_owned())
        .increment(1);
    metrics::histogram!("tocsin_plugin_call_duration_seconds", "team" => team.to_owned(), "plugin" => name.to_owned())
        .record(call.duration.as_secs_f64());
    if let Err(failure) = &call.result {
        metrics::counter!("tocsin_plugin_errors_total", "team" => team.to_owned(), "plugin" => name.to_owned(), "kind" => failure.kind())
            .increment(1);
    }
    let mut counters = lock(&loaded.stats);
    counters.record(call.duration, call.result.as_ref().err());
    counters.stats.events_in += events_in as u64;
    match call.result {
        Ok(value) => {
            let (passed, dropped) = out(&value);
            counters.stats.events_out += passed as u64;
            counters.stats.events_dropped += dropped as u64;
            Ok(value)
        }
        Err(failure) => {
            warn!(team, plugin = name, version = loaded.version, failure = %failure, "plugin call failed");
            Err(PluginError::Failed {
                plugin: name.to_owned(),
                failure,
            })
        }
    }
}

impl Transformer for WasmPlugins {
    fn transform(
        &self,
        team: &str,
        name: &str,
        input: RawInput,
        config: &str,
    ) -> Result<Vec<Event>, PluginError> {
        let loaded = self.active(team, name, Kind::Transformer)?;
        let call = self.inner.runtime.transform(
            &loaded.compiled,
            loaded.state.clone(),
            &input,
            config,
            true,
        );
        finish(&loaded, team, name, call, 0, |events| (events.len(), 0))
    }
}

impl Filter for WasmPlugins {
    fn filter(
        &self,
        team: &str,
        name: &str,
        batch: &[FilterInput<'_>],
        config: &str,
    ) -> Result<Vec<Verdict>, PluginError> {
        let loaded = self.active(team, name, Kind::Filter)?;
        let call =
            self.inner
                .runtime
                .filter(&loaded.compiled, loaded.state.clone(), batch, config, true);
        finish(&loaded, team, name, call, batch.len(), |verdicts| {
            let dropped = verdicts
                .iter()
                .filter(|v| matches!(v, Verdict::Drop(_)))
                .count();
            (verdicts.len() - dropped, dropped)
        })
    }
}

impl Collector for WasmPlugins {
    fn collect(
        &self,
        team: &str,
        name: &str,
        incident: &IncidentContext,
        params: &str,
    ) -> Result<Vec<Section>, PluginError> {
        let loaded = self.active(team, name, Kind::Collector)?;
        let call = self.inner.runtime.collect(
            &loaded.compiled,
            loaded.state.clone(),
            incident,
            params,
            true,
        );
        finish(&loaded, team, name, call, 0, |sections| (sections.len(), 0))
    }
}

#[async_trait::async_trait]
impl Registry for WasmPlugins {
    fn max_size(&self) -> usize {
        self.limits().max_component
    }

    async fn install(
        &self,
        team: &str,
        name: &str,
        kind: Kind,
        component: Bytes,
        actor: &str,
    ) -> Result<PluginInfo, PluginError> {
        plugin::check_name(name).map_err(PluginError::Rejected)?;
        let limit = self.max_size();
        if component.len() > limit {
            return Err(PluginError::TooLarge {
                size: component.len(),
                limit,
            });
        }
        if let Ok(existing) = self.row(team, name).await
            && existing.kind != kind
        {
            return Err(PluginError::Rejected(format!(
                "plugin \"{name}\" is a {}; delete it before uploading a {} of that name",
                existing.kind.as_str(),
                kind.as_str()
            )));
        }
        let compiled = self.compiled(kind, component.clone()).await?;
        let version = self
            .inner
            .store
            .put_plugin_version(&NewVersion {
                team,
                name,
                kind,
                sha256: &compiled.sha256,
                component: &component,
                at: tocsin_model::clock::millis(time::OffsetDateTime::now_utc()),
                by: actor,
            })
            .await
            .map_err(internal)?;
        self.swap_in(team, name, version, compiled).await?;
        info!(
            team,
            plugin = name,
            version,
            kind = kind.as_str(),
            bytes = component.len(),
            "plugin installed"
        );
        self.get(team, name).await
    }

    async fn list(&self, team: Option<&str>) -> Result<Vec<PluginInfo>, PluginError> {
        let rows = self.inner.store.plugins(team).await.map_err(internal)?;
        Ok(rows.into_iter().map(|row| self.info(row)).collect())
    }

    async fn get(&self, team: &str, name: &str) -> Result<PluginInfo, PluginError> {
        let row = self.row(team, name).await?;
        Ok(self.info(row))
    }

    async fn refresh(&self) -> Result<usize, PluginError> {
        self.refresh_from_store().await.map_err(internal)
    }

    async fn remove(&self, team: &str, name: &str) -> Result<(), PluginError> {
        if !self
            .inner
            .store
            .delete_plugin(team, name)
            .await
            .map_err(internal)?
        {
            return Err(PluginError::NotFound(name.to_owned()));
        }
        let key = (team.to_owned(), name.to_owned());
        self.inner
            .loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        lock(&self.inner.counters).remove(&key);
        info!(team, plugin = name, "plugin removed");
        Ok(())
    }

    async fn rollback(&self, team: &str, name: &str) -> Result<PluginInfo, PluginError> {
        let row = self.row(team, name).await?;
        let Some(previous) = row
            .versions
            .iter()
            .map(|v| v.version)
            .filter(|v| *v < row.active_version)
            .max()
        else {
            return Err(PluginError::Rejected(format!(
                "plugin \"{name}\" has no version before {}",
                row.active_version
            )));
        };
        let compiled = self.stored(&row, previous).await?;
        self.inner
            .store
            .activate_plugin(
                team,
                name,
                previous,
                tocsin_model::clock::millis(time::OffsetDateTime::now_utc()),
            )
            .await
            .map_err(internal)?;
        self.swap_in(team, name, previous, compiled).await?;
        info!(
            team,
            plugin = name,
            version = previous,
            "plugin rolled back"
        );
        self.get(team, name).await
    }

    async fn test(&self, team: &str, name: &str, sample: Sample) -> Result<TestRun, PluginError> {
        let kind = match &sample {
            Sample::Transform(..) => Kind::Transformer,
            Sample::Filter(..) => Kind::Filter,
            Sample::Collect(..) => Kind::Collector,
        };
        let loaded = self.active(team, name, kind)?;
        let runtime = self.inner.runtime.clone();
        let plugin = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let state = loaded.state.clone();
            let compiled = &loaded.compiled;
            let mut run = TestRun {
                events: None,
                verdicts: None,
                sections: None,
                log: Vec::new(),
                duration_us: 0,
            };
            let failure = match sample {
                Sample::Transform(input, config) => {
                    let call = runtime.transform(compiled, state, &input, &config, false);
                    run.log = log_lines(&call.log);
                    run.duration_us = call.duration.as_micros() as u64;
                    call.result.map(|events| run.events = Some(events)).err()
                }
                Sample::Filter(events, config) => {
                    let batch: Vec<FilterInput<'_>> = events
                        .iter()
                        .map(|(event, received_at)| FilterInput {
                            event,
                            received_at: *received_at,
                        })
                        .collect();
                    let call = runtime.filter(compiled, state, &batch, &config, false);
                    run.log = log_lines(&call.log);
                    run.duration_us = call.duration.as_micros() as u64;
                    call.result
                        .map(|verdicts| run.verdicts = Some(verdicts))
                        .err()
                }
                Sample::Collect(incident, params) => {
                    let call = runtime.collect(compiled, state, &incident, &params, false);
                    run.log = log_lines(&call.log);
                    run.duration_us = call.duration.as_micros() as u64;
                    call.result
                        .map(|sections| run.sections = Some(sections))
                        .err()
                }
            };
            match failure {
                None => Ok(run),
                Some(failure) => Err(PluginError::Failed { plugin, failure }),
            }
        })
        .await
        .map_err(|e| PluginError::Internal(format!("the test call failed: {e}")))?
    }
}
