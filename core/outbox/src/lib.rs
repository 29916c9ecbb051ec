//! The outbox ([docs/alerting.md](../../docs/alerting.md#delivery-rules)): every notification is durable before it is sent,
//! and nothing accepted is lost.
//!
//! The pipeline leaves a notice in the same transaction as the incident change that
//! calls for it. The outbox turns each notice into one delivery per notifier its route
//! names (in one transaction that also deletes the notice), then sends them:
//!
//! - deliveries of one incident to one notifier go in order (a Slack update needs the
//!   message its post created); others go in parallel;
//! - an attempt is counted before it is made, so after a crash the next attempt knows an
//!   earlier one may have reached the service, and looks for the ticket it may have
//!   opened instead of opening a second; PagerDuty folds a repeated trigger into its
//!   page through the dedup key (the incident id), so an incident pages at most once;
//! - a failure that may pass (network, 5xx, 429) is retried with exponential backoff and
//!   jitter, waiting at least the service's `Retry-After`; a refusal (other 4xx) or an
//!   exhausted budget makes the delivery dead, listed by `GET /v1/notifications?state=dead`
//!   and queued again by `POST /v1/notifications/{id}/retry`.
//!
//! Layout: this root expands notices and schedules deliveries over the store's
//! [`OutboxStore`], runs the collectors (`tocsin_collect`) and builds bodies
//! (`tocsin_notify`); `send` makes the HTTP calls and classifies their answers. The
//! pipeline is not below it: a runner may hand it new incidents' notices in memory
//! through [`FastPath`], and [`Outbox::deliver_notice`] delivers one notice given from outside.

mod send;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, Semaphore};
use tracing::{Instrument as _, info, info_span, warn};

use tocsin_notify::config::{Notifier, Notifiers, QueueKind, Retry, Route};
pub use send::{Attempt, Sender, Target};

use tocsin_model::catalogue::Service;
use tocsin_collect::Collectors;
use tocsin_model::event::Priority;
use tocsin_model::notice::{Action, DeliveryState};
use tocsin_notify::Notice;
use tocsin_model::clock::now_ms;
use tocsin_model::rows::{Handed, NoticeRow, Outcome};
use tocsin_model::plugin::Section;
use tocsin_model::views::IncidentDetail;
use tocsin_store::{Delivery, OutboxStore, StoreError};
use tocsin_model::notice::StoredRoute;

/// Notices expanded per round.
const NOTICES_PER_ROUND: i64 = 500;
/// Deliveries attempted per round.
const DELIVERIES_PER_ROUND: i64 = 200;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is leased to its attempt (several requests).
const LEASE: Duration = Duration::from_secs(60);
/// Longest sleep between rounds when nothing wakes the outbox.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The wait before attempt `attempts + 1`: `first × 2^(attempts-1)`, at most `max`,
/// times `jitter` (0.8-1.2), and never less than the service's `Retry-After`.
pub fn backoff(retry: &Retry, attempts: u32, after: Option<Duration>, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = retry
        .first
        .saturating_mul(1u32 << exponent)
        .min(retry.max)
        .mul_f64(jitter.clamp(0.8, 1.2));
    base.max(after.unwrap_or_default())
}

/// New incidents' notices a runner hands over in memory as the pipeline commits them
/// (the local server's handoff): the outbox's fast path to a page.
#[async_trait::async_trait]
pub trait FastPath: Send + Sync {
    /// An outbox takes handed-over notices from now on (until then none are handed).
    fn attach(&self);
    /// The notices handed over since the last call.
    fn take(&self) -> Vec<Handed>;
    /// Whether a handed-over notice of `incident` is still being delivered: the
    /// incident's notices in the database wait for it.
    fn is_reserved(&self, incident: &str) -> bool;
    /// The handed-over notice of `incident` is delivered (or left to the database).
    fn release(&self, incident: &str);
    /// Resolves once the pipeline has committed notices.
    async fn noticed(&self);
}

async fn noticed(fast: Option<&dyn FastPath>) {
    match fast {
        Some(fast) => fast.noticed().await,
        None => std::future::pending().await,
    }
}

/// Delivers notifications from one store.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn OutboxStore>,
    notifiers: Arc<Notifiers>,
    sender: Sender,
    collectors: Option<Collectors>,
    /// Where new incidents come in memory ([`Outbox::run`]).
    fast: Option<Arc<dyn FastPath>>,
}

/// What a notification is rendered from: the incident as it is now, and its service.
struct Subject {
    incident: IncidentDetail,
    service: Option<Service>,
    /// The collected context, as notifiers show it.
    sections: Vec<Section>,
    target: Target,
    /// The team's routes set through the API.
    routes: Vec<Route>,
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
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            if let Some(fast) = &fast {
                self.start_handed_over(fast, &settled, &slots);
            }
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
                () = noticed(fast.as_deref()) => {}
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

    /// Delivers one notice given from outside (a queue message, say): its incident is
    /// read from the store, then it goes as a handed-over notice does.
    pub async fn deliver_notice(&self, notice: NoticeRow) -> Result<(), StoreError> {
        self.deliver_new(&Handed {
            notice,
            batch: Arc::new(Outcome::default()),
            service: None,
            routes: Arc::default(),
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
    async fn deliver_new(&self, handed: &Handed) -> Result<(), StoreError> {
        let notice = &handed.notice;
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
            .await
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

    /// Turns waiting notices into deliveries, leaving those of incidents whose first
    /// notice is handed over and in flight (they go after it).
    /// Returns how many notices it expanded, and the deliveries of new incidents, which
    /// are written already claimed for their first attempt: nothing can be ahead of
    /// them, and it saves a write on the way to a page.
    async fn expand(&self, now: i64) -> Result<(usize, Vec<Delivery>), StoreError> {
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
        self.store.expand_notices(&ids, &deliveries).await?;
        let claimed = deliveries
            .into_iter()
            .filter(|d| d.action == Action::Open)
            .collect();
        Ok((notices.len(), claimed))
    }

    /// Reads the incident a notice is about, first running its collectors (unless it
    /// resolved); `None` when the incident is gone.
    async fn prepare(&self, notice: &NoticeRow, now: i64) -> Result<Option<Subject>, StoreError> {
        if notice.action != Action::Resolve && self.collectors.is_some() {
            return match self.store.incident(&notice.incident_id, None).await? {
                Some(incident) => self.collect(notice, incident, None, now).await,
                None => Ok(None),
            };
        }
        self.read_subject(&notice.incident_id).await
    }

    /// Runs the collectors (if any) on `incident`, then makes it the subject; `known` is
    /// its service and routes when the pipeline handed them over.
    async fn collect(
        &self,
        notice: &NoticeRow,
        incident: IncidentDetail,
        known: Option<(Option<Service>, Vec<Route>)>,
        now: i64,
    ) -> Result<Option<Subject>, StoreError> {
        if let Some(collectors) = &self.collectors {
            let sections = collectors.collect(&incident, now).await;
            if !sections.is_empty() {
                self.store
                    .put_context(&notice.incident_id, &sections)
                    .await?;
                return self.read_subject(&notice.incident_id).await;
            }
        }
        Ok(Some(match known {
            Some((service, routes)) => Subject::new(incident, service, routes),
            None => self.subject(incident).await?,
        }))
    }

    /// The incident as it is now, with its service; `None` when it is gone.
    async fn read_subject(&self, incident_id: &str) -> Result<Option<Subject>, StoreError> {
        match self.store.incident(incident_id, None).await? {
            Some(incident) => Ok(Some(self.subject(incident).await?)),
            None => Ok(None),
        }
    }

    async fn subject(&self, incident: IncidentDetail) -> Result<Subject, StoreError> {
        let service = async {
            match incident.incident.service.as_deref() {
                // Another team's entry of that name does not route this team's incident.
                Some(name) => Ok(self.store.service(name).await?.filter(|service| {
                    service.spec.team.as_deref() == Some(incident.incident.team.as_str())
                })),
                None => Ok(None),
            }
        };
        let (service, routes) =
            tokio::try_join!(service, self.store.routes(Some(&incident.incident.team)))?;
        let routes = routes.iter().map(StoredRoute::route).collect();
        Ok(Subject::new(incident, service, routes))
    }
}

impl Subject {
    fn new(incident: IncidentDetail, service: Option<Service>, routes: Vec<Route>) -> Self {
        let alerting = service
            .as_ref()
            .and_then(|s| s.spec.alerting.clone())
            .unwrap_or_default();
        // An alert's own channel and queue come rendered against its event (the
        // store's view); the service's render against the event that opened the
        // incident. Each is rendered once: a label value holding `${…}` stays text.
        let opening = incident.alert_list.first().and_then(|a| a.event.as_ref());
        let render = |text: String| match opening {
            Some(event) => tocsin_model::event::render(&text, event),
            None => text,
        };
        let target = Target {
            channel: incident
                .alert_list
                .iter()
                .find_map(|a| a.channel.clone())
                .or_else(|| alerting.channel.map(render)),
            queue: incident
                .alert_list
                .iter()
                .find_map(|a| a.ticket_queue.clone())
                .or_else(|| alerting.ticket_queue.map(render)),
        };
        let sections = incident
            .context
            .iter()
            .map(|c| Section {
                title: c.title.clone(),
                markdown: if c.error.is_empty() {
                    c.markdown.clone()
                } else {
                    format!("_collector failed: {}_", c.error)
                },
            })
            .collect();
        Subject {
            incident,
            service,
            sections,
            target,
            routes,
        }
    }
}

impl Outbox {
    /// The deliveries one notice calls for: the page (a new or newly urgent incident at
    /// `high`, and the resolution of a page), the ticket, the chat, the webhooks.
    fn deliveries_for(&self, notice: &NoticeRow, subject: &Subject, now: i64) -> Vec<Delivery> {
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

    /// One attempt at one delivery, recorded before (unless `claimed` already) and after.
    /// A claimed delivery is a new incident's found in the database: when this outbox
    /// takes new incidents in memory, one found there may have been sent before a crash.
    async fn attempt(&self, delivery: Delivery, claimed: bool, now: i64) -> Result<(), StoreError> {
        let lease = now + LEASE.as_millis() as i64;
        if !claimed && !self.store.claim_delivery(&delivery.id, lease, now).await? {
            return Ok(());
        }
        let counted = if claimed {
            delivery.attempts
        } else {
            delivery.attempts + 1
        };
        let attempts = u32::try_from(counted).unwrap_or(u32::MAX);
        let retried = attempts > 1 || (claimed && self.fast.is_some());
        let span = info_span!("delivery", id = %delivery.id, incident = %delivery.incident_id, notifier = %delivery.notifier, action = delivery.action.as_str(), attempt = attempts);
        let outcome = async {
            let Some(subject) = self.read_subject(&delivery.incident_id).await? else {
                return Ok(Attempt::Dead("the incident no longer exists".into()));
            };
            let reference = self
                .store
                .delivery_ref(&delivery.incident_id, &delivery.notifier)
                .await?;
            Ok::<_, StoreError>(
                self.deliver(&delivery, &subject, reference.as_deref(), retried)
                    .await,
            )
        }
        .instrument(span.clone())
        .await?;
        let _entered = span.enter();
        let done = now_ms();
        self.remember(&delivery, &outcome).await?;
        let (state, due_at, error) = self.settlement(&delivery, attempts, &outcome, done);
        self.store
            .settle_delivery(&delivery.id, state, due_at, &error, done)
            .await
    }

    /// What attempt number `attempts` leaves a delivery as, at `now`: its state, when it
    /// is next due, and the error.
    fn settlement(
        &self,
        delivery: &Delivery,
        attempts: u32,
        outcome: &Attempt,
        now: i64,
    ) -> (DeliveryState, i64, String) {
        match outcome {
            Attempt::Sent(_) => {
                info!(
                    latency_ms = now - delivery.created_at,
                    "notification delivered"
                );
                (DeliveryState::Sent, now, String::new())
            }
            Attempt::Retry { error, after } if attempts < self.notifiers.retry.attempts => {
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                let wait = backoff(&self.notifiers.retry, attempts, *after, jitter);
                warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "notification failed; retrying");
                (DeliveryState::Pending, now + wait.as_millis() as i64, error.clone())
            }
            Attempt::Retry { error, .. } | Attempt::Dead(error) => {
                warn!(error = %error, "notification dead-lettered");
                (DeliveryState::Dead, now, error.clone())
            }
        }
    }

    /// Renders the delivery's notice from `subject` and sends it, to the channel or
    /// queue the incident asks for if its team may name it there (a refused one is
    /// dead, with the reason). A ticket an earlier attempt may have opened is looked
    /// for first (see [`TicketState`]).
    async fn deliver(
        &self,
        delivery: &Delivery,
        subject: &Subject,
        reference: Option<&str>,
        retried: bool,
    ) -> Attempt {
        let Some(notifier) = self.notifiers.notifiers.get(&delivery.notifier) else {
            return Attempt::Dead(format!(
                "notifier \"{}\" is no longer configured",
                delivery.notifier
            ));
        };
        let team = &subject.incident.incident.team;
        let wanted = match notifier.queue_kind() {
            Some(QueueKind::Channel) => subject.target.channel.as_deref(),
            Some(_) => subject.target.queue.as_deref(),
            None => None,
        };
        let queue = match self.notifiers.queue_for(&delivery.notifier, team, wanted) {
            Ok(queue) => queue,
            Err(e) => return Attempt::Dead(e),
        };
        let target = match notifier.queue_kind() {
            Some(QueueKind::Channel) => Target {
                channel: queue,
                queue: None,
            },
            _ => Target {
                channel: None,
                queue,
            },
        };
        let mut reference = reference.map(str::to_owned);
        if let Some(settle) = notifier.settle() {
            match self
                .ticket(
                    delivery,
                    notifier,
                    settle,
                    &target,
                    reference.as_deref(),
                    retried,
                )
                .await
            {
                Ok(found) => reference = found,
                Err(attempt) => return attempt,
            }
        }
        let notice = Notice {
            action: delivery.action,
            incident: &subject.incident,
            link: format!(
                "{}/v1/incidents/{}",
                self.notifiers.public_url, delivery.incident_id
            ),
            trace_id: subject.incident.incident.trace_id.clone(),
            sections: &subject.sections,
            customer_facing: subject.service.as_ref().map(|s| s.spec.customer_facing),
        };
        self.sender
            .deliver(notifier, &notice, reference.as_deref(), &target)
            .await
    }

    /// The ticket a Jira or GitHub delivery goes on: the one it knows, one an earlier
    /// attempt opened (looked for by label), or none, in which case the attempt opens
    /// one, and that is recorded first. When an earlier attempt may have opened one
    /// that search does not show yet, the delivery waits until the notifier's `settle`
    /// has passed since then rather than open a second.
    async fn ticket(
        &self,
        delivery: &Delivery,
        notifier: &Notifier,
        settle: Duration,
        target: &Target,
        reference: Option<&str>,
        retried: bool,
    ) -> Result<Option<String>, Attempt> {
        let state = TicketState::of(reference);
        let since = match state {
            TicketState::Known(key) => return Ok(Some(key.to_owned())),
            TicketState::Creating(since) => Some(since),
            // From before creations were recorded: a retry may follow one.
            TicketState::None if retried => None,
            TicketState::None => return self.creating(delivery).await.map(|()| None),
        };
        let found = self
            .sender
            .find_ticket(notifier, &delivery.incident_id, target)
            .await?;
        if let Some(key) = found {
            self.store
                .set_delivery_ref(&delivery.incident_id, &delivery.notifier, &key)
                .await
                .map_err(unrecorded)?;
            return Ok(Some(key));
        }
        if let Some(since) = since {
            let waited = Duration::from_millis(u64::try_from(now_ms() - since).unwrap_or(0));
            if waited < settle {
                let left = settle - waited;
                return Err(Attempt::Retry {
                    error: format!(
                        "an earlier attempt may have opened the ticket {} ms ago, but the notifier's search does not show it yet: no second ticket is opened before {} ms have passed",
                        waited.as_millis(),
                        settle.as_millis()
                    ),
                    after: Some(left),
                });
            }
        }
        self.creating(delivery).await.map(|()| None)
    }

    /// Records that the delivery's attempt is about to open a ticket (not needed to
    /// resolve what was never opened).
    async fn creating(&self, delivery: &Delivery) -> Result<(), Attempt> {
        if delivery.action == Action::Resolve {
            return Ok(());
        }
        self.store
            .set_delivery_ref(
                &delivery.incident_id,
                &delivery.notifier,
                &TicketState::creating(now_ms()),
            )
            .await
            .map_err(unrecorded)
    }

    /// Keeps what the notifier now knows the incident by.
    async fn remember(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError> {
        if let Attempt::Sent(Some(reference)) = attempt {
            self.store
                .set_delivery_ref(&delivery.incident_id, &delivery.notifier, reference)
                .await?;
        }
        Ok(())
    }
}

/// A store failure in the middle of an attempt: retried like a network error.
fn unrecorded(e: StoreError) -> Attempt {
    Attempt::Retry {
        error: format!("cannot record the attempt: {e}"),
        after: None,
    }
}

/// What a ticket notifier's stored reference says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketState<'a> {
    /// Nothing: no attempt set out to open a ticket.
    None,
    /// An attempt set out to open one at this time (ms) and did not learn its key: it
    /// may exist.
    Creating(i64),
    /// The ticket's key or number.
    Known(&'a str),
}

impl<'a> TicketState<'a> {
    const CREATING: &'static str = "creating@";

    fn of(reference: Option<&'a str>) -> Self {
        match reference {
            None => Self::None,
            Some(r) => match r.strip_prefix(Self::CREATING).map(str::parse) {
                Some(Ok(at)) => Self::Creating(at),
                _ => Self::Known(r),
            },
        }
    }

    fn creating(at: i64) -> String {
        format!("{}{at}", Self::CREATING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let retry = Retry {
            attempts: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(backoff(&retry, 1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&retry, 2, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&retry, 4, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&retry, 20, None, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&retry, 1, None, 1.2), Duration::from_millis(1200));
        assert_eq!(
            backoff(&retry, 1, Some(Duration::from_secs(30)), 1.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(&retry, 1, None, 7.0),
            Duration::from_millis(1200),
            "jitter is clamped"
        );
    }
}
