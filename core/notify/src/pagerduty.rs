//! PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`): a
//! `trigger` when an incident opens at `high`, a `resolve` when it ends. The dedup key is
//! the incident id, so PagerDuty itself folds a repeated trigger into the page it has.

use serde_json::{Value, json};

use super::{Action, Notice, cut};
use tocsin_model::event::Priority;

/// PagerDuty's limit on `payload.summary`.
pub const MAX_SUMMARY: usize = 1024;
/// PagerDuty's limit on `dedup_key`.
pub const MAX_DEDUP_KEY: usize = 255;

/// The event to enqueue; `None` when the action pages nobody (an update, which never
/// pages twice).
pub fn event(routing_key: &str, notice: &Notice<'_>) -> Option<Value> {
    let incident = &notice.incident.incident;
    let dedup_key = cut(&incident.id, MAX_DEDUP_KEY);
    match notice.action {
        Action::Update => None,
        Action::Resolve => Some(json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        })),
        Action::Open => {
            let details: serde_json::Map<String, Value> = notice
                .facts()
                .into_iter()
                .map(|(name, text)| (name, Value::String(text)))
                .collect();
            let severity = match incident.priority {
                Priority::High => "critical",
                Priority::Low => "warning",
            };
            Some(json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {
                    "summary": cut(&notice.summary(), MAX_SUMMARY),
                    "source": incident.service.clone().unwrap_or_else(|| "tocsin".into()),
                    "severity": severity,
                    "timestamp": incident.opened_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    "component": incident.service,
                    "group": incident.region,
                    "class": incident.key,
                    "custom_details": details,
                },
                "links": [{ "href": notice.link, "text": "Incident in Tocsin" }],
                "client": "Tocsin",
                "client_url": notice.link,
            }))
        }
    }
}
