//! One SQS queue, as the functions use it: send a nudge (maybe delayed), or move a
//! message that can never succeed to a dead-letter queue with the reason.

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::nudge::Nudge;

/// The message attribute a dead letter's reason travels in.
pub const ERROR_ATTRIBUTE: &str = "tocsin-error";

/// A queue and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// A send failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot send to the queue {url}: {message}")]
pub struct QueueError {
    url: String,
    message: String,
}

impl Queue {
    /// The SQS client for the function's region and credentials (the environment:
    /// `AWS_REGION`, the role's credentials; `AWS_ENDPOINT_URL` for a local emulator).
    pub async fn client() -> aws_sdk_sqs::Client {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        aws_sdk_sqs::Client::new(&config)
    }

    /// The queue at `url`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a nudge, visible after `delay` (at most 15 minutes, SQS's limit).
    pub async fn nudge(&self, nudge: Nudge, delay: Duration) -> Result<(), QueueError> {
        let seconds = delay.as_secs().min(900) as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(nudge.body())
            .set_delay_seconds((seconds > 0).then_some(seconds))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Sends `body` with the reason it failed, for an operator to read (and redrive once
    /// the cause is fixed).
    pub async fn dead_letter(&self, body: &str, error: &str) -> Result<(), QueueError> {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(error)
            .build()
            .map_err(|e| self.error(e))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(if body.is_empty() { "(empty)" } else { body })
            .message_attributes(ERROR_ATTRIBUTE, reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: impl std::error::Error) -> QueueError {
        // The SDK's Display is terse; its source chain says what went wrong.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        QueueError {
            url: self.url.clone(),
            message,
        }
    }
}
