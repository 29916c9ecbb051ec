//! Sensu Go events (the JSON a Sensu handler receives on stdin, POSTed as is, one event
//! or an array of them). Check status 0 is healthy, 1 is unhealthy at low priority, 2
//! and above unhealthy at high priority. The entity name becomes the `host` label, the
//! namespace `namespace`, and the check's labels are kept.

use std::collections::BTreeMap;

use serde::Deserialize;
use tocsin_plugin::{Config, Event, Priority, RawInput, Status, Transformer};

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Entity {
    metadata: Metadata,
}

#[derive(Deserialize)]
struct Check {
    metadata: Metadata,
    status: u32,
    #[serde(default)]
    output: String,
    #[serde(default)]
    last_ok: Option<i64>,
    #[serde(default)]
    executed: Option<i64>,
}

#[derive(Deserialize)]
struct SensuEvent {
    entity: Entity,
    check: Check,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    One(Box<SensuEvent>),
    Many(Vec<SensuEvent>),
}

struct Sensu;

impl Transformer for Sensu {
    fn transform(input: &RawInput, _config: &Config) -> Result<Vec<Event>, String> {
        let body: Body =
            serde_json::from_slice(&input.body).map_err(|e| format!("not a Sensu event: {e}"))?;
        let events = match body {
            Body::One(event) => vec![*event],
            Body::Many(events) => events,
        };
        Ok(events
            .into_iter()
            .map(|e| {
                let (status, priority) = match e.check.status {
                    0 => (Status::Healthy, Priority::Low),
                    1 => (Status::Unhealthy, Priority::Low),
                    _ => (Status::Unhealthy, Priority::High),
                };
                let mut event = Event::new(e.check.metadata.name, status)
                    .label("host", e.entity.metadata.name)
                    .priority(priority);
                if let Some(namespace) = e.check.metadata.namespace {
                    event = event.label("namespace", namespace);
                }
                for (key, value) in e.check.metadata.labels {
                    event = event.label(key, value);
                }
                if !e.check.output.is_empty() {
                    event = event.message(e.check.output.trim_end());
                }
                let since = if status == Status::Healthy {
                    e.check.executed
                } else {
                    e.check.last_ok
                };
                if let Some(seconds) = since.filter(|s| *s > 0) {
                    event = event.since(seconds * 1000);
                }
                event
            })
            .collect())
    }
}

tocsin_plugin::export_transformer!(Sensu);
