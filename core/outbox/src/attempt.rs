//! One attempt at one delivery: counted before it is made, sent to the channel or
//! queue the incident's team may name, a ticket looked for before one is opened, and
//! what it left recorded.

use std::time::Duration;

use tracing::{Instrument as _, info, info_span, warn};

use tocsin_model::clock::now_ms;
use tocsin_model::notice::{Action, DeliveryState};
use tocsin_notify::Notice;
use tocsin_notify::config::{Notifier, QueueKind};
use tocsin_store::{Delivery, StoreError};

use crate::backoff::backoff;
use crate::run::Outbox;
use crate::send::{Attempt, Target};
use crate::subject::Subject;

/// How long a claimed delivery is leased to its attempt (several requests).
pub(crate) const LEASE: Duration = Duration::from_secs(60);

impl Outbox {
    /// One attempt at one delivery, recorded before (unless `claimed` already) and after.
    /// A claimed delivery is a new incident's found in the database: when this outbox
    /// takes new incidents in memory, one found there may have been sent before a crash.
    pub(crate) async fn attempt(
        &self,
        delivery: Delivery,
        claimed: bool,
        now: i64,
    ) -> Result<(), StoreError> {
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
        let began = std::time::Instant::now();
        // Read before the span starts, so that it can join the incident's trace.
        let subject = self.read_subject(&delivery.incident_id).await?;
        if let Some(subject) = &subject {
            tocsin_model::trace::follow(&span, subject.incident.incident.trace_id.as_deref(), None);
        }
        let outcome = async {
            let Some(subject) = subject else {
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
        metrics::histogram!("tocsin_outbox_attempt_duration_seconds", "notifier" => delivery.notifier.clone(), "kind" => delivery.kind.clone())
            .record(began.elapsed().as_secs_f64());
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
    pub(crate) fn settlement(
        &self,
        delivery: &Delivery,
        attempts: u32,
        outcome: &Attempt,
        now: i64,
    ) -> (DeliveryState, i64, String) {
        let settled = self.settle(delivery, attempts, outcome, now);
        let name = match settled.0 {
            DeliveryState::Sent => "sent",
            DeliveryState::Pending => "retry",
            DeliveryState::Dead => "dead",
        };
        metrics::counter!("tocsin_outbox_deliveries_total", "notifier" => delivery.notifier.clone(), "kind" => delivery.kind.clone(), "outcome" => name)
            .increment(1);
        if settled.0 == DeliveryState::Sent {
            metrics::histogram!("tocsin_outbox_delivery_latency_seconds", "notifier" => delivery.notifier.clone(), "kind" => delivery.kind.clone())
                .record((now - delivery.created_at).max(0) as f64 / 1000.0);
        }
        settled
    }

    fn settle(
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
                (
                    DeliveryState::Pending,
                    now + wait.as_millis() as i64,
                    error.clone(),
                )
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
    pub(crate) async fn deliver(
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
    pub(crate) async fn remember(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
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
