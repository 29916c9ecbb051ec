//! The outbox and its loop: rounds of expanding notices and attempting the deliveries
//! due, woken by the pipeline, by the fast path and by the next delivery falling due.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, Semaphore};
use tracing::{Instrument as _, info, info_span, warn};

use tocsin_collect::Collectors;
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_store::{OutboxStore, StoreError};

use crate::fast::FastPath;
use crate::send::Sender;

/// Deliveries attempted per round.
const DELIVERIES_PER_ROUND: i64 = 200;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between rounds when nothing wakes the outbox.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A task aborted when its handle is dropped (when [`Outbox::run`] returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Delivers notifications from one store.
#[derive(Clone)]
pub struct Outbox {
    pub(crate) store: Arc<dyn OutboxStore>,
    pub(crate) notifiers: Arc<Notifiers>,
    pub(crate) sender: Sender,
    pub(crate) collectors: Option<Collectors>,
    /// Where new incidents come in memory ([`Outbox::run`]).
    pub(crate) fast: Option<Arc<dyn FastPath>>,
}

impl Outbox {
    /// An outbox for `store`, sending to `notifiers`.
    pub fn new(store: Arc<dyn OutboxStore>, notifiers: Arc<Notifiers>) -> Self {
        Self {
            store,
            notifiers,
            sender: Sender::new(REQUEST_TIMEOUT),
            collectors: None,
            fast: None,
        }
    }

    /// Runs these collectors when an incident opens or changes, before it is notified.
    pub fn with_collectors(mut self, collectors: Collectors) -> Self {
        self.collectors = Some(collectors);
        self
    }

    /// Runs until `stop` resolves. New incidents' notices come from the pipeline in
    /// memory and go out at once; everything else (updates, resolutions, retries, what a
    /// restart finds) goes in rounds of expanding and delivering, woken by the pipeline
    /// and by the next delivery falling due.
    pub async fn run(mut self, fast: Option<Arc<dyn FastPath>>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        // This process is the only sender (one server per database; the Lambda functions
        // deliver from SQS instead): whatever is pending was being attempted, or waited
        // for a retry, when the last one stopped. Attempt it now.
        match self.store.release_deliveries(now_ms()).await {
            Ok(0) => {}
            Ok(n) => info!(
                deliveries = n,
                "pending notifications from before the restart are due now"
            ),
            Err(e) => warn!(error = %e, "cannot release pending notifications; they go when due"),
        }
        if let Some(fast) = &fast
            && !self.notifiers.notifiers.is_empty()
        {
            fast.attach();
        }
        self.fast = fast.clone();
        let settled = Arc::new(Notify::new());
        // The pipeline committed notices: the fast path has taken the new incidents'.
        let poked = Arc::new(Notify::new());
        // New incidents go out as the pipeline hands them over, never behind a round: a
        // round may take seconds when many incidents changed at once.
        let _fast = fast.clone().map(|fast| {
            let (outbox, settled, poked) = (self.clone(), settled.clone(), poked.clone());
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    outbox.start_handed_over(&fast, &settled, &slots);
                    poked.notify_one();
                    fast.noticed().await;
                }
            }))
        });
        loop {
            let worked = match self
                .round(now_ms())
                .instrument(info_span!("outbox.round"))
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "outbox round failed; retrying");
                    0
                }
            };
            if worked > 0 {
                continue;
            }
            let wait = match self.store.next_delivery_due().await {
                Ok(Some(due)) => {
                    Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(IDLE_POLL)
                }
                _ => IDLE_POLL,
            };
            tokio::select! {
                () = &mut stop => return,
                () = poked.notified() => {}
                () = settled.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts delivering the new incidents the pipeline handed over, each in a task of
    /// its own (at most [`IN_FLIGHT`] at once); `settled` is woken as each finishes, so
    /// the notices waiting behind it go next.
    fn start_handed_over(
        &self,
        fast: &Arc<dyn FastPath>,
        settled: &Arc<Notify>,
        slots: &Arc<Semaphore>,
    ) {
        for notice in fast.take() {
            let (outbox, fast) = (self.clone(), fast.clone());
            let (settled, slots) = (settled.clone(), slots.clone());
            let span = info_span!("outbox.new", incident = %notice.notice.incident_id);
            tokio::spawn(
                async move {
                    let slot = slots.acquire_owned().await;
                    if let Err(e) = outbox.deliver_new(&notice).await {
                        warn!(error = %e, "new incident's notifications not recorded; the outbox takes them from the database");
                    }
                    drop(slot);
                    fast.release(&notice.notice.incident_id);
                    settled.notify_one();
                }
                .instrument(span),
            );
        }
    }

    /// One round: expands waiting notices, then attempts the deliveries due by `now`.
    /// Returns how many notices and deliveries it handled.
    pub async fn round(&self, now: i64) -> Result<usize, StoreError> {
        let (expanded, claimed) = self.expand(now).await?;
        let due = self.store.due_deliveries(now, DELIVERIES_PER_ROUND).await?;
        let delivered = claimed.len() + due.len();
        let attempts = claimed
            .into_iter()
            .map(|delivery| (delivery, true))
            .chain(due.into_iter().map(|delivery| (delivery, false)));
        futures::stream::iter(attempts)
            .for_each_concurrent(IN_FLIGHT, |(delivery, claimed)| async move {
                if let Err(e) = self.attempt(delivery, claimed, now).await {
                    warn!(error = %e, "delivery attempt not recorded; it will be tried again");
                }
            })
            .await;
        Ok(expanded + delivered)
    }
}
