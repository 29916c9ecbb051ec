//! Notices turned into deliveries: one per notifier the incident's route names, in one
//! transaction that also deletes the notices.

use tocsin_model::event::Priority;
use tocsin_model::notice::{Action, DeliveryState, Route, StoredRoute};
use tocsin_model::rows::NoticeRow;
use tocsin_store::{Delivery, StoreError};

use crate::attempt::LEASE;
use crate::run::Outbox;
use crate::subject::Subject;

/// Notices expanded per round.
const NOTICES_PER_ROUND: i64 = 500;

impl Outbox {
    /// Turns waiting notices into deliveries, leaving those of incidents whose first
    /// notice is handed over and in flight (they go after it).
    /// Returns how many notices it expanded, and the deliveries of new incidents, which
    /// are written already claimed for their first attempt: nothing can be ahead of
    /// them, and it saves a write on the way to a page.
    pub(crate) async fn expand(&self, now: i64) -> Result<(usize, Vec<Delivery>), StoreError> {
        let mut notices = self.store.notices(NOTICES_PER_ROUND).await?;
        if let Some(fast) = &self.fast {
            notices.retain(|n| !fast.is_reserved(&n.incident_id));
        }
        if notices.is_empty() {
            return Ok((0, Vec::new()));
        }
        if self.notifiers.notifiers.is_empty() {
            // Nobody to tell: the notices are cleared without reading their incidents
            // (a busy pipeline leaves one per incident it touches in each batch).
            let ids: Vec<String> = notices.iter().map(|n| n.id.clone()).collect();
            self.store.expand_notices(&ids, &[]).await?;
            return Ok((notices.len(), Vec::new()));
        }
        // A team no route takes has nobody to tell: its notices are cleared without
        // reading their incidents or running collectors, however large the incidents.
        let stored: Vec<Route> = self
            .store
            .routes(None)
            .await?
            .iter()
            .map(StoredRoute::route)
            .collect();
        let (notices, unrouted): (Vec<NoticeRow>, Vec<NoticeRow>) = notices
            .into_iter()
            .partition(|n| self.notifiers.routes_team(&n.team, &stored));
        if !unrouted.is_empty() {
            let ids: Vec<String> = unrouted.iter().map(|n| n.id.clone()).collect();
            self.store.expand_notices(&ids, &[]).await?;
            if notices.is_empty() {
                return Ok((unrouted.len(), Vec::new()));
            }
        }
        // Collectors may take seconds: the notices of different incidents go together.
        let mut deliveries = Vec::new();
        for chunk in notices.chunks(8) {
            let prepared =
                futures::future::join_all(chunk.iter().map(|notice| self.prepare(notice, now)))
                    .await;
            for (notice, subject) in chunk.iter().zip(prepared) {
                let Some(subject) = subject? else { continue };
                // Ids give the order deliveries of one incident go in: the notices'
                // order, whichever expansion finished first.
                for mut delivery in self.deliveries_for(notice, &subject, now) {
                    delivery.id = uuid::Uuid::now_v7().to_string();
                    if delivery.action == Action::Open {
                        delivery.attempts = 1;
                        delivery.due_at = now + LEASE.as_millis() as i64;
                    }
                    deliveries.push(delivery);
                }
            }
        }
        let ids: Vec<String> = notices.iter().map(|n| n.id.clone()).collect();
        // Only the deliveries this expansion stored are its to attempt: another process
        // that expanded the same notice first attempts its own (one page, not two).
        let stored: std::collections::HashSet<String> = self
            .store
            .expand_notices(&ids, &deliveries)
            .await?
            .into_iter()
            .collect();
        let claimed = deliveries
            .into_iter()
            .filter(|d| d.action == Action::Open && stored.contains(&d.id))
            .collect();
        Ok((notices.len() + unrouted.len(), claimed))
    }

    /// The deliveries one notice calls for: the page (a new or newly urgent incident at
    /// `high`, and the resolution of a page), the ticket, the chat, the webhooks.
    pub(crate) fn deliveries_for(
        &self,
        notice: &NoticeRow,
        subject: &Subject,
        now: i64,
    ) -> Vec<Delivery> {
        let summary = &subject.incident.incident;
        let Some(route) =
            self.notifiers
                .route(&summary.team, summary.service.as_deref(), &subject.routes)
        else {
            return Vec::new();
        };
        let urgent = summary.priority == Priority::High;
        let mut names: Vec<&String> = Vec::new();
        if let Some(page) = &route.page
            && (urgent || notice.action == Action::Resolve)
        {
            names.push(page);
        }
        names.extend(route.ticket.iter());
        names.extend(route.chat.iter());
        names.extend(route.webhooks.iter());
        names
            .into_iter()
            .filter_map(|name| {
                let notifier = self.notifiers.notifiers.get(name)?;
                Some(Delivery {
                    id: uuid::Uuid::now_v7().to_string(),
                    notice_id: notice.id.clone(),
                    incident_id: notice.incident_id.clone(),
                    team: notice.team.clone(),
                    notifier: name.clone(),
                    kind: notifier.kind().to_owned(),
                    action: notice.action,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    due_at: now,
                    created_at: now,
                    updated_at: now,
                    last_error: String::new(),
                })
            })
            .collect()
    }
}
