//! The pipeline's worker: feeds the journal through the [`Engine`] and commits each
//! batch's outcome, moving the cursor in the same transaction (so an event is processed
//! exactly once, crash or not). Incident commands (ack, close) go through it too, so
//! they are serialised with the events.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use super::grouping::IncidentError;
use super::{Config, Engine, Incoming, NoticeRow, Outcome};
use crate::catalogue::Service;
use crate::notify::Action;
use crate::store::StoredRoute;
use crate::store::{Store, StoreError};

/// Most journal rows in one batch.
const MAX_BATCH: usize = 5_000;
/// A batch at least this large means the journal is busy: the pipeline then pauses for
/// [`PACE`] before the next one, so that appends get the writer and the next batch folds
/// more repeats of each alert into one write. Smaller batches (a quiet system) go on at
/// once, so an event reaches grouping within milliseconds when it matters most.
const BUSY_BATCH: usize = 1_000;
/// The pause under load.
const PACE: Duration = Duration::from_millis(50);
/// Alert states read per query when loading.
const LOAD_PAGE: i64 = 50_000;
/// How often history and finished incidents are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most journal rows waiting in memory for the pipeline.
const MAX_FED: usize = 2 * MAX_BATCH;
/// Most new incidents handed to the outbox in memory and not yet delivered; beyond it
/// their notices wait in the database like any other.
const MAX_HANDOFF: usize = 1_000;
/// A reservation no outbox settled in this long is forgotten (the outbox's rounds then
/// deliver the notice from the database).
const RESERVATION: Duration = Duration::from_secs(300);

/// Something a human asks of an incident.
#[derive(Debug, Clone)]
pub enum Command {
    /// Acknowledge it.
    Ack,
    /// Close it, for good.
    Close,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such incident, or it is closed.
    #[error(transparent)]
    Incident(#[from] IncidentError),
    /// The pipeline is not running or the database failed.
    #[error("the pipeline could not apply the command")]
    Unavailable,
}

struct Request {
    command: Command,
    incident: String,
    team: Option<String>,
    who: String,
    done: oneshot::Sender<Result<(), CommandError>>,
}

/// A handle to the running pipeline; cheap to clone.
#[derive(Clone, Debug)]
pub struct Pipeline {
    commands: mpsc::Sender<Request>,
    signal: Arc<Signal>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("incident", &self.incident)
            .finish()
    }
}

impl Pipeline {
    /// Applies a command to an incident (of `team`, unless `None`: admins), as `who`.
    pub async fn command(
        &self,
        command: Command,
        incident: &str,
        team: Option<&str>,
        who: &str,
    ) -> Result<(), CommandError> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Request {
                command,
                incident: incident.to_owned(),
                team: team.map(str::to_owned),
                who: who.to_owned(),
                done,
            })
            .await
            .map_err(|_| CommandError::Unavailable)?;
        self.signal.wake();
        answer.await.map_err(|_| CommandError::Unavailable)?
    }

    /// Resolves once the pipeline has committed notices for the outbox.
    pub async fn noticed(&self) {
        self.signal.handoff.ready.notified().await;
    }

    /// Where new incidents' notices are handed to the outbox.
    pub fn handoff(&self) -> &Handoff {
        &self.signal.handoff
    }

    /// New events are in the journal (or the rules changed).
    pub fn wake(&self) {
        self.signal.wake();
    }
}

/// Wakes the worker when the journal commits, and stops it.
#[derive(Debug, Default)]
pub struct Signal {
    wake: Notify,
    stopping: AtomicBool,
    handoff: Handoff,
    feed: Feed,
}

/// Journal rows this process committed, handed to the pipeline in memory so that it
/// need not read them back. The journal is still the record: the pipeline takes rows
/// from here only when they follow its cursor without a gap, and reads the database
/// otherwise (rows appended by another process, or while it lags behind).
#[derive(Debug, Default)]
pub struct Feed {
    rows: Mutex<VecDeque<FedRow>>,
}

/// A row with the counters its append read ([`crate::store::Appended::versions`]).
type FedRow = (Incoming, (i64, i64));

/// Rows taken from the [`Feed`].
#[derive(Debug)]
struct Fed {
    rows: Vec<Incoming>,
    /// The pipeline's commit counter and the catalogue's change counter as the last row's
    /// append read them.
    versions: (i64, i64),
}

impl Feed {
    /// Whether `n` more rows fit: a pipeline that lags behind reads the journal anyway,
    /// and the rows would only take memory.
    pub fn has_room(&self, n: usize) -> bool {
        self.lock().len() + n <= MAX_FED
    }

    /// Rows just committed, in seq order, with the counters their append read.
    pub fn push(&self, rows: Vec<Incoming>, versions: (i64, i64)) {
        let mut fed = self.lock();
        if fed.len() + rows.len() <= MAX_FED {
            fed.extend(rows.into_iter().map(|row| (row, versions)));
        }
    }

    /// Up to `max` rows right after `cursor`, with no gap; `None` when the feed does not
    /// start right there.
    fn take(&self, cursor: i64, max: usize) -> Option<Fed> {
        let mut fed = self.lock();
        while fed.front().is_some_and(|(row, _)| row.seq <= cursor) {
            fed.pop_front();
        }
        if fed.front()?.0.seq != cursor + 1 {
            return None;
        }
        let mut taken = Fed {
            rows: Vec::with_capacity(fed.len().min(max)),
            versions: fed.front()?.1,
        };
        let mut next = cursor + 1;
        while taken.rows.len() < max && fed.front().is_some_and(|(row, _)| row.seq == next) {
            if let Some((row, versions)) = fed.pop_front() {
                taken.rows.push(row);
                taken.versions = versions;
            }
            next += 1;
        }
        Some(taken)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FedRow>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// New incidents' notices, handed to the outbox in memory as soon as they are committed,
/// so that a page does not wait for the outbox to find them in the database.
///
/// The notice is durable before it is handed over; the outbox sends first and records
/// the deliveries after, and a notice still in the database after a crash is taken as
/// possibly sent (its tickets are looked for before new ones are opened). An incident
/// is reserved before its notice is committed, so the outbox's rounds never take a
/// notice (or a later one of the same incident) while the handed-over one is in flight.
#[derive(Debug, Default)]
pub struct Handoff {
    /// An outbox takes handed-over notices; until then none are.
    attached: AtomicBool,
    state: Mutex<HandoffState>,
    /// The pipeline committed notices.
    ready: Notify,
}

/// A new incident's notice handed to the outbox, with what it is rendered from as the
/// pipeline committed it: the outbox need not read any of it back.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The notice (in the database too).
    pub notice: NoticeRow,
    /// The committed batch that opened the incident.
    pub batch: Arc<Outcome>,
    /// The incident's service, as the batch saw it.
    pub service: Option<Arc<Service>>,
    /// The routes set through the API, as the batch saw them.
    pub routes: Arc<Vec<StoredRoute>>,
}

#[derive(Debug, Default)]
struct HandoffState {
    /// Committed and not yet taken.
    fresh: Vec<Handed>,
    /// Incidents whose first notice is handed over, since when.
    reserved: HashMap<String, Instant>,
}

impl Handoff {
    /// An outbox takes handed-over notices from now on.
    pub fn attach(&self) {
        self.attached.store(true, Ordering::SeqCst);
    }

    /// The notices handed over since the last call.
    pub fn take(&self) -> Vec<Handed> {
        std::mem::take(&mut self.lock().fresh)
    }

    /// Whether a handed-over notice of `incident` is still being delivered: the
    /// incident's notices in the database wait for it.
    pub fn is_reserved(&self, incident: &str) -> bool {
        self.lock()
            .reserved
            .get(incident)
            .is_some_and(|since| since.elapsed() < RESERVATION)
    }

    /// The handed-over notice of `incident` is delivered (or left to the database).
    pub fn release(&self, incident: &str) {
        self.lock().reserved.remove(incident);
    }

    /// Reserves the new incidents among `notices`, if an outbox is attached and has room;
    /// returns the notices reserved.
    fn reserve(&self, notices: &[NoticeRow]) -> Vec<NoticeRow> {
        if !self.attached.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let mut state = self.lock();
        state
            .reserved
            .retain(|_, since| since.elapsed() < RESERVATION);
        let room = MAX_HANDOFF.saturating_sub(state.reserved.len());
        let chosen: Vec<NoticeRow> = notices
            .iter()
            .filter(|n| n.action == Action::Open)
            .take(room)
            .cloned()
            .collect();
        let now = Instant::now();
        for notice in &chosen {
            state.reserved.insert(notice.incident_id.clone(), now);
        }
        chosen
    }

    /// After the commit: hands the reserved notices over with their `batch` and the
    /// `rules` it ran with, or (no batch: the commit failed) drops their reservations.
    fn settle(&self, notices: Vec<NoticeRow>, batch: Option<(&Arc<Outcome>, &super::Rules)>) {
        if notices.is_empty() {
            return;
        }
        let mut state = self.lock();
        let Some((batch, rules)) = batch else {
            for notice in &notices {
                state.reserved.remove(&notice.incident_id);
            }
            return;
        };
        let services: HashMap<&str, (&str, Option<&str>)> = batch
            .incidents
            .iter()
            .map(|i| (i.id.as_str(), (i.team.as_str(), i.service.as_deref())))
            .collect();
        for notice in notices {
            let service = services
                .get(notice.incident_id.as_str())
                .and_then(|&(team, name)| rules.service_for(team, name?))
                .cloned();
            state.fresh.push(Handed {
                notice,
                batch: batch.clone(),
                service,
                routes: rules.routes.clone(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HandoffState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Signal {
    /// New events are in the journal.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Where the journal hands its committed rows to the pipeline.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Process what is left, then stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A pipeline handle and what the worker needs to serve it.
pub fn channel(signal: Arc<Signal>) -> (Pipeline, Inbox) {
    let (commands, inbox) = mpsc::channel(64);
    (Pipeline { commands, signal }, Inbox(inbox))
}

/// The worker's end of [`Pipeline`].
#[derive(Debug)]
pub struct Inbox(mpsc::Receiver<Request>);

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Builds an engine from the store: every alert state, held events, open incidents,
/// the catalogue and suppressions.
pub async fn load(store: &dyn Store, config: Config) -> Result<Engine, StoreError> {
    let started = Instant::now();
    let mut engine = Engine::new(config);
    let mut after = None;
    loop {
        let page = store.tracked_page(after.clone(), LOAD_PAGE).await?;
        let full = page.len() as i64 == LOAD_PAGE;
        after = page
            .last()
            .map(|row| (row.team.clone(), row.fingerprint.clone()));
        for row in page {
            engine.load_alert(row);
        }
        if !full {
            break;
        }
    }
    engine.load_snapshot(store.snapshot().await?);
    engine.set_rules(store.rules(now_ms() - config.retention_ms).await?);
    info!(alerts = engine.tracked(), cursor = engine.cursor(), elapsed = ?started.elapsed(), "pipeline state loaded");
    Ok(engine)
}

/// Processes one batch (at most `max` journal rows, and the timers due by `now`):
/// reads, runs the engine, commits. Returns the journal rows processed.
pub async fn step(
    store: &dyn Store,
    engine: &mut Engine,
    max: usize,
    now: i64,
) -> Result<usize, StoreError> {
    advance(store, engine, max, now, None).await
}

/// [`step`], taking the journal's rows from `signal`'s feed when it has them, and
/// handing new incidents' notices to its outbox.
async fn advance(
    store: &dyn Store,
    engine: &mut Engine,
    max: usize,
    now: i64,
    signal: Option<&Signal>,
) -> Result<usize, StoreError> {
    let started = Instant::now();
    let fed = signal.and_then(|s| s.feed.take(engine.cursor(), max));
    let from_memory = fed.is_some();
    let (mut rows, fed_versions) = match fed {
        Some(fed) => (fed.rows, Some(fed.versions)),
        None => (store.journal_after(engine.cursor(), max).await?, None),
    };
    let need = engine.needing_bodies(&rows);
    if from_memory {
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
    let (conflict, new_rules) = match fed_versions {
        Some((generation, rules)) => (
            generation > engine.generation(),
            rules > engine.rules_version(),
        ),
        None => {
            let (generation, rules) = store.versions().await?;
            (
                generation != engine.generation(),
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
    let n = rows.len();
    // A full batch may leave older rows in the journal: timers must not run ahead of them.
    let now = match rows.last() {
        Some(last) if n == max => last.received_at,
        _ => now,
    };
    let read = started.elapsed();
    let outcome = Arc::new(engine.process(rows, now));
    let processed = started.elapsed();
    if signal.is_some() && engine.may_defer(&outcome, now) {
        engine.defer(&outcome, now);
    } else if !outcome.is_empty() {
        commit(store, engine, &outcome, signal.map(|s| &s.handoff)).await?;
    }
    if n > 0 {
        debug!(
            events = n,
            from_memory,
            alerts = outcome.alerts.len(),
            refreshed = outcome.refreshed.len(),
            history = outcome.history.len(),
            ?read,
            ?processed,
            committed = ?started.elapsed(),
            "pipeline step"
        );
    }
    Ok(n)
}

/// Writes an outcome of `engine` and counts the commit in it; new incidents' notices go
/// to `handoff` once committed.
async fn commit(
    store: &dyn Store,
    engine: &mut Engine,
    outcome: &Arc<Outcome>,
    handoff: Option<&Handoff>,
) -> Result<(), StoreError> {
    let handed = handoff.map(|h| h.reserve(&outcome.notices));
    let committed = store.commit(outcome, engine.generation()).await;
    if let (Some(handoff), Some(handed)) = (handoff, handed) {
        let batch = committed.is_ok().then_some((outcome, &engine.rules));
        handoff.settle(handed, batch);
    }
    committed?;
    engine.committed();
    engine.noticed |= !outcome.notices.is_empty();
    Ok(())
}

/// Processes the journal until it is empty, `batch` rows at a time, then writes every
/// steady refresh; for tools and tests that run the pipeline without the server.
pub async fn drain(
    store: &dyn Store,
    engine: &mut Engine,
    batch: usize,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = step(store, engine, batch, now_ms()).await?;
        total += n;
        if n == 0 {
            let outcome = Arc::new(engine.flush(now_ms()));
            commit(store, engine, &outcome, None).await?;
            return Ok(total);
        }
    }
}

/// Runs the pipeline until stopped. A failed batch reloads the state from the store
/// and retries: nothing is lost, the cursor did not move.
pub async fn run(
    store: Arc<dyn Store>,
    config: Config,
    plugins: Option<Arc<dyn crate::plugin::Filter>>,
    signal: Arc<Signal>,
    mut inbox: Inbox,
) {
    let mut engine = None;
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    loop {
        let Some(current) = engine.as_mut() else {
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
        let mut failed = false;
        while let Ok(request) = inbox.0.try_recv() {
            let answer = command(store.as_ref(), current, &request).await;
            failed = matches!(answer, Err(CommandError::Unavailable));
            let _ = request.done.send(answer);
            if failed {
                break;
            }
        }
        if failed {
            // The engine may be ahead of the database: reload it.
            engine = None;
            continue;
        }
        let started = Instant::now();
        let processed = advance(store.as_ref(), current, MAX_BATCH, now_ms(), Some(&signal))
            .instrument(info_span!("pipeline.batch"))
            .await;
        if std::mem::take(&mut current.noticed) {
            signal.handoff.ready.notify_one();
        }
        let processed = match processed {
            Ok(n) => n,
            Err(StoreError::Conflict) => {
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
        if processed > 0 {
            debug!(events = processed, elapsed = ?started.elapsed(), "pipeline batch");
        }
        if processed >= BUSY_BATCH && !signal.stopping() {
            tokio::time::sleep(PACE).await;
            continue;
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = now_ms() - current.config().retention_ms;
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
                if let Err(e) = commit(store.as_ref(), current, &outcome, None).await {
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

async fn command(
    store: &dyn Store,
    engine: &mut Engine,
    request: &Request,
) -> Result<(), CommandError> {
    let now = now_ms();
    let team = request.team.as_deref();
    let applied = match request.command {
        Command::Ack => engine.ack(&request.incident, team, &request.who, now),
        Command::Close => engine.close(&request.incident, team, &request.who, now),
    };
    match applied {
        Ok(()) => {
            let outcome = Arc::new(engine.process(Vec::new(), now));
            match commit(store, engine, &outcome, None).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    error!(error = %e, incident = %request.incident, "incident command failed");
                    Err(CommandError::Unavailable)
                }
            }
        }
        Err(IncidentError::NotFound(_)) => {
            // Not open: it may be resolved (ack and close still apply) or closed.
            let close = matches!(request.command, Command::Close);
            match store
                .finished_incident(&request.incident, team, close, &request.who, now)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => match store.incident(&request.incident, team).await {
                    Ok(Some(detail))
                        if detail.incident.state == super::IncidentState::Closed && close =>
                    {
                        Err(IncidentError::Closed(request.incident.clone()).into())
                    }
                    // Acknowledging twice, or a finished incident: nothing to change.
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(IncidentError::NotFound(request.incident.clone()).into()),
                    Err(e) => {
                        error!(error = %e, "incident lookup failed");
                        Err(CommandError::Unavailable)
                    }
                },
                Err(e) => {
                    error!(error = %e, "incident command failed");
                    Err(CommandError::Unavailable)
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> Incoming {
        Incoming {
            seq,
            id: format!("e{seq}"),
            team: "ops".into(),
            fingerprint: "00".into(),
            source: "api".into(),
            received_at: 0,
            monitor: "m".into(),
            status: crate::Status::Healthy,
            labels: "{}".into(),
            reported_since: None,
            reported_count: None,
            event: "{}".into(),
            trace_id: None,
        }
    }

    fn seqs(fed: Option<Fed>) -> Option<Vec<i64>> {
        fed.map(|fed| fed.rows.iter().map(|r| r.seq).collect())
    }

    #[test]
    fn the_feed_gives_only_rows_right_after_the_cursor_and_stops_at_a_gap() {
        let feed = Feed::default();
        feed.push((4..=6).map(row).collect(), (0, 0));
        feed.push((9..=10).map(row).collect(), (0, 0));
        assert_eq!(seqs(feed.take(2, 100)), None, "row 3 is not in memory");
        assert_eq!(
            seqs(feed.take(4, 1)),
            Some(vec![5]),
            "older rows are dropped"
        );
        assert_eq!(
            seqs(feed.take(5, 100)),
            Some(vec![6]),
            "stops before the gap"
        );
        assert_eq!(
            seqs(feed.take(6, 100)),
            None,
            "7 and 8 are in the journal only"
        );
        assert_eq!(seqs(feed.take(8, 100)), Some(vec![9, 10]));
        assert_eq!(seqs(feed.take(10, 100)), None, "empty");
    }

    #[test]
    fn a_full_feed_takes_no_more_rows() {
        let feed = Feed::default();
        feed.push((1..=MAX_FED as i64).map(row).collect(), (0, 0));
        assert!(!feed.has_room(1));
        feed.push(vec![row(MAX_FED as i64 + 1)], (0, 0));
        let taken = feed.take(0, usize::MAX).expect("rows").rows;
        assert_eq!(
            taken.len(),
            MAX_FED,
            "the pipeline reads the rest from the journal"
        );
        assert!(feed.has_room(MAX_FED));
    }
}
