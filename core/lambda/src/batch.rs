//! An SQS batch as Lambda's event source mapping hands it over, and the answer it wants
//! with `ReportBatchItemFailures`: the messages to deliver again, never the whole batch
//! for one record.
//!
//! - A message that fails for now ([`Failure::Retry`]: the database is away, a lease is
//!   held) is reported; SQS delivers it again after its visibility timeout, and moves it
//!   to the dead-letter queue after the redrive policy's receive count.
//! - A message that can never succeed ([`Failure::Poison`]: not a Tocsin message) goes
//!   to the dead-letter queue at once, with the reason in its `tocsin-error` attribute,
//!   and is not reported (so the source deletes it). If that send fails it is reported,
//!   and the redrive policy moves it later.
//! - On a FIFO queue, once a message of a group is reported, every later message of the
//!   same group in the batch is reported too, processed or not: deleting a later one
//!   while an earlier one comes back would break the group's order.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use tracing::{error, warn};

use crate::nudge::Nudge;
use crate::queue::Queue;

/// Why a message was not handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It may succeed later: deliver it again.
    Retry(String),
    /// It never will: to the dead-letter queue with this reason.
    Poison(String),
}

/// Whether the batch came from a FIFO queue (its ARN ends in `.fifo`).
pub fn is_fifo(messages: &[SqsMessage]) -> bool {
    messages.iter().any(|m| {
        m.event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
    })
}

/// How long an invocation works when its deadline is not a time to come: `cargo lambda
/// watch` gives the timeout itself (600,000) rather than a unix time in milliseconds.
pub const FALLBACK_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

/// When an invocation must stop taking new work: before Lambda's deadline by a fifth of
/// the time left, at most 5 s (so that its answer and its last commit fit).
pub fn deadline(context: &lambda_runtime::Context) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = match context.deadline.checked_sub(now_ms) {
        Some(left) if left > 0 => left,
        _ => FALLBACK_BUDGET.as_millis() as u64,
    };
    let left = left - (left / 5).min(5_000);
    std::time::Instant::now() + std::time::Duration::from_millis(left)
}

/// A function fed by an SQS event source mapping (with `ReportBatchItemFailures`).
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// Handles one batch, stopping new work at `deadline`; the answer lists what must
    /// come back.
    async fn handle(
        &self,
        messages: &[SqsMessage],
        deadline: std::time::Instant,
    ) -> SqsBatchResponse;
}

/// Serves `consumer` under the Lambda runtime until the process ends.
pub async fn run_consumer(
    consumer: std::sync::Arc<dyn Consumer>,
) -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::SqsEvent;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let consumer = consumer.clone();
            async move {
                let deadline = deadline(&event.context);
                Ok::<SqsBatchResponse, lambda_runtime::Error>(
                    consumer.handle(&event.payload.records, deadline).await,
                )
            }
        },
    ))
    .await
}

/// Handles a batch of nudges: `work` runs once for all of them (they all say "look at
/// the store"), each nudge succeeds or fails with it, and what is not a nudge is poison.
pub async fn nudged<F>(
    messages: &[SqsMessage],
    dead_letters: Option<&Queue>,
    work: F,
) -> SqsBatchResponse
where
    F: Future<Output = Result<(), String>>,
{
    let parsed: Vec<Result<Nudge, String>> = messages
        .iter()
        .map(|m| Nudge::parse(m.body.as_deref()))
        .collect();
    let done = if parsed.iter().any(Result::is_ok) {
        work.await
    } else {
        Ok(())
    };
    let outcomes = parsed
        .into_iter()
        .map(|parsed| match parsed {
            Err(reason) => Err(Failure::Poison(reason)),
            Ok(_) => done.clone().map_err(Failure::Retry),
        })
        .collect();
    settle(messages, outcomes, dead_letters).await
}

/// Settles a batch from each message's outcome (in batch order): poison messages go to
/// `dead_letters`, and the answer lists what must come back.
pub async fn settle(
    messages: &[SqsMessage],
    outcomes: Vec<Result<(), Failure>>,
    dead_letters: Option<&Queue>,
) -> SqsBatchResponse {
    let mut failed = Vec::with_capacity(messages.len());
    for (message, outcome) in messages.iter().zip(outcomes) {
        let id = message.message_id.as_deref().unwrap_or("");
        failed.push(match outcome {
            Ok(()) => false,
            Err(Failure::Retry(reason)) => {
                warn!(message = id, reason, "message fails for now; it comes back");
                true
            }
            Err(Failure::Poison(reason)) => match dead_letters {
                Some(queue) => {
                    let body = message.body.as_deref().unwrap_or("");
                    match queue.dead_letter(body, &reason).await {
                        Ok(()) => {
                            warn!(message = id, reason, dead_letters = queue.url(), "poison message moved to the dead-letter queue");
                            false
                        }
                        Err(e) => {
                            error!(message = id, reason, error = %e, "poison message not moved; it comes back until the redrive policy moves it");
                            true
                        }
                    }
                }
                None => {
                    error!(message = id, reason, "poison message and no dead-letter queue configured; it comes back until the redrive policy moves it");
                    true
                }
            },
        });
    }
    response(messages, &failed)
}

/// The answer for these failures, with the FIFO rule applied.
pub fn response(messages: &[SqsMessage], failed: &[bool]) -> SqsBatchResponse {
    let fifo = is_fifo(messages);
    let mut broken_groups: Vec<&str> = Vec::new();
    let mut answer = SqsBatchResponse::default();
    for (message, &failed) in messages.iter().zip(failed) {
        let group = message
            .attributes
            .get("MessageGroupId")
            .map(String::as_str)
            .unwrap_or("");
        let report = failed || (fifo && broken_groups.contains(&group));
        if report {
            if fifo && !broken_groups.contains(&group) {
                broken_groups.push(group);
            }
            answer.add_failure(message.message_id.clone().unwrap_or_default());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: Option<&str>, fifo: bool) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(r#"{"kind":"journal"}"#.into());
        m.event_source_arn = Some(format!(
            "arn:aws:sqs:eu-west-1:123456789012:tocsin-pipeline{}",
            if fifo { ".fifo" } else { "" }
        ));
        if let Some(group) = group {
            m.attributes.insert("MessageGroupId".into(), group.into());
        }
        m
    }

    fn reported(answer: &SqsBatchResponse) -> Vec<String> {
        answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[test]
    fn a_standard_queue_reports_only_the_failed_messages() {
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| message(id, None, false))
            .collect();
        assert_eq!(reported(&response(&batch, &[false, true, false])), ["b"]);
        assert!(reported(&response(&batch, &[false, false, false])).is_empty());
    }

    #[test]
    fn a_fifo_queue_reports_every_later_message_of_a_failed_group_and_no_other() {
        let batch = vec![
            message("a1", Some("a"), true),
            message("b1", Some("b"), true),
            message("a2", Some("a"), true),
            message("b2", Some("b"), true),
            message("a3", Some("a"), true),
        ];
        // a2 failed: a3 comes back with it (order), b's messages do not.
        assert_eq!(
            reported(&response(&batch, &[false, false, true, false, false])),
            ["a2", "a3"]
        );
        // The first of b failed: all of b.
        assert_eq!(
            reported(&response(&batch, &[false, true, false, false, false])),
            ["b1", "b2"]
        );
    }

    #[tokio::test]
    async fn poison_without_a_dead_letter_queue_comes_back_and_retry_is_reported() {
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| message(id, None, false))
            .collect();
        let answer = settle(
            &batch,
            vec![
                Err(Failure::Poison("garbage".into())),
                Ok(()),
                Err(Failure::Retry("database away".into())),
            ],
            None,
        )
        .await;
        assert_eq!(reported(&answer), ["a", "c"]);
    }
}
