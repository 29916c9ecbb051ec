//! What each notifier sends ([docs/alerting.md](../../docs/alerting.md)): the request bodies of PagerDuty's
//! Events API v2, Slack's Web API, Jira, GitHub issues and a signed webhook, built from
//! one [`Notice`] so that every channel carries the same facts an engineer needs: what
//! failed, the impact, how urgent, what to do, where to look, a link back and the trace
//! id.
//!
//! The builders are pure functions, each within its service's documented limits; the
//! delivery (the outbox, retries, the HTTP calls) uses them.
//!
//! Layout: this root holds the [`Notice`] every builder reads; `pagerduty`, `slack`,
//! `jira`, `github` and `webhook` each build one service's bodies from it; `config` reads
//! the notifiers file (notifiers, routes, retry budget) and knows who may use which.
//! Only the model is below this crate.

pub mod config;
pub mod github;
pub mod jira;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use tocsin_model::event::Priority;
pub use tocsin_model::notice::Action;
use tocsin_model::plugin::Section;
use tocsin_model::views::IncidentDetail;

/// Everything a notification says about one incident.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// Why it is sent.
    pub action: Action,
    /// The incident, its alerts and timeline.
    pub incident: &'a IncidentDetail,
    /// Link back to the incident in Tocsin.
    pub link: String,
    /// The W3C trace id of the event that opened it, when known.
    pub trace_id: Option<String>,
    /// Context the collectors gathered (runbook, logs, related alerts, changes).
    pub sections: &'a [Section],
    /// Whether the service is customer-facing (the impact), when the catalogue knows.
    pub customer_facing: Option<bool>,
}

impl Notice<'_> {
    /// One line: urgency, title and how many alerts fail, such as
    /// `[HIGH] InstanceDown · checkout · eu-west-1 — 2 of 3 alerts unhealthy`.
    pub fn summary(&self) -> String {
        let i = &self.incident.incident;
        let state = match self.action {
            Action::Resolve => "resolved".to_owned(),
            _ => format!("{} of {} alerts unhealthy", i.unhealthy, i.alerts),
        };
        format!("[{}] {} — {state}", self.urgency(), i.title)
    }

    /// `HIGH` or `LOW`.
    pub fn urgency(&self) -> &'static str {
        match self.incident.incident.priority {
            Priority::High => "HIGH",
            Priority::Low => "LOW",
        }
    }

    /// The facts, as (name, Markdown) in a fixed order: what failed, impact, urgency,
    /// the collected context (what to do, where to look), the link and the trace id.
    pub fn facts(&self) -> Vec<(String, String)> {
        let i = &self.incident.incident;
        let mut facts = Vec::new();
        let mut failed = String::new();
        for alert in &self.incident.alert_list {
            let labels = alert
                .labels
                .as_object()
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            failed.push_str(&format!(
                "- {} `{}` ({labels}){}\n",
                if alert.status == tocsin_model::event::Status::Unhealthy {
                    "❌"
                } else {
                    "✅"
                },
                alert.monitor,
                alert
                    .message
                    .as_deref()
                    .and_then(|m| m.lines().next())
                    .map(|first| format!(": {first}"))
                    .unwrap_or_default(),
            ));
        }
        facts.push(("What failed".to_owned(), failed.trim_end().to_owned()));
        let impact = match (i.service.as_deref(), self.customer_facing) {
            (Some(service), Some(true)) => format!("{service} (customer-facing)"),
            (Some(service), Some(false)) => format!("{service} (not customer-facing)"),
            (Some(service), None) => service.to_owned(),
            (None, _) => "unknown service".to_owned(),
        };
        let region = i
            .region
            .as_deref()
            .map(|r| format!(" in {r}"))
            .unwrap_or_default();
        facts.push(("Impact".to_owned(), format!("{impact}{region}")));
        facts.push((
            "Urgency".to_owned(),
            match i.priority {
                Priority::High => "high: a human is paged now".to_owned(),
                Priority::Low => "low: a ticket for working hours".to_owned(),
            },
        ));
        // What to do and where to look: each collected section under its own title.
        for section in self.sections {
            facts.push((section.title.clone(), section.markdown.clone()));
        }
        facts.push(("Incident".to_owned(), self.link.clone()));
        if let Some(trace) = &self.trace_id {
            facts.push(("Trace id".to_owned(), trace.clone()));
        }
        facts
    }

    /// The facts as one Markdown text.
    pub fn markdown(&self) -> String {
        self.facts()
            .into_iter()
            .map(|(name, text)| format!("**{name}:**\n{text}"))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// The label that marks an issue as this incident's, so a retry after a crash finds the
/// Jira or GitHub issue it created instead of creating a second one.
pub fn incident_label(incident_id: &str) -> String {
    format!("tocsin-{incident_id}")
}

/// Cuts text to at most `max` characters, marking the cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
