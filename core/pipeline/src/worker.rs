//! The pipeline's runner: feeds the journal through the [`Engine`] and commits each
//! batch's outcome, moving the cursor in the same transaction (so an event is processed
//! exactly once, crash or not). Incident commands (ack, close), recorded in the store by
//! whichever process serves the API, are applied between batches, so they are
//! serialised with the events wherever the pipeline runs.
//!
//! A runner may give the pipeline more than the store ([`Hooks`]): journal rows it holds
//! in memory ([`Feed`]) and a place for new incidents' notices ([`Handoff`]). The local
//! server gives both; without them the pipeline reads the journal and the outbox finds
//! the notices in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::config::Config;
use crate::engine::Engine;
use tocsin_model::clock::now_ms;
use tocsin_model::notice::Action;
use tocsin_model::plugin::Filter;
use tocsin_model::rows::IncidentError;
use tocsin_model::rows::{
    Command, CommandOutcome, CommandRow, HistoryOutcome, IncidentState, Incoming, NoticeRow,
    Outcome, Rules,
};
use tocsin_store::{Encoded, PipelineStore, StoreError};

/// Most journal rows in one batch.
pub const MAX_BATCH: usize = 5_000;
/// A batch at least this large, but not full, means the journal is busy and the pipeline
/// keeps up: it then pauses for [`PACE`] before the next one, so that appends get the
/// CPU and the next batch folds more repeats of each alert into one write. Smaller
/// batches (a quiet system) go on at once, so an event reaches grouping within
/// milliseconds when it matters most, and so do full ones (the pipeline is behind).
const BUSY_BATCH: usize = 1_000;
/// The pause under load.
const PACE: Duration = Duration::from_millis(50);
/// Alert states read per query when loading.
const LOAD_PAGE: i64 = 50_000;
/// How often [`load`] reads the state again when batches keep committing meanwhile.
const LOAD_TRIES: usize = 5;
/// How often history and finished incidents are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the store is asked for commands nobody signalled (another process's).
const COMMANDS_EVERY: Duration = Duration::from_secs(1);
/// How often the gauges of the engine's state are set.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// Most commands applied between two batches.
const COMMANDS_AT_ONCE: i64 = 64;

/// Journal rows a runner holds in memory, so that the pipeline need not read them back.
/// The journal stays the record: the pipeline takes rows from here only when they follow
/// its cursor without a gap.
pub trait Feed: Send + Sync {
    /// Up to `max` rows right after `cursor`, with no gap; `None` when the feed does not
    /// start right there.
    fn take(&self, cursor: i64, max: usize) -> Option<Fed>;
}

/// Rows taken from a [`Feed`].
#[derive(Debug)]
pub struct Fed {
    /// In seq order, without a gap.
    pub rows: Vec<Incoming>,
    /// The pipeline's commit counter and the catalogue's change counter as the last row's
    /// append read them.
    pub versions: (i64, i64),
}

/// Where new incidents' notices go in memory as soon as they are committed (the
/// outbox's fast path), so that a page does not wait for the outbox to find them in the
/// database.
pub trait Handoff: Send + Sync {
    /// Before the commit: reserves the new incidents among `notices`, so that nothing
    /// else takes them; returns the notices reserved.
    fn reserve(&self, notices: &[NoticeRow]) -> Vec<NoticeRow>;
    /// After the commit: hands the reserved notices over with their `batch` and the
    /// `rules` it ran with, or (no batch: the commit failed) drops their reservations.
    fn settle(&self, reserved: Vec<NoticeRow>, batch: Option<(&Arc<Outcome>, &Rules)>);
    /// The pipeline committed notices (handed over or not).
    fn noticed(&self);
}

/// Hears how far the pipeline has processed the journal (the runner's lag bound).
pub trait Progress: Send + Sync {
    /// The journal is processed up to `cursor` (in memory: a reload may move it back).
    fn processed(&self, cursor: i64);
}

/// What a runner gives the pipeline beyond the store.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Rows the runner committed to the journal, in memory.
    pub feed: Option<Arc<dyn Feed>>,
    /// Where new incidents' notices go in memory.
    pub handoff: Option<Arc<dyn Handoff>>,
    /// Told the cursor after every batch.
    pub progress: Option<Arc<dyn Progress>>,
}

/// Wakes the pipeline (new events, new rules, new commands) and stops it.
#[derive(Debug, Default)]
pub struct Signal {
    wake: Notify,
    stopping: AtomicBool,
    commands: AtomicBool,
}

impl Signal {
    /// New events are in the journal, or the rules changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// An incident command is waiting in the store.
    pub fn command(&self) {
        self.commands.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Process what is left, then stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn take_commands(&self) -> bool {
        self.commands.swap(false, Ordering::SeqCst)
    }
}

/// Builds an engine from the store: every alert state, held events, open incidents,
/// the catalogue and suppressions.
///
/// The state is read in several statements, on two connections: it is one point of the
/// store's history only if no batch committed meanwhile. Another process's commit (a
/// pipeline killed with its last commit in flight, on a shared database) moves the
/// commit counter, and the state is then read again.
pub async fn load(store: &dyn PipelineStore, config: Config) -> Result<Engine, StoreError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (before, _) = store.versions().await?;
        let engine = load_once(store, config).await?;
        let (after, _) = store.versions().await?;
        if before == engine.generation() && after == before {
            return Ok(engine);
        }
        if tries >= LOAD_TRIES {
            return Err(StoreError::Conflict);
        }
        warn!(
            before,
            after, "a batch committed while the pipeline's state was read; reading it again"
        );
    }
}

async fn load_once(store: &dyn PipelineStore, config: Config) -> Result<Engine, StoreError> {
    let started = Instant::now();
    let mut engine = Engine::new(config);
    // The alerts page by page, and meanwhile, on another connection, the rest.
    let alerts = async {
        let mut after = None;
        loop {
            let page = store.tracked_page(after, LOAD_PAGE).await?;
            let full = page.len() as i64 == LOAD_PAGE;
            after = page.last().map(|row| row.id);
            for row in page {
                engine.load_alert(row);
            }
            if !full {
                break;
            }
        }
        Ok::<_, StoreError>(started.elapsed())
    };
    let rest = async {
        let snapshot = store.snapshot().await?;
        let rules = store.rules(now_ms() - config.retention_ms).await?;
        Ok::<_, StoreError>((snapshot, rules, started.elapsed()))
    };
    let (alerts_took, (snapshot, rules, rest_took)) = tokio::try_join!(alerts, rest)?;
    engine.load_snapshot(snapshot);
    engine.set_rules(rules);
    info!(alerts = engine.tracked(), cursor = engine.cursor(), ?alerts_took, ?rest_took, elapsed = ?started.elapsed(), "pipeline state loaded");
    Ok(engine)
}

/// Processes one batch (at most `max` journal rows, and the timers due by `now`):
/// reads, runs the engine, commits. Returns the journal rows processed.
pub async fn step(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    max: usize,
    now: i64,
) -> Result<usize, StoreError> {
    advance(store, engine, max, now, None).await
}

/// [`step`], taking the journal's rows from the runner's feed when it has them, and
/// handing new incidents' notices over.
async fn advance(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    max: usize,
    now: i64,
    hooks: Option<&Hooks>,
) -> Result<usize, StoreError> {
    let prepared = prepare(store, engine, max, now, hooks).await?;
    finish(store, engine, prepared, hooks).await
}

/// Reads the next batch and runs it through the engine, without committing it.
async fn prepare(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    max: usize,
    now: i64,
    hooks: Option<&Hooks>,
) -> Result<Prepared, StoreError> {
    let batch = read(store, engine, max, now, hooks, false).await?;
    let outcome = engine.process(batch.rows, batch.meta.now);
    Ok(Prepared::new(batch.meta, outcome))
}

/// A batch's journal rows, read and checked against the store's counters.
struct Batch {
    rows: Vec<Incoming>,
    meta: BatchMeta,
}

/// What is known of a batch besides its rows and outcome.
struct BatchMeta {
    events: usize,
    /// The engine's time for the batch.
    now: i64,
    /// The engine's cursor before the batch: the journal is processed up to it until the
    /// batch commits.
    from: i64,
    started: Instant,
    read: Duration,
    from_memory: bool,
}

/// A batch run through the engine, its outcome not yet committed.
struct Prepared {
    outcome: Arc<Outcome>,
    /// The outcome's statements, when they were built ahead of the commit.
    encoded: Option<Encoded>,
    meta: BatchMeta,
    processed: Duration,
    /// Each incident this batch opened, changed or resolved gets a span in the trace of
    /// the event that opened it, covering the batch's commit.
    _traced: Vec<tracing::Span>,
}

impl Prepared {
    fn new(meta: BatchMeta, outcome: Outcome) -> Self {
        let outcome = Arc::new(outcome);
        let traced = outcome
            .notices
            .iter()
            .map(|notice| {
                let span = info_span!("pipeline.incident", incident = %notice.incident_id, team = %notice.team, action = notice.action.as_str(), events = meta.events);
                let trace = outcome
                    .incidents
                    .iter()
                    .find(|i| i.id == notice.incident_id)
                    .and_then(|i| i.trace_id.as_deref());
                tocsin_model::trace::follow(&span, trace, None);
                span
            })
            .collect();
        Self {
            outcome,
            encoded: None,
            processed: meta.started.elapsed(),
            meta,
            _traced: traced,
        }
    }

    /// Its events; metrics and a debug line once it is committed (or deferred).
    fn done(self) -> usize {
        let Self {
            outcome,
            meta,
            processed,
            ..
        } = self;
        let n = meta.events;
        if n > 0 {
            let stage = |name: &'static str, took: Duration| {
                metrics::histogram!("tocsin_pipeline_stage_duration_seconds", "stage" => name)
                    .record(took.as_secs_f64());
            };
            stage("read", meta.read);
            stage("process", processed.saturating_sub(meta.read));
            stage("commit", meta.started.elapsed().saturating_sub(processed));
            metrics::counter!("tocsin_pipeline_events_processed_total").increment(n as u64);
            metrics::histogram!("tocsin_pipeline_batch_events").record(n as f64);
            debug!(
                events = n,
                from_memory = meta.from_memory,
                alerts = outcome.alerts.len(),
                refreshed = outcome.refreshed.len(),
                history = outcome.history.len(),
                read = ?meta.read,
                ?processed,
                committed = ?meta.started.elapsed(),
                "pipeline step"
            );
        }
        n
    }
}

/// Reads the next batch (at most `max` rows after the engine's cursor) with the bodies
/// the engine needs, and takes in new rules. `in_flight`: the engine's previous batch is
/// being committed meanwhile, so the store's commit counter may be one ahead of the
/// engine's without another process having committed.
async fn read(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    max: usize,
    now: i64,
    hooks: Option<&Hooks>,
    in_flight: bool,
) -> Result<Batch, StoreError> {
    let started = Instant::now();
    let from = engine.cursor();
    let fed = hooks
        .and_then(|h| h.feed.as_ref())
        .and_then(|feed| feed.take(from, max));
    let from_memory = fed.is_some();
    let (mut rows, fed_versions) = match fed {
        Some(fed) => (fed.rows, Some(fed.versions)),
        None => (store.journal_after(from, max).await?, None),
    };
    let need = engine.needing_bodies(&rows);
    // From memory, and from a journal that stores events in blocks (PostgreSQL), rows
    // come with their bodies; else the bodies needed are read.
    let with_bodies = from_memory || rows.first().is_some_and(|row| !row.event.is_empty());
    if with_bodies {
        // Steady repeats go without their body, as when read from the journal.
        if need.len() < rows.len() {
            let need: std::collections::HashSet<i64> = need.into_iter().collect();
            for row in rows.iter_mut().filter(|row| !need.contains(&row.seq)) {
                row.labels = String::new();
                row.event = String::new();
            }
        }
    } else if !need.is_empty() {
        let mut bodies = store.journal_bodies(&need).await?;
        for row in &mut rows {
            if let Some((labels, event)) = bodies.remove(&row.seq) {
                row.labels = labels;
                row.event = event;
            }
        }
    }
    // Read after the rows: a suppression or service saved before any of these events
    // was appended is then always seen. Rows taken from memory come with the counters
    // their append read, after its inserts, which promises the same. Those may predate
    // this engine's own last commit or rules: only a counter ahead of the engine's
    // tells of another process's commit or of new rules.
    let ours = engine.generation() + i64::from(in_flight);
    let (conflict, new_rules) = match fed_versions {
        Some((generation, rules)) => (generation > ours, rules > engine.rules_version()),
        None => {
            let (generation, rules) = store.versions().await?;
            (
                generation != engine.generation() && generation != ours,
                rules != engine.rules_version(),
            )
        }
    };
    if conflict {
        return Err(StoreError::Conflict);
    }
    if new_rules {
        engine.set_rules(store.rules(now - engine.config().retention_ms).await?);
    }
    let events = rows.len();
    // A full batch may leave older rows in the journal: timers must not run ahead of them.
    let now = match rows.last() {
        Some(last) if events == max => last.received_at,
        _ => now,
    };
    Ok(Batch {
        rows,
        meta: BatchMeta {
            events,
            now,
            from,
            started,
            read: started.elapsed(),
            from_memory,
        },
    })
}

/// Commits a processed batch, or leaves it for a later commit when it only moves the
/// cursor (see [`Engine::may_defer`]). Returns its events.
async fn finish(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    mut prepared: Prepared,
    hooks: Option<&Hooks>,
) -> Result<usize, StoreError> {
    let now = prepared.meta.now;
    if hooks.is_some() && engine.may_defer(&prepared.outcome, now) {
        engine.defer(&prepared.outcome, now);
    } else if !prepared.outcome.is_empty() {
        let handoff = hooks.and_then(|h| h.handoff.as_deref());
        let Prepared {
            outcome, encoded, ..
        } = &mut prepared;
        commit(store, engine, outcome, encoded.take(), handoff).await?;
    }
    Ok(prepared.done())
}

/// For a pipeline that is behind: commits `prepared` while the next batch is read and
/// processed, so that the database's writer is not left idle while the engine works
/// (the engine's CPU work goes to a blocking thread; this task drives the commit).
/// The next batch's statements are built on that thread too, so that its commit only
/// runs them. Returns the events of `prepared` and the next batch, processed and not
/// committed. An error may leave the engine ahead of the store: the caller reloads it.
async fn overlapped(
    store: &Arc<dyn PipelineStore>,
    engine: &mut Engine,
    mut prepared: Prepared,
    max: usize,
    hooks: &Hooks,
) -> Result<(usize, Prepared), StoreError> {
    if prepared.outcome.is_empty() || engine.may_defer(&prepared.outcome, prepared.meta.now) {
        // Nothing to write but the cursor: no commit to overlap.
        let n = finish(store.as_ref(), engine, prepared, Some(hooks)).await?;
        let next = prepare(store.as_ref(), engine, max, now_ms(), Some(hooks)).await?;
        return Ok((n, next));
    }
    let handoff = hooks.handoff.as_deref();
    let handed = handoff.map(|h| h.reserve(&prepared.outcome.notices));
    // The rules the batch ran with: the next one may bring new ones.
    let rules = (!prepared.outcome.notices.is_empty()).then(|| engine.rules.clone());
    let (generation, encoded) = (engine.generation(), prepared.encoded.take());
    // The commit is a task of its own: it is a round trip to the database's writer per
    // statement, and on a runtime with a worker thread (the server's pipeline has one)
    // the writer then gets its next statement while this task reads and parses the next
    // batch, which took the thread for tens of milliseconds.
    let (writer, outcome) = (store.clone(), prepared.outcome.clone());
    let write = tokio::spawn(
        async move {
            match encoded {
                Some(encoded) => writer.commit_encoded(encoded, generation).await,
                None => writer.commit(&outcome, generation).await,
            }
        }
        .in_current_span(),
    );
    let write = async {
        write
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    };
    let next = async {
        let batch = read(store.as_ref(), engine, max, now_ms(), Some(hooks), true).await?;
        let mut owned = std::mem::replace(engine, Engine::new(*engine.config()));
        let encoder = store.clone();
        let (owned, outcome, encoded) = tokio::task::spawn_blocking(move || {
            let outcome = owned.process(batch.rows, batch.meta.now);
            let encoded = encoder.encode(&outcome);
            (owned, outcome, encoded)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        *engine = owned;
        let mut next = Prepared::new(batch.meta, outcome);
        next.encoded = Some(encoded);
        Ok::<_, StoreError>(next)
    };
    let (written, next) = tokio::join!(write, next);
    if let (Some(handoff), Some(handed)) = (handoff, handed) {
        let ran_with = rules.as_ref().unwrap_or(&engine.rules);
        handoff.settle(
            handed,
            written.is_ok().then_some((&prepared.outcome, ran_with)),
        );
    }
    written?;
    landed(engine, &prepared.outcome);
    Ok((prepared.done(), next?))
}

/// Writes an outcome of `engine` (`encoded` when its statements were built already)
/// and counts the commit in it; new incidents' notices go to `handoff` once committed.
async fn commit(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    outcome: &Arc<Outcome>,
    encoded: Option<Encoded>,
    handoff: Option<&dyn Handoff>,
) -> Result<(), StoreError> {
    let handed = handoff.map(|h| h.reserve(&outcome.notices));
    let committed = match encoded {
        Some(encoded) => store.commit_encoded(encoded, engine.generation()).await,
        None => store.commit(outcome, engine.generation()).await,
    };
    if let (Some(handoff), Some(handed)) = (handoff, handed) {
        let batch = committed.is_ok().then_some((outcome, &engine.rules));
        handoff.settle(handed, batch);
    }
    committed?;
    landed(engine, outcome);
    Ok(())
}

/// What follows a batch's successful commit: its counts, and the engine's commit counter.
fn landed(engine: &mut Engine, outcome: &Outcome) {
    count(outcome);
    engine.committed();
    engine.noticed |= !outcome.notices.is_empty();
}

/// Counts what a committed batch did: drops, suppressions and holds by team and reason,
/// incidents opened and resolved by team and priority.
fn count(outcome: &Outcome) {
    for (team, reason, n) in &outcome.drops {
        metrics::counter!("tocsin_pipeline_dropped_total", "team" => team.clone(), "reason" => reason.clone())
            .increment(*n as u64);
    }
    for row in &outcome.history {
        match row.outcome {
            HistoryOutcome::Suppressed => {
                let suppression = row.suppression_id.clone().unwrap_or_default();
                metrics::counter!("tocsin_pipeline_suppressed_total", "team" => row.team.clone(), "suppression" => suppression)
                    .increment(1);
            }
            HistoryOutcome::Held => {
                // The reason's kind (`flapping`, `ignore-flap`): its details vary.
                let kind = row.reason.split(':').next().unwrap_or_default().to_owned();
                metrics::counter!("tocsin_pipeline_held_total", "team" => row.team.clone(), "reason" => kind)
                    .increment(1);
            }
            HistoryOutcome::Passed | HistoryOutcome::Dropped => {}
        }
    }
    for notice in &outcome.notices {
        let name = match notice.action {
            Action::Open => "tocsin_incidents_opened_total",
            Action::Resolve => "tocsin_incidents_resolved_total",
            Action::Update => continue,
        };
        let priority = outcome
            .incidents
            .iter()
            .find(|i| i.id == notice.incident_id)
            .map_or("unknown", |i| i.priority.as_str());
        metrics::counter!(name, "team" => notice.team.clone(), "priority" => priority).increment(1);
    }
}

/// Processes the journal until it is empty, `batch` rows at a time, then writes every
/// steady refresh; for tools and tests that run the pipeline without the server.
pub async fn drain(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    batch: usize,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = step(store, engine, batch, now_ms()).await?;
        total += n;
        if n == 0 {
            flush(store, engine).await?;
            return Ok(total);
        }
    }
}

/// Writes every steady refresh still in memory (for a runner that stops after a batch,
/// as a Lambda invocation does).
pub async fn flush(store: &dyn PipelineStore, engine: &mut Engine) -> Result<(), StoreError> {
    let outcome = Arc::new(engine.flush(now_ms()));
    commit(store, engine, &outcome, None, None).await
}

/// Applies the incident commands recorded in the store, in order (for a runner that does
/// not loop). An error means the engine may be ahead of the database: load it again.
pub async fn apply_commands(
    store: &dyn PipelineStore,
    engine: &mut Engine,
) -> Result<(), StoreError> {
    commands(store, engine).await
}

/// Runs the pipeline until stopped. A failed batch reloads the state from the store
/// and retries: nothing is lost, the cursor did not move.
pub async fn run(
    store: Arc<dyn PipelineStore>,
    config: Config,
    plugins: Option<Arc<dyn Filter>>,
    signal: Arc<Signal>,
    hooks: Hooks,
) {
    let mut engine = None;
    // A batch processed while the one before it committed, waiting for its own commit
    // (a pipeline that is behind: see [`overlapped`]).
    let mut ahead: Option<Prepared> = None;
    let mut behind = false;
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut last_commands = Instant::now() - COMMANDS_EVERY;
    let mut last_gauges = Instant::now() - GAUGES_EVERY;
    loop {
        let Some(current) = engine.as_mut() else {
            (ahead, behind) = (None, false);
            match load(store.as_ref(), config).await {
                Ok(mut loaded) => {
                    if let Some(plugins) = &plugins {
                        loaded.set_plugins(plugins.clone());
                    }
                    engine = Some(loaded);
                }
                Err(e) => {
                    error!(error = %e, "cannot load the pipeline state; retrying");
                    if signal.stopping() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        if signal.take_commands() || last_commands.elapsed() >= COMMANDS_EVERY {
            last_commands = Instant::now();
            // A batch processed ahead commits first: the command's commit follows it.
            let mut applied = match ahead.take() {
                Some(prepared) => finish(store.as_ref(), current, prepared, Some(&hooks))
                    .await
                    .map(|_| ()),
                None => Ok(()),
            };
            if applied.is_ok() {
                applied = commands(store.as_ref(), current).await;
            }
            if let Err(e) = applied {
                // The engine may be ahead of the database: reload it. The command stays
                // pending and is applied once the state is back.
                error!(error = %e, "applying incident commands failed; reloading the pipeline state");
                engine = None;
                signal.commands.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let started = Instant::now();
        let span = info_span!("pipeline.batch");
        // Behind, the next batch is processed while the one before it commits; the
        // first of a run is only processed.
        let stepped = match ahead.take() {
            Some(prepared) => overlapped(&store, current, prepared, MAX_BATCH, &hooks)
                .instrument(span)
                .await
                .map(|(n, next)| (n, Some(next))),
            None if behind && !signal.stopping() => {
                prepare(store.as_ref(), current, MAX_BATCH, now_ms(), Some(&hooks))
                    .instrument(span)
                    .await
                    .map(|next| (0, Some(next)))
            }
            None => advance(store.as_ref(), current, MAX_BATCH, now_ms(), Some(&hooks))
                .instrument(span)
                .await
                .map(|n| (n, None)),
        };
        // A next batch that is full is kept to overlap with; any other commits now.
        let processed = match stepped {
            Ok((n, Some(next))) if next.meta.events == MAX_BATCH && !signal.stopping() => {
                ahead = Some(next);
                Ok(n)
            }
            Ok((_, Some(next))) => finish(store.as_ref(), current, next, Some(&hooks)).await,
            Ok((n, None)) => Ok(n),
            Err(e) => Err(e),
        };
        if std::mem::take(&mut current.noticed)
            && let Some(handoff) = &hooks.handoff
        {
            handoff.noticed();
        }
        let processed = match processed {
            Ok(n) => n,
            Err(StoreError::Conflict) => {
                metrics::counter!("tocsin_pipeline_conflicts_total").increment(1);
                warn!("another process moved the pipeline on; reloading its state");
                engine = None;
                continue;
            }
            Err(e) => {
                error!(error = %e, "pipeline batch failed; reloading its state and retrying");
                engine = None;
                if signal.stopping() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        behind = processed == MAX_BATCH || ahead.is_some();
        if processed > 0 {
            debug!(events = processed, elapsed = ?started.elapsed(), "pipeline batch");
        }
        if let Some(progress) = &hooks.progress {
            // Only what is committed counts as processed.
            let committed = ahead.as_ref().map_or(current.cursor(), |a| a.meta.from);
            progress.processed(committed);
        }
        if last_gauges.elapsed() >= GAUGES_EVERY {
            last_gauges = Instant::now();
            metrics::gauge!("tocsin_pipeline_tracked_alerts").set(current.tracked() as f64);
            metrics::gauge!("tocsin_pipeline_flapping_alerts").set(current.flapping() as f64);
        }
        if ahead.is_some() {
            continue;
        }
        // A full batch means the pipeline is behind: it goes on at once. A pause after
        // every full batch held a pipeline that had fallen behind to 5,000 events per
        // batch plus 50 ms, half its speed when catching up.
        if (BUSY_BATCH..MAX_BATCH).contains(&processed) && !signal.stopping() {
            tokio::time::sleep(PACE).await;
            continue;
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = now_ms() - current.config().retention_ms;
            debug!(
                before,
                "pruning history and finished incidents past retention"
            );
            match store.prune(before).await {
                Ok(0) => {}
                Ok(n) => info!(
                    rows = n,
                    "pruned history and finished incidents past retention"
                ),
                Err(e) => error!(error = %e, "pruning failed; will retry"),
            }
        }
        if signal.stopping() {
            if processed == 0 {
                // Write the steady refreshes still in memory before stopping.
                let outcome = Arc::new(current.flush(now_ms()));
                if let Err(e) = commit(store.as_ref(), current, &outcome, None, None).await {
                    error!(error = %e, "writing the last steady refreshes failed; their counts may lag after restart");
                }
                break;
            }
            continue;
        }
        // Sleep until woken, a command arrives, the next timer is due, or a second has
        // passed (events appended by another process cannot wake this one).
        let wait = current
            .next_due()
            .map(|due| Duration::from_millis((due - now_ms()).clamp(0, 1_000) as u64))
            .unwrap_or(Duration::from_secs(1));
        if processed == 0 {
            tokio::select! {
                _ = signal.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Applies the pending incident commands in order and records each one's outcome. An
/// error means the engine may be ahead of the database (the caller reloads it); the
/// command it failed on stays pending.
async fn commands(store: &dyn PipelineStore, engine: &mut Engine) -> Result<(), StoreError> {
    for row in store.pending_commands(COMMANDS_AT_ONCE).await? {
        let outcome = command(store, engine, &row).await?;
        store.finish_command(&row.id, outcome, now_ms()).await?;
    }
    Ok(())
}

async fn command(
    store: &dyn PipelineStore,
    engine: &mut Engine,
    row: &CommandRow,
) -> Result<CommandOutcome, StoreError> {
    let now = now_ms();
    let team = row.team.as_deref();
    let applied = match row.command {
        Command::Ack => engine.ack(&row.incident_id, team, &row.who, now),
        Command::Close => engine.close(&row.incident_id, team, &row.who, now),
    };
    match applied {
        Ok(()) => {
            let outcome = Arc::new(engine.process(Vec::new(), now));
            commit(store, engine, &outcome, None, None).await?;
            Ok(CommandOutcome::Applied)
        }
        Err(IncidentError::NotFound(_)) => {
            // Not open: it may be resolved (ack and close still apply) or closed.
            let close = row.command == Command::Close;
            if store
                .finished_incident(&row.incident_id, team, close, &row.who, now)
                .await?
            {
                return Ok(CommandOutcome::Applied);
            }
            Ok(match store.incident(&row.incident_id, team).await? {
                Some(detail) if detail.incident.state == IncidentState::Closed && close => {
                    CommandOutcome::Closed
                }
                // Acknowledging twice, or a finished incident: nothing to change.
                Some(_) => CommandOutcome::Applied,
                None => CommandOutcome::NotFound,
            })
        }
        Err(IncidentError::Closed(_)) => Ok(CommandOutcome::Closed),
    }
}
