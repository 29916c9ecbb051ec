//! What the fuzz targets share: the caller they act as, the checks every accepted event
//! must pass, and plugin output built from arbitrary bytes.

use arbitrary::Arbitrary;
use tocsin_host::output as wit;
use tocsin_ingest::Batch;
use tocsin_model::event::{Event, FieldError};
use tocsin_model::team::Caller;

/// A team's token, as the API would see it.
pub fn caller() -> Caller {
    Caller {
        token_id: "fuzz".into(),
        team: Some("bender".into()),
        admin: false,
    }
}

/// Validates and stamps `items` as the API does, then checks what a user relies on.
pub fn accept(items: Vec<Result<Event, FieldError>>) -> Batch {
    let count = items.len();
    let batch = tocsin_ingest::accept_each(items, &caller(), "fuzz");
    check(&batch, count);
    batch
}

/// Every item is either accepted (with an id) or rejected (with its index), and an
/// accepted event survives the journal: written as JSON and read back, it is the same
/// event and still valid, so the pipeline never meets one it cannot read.
pub fn check(batch: &Batch, items: usize) {
    assert_eq!(batch.ids.len(), items, "one id slot per item");
    assert_eq!(
        batch.ids.iter().filter(|id| id.is_some()).count(),
        batch.accepted.len()
    );
    for rejected in &batch.rejected {
        assert!(rejected.index < items, "rejection names a real item");
        assert!(
            batch.ids[rejected.index].is_none(),
            "rejected yet given an id"
        );
    }
    for accepted in &batch.accepted {
        assert_eq!(
            accepted.team, "bender",
            "an event lands in the caller's team"
        );
        let json = serde_json::to_string(&accepted.event).expect("an event serializes");
        let back: Event = serde_json::from_str(&json).expect("a stored event reads back");
        assert_eq!(back, accepted.event, "the journal keeps the event as sent");
        back.validate().expect("a stored event is still valid");
        assert_eq!(back.fingerprint(), accepted.fingerprint);
    }
}

/// Splits `data` at its first newline: the webhook URL's query, then the body.
pub fn query_and_body(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let at = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let query = form_urlencoded(&data[..at]);
    (query, data.get(at + 1..).unwrap_or_default())
}

fn form_urlencoded(query: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(query)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect()
}

/// A WIT event as a plugin could return it: any strings, any numbers.
#[derive(Debug, Arbitrary)]
pub struct PluginEvent {
    monitor: String,
    unhealthy: bool,
    since: Option<i64>,
    message: Option<String>,
    count: Option<u64>,
    context: Vec<(String, String)>,
    filters: Vec<(String, String)>,
    grouping: Option<(Option<Vec<String>>, Option<String>)>,
    alerting: Option<(Option<bool>, Option<String>, Option<String>)>,
    plugins: Vec<(String, String)>,
}

fn specs(list: Vec<(String, String)>) -> Vec<wit::Spec> {
    list.into_iter()
        .map(|(kind, params)| wit::Spec { kind, params })
        .collect()
}

impl From<PluginEvent> for wit::Event {
    fn from(e: PluginEvent) -> Self {
        wit::Event {
            alert: wit::Alert {
                monitor: e.monitor,
                status: if e.unhealthy {
                    wit::Status::Unhealthy
                } else {
                    wit::Status::Healthy
                },
                since: e.since,
                message: e.message,
                count: e.count,
            },
            context: e
                .context
                .into_iter()
                .map(|(key, value)| wit::Label { key, value })
                .collect(),
            filters: specs(e.filters),
            grouping: e
                .grouping
                .map(|(keys, window)| wit::Grouping { keys, window }),
            alerting: e
                .alerting
                .map(|(high, channel, ticket_queue)| wit::Alerting {
                    priority: high.map(|h| {
                        if h {
                            wit::Priority::High
                        } else {
                            wit::Priority::Low
                        }
                    }),
                    channel,
                    ticket_queue,
                }),
            plugins: specs(e.plugins),
        }
    }
}

/// A filter's verdict as a plugin could return it.
#[derive(Debug, Arbitrary)]
pub enum PluginVerdict {
    /// Keep the event.
    Keep,
    /// Drop it for this reason.
    Drop(String),
    /// Replace it.
    Replace(PluginEvent),
}

impl From<PluginVerdict> for wit::Verdict {
    fn from(v: PluginVerdict) -> Self {
        match v {
            PluginVerdict::Keep => wit::Verdict::Keep,
            PluginVerdict::Drop(reason) => wit::Verdict::Drop(reason),
            PluginVerdict::Replace(event) => wit::Verdict::Replace(event.into()),
        }
    }
}
