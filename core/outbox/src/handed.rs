//! One notice delivered as it comes, ahead of the rounds: a new incident's, handed over
//! by the pipeline in memory, or one given from outside.

use std::sync::Arc;

use tracing::{Instrument as _, info_span};

use tocsin_model::clock::now_ms;
use tocsin_model::notice::StoredRoute;
use tocsin_model::rows::{Handed, NoticeRow, Outcome};
use tocsin_store::StoreError;

use crate::run::Outbox;

impl Outbox {
    /// Delivers one notice given from outside (a queue message, say): its incident is
    /// read from the store, then it goes as a handed-over notice does.
    pub async fn deliver_notice(&self, notice: NoticeRow) -> Result<(), StoreError> {
        let routes = self.store.routes(Some(&notice.team)).await?;
        self.deliver_new(&Handed {
            notice,
            batch: Arc::new(Outcome::default()),
            service: None,
            routes: Arc::new(routes),
        })
        .await
    }

    /// Delivers a new incident's notice that the pipeline handed over: sends first, then
    /// records the deliveries as they ended (and deletes the notice) in one transaction.
    /// Sending before recording is safe because the notice itself is durable: a crash in
    /// between leaves it in the database, and the next start delivers it as possibly
    /// sent (PagerDuty folds a repeat by its dedup key; tickets are looked for first).
    ///
    /// The incident is rendered as the pipeline's batch committed it, with the service and
    /// routes that batch ran with: nothing is read back on the way to the page.
    pub(crate) async fn deliver_new(&self, handed: &Handed) -> Result<(), StoreError> {
        let notice = &handed.notice;
        // Nobody is told about the incidents of a team no route takes: no collector runs
        // and nothing is read for them.
        let stored: Vec<_> = handed.routes.iter().map(StoredRoute::route).collect();
        if !self.notifiers.routes_team(&notice.team, &stored) {
            return self
                .store
                .expand_notices(std::slice::from_ref(&notice.id), &[])
                .await
                .map(drop);
        }
        let now = now_ms();
        let started = std::time::Instant::now();
        let subject = match tocsin_store::incident_from(&handed.batch, &notice.incident_id) {
            Some(incident) => {
                let routes = handed
                    .routes
                    .iter()
                    .filter(|r| r.team == incident.incident.team)
                    .map(StoredRoute::route)
                    .collect();
                let known = (handed.service.as_deref().cloned(), routes);
                self.collect(notice, incident, Some(known), now).await?
            }
            None => self.prepare(notice, now).await?,
        };
        let read = started.elapsed();
        let mut deliveries = subject
            .as_ref()
            .map(|subject| self.deliveries_for(notice, subject, now))
            .unwrap_or_default();
        if let Some(subject) = &subject {
            let attempts = futures::future::join_all(deliveries.iter().map(|delivery| {
                let span = info_span!("delivery", id = %delivery.id, notifier = %delivery.notifier, action = delivery.action.as_str(), attempt = 1);
                tocsin_model::trace::follow(&span, subject.incident.incident.trace_id.as_deref(), None);
                self.deliver(delivery, subject, None, false).instrument(span)
            }))
            .await;
            tracing::debug!(?read, sent = ?started.elapsed(), "new incident notified");
            let done = now_ms();
            for (delivery, attempt) in deliveries.iter_mut().zip(attempts) {
                self.remember(delivery, &attempt).await?;
                let (state, due_at, error) = self.settlement(delivery, 1, &attempt, done);
                delivery.attempts = 1;
                delivery.state = state;
                delivery.due_at = due_at;
                delivery.last_error = error;
                delivery.updated_at = done;
            }
        }
        self.store
            .expand_notices(std::slice::from_ref(&notice.id), &deliveries)
            .await?;
        Ok(())
    }
}
