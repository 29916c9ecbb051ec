//! The handoff between the pipeline thread and the outbox task of one process: new
//! incidents' notices go over in memory as soon as they are committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tocsin_model::notice::Action;
use tocsin_model::rows::{Handed, NoticeRow, Outcome, Rules};
use tokio::sync::Notify;

/// Most new incidents handed to the outbox in memory and not yet delivered; beyond it
/// their notices wait in the database like any other.
const MAX_HANDOFF: usize = 1_000;
/// A reservation no outbox settled in this long is forgotten (the outbox's rounds then
/// deliver the notice from the database).
const RESERVATION: Duration = Duration::from_secs(300);

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

#[derive(Debug, Default)]
struct HandoffState {
    /// Committed and not yet taken.
    fresh: Vec<Handed>,
    /// Incidents whose first notice is handed over, since when.
    reserved: HashMap<String, Instant>,
}

#[async_trait::async_trait]
impl tocsin_outbox::FastPath for Handoff {
    /// An outbox takes handed-over notices from now on.
    fn attach(&self) {
        self.attached.store(true, Ordering::SeqCst);
    }

    /// The notices handed over since the last call.
    fn take(&self) -> Vec<Handed> {
        std::mem::take(&mut self.lock().fresh)
    }

    /// incident's notices in the database wait for it.
    fn is_reserved(&self, incident: &str) -> bool {
        self.lock()
            .reserved
            .get(incident)
            .is_some_and(|since| since.elapsed() < RESERVATION)
    }

    /// The handed-over notice of `incident` is delivered (or left to the database).
    fn release(&self, incident: &str) {
        self.lock().reserved.remove(incident);
    }

    async fn noticed(&self) {
        self.ready.notified().await;
    }
}

impl tocsin_pipeline::worker::Handoff for Handoff {
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

    /// `rules` it ran with, or (no batch: the commit failed) drops their reservations.
    fn settle(&self, notices: Vec<NoticeRow>, batch: Option<(&Arc<Outcome>, &Rules)>) {
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

    fn noticed(&self) {
        self.ready.notify_one();
    }
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HandoffState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
