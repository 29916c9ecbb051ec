//! What every function reads from its environment (set by `infra/template.yaml`), with
//! the same names and defaults as `tocsin serve`'s options where they mean the same.

use std::sync::Arc;

use tocsin_notify::config::Notifiers;
use tocsin_pipeline::args::PipelineArgs;
use tocsin_store::{Migrations, Store, StoreError, StoreOptions};

use crate::queue::Queue;

/// A function's settings.
#[derive(Debug, clap::Parser)]
#[command(name = "tocsin-function")]
pub struct Settings {
    /// The PostgreSQL database (migrated beforehand by `tocsin migrate`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Connections in the function's pool: one invocation at a time needs one or two
    /// (docs/deploy-aws.md explains RDS Proxy for many functions).
    #[arg(long, env = "TOCSIN_DATABASE_CONNECTIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub connections: u32,
    /// The queue that wakes the pipeline.
    #[arg(long, env = "TOCSIN_PIPELINE_QUEUE_URL")]
    pub pipeline_queue: Option<String>,
    /// The queue that wakes the notifier.
    #[arg(long, env = "TOCSIN_NOTIFY_QUEUE_URL")]
    pub notify_queue: Option<String>,
    /// Where the pipeline moves messages that are not Tocsin's, with the reason.
    #[arg(long, env = "TOCSIN_PIPELINE_DLQ_URL")]
    pub pipeline_dlq: Option<String>,
    /// Where the notifier moves messages that are not Tocsin's, with the reason.
    #[arg(long, env = "TOCSIN_NOTIFY_DLQ_URL")]
    pub notify_dlq: Option<String>,
    /// The notifiers file's content (YAML, docs/alerting.md); secrets as `${env:NAME}`.
    #[arg(long, env = "TOCSIN_NOTIFIERS_YAML", hide_env_values = true)]
    pub notifiers_yaml: Option<String>,
    /// The pipeline's settings (`TOCSIN_RESOLVE_GRACE` and the rest, as `tocsin serve`).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The queues a function may send to (each is optional: a function without the one it
/// needs logs that it cannot wake the next stage, and the tick does it within a minute).
#[derive(Debug, Clone, Default)]
pub struct Queues {
    /// Wakes the pipeline.
    pub pipeline: Option<Queue>,
    /// Wakes the notifier.
    pub notify: Option<Queue>,
    /// The pipeline queue's dead letters.
    pub pipeline_dlq: Option<Queue>,
    /// The notify queue's dead letters.
    pub notify_dlq: Option<Queue>,
}

impl Settings {
    /// Reads the environment; the error names what is missing or wrong.
    pub fn from_env() -> Result<Self, clap::Error> {
        <Self as clap::Parser>::try_parse_from(["tocsin-function"])
    }

    /// Opens the database: no migration at a cold start (they are a deploy step), and a
    /// clear error if the database is behind this build.
    pub async fn open_store(&self) -> Result<Arc<dyn Store>, StoreError> {
        tocsin_store::open(
            &self.database_url,
            StoreOptions {
                migrations: Migrations::Require,
                connections: Some(self.connections),
                ..StoreOptions::default()
            },
        )
        .await
    }

    /// The notifiers and routes, none without the setting.
    pub fn notifiers(&self) -> Result<Notifiers, String> {
        match self.notifiers_yaml.as_deref().map(str::trim) {
            None | Some("") => Ok(Notifiers::default()),
            Some(text) => Notifiers::parse(text).map_err(|e| format!("TOCSIN_NOTIFIERS_YAML: {e}")),
        }
    }

    /// The pipeline's settings.
    pub fn config(&self) -> Result<tocsin_pipeline::Config, String> {
        self.pipeline.config()
    }

    /// The queues that are configured, on one SQS client.
    pub async fn queues(&self) -> Queues {
        let urls = [
            &self.pipeline_queue,
            &self.notify_queue,
            &self.pipeline_dlq,
            &self.notify_dlq,
        ];
        if urls.iter().all(|u| u.is_none()) {
            return Queues::default();
        }
        let client = Queue::client().await;
        let queue = |url: &Option<String>| url.as_ref().map(|url| Queue::new(client.clone(), url));
        Queues {
            pipeline: queue(&self.pipeline_queue),
            notify: queue(&self.notify_queue),
            pipeline_dlq: queue(&self.pipeline_dlq),
            notify_dlq: queue(&self.notify_dlq),
        }
    }
}
