//! The alerting decision, in the pipeline: which incidents must be told about, and why.
//!
//! The grouping stage records what happened to each incident in its timeline; this stage
//! reads a batch's timeline and leaves one notice per incident the batch touched:
//! `open` for a new incident, `resolve` when it resolved or was closed, `update` for
//! anything else a human would want to know (an alert joined, failed again, recovered;
//! the incident started resolving or reopened; it was acknowledged). The notices are
//! written in the batch's own transaction, so an incident change and the duty to tell
//! someone about it are durable together; the outbox (`tocsin_outbox`) turns each into
//! deliveries to the configured notifiers.

use std::collections::BTreeMap;

use tocsin_model::notice::Action;
use tocsin_model::rows::{IncidentRow, NoticeRow, TimelineKind, TimelineRow};

/// One notice per incident touched by the batch, in the order they were first touched.
pub(crate) fn notices(timeline: &[TimelineRow], incidents: &[IncidentRow]) -> Vec<NoticeRow> {
    let mut actions: BTreeMap<&str, (usize, Action, i64)> = BTreeMap::new();
    for (order, entry) in timeline.iter().enumerate() {
        let action = match entry.kind {
            TimelineKind::Opened => Action::Open,
            TimelineKind::Resolved | TimelineKind::Closed => Action::Resolve,
            // A window expiring changes nothing a human acts on.
            TimelineKind::WindowExpired => continue,
            _ => Action::Update,
        };
        let slot = actions
            .entry(entry.incident_id.as_str())
            .or_insert((order, action, entry.at));
        slot.2 = entry.at;
        // Open wins (the first message carries the latest state), then resolve.
        slot.1 = match (slot.1, action) {
            (Action::Open, _) | (_, Action::Open) => Action::Open,
            (Action::Resolve, _) | (_, Action::Resolve) => Action::Resolve,
            _ => Action::Update,
        };
    }
    let mut notices: Vec<(usize, NoticeRow)> = actions
        .into_iter()
        .filter_map(|(incident_id, (order, action, at))| {
            let team = incidents.iter().find(|i| i.id == incident_id)?.team.clone();
            Some((
                order,
                NoticeRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    incident_id: incident_id.to_owned(),
                    team,
                    action,
                    at,
                },
            ))
        })
        .collect();
    notices.sort_by_key(|(order, _)| *order);
    notices.into_iter().map(|(_, notice)| notice).collect()
}
